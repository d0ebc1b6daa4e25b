// Bad input, end to end through the `outpost` binary: tampered repository files, rollback,
// mix-and-match, expiry, endless data, bad names and keys, a missing or damaged store, a
// full disk. The standard for each (DESIGN.md, Command line): exactly one clear error line,
// a non-zero exit code, and the store exactly as it was — `ls --json` unchanged, held
// content still readable, `verify` passes.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>

#include "fixture.h"
#include "outpost/node/node.h"
#include "support/fake_clock.h"

using namespace outpost::test;
namespace fs = std::filesystem;

namespace {

constexpr const char* kResolution = "un/ga/A-RES-75-202";
constexpr const char* kResolutionText = "A-RES-75-202.en.md";
constexpr const char* kIndicator = "itu/ict/digital-divide-2019";

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

void make_writable(const std::string& path) {
  fs::permissions(path, fs::perms::owner_write, fs::perm_options::add);
}

// Every file of a repository with its bytes: a refused publish must leave it as it was.
std::map<std::string, outpost::Bytes> repo_files(const std::string& repo) {
  std::map<std::string, outpost::Bytes> out;
  for (const auto& e : fs::recursive_directory_iterator(repo)) {
    if (e.is_regular_file()) out[e.path().string()] = read_all(e.path().string());
  }
  return out;
}

// A node that subscribed to the fixture's repository and synced version 1 of both samples,
// with what it showed then. Node commands run with the clock frozen (Published::frozen), so
// `ls --json` output compares equal unless something really changed.
struct Held : Published {
  Held() {
    RunResult sub = frozen({"subscribe", repo(), "--root-pubkey", root_hex});
    INFO(sub.err);
    REQUIRE(sub.exit_code == 0);
    RunResult sync = frozen({"sync"});
    INFO(sync.err);
    REQUIRE(sync.exit_code == 0);
    text_v1 = read_text(resolution_src() + "/" + kResolutionText);
    csv_v1 = read_text(indicator_src() + "/data.csv");
    RunResult ls = frozen({"ls", "--json"});
    REQUIRE(ls.exit_code == 0);
    REQUIRE(contains(ls.out, "\"version\": 1"));
    ls_held = ls.out;
    text_held = text_v1;
    data_held = store_snapshot(store());
  }

  // Publishes version 2 of the resolution: an edited text and a new file of 256 KiB of random
  // bytes, so the release brings a new pack of many chunks.
  void publish_v2() {
    const std::string text = resolution_src() + "/" + kResolutionText;
    make_writable(resolution_src());
    make_writable(text);
    write_text(text, read_text(text) + "\nCorrigendum: paragraph 3 now reads ...\n");
    write_all(resolution_src() + "/annex.bin", random_bytes(256 << 10, 75202));
    RunResult pub = publish_resolution();
    INFO(pub.err);
    REQUIRE(pub.exit_code == 0);
    file_by_file();
  }

  // Removes the shortcuts a sync takes (metadata update files, patches), so the node fetches
  // every metadata file, the chunk index and the chunks one by one: the tests below damage
  // those files. Damaged shortcuts have tests of their own.
  void file_by_file() {
    std::filesystem::remove_all(repo() + "/metadata/updates");
    for (const auto& f : files_ending(repo() + "/objects", ".patch")) std::filesystem::remove(f);
    for (const auto& f : files_ending(repo() + "/targets", ".manifest.json.zst")) {
      std::filesystem::remove(f);
    }
  }

  // After a sync of version 2 succeeded: what the node shows now is the new baseline.
  void accept_v2() {
    RunResult sync = frozen({"sync"});
    INFO(sync.err);
    REQUIRE(sync.exit_code == 0);
    RunResult ls = frozen({"ls", "--json"});
    REQUIRE(ls.exit_code == 0);
    REQUIRE(contains(ls.out, "\"version\": 2"));
    ls_held = ls.out;
    text_held = read_text(resolution_src() + "/" + kResolutionText);
    data_held = store_snapshot(store());
  }

