// Regressions of the core issue, each named after the bug a real deployment hit: Ctrl-C and
// SIGTERM ignored, two syncs of one store at once, one bad bundle blocking all the others,
// reading commands failing on a read-only store, a path sync reported as "0 requests", and
// unsupported URL schemes reported as a missing repository. The real binary, a real nginx and
// the fault proxy, stores on disk.
#include <signal.h>
#include <sys/mount.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <regex>
#include <thread>

#include "fixture.h"
#include "http_common.h"
#include "support/nginx.h"

using namespace outpost::test;
namespace fs = std::filesystem;

namespace {

// A node holding version 1 through the fault proxy, then a version 2 whose new content (a
// 256 KiB file of random bytes) comes through a link paced at `rate` bytes/s.
struct SlowLink : HttpHeld {
  SlowLink() : proxy(nginx.ok() ? nginx.host_port() : "127.0.0.1:1") {}
  bool ready() {
    if (!nginx.ok()) return false;
    INFO(proxy.why());
    REQUIRE(proxy.ok());
    hold_v1(proxy.url());
    publish_v2();
    return true;
  }
  void pace(int rate) { proxy.set_rules(R"([{"rate": )" + std::to_string(rate) + "}]"); }
  std::unique_ptr<Child> start_sync() {
    return start_outpost({"sync", "--store", store(), "--retries", "2", "--backoff", "0.05"});
  }
  // Waits until the proxy has sent `bytes` more than `from`; false after 20 s.
  bool wait_for_bytes(std::uint64_t from, std::uint64_t bytes) {
    const auto start = std::chrono::steady_clock::now();
    while (proxy.bytes_to_client() < from + bytes) {
      if (seconds_since(start) > 20) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }
  FaultProxy proxy;
};

void stops_within_a_second(int sig) {
  SlowLink s;
  REQUIRE_RIG(s.nginx);
  REQUIRE(s.ready());
  s.pace(20000);  // the 256 KiB patch alone takes 13 s
  const std::uint64_t before = s.proxy.bytes_to_client();
  auto sync = s.start_sync();
  REQUIRE(s.wait_for_bytes(before, 60000));
  const auto sent = std::chrono::steady_clock::now();
  sync->signal(sig);
  const int code = sync->wait();
  const double took = seconds_since(sent);
  CHECK(took < 1.0);
  CHECK(code == 130);  // cancelled, as a shell reports Ctrl-C
  // Still version 1, whole. ("confirmed" may move: the new metadata verified before the
  // stop, and it confirms the bundles it did not change.)
  RunResult ls = s.frozen({"ls", "--json"});
  CHECK(shown(ls.out) == shown(s.ls_held));
  CHECK(s.frozen({"verify"}).exit_code == 0);

  // What arrived before the signal was kept: the rerun fetches the rest, not everything.
  const std::uint64_t first = s.proxy.bytes_to_client() - before;
  s.proxy.set_rules("[]");
  const std::uint64_t rerun_start = s.proxy.bytes_to_client();
  RunResult rerun = s.sync();
  INFO(rerun.err);
  REQUIRE(rerun.exit_code == 0);
  const std::uint64_t rerun_bytes = s.proxy.bytes_to_client() - rerun_start;
  CHECK(rerun_bytes + first / 2 < 256 * 1024 + first);
  RunResult cat = s.frozen({"cat", kResolution, "annex.bin"});
  CHECK(cat.exit_code == 0);
  CHECK(cat.out.size() == 256u << 10);
}

}  // namespace

TEST_CASE("regression: Ctrl-C stops a sync within a second and keeps what arrived",
          "[integration][core]") {
  stops_within_a_second(SIGINT);
}

TEST_CASE("regression: SIGTERM stops a sync within a second and keeps what arrived",
          "[integration][core]") {
  stops_within_a_second(SIGTERM);
}

TEST_CASE("regression: a second sync of the same store says a sync is running",
          "[integration][core]") {
  SlowLink s;
  REQUIRE_RIG(s.nginx);
  REQUIRE(s.ready());
  s.pace(50000);  // about 6 s for the new version
  const std::uint64_t before = s.proxy.bytes_to_client();
  auto first = s.start_sync();
  REQUIRE(s.wait_for_bytes(before, 20000));
  RunResult second = s.sync();
  CHECK(second.exit_code == 6);
  CHECK(one_error_line(second));
  CHECK(contains(second.err, "another sync"));
  CHECK(contains(second.err, "is running"));
  CHECK(first->wait() == 0);
  // The bytes were fetched once: the paced transfer alone.
  RunResult cat = s.frozen({"cat", kResolution, "annex.bin"});
  CHECK(cat.out.size() == 256u << 10);
  const std::uint64_t total = s.proxy.bytes_to_client() - before;
  CHECK(total < 2 * (256u << 10));
}

TEST_CASE("regression: one bundle that cannot be completed does not hold back the others",
          "[integration][core]") {
  Published p;
  REQUIRE(p.node({"subscribe", p.repo(), "--root-pubkey", p.root_hex}).exit_code == 0);
  REQUIRE(p.node({"sync"}).exit_code == 0);
  // Version 2 of the resolution, whose new objects then vanish from the repository (a mirror
  // that lost them), and version 2 of the indicator, intact.
  auto objects_before = files_ending(p.repo() + "/objects", "");
  auto packs_before = files_ending(p.repo() + "/packs", ".pack");
  HttpHeld::make_writable(p.resolution_src());
  write_all(p.resolution_src() + "/annex.bin", random_bytes(64 << 10, 75));
  REQUIRE(p.publish_resolution().exit_code == 0);
  auto lost = added(objects_before, files_ending(p.repo() + "/objects", ""));
  auto lost_packs = added(packs_before, files_ending(p.repo() + "/packs", ".pack"));
  lost.insert(lost.end(), lost_packs.begin(), lost_packs.end());
  REQUIRE(!lost.empty());
  HttpHeld::make_writable(p.indicator_src());
  HttpHeld::make_writable(p.indicator_src() + "/data.csv");
  write_text(p.indicator_src() + "/data.csv",
             read_text(p.indicator_src() + "/data.csv") + "\n# revised\n");
  REQUIRE(p.publish_indicator().exit_code == 0);
  const std::string full_copy = p.dir / "mirror";
  copy_tree(p.repo(), full_copy);
  for (const auto& f : lost) fs::remove(f);
  // The update files carry small patches: a mirror that lost the objects lost those too.
  for (const auto& f : files_ending(p.repo() + "/metadata/updates", ".upd")) fs::remove(f);

  RunResult sync = p.node({"sync"});
  INFO(sync.out << sync.err);
  CHECK(sync.exit_code == 3);  // not found, as the first failed bundle
  CHECK(one_error_line(sync));
  CHECK(contains(sync.err, kResolution));
  CHECK(contains(sync.out, std::string(kIndicator) + ": version 1 -> version 2"));
  CHECK(contains(sync.out, "1 could not be completed"));
  RunResult ls = p.node({"ls", "--json"});
  CHECK(contains(ls.out, "\"version\": 2"));  // the indicator
  RunResult text = p.node({"cat", kResolution, "annex.bin"});
  CHECK(text.exit_code != 0);  // the resolution stays at version 1, whole
  CHECK(p.node({"verify"}).exit_code == 0);

  // From a mirror that has everything, the one left completes.
  RunResult from_mirror = p.node({"sync", full_copy});
  INFO(from_mirror.err);
  CHECK(from_mirror.exit_code == 0);
  CHECK(contains(from_mirror.out, std::string(kResolution) + ": version 1 -> version 2"));
  CHECK(p.node({"cat", kResolution, "annex.bin"}).out.size() == 64u << 10);
}

TEST_CASE("regression: a path sync reports files read from disk, not requests on the wire",
          "[integration][core]") {
  Published p;
  REQUIRE(p.node({"subscribe", p.repo(), "--root-pubkey", p.root_hex}).exit_code == 0);
  RunResult sync = p.node({"sync"});
  REQUIRE(sync.exit_code == 0);
  CHECK(contains(sync.out, "read from disk in "));
  CHECK(!contains(sync.out, "in 0 requests"));
  CHECK(!contains(sync.out, "on the wire"));
}

TEST_CASE("regression: a URL scheme outpost does not speak is named as such",
          "[integration][core]") {
  Published p;
  for (const char* url : {"ftp://example.org/repo", "garbage://x"}) {
    RunResult sub = p.node({"subscribe", url, "--root-pubkey", p.root_hex});
    CHECK(sub.exit_code == 2);
    CHECK(one_error_line(sub));
    CHECK(contains(sub.err, "is not supported"));
    CHECK(!contains(sub.err, "no outpost repository"));
  }
}

TEST_CASE("regression: reading commands work on a store on a read-only file system",
          "[integration][core]") {
  Published p;
  const std::string mount = p.dir / "ro";
  SmallDisk disk(mount, "32m");
  if (!disk.mounted()) {
    if (running_in_ci()) FAIL("cannot mount a tmpfs: " << disk.why());
    WARN("SKIPPED (CI runs this test as root): " << disk.why());
    return;
  }
  const std::string store = mount + "/store";
  auto at = [&](std::vector<std::string> args) {
    args.push_back("--store");
    args.push_back(store);
    return run_outpost(args);
  };
  REQUIRE(at({"subscribe", p.repo(), "--root-pubkey", p.root_hex}).exit_code == 0);
  REQUIRE(at({"sync"}).exit_code == 0);
  // mount(2) itself: a minimal system may have no mount(8).
  REQUIRE(::mount("tmpfs", mount.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, "size=32m") == 0);
  CHECK(at({"ls"}).exit_code == 0);
  CHECK(at({"status"}).exit_code == 0);
  CHECK(at({"show", kResolution}).exit_code == 0);
  CHECK(at({"verify"}).exit_code == 0);
  RunResult cat = at({"cat", kResolution, kResolutionText});
  CHECK(cat.exit_code == 0);
  CHECK(cat.out == read_text(p.resolution_src() + "/" + kResolutionText));
  CHECK(at({"checkout", kResolution, p.dir / "out"}).exit_code == 0);
  RunResult sync = at({"sync"});
  CHECK(sync.exit_code != 0);
  CHECK(one_error_line(sync));
  (void)::mount("tmpfs", mount.c_str(), "tmpfs", MS_REMOUNT, "size=32m");
}
