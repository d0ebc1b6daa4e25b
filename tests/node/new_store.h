// A new, empty store in a folder of its own, for the node module's unit tests.
#pragma once

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "outpost/storage/store.h"

namespace outpost::node::test_store {

inline std::unique_ptr<storage::Store> open_new(const std::string& dir) {
  storage::StoreOptions o;
  o.dir = dir;
  o.create = true;
  auto s = storage::Store::open(o);
  REQUIRE(s.ok());
  return std::move(*s);
}

}  // namespace outpost::node::test_store
