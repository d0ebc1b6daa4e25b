#include "full_patch.h"

#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "delta_internal.h"
#include "outpost/packaging/chunker.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/delta.h"
#include "outpost/packaging/layout.h"
#include "outpost/packaging/repository.h"
#include "repo_files.h"

namespace outpost::packaging::publish_detail {
namespace {

using repo_detail::in_repo;

// Segment cuts: FastCDC over the content stream, 3/8 to all of the largest segment (8 MiB by
// default). 8 MiB segments with hash and chain tables of at most 2^20 entries keep zstd level 19
// under ~30 MiB (its own tables for an 8-16 MiB window would take 50-85 MiB), for a few tenths
// of a percent of ratio.
constexpr int kFullPatchTableLog = 20;
constexpr int kFirstOptimalLevel = 16;  // zstd's btopt strategy and above
// A segment head: kind and four varints.
constexpr std::size_t kMaxSegmentHead = 1 + 4 * 10;

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

struct Segment {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  crypto::Digest content{};
};

// A frame of the previous patch that rebuilds a new segment: where it is, and the hash of its
// bytes as they were checked.
struct OldFrame {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  crypto::Digest bytes{};
};

Result<std::vector<Segment>> cut_segments(StreamFile& stream, const ChunkerParams& cuts) {
  std::vector<Segment> out;
  std::uint64_t read_at = 0;
  std::uint64_t cut_at = 0;
  Status s = chunk_stream(
      [&](std::span<std::uint8_t> dst) -> Result<std::size_t> {
        const std::uint64_t n = std::min<std::uint64_t>(dst.size(), stream.size() - read_at);
        OUTPOST_RETURN_IF_ERROR(stream.read(read_at, dst.first(static_cast<std::size_t>(n))));
        read_at += n;
        return static_cast<std::size_t>(n);
      },
      cuts,
      [&](ByteView piece) -> Status {
        out.push_back(Segment{cut_at, piece.size(), crypto::blake2b(piece)});
        cut_at += piece.size();
        return Status::Ok();
      });
  if (!s.ok()) return s;
  return out;
}

// The frames of `previous` that decompress to one of `wanted` (content hash -> length). Only
// frames of a wanted length are decompressed. Anything unreadable or malformed ends the search
// with what was found so far: the caller compresses the rest.
std::map<crypto::Digest, OldFrame> reusable_frames(
    const std::string& repo, const std::string& previous,
    const std::map<crypto::Digest, std::uint64_t>& wanted, FileSystem& fs) {
  std::map<crypto::Digest, OldFrame> found;
  if (previous.empty() || wanted.empty()) return found;
  auto reader = fs.open_reader(in_repo(repo, previous));
  if (!reader.ok()) return found;
  FileReader& file = **reader;
  const std::uint64_t size = file.size();
  std::set<std::uint64_t> lengths;
  for (const auto& [digest, length] : wanted) lengths.insert(length);

  Bytes head(kMaxSegmentHead + 8);
  auto read_head = [&](std::uint64_t at) -> std::optional<ByteView> {
    if (at >= size) return std::nullopt;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(head.size(), size - at));
    if (!file.read_at(at, std::span(head).first(n)).ok()) return std::nullopt;
    return ByteView(head).first(n);
  };
  auto view = read_head(0);
  if (!view || view->size() < 5 || std::memcmp(view->data(), "OPD1", 4) != 0) return found;
  delta_detail::Cursor c(view->subspan(4));
  std::uint8_t engine = 0;
  std::uint64_t from_size = 0, to_size = 0, window = 0, segments = 0;
  if (!c.u8(engine) || !c.varint(from_size) || !c.varint(to_size) || !c.varint(window) ||
      !c.varint(segments) || from_size != 0) {
    return found;
  }
  std::uint64_t at = view->size() - c.remaining();
  Decompressor decompressor;
  Bytes payload;
  for (std::uint64_t i = 0; i < segments && found.size() < wanted.size(); ++i) {
    auto h = read_head(at);
    if (!h) break;
    delta_detail::Cursor sc(*h);
    std::uint8_t kind = 0;
    std::uint64_t to_len = 0, from_off = 0, from_len = 0, payload_len = 0;
    if (!sc.u8(kind) || !sc.varint(to_len) || !sc.varint(from_off) || !sc.varint(from_len) ||
        !sc.varint(payload_len)) {
      break;
    }
    const std::uint64_t payload_at = at + (h->size() - sc.remaining());
    if (payload_len > size - std::min(size, payload_at)) break;
    at = payload_at + payload_len;
    if (kind != delta_detail::kSegmentZstd || from_len != 0 || lengths.count(to_len) == 0 ||
        payload_len > ZSTD_compressBound(static_cast<std::size_t>(to_len))) {
      continue;
    }
    payload.resize(static_cast<std::size_t>(payload_len));
    if (!file.read_at(payload_at, payload).ok()) break;
    auto raw = decompressor.decompress(payload, static_cast<std::size_t>(to_len), "old segment");
    if (!raw.ok()) continue;
    const crypto::Digest content = crypto::blake2b(*raw);
    auto it = wanted.find(content);
    if (it == wanted.end() || it->second != to_len) continue;
    found.emplace(content, OldFrame{payload_at, payload_len, crypto::blake2b(payload)});
  }
  return found;
}

// One segment compressed as an independent zstd frame, with long-distance matching and a
// window just large enough for it.
Status compress_segment(ZSTD_CCtx* c, ByteView in, int level, Bytes& frame,
                        std::size_t& frame_size) {
  int window_log = 10;  // zstd's smallest window
  while (window_log < kMaxWindowLog && (std::uint64_t{1} << window_log) < in.size()) {
    ++window_log;
  }
  ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
  std::size_t r = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_enableLongDistanceMatching, 1);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log);
  // The optimal parsers (levels 16 and up) size their tables to the window: capped. Lower
  // levels keep their own, smaller ones.
  if (level >= kFirstOptimalLevel) {
    const int table_log = std::min(kFullPatchTableLog, window_log + 1);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_hashLog, table_log);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_chainLog, table_log);
  }
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
  if (ZSTD_isError(r)) {
    return Status::Internal(std::string("zstd: setting parameters: ") + ZSTD_getErrorName(r));
  }
  frame.resize(ZSTD_compressBound(in.size()));
  frame_size = ZSTD_compress2(c, frame.data(), frame.size(), in.data(), in.size());
  if (ZSTD_isError(frame_size)) {
    return Status::Internal(std::string("zstd: compressing: ") + ZSTD_getErrorName(frame_size));
  }
  return Status::Ok();
}

}  // namespace

