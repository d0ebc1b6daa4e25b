// Bad input over HTTP (issue 3), end to end: the `outpost` binary syncing from a real nginx
// through the fault proxy (tests/support/nginx.h). The standard for each, as in
// bad_input_test: a fault the node can ride out (a reset, a truncated body, a bit flipped in
// transit) ends in a complete update; one it cannot ends in exactly one error line, the
// documented exit code, and a store exactly as it was. Never bad data, never half an update.
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <regex>

#include "fixture.h"
#include "http_common.h"
#include "outpost/node/node.h"
#include "support/fake_clock.h"

using namespace outpost::test;
namespace fs = std::filesystem;

namespace {

// A node that holds version 1, synced through a fault proxy (no faults yet) in front of nginx.
struct Proxied : HttpHeld {
  Proxied() : proxy(nginx.ok() ? nginx.host_port() : "127.0.0.1:1") {}
  // Call first in each test: the rig is up and the node holds version 1 through the proxy.
  bool ready() {
    if (!nginx.ok()) return false;
    INFO(proxy.why());
    REQUIRE(proxy.ok());
    hold_v1(proxy.url());
    return true;
  }
  FaultProxy proxy;
};

#define REQUIRE_READY(p)    \
  do {                      \
    REQUIRE_RIG((p).nginx); \
    REQUIRE((p).ready());   \
  } while (false)

}  // namespace

// ---- faults the node rides out ----

TEST_CASE("a connection reset at any point of a sync is resumed and the update completes",
          "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  p.publish_v2();
  // A fresh node for each cut (the fixture's node stays at version 1): every request of a
  // whole sync is cut once, at a point inside its headers or its body.
  const std::vector<std::pair<int, int>> cuts{{1, 40},    {2, 300},    {3, 1500}, {4, 700},
                                              {5, 20000}, {6, 100000}, {7, 5000}};
  for (const auto& [nth, after] : cuts) {
    TempDir other;
    const std::string store = other / "store";
    p.proxy.set_rules("[]");
    RunResult sub = run_outpost(
        {"subscribe", p.proxy.url(), "--root-pubkey", p.root_hex, "--store", store}, {});
    REQUIRE(sub.exit_code == 0);
    p.proxy.set_rules(R"([{"nth": )" + std::to_string(nth) + R"(, "drop_after": )" +
                      std::to_string(after) + "}]");
    RunResult sync = run_outpost(with(with({"sync", "--json", "--store", store}, kFast), {}));
    INFO("request " << nth << " cut after " << after << " bytes: " << sync.err);
    CHECK(sync.exit_code == 0);
    RunResult cat = run_outpost({"cat", kResolution, "annex.bin", "--store", store});
    const bool annex_ok = cat.out == read_text(p.resolution_src() + "/annex.bin");
    CHECK(annex_ok);
    RunResult verify = run_outpost({"verify", "--store", store});
    CHECK(verify.exit_code == 0);
  }
  // And the held node, cut in the middle of its first patch or pack request.
  p.proxy.set_rules(R"([{"match": ".patch", "nth": 1, "drop_after": 3000},
                        {"match": ".pack", "nth": 1, "drop_after": 3000}])");
  RunResult sync = p.sync();
  INFO(sync.err);
  CHECK(sync.exit_code == 0);
  p.check_updated();
}

TEST_CASE("a truncated body is resumed with a Range request where it was cut",
          "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  p.publish_v2();
  // The first patch or pack the node asks for is cut after 100000 bytes of body.
  p.proxy.set_rules(R"([{"match": ".patch", "nth": 1, "truncate": 100000},
                        {"match": ".pack", "nth": 1, "truncate": 100000}])");
  const std::size_t before = p.nginx.requests();
  RunResult sync = p.sync();
  INFO(sync.err);
  REQUIRE(sync.exit_code == 0);
  p.check_updated();
  // The next request for the same file asked for the rest: it starts 100000 bytes later.
  const auto log = p.nginx.access_log();
  const std::regex request("\"GET ([^ ?]+)[^\"]*\" \"(bytes=([0-9]+)-)?");
  std::string file;
  std::vector<std::uint64_t> starts;
  for (std::size_t i = before; i < log.size(); ++i) {
    std::smatch m;
    if (!std::regex_search(log[i], m, request)) continue;
    const std::string path = m[1];
    if (file.empty() && (contains(path, ".patch") || contains(path, ".pack"))) file = path;
    if (path == file) starts.push_back(m[3].matched ? std::stoull(m[3]) : 0);
  }
  INFO("requests for " << file);
  REQUIRE(starts.size() >= 2);
  CHECK(starts[1] == starts[0] + 100000);
}

