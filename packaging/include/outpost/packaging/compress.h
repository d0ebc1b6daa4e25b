// zstd compression of chunks, and bounded decompression of anything that came from outside.
//
// Only the stable zstd API (1.5.x as shipped by Debian 12) is used; zstd types stay in src/.
// Each Compressor/Decompressor owns one reused zstd context: allocate one per thread and reuse
// it (creating contexts is expensive). Thread-safety: an object is used by one thread at a
// time; distinct objects are independent. Both are movable, not copyable.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string_view>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"

namespace outpost::packaging {

// Default level for chunks. Level 19 compresses a 200 MB bundle at ~2-3 MB/s on a Raspberry
// Pi-class core; level 12 is several times faster for a few percent more bytes, and chunks are
// compressed once per repository, so 12 is the default (`outpost publish --level` overrides).
inline constexpr int kDefaultChunkLevel = 12;
// Default level for what a node downloads whole: patches, the whole content (the patch from 0)
// and the library file. Written once, fetched by every node, so the fewest bytes win; a
// publisher on a slow machine with a large first release may lower it (`publish --patch-level`).
inline constexpr int kDefaultPatchLevel = 19;
// Largest window a Decompressor accepts (2^27 = 128 MiB): bounds its memory whatever a frame
// header claims. Compressors never use a larger window.
inline constexpr int kMaxWindowLog = 27;

class Compressor {
 public:
  // level: 1..ZSTD_maxCLevel() (22); out-of-range values are clamped. checksum: frames end
  // with zstd's 4-byte content checksum (for what is not content-addressed: update file
  // entries), which Decompressor verifies.
  explicit Compressor(int level = kDefaultChunkLevel, bool checksum = false);
  ~Compressor();
  Compressor(Compressor&&) noexcept;
  Compressor& operator=(Compressor&&) noexcept;

  // One zstd frame holding `raw` (content size recorded in the header; checksum off unless
  // asked for: chunks are content-addressed). kInternal if zstd fails (out of memory).
  Result<Bytes> compress(ByteView raw);

  // One frame holding `raw` compressed with `prefix` as a raw-content dictionary (zstd
  // "patch-from": ZSTD_CCtx_refPrefix). The window is sized to cover prefix + raw, up to
  // 2^kMaxWindowLog; the prefix must be given again to decompress.
  Result<Bytes> compress_with_prefix(ByteView raw, ByteView prefix);

  int level() const { return level_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int level_;
  bool checksum_;
};

class Decompressor {
 public:
  Decompressor();
  ~Decompressor();
  Decompressor(Decompressor&&) noexcept;
  Decompressor& operator=(Decompressor&&) noexcept;

  // Decompresses exactly one zstd frame whose content must be exactly expected_size bytes.
  // Never allocates or writes more than expected_size + 1 bytes, whatever the frame header
  // says (streaming decompression into a fixed buffer). `what` names the data in messages
  // (e.g. "chunk 3fa2...").
  // Errors (all kCorruption, never store these bytes):
  //   "decompression bomb: WHAT decompresses past its declared N bytes"
  //   "WHAT decompresses to M bytes, declared N"  (shorter)
  //   "WHAT is not a valid zstd frame: ..."  / "... is truncated" / "... has trailing bytes"
  //   a window larger than 2^kMaxWindowLog.
  Result<Bytes> decompress(ByteView frame, std::size_t expected_size,
                           std::string_view what = "frame");

  // As decompress(), for a frame made by Compressor::compress_with_prefix() with this prefix.
  Result<Bytes> decompress_with_prefix(ByteView frame, ByteView prefix, std::size_t expected_size,
                                       std::string_view what = "patch");

 private:
  Result<Bytes> run(ByteView frame, ByteView prefix, std::size_t expected_size,
                    std::string_view what);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The content size a zstd frame's header declares; nullopt when the header does not say or is
// not a zstd frame header. Untrusted: only a bound for decompress()'s expected_size.
std::optional<std::uint64_t> zstd_frame_content_size(ByteView frame);

}  // namespace outpost::packaging
