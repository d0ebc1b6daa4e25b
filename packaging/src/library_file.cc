#include "library_file.h"

#include <zstd.h>

#include <algorithm>
#include <map>
#include <memory>

#include "outpost/crypto/hash.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/delta.h"
#include "outpost/packaging/layout.h"
#include "outpost/packaging/manifest.h"
#include "outpost/packaging/update_file.h"
#include "repo_files.h"

namespace outpost::packaging::repo_detail {

namespace {

constexpr int kLibraryWindowLog = 27;  // what a node's decompressor accepts by default

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

Result<Bytes> compress_long(ByteView raw, int level) {
  std::unique_ptr<ZSTD_CCtx, CCtxFree> c(ZSTD_createCCtx());
  if (!c) return Status::Internal("zstd: out of memory");
  std::size_t r = ZSTD_CCtx_setParameter(c.get(), ZSTD_c_compressionLevel, level);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c.get(), ZSTD_c_enableLongDistanceMatching, 1);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c.get(), ZSTD_c_windowLog, kLibraryWindowLog);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c.get(), ZSTD_c_contentSizeFlag, 1);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setPledgedSrcSize(c.get(), raw.size());
  if (ZSTD_isError(r)) return Status::Internal(std::string("zstd: ") + ZSTD_getErrorName(r));
  Bytes out(ZSTD_compressBound(raw.size()));
  r = ZSTD_compress2(c.get(), out.data(), out.size(), raw.data(), raw.size());
  if (ZSTD_isError(r)) return Status::Internal(std::string("zstd: ") + ZSTD_getErrorName(r));
  out.resize(r);
  return out;
}

// A group of bundles ends after the first bundle, once the group holds kMinGroupRaw bytes,
// whose name hashes to 0 modulo kGroupCut (or at kMaxGroupRaw): boundaries that depend on
// the names nearby only, so that a release changing a few bundles changes a few groups.
constexpr std::uint64_t kMinGroupRaw = 4u << 20;
constexpr std::uint64_t kMaxGroupRaw = 16u << 20;
constexpr std::uint32_t kGroupCut = 8;
// How far back the publisher looks for the library file of an earlier release.
constexpr std::int64_t kPreviousLibrarySearch = 64;

std::uint32_t name_hash(const std::string& name) {  // FNV-1a
  std::uint32_t h = 2166136261u;
  for (unsigned char c : name) h = (h ^ c) * 16777619u;
  return h;
}

// The frames of the newest earlier library file, by the SHA-256 of what each decompresses to:
// a frame whose bytes this release writes again is copied, not compressed again. Each frame
// is decompressed and hashed here, so a copied frame is known to hold exactly those bytes.
// Anything wrong with the old file only means nothing is copied.
std::map<std::string, Bytes> previous_frames(const std::string& repo, std::int64_t version) {
  std::map<std::string, Bytes> out;
  for (std::int64_t v = version - 1; v >= 1 && v >= version - kPreviousLibrarySearch; --v) {
    const std::string path = in_repo(repo, update_file_path(v, 0));
    if (!real_fs().exists(path)) continue;
    auto file = read_repo_file(path, kLibraryMaxFileBytes);
    if (!file.ok()) return out;
    auto frames = library_frames(*file, kLibraryMaxRawBytes);
    if (!frames.ok()) return out;
    Decompressor dec;
    for (const LibraryFrame& f : *frames) {
      auto raw = dec.decompress(f.frame, static_cast<std::size_t>(f.raw_size), "library frame");
      if (!raw.ok()) return out;
      out.emplace(crypto::hex(crypto::sha256(ByteView(*raw))),
                  Bytes(f.frame.begin(), f.frame.end()));
    }
    return out;
  }
  return out;
}

}  // namespace

