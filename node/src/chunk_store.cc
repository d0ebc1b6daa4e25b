#include "outpost/node/chunk_store.h"

#include <algorithm>
#include <map>
#include <string>

namespace outpost::node::chunks {

using storage::Table;

namespace {

constexpr std::size_t kRefBytes = 1 + 8 + 4 + 4;  // kBlockRef, fixed widths
// kSettings: the id the next block gets (u64le). Ids only grow, so a block's key is never
// reused while a record could still point into an older block of that id.
constexpr std::string_view kNextBlockKey = "chunk-block-next";

Bytes block_key(std::uint64_t block) {
  Bytes k(8);
  for (int i = 0; i < 8; ++i)
    k[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(block >> (56 - 8 * i));
  return k;
}

std::optional<std::uint64_t> parse_block_key(ByteView k) {
  if (k.size() != 8) return std::nullopt;
  std::uint64_t v = 0;
  for (std::uint8_t b : k) v = (v << 8) | b;
  return v;
}

Bytes ref_value(std::uint64_t block, std::uint32_t offset, std::uint32_t length) {
  Bytes v;
  v.reserve(kRefBytes);
  v.push_back(kBlockRefVarint);
  put_varint(v, block);
  put_varint(v, offset);
  put_varint(v, length);
  return v;
}

}  // namespace

std::optional<Record> parse_record(ByteView record) {
  if (record.size() >= 5 && record[0] == 1) return Record{record, 0, 0, 0};
  if (record.size() == kRefBytes && record[0] == kBlockRef) {
    Record r;
    r.block = get_u64le(record.data() + 1);
    r.offset = get_u32le(record.data() + 9);
    r.length = get_u32le(record.data() + 13);
    if (r.length >= 5) return r;
  }
  if (!record.empty() && record[0] == kBlockRefVarint) {
    std::size_t pos = 1;
    auto block = get_varint(record, &pos);
    auto offset = block ? get_varint(record, &pos) : std::nullopt;
    auto length = offset ? get_varint(record, &pos) : std::nullopt;
    if (length && pos == record.size() && *offset <= UINT32_MAX && *length <= UINT32_MAX &&
        *length >= 5) {
      return Record{std::nullopt, *block, static_cast<std::uint32_t>(*offset),
                    static_cast<std::uint32_t>(*length)};
    }
  }
  return std::nullopt;
}

Result<std::optional<Bytes>> get(const storage::ReadTxn& txn, ByteView id) {
  OUTPOST_ASSIGN_OR_RETURN(auto record, txn.get(Table::kChunks, id));
  if (!record) return record;
  auto r = parse_record(ByteView(*record));
  if (!r || r->inline_value) return record;  // a malformed one is the caller's to report
  OUTPOST_ASSIGN_OR_RETURN(
      auto value,
      txn.get_part(Table::kChunkBlocks, ByteView(block_key(r->block)), r->offset, r->length));
  if (!value) {
    return Status::Corruption("chunk " + to_hex(id) + " points into block " +
                              std::to_string(r->block) +
                              ", which the store does not hold: run 'outpost verify --repair', "
                              "then 'outpost sync'");
  }
  return value;
}

Status Writer::add(const crypto::Digest& id, ByteView value) {
  const ByteView key(id.data(), id.size());
  if (added_.count(id) != 0) return Status::Ok();
  OUTPOST_ASSIGN_OR_RETURN(auto have, txn_.get(Table::kChunks, key));
  if (have) return Status::Ok();
  added_.insert(id);
  if (value.size() >= kPackBelow) return txn_.put(Table::kChunks, key, value);
  if (!block_.empty() && block_.size() + value.size() > kBlockBytes) {
    OUTPOST_RETURN_IF_ERROR(flush());
  }
  pending_.push_back(
      {id, static_cast<std::uint32_t>(block_.size()), static_cast<std::uint32_t>(value.size())});
  block_.insert(block_.end(), value.begin(), value.end());
  return Status::Ok();
}

Status Writer::flush() {
  if (block_.empty()) return Status::Ok();
  if (!next_block_) {
    OUTPOST_ASSIGN_OR_RETURN(auto next, txn_.get(Table::kSettings, as_bytes(kNextBlockKey)));
    next_block_ = next && next->size() == 8 ? get_u64le(next->data()) : 1;
  }
  const std::uint64_t block = (*next_block_)++;
  OUTPOST_RETURN_IF_ERROR(
      txn_.put(Table::kChunkBlocks, ByteView(block_key(block)), ByteView(block_)));
  for (const Pending& p : pending_) {
    OUTPOST_RETURN_IF_ERROR(txn_.put(Table::kChunks, {p.id.data(), p.id.size()},
                                     ByteView(ref_value(block, p.offset, p.length))));
  }
  block_.clear();
  pending_.clear();
  return Status::Ok();
}

Status Writer::finish() {
  OUTPOST_RETURN_IF_ERROR(flush());
  if (!next_block_) return Status::Ok();
  Bytes next;
  put_u64le(next, *next_block_);
  return txn_.put(Table::kSettings, as_bytes(kNextBlockKey), ByteView(next));
}

Result<CompactReport> compact(storage::WriteTxn& txn) {
  CompactReport report;
  // Bytes each block still serves.
  std::map<std::uint64_t, std::uint64_t> live;
  OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kChunks, {}, [&](ByteView, ByteView v) {
    auto r = parse_record(v);
    if (r && !r->inline_value) live[r->block] += r->length;
    return true;
  }));
  std::vector<std::uint64_t> drop, rewrite;
  OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kChunkBlocks, {}, [&](ByteView k, ByteView v) {
    auto block = parse_block_key(k);
    if (!block) return true;  // not ours; left alone
    auto it = live.find(*block);
    const std::uint64_t used = it == live.end() ? 0 : it->second;
    if (used == 0) {
      drop.push_back(*block);
    } else if (2 * used < v.size()) {
      rewrite.push_back(*block);
    }
    return true;
  }));
  // The chunks of the blocks rewritten, moved into new blocks.
  if (!rewrite.empty()) {
    const std::set<std::uint64_t> moving(rewrite.begin(), rewrite.end());
    std::vector<std::pair<crypto::Digest, Record>> moved;
    OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kChunks, {}, [&](ByteView k, ByteView v) {
      auto r = parse_record(v);
      if (k.size() == 32 && r && !r->inline_value && moving.count(r->block) != 0) {
        crypto::Digest id;
        std::copy(k.begin(), k.end(), id.begin());
        moved.emplace_back(id, *r);
      }
      return true;
    }));
    Writer writer(txn);
    for (const auto& [id, r] : moved) {
      OUTPOST_ASSIGN_OR_RETURN(
          auto value,
          txn.get_part(Table::kChunkBlocks, ByteView(block_key(r.block)), r.offset, r.length));
      if (!value) continue;
      // The record goes first, so that the writer stores the chunk again.
      OUTPOST_RETURN_IF_ERROR(txn.del(Table::kChunks, {id.data(), id.size()}));
      OUTPOST_RETURN_IF_ERROR(writer.add(id, ByteView(*value)));
    }
    OUTPOST_RETURN_IF_ERROR(writer.finish());
  }
  for (std::uint64_t block : drop) {
    OUTPOST_RETURN_IF_ERROR(txn.del(Table::kChunkBlocks, ByteView(block_key(block))));
  }
  for (std::uint64_t block : rewrite) {
    OUTPOST_RETURN_IF_ERROR(txn.del(Table::kChunkBlocks, ByteView(block_key(block))));
  }
  report.blocks_removed = drop.size();
  report.blocks_rewritten = rewrite.size();
  return report;
}

}  // namespace outpost::node::chunks