  // The store shows exactly what it showed before, its content reads back byte for byte and
  // verify passes.
  void check_unchanged(const std::vector<std::string>& env = {}) {
    const std::vector<std::string>& e = env;
    RunResult ls = node({"ls", "--json"}, e);
    INFO(ls.err);
    CHECK(ls.exit_code == 0);
    CHECK(shown(ls.out) == shown(ls_held));
    RunResult cat = node({"cat", kResolution, kResolutionText}, e);
    INFO(cat.err);
    CHECK(cat.exit_code == 0);
    CHECK(cat.out == text_held);
    RunResult csv = node({"cat", kIndicator, "data.csv"}, e);
    CHECK(csv.exit_code == 0);
    CHECK(csv.out == csv_v1);
    RunResult verify = node({"verify"}, e);
    INFO(verify.out << verify.err);
    CHECK(verify.exit_code == 0);
  }

  // For refusals that come before anything is trusted (metadata checks): not one byte of the
  // store's data file changed.
  void check_untouched() {
    INFO("the refused command wrote to the store");
    CHECK(store_snapshot(store()) == data_held);
  }

  // A sync at today's (frozen) time still works after a refusal in the future: the refused
  // sync did not move the node's clock floor.
  void check_today_sync_works() {
    RunResult today = frozen({"sync", "--json"});
    INFO(today.err);
    CHECK(today.exit_code == 0);
    CHECK(contains(today.out, "\"unchanged\": true"));
  }

  std::string newest_manifest_after(const std::vector<std::string>& before) {
    auto fresh = added(before, files_ending(repo() + "/targets", ".manifest.json"));
    REQUIRE(fresh.size() == 1);
    return fresh.front();
  }

  std::string text_v1, csv_v1, text_held, ls_held;
  outpost::Bytes data_held;
};

}  // namespace

// ---- one byte changed ----

TEST_CASE("a pack with one byte changed inside a chunk is refused and nothing of it counts",
          "[integration][bad-input]") {
  Held h;
  auto packs_before = files_ending(h.repo() + "/packs", ".pack");
  h.publish_v2();
  auto fresh = added(packs_before, files_ending(h.repo() + "/packs", ".pack"));
  REQUIRE(fresh.size() == 1);
  const std::uint64_t offset = middle_of_a_chunk(fresh.front());
  flip_byte(fresh.front(), offset);

  RunResult sync = h.frozen({"sync"});
  check_refused(sync, 4);
  CHECK(contains(sync.err, "chunk"));
  CHECK(contains(sync.err, "mirror"));
  h.check_unchanged();

  // The same byte put back: the release syncs completely.
  flip_byte(fresh.front(), offset);
  h.accept_v2();
  h.check_unchanged();
}

TEST_CASE("a manifest with one byte changed is refused by its signed hash",
          "[integration][bad-input]") {
  Held h;
  auto before = files_ending(h.repo() + "/targets", ".manifest.json");
  h.publish_v2();
  change_time_digit(h.newest_manifest_after(before), "published");
  RunResult sync = h.frozen({"sync"});
  check_refused(sync, 4);
  CHECK(contains(sync.err, "manifest"));
  CHECK(contains(sync.err, "signed length and hash"));
  h.check_unchanged();
}

TEST_CASE("a snapshot with one byte changed in its signed part is refused",
          "[integration][bad-input]") {
  Held h;
  h.publish_v2();
  change_time_digit(newest_metadata(h.repo(), "snapshot.json").first);
  RunResult sync = h.frozen({"sync"});
  check_refused(sync, 4);
  CHECK(contains(sync.err, "snapshot"));
  h.check_untouched();
  h.check_unchanged();
}

TEST_CASE("a timestamp with one byte changed in its signed part is refused",
          "[integration][bad-input]") {
  Held h;
  h.publish_v2();
  change_time_digit(h.repo() + "/metadata/timestamp.json");
  RunResult sync = h.frozen({"sync"});
  check_refused(sync, 4);
  CHECK(contains(sync.err, "timestamp"));
  CHECK(contains(sync.err, "signature"));
  h.check_untouched();
  h.check_unchanged();
}