Result<LibraryWritten> write_library_file(const std::string& repo, const RepositoryState& st,
                                          int level, FileSystem& fs) {
  LibraryWritten result;
  UpdateFile lib;
  std::int64_t latest_root = st.root.version;
  while (real_fs().exists(repo_metadata(repo, versioned_metadata_name(latest_root + 1, "root"))))
    ++latest_root;
  lib.latest_root = static_cast<std::uint32_t>(latest_root);
  auto add_file = [&](const std::string& name, const std::string& relative) -> Status {
    OUTPOST_ASSIGN_OR_RETURN(Bytes b, read_repo_file(in_repo(repo, relative), kMaxMetadataBytes));
    OUTPOST_ASSIGN_OR_RETURN(UpdateEntry e, make_stored_entry(name, b));
    lib.entries.push_back(std::move(e));
    return Status::Ok();
  };
  const std::string snap = versioned_metadata_name(st.snapshot.version, "snapshot");
  OUTPOST_RETURN_IF_ERROR(add_file(snap, metadata_path(snap)));
  for (const auto& [meta_file, info] : st.snapshot.meta) {
    const std::string name =
        versioned_metadata_name(info.version, meta_file.substr(0, meta_file.size() - 5));
    OUTPOST_RETURN_IF_ERROR(add_file(name, metadata_path(name)));
  }
  // Every bundle, in name order: its manifest (rootless) and its content stream (the patch
  // from 0 applied), named by the bundle; in groups of bundles, each group a zstd frame.
  std::map<std::string, const crypto::tuf::TargetFile*> bundles;
  for (const auto& [role, t] : st.roles) {
    (void)role;
    for (const auto& [path, tf] : t.targets) {
      if (auto b = bundle_of_target(path)) bundles.emplace(*b, &tf);
    }
  }
  // Where each frame's part of the encoded file ends: the header and the metadata first.
  std::vector<std::size_t> frame_ends;
  std::size_t encoded_at = kUpdateHeaderBytes;
  for (const UpdateEntry& e : lib.entries) encoded_at += update_entry_bytes(e);
  frame_ends.push_back(encoded_at);

  std::uint64_t raw_total = 0;
  std::uint64_t group_raw = 0;
  std::vector<UpdateEntry> contents;
  auto end_group = [&] {
    // Manifests together, then contents together: like with like compresses better.
    for (UpdateEntry& e : contents) {
      encoded_at += update_entry_bytes(e);
      lib.entries.push_back(std::move(e));
    }
    contents.clear();
    if (encoded_at > frame_ends.back()) frame_ends.push_back(encoded_at);
    group_raw = 0;
  };
  for (const auto& [bundle, tf] : bundles) {
    const std::string mpath = manifest_file_path(bundle, tf->sha256);
    OUTPOST_ASSIGN_OR_RETURN(Bytes mbytes, read_repo_file(in_repo(repo, mpath), kMaxManifestBytes));
    OUTPOST_ASSIGN_OR_RETURN(Manifest m, Manifest::parse(mbytes));
    const std::uint64_t size = content_stream_size(m);
    raw_total += size + mbytes.size();
    if (raw_total > kLibraryMaxRaw) return result;
    const PatchRef* full = nullptr;
    for (const auto& p : m.patches) {
      if (p.from == 0) full = &p;
    }
    if (full == nullptr) return result;
    OUTPOST_ASSIGN_OR_RETURN(Bytes patch, read_repo_file(in_repo(repo, full->path), full->length));
    OUTPOST_ASSIGN_OR_RETURN(Bytes stream, apply_delta(ByteView(), patch, size));
    // Rootless: the node computes the root from the content carried beside it.
    const std::optional<Bytes> rootless = rootless_manifest(mbytes, m.content_root);
    OUTPOST_ASSIGN_OR_RETURN(UpdateEntry me,
                             make_stored_entry(library_manifest_name(bundle),
                                               rootless ? ByteView(*rootless) : ByteView(mbytes)));
    encoded_at += update_entry_bytes(me);
    lib.entries.push_back(std::move(me));
    OUTPOST_ASSIGN_OR_RETURN(UpdateEntry ce,
                             make_stored_entry(library_content_name(bundle), stream));
    contents.push_back(std::move(ce));
    group_raw += size + mbytes.size();
    if (group_raw >= kMaxGroupRaw ||
        (group_raw >= kMinGroupRaw && name_hash(bundle) % kGroupCut == 0)) {
      end_group();
    }
  }
  end_group();
  OUTPOST_ASSIGN_OR_RETURN(Bytes encoded, encode_update_file(lib));
  if (frame_ends.back() != encoded.size()) {
    return Status::Internal("library file: frame ends do not match the encoded size");
  }
  const std::map<std::string, Bytes> earlier = previous_frames(repo, st.snapshot.version);
  LibraryHead head;
  Bytes packed(kLibraryHeadBytes);  // the head, written once the frames are known
  std::size_t begin = 0;
  for (std::size_t end : frame_ends) {
    const ByteView part = ByteView(encoded).subspan(begin, end - begin);
    begin = end;
    ++result.frames;
    if (auto found = earlier.find(crypto::hex(crypto::sha256(part))); found != earlier.end()) {
      packed.insert(packed.end(), found->second.begin(), found->second.end());
      ++result.copied;
    } else {
      OUTPOST_ASSIGN_OR_RETURN(Bytes frame, compress_long(part, level));
      packed.insert(packed.end(), frame.begin(), frame.end());
    }
    if (result.frames == 1) head.metadata_frame_bytes = packed.size() - kLibraryHeadBytes;
  }
  head.file_bytes = packed.size();
  const Bytes head_bytes = encode_library_head(head);
  std::copy(head_bytes.begin(), head_bytes.end(), packed.begin());
  OUTPOST_RETURN_IF_ERROR(
      write_repo_file(repo, update_file_path(st.snapshot.version, 0), packed, fs));
  result.written = true;
  return result;
}

}  // namespace outpost::packaging::repo_detail
