// Helpers shared by the storage tests (not a test file itself: the glob takes *_test.cc).
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "outpost/base/bytes.h"
#include "outpost/storage/store.h"

namespace outpost::storage::testing {

inline std::unique_ptr<Store> open_or_die(StoreOptions options) {
  auto r = Store::open(options);
  INFO((r.ok() ? std::string() : r.error().message()));
  REQUIRE(r.ok());
  return std::move(r).value();
}

inline std::unique_ptr<Store> create_store(const std::string& dir,
                                           std::uint64_t initial = 64u << 20,
                                           std::uint64_t max = 1ull << 30) {
  return open_or_die(
      {.dir = dir, .create = true, .initial_map_bytes = initial, .max_map_bytes = max});
}

inline Bytes u64_value(std::uint64_t v) {
  Bytes b;
  put_u64le(b, v);
  return b;
}

inline std::uint64_t as_u64(const Bytes& b) {
  REQUIRE(b.size() == 8);
  return get_u64le(b.data());
}

// Reads a value through a fresh read transaction: nullopt when absent; fails the test on error.
inline std::optional<Bytes> get_now(Store& store, Table table, std::string_view key) {
  auto txn = store.read();
  REQUIRE(txn.ok());
  auto v = txn->get(table, as_bytes(key));
  INFO((v.ok() ? std::string() : v.error().message()));
  REQUIRE(v.ok());
  return *v;
}

}  // namespace outpost::storage::testing