namespace {

// A bit flipped in transit in the first response whose path holds `match`: the node refetches
// or fails cleanly, and never keeps what it got.
enum class Release { kSmallEdit, kV2, kChunks };

// A bit flipped in transit in the first response of the sync whose path holds `match`
// (counted from 1, byte `at` of the body): the node refetches or fails cleanly, and never
// keeps what it got. With whole_files, the mirror has no metadata update files, so the node
// fetches snapshot, role files and manifests one by one.
void check_flip_in_transit(const std::string& match, std::int64_t at, Release release,
                           bool whole_files = false) {
  Proxied p;
  REQUIRE_READY(p);
  if (release == Release::kSmallEdit) p.publish_small_edit();
  if (release == Release::kV2) p.publish_v2();
  if (release == Release::kChunks) p.publish_for_chunks_route();
  if (whole_files) p.drop_update_files();
  p.proxy.set_rules(R"([{"match": ")" + match + R"(", "nth": 1, "flip": )" + std::to_string(at) +
                    "}]");
  const std::size_t before = p.nginx.requests();
  RunResult sync = p.sync();
  p.check_before_or_updated(sync);
  // The node asked for such a file in this sync (so the flip happened).
  const auto log = p.nginx.access_log();
  bool asked = false;
  for (std::size_t i = before; i < log.size(); ++i) asked = asked || contains(log[i], match);
  INFO("nginx log:\n" << log_text(p.nginx));
  CHECK(asked);
  // Whatever happened, a second sync without faults completes the update.
  p.proxy.set_rules("[]");
  RunResult again = p.sync();
  INFO(again.err);
  CHECK(again.exit_code == 0);
  p.check_updated();
}

}  // namespace

TEST_CASE("a bit flipped in transit in the timestamp is refetched or refused, never kept",
          "[integration][http][faults]") {
  check_flip_in_transit("timestamp.json", 100, Release::kV2);
}

TEST_CASE("a bit flipped in transit in a metadata update file is refetched or refused",
          "[integration][http][faults]") {
  check_flip_in_transit(".upd", 100, Release::kV2);
}

TEST_CASE("a bit flipped in transit in the snapshot is refetched or refused, never kept",
          "[integration][http][faults]") {
  check_flip_in_transit("snapshot.json", 100, Release::kV2, /*whole_files=*/true);
}

TEST_CASE("a bit flipped in transit in a manifest is refetched or refused, never kept",
          "[integration][http][faults]") {
  check_flip_in_transit(".manifest.json", 100, Release::kV2, /*whole_files=*/true);
}

TEST_CASE("a bit flipped in transit in a patch is refetched or refused, never kept",
          "[integration][http][faults]") {
  // Without update files: they carry small patches, which then never travel alone.
  check_flip_in_transit(".patch", 40, Release::kSmallEdit, /*whole_files=*/true);
}

TEST_CASE("a bit flipped in transit in the chunks is refetched or refused, never kept",
          "[integration][http][faults]") {
  check_flip_in_transit(".pack", 5000, Release::kChunks);
}

TEST_CASE("a 503 with Retry-After is retried after the time the server asked for",
          "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  p.publish_small_edit();
  p.proxy.set_rules(R"([{"nth": 1, "status": 503, "retry_after": "1"}])");
  const auto start = std::chrono::steady_clock::now();
  RunResult sync = p.sync();
  INFO(sync.err);
  REQUIRE(sync.exit_code == 0);
  CHECK(seconds_since(start) >= 0.9);
  p.check_updated();
}

