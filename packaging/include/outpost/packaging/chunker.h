// Content-defined chunking: FastCDC as published in 2020 (Xia et al., "The Design of Fast
// Content-Defined Chunking for Data Deduplication Based Storage Systems"): gear hash,
// sub-minimum cut-point skipping, normalised chunking level 2, rolling two bytes per step.
//
// The cut points are part of the repository format (docs/format-repository.md, Chunking): a
// node rebuilding a version chunks the content itself and must find the very same chunks, so
// the gear table and the masks below are fixed forever for the algorithm name "fastcdc2020".
// They are those of the FastCDC reference code (destor) and of the fastcdc-rs crate's v2020
// module: gear[i] = first 8 bytes (big-endian) of MD5 of 64 bytes of value i; masks chosen by
// round(log2(avg)) +/- 2.
//
// Thread-safety: Chunker is an immutable value, safe to share. chunk_stream()/chunk_file()
// keep their state on the stack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"

namespace outpost::packaging {

// The algorithm name recorded in manifests ("chunking.algorithm").
inline constexpr const char* kChunkAlgorithm = "fastcdc2020";

struct ChunkerParams {
  std::uint32_t min = 2048;
  std::uint32_t avg = 8192;
  std::uint32_t max = 65536;

  // kInvalidArgument unless 64 <= min < avg < max, 256 <= avg <= 4 MiB, 1 KiB <= max <= 16 MiB
  // (the ranges for which the FastCDC masks exist).
  Status validate() const;

  friend bool operator==(const ChunkerParams&, const ChunkerParams&) = default;
};

class Chunker {
 public:
  // `params` must have passed validate() (asserted in debug builds).
  explicit Chunker(const ChunkerParams& params = {});

  // Length of the chunk that starts at buf[0].
  //  - eof == true: buf holds all the remaining bytes of the file. Returns a length in
  //    [1, buf.size()] (0 only when buf is empty); the last chunk of a file may be < min.
  //  - eof == false: buf must hold at least params.max bytes, otherwise 0 is returned
  //    ("give me more bytes"); with enough bytes it returns a length in [min, max].
  // Cut points depend only on the bytes of the chunk itself, so the same content gives the
  // same chunks whatever the buffer sizes of the caller.
  std::size_t next_cut(ByteView buf, bool eof) const;

  const ChunkerParams& params() const { return params_; }

 private:
  ChunkerParams params_;
  std::uint64_t mask_s_;
  std::uint64_t mask_l_;
  std::uint64_t mask_s_ls_;
  std::uint64_t mask_l_ls_;
};

// Reads into `dst` and returns the number of bytes read, 0 at the end of the stream.
using ReadFn = std::function<Result<std::size_t>(std::span<std::uint8_t> dst)>;
// Receives each chunk in order; the view is valid only during the call. A non-ok Status
// stops chunking and is returned as is.
using ChunkFn = std::function<Status(ByteView chunk)>;

// Chunks a stream with a bounded buffer (params.max + 1 MiB at most, whatever the stream
// length). An empty stream gives no chunk. Errors: those of `read` and `on_chunk`;
// kInvalidArgument for invalid params.
Status chunk_stream(const ReadFn& read, const ChunkerParams& params, const ChunkFn& on_chunk);

// chunk_stream() over a file. kNotFound when it is missing; kUnavailable/kInternal for I/O
// errors (the message names the file).
Status chunk_file(const std::string& path, const ChunkerParams& params, const ChunkFn& on_chunk);

}  // namespace outpost::packaging
