// Chunks in the node's store (docs/format-store.md, tables `chunks` and `chunk_blocks`).
// A chunk's stored value is `u8 codec (1 = one zstd frame) | u32le raw length | frame`. A
// small one (under kPackBelow) is not its own LMDB record: LMDB gives every value above about
// 2 KB whole 4 KiB pages, so a 2.5 KB chunk took 4 KiB and a store held 2.4 times the bytes of
// the packs it came from. Small values are appended to blocks of about kBlockBytes (table
// chunk_blocks, key u64 big-endian), and the chunk's record in `chunks` says where:
//   u8 3 | varint block | varint offset | varint length    (about 7 bytes; LEB128)
// which stores since 2026-12-04 write (u8 2 | u64le block | u32le offset | u32le length, 17
// bytes, before: 11,313 records of caniuse-lite's 20 releases took 242 pages, now about 200).
// Values of kPackBelow and more keep their own record, as before; stores written before blocks
// existed, or with the fixed-width form, are read as they are.
// gc and verify --repair delete records; compact() then drops the blocks nothing points into
// and rewrites those less than half used.
// Thread-safety: functions of a transaction, on that transaction's thread.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/crypto/hash.h"
#include "outpost/storage/store.h"

namespace outpost::node::chunks {

inline constexpr std::size_t kPackBelow = 32u << 10;
inline constexpr std::size_t kBlockBytes = 64u << 10;
inline constexpr std::uint8_t kBlockRef = 2;
inline constexpr std::uint8_t kBlockRefVarint = 3;

// The stored value of chunk `id` (the 32 key bytes), wherever it is kept; nullopt when the
// store has no such chunk. kCorruption when its record points into a block that is missing or
// too short.
Result<std::optional<Bytes>> get(const storage::ReadTxn& txn, ByteView id);

// Where a record of table chunks keeps its value: in itself (`inline_value`) or in a block.
struct Record {
  std::optional<ByteView> inline_value;  // a view into the record
  std::uint64_t block = 0;
  std::uint32_t offset = 0, length = 0;
};
// nullopt for a record that is neither form (malformed).
std::optional<Record> parse_record(ByteView record);

// Adds chunks in one write transaction: each (id, stored value) whose id is not held yet,
// small values packed into new blocks. Call finish() before the transaction commits; a
// Writer is for one attempt of a Store::update function (make a new one in each).
class Writer {
 public:
  explicit Writer(storage::WriteTxn& txn) : txn_(txn) {}
  Status add(const crypto::Digest& id, ByteView value);
  Status finish();

 private:
  Status flush();
  struct Pending {
    crypto::Digest id;
    std::uint32_t offset = 0, length = 0;
  };
  storage::WriteTxn& txn_;
  std::optional<std::uint64_t> next_block_;  // read from the store at the first flush
  Bytes block_;
  std::vector<Pending> pending_;
  std::set<crypto::Digest> added_;
};

struct CompactReport {
  std::uint64_t blocks_removed = 0;    // nothing pointed into them
  std::uint64_t blocks_rewritten = 0;  // less than half used: their chunks moved
};
// After records were deleted (gc, verify --repair), in the same transaction.
Result<CompactReport> compact(storage::WriteTxn& txn);

}  // namespace outpost::node::chunks
