// Delta sync over HTTP, end to end: the `outpost` binary syncing from a real nginx on
// loopback, directly or through the fault proxy (tests/support/nginx.h). The first cases test
// the rig itself with curl, so a broken rig is caught before it is blamed on outpost.
#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>

#include "fixture.h"
#include "http_common.h"

using namespace outpost::test;
namespace fs = std::filesystem;

// ---- the rig ----

namespace {

// curl's own count of what it received: "HEADER_BYTES BODY_BYTES".
const char* kCurlSizes = "%{size_header} %{size_download}";

std::uint64_t curl_total(const std::string& out) {
  std::istringstream in(out.substr(out.rfind('\n', out.size() - 2) + 1));
  std::uint64_t header = 0, body = 0;
  in >> header >> body;
  return header + body;
}

}  // namespace

TEST_CASE("rig: nginx answers Range and multi-range and logs every byte it sent",
          "[integration][http][rig]") {
  TempDir root;
  const std::string text = rig_text(20000);
  write_text(root / "file.txt", text);
  Nginx nginx(root.path());
  REQUIRE_RIG(nginx);
  REQUIRE_CURL();

  RunResult whole = run_program({curl(), "-s", "-f", nginx.url() + "/file.txt"});
  REQUIRE(whole.exit_code == 0);
  CHECK(whole.out == text);

  RunResult one = run_program({curl(), "-s", "-f", "-r", "100-199", nginx.url() + "/file.txt"});
  REQUIRE(one.exit_code == 0);
  CHECK(one.out == text.substr(100, 100));

  RunResult multi = run_program(
      {curl(), "-s", "-f", "-D", "-", "-r", "0-4,1000-1009", nginx.url() + "/file.txt"});
  REQUIRE(multi.exit_code == 0);
  CHECK(contains(multi.out, "206 Partial Content"));
  CHECK(contains(multi.out, "multipart/byteranges"));
  CHECK(contains(multi.out, "Content-Range: bytes 1000-1009/20000"));
  CHECK(contains(multi.out, text.substr(1000, 10)));
  CHECK(contains(multi.out, "ETag: "));

  RunResult counted =
      run_program({curl(), "-s", "-o", "/dev/null", "-w", kCurlSizes, nginx.url() + "/file.txt"});
  REQUIRE(counted.exit_code == 0);
  const auto log = nginx.access_log();
  REQUIRE(log.size() == 4);
  CHECK(nginx.requests() == 4);
  CHECK(nginx.multi_range_requests() == 1);
  CHECK(contains(log[1], "\"bytes=100-199\""));
  CHECK(contains(log[2], "\"bytes=0-4,1000-1009\""));
  CHECK(contains(log[3], "GET /file.txt HTTP/1.1"));
  // What nginx logged as sent for the last request is what curl received.
  std::istringstream last(log[3]);
  std::uint64_t status = 0, sent = 0;
  last >> status >> sent;
  CHECK(status == 200);
  CHECK(sent == curl_total(counted.out + "\n"));
}

TEST_CASE("rig: https with a fresh self-signed certificate is trusted only with its CA file",
          "[integration][http][rig]") {
  TempDir root;
  write_text(root / "hello.txt", "hello over tls\n");
  Nginx nginx(root.path(), /*tls=*/true);
  REQUIRE_RIG(nginx);
  REQUIRE_CURL();
  RunResult trusted = run_program(
      {curl(), "-s", "-f", "--cacert", nginx.ca_file(), nginx.https_url() + "/hello.txt"});
  INFO(trusted.err);
  CHECK(trusted.exit_code == 0);
  CHECK(trusted.out == "hello over tls\n");
  RunResult untrusted = run_program({curl(), "-s", "-f", nginx.https_url() + "/hello.txt"});
  CHECK(untrusted.exit_code == 60);  // CURLE_PEER_FAILED_VERIFICATION
}

