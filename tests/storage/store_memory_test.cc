// What a long-running reader of the store (the daemon, the kiosk) keeps resident, and the
// cheap check that tells a poller whether anything was committed.
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <string>

#include "outpost/storage/store.h"
#include "support/test_support.h"

namespace outpost::storage {
namespace {

using test::TempDir;

// Resident KB of this process's mappings of the store's data file.
long resident_kb_of(const std::string& file) {
  std::FILE* f = std::fopen("/proc/self/smaps", "r");
  REQUIRE(f != nullptr);
  char line[1024];
  bool in = false;
  long kb = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    // A mapping's first line starts with its address in lower-case hex; its fields with a
    // capitalised name ("Rss:").
    if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) {
      in = std::strstr(line, file.c_str()) != nullptr;
    } else if (in && std::strncmp(line, "Rss:", 4) == 0) {
      kb += std::strtol(line + 4, nullptr, 10);
    }
  }
  std::fclose(f);
  return kb;
}

}  // namespace

TEST_CASE(
    "release_memory drops the map's resident pages, and the store reads on from the page "
    "cache",
    "[storage]") {
  TempDir tmp;
  auto store = Store::open({.dir = tmp / "s", .create = true});
  REQUIRE(store.ok());
  const std::string value(4000, 'x');
  REQUIRE((*store)
              ->update([&](WriteTxn& txn) -> Status {
                for (int i = 0; i < 2000; ++i) {
                  const std::string key = "k" + std::to_string(i);
                  OUTPOST_RETURN_IF_ERROR(txn.put(Table::kChunks, as_bytes(key), as_bytes(value)));
                }
                return Status::Ok();
              })
              .ok());
  {
    auto txn = (*store)->read();
    REQUIRE(txn.ok());
    std::size_t seen = 0;
    REQUIRE(txn->scan(Table::kChunks, {},
                      [&](ByteView, ByteView v) {
                        // Touch every byte: LMDB hands out pointers into the map.
                        for (auto b : v) seen += b == 'x' ? 1 : 0;
                        return true;
                      })
                .ok());
    CHECK(seen == 2000u * 4000u);
  }
  const std::string data = tmp / "s/data.mdb";
  const long before = resident_kb_of(data);
  CHECK(before > 4000);  // 8 MB of values read through the map
  (*store)->release_memory();
  const long after = resident_kb_of(data);
  INFO("resident before " << before << " KB, after " << after << " KB");
  CHECK(after < 256);
  // Reading again works, from the page cache.
  auto txn = (*store)->read();
  REQUIRE(txn.ok());
  auto got = txn->get(Table::kChunks, as_bytes(std::string("k1999")));
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK((*got)->size() == value.size());
}

TEST_CASE("last_commit changes with every commit and only then", "[storage]") {
  TempDir tmp;
  auto store = Store::open({.dir = tmp / "s", .create = true});
  REQUIRE(store.ok());
  auto first = (*store)->last_commit();
  REQUIRE(first.ok());
  CHECK((*store)->last_commit().value() == *first);
  {
    auto txn = (*store)->read();
    REQUIRE(txn.ok());
  }
  CHECK((*store)->last_commit().value() == *first);
  REQUIRE((*store)
              ->update([](WriteTxn& txn) {
                return txn.put(Table::kSettings, as_bytes(std::string("x")),
                               as_bytes(std::string("1")));
              })
              .ok());
  auto second = (*store)->last_commit();
  REQUIRE(second.ok());
  CHECK(*second > *first);
  // Another Store on the same directory (one environment per process) sees it too.
  auto again = Store::open({.dir = tmp / "s", .read_only = true});
  REQUIRE(again.ok());
  CHECK((*again)->last_commit().value() == *second);
}

}  // namespace outpost::storage