TEST_CASE("a top-level targets file with one byte changed in its signed part is refused",
          "[integration][bad-input]") {
  Held h;
  // A new delegation makes a new targets version, which the node must fetch.
  std::string who = h.keygen("publisher", h.keys() + "/who.key");
  h.must({"repo", "delegate", h.repo(), "--keys", h.keys(), "--publisher-pubkey", who, "--prefix",
          "who/gho"});
  h.file_by_file();
  auto [targets, version] = newest_metadata(h.repo(), "targets.json");
  REQUIRE(version >= 2);
  change_time_digit(targets);
  RunResult sync = h.frozen({"sync"});
  check_refused(sync, 4);
  CHECK(contains(sync.err, "targets"));
  CHECK(contains(sync.err, "signature"));
  h.check_untouched();
  h.check_unchanged();
}

TEST_CASE("a delegated role file with one byte changed in its signed part is refused",
          "[integration][bad-input]") {
  Held h;
  h.publish_v2();
  change_time_digit(newest_metadata(h.repo(), "un.ga.json").first);
  RunResult sync = h.frozen({"sync"});
  check_refused(sync, 4);
  CHECK(contains(sync.err, "un.ga"));
  CHECK(contains(sync.err, "signature"));
  h.check_untouched();
  h.check_unchanged();
}

TEST_CASE("subscribing refuses a first root with one byte changed in its signed part",
          "[integration][bad-input]") {
  Published p;
  change_time_digit(p.repo() + "/metadata/1.root.json");
  RunResult sub = p.frozen({"subscribe", p.repo(), "--root-pubkey", p.root_hex});
  check_refused(sub, 4);
  CHECK(contains(sub.err, "root"));
  // Nothing was recorded: the store has no subscription and no bundles.
  RunResult status = p.frozen({"status", "--json"});
  INFO(status.err);
  CHECK(status.exit_code == 0);
  CHECK(contains(status.out, "\"repositories\": []"));
  RunResult sync = p.frozen({"sync"});
  check_refused(sync);
  CHECK(contains(sync.err, "no subscriptions"));
  RunResult ls = p.frozen({"ls", "--json"});
  CHECK(ls.exit_code == 0);
  CHECK(ls.out == "[]\n");
}

// ---- rollback, mix-and-match, freeze ----

TEST_CASE("a copy of the repository older than what the node accepted is refused (rollback)",
          "[integration][bad-input]") {
  Held h;
  const std::string old_copy = h.dir / "old-repo";
  copy_tree(h.repo(), old_copy);
  h.publish_v2();
  h.accept_v2();
  RunResult sync = h.frozen({"sync", old_copy});
  check_refused(sync, 4);
  CHECK(contains(sync.err, "rollback"));
  h.check_untouched();
  h.check_unchanged();
}

TEST_CASE(
    "a fresh timestamp naming a snapshot older than the accepted one is refused "
    "(rollback)",
    "[integration][bad-input]") {
  Held h;
  const std::string old_copy = h.dir / "old-repo";
  copy_tree(h.repo(), old_copy);
  h.publish_v2();
  h.accept_v2();
  // Re-sign the old copy's timestamp until its version passes the accepted one: validly
  // signed, newer, but naming the old snapshot.
  const int accepted = newest_metadata(h.repo(), "snapshot.json").second;
  for (int i = 0; i < 3; ++i) {
    h.must({"repo", "refresh", old_copy, "--timestamp-key", h.keys() + "/timestamp.key"});
  }
  REQUIRE(newest_metadata(old_copy, "snapshot.json").second < accepted);
  RunResult sync = h.frozen({"sync", old_copy});
  check_refused(sync, 4);
  CHECK(contains(sync.err, "snapshot"));
  CHECK(contains(sync.err, "rollback"));
  h.check_untouched();
  h.check_unchanged();
}

