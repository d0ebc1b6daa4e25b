#include "outpost/packaging/chunk_index.h"

#include <zstd.h>

#include <cstring>
#include <limits>
#include <string>

#include "outpost/packaging/manifest.h"

namespace outpost::packaging {

Bytes ChunkIndex::encode() const {
  Bytes out;
  out.reserve(kIndexHeaderBytes + packs.size() * 32 + file_chunks.size() * 4 +
              chunks.size() * kIndexEntryBytes);
  out.resize(sizeof kIndexMagic);
  std::memcpy(out.data(), kIndexMagic, sizeof kIndexMagic);
  put_u32le(out, static_cast<std::uint32_t>(file_chunks.size()));
  put_u32le(out, static_cast<std::uint32_t>(packs.size()));
  put_u64le(out, chunks.size());
  for (const auto& p : packs) out.insert(out.end(), p.begin(), p.end());
  for (std::uint32_t n : file_chunks) put_u32le(out, n);
  for (const ChunkEntry& c : chunks) {
    out.insert(out.end(), c.id.begin(), c.id.end());
    put_u32le(out, c.raw_length);
    put_u32le(out, c.pack);
    put_u64le(out, c.offset);
    put_u32le(out, c.stored_length);
  }
  return out;
}

Result<ChunkIndex> ChunkIndex::parse(ByteView bytes, std::uint32_t max_chunk) {
  auto bad = [](const std::string& what) { return Status::Corruption("chunk index: " + what); };
  if (bytes.size() < kIndexHeaderBytes) return bad("truncated header");
  if (std::memcmp(bytes.data(), kIndexMagic, 8) != 0)
    return bad("wrong magic (not an outpost index)");
  const std::uint64_t file_count = get_u32le(bytes.data() + 8);
  const std::uint64_t pack_count = get_u32le(bytes.data() + 12);
  const std::uint64_t chunk_count = get_u64le(bytes.data() + 16);
  const std::uint64_t body = bytes.size() - kIndexHeaderBytes;
  // file_count and pack_count are < 2^32, so these products cannot overflow.
  const std::uint64_t fixed = pack_count * 32 + file_count * 4;
  if (fixed > body || chunk_count > (body - fixed) / kIndexEntryBytes ||
      chunk_count * kIndexEntryBytes != body - fixed) {
    return bad("length " + std::to_string(bytes.size()) + " does not match " +
               std::to_string(file_count) + " files, " + std::to_string(pack_count) + " packs, " +
               std::to_string(chunk_count) + " chunks");
  }
  ChunkIndex idx;
  const std::uint8_t* p = bytes.data() + kIndexHeaderBytes;
  idx.packs.resize(pack_count);
  for (auto& d : idx.packs) {
    std::memcpy(d.data(), p, 32);
    p += 32;
  }
  idx.file_chunks.resize(file_count);
  std::uint64_t sum = 0;
  for (auto& n : idx.file_chunks) {
    n = get_u32le(p);
    p += 4;
    sum += n;  // at most 2^32 * 2^32: fits in u64
  }
  if (sum != chunk_count) {
    return bad("per-file chunk counts sum to " + std::to_string(sum) + ", header says " +
               std::to_string(chunk_count));
  }
  idx.chunks.resize(chunk_count);
  for (std::uint64_t i = 0; i < chunk_count; ++i) {
    ChunkEntry& c = idx.chunks[i];
    std::memcpy(c.id.data(), p, 32);
    c.raw_length = get_u32le(p + 32);
    c.pack = get_u32le(p + 36);
    c.offset = get_u64le(p + 40);
    c.stored_length = get_u32le(p + 48);
    p += kIndexEntryBytes;
    const std::string at = "chunk " + std::to_string(i) + ": ";
    if (c.raw_length == 0 || c.raw_length > max_chunk) {
      return bad(at + "raw length " + std::to_string(c.raw_length) + " outside 1.." +
                 std::to_string(max_chunk));
    }
    if (c.pack >= pack_count) {
      return bad(at + "pack number " + std::to_string(c.pack) + " out of range (" +
                 std::to_string(pack_count) + " packs)");
    }
    if (c.stored_length == 0 || c.stored_length > ZSTD_compressBound(c.raw_length)) {
      return bad(at + "stored length " + std::to_string(c.stored_length) + " impossible for " +
                 std::to_string(c.raw_length) + " raw bytes");
    }
    if (c.offset < 8 || c.offset > std::numeric_limits<std::uint64_t>::max() - c.stored_length) {
      return bad(at + "offset " + std::to_string(c.offset) + " out of range");
    }
  }
  return idx;
}

Status ChunkIndex::check_against(const Manifest& m) const {
  auto bad = [&m](const std::string& what) {
    return Status::Corruption("chunk index of " + m.bundle + " version " +
                              std::to_string(m.version) + ": " + what);
  };
  if (file_chunks.size() != m.files.size()) {
    return bad("lists " + std::to_string(file_chunks.size()) + " files, the manifest " +
               std::to_string(m.files.size()));
  }
  std::size_t k = 0;
  for (std::size_t f = 0; f < m.files.size(); ++f) {
    std::uint64_t size = 0;
    for (std::uint32_t n = 0; n < file_chunks[f]; ++n, ++k) {
      if (k >= chunks.size()) return bad("fewer chunks than the per-file counts");
      if (chunks[k].raw_length > m.chunking.max) {
        return bad("a chunk of '" + m.files[f].path + "' is larger than chunking.max");
      }
      size += chunks[k].raw_length;
    }
    if (size != m.files[f].size) {
      return bad("chunks of '" + m.files[f].path + "' add up to " + std::to_string(size) +
                 " bytes, the manifest says " + std::to_string(m.files[f].size));
    }
  }
  if (k != chunks.size()) return bad("more chunks than the per-file counts");
  return Status::Ok();
}

}  // namespace outpost::packaging
