// Chunks packed into blocks (outpost/node/chunk_store.h): a store of small chunks takes about
// their bytes, every chunk reads back, and gc's compaction frees what nothing uses.
#include "outpost/node/chunk_store.h"

#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "outpost/crypto/hash.h"
#include "storage/store_test_util.h"
#include "support/test_support.h"

namespace outpost::node {
namespace {

using storage::Table;

// A stored chunk value as the node writes it (u8 codec 1 | u32le raw length | frame); the
// frame's bytes are random, so nothing here depends on compression.
Bytes value_of(std::size_t frame_bytes, std::uint64_t seed) {
  Bytes v{1};
  put_u32le(v, static_cast<std::uint32_t>(frame_bytes * 3));
  Bytes frame = test::random_bytes(frame_bytes, seed);
  v.insert(v.end(), frame.begin(), frame.end());
  return v;
}

crypto::Digest id_of(std::uint64_t seed) {
  Bytes b;
  put_u64le(b, seed);
  return crypto::blake2b(ByteView(b));
}

struct ChunkStore {
  test::TempDir dir;
  std::unique_ptr<storage::Store> store;
  std::map<std::uint64_t, Bytes> values;  // by seed

  ChunkStore() {
    REQUIRE(crypto::init());
    store = storage::testing::create_store(dir.path() + "/store");
  }
  // Chunks seeds [from, to) of sizes between 500 and 3,500 bytes, in batches as sync writes.
  void add(std::uint64_t from, std::uint64_t to) {
    for (std::uint64_t at = from; at < to; at += 256) {
      REQUIRE(store
                  ->update([&](storage::WriteTxn& txn) -> Status {
                    chunks::Writer writer(txn);
                    for (std::uint64_t s = at; s < std::min(to, at + 256); ++s) {
                      const Bytes& v =
                          values.try_emplace(s, value_of(500 + (s * 7919) % 3000, s)).first->second;
                      OUTPOST_RETURN_IF_ERROR(writer.add(id_of(s), ByteView(v)));
                    }
                    return writer.finish();
                  })
                  .ok());
    }
  }
  void check_all() {
    auto txn = store->read();
    REQUIRE(txn.ok());
    for (const auto& [seed, v] : values) {
      const crypto::Digest id = id_of(seed);
      auto got = chunks::get(*txn, {id.data(), id.size()});
      REQUIRE(got.ok());
      REQUIRE(got->has_value());
      CHECK(bool(**got == v));
    }
  }
  std::uint64_t value_bytes() const {
    std::uint64_t n = 0;
    for (const auto& [seed, v] : values) n += v.size();
    return n;
  }
  std::uint64_t in_use() {
    auto st = store->stats();
    REQUIRE(st.ok());
    return st->in_use_bytes;
  }
  std::uint64_t blocks() {
    auto st = store->stats();
    REQUIRE(st.ok());
    return st->entries[static_cast<int>(Table::kChunkBlocks)];
  }
};

}  // namespace

TEST_CASE("small chunks packed into blocks take about their own bytes, and read back",
          "[node][chunks]") {
  ChunkStore s;
  s.add(0, 3000);
  s.check_all();
  const double ratio = static_cast<double>(s.in_use()) / static_cast<double>(s.value_bytes());
  INFO("store " << s.in_use() << " B for " << s.value_bytes() << " B of chunks: " << ratio);
  // One record per value (LMDB's overflow pages) took about 2x for chunks of this size.
  CHECK(ratio <= 1.15);
  CHECK(s.blocks() >= s.value_bytes() / chunks::kBlockBytes);
  // Adding the same chunks again stores nothing more.
  const std::uint64_t before = s.blocks();
  s.add(0, 3000);
  CHECK(s.blocks() == before);
}

TEST_CASE("a chunk of kPackBelow bytes or more keeps a record of its own", "[node][chunks]") {
  ChunkStore s;
  const Bytes big = value_of(chunks::kPackBelow, 9);
  const crypto::Digest id = id_of(9);
  REQUIRE(s.store
              ->update([&](storage::WriteTxn& txn) -> Status {
                chunks::Writer writer(txn);
                OUTPOST_RETURN_IF_ERROR(writer.add(id, ByteView(big)));
                OUTPOST_RETURN_IF_ERROR(writer.add(id, ByteView(big)));  // once only
                return writer.finish();
              })
              .ok());
  auto txn = s.store->read();
  REQUIRE(txn.ok());
  auto record = txn->get(Table::kChunks, {id.data(), id.size()});
  REQUIRE(record.ok());
  REQUIRE(record->has_value());
  CHECK(bool(**record == big));
  CHECK(s.blocks() == 0);
}

TEST_CASE(
    "compaction drops blocks nothing uses and rewrites half-empty ones, and every kept chunk "
    "still reads back",
    "[node][chunks]") {
  ChunkStore s;
  s.add(0, 2000);
  const std::uint64_t full = s.in_use();
  const std::uint64_t blocks_before = s.blocks();
  // gc deletes the records of about 1,670 chunks: the first 1,000 (whole blocks) and two in
  // three of the rest (blocks a third used).
  REQUIRE(s.store
              ->update([&](storage::WriteTxn& txn) -> Status {
                for (std::uint64_t seed = 0; seed < 2000; ++seed) {
                  if (seed >= 1000 && seed % 3 == 0) continue;
                  const crypto::Digest id = id_of(seed);
                  OUTPOST_RETURN_IF_ERROR(txn.del(Table::kChunks, {id.data(), id.size()}));
                }
                auto report = chunks::compact(txn);
                OUTPOST_RETURN_IF_ERROR(report.status());
                CHECK(report->blocks_removed > 0);
                CHECK(report->blocks_rewritten > 0);
                return Status::Ok();
              })
              .ok());
  for (std::uint64_t seed = 0; seed < 2000; ++seed) {
    if (seed < 1000 || seed % 3 != 0) s.values.erase(seed);
  }
  s.check_all();
  INFO("before " << full << " B, after " << s.in_use() << " B; chunks kept " << s.value_bytes());
  CHECK(s.blocks() < blocks_before);
  CHECK(static_cast<double>(s.in_use()) <= 1.25 * static_cast<double>(s.value_bytes()));
  // A second compaction finds nothing to do.
  REQUIRE(s.store
              ->update([&](storage::WriteTxn& txn) -> Status {
                auto report = chunks::compact(txn);
                OUTPOST_RETURN_IF_ERROR(report.status());
                CHECK(report->blocks_removed == 0);
                CHECK(report->blocks_rewritten == 0);
                return Status::Ok();
              })
              .ok());
  s.check_all();
}

TEST_CASE("a chunk whose block is missing is corruption, not a wrong chunk", "[node][chunks]") {
  ChunkStore s;
  s.add(0, 10);
  REQUIRE(s.store
              ->update([&](storage::WriteTxn& txn) -> Status {
                return txn
                    .erase_if(Table::kChunkBlocks, {}, [](ByteView, ByteView) { return true; })
                    .status();
              })
              .ok());
  auto txn = s.store->read();
  REQUIRE(txn.ok());
  const crypto::Digest id = id_of(3);
  auto got = chunks::get(*txn, {id.data(), id.size()});
  REQUIRE_FALSE(got.ok());
  CHECK(got.error().code() == Code::kCorruption);
  CHECK_THAT(got.error().message(), Catch::Contains("verify --repair"));
}

TEST_CASE(
    "a record into a block is a few varint bytes, and a store's fixed-width records still read",
    "[node][chunks]") {
  ChunkStore s;
  s.add(0, 40);
  // The records the writer makes: u8 3 and three varints (block, offset, length).
  {
    auto txn = s.store->read();
    REQUIRE(txn.ok());
    std::size_t records = 0;
    REQUIRE(txn->scan(Table::kChunks, {},
                      [&](ByteView, ByteView v) {
                        ++records;
                        CHECK(v[0] == chunks::kBlockRefVarint);
                        CHECK(v.size() <= 1 + 1 + 3 + 2);  // a block id below 128, offset < 2^21
                        return true;
                      })
                .ok());
    CHECK(records == 40);
  }
  // A store written before: every record as u8 2 | u64le block | u32le offset | u32le length.
  REQUIRE(s.store
              ->update([&](storage::WriteTxn& txn) -> Status {
                std::vector<std::pair<Bytes, Bytes>> old;
                OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kChunks, {}, [&](ByteView k, ByteView v) {
                  auto r = chunks::parse_record(v);
                  REQUIRE(r);
                  Bytes fixed{chunks::kBlockRef};
                  put_u64le(fixed, r->block);
                  put_u32le(fixed, r->offset);
                  put_u32le(fixed, r->length);
                  old.emplace_back(Bytes(k.begin(), k.end()), fixed);
                  return true;
                }));
                for (const auto& [k, v] : old) {
                  OUTPOST_RETURN_IF_ERROR(txn.put(Table::kChunks, ByteView(k), ByteView(v)));
                }
                return Status::Ok();
              })
              .ok());
  s.check_all();
  // Malformed varint records are not taken for a place in a block.
  CHECK_FALSE(chunks::parse_record(ByteView(Bytes{3, 1, 0})));           // no length
  CHECK_FALSE(chunks::parse_record(ByteView(Bytes{3, 1, 0, 9, 0})));     // trailing byte
  CHECK_FALSE(chunks::parse_record(ByteView(Bytes{3, 1, 0, 4})));        // under 5 bytes
  CHECK_FALSE(chunks::parse_record(ByteView(Bytes{3, 1, 0x80, 0x80})));  // cut short
  CHECK_FALSE(chunks::parse_record(ByteView(Bytes{3, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x10})));
  auto ok = chunks::parse_record(ByteView(Bytes{3, 0x81, 0x01, 0x80, 0x01, 9}));
  REQUIRE(ok);
  CHECK(ok->block == 129);
  CHECK(ok->offset == 128);
  CHECK(ok->length == 9);
}

}  // namespace outpost::node