TEST_CASE(
    "a fresh snapshot naming a delegated role older than the accepted one is refused "
    "(rollback)",
    "[integration][bad-input]") {
  Held h;
  const std::string old_copy = h.dir / "old-repo";
  copy_tree(h.repo(), old_copy);
  h.publish_v2();
  h.accept_v2();
  // Re-sign snapshot and timestamp of the old copy until both pass the accepted versions:
  // validly signed, newer, but naming the old un.ga role (version 1 of the resolution).
  for (int i = 0; i < 3; ++i) h.must({"repo", "refresh", old_copy, "--keys", h.keys()});
  REQUIRE(newest_metadata(old_copy, "snapshot.json").second >
          newest_metadata(h.repo(), "snapshot.json").second);
  REQUIRE(newest_metadata(old_copy, "un.ga.json").second <
          newest_metadata(h.repo(), "un.ga.json").second);
  RunResult sync = h.frozen({"sync", old_copy});
  check_refused(sync, 4);
  CHECK(contains(sync.err, "un.ga"));
  CHECK(contains(sync.err, "rollback"));
  h.check_untouched();
  h.check_unchanged();
}

TEST_CASE(
    "a delegated role file of another version than the snapshot names is refused "
    "(mix-and-match)",
    "[integration][bad-input]") {
  Held h;
  h.publish_v2();
  auto [current, version] = newest_metadata(h.repo(), "un.ga.json");
  const std::string older = h.repo() + "/metadata/" + std::to_string(version - 1) + ".un.ga.json";
  REQUIRE(fs::exists(older));
  fs::copy_file(older, current, fs::copy_options::overwrite_existing);
  RunResult sync = h.frozen({"sync"});
  check_refused(sync, 4);
  CHECK(contains(sync.err, "un.ga"));
  CHECK(contains(sync.err, "version"));
  h.check_untouched();
  h.check_unchanged();
}

// A sync at a later time, through the node library with an injected clock (the binary reads
// only the system clock): what the CLI would report, and the store afterwards.
outpost::Status sync_at(const Held& h, std::int64_t when) {
  FakeClock later(when);
  auto node =
      outpost::node::Node::open(outpost::node::NodeOptions{.dir = h.store(), .clock = &later});
  REQUIRE(node.ok());
  auto synced = (*node)->sync();
  REQUIRE(!synced.ok());
  // Held content stays readable at that time: expiry blocks new metadata, never reading.
  std::string text;
  outpost::Status read = (*node)->cat(kResolution, kResolutionText, [&](outpost::ByteView b) {
    text.append(reinterpret_cast<const char*>(b.data()), b.size());
    return outpost::Status::Ok();
  });
  CHECK(read.ok());
  CHECK(text == h.text_held);
  return synced.error();
}

TEST_CASE("an expired timestamp is refused but held content stays readable",
          "[integration][bad-input]") {
  Held h;
  // Eight days on: the timestamp (7 days) has expired, the snapshot (30 days) and the other
  // roles have not, so the timestamp is what the node refuses.
  outpost::Status refused = sync_at(h, std::time(nullptr) + 8 * 86400);
  CHECK(refused.code() == outpost::Code::kVerificationFailed);
  CHECK(contains(refused.message(), "timestamp"));
  CHECK(contains(refused.message(), "expired"));
  h.check_untouched();
  h.check_unchanged();
  h.check_today_sync_works();
}

TEST_CASE("metadata all expired by 2031 is refused but held content stays readable",
          "[integration][bad-input]") {
  Held h;
  outpost::Status refused = sync_at(h, *outpost::parse_utc("2031-01-01T00:00:00Z"));
  CHECK(refused.code() == outpost::Code::kVerificationFailed);
  CHECK(contains(refused.message(), "expired"));
  h.check_untouched();
  h.check_unchanged();
  h.check_today_sync_works();
}

TEST_CASE("regression: OUTPOST_FAKE_NOW no longer moves a node's clock (a time floor lock-out)",
          "[integration][bad-input]") {
  Held h;
  // Once, this variable made the node believe 2031 and persist it as its time floor,
  // locking the store out of every update until then.
  RunResult sync = h.node({"sync"}, {"OUTPOST_FAKE_NOW=2031-01-01T00:00:00Z"});
  CHECK(sync.exit_code == 0);
  RunResult status = h.node({"status", "--json"});
  CHECK(status.exit_code == 0);
  CHECK(!contains(status.out, "2031-"));
  h.check_today_sync_works();
}

// ---- endless data ----

