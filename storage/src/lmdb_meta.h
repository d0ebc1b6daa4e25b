// A reader of LMDB's two meta pages, so the store can check data.mdb before LMDB maps it.
// A data file shorter than the pages its meta page says are in use is mapped by LMDB all the
// same, and the first read past the end of the file is SIGBUS, not an error code: this is
// how a truncated store is told apart from a healthy one without crashing.
//
// Layout (LMDB 0.9 mdb.c, little-endian; W = the word size, 4 or 8 bytes):
//   page header: pgno (W), u16 pad, u16 flags (P_META = 0x08), u16 lower, u16 upper
//   MDB_meta:    u32 magic 0xBEEFC0DE, u32 version 1, address (W), mapsize (W),
//                MDB_db free, MDB_db main  (each: u32 pad, u16 flags, u16 depth,
//                                           branch, leaf, overflow, entries, root: W each)
//                last_pg (W), txnid (W)
// The page size is the free DB's u32 pad (mm_psize). Meta page 0 is at offset 0, meta page 1
// at offset psize; LMDB uses the one with the larger txnid. Pages 0..last_pg are in use, so
// the file holds at least (last_pg + 1) * psize bytes (LMDB writes every page it allocates
// with pwrite before the meta page that counts it).
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace outpost::storage::lmdb {

struct MetaInfo {
  int word_bits = 0;            // 32 or 64: the layout the meta page matched
  std::uint32_t page_size = 0;  // mm_psize
  std::uint64_t last_page = 0;  // mm_last_pg
  std::uint64_t txnid = 0;      // mm_txnid
  std::uint64_t main_root = 0;  // root page of the main DB (~0 when empty)
  std::uint64_t free_root = 0;  // root page of the free-page DB (~0 when empty)
};

// Parses one meta page from the first `size` bytes at `page` for the given word size.
// nullopt when the bytes are not a meta page of that layout (or too short to hold one).
inline std::optional<MetaInfo> parse_meta_page(const std::uint8_t* page, std::size_t size,
                                               int word_bits) {
  const std::size_t w = word_bits == 64 ? 8 : 4;
  auto word = [&](std::size_t at) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < w; ++i) v |= static_cast<std::uint64_t>(page[at + i]) << (8 * i);
    return v;
  };
  auto u32 = [&](std::size_t at) {
    return static_cast<std::uint32_t>(page[at]) | (static_cast<std::uint32_t>(page[at + 1]) << 8) |
           (static_cast<std::uint32_t>(page[at + 2]) << 16) |
           (static_cast<std::uint32_t>(page[at + 3]) << 24);
  };
  const std::size_t header = w + 8;  // pgno, pad, flags, lower, upper
  const std::size_t db = 8 + 5 * w;  // MDB_db
  const std::size_t meta = header;   // MDB_meta starts after the page header
  const std::size_t dbs = meta + 8 + 2 * w;
  const std::size_t last_pg = dbs + 2 * db;
  const std::size_t end = last_pg + 2 * w;
  if (size < end) return std::nullopt;
  constexpr std::uint16_t kPageMeta = 0x08;
  const auto flags = static_cast<std::uint16_t>(page[w + 2] | (page[w + 3] << 8));
  if ((flags & kPageMeta) == 0 || u32(meta) != 0xBEEFC0DEu || u32(meta + 4) != 1) {
    return std::nullopt;
  }
  MetaInfo m;
  m.word_bits = word_bits;
  m.page_size = u32(dbs);
  m.free_root = word(dbs + db - w);
  m.main_root = word(dbs + 2 * db - w);
  m.last_page = word(last_pg);
  m.txnid = word(last_pg + w);
  return m;
}

// How big a data file must be, from the meta pages LMDB would use.
struct DataFileNeed {
  MetaInfo meta;            // the meta page LMDB would use (larger txnid)
  std::uint64_t bytes = 0;  // (last_page + 1) * page_size, at least two pages
};

// `head` holds the first bytes of the file (at least one page of the size found in meta page
// 0 for meta page 1 to be read). nullopt when meta page 0 is not an LMDB meta page of either
// word size, or its page size is not a power of two between 512 bytes and 64 KiB (then LMDB
// itself reports the file as invalid).
inline std::optional<DataFileNeed> data_file_need(const std::uint8_t* head, std::size_t size) {
  for (int bits : {64, 32}) {
    std::optional<MetaInfo> m0 = parse_meta_page(head, size, bits);
    if (!m0) continue;
    const std::uint32_t ps = m0->page_size;
    if (ps < 512 || ps > 65536 || (ps & (ps - 1)) != 0) return std::nullopt;
    DataFileNeed need;
    need.meta = *m0;
    if (size > ps) {
      std::optional<MetaInfo> m1 = parse_meta_page(head + ps, size - ps, bits);
      if (m1 && m1->page_size == ps && m1->txnid > m0->txnid) need.meta = *m1;
    }
    const std::uint64_t pages = need.meta.last_page + 1 < 2 ? 2 : need.meta.last_page + 1;
    need.bytes = pages * ps;
    return need;
  }
  return std::nullopt;
}

}  // namespace outpost::storage::lmdb
