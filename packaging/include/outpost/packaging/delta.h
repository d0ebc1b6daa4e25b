// Binary deltas (patches) between two versions of a bundle's content stream.
//
// A patch turns the old content `from` into the new content `to`. It is self-describing
// (the byte layout is at the top of packaging/src/delta.cc; in short: magic "OPD1", engine, sizes,
// window, then segments). Inputs larger than the window are cut into segments: each segment of `to`
// is coded against one slice of `from` of at most `window` bytes, taken around the same relative
// position, so applying holds at most one slice of `from` plus one segment's buffers.
//
// Engines:
//   kZstd    zstd "patch-from": each segment is one zstd frame with the from-slice as a raw
//            prefix. The baseline.
//   kSuffix  our own: a suffix array over the from-slice (libdivsufsort), bsdiff-style
//            approximate matches, and separate zstd-compressed streams for the controls, the
//            byte-wise differences (range-coded with contexts from the old bytes) and the new
//            bytes. On statistics data ("0.0123" -> "0.0125") it beats both zstd and bsdiff.
//
// Thread-safety: the functions keep no state; concurrent calls are independent.
// Memory: encode_delta holds the inputs, ~5 bytes per from-slice byte (suffix array) and the
// streams; apply_delta holds one from-slice (<= the patch's window, refused above max_window)
// plus one segment's decoded streams (a segment of `to` is at most 1/4 of the window, or 16 MiB).
#pragma once

#include <cstdint>
#include <functional>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/packaging/compress.h"

namespace outpost::packaging {

enum class DeltaEngine : std::uint8_t { kZstd = 1, kSuffix = 2 };

// Largest window a patch may declare (and encode_delta accepts): 128 MiB, zstd's bounded window
// (compress.h kMaxWindowLog).
inline constexpr std::uint64_t kMaxDeltaWindow = 128ull << 20;
// Smallest window encode_delta accepts (tests use 64 KiB to exercise segments).
inline constexpr std::uint64_t kMinDeltaWindow = 4096;

struct DeltaParams {
  DeltaEngine engine = DeltaEngine::kSuffix;
  int level = kDefaultPatchLevel;       // zstd level for the streams (1..22)
  std::uint64_t window = 128ull << 20;  // max reference bytes held in memory while applying
};

// A patch that turns `from` into `to`. Deterministic for the same inputs and params.
// Errors: kInvalidArgument for a window outside [kMinDeltaWindow, kMaxDeltaWindow] or an
// unknown engine; kInternal when zstd fails (out of memory).
Result<Bytes> encode_delta(ByteView from, ByteView to, const DeltaParams& params = {});

// Reads `length` bytes of the old content at `offset` into out (out is resized by the callee).
using DeltaReader = std::function<Status(std::uint64_t offset, std::uint64_t length, Bytes& out)>;

// Applies a patch: rebuilds the new content and passes it to sink in order, in pieces (each at
// most one segment). from_size is the old content's size; to_size the size the signed metadata
// declares for the result. A patch that would produce more or fewer bytes, references bytes
// outside [0, from_size), declares a window above max_window, or is truncated or malformed is
// kCorruption; no length is trusted before it is checked, so a hostile patch costs at most the
// memory stated above. A damaged patch that still parses may produce wrong bytes of the right
// size: the caller checks the content hash. Errors from the reader or the sink are returned as
// they are (with context). Sink pieces are valid only during the call.
Status apply_delta(const DeltaReader& from, std::uint64_t from_size, ByteView patch,
                   std::uint64_t to_size, const std::function<Status(ByteView)>& sink,
                   std::uint64_t max_window = 128ull << 20);

// Convenience for tests and small inputs: `from` in memory, the result in one buffer.
Result<Bytes> apply_delta(ByteView from, ByteView patch, std::uint64_t to_size);

// What a patch declares, read from its header without applying it (kCorruption if malformed).
struct DeltaInfo {
  DeltaEngine engine = DeltaEngine::kSuffix;
  std::uint64_t from_size = 0;
  std::uint64_t to_size = 0;
  std::uint64_t window = 0;
  std::uint64_t segments = 0;
};
Result<DeltaInfo> read_delta_info(ByteView patch);

}  // namespace outpost::packaging
