// Crash consistency (issue 12, point 1; docs/RELIABILITY.md): SIGKILL of `sync`, `publish`,
// `gc`, `import` and `export` at random points, chosen by time and by bytes the process has
// read and written. After each kill the store opens, `verify` passes, every bundle shows its
// old or its new version whole, and a rerun completes. And a reader syncing in a loop while
// a publisher publishes never sees a half-written repository.
//
// CI runs a short form; bench/reliability/crash_sweep.sh runs the long one by setting
// OUTPOST_KILLS (kills per command) and OUTPOST_PUBLISHES. OUTPOST_SEED replays the points.
#include <catch2/catch.hpp>
#include <iostream>

#include "fixture.h"
#include "reliability.h"

using namespace outpost::test;

namespace {

constexpr const char* kAnnex = "un/ga/crash-annex";
using Tree = std::map<std::string, std::string>;

// A repository (the fixture's samples plus an annex bundle of 1 MB that zstd cannot shrink,
// in four files) and a node that holds version 1 of everything. Version 2 of the annex
// changes two files and adds one.
struct CrashRig : Published {
  CrashRig() {
    make_dirs(annex_src());
    for (int i = 0; i < 4; ++i) {
      write_all(annex_src() + "/part-" + std::to_string(i) + ".bin",
                random_bytes(256u << 10, static_cast<std::uint64_t>(9100 + i)));
    }
    publish_annex();
    versions[1] = tree_files(annex_src());
    must({"subscribe", repo(), "--root-pubkey", root_hex, "--store", store()});
    must({"sync", "--store", store()});
    REQUIRE(held_versions(store())[kAnnex] == 1);
  }
  std::string annex_src() const { return dir / "src/annex"; }
  RunResult publish_annex() {
    RunResult r = outpost(publish_args());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return r;
  }
  std::vector<std::string> publish_args() const {
    // Without ladder patches (only the from-0 patch): a suffix-array patch of random bytes
    // costs seconds, and patches are not what these sweeps test.
    return {"publish", repo(),           "--key", keys() + "/un.key", "--keys", keys(), "--bundle",
            kAnnex,    "--patch-ladder", "",      annex_src()};
  }
  // Changes the source to version 2 (not published).
  void edit_to_v2() {
    write_all(annex_src() + "/part-1.bin", random_bytes(256u << 10, 9201));
    write_all(annex_src() + "/part-3.bin", random_bytes(256u << 10, 9203));
    write_all(annex_src() + "/part-4.bin", random_bytes(128u << 10, 9204));
    versions[2] = tree_files(annex_src());
  }
  // A fresh copy of a directory at `to`, replacing what is there.
  static void reset(const std::string& from, const std::string& to) {
    std::filesystem::remove_all(to);
    copy_tree(from, to);
  }

  std::map<std::int64_t, Tree> versions;
};

// One kill sweep's tally, printed for docs/RELIABILITY.md.
struct Tally {
  const char* what;
  int kills = 0, cut = 0, passed = 0;
  void report(std::uint64_t seed) const {
    std::cout << "crash sweep " << what << ": " << kills << " kills (" << cut
              << " cut the process, " << (kills - cut) << " came after it ended), " << passed
              << " passed; seed " << seed << "\n";
  }
};

// Every bundle other than the annex shows the version it showed before.
void check_others(const std::map<std::string, std::int64_t>& held,
                  const std::map<std::string, std::int64_t>& before) {
  for (const auto& [name, version] : before) {
    if (name == kAnnex) continue;
    INFO(name);
    CHECK(held.count(name) == 1);
    if (held.count(name) == 1) CHECK(held.at(name) == version);
  }
}

}  // namespace