TEST_CASE("a timestamp longer than its size limit is refused (endless data)",
          "[integration][bad-input]") {
  Held h;
  h.publish_v2();
  const std::string ts = h.repo() + "/metadata/timestamp.json";
  write_text(ts, read_text(ts) + std::string(64 << 10, ' '));
  RunResult sync = h.frozen({"sync"});
  check_refused(sync, 4);
  CHECK(contains(sync.err, "timestamp.json"));
  CHECK(contains(sync.err, "longer than"));
  CHECK(contains(sync.err, "mirror"));
  h.check_untouched();
  h.check_unchanged();
}

TEST_CASE("a manifest longer than its signed length is refused (endless data)",
          "[integration][bad-input]") {
  Held h;
  auto before = files_ending(h.repo() + "/targets", ".manifest.json");
  h.publish_v2();
  const std::string manifest = h.newest_manifest_after(before);
  write_text(manifest, read_text(manifest) + std::string(1 << 20, ' '));
  RunResult sync = h.frozen({"sync"});
  check_refused(sync, 4);
  CHECK(contains(sync.err, "manifest"));
  CHECK(contains(sync.err, "longer than"));
  CHECK(contains(sync.err, "signed length"));
  CHECK(contains(sync.err, "mirror"));
  h.check_unchanged();
}

// ---- publishing: names and keys ----

namespace {

// publish with --bundle NAME is refused with a usage error and leaves the repository as it was.
void check_publish_refuses_name(const std::string& name) {
  Published p;
  auto before = repo_files(p.repo());
  RunResult pub = p.outpost({"publish", p.repo(), "--key", p.keys() + "/un.key", "--keys", p.keys(),
                             "--bundle", name, p.resolution_src()});
  check_refused(pub, 2);
  CHECK(contains(pub.err, "bundle name '" + name + "'"));
  CHECK(contains(pub.err, "e.g. un/ga/A-RES-75-202"));
  CHECK(repo_files(p.repo()) == before);
}

}  // namespace

TEST_CASE("publish refuses a bundle name with a '..' segment", "[integration][bad-input]") {
  check_publish_refuses_name("un/ga/../x");
}

TEST_CASE("publish refuses an absolute bundle name", "[integration][bad-input]") {
  check_publish_refuses_name("/un/ga/x");
}

TEST_CASE("publish refuses a bundle name with a backslash", "[integration][bad-input]") {
  check_publish_refuses_name("un\\ga\\x");
}

TEST_CASE("publish refuses a name not delegated to the publisher's key",
          "[integration][bad-input]") {
  Published p;
  auto before = repo_files(p.repo());
  // The ITU key signs for itu/ict only.
  RunResult pub = p.outpost({"publish", p.repo(), "--key", p.keys() + "/itu.key", "--keys",
                             p.keys(), "--bundle", "un/ga/A-RES-75-999", p.resolution_src()});
  check_refused(pub);
  CHECK(contains(pub.err, "un/ga/A-RES-75-999"));
  CHECK(contains(pub.err, "delegat"));
  CHECK(repo_files(p.repo()) == before);
}

TEST_CASE("publish refuses a publisher key file readable by others", "[integration][bad-input]") {
  Published p;
  auto before = repo_files(p.repo());
  ::chmod((p.keys() + "/un.key").c_str(), 0644);
  RunResult pub = p.publish_resolution();
  check_refused(pub);
  CHECK(contains(pub.err, "un.key"));
  CHECK(contains(pub.err, "chmod 600"));
  CHECK(repo_files(p.repo()) == before);
}

TEST_CASE("repo init refuses a root key file readable by others", "[integration][bad-input]") {
  TempDir dir;
  const std::string keys = dir / "keys";
  make_dirs(keys);
  for (const char* role : {"root", "targets", "snapshot", "timestamp"}) {
    RunResult k = run_outpost({"keygen", "--role", role, "--out", keys + "/" + role + ".key"});
    REQUIRE(k.exit_code == 0);
  }
  ::chmod((keys + "/root.key").c_str(), 0644);
  RunResult init = run_outpost({"repo", "init", dir / "repo", "--keys", keys});
  check_refused(init);
  CHECK(contains(init.err, "root.key"));
  CHECK(contains(init.err, "chmod 600"));
  CHECK(!fs::exists(dir / "repo/metadata/1.root.json"));
}