Result<ChunkerParams> full_patch_cuts(std::uint32_t max_segment) {
  if (max_segment < (64u << 10) || max_segment > kDefaultFullPatchSegment) {
    return Status::InvalidArgument(
        "the largest segment of a patch from 0 must be 64 KiB to 8 MiB, not " +
        std::to_string(max_segment) + " bytes");
  }
  return ChunkerParams{max_segment / 8 * 3, max_segment / 2, max_segment};
}

Result<FullPatch> write_full_patch(const std::string& repo, StreamFile& stream,
                                   const std::string& previous, std::uint32_t max_segment,
                                   int level, FileSystem& fs) {
  OUTPOST_ASSIGN_OR_RETURN(const ChunkerParams cuts, full_patch_cuts(max_segment));
  OUTPOST_ASSIGN_OR_RETURN(std::vector<Segment> segments, cut_segments(stream, cuts));
  std::map<crypto::Digest, std::uint64_t> wanted;
  std::uint64_t largest = 0;
  for (const Segment& seg : segments) {
    wanted.emplace(seg.content, seg.length);
    largest = std::max(largest, seg.length);
  }
  const std::map<crypto::Digest, OldFrame> old = reusable_frames(repo, previous, wanted, fs);
  std::unique_ptr<FileReader> old_file;
  if (!old.empty()) {
    auto r = fs.open_reader(in_repo(repo, previous));
    if (r.ok()) old_file = std::move(r).value();
  }

  // Named by its hash, known only at the end, in a subfolder of objects/: FileWriter commits
  // only within one folder, so the temp file is made and moved by hand, through fs.
  const std::string dir = in_repo(repo, kObjectsDir);
  static std::atomic<std::uint64_t> serial{0};
  const std::string tmp =
      dir + "/.tmp-patch-" + std::to_string(::getpid()) + "-" + std::to_string(serial.fetch_add(1));
  OUTPOST_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> out,
                           fs.create_file(tmp, kPublishedFileMode, /*exclusive=*/true));
  struct Remove {
    FileSystem& fs;
    std::string path;
    ~Remove() {
      if (!path.empty()) (void)fs.remove(path);
    }
  } remove{fs, tmp};
  FullPatch result;
  result.segments = segments.size();
  crypto::Blake2b hash;
  delta_detail::PatchWriter writer([&](ByteView b) -> Status {
    hash.update(b);
    result.length += b.size();
    return out->append(b);
  });
  const std::uint64_t window = std::max<std::uint64_t>(kMinDeltaWindow, largest);
  OUTPOST_RETURN_IF_ERROR(
      writer.header(DeltaEngine::kZstd, 0, stream.size(), window, segments.size()));

  std::unique_ptr<ZSTD_CCtx, CCtxFree> cctx;
  Bytes in;
  Bytes frame;
  for (const Segment& seg : segments) {
    // A frame of the previous patch, read again and checked against the bytes that were
    // decompressed to this segment's content.
    if (auto it = old.find(seg.content); it != old.end() && old_file) {
      frame.resize(static_cast<std::size_t>(it->second.length));
      if (old_file->read_at(it->second.offset, frame).ok() &&
          crypto::digest_equal(crypto::blake2b(frame), it->second.bytes)) {
        OUTPOST_RETURN_IF_ERROR(
            writer.segment(delta_detail::kSegmentZstd, seg.length, 0, 0, frame));
        ++result.reused;
        continue;
      }
    }
    if (!cctx) {
      cctx.reset(ZSTD_createCCtx());
      if (!cctx) return Status::Internal("zstd: out of memory");
    }
    in.resize(static_cast<std::size_t>(seg.length));
    OUTPOST_RETURN_IF_ERROR(stream.read(seg.offset, in));
    std::size_t n = 0;
    OUTPOST_RETURN_IF_ERROR(compress_segment(cctx.get(), in, level, frame, n));
    OUTPOST_RETURN_IF_ERROR(
        writer.segment(delta_detail::kSegmentZstd, seg.length, 0, 0, ByteView(frame).first(n)));
  }
  OUTPOST_RETURN_IF_ERROR(writer.finish());
  OUTPOST_RETURN_IF_ERROR(out->sync());
  OUTPOST_RETURN_IF_ERROR(out->close());
  out.reset();
  result.blake2b = hash.finish();
  OUTPOST_RETURN_IF_ERROR(
      repo_detail::publish_temp_file(fs, tmp, repo, patch_object_path(result.blake2b)));
  remove.path.clear();
  return result;
}

}  // namespace outpost::packaging::publish_detail