TEST_CASE("a server ignoring Range (200 with the whole file) still gives a correct update",
          "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  p.publish_v2();
  p.proxy.set_rules(R"([{"ignore_range": true}])");
  RunResult sync = p.sync();
  INFO(sync.err);
  REQUIRE(sync.exit_code == 0);
  p.check_updated();
}

// ---- faults the node refuses: one error line, exit code, store as it was ----

TEST_CASE("a 404 for a file the signed metadata names fails cleanly",
          "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  p.publish_v2();
  p.proxy.set_rules(R"([{"match": ".patch", "status": 404}, {"match": ".pack", "status": 404}])");
  RunResult sync = p.sync();
  check_refused(sync);
  CHECK(contains(sync.err, "404"));
  p.check_unchanged();
}

TEST_CASE("a 500 on every request fails with exit 6 after the retries",
          "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  p.publish_v2();
  p.proxy.set_rules(R"([{"status": 500}])");
  const std::size_t before = p.proxy.requests();
  RunResult sync = p.sync();
  check_refused(sync, 6);
  CHECK(contains(sync.err, "500"));
  // The first request and two retries (--retries 2), no more.
  CHECK(p.proxy.requests() - before == 3);
  p.check_unchanged();
}

TEST_CASE("a 503 without Retry-After on every request fails with exit 6 after the retries",
          "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  p.publish_v2();
  p.proxy.set_rules(R"([{"status": 503}])");
  const std::size_t before = p.proxy.requests();
  RunResult sync = p.sync();
  check_refused(sync, 6);
  CHECK(contains(sync.err, "503"));
  CHECK(p.proxy.requests() - before == 3);
  p.check_unchanged();
}

TEST_CASE("a 503 with Retry-After on every request fails with exit 6 after the retries",
          "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  p.publish_v2();
  p.proxy.set_rules(R"([{"status": 503, "retry_after": "1"}])");
  RunResult sync = p.sync();
  check_refused(sync, 6);
  CHECK(contains(sync.err, "503"));
  p.check_unchanged();
}

TEST_CASE("a mirror serving an older snapshot than the node accepted is refused (rollback)",
          "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  const std::string old_copy = p.dir / "old-repo";
  copy_tree(p.repo(), old_copy);
  p.publish_v2();
  RunResult accept = p.sync();
  INFO(accept.err);
  REQUIRE(accept.exit_code == 0);
  p.remember();
  Nginx old_mirror(old_copy);
  REQUIRE(old_mirror.ok());
  RunResult sync = p.sync({old_mirror.url()});
  check_refused(sync, 4);
  CHECK(contains(sync.err, "rollback"));
  p.check_unchanged();
}

TEST_CASE("an expired timestamp served over http is refused (freeze)",
          "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  p.publish_v2();
  // Eight days on, through the node library with an injected clock (no variable moves the
  // binary's clock): the mirror still serves the old, now expired, timestamp... and the new
  // one, equally expired by then.
  outpost::test::FakeClock later(std::time(nullptr) + 8 * 86400);
  {
    auto node =
        outpost::node::Node::open(outpost::node::NodeOptions{.dir = p.store(), .clock = &later});
    REQUIRE(node.ok());
    outpost::node::SyncOptions o;
    o.http.retries = 1;
    o.http.backoff_initial_s = 0.05;
    auto synced = (*node)->sync("", o);
    REQUIRE(!synced.ok());
    CHECK(synced.error().code() == outpost::Code::kVerificationFailed);
    CHECK(contains(synced.error().message(), "timestamp"));
    CHECK(contains(synced.error().message(), "expired"));
  }
  p.check_unchanged();
}

TEST_CASE("a tree whose snapshot does not match its targets metadata is refused",
          "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  p.publish_v2();
  p.drop_update_files();
  // The newest un.ga role file replaced by the previous version: the snapshot names another.
  auto [current, version] = newest_metadata(p.repo(), "un.ga.json");
  const std::string older = p.repo() + "/metadata/" + std::to_string(version - 1) + ".un.ga.json";
  REQUIRE(fs::exists(older));
  fs::copy_file(older, current, fs::copy_options::overwrite_existing);
  RunResult sync = p.sync();
  check_refused(sync, 4);
  CHECK(contains(sync.err, "un.ga"));
  p.check_unchanged();
}