TEST_CASE("a sync killed at random points by time and by bytes leaves a sound store (crash sweep)",
          "[integration][crash]") {
  CrashRig r;
  r.edit_to_v2();
  r.publish_annex();
  const std::string held_v1 = r.dir / "store-v1";
  copy_tree(r.store(), held_v1);
  const auto before = held_versions(held_v1);
  const std::string store = r.dir / "node";
  const auto sync = outpost_args({"sync", "--store", store});

  r.reset(held_v1, store);
  const RunCost cost = measure(sync);
  REQUIRE(cost.exit_code == 0);
  const std::uint64_t seed = sweep_seed(1201);
  std::mt19937_64 rng(seed);
  Tally t{"sync"};
  const int runs = sweep_runs("OUTPOST_KILLS", 8);
  for (int i = 0; i < runs; ++i) {
    const KillPoint k = random_point(rng, cost, i);
    INFO("kill " << i << " " << describe(k) << " (seed " << seed << ")");
    r.reset(held_v1, store);
    const int code = run_killed(sync, k);
    ++t.kills;
    if (code == 128 + SIGKILL) ++t.cut;
    CHECK((code == 0 || code == 128 + SIGKILL));
    check_others(check_store_sound(store), before);
    check_bundle_whole(store, kAnnex, r.versions);
    RunResult again = run_outpost({"sync", "--store", store});
    INFO("rerun: " << again.err);
    CHECK(again.exit_code == 0);
    const bool ok = again.exit_code == 0 && check_bundle_whole(store, kAnnex, r.versions) == 2;
    CHECK(ok);
    if (ok && (code == 0 || code == 128 + SIGKILL)) ++t.passed;
  }
  t.report(seed);
  CHECK(t.passed == t.kills);
}

TEST_CASE(
    "a publish killed at random points leaves a repository a node syncs old or new, and a "
    "rerun completes (crash sweep)",
    "[integration][crash]") {
  CrashRig r;
  r.edit_to_v2();
  const std::string repo_v1 = r.dir / "repo-v1";
  copy_tree(r.repo(), repo_v1);
  const std::string held_v1 = r.dir / "store-v1";
  copy_tree(r.store(), held_v1);
  const auto before = held_versions(held_v1);
  const std::string store = r.dir / "node";
  const auto publish = outpost_args(r.publish_args());

  const RunCost cost = measure(publish);
  REQUIRE(cost.exit_code == 0);
  const std::uint64_t seed = sweep_seed(1202);
  std::mt19937_64 rng(seed);
  Tally t{"publish"};
  const int runs = sweep_runs("OUTPOST_KILLS", 6);
  for (int i = 0; i < runs; ++i) {
    const KillPoint k = random_point(rng, cost, i);
    INFO("kill " << i << " " << describe(k) << " (seed " << seed << ")");
    r.reset(repo_v1, r.repo());
    const int code = run_killed(publish, k);
    ++t.kills;
    if (code == 128 + SIGKILL) ++t.cut;
    CHECK((code == 0 || code == 128 + SIGKILL));
    // A node syncing the repository as the kill left it: version 1 or 2, whole.
    r.reset(held_v1, store);
    RunResult s1 = run_outpost({"sync", "--store", store});
    INFO("sync of the killed repository: " << s1.err);
    CHECK(s1.exit_code == 0);
    check_others(check_store_sound(store), before);
    check_bundle_whole(store, kAnnex, r.versions);
    // The publisher reruns; the node then gets version 2.
    RunResult again = r.outpost(r.publish_args());
    INFO("rerun: " << again.err);
    CHECK(again.exit_code == 0);
    RunResult s2 = run_outpost({"sync", "--store", store});
    INFO("sync after the rerun: " << s2.err);
    CHECK(s2.exit_code == 0);
    const bool ok = again.exit_code == 0 && s1.exit_code == 0 && s2.exit_code == 0 &&
                    check_bundle_whole(store, kAnnex, r.versions) == 2;
    CHECK(ok);
    if (ok && (code == 0 || code == 128 + SIGKILL)) ++t.passed;
  }
  t.report(seed);
  CHECK(t.passed == t.kills);
}

