// export and import (outpost/node/usb.h) through the fault file system and a fake clock
// (issue 9): a stick that fills up or is pulled mid-export leaves the older pack whole and
// importable; a stick pulled mid-import leaves the store as before and the next import
// completes; a pack whose timestamp expired is accepted when its snapshot is newer.
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "integration/usb_fixture.h"
#include "outpost/node/node.h"
#include "outpost/node/usb.h"
#include "outpost/sync/pack_source.h"
#include "support/fake_clock.h"
#include "support/fault_fs.h"

namespace outpost::test {
namespace {

namespace fs = std::filesystem;
constexpr const char* kRes = "un/ga/A-RES-75-202";

std::unique_ptr<node::Node> open_node(const std::string& dir, Clock* clock = nullptr) {
  auto n = node::Node::open(node::NodeOptions{
      .dir = dir, .create = true, .read_only = false, .clock = clock, .fs = nullptr});
  INFO((n.ok() ? "" : n.error().message()));
  REQUIRE(n.ok());
  return std::move(*n);
}

// The pack on a stick is whole: its index names volumes that are all there and all intact.
void check_whole(const std::string& folder, const Bytes& index_bytes) {
  auto indexes = sync::find_stick_indexes(folder);
  REQUIRE(indexes.ok());
  REQUIRE(indexes->size() == 1);
  CHECK(read_all(indexes->front()) == index_bytes);
  auto pack = sync::PackSource::open(indexes->front());
  REQUIRE(pack.ok());
  CHECK((*pack)->problems().empty());
  for (const auto& e : fs::directory_iterator(folder)) {
    CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
  }
}

// A new version of the resolution with a new annex file: many new chunks.
void publish_bigger(Sites& s, std::uint64_t seed) {
  write_all(s.resolution_src() + "/annex/more.bin", random_bytes(300 << 10, seed));
  RunResult pub = s.publish_resolution();
  INFO(pub.err);
  REQUIRE(pub.exit_code == 0);
  s.must_at(s.hq(), {"sync"});
}

TEST_CASE("a stick that fills up mid-export keeps the older pack whole and importable", "[usb]") {
  Sites s;
  const std::string stick = s.stick();
  s.must_at(s.hq(), {"export", "--to", stick, "--volume-size", "128k"});
  const std::string folder = s.pack_folder();
  const Bytes old_index = read_all(sync::find_stick_indexes(folder)->front());
  publish_bigger(s, 11);

  auto hq = open_node(s.hq());
  bool completed = false;
  for (std::uint64_t limit : {0ull, 100ull, 4000ull, 70000ull, 150000ull, 300000ull, 500000ull}) {
    INFO("space for " << limit << " bytes");
    FaultFileSystem ffs;
    ffs.fail_writes_after(limit);
    node::ExportOptions o;
    o.to = stick;
    o.fs = &ffs;
    o.volume_bytes = 128 << 10;
    auto r = node::export_pack(*hq, o);
    if (r.ok()) {
      completed = true;
      break;
    }
    CHECK(r.error().IsResourceExhausted());
    check_whole(folder, old_index);
  }
  // The old pack imports whole: the office gets the version it holds.
  s.must_at(s.office(), {"import", stick, "--root-pubkey", s.root_hex});
  CHECK(s.must_at(s.office(), {"verify"}).out.find("all good") != std::string::npos);
  CHECK_FALSE(completed);  // every limit is below the new pack's size
}

TEST_CASE("a stick pulled mid-export keeps the older pack whole, and the next export completes",
          "[usb]") {
  Sites s;
  const std::string stick = s.stick();
  s.must_at(s.hq(), {"export", "--to", stick, "--volume-size", "128k"});
  const Bytes old_index = read_all(sync::find_stick_indexes(s.pack_folder())->front());
  publish_bigger(s, 12);
  auto hq = open_node(s.hq());
  for (int pull_at : {1, 5, 20, 60}) {
    INFO("pulled at progress call " << pull_at);
    FaultFileSystem ffs;
    int calls = 0;
    node::ExportOptions o;
    o.to = stick;
    o.fs = &ffs;
    o.volume_bytes = 128 << 10;
    o.progress = [&](const node::ExportProgress&) {
      if (++calls == pull_at) ffs.remove_stick();
    };
    auto r = node::export_pack(*hq, o);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Code::kUnavailable);
    ffs.reinsert_stick();
    check_whole(s.pack_folder(), old_index);
  }
  node::ExportOptions o;
  o.to = stick;
  o.volume_bytes = 128 << 10;
  auto r = node::export_pack(*hq, o);
  REQUIRE(r.ok());
  s.must_at(s.office(), {"import", stick, "--root-pubkey", s.root_hex});
  CHECK(s.listing(s.office()) == s.listing(s.hq()));
}

TEST_CASE("a stick pulled mid-import leaves the store as before and the next import completes",
          "[usb]") {
  Sites s;
  s.must_at(s.hq(), {"export", "--to", s.stick("old")});
  s.must_at(s.office(), {"import", s.stick("old"), "--root-pubkey", s.root_hex});
  publish_bigger(s, 13);
  s.must_at(s.hq(), {"export", "--to", s.stick("new"), "--volume-size", "70k"});
  const std::string before = s.listing(s.office());
  {
    auto office = open_node(s.office());
    // Each attempt keeps the chunks it verified, so the next one has fewer to read.
    for (int pull_at : {1, 3, 3, 3}) {
      INFO("pulled at progress call " << pull_at);
      FaultFileSystem ffs;
      int calls = 0;
      node::ImportOptions o;
      o.fs = &ffs;
      o.progress = [&](const node::SyncProgress&) {
        if (++calls == pull_at) ffs.remove_stick();
      };
      auto r = node::import_pack(*office, s.stick("new"), o);
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code() == Code::kUnavailable);
    }
  }
  CHECK(s.listing(s.office()) == before);
  CHECK(s.must_at(s.office(), {"verify"}).out.find("all good") != std::string::npos);
  s.must_at(s.office(), {"import", s.stick("new")});
  CHECK(s.listing(s.office()) == s.listing(s.hq()));
}

