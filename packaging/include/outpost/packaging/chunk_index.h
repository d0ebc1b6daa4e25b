// The chunk index of one bundle version (docs/format-repository.md, "Chunk index"): which
// chunks make up each file, in content order, and where each chunk's stored (compressed) bytes
// are: pack, offset, length. Binary, little-endian, named by BLAKE2b-256 of the whole file.
//
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/crypto/hash.h"

namespace outpost::packaging {

struct Manifest;

inline constexpr char kIndexMagic[8] = {'o', 'u', 't', 'i', 'd', 'x', '0', '1'};
inline constexpr std::size_t kIndexHeaderBytes = 24;
inline constexpr std::size_t kIndexEntryBytes = 52;

struct ChunkEntry {
  crypto::Digest id{};              // BLAKE2b-256 of the raw bytes
  std::uint32_t raw_length = 0;     // bytes after decompression, 1..max chunk size
  std::uint32_t pack = 0;           // index into ChunkIndex::packs
  std::uint64_t offset = 0;         // of the stored bytes (the zstd frame) in the pack file
  std::uint32_t stored_length = 0;  // bytes of the zstd frame

  friend bool operator==(const ChunkEntry&, const ChunkEntry&) = default;
};

struct ChunkIndex {
  std::vector<crypto::Digest> packs;       // pack ids (BLAKE2b-256 of the pack file)
  std::vector<std::uint32_t> file_chunks;  // per file of the manifest, in table order
  std::vector<ChunkEntry> chunks;          // content order, file by file

  // The binary form. Assumes a consistent index (as parse() returns or the publisher builds).
  Bytes encode() const;

  // Parses and validates. kCorruption ("chunk index: ...") on: wrong magic, a length that does
  // not match the counts exactly (checked without overflow before anything is allocated),
  // per-file counts not summing to chunk_count, a pack number out of range, raw_length of 0 or
  // above max_chunk, stored_length of 0 or above what zstd can produce for raw_length,
  // offset + stored_length overflowing, or an offset inside the pack's magic.
  static Result<ChunkIndex> parse(ByteView bytes, std::uint32_t max_chunk);

  // Checks the index against the manifest it belongs to: one count per file, each file's
  // chunk raw lengths summing to its size, raw lengths within the manifest's chunking.max.
  // kCorruption naming the bundle and file.
  Status check_against(const Manifest& manifest) const;
};

}  // namespace outpost::packaging