TEST_CASE(
    "a gc killed at random points leaves a store that verifies and shows the same (crash sweep)",
    "[integration][crash]") {
  CrashRig r;
  r.edit_to_v2();
  r.publish_annex();
  r.must({"sync", "--store", r.store()});
  // Version 3: what gc then collects is version 1's and 2's chunks.
  write_all(r.annex_src() + "/part-0.bin", random_bytes(256u << 10, 9300));
  r.versions[3] = tree_files(r.annex_src());
  r.publish_annex();
  r.must({"sync", "--store", r.store()});
  const std::string held = r.dir / "store-held";
  copy_tree(r.store(), held);
  const auto before = held_versions(held);
  REQUIRE(before.at(kAnnex) == 3);
  const std::string store = r.dir / "node";
  const auto gc = outpost_args({"gc", "--retain", "1", "--store", store});

  r.reset(held, store);
  const RunCost cost = measure(gc);
  REQUIRE(cost.exit_code == 0);
  const std::uint64_t seed = sweep_seed(1203);
  std::mt19937_64 rng(seed);
  Tally t{"gc"};
  const int runs = sweep_runs("OUTPOST_KILLS", 4);
  for (int i = 0; i < runs; ++i) {
    const KillPoint k = random_point(rng, cost, i);
    INFO("kill " << i << " " << describe(k) << " (seed " << seed << ")");
    r.reset(held, store);
    const int code = run_killed(gc, k);
    ++t.kills;
    if (code == 128 + SIGKILL) ++t.cut;
    CHECK((code == 0 || code == 128 + SIGKILL));
    const auto now = check_store_sound(store);
    CHECK(now == before);
    CHECK(check_bundle_whole(store, kAnnex, r.versions) == 3);
    RunResult again = run_outpost({"gc", "--retain", "1", "--store", store});
    INFO("rerun: " << again.err);
    CHECK(again.exit_code == 0);
    RunResult verify = run_outpost({"verify", "--store", store});
    CHECK(verify.exit_code == 0);
    const bool ok = again.exit_code == 0 && verify.exit_code == 0 && now == before &&
                    (code == 0 || code == 128 + SIGKILL);
    if (ok) ++t.passed;
  }
  t.report(seed);
  CHECK(t.passed == t.kills);
}

TEST_CASE(
    "an import killed at random points leaves a store that verifies, old or new, and a rerun "
    "completes (crash sweep)",
    "[integration][crash]") {
  CrashRig r;
  const std::string held_v1 = r.dir / "store-v1";
  copy_tree(r.store(), held_v1);
  const auto before = held_versions(held_v1);
  r.edit_to_v2();
  r.publish_annex();
  r.must({"sync", "--store", r.store()});
  const std::string stick = r.dir / "stick";
  make_dirs(stick);
  r.must({"export", "--to", stick, "--store", r.store()});
  const std::string store = r.dir / "node";
  const auto import = outpost_args({"import", stick, "--store", store});

  r.reset(held_v1, store);
  const RunCost cost = measure(import);
  REQUIRE(cost.exit_code == 0);
  const std::uint64_t seed = sweep_seed(1204);
  std::mt19937_64 rng(seed);
  Tally t{"import"};
  const int runs = sweep_runs("OUTPOST_KILLS", 6);
  for (int i = 0; i < runs; ++i) {
    const KillPoint k = random_point(rng, cost, i);
    INFO("kill " << i << " " << describe(k) << " (seed " << seed << ")");
    r.reset(held_v1, store);
    const int code = run_killed(import, k);
    ++t.kills;
    if (code == 128 + SIGKILL) ++t.cut;
    CHECK((code == 0 || code == 128 + SIGKILL));
    check_others(check_store_sound(store), before);
    check_bundle_whole(store, kAnnex, r.versions);
    RunResult again = run_outpost({"import", stick, "--store", store});
    INFO("rerun: " << again.err);
    CHECK(again.exit_code == 0);
    const bool ok = again.exit_code == 0 && check_bundle_whole(store, kAnnex, r.versions) == 2 &&
                    (code == 0 || code == 128 + SIGKILL);
    CHECK(ok);
    if (ok) ++t.passed;
  }
  t.report(seed);
  CHECK(t.passed == t.kills);
}