TEST_CASE(
    "a pack whose timestamp expired is accepted when its snapshot is newer, and a link is not",
    "[usb]") {
  Sites s;
  s.must_at(s.hq(), {"export", "--to", s.stick("old")});
  FakeClock clock;
  {
    auto office = open_node(s.office(), &clock);
    node::ImportOptions o;
    o.root_pubkey = crypto::PublicKey::from_hex(s.root_hex).value();
    auto r = node::import_pack(*office, s.stick("old"), o);
    INFO((r.ok() ? "" : r.error().message()));
    REQUIRE(r.ok());
  }
  s.publish_v2();
  s.must_at(s.hq(), {"sync"});
  s.must_at(s.hq(), {"export", "--to", s.stick("new")});
  // Ten days later the office still has no link; the pack's timestamp (7 days) has expired,
  // its snapshot (30 days) has not.
  clock.advance(10 * 86400);
  auto office = open_node(s.office(), &clock);
  auto r = node::import_pack(*office, s.stick("new"), {});
  INFO((r.ok() ? "" : r.error().message()));
  REQUIRE(r.ok());
  REQUIRE(r->repos.size() == 1);
  CHECK(r->repos[0].expired_timestamp);
  CHECK(r->repos[0].complete());
  CHECK(r->repos[0].sync.updated.size() == 1);
  CHECK(r->repos[0].confirmed_as_of < clock.now() - 9 * 86400);
  auto list = office->list();
  REQUIRE(list.ok());
  for (const auto& b : *list) {
    if (b.name == kRes) CHECK(b.confirmed == r->repos[0].confirmed_as_of);
  }
  // The same expired metadata from the repository itself (a link) is a freeze: refused.
  auto synced = office->sync(s.repo());
  REQUIRE_FALSE(synced.ok());
  CHECK(synced.error().IsVerificationFailed());
  // A new site that trusts the repository from the same stick, given the root key.
  auto site = open_node(s.site(), &clock);
  node::ImportOptions with_key;
  with_key.root_pubkey = crypto::PublicKey::from_hex(s.root_hex).value();
  auto fresh = node::import_pack(*site, s.stick("new"), with_key);
  INFO((fresh.ok() ? "" : fresh.error().message()));
  REQUIRE(fresh.ok());
  CHECK(fresh->repos.at(0).complete());
  CHECK(fresh->repos.at(0).sync.updated.size() == 2);
}

}  // namespace
}  // namespace outpost::test
