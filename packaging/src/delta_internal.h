// Shared by delta.cc (container, zstd engine, apply) and delta_suffix.cc (our own engine).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/delta.h"

namespace outpost::packaging::delta_detail {

void put_varint(Bytes& out, std::uint64_t v);

// Segment kinds of the patch container (docs/format-delta.md).
inline constexpr std::uint8_t kSegmentZstd = 1;    // one zstd frame, the from-slice as prefix
inline constexpr std::uint8_t kSegmentSuffix = 2;  // our own engine's streams (delta_suffix.cc)

// The one writer of the patch container (docs/format-delta.md): the header, then each
// segment's head and payload, handed to a sink in order. encode_delta() writes patches in
// memory with it, the publisher streams the from-0 patch to a file with it. The writer checks
// the calls against the header: the segment count, and that the segments' to_len add up to
// to_size (kInternal otherwise: a bug in the caller). Sink errors are returned as they are.
class PatchWriter {
 public:
  using Sink = std::function<Status(ByteView)>;
  explicit PatchWriter(Sink sink) : sink_(std::move(sink)) {}

  Status header(DeltaEngine engine, std::uint64_t from_size, std::uint64_t to_size,
                std::uint64_t window, std::uint64_t segments);
  Status segment(std::uint8_t kind, std::uint64_t to_len, std::uint64_t from_off,
                 std::uint64_t from_len, ByteView payload);
  // kInternal unless every declared segment and byte was written.
  Status finish() const;

 private:
  Sink sink_;
  std::uint64_t to_size_ = 0;
  std::uint64_t segments_ = 0;
  std::uint64_t written_segments_ = 0;
  std::uint64_t written_bytes_ = 0;
  bool started_ = false;
};

// Bounds-checked reading of a patch: every accessor fails (returns false) instead of reading
// past the end.
class Cursor {
 public:
  explicit Cursor(ByteView data) : data_(data) {}
  bool varint(std::uint64_t& v);
  bool u8(std::uint8_t& v);
  bool bytes(std::uint64_t n, ByteView& out);
  std::size_t remaining() const { return data_.size() - pos_; }
  bool done() const { return pos_ == data_.size(); }

 private:
  ByteView data_;
  std::size_t pos_ = 0;
};

// A segment of `to` coded with our own engine against `slice` (the from-slice). Appends the
// payload to out.
Status encode_suffix_segment(ByteView slice, ByteView target, int level, Bytes& out);

// Rebuilds a segment of to_len bytes from `slice` and the payload, passing it to sink in pieces.
Status apply_suffix_segment(ByteView slice, ByteView payload, std::uint64_t to_len,
                            Decompressor& dec, const std::function<Status(ByteView)>& sink);

}  // namespace outpost::packaging::delta_detail
