// Shared by delta.cc (container, zstd engine, apply) and delta_suffix.cc (our own engine).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/packaging/compress.h"

namespace outpost::packaging::delta_detail {

void put_varint(Bytes& out, std::uint64_t v);

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
