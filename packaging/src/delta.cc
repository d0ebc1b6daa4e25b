// The patch container (its one writer, PatchWriter, and its reader), the zstd engine and
// apply_delta. The format is docs/format-delta.md; in short (varints are LEB128, at most 10
// bytes):
//   "OPD1" u8(engine) varint(from_size) varint(to_size) varint(window) varint(segments)
//   per segment: u8(kind) varint(to_len) varint(from_off) varint(from_len) varint(payload_len)
//                payload
// kind 1: payload is one zstd frame of the segment with the from-slice as raw prefix.
// kind 2: payload is our own engine's streams (delta_suffix.cc).
// Segments cover `to` in order; from_len + to_len <= window for each.
#include "outpost/packaging/delta.h"

#include <algorithm>
#include <string>
#include <vector>

#include "delta_internal.h"
#include "outpost/packaging/compress.h"

namespace outpost::packaging {
namespace delta_detail {

void put_varint(Bytes& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

Status PatchWriter::header(DeltaEngine engine, std::uint64_t from_size, std::uint64_t to_size,
                           std::uint64_t window, std::uint64_t segments) {
  if (started_) return Status::Internal("patch writer: header written twice");
  started_ = true;
  to_size_ = to_size;
  segments_ = segments;
  Bytes head = {'O', 'P', 'D', '1', static_cast<std::uint8_t>(engine)};
  put_varint(head, from_size);
  put_varint(head, to_size);
  put_varint(head, window);
  put_varint(head, segments);
  return sink_(head);
}

Status PatchWriter::segment(std::uint8_t kind, std::uint64_t to_len, std::uint64_t from_off,
                            std::uint64_t from_len, ByteView payload) {
  if (!started_ || written_segments_ >= segments_ || to_len > to_size_ - written_bytes_) {
    return Status::Internal("patch writer: segment outside what the header declares");
  }
  ++written_segments_;
  written_bytes_ += to_len;
  Bytes head = {kind};
  put_varint(head, to_len);
  put_varint(head, from_off);
  put_varint(head, from_len);
  put_varint(head, payload.size());
  OUTPOST_RETURN_IF_ERROR(sink_(head));
  return sink_(payload);
}

Status PatchWriter::finish() const {
  if (!started_ || written_segments_ != segments_ || written_bytes_ != to_size_) {
    return Status::Internal("patch writer: fewer segments or bytes than the header declares");
  }
  return Status::Ok();
}

bool Cursor::varint(std::uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos_ >= data_.size()) return false;
    const std::uint8_t b = data_[pos_++];
    if (shift == 63 && b > 1) return false;  // more than 64 bits
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

bool Cursor::u8(std::uint8_t& v) {
  if (pos_ >= data_.size()) return false;
  v = data_[pos_++];
  return true;
}

bool Cursor::bytes(std::uint64_t n, ByteView& out) {
  if (n > data_.size() - pos_) return false;
  out = data_.subspan(pos_, static_cast<std::size_t>(n));
  pos_ += static_cast<std::size_t>(n);
  return true;
}

}  // namespace delta_detail

namespace {

using delta_detail::Cursor;
using delta_detail::PatchWriter;

constexpr std::uint8_t kMagic[4] = {'O', 'P', 'D', '1'};
constexpr std::uint8_t kSegZstd = delta_detail::kSegmentZstd;
constexpr std::uint8_t kSegSuffix = delta_detail::kSegmentSuffix;
// A segment of `to` is at most a quarter of the window, and at most 16 MiB.
constexpr std::uint64_t kMaxSegment = 16ull << 20;

struct Segment {
  std::uint64_t to_off = 0;
  std::uint64_t to_len = 0;
  std::uint64_t from_off = 0;
  std::uint64_t from_len = 0;
};

// Cuts `to` into equal segments and picks for each the slice of `from` around the same relative
// position. from_len + to_len <= window for every segment.
std::vector<Segment> plan_segments(std::uint64_t from_size, std::uint64_t to_size,
                                   std::uint64_t window) {
  std::vector<Segment> segs;
  if (to_size == 0) return segs;
  const std::uint64_t seg_cap = std::min(window / 4, kMaxSegment);
  const std::uint64_t slice_len = std::min(from_size, window - seg_cap);
  const std::uint64_t n = (to_size + seg_cap - 1) / seg_cap;
  std::uint64_t off = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    Segment s;
    s.to_off = off;
    s.to_len = to_size / n + (i < to_size % n ? 1 : 0);
    off += s.to_len;
    s.from_len = slice_len;
    const long double rel =
        (static_cast<long double>(s.to_off) + static_cast<long double>(s.to_len) / 2) /
        static_cast<long double>(to_size);
    const auto center = static_cast<std::uint64_t>(rel * static_cast<long double>(from_size));
    const std::uint64_t start = center > slice_len / 2 ? center - slice_len / 2 : 0;
    s.from_off = std::min(start, from_size - slice_len);
    segs.push_back(s);
  }
  return segs;
}

Status corrupt(const std::string& what) { return Status::Corruption("delta patch: " + what); }

}  // namespace

Result<Bytes> encode_delta(ByteView from, ByteView to, const DeltaParams& params) {
  if (params.window < kMinDeltaWindow || params.window > kMaxDeltaWindow) {
    return Status::InvalidArgument("delta window " + std::to_string(params.window) +
                                   " is outside [4 KiB, 128 MiB]");
  }
  if (params.engine != DeltaEngine::kZstd && params.engine != DeltaEngine::kSuffix) {
    return Status::InvalidArgument("unknown delta engine " +
                                   std::to_string(static_cast<int>(params.engine)));
  }
  const int level = std::clamp(params.level, 1, 22);
  Bytes out;
  PatchWriter writer([&out](ByteView b) {
    out.insert(out.end(), b.begin(), b.end());
    return Status::Ok();
  });
  const std::vector<Segment> segs = plan_segments(from.size(), to.size(), params.window);
  OUTPOST_RETURN_IF_ERROR(
      writer.header(params.engine, from.size(), to.size(), params.window, segs.size()));
  Compressor zc(level);
  for (const Segment& s : segs) {
    const ByteView slice = from.subspan(s.from_off, s.from_len);
    const ByteView target = to.subspan(s.to_off, s.to_len);
    OUTPOST_ASSIGN_OR_RETURN(Bytes zpayload, zc.compress_with_prefix(target, slice));
    std::uint8_t kind = kSegZstd;
    Bytes payload;
    if (params.engine == DeltaEngine::kSuffix) {
      Status suffix = delta_detail::encode_suffix_segment(slice, target, level, payload);
      // kAborted: the differences do not compress, and zstd's coding is kept.
      if (!suffix.ok() && suffix.code() != Code::kAborted) return suffix;
      // zstd wins on some inputs (moved blocks of new text): keep the smaller coding.
      if (suffix.ok() && payload.size() < zpayload.size()) kind = kSegSuffix;
    }
    if (kind == kSegZstd) payload = std::move(zpayload);
    OUTPOST_RETURN_IF_ERROR(writer.segment(kind, s.to_len, s.from_off, s.from_len, payload));
  }
  OUTPOST_RETURN_IF_ERROR(writer.finish());
  return out;
}

namespace {

struct Header {
  DeltaInfo info;
};

Result<DeltaInfo> parse_header(Cursor& c) {
  ByteView magic;
  if (!c.bytes(4, magic) || !std::equal(magic.begin(), magic.end(), kMagic)) {
    return corrupt("not a delta patch (bad magic)");
  }
  DeltaInfo info;
  std::uint8_t engine = 0;
  if (!c.u8(engine) || !c.varint(info.from_size) || !c.varint(info.to_size) ||
      !c.varint(info.window) || !c.varint(info.segments)) {
    return corrupt("truncated header");
  }
  if (engine != static_cast<std::uint8_t>(DeltaEngine::kZstd) &&
      engine != static_cast<std::uint8_t>(DeltaEngine::kSuffix)) {
    return corrupt("unknown engine " + std::to_string(engine));
  }
  info.engine = static_cast<DeltaEngine>(engine);
  if (info.segments > info.to_size) return corrupt("more segments than bytes");
  return info;
}

}  // namespace

Result<DeltaInfo> read_delta_info(ByteView patch) {
  Cursor c(patch);
  return parse_header(c);
}

Status apply_delta(const DeltaReader& from, std::uint64_t from_size, ByteView patch,
                   std::uint64_t to_size, const std::function<Status(ByteView)>& sink,
                   std::uint64_t max_window) {
  Cursor c(patch);
  OUTPOST_ASSIGN_OR_RETURN(DeltaInfo info, parse_header(c));
  if (info.from_size != from_size) {
    return corrupt("made for old content of " + std::to_string(info.from_size) +
                   " bytes, but the old content has " + std::to_string(from_size));
  }
  if (info.to_size != to_size) {
    return corrupt("produces " + std::to_string(info.to_size) + " bytes, but " +
                   std::to_string(to_size) + " are declared");
  }
  if (info.window > max_window) {
    return corrupt("window of " + std::to_string(info.window) + " bytes exceeds the limit of " +
                   std::to_string(max_window));
  }
  Decompressor dec;
  Bytes slice;
  std::uint64_t slice_off = 0;
  bool have_slice = false;
  std::uint64_t produced = 0;
  for (std::uint64_t i = 0; i < info.segments; ++i) {
    const std::string where = "segment " + std::to_string(i);
    std::uint8_t kind = 0;
    Segment s;
    std::uint64_t payload_len = 0;
    ByteView payload;
    if (!c.u8(kind) || !c.varint(s.to_len) || !c.varint(s.from_off) || !c.varint(s.from_len) ||
        !c.varint(payload_len) || !c.bytes(payload_len, payload)) {
      return corrupt(where + " is truncated");
    }
    if (s.to_len == 0 || s.to_len > to_size - produced) {
      return corrupt(where + " has a bad length " + std::to_string(s.to_len));
    }
    if (s.from_len > info.window || s.to_len > info.window - s.from_len) {
      return corrupt(where + " exceeds the patch's window");
    }
    if (s.from_off > from_size || s.from_len > from_size - s.from_off) {
      return corrupt(where + " references bytes outside the old content");
    }
    if (!have_slice || slice_off != s.from_off || slice.size() != s.from_len) {
      slice.clear();
      slice.shrink_to_fit();
      if (s.from_len > 0) {
        OUTPOST_RETURN_IF_ERROR(
            from(s.from_off, s.from_len, slice).With("delta: reading old content"));
        if (slice.size() != s.from_len) {
          return Status::Internal("delta: the old-content reader returned " +
                                  std::to_string(slice.size()) + " bytes, asked " +
                                  std::to_string(s.from_len));
        }
      }
      slice_off = s.from_off;
      have_slice = true;
    }
    if (kind == kSegZstd) {
      auto seg = dec.decompress_with_prefix(payload, slice, static_cast<std::size_t>(s.to_len),
                                            "delta " + where);
      if (!seg.ok()) return seg.error();
      OUTPOST_RETURN_IF_ERROR(sink(*seg));
    } else if (kind == kSegSuffix) {
      OUTPOST_RETURN_IF_ERROR(
          delta_detail::apply_suffix_segment(slice, payload, s.to_len, dec, sink)
              .With("delta " + where));
    } else {
      return corrupt(where + " has unknown kind " + std::to_string(kind));
    }
    produced += s.to_len;
  }
  if (produced != to_size) {
    return corrupt("produces " + std::to_string(produced) + " bytes, declared " +
                   std::to_string(to_size));
  }
  if (!c.done()) return corrupt("trailing bytes after the last segment");
  return Status::Ok();
}

Result<Bytes> apply_delta(ByteView from, ByteView patch, std::uint64_t to_size) {
  Bytes out;
  auto reader = [&](std::uint64_t off, std::uint64_t len, Bytes& buf) -> Status {
    if (off > from.size() || len > from.size() - off) {
      return Status::Internal("delta: read outside the old content");
    }
    buf.assign(from.begin() + static_cast<std::ptrdiff_t>(off),
               from.begin() + static_cast<std::ptrdiff_t>(off + len));
    return Status::Ok();
  };
  auto sink = [&](ByteView piece) -> Status {
    out.insert(out.end(), piece.begin(), piece.end());
    return Status::Ok();
  };
  OUTPOST_RETURN_IF_ERROR(apply_delta(reader, from.size(), patch, to_size, sink, kMaxDeltaWindow));
  return out;
}

}  // namespace outpost::packaging