TEST_CASE("rig: the fault proxy forwards with keep-alive and counts what clients received",
          "[integration][http][rig]") {
  TempDir root;
  const std::string text = rig_text(50000);
  write_text(root / "file.txt", text);
  Nginx nginx(root.path());
  REQUIRE_RIG(nginx);
  REQUIRE_CURL();
  FaultProxy proxy(nginx.host_port());
  INFO(proxy.why());
  REQUIRE(proxy.ok());

  // Two URLs in one curl run share one client connection, and curl's counts match the proxy's.
  RunResult two = run_program({curl(), "-s", "-f", "-o", "/dev/null", "-o", "/dev/null", "-w",
                               std::string(kCurlSizes) + "\\n", "-r", "10-19",
                               proxy.url() + "/file.txt", proxy.url() + "/file.txt?again"});
  INFO(two.err);
  REQUIRE(two.exit_code == 0);
  std::istringstream lines(two.out);
  std::uint64_t received = 0;
  for (std::string line; std::getline(lines, line);) received += curl_total(line + "\n");
  CHECK(proxy.requests() == 2);
  CHECK(proxy.bytes_to_client() == received);
  CHECK(nginx.requests() == 2);

  RunResult multi =
      run_program({curl(), "-s", "-f", "-r", "0-4,1000-1009", proxy.url() + "/file.txt"});
  REQUIRE(multi.exit_code == 0);
  CHECK(contains(multi.out, "Content-Range: bytes 1000-1009/50000"));
  CHECK(contains(multi.out, text.substr(1000, 10)));

  // An upstream that is gone: 502 from the proxy, not a hang.
  FaultProxy dead("127.0.0.1:" + std::to_string(unused_port()));
  REQUIRE(dead.ok());
  RunResult bad =
      run_program({curl(), "-s", "-o", "/dev/null", "-w", "%{http_code}", dead.url() + "/x"});
  CHECK(bad.out == "502");
}

