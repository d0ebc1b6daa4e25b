// The plan: which route a node takes to a bundle's new version, from declared sizes.
#include "../../node/src/plan.h"

#include <catch2/catch.hpp>

namespace op = outpost::packaging;
using outpost::crypto::Digest;
using outpost::node::ChunkCost;
using outpost::node::HeldRoot;
using outpost::node::price_routes;
using outpost::node::RouteKind;

namespace {

Digest digest_of(std::uint8_t b) {
  Digest d{};
  d.fill(b);
  return d;
}

op::PatchRef patch(std::int64_t from, std::uint64_t length) {
  op::PatchRef p;
  p.from = from;
  p.length = length;
  if (from != 0) p.from_root = digest_of(static_cast<std::uint8_t>(from));
  return p;
}

op::Manifest target_with(std::vector<op::PatchRef> patches) {
  op::Manifest m;
  m.bundle = "un/ga/X";
  m.version = 9;
  m.patches = std::move(patches);
  m.index.length = 4000;
  return m;
}

}  // namespace

TEST_CASE("the plan takes a patch from a held version when it is the cheapest", "[sync][plan]") {
  auto m = target_with({patch(0, 250000), patch(7, 9000), patch(8, 12000)});
  std::vector<HeldRoot> held = {{7, digest_of(7)}, {8, digest_of(8)}};
  auto routes = price_routes(m, held, ChunkCost{90000, 2, false}, 5000);
  REQUIRE(routes.size() == 4);
  CHECK(routes[0].kind == RouteKind::kPatch);
  CHECK(routes[0].steps == std::vector<std::uint64_t>{7});
  CHECK(routes[0].cost == 9000 + 5000);
  CHECK(routes[1].steps == std::vector<std::uint64_t>{8});
  CHECK(routes[2].kind == RouteKind::kChunks);
  CHECK(routes[3].kind == RouteKind::kFull);
}

TEST_CASE("a patch from a version whose content differs from the one held is not a route",
          "[sync][plan]") {
  auto m = target_with({patch(0, 250000), patch(8, 100)});
  std::vector<HeldRoot> held = {{8, digest_of(99)}};  // same number, other content
  auto routes = price_routes(m, held, std::nullopt, 5000);
  REQUIRE(routes.size() == 1);
  CHECK(routes[0].kind == RouteKind::kFull);
}

TEST_CASE("requests are priced: many small ranges can lose to one larger patch", "[sync][plan]") {
  auto m = target_with({patch(0, 250000), patch(8, 30000)});
  std::vector<HeldRoot> held = {{8, digest_of(8)}};
  SECTION("few requests: the chunks win") {
    auto routes = price_routes(m, held, ChunkCost{20000, 2, false}, 5000);
    CHECK(routes[0].kind == RouteKind::kChunks);
  }
  SECTION("with a high per-request cost the patch wins") {
    auto routes = price_routes(m, held, ChunkCost{20000, 2, false}, 20000);
    CHECK(routes[0].kind == RouteKind::kPatch);
  }
}

TEST_CASE("with nothing held the whole content is the route", "[sync][plan]") {
  auto m = target_with({patch(0, 1000), patch(8, 10)});
  auto routes = price_routes(m, {}, std::nullopt, 5000);
  REQUIRE(routes.size() == 1);
  CHECK(routes[0].kind == RouteKind::kFull);
  CHECK(routes[0].bytes == 1000);
}

TEST_CASE("the chunk estimate counts the files that changed and the index", "[sync][plan]") {
  op::Manifest held;
  held.files = {{"a.csv", 1000, 0644, "text/csv"}, {"b.csv", 1000, 0644, "text/csv"}};
  op::Manifest next = held;
  next.files[1].size = 1200;
  next.content_size = 2200;
  next.index.length = 300;
  auto c = outpost::node::estimate_chunks(next, &held, 2200);
  CHECK(c.estimate);
  CHECK(c.bytes == 300 + 1200);
  auto none = outpost::node::estimate_chunks(next, nullptr, 2200);
  CHECK(none.bytes == 300 + 2200);
}
