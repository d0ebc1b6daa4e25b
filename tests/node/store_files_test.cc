// Chunk indexes stored against a newer version's (outpost/node/store_files.h): every version
// reads back exactly, older ones take less room, and replacing or deleting the version they
// are stored against never loses them.
#include "outpost/node/store_files.h"

#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "storage/store_test_util.h"
#include "support/test_support.h"

namespace outpost::node {
namespace {

using storage::Table;
constexpr const char* kBundle = "un/ga/X";

// An index-like file of version v: 400 random 52-byte entries, of which version v+1 changes
// one in ten (as consecutive releases share most chunks).
Bytes index_of(std::uint64_t v) {
  Bytes out;
  for (std::uint64_t e = 0; e < 400; ++e) {
    const std::uint64_t generation = (v + e % 10) / 10;  // steps for one class per version
    Bytes entry = test::random_bytes(52, e * 1000 + generation);
    out.insert(out.end(), entry.begin(), entry.end());
  }
  return out;
}

struct IndexStore {
  test::TempDir dir;
  std::unique_ptr<storage::Store> store;
  std::vector<std::uint64_t> held;
  std::map<std::uint64_t, Bytes> files;

  IndexStore() : store(storage::testing::create_store(dir.path() + "/store")) {}
  void put(std::uint64_t v, Bytes file) {
    REQUIRE(store
                ->update([&](storage::WriteTxn& txn) {
                  return put_index(txn, kBundle, held, v, ByteView(file));
                })
                .ok());
    if (std::find(held.begin(), held.end(), v) == held.end()) held.push_back(v);
    files[v] = std::move(file);
  }
  Result<std::optional<Bytes>> get(std::uint64_t v) {
    auto txn = store->read();
    REQUIRE(txn.ok());
    return get_file(*txn, Table::kIndexes, ByteView(storage::version_key(kBundle, v)));
  }
  std::size_t stored_size(std::uint64_t v) {
    auto txn = store->read();
    REQUIRE(txn.ok());
    auto value = txn->get(Table::kIndexes, ByteView(storage::version_key(kBundle, v)));
    REQUIRE(value.ok());
    REQUIRE(value->has_value());
    return (*value)->size();
  }
  void check_all() {
    for (const auto& [v, file] : files) {
      INFO("version " << v);
      auto got = get(v);
      REQUIRE(got.ok());
      REQUIRE(got->has_value());
      CHECK(bool(**got == file));
    }
  }
};

}  // namespace

TEST_CASE("older chunk indexes are stored against newer ones, take less room and read back",
          "[node][store_files]") {
  IndexStore s;
  for (std::uint64_t v = 1; v <= 20; ++v) s.put(v, index_of(v));
  s.check_all();
  const std::size_t whole = s.stored_size(20);
  CHECK(whole >= 400 * 52 * 9 / 10);  // random entries: about their own size
  for (std::uint64_t v = 1; v < 20; ++v) {
    INFO("version " << v);
    if (v == 16) {
      CHECK(s.stored_size(v) >= whole * 9 / 10);  // every 16th version stays whole
    } else {
      CHECK(s.stored_size(v) < whole / 3);
    }
  }
}

TEST_CASE("replacing or dropping the index others are stored against keeps them readable",
          "[node][store_files]") {
  IndexStore s;
  for (std::uint64_t v = 1; v <= 5; ++v) s.put(v, index_of(v));
  // Version 5 comes again with another index (rebuilt from a patch, without pack places).
  Bytes other = index_of(5);
  other[0] ^= 0xFF;
  s.put(5, other);
  s.check_all();
  // gc drops version 5: 4 is stored whole first.
  REQUIRE(s.store
              ->update([&](storage::WriteTxn& txn) -> Status {
                OUTPOST_RETURN_IF_ERROR(store_whole_against(txn, kBundle, s.held, 5));
                return txn.del(Table::kIndexes, ByteView(storage::version_key(kBundle, 5)));
              })
              .ok());
  s.files.erase(5);
  s.check_all();
  CHECK(s.stored_size(4) >= 400 * 52 * 9 / 10);
}

TEST_CASE("a stored index whose newer version is gone or not newer is named damaged",
          "[node][store_files]") {
  IndexStore s;
  for (std::uint64_t v = 1; v <= 3; ++v) s.put(v, index_of(v));
  REQUIRE(s.stored_size(2) < s.stored_size(3));
  // Deleted without store_whole_against (a store copied while a gc wrote).
  REQUIRE(s.store
              ->update([&](storage::WriteTxn& txn) {
                return txn.del(Table::kIndexes, ByteView(storage::version_key(kBundle, 3)));
              })
              .ok());
  auto gone = s.get(2);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code() == Code::kCorruption);
  CHECK_THAT(gone.error().message(), Catch::Contains("verify --repair"));
  // A value naming an older version as its base: refused, not followed round in a loop.
  REQUIRE(s.store
              ->update([&](storage::WriteTxn& txn) {
                Bytes loop{'O', 'P', 'X', 'D'};
                put_u64le(loop, 1);
                loop.resize(40, 0);
                return txn.put(Table::kIndexes, ByteView(storage::version_key(kBundle, 2)),
                               ByteView(loop));
              })
              .ok());
  auto looped = s.get(2);
  REQUIRE_FALSE(looped.ok());
  CHECK(looped.error().code() == Code::kCorruption);
  // Version 1 was stored against 2: it is now unreadable too, and says so.
  auto first = s.get(1);
  REQUIRE_FALSE(first.ok());
  CHECK(first.error().code() == Code::kCorruption);
}

TEST_CASE("a damaged index is replaced by a sync that brings that version again",
          "[node][store_files]") {
  IndexStore s;
  for (std::uint64_t v = 1; v <= 3; ++v) s.put(v, index_of(v));
  auto damage_3 = [&] {
    // A zstd frame that does not decode.
    REQUIRE(s.store
                ->update([&](storage::WriteTxn& txn) {
                  Bytes bad{0x28, 0xB5, 0x2F, 0xFD, 0x24, 0x10, 0x00, 0x00, 0xFF, 0xFF};
                  return txn.put(Table::kIndexes, ByteView(storage::version_key(kBundle, 3)),
                                 ByteView(bad));
                })
                .ok());
    REQUIRE_FALSE(s.get(3).ok());
    REQUIRE_FALSE(s.get(1).ok());  // stored against 2, stored against 3
  };
  // The same index again (a repair): every version reads back, the older ones through it.
  damage_3();
  s.put(3, index_of(3));
  s.check_all();
  // Another index for 3 (rebuilt from a patch): 3 reads back; 2 and 1, stored against the
  // damaged bytes, fail their checksum: an error, never a wrong index.
  damage_3();
  Bytes other = index_of(3);
  for (std::size_t k = 0; k < other.size(); k += 13) other[k] ^= 0x01;
  s.put(3, other);
  auto three = s.get(3);
  REQUIRE(three.ok());
  CHECK(bool(**three == other));
  for (std::uint64_t v : {1, 2}) {
    auto older = s.get(v);
    REQUIRE_FALSE(older.ok());
    CHECK(older.error().code() == Code::kCorruption);
  }
}

}  // namespace outpost::node