TEST_CASE("an endless body is cut at the signed length and refused",
          "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  p.publish_v2();
  // Whichever way the node takes to version 2 (an update file, or snapshot, role and
  // manifest one by one; then the patch) answers with no end.
  p.proxy.set_rules(R"([{"match": ".upd", "endless": true},
                        {"match": ".manifest.json", "endless": true},
                        {"match": ".patch", "endless": true},
                        {"match": ".pack", "endless": true}])");
  const auto start = std::chrono::steady_clock::now();
  RunResult sync = p.sync();
  INFO("proxy log:\n" << p.proxy.log());
  check_refused(sync);
  CHECK((sync.exit_code == 4 || sync.exit_code == 6));
  CHECK(seconds_since(start) < 20);
  // The node stopped reading long before the end of time: no more than 16 MiB in all over a
  // paid link (every file here is a few KB, or at most ~300 KB).
  CHECK(p.proxy.bytes_to_client() < (16u << 20));
  p.check_unchanged();
}

TEST_CASE("an oversized body (10x the signed length) is refused", "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  p.publish_v2();
  p.proxy.set_rules(R"([{"match": ".upd", "oversized": true},
                        {"match": ".manifest.json", "oversized": true},
                        {"match": ".patch", "oversized": true},
                        {"match": ".pack", "oversized": true}])");
  RunResult sync = p.sync();
  check_refused(sync);
  CHECK((sync.exit_code == 4 || sync.exit_code == 6));
  p.check_unchanged();
}

TEST_CASE("a 1 byte/s drip is abandoned after the stall timeout with exit 6",
          "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  p.publish_v2();
  p.proxy.set_rules(R"([{"drip": 1}])");
  const auto start = std::chrono::steady_clock::now();
  RunResult sync =
      p.frozen({"sync", "--retries", "1", "--backoff", "0.05", "--stall-timeout", "2"});
  const double took = seconds_since(start);
  check_refused(sync, 6);
  CHECK((contains(sync.err, "stall") || contains(sync.err, "timed out") ||
         contains(sync.err, "timeout")));
  // Two attempts of 2 s each, plus start-up: far less than the drip would take.
  CHECK(took >= 2);
  CHECK(took < 15);
  p.check_unchanged();
}

TEST_CASE("a captive portal's HTML page is refused with exit 6", "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  p.publish_v2();
  p.proxy.set_rules(R"([{"html": true}])");
  RunResult sync = p.sync();
  check_refused(sync, 6);
  CHECK((contains(sync.err, "HTML") || contains(sync.err, "html") || contains(sync.err, "portal")));
  p.check_unchanged();
}

TEST_CASE("a host name that does not resolve fails with exit 6 at once",
          "[integration][http][faults]") {
  Proxied p;
  REQUIRE_READY(p);
  p.publish_v2();
  const auto start = std::chrono::steady_clock::now();
  RunResult sync = p.frozen(
      with(with({"sync", "http://no-such-host.invalid/"}, kFast), {"--stall-timeout", "30"}));
  check_refused(sync, 6);
  CHECK(contains(sync.err, "no-such-host.invalid"));
  CHECK(seconds_since(start) < 10);
  p.check_unchanged();
}

TEST_CASE(
    "regression: an untrusted certificate is not retried: exit 1 (an operator must act) naming TLS",
    "[integration][http][faults]") {
  HttpHeld h(/*tls=*/true);
  REQUIRE_RIG(h.nginx);
  h.hold_v1();
  h.publish_v2();
  // A CA file that is a valid certificate, but not the one this server presents.
  TempDir other_root;
  Nginx other(other_root.path(), /*tls=*/true);
  REQUIRE(other.ok());
  RunResult sync = h.sync({h.nginx.https_url(), "--ca-file", other.ca_file()});
  check_refused(sync, 1);
  CHECK((contains(sync.err, "TLS") || contains(sync.err, "certificate")));
  CHECK(!contains(sync.err, "attempts"));  // tried once: retrying changes nothing
  h.check_unchanged();
}
