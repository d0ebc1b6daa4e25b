// Byte-range helpers for the HTTP source: coalescing the ranges a caller asks for into spans,
// parsing Content-Range and Content-Type's boundary, and a strict streaming parser for
// multipart/byteranges bodies. No libcurl here.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/sync/source.h"

namespace outpost::sync::http_internal {

// [begin, end) of a file.
struct Extent {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  std::uint64_t size() const { return end - begin; }
};

// Sorted, non-overlapping extents covering every non-empty range, where ranges closer than
// `gap` bytes are merged (fetching a small gap is cheaper than another range in the header
// or another part header in the answer). Empty ranges are left out.
std::vector<Extent> coalesce(const std::vector<ByteRange>& ranges, std::uint64_t gap);

// "bytes 0-99/1234" or "bytes 0-99/*". nullopt when malformed, when last < first, or when
// the total is known and not larger than last.
struct ContentRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // inclusive
  std::optional<std::uint64_t> total;
};
std::optional<ContentRange> parse_content_range(std::string_view value);

// The boundary parameter of "multipart/byteranges; boundary=..." (quoted or not); nullopt when
// the type is another one or the boundary is missing or longer than 70 characters.
std::optional<std::string> multipart_boundary(std::string_view content_type);

// Strict streaming parser of a multipart/byteranges body answering the ranges in `asked`:
// every part must carry a Content-Range equal to one asked extent (each at most once) and
// exactly that many bytes, parts must be framed by the boundary, and a preamble or epilogue
// is at most 1 KiB. Part bytes go to `deliver(file_offset, bytes)` as they arrive. Any
// deviation is kCorruption (the caller then distrusts the server's multi-range answers).
class MultipartParser {
 public:
  MultipartParser(std::string boundary, std::vector<Extent> asked,
                  std::function<void(std::uint64_t, ByteView)> deliver);
  Status feed(ByteView data);
  // The closing boundary was seen.
  bool finished() const { return state_ == State::kEpilogue; }

 private:
  enum class State { kPreamble, kAfterBoundary, kHeaders, kBody, kAfterBody, kEpilogue };
  Status advance();
  Status start_part();

  std::string delimiter_;  // "--" + boundary
  std::vector<Extent> asked_;
  std::vector<bool> seen_;
  std::function<void(std::uint64_t, ByteView)> deliver_;
  State state_ = State::kPreamble;
  std::string buf_;
  std::uint64_t part_offset_ = 0;
  std::uint64_t part_left_ = 0;
  std::uint64_t epilogue_ = 0;
};

}  // namespace outpost::sync::http_internal