TEST_CASE(
    "an export killed at random points leaves the store as it was and a stick that imports or "
    "is refused cleanly (crash sweep)",
    "[integration][crash]") {
  CrashRig r;
  const std::string held_v1 = r.dir / "store-v1";
  copy_tree(r.store(), held_v1);
  r.edit_to_v2();
  r.publish_annex();
  r.must({"sync", "--store", r.store()});
  const auto hq_before = held_versions(r.store());
  const std::string stick = r.dir / "stick";
  const std::string site = r.dir / "site";
  const auto export_args = outpost_args({"export", "--to", stick, "--store", r.store()});

  make_dirs(stick);
  const RunCost cost = measure(export_args);
  REQUIRE(cost.exit_code == 0);
  const std::uint64_t seed = sweep_seed(1205);
  std::mt19937_64 rng(seed);
  Tally t{"export"};
  const int runs = sweep_runs("OUTPOST_KILLS", 4);
  for (int i = 0; i < runs; ++i) {
    const KillPoint k = random_point(rng, cost, i);
    INFO("kill " << i << " " << describe(k) << " (seed " << seed << ")");
    // Every other kill overwrites a complete earlier pack: it must stay whole until the new
    // one is.
    std::filesystem::remove_all(stick);
    make_dirs(stick);
    if (i % 2 == 1) r.must({"export", "--to", stick, "--store", r.store()});
    const int code = run_killed(export_args, k);
    ++t.kills;
    if (code == 128 + SIGKILL) ++t.cut;
    CHECK((code == 0 || code == 128 + SIGKILL));
    // export only reads: the store is as it was.
    CHECK(check_store_sound(r.store()) == hq_before);
    // What the kill left on the stick imports whole, or is refused in one line.
    r.reset(held_v1, site);
    RunResult imp = run_outpost({"import", stick, "--store", site});
    INFO("import of the killed export: exit " << imp.exit_code << ": " << imp.err);
    if (imp.exit_code != 0) check_refused(imp);
    check_store_sound(site);
    check_bundle_whole(site, kAnnex, r.versions);
    // A rerun completes, and its pack brings version 2.
    RunResult again = run_outpost({"export", "--to", stick, "--store", r.store()});
    INFO("rerun: " << again.err);
    CHECK(again.exit_code == 0);
    RunResult imp2 = run_outpost({"import", stick, "--store", site});
    INFO("import of the rerun's pack: " << imp2.err);
    CHECK(imp2.exit_code == 0);
    const bool ok = again.exit_code == 0 && imp2.exit_code == 0 &&
                    check_bundle_whole(site, kAnnex, r.versions) == 2 &&
                    (code == 0 || code == 128 + SIGKILL) &&
                    (imp.exit_code == 0 || one_error_line(imp));
    CHECK(ok);
    if (ok) ++t.passed;
  }
  t.report(seed);
  CHECK(t.passed == t.kills);
}

TEST_CASE("a reader syncing in a loop during publishes never sees a half-written repository",
          "[integration][crash]") {
  CrashRig r;
  const int publishes = sweep_runs("OUTPOST_PUBLISHES", 3);
  // The publisher: a shell loop that changes one file and publishes, `publishes` times. Each
  // version N (from 2) has counter.txt = "publish N", beside the unchanged 1 MB.
  const std::string script = "set -e; for i in $(seq 2 " + std::to_string(publishes + 1) +
                             "); do echo \"publish $i\" > '" + r.annex_src() + "/counter.txt'; '" +
                             OUTPOST_BINARY + "' publish '" + r.repo() + "' --key '" + r.keys() +
                             "/un.key' --keys '" + r.keys() + "' --bundle " + kAnnex +
                             " --patch-ladder '' '" + r.annex_src() +
                             "' >/dev/null 2>&1 || exit 1; done";
  for (int v = 2; v <= publishes + 1; ++v) {
    Tree tree = r.versions[1];
    tree["counter.txt"] = "publish " + std::to_string(v) + "\n";
    r.versions[v] = tree;
  }
  Child publisher({"/bin/bash", "-c", script});
  int syncs = 0, failed = 0;
  std::set<std::int64_t> seen;
  while (moved_bytes(publisher.pid()) >= 0) {
    RunResult s = run_outpost({"sync", "--store", r.store()});
    ++syncs;
    INFO("sync " << syncs << " during the publishes: " << s.err);
    CHECK(s.exit_code == 0);
    if (s.exit_code != 0) ++failed;
    seen.insert(check_bundle_whole(r.store(), kAnnex, r.versions));
  }
  REQUIRE(publisher.wait() == 0);
  RunResult last = run_outpost({"sync", "--store", r.store()});
  CHECK(last.exit_code == 0);
  CHECK(check_bundle_whole(r.store(), kAnnex, r.versions) == publishes + 1);
  RunResult verify = run_outpost({"verify", "--store", r.store()});
  CHECK(verify.exit_code == 0);
  std::cout << "reader during publishes: " << publishes << " publishes, " << syncs
            << " syncs during them, " << failed << " failed, " << seen.size()
            << " distinct versions seen\n";
  CHECK(syncs >= 2);
}