TEST_CASE("rig: the fault proxy injects each fault its rules name", "[integration][http][rig]") {
  TempDir root;
  const std::string text = rig_text(50000);
  write_text(root / "file.txt", text);
  write_text(root / "other.txt", "other\n");
  Nginx nginx(root.path());
  REQUIRE_RIG(nginx);
  REQUIRE_CURL();
  FaultProxy proxy(nginx.host_port());
  REQUIRE(proxy.ok());
  const std::string url = proxy.url() + "/file.txt";
  auto get = [&](const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{curl(), "-s", "-D", "-"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(url);
    return run_program(argv);
  };
  auto body_of = [](const RunResult& r) { return r.out.substr(r.out.find("\r\n\r\n") + 4); };

  SECTION("truncate: headers unchanged, K body bytes, then the connection closes") {
    proxy.set_rules(R"([{"match": "file.txt", "truncate": 1000}])");
    RunResult r = get();
    CHECK(r.exit_code == 18);  // CURLE_PARTIAL_FILE
    CHECK(contains(r.out, "Content-Length: 50000"));
    CHECK(body_of(r) == text.substr(0, 1000));
  }
  SECTION("flip: one bit of the K-th body byte, only for the nth matching request") {
    proxy.set_rules(R"([{"match": "file.txt", "nth": 2, "flip": 7}])");
    CHECK(body_of(get()) == text);
    std::string flipped = text;
    flipped[6] = static_cast<char>(flipped[6] ^ 1);
    CHECK(body_of(get()) == flipped);
    CHECK(body_of(get()) == text);
  }
  SECTION("drop_after: the response is cut after K bytes, headers included") {
    proxy.set_rules(R"([{"drop_after": 5000}])");
    RunResult r = get();
    CHECK(r.exit_code == 18);
    CHECK(r.out.size() == 5000);
  }
  SECTION("status with Retry-After and a body, without asking the upstream") {
    proxy.set_rules(R"([{"status": 503, "retry_after": "7", "body": "busy"}])");
    RunResult r = get();
    CHECK(contains(r.out, "HTTP/1.1 503 Service Unavailable"));
    CHECK(contains(r.out, "Retry-After: 7"));
    CHECK(body_of(r) == "busy");
    CHECK(nginx.requests() == 0);
  }
  SECTION("ignore_range: the upstream answers 200 with the whole file") {
    proxy.set_rules(R"([{"ignore_range": true}])");
    RunResult r = get({"-r", "0-9"});
    CHECK(contains(r.out, "HTTP/1.1 200 OK"));
    CHECK(body_of(r) == text);
  }
  SECTION("bad_content_range and bad_boundary change what a 206 says about its parts") {
    proxy.set_rules(R"([{"bad_content_range": true}])");
    CHECK(contains(get({"-r", "10-19"}).out, "Content-Range: bytes 11-20/50000"));
    CHECK(contains(get({"-r", "0-4,1000-1009"}).out, "Content-Range: bytes 1-5/50000"));
    proxy.set_rules(R"([{"bad_boundary": true}])");
    RunResult r = get({"-r", "0-4,1000-1009"});
    const std::smatch boundary = [&] {
      std::smatch m;
      std::regex_search(r.out, m, std::regex("boundary=([0-9A-Za-z]+)"));
      return m;
    }();
    REQUIRE(boundary.size() == 2);
    CHECK(!contains(body_of(r), "--" + boundary[1].str()));
  }
  SECTION("oversized, html and endless answers") {
    proxy.set_rules(R"([{"match": "other", "oversized": true}])");
    RunResult big = run_program({curl(), "-s", proxy.url() + "/other.txt"});
    CHECK(big.out.size() == 60);
    proxy.set_rules(R"([{"html": true}])");
    RunResult html = get();
    CHECK(contains(html.out, "text/html"));
    CHECK(body_of(html) == "<html>Please log in</html>");
    proxy.set_rules(R"([{"endless": true}])");
    RunResult endless = run_program(
        {curl(), "-s", "-o", "/dev/null", "-w", "%{size_download}", "--max-time", "0.5", url});
    CHECK(endless.exit_code == 28);  // timed out: the body never ended
    CHECK(std::stoull(endless.out) > 100000);
  }
  SECTION("drop_every cuts the connection each time another K bytes went out") {
    proxy.set_rules(R"([{"drop_every": 20000}])");
    RunResult first = get();
    CHECK(first.exit_code == 18);
    CHECK(first.out.size() == 20000);
    RunResult second = get();
    CHECK(second.out.size() == 20000);
    CHECK(proxy.bytes_to_client() == 40000);
  }
}

TEST_CASE("rig: rate and delay_ms make a slow link", "[integration][http][rig]") {
  TempDir root;
  write_text(root / "file.txt", rig_text(4000));
  Nginx nginx(root.path());
  REQUIRE_RIG(nginx);
  REQUIRE_CURL();
  FaultProxy proxy(nginx.host_port(), R"([{"rate": 20000, "delay_ms": 200}])");
  REQUIRE(proxy.ok());
  RunResult r = run_program(
      {curl(), "-s", "-o", "/dev/null", "-w", "%{time_total}", proxy.url() + "/file.txt"});
  REQUIRE(r.exit_code == 0);
  // At least the delay plus ~4.2 KB at 20 KB/s (0.2 s); generous above for a loaded machine.
  CHECK(std::stod(r.out) >= 0.35);
  CHECK(std::stod(r.out) < 5);
}

// ---- syncing over HTTP ----

TEST_CASE("a node subscribes and syncs over http, and a no-change sync is one small request",
          "[integration][http]") {
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  h.hold_v1();
  RunResult ls = h.frozen({"ls"});
  CHECK(contains(ls.out, kResolution));
  CHECK(contains(ls.out, kIndicator));
  RunResult csv = h.frozen({"cat", kIndicator, "data.csv"});
  CHECK(csv.out == h.csv_v1);
  RunResult verify = h.frozen({"verify"});
  CHECK(verify.exit_code == 0);

  const std::size_t requests_before = h.nginx.requests();
  const std::uint64_t bytes_before = h.nginx.bytes_sent();
  const std::uint64_t asked_before = h.nginx.bytes_received();
  RunResult again = h.sync();
  INFO(again.err);
  REQUIRE(again.exit_code == 0);
  const SyncedRepo r = only_repo(again.out);
  CHECK(r.unchanged);
  CHECK(r.updated.empty());
  CHECK(r.requests == 1);
  CHECK(r.bytes_read > 0);
  CHECK(r.bytes_read < 1024);
  CHECK(h.nginx.requests() - requests_before == 1);
  const std::uint64_t on_wire = h.nginx.bytes_sent() - bytes_before;
  const std::uint64_t asked = h.nginx.bytes_received() - asked_before;
  CHECK(on_wire < 1024);
  CHECK(on_wire + asked < 1024);
  // The node's count of wire bytes is nginx's: what nginx sent (the contract's "received
  // incl. headers"), or that plus the request (both directions, as a paid link bills).
  INFO("nginx sent " << on_wire << " B and received " << asked << " B");
  CHECK((static_cast<std::uint64_t>(r.bytes_read) == on_wire ||
         static_cast<std::uint64_t>(r.bytes_read) == on_wire + asked));
  h.check_unchanged();
}

TEST_CASE("an update after a small edit travels as a patch in at most 6 requests",
          "[integration][http]") {
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  h.hold_v1();
  h.publish_small_edit();
  const std::size_t requests_before = h.nginx.requests();
  const std::uint64_t bytes_before = h.nginx.bytes_sent();
  const std::uint64_t asked_before = h.nginx.bytes_received();
  RunResult s = h.sync();
  INFO(s.err);
  REQUIRE(s.exit_code == 0);
  const SyncedRepo r = only_repo(s.out);
  CHECK(!r.unchanged);
  REQUIRE(r.updated.size() == 1);
  CHECK(r.updated[0].bundle == kResolution);
  CHECK(r.updated[0].from == 1);
  CHECK(r.updated[0].to == 2);
  CHECK(r.updated[0].route == "patch");
  CHECK(r.requests <= 6);
  CHECK(h.nginx.requests() - requests_before <= 6);
  const std::uint64_t on_wire = h.nginx.bytes_sent() - bytes_before;
  const std::uint64_t asked = h.nginx.bytes_received() - asked_before;
  INFO("nginx sent " << on_wire << " B and received " << asked << " B");
  CHECK((static_cast<std::uint64_t>(r.bytes_read) == on_wire ||
         static_cast<std::uint64_t>(r.bytes_read) == on_wire + asked));
  h.check_updated();
}

TEST_CASE("sync --dry-run prints the plan and its cost and changes nothing",
          "[integration][http]") {
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  h.hold_v1();
  h.publish_v2();
  RunResult plan = h.frozen({"sync", "--dry-run"});
  INFO(plan.err);
  REQUIRE(plan.exit_code == 0);
  CHECK(contains(plan.out, kResolution));
  CHECK(std::regex_search(plan.out, std::regex("[0-9]+ (B|bytes|KB|KiB|kB)")));
  // Only metadata was fetched: no pack.
  for (const auto& line : h.nginx.access_log()) CHECK(!contains(line, ".pack"));
  h.check_untouched();
  h.check_unchanged();
  // The plan in JSON names the update it would make.
  RunResult json = h.frozen({"sync", "--dry-run", "--json"});
  INFO("plan: " << plan.out << "\nsync --dry-run --json: " << json.out << json.err);
  REQUIRE(json.exit_code == 0);
  const SyncedRepo r = only_repo(json.out);
  CHECK(r.dry_run);
  CHECK(r.updated.empty());
  REQUIRE(r.plan.size() == 1);
  CHECK(r.plan[0].bundle == kResolution);
  CHECK(r.plan[0].bytes > (256 << 10));
  h.check_untouched();
}

TEST_CASE("https works with --ca-file, and without it, exit 1 (an operator must act) naming TLS",
          "[integration][http]") {
  HttpHeld h(/*tls=*/true);
  REQUIRE_RIG(h.nginx);
  RunResult sub = h.subscribe_url(h.nginx.https_url(), {}, {"--ca-file", h.nginx.ca_file()});
  INFO(sub.err);
  // Subscribing may or may not take --ca-file; without it, subscribe over plain http.
  if (sub.exit_code != 0) {
    RunResult plain = h.subscribe_url(h.nginx.url());
    INFO(plain.err);
    REQUIRE(plain.exit_code == 0);
  }
  RunResult untrusted = h.sync({h.nginx.https_url()});
  check_refused(untrusted, 1);
  CHECK((contains(untrusted.err, "TLS") || contains(untrusted.err, "certificate")));
  CHECK(!contains(untrusted.err, "attempts"));  // tried once: retrying changes nothing
  CHECK(contains(untrusted.err, "--ca-file"));
  RunResult trusted = h.sync({h.nginx.https_url(), "--ca-file", h.nginx.ca_file()});
  INFO(trusted.err);
  REQUIRE(trusted.exit_code == 0);
  h.text_v1 = read_text(h.resolution_src() + "/" + kResolutionText);
  h.csv_v1 = read_text(h.indicator_src() + "/data.csv");
  h.check_updated();
}

TEST_CASE("a dead first mirror is skipped and the next one serves the sync",
          "[integration][http]") {
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  const std::string dead = "http://127.0.0.1:" + std::to_string(unused_port());
  // With the default retries and backoff: the next location is asked at once, not after
  // retrying the dead one (15 s and more of backoff).
  const auto subscribed = std::chrono::steady_clock::now();
  RunResult sub = h.subscribe_url(dead, {h.nginx.url()});
  INFO(sub.err);
  REQUIRE(sub.exit_code == 0);
  CHECK(seconds_since(subscribed) < 8);
  RunResult s = h.sync();
  INFO(s.err);
  REQUIRE(s.exit_code == 0);
  h.csv_v1 = read_text(h.indicator_src() + "/data.csv");
  h.check_updated();
  h.publish_small_edit();
  const auto start = std::chrono::steady_clock::now();
  RunResult update = h.sync();
  INFO(update.err);
  REQUIRE(update.exit_code == 0);
  CHECK(seconds_since(start) < 10);
  h.check_updated();
}

TEST_CASE("a lying mirror (bits flipped in transit) is refused and the next one serves the sync",
          "[integration][http]") {
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  FaultProxy liar(h.nginx.host_port());
  REQUIRE(liar.ok());
  h.hold_v1(liar.url(), {h.nginx.url()});
  h.publish_v2();
  // From now on the liar flips a bit in every response body: metadata, manifests, packs.
  liar.set_rules(R"([{"flip": 120}])");
  RunResult s = h.sync();
  INFO(s.err);
  REQUIRE(s.exit_code == 0);
  h.check_updated();
  // Nothing the liar sent was kept: the honest mirror served what the node holds.
  CHECK(liar.requests() >= 1);
}

TEST_CASE("a server that mangles multi-range answers: sync succeeds and stops asking for them",
          "[integration][http]") {
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  FaultProxy proxy(h.nginx.host_port());
  REQUIRE(proxy.ok());
  h.hold_v1(proxy.url());
  h.publish_for_chunks_route();  // the node holds version 2; versions 3 and 4 published

  proxy.set_rules(R"([{"bad_boundary": true}])");
  const std::size_t multi_before = h.nginx.multi_range_requests();
  RunResult first = h.sync();
  INFO(first.out << first.err);
  REQUIRE(first.exit_code == 0);
  h.check_updated();
  const std::size_t multi_first = h.nginx.multi_range_requests() - multi_before;
  CHECK(multi_first >= 1);
  const SyncedRepo r = only_repo(first.out);
  REQUIRE(r.updated.size() == 1);
  CHECK(r.updated[0].route == "chunks");

  // Version 5 brings f and h back: from version 4 the cheapest way is again two ranges of
  // version 3's pack with a gap (g). The node remembered that this server mangles multi-range
  // answers and does not ask for them again.
  write_all(h.resolution_src() + "/f.bin", random_bytes(128 << 10, 'f'));
  write_all(h.resolution_src() + "/h.bin", random_bytes(128 << 10, 'h'));
  h.publish_without_ladder();
  RunResult second = h.sync();
  INFO(second.out << second.err);
  REQUIRE(second.exit_code == 0);
  h.check_updated();
  CHECK(h.nginx.multi_range_requests() - multi_before == multi_first);
  const SyncedRepo r2 = only_repo(second.out);
  REQUIRE(r2.updated.size() == 1);
  CHECK(r2.updated[0].route == "chunks");
  RunResult f = h.frozen({"cat", kResolution, "h.bin"});
  CHECK(f.out.size() == (128u << 10));
}
