// A sync killed with SIGKILL at any moment (power cut, OOM killer, a user's kill -9) leaves a
// store that opens, verifies and shows either the old state or the complete new version,
// never a half-updated bundle; the next sync picks up and completes.
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "fixture.h"

using namespace outpost::test;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE(
    "a sync killed at any point leaves a store that verifies and shows nothing or the "
    "complete version",
    "[integration][kill]") {
  Published p;
  REQUIRE(p.frozen({"subscribe", p.repo(), "--root-pubkey", p.root_hex}).exit_code == 0);
  REQUIRE(p.frozen({"sync"}).exit_code == 0);
  RunResult ls_before = p.frozen({"ls", "--json"});
  REQUIRE(ls_before.exit_code == 0);

  // About 24 MB that zstd cannot shrink, in six files: 3,000 chunks, many batches to die
  // between (40 MB took a minute of the sanitizer suite for no more kill points).
  const std::string src = p.dir / "src/big";
  make_dirs(src);
  constexpr int kFiles = 6;
  constexpr std::size_t kFileBytes = 4u << 20;
  for (int i = 0; i < kFiles; ++i) {
    write_all(src + "/part-" + std::to_string(i) + ".bin",
              random_bytes(kFileBytes, static_cast<std::uint64_t>(7000 + i)));
  }
  // The whole content at level 6: random bytes come out the same size, 4 s sooner than at 19.
  RunResult pub = p.outpost({"publish", p.repo(), "--key", p.keys() + "/un.key", "--keys", p.keys(),
                             "--bundle", "un/ga/big-annex", "--patch-level", "6", src});
  INFO(pub.err);
  REQUIRE(pub.exit_code == 0);

  // The store after a kill: it opens, verifies, and shows the old state or the whole new
  // version, never part of it.
  auto check_store = [&](const std::string& store) {
    RunResult ls = run_outpost({"ls", "--json", "--store", store});
    INFO(ls.err);
    REQUIRE(ls.exit_code == 0);
    if (contains(ls.out, "un/ga/big-annex")) {
      CHECK(contains(ls.out, "\"files\": " + std::to_string(kFiles)));
      CHECK(contains(ls.out, "\"bytes\": " + std::to_string(kFiles * kFileBytes)));
    } else {
      CHECK(shown(ls.out) == shown(ls_before.out));
    }
    RunResult verify = run_outpost({"verify", "--store", store});
    INFO(verify.out << verify.err);
    CHECK(verify.exit_code == 0);
    return contains(ls.out, "un/ga/big-annex");
  };
  // Starts a sync of store and kills it after delay_ms; true when it finished first.
  auto killed_sync = [&](const std::string& store, int delay_ms) {
    auto child = start_outpost({"sync", "--store", store});
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    child->signal(SIGKILL);
    const int code = child->wait();
    CHECK((code == 128 + SIGKILL || code == 0));
    return code == 0;
  };

  // 1. Killed at several points of a sync from the same starting store.
  int finished = 0;
  for (int delay_ms : {5, 20, 50, 100, 200, 400, 700}) {
    INFO("sync killed after " << delay_ms << " ms");
    const std::string store = p.dir / ("store-" + std::to_string(delay_ms));
    copy_tree(p.store(), store);
    if (killed_sync(store, delay_ms)) ++finished;
    check_store(store);
  }
  INFO(finished << " of 7 syncs finished before their kill");

  // 2. Killed again and again on one store: each run keeps what it verified, so the next
  //    starts further on, and the store is sound after every kill.
  //    The delay grows by 30 % a run (150 ms, then up to 30 s), so even a slow or loaded
  //    machine (a sanitizer build beside other builds) gets there.
  int runs = 0;
  bool complete = false;
  double delay_ms = 150;
  while (!complete && runs < 30) {
    ++runs;
    INFO("kill number " << runs << ", after " << static_cast<int>(delay_ms) << " ms");
    killed_sync(p.store(), static_cast<int>(delay_ms));
    complete = check_store(p.store());
    delay_ms = std::min(delay_ms * 1.3, 30000.0);
  }
  RunResult sync = p.frozen({"sync", "--json"});
  INFO(sync.err);
  REQUIRE(sync.exit_code == 0);
  CHECK(complete);
  RunResult verify = p.frozen({"verify"});
  INFO(verify.out << verify.err);
  CHECK(verify.exit_code == 0);
  for (int i = 0; i < kFiles; ++i) {
    const std::string name = "part-" + std::to_string(i) + ".bin";
    RunResult cat = p.frozen({"cat", "un/ga/big-annex", name});
    REQUIRE(cat.exit_code == 0);
    CHECK(cat.out == read_text(src + "/" + name));
  }
  RunResult again = p.frozen({"sync", "--json"});
  CHECK(contains(again.out, "\"unchanged\": true"));
}