// ---- the store ----

TEST_CASE("a command on a store that does not exist says so and exits 3",
          "[integration][bad-input]") {
  RunResult ls = run_outpost({"ls", "--store", "/nonexistent/x"});
  check_refused(ls, 3);
  CHECK(contains(ls.err, "/nonexistent/x"));
  CHECK(!fs::exists("/nonexistent/x"));
}

TEST_CASE("a store whose data file is garbage gives a clear error, not a crash",
          "[integration][bad-input]") {
  Held h;
  const std::string data = h.store() + "/data.mdb";
  const auto size = fs::file_size(data);
  write_all(data, random_bytes(static_cast<std::size_t>(size), 4242));
  for (const std::vector<std::string>& args : {std::vector<std::string>{"ls", "--json"},
                                               {"cat", kResolution, kResolutionText},
                                               {"verify"},
                                               {"sync"},
                                               {"status"}}) {
    INFO("outpost " << args[0]);
    RunResult r = h.frozen(args);
    check_refused(r);
    CHECK(contains(r.err, h.store()));
  }
}

// ---- a full disk ----

namespace {}  // namespace

TEST_CASE(
    "a sync that fills the disk stops with 'disk full', changes nothing, and completes "
    "once there is room",
    "[integration][bad-input]") {
  Published p;
  SmallDisk disk(p.dir / "small", "3m");
  if (!disk.mounted()) {
    const char* ci = std::getenv("CI");
    if (ci != nullptr && std::string(ci) == "true") {
      FAIL("the disk-full test must run in CI (as root), but a tmpfs could not be mounted: "
           << disk.why());
    }
    WARN("SKIPPED: cannot mount a small tmpfs for the disk-full test (" << disk.why() << ")");
    return;
  }
  const std::string store = p.dir / "small/store";
  auto on_small = [&](std::vector<std::string> args) {
    args.push_back("--store");
    args.push_back(store);
    return run_outpost(args);
  };
  REQUIRE(on_small({"subscribe", p.repo(), "--root-pubkey", p.root_hex}).exit_code == 0);
  REQUIRE(on_small({"sync"}).exit_code == 0);
  RunResult ls_before = on_small({"ls", "--json"});
  REQUIRE(ls_before.exit_code == 0);

  // A release far larger than the disk: 8 MB that zstd cannot shrink.
  const std::string src = p.dir / "src/big";
  make_dirs(src);
  for (int i = 0; i < 4; ++i) {
    write_all(src + "/part-" + std::to_string(i) + ".bin",
              random_bytes(2u << 20, static_cast<std::uint64_t>(100 + i)));
  }
  RunResult pub = p.outpost({"publish", p.repo(), "--key", p.keys() + "/un.key", "--keys", p.keys(),
                             "--bundle", "un/ga/big-annex", src});
  INFO(pub.err);
  REQUIRE(pub.exit_code == 0);

  RunResult full = on_small({"sync"});
  check_refused(full, 5);
  CHECK(contains(full.err, "disk"));
  CHECK(contains(full.err, "full"));
  RunResult ls = on_small({"ls", "--json"});
  CHECK(ls.exit_code == 0);
  CHECK(shown(ls.out) == shown(ls_before.out));
  RunResult verify = on_small({"verify"});
  INFO(verify.out << verify.err);
  CHECK(verify.exit_code == 0);
  RunResult cat = on_small({"cat", kIndicator, "data.csv"});
  CHECK(cat.exit_code == 0);
  CHECK(cat.out == read_text(p.indicator_src() + "/data.csv"));

  REQUIRE(disk.resize("64m"));
  RunResult again = on_small({"sync"});
  INFO(again.err);
  CHECK(again.exit_code == 0);
  RunResult verify2 = on_small({"verify"});
  INFO(verify2.out << verify2.err);
  CHECK(verify2.exit_code == 0);
  RunResult part = on_small({"cat", "un/ga/big-annex", "part-3.bin"});
  CHECK(part.exit_code == 0);
  CHECK(part.out == read_text(src + "/part-3.bin"));
}
