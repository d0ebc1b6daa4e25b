// A node syncing from another node (a peer, `outpost serve`) over loopback uses the peer's
// many-pieces endpoint (docs/daemon.md, "Many pieces in one response"): the missing chunks by
// id in one request instead of ranges of packs, and a patch computed on demand from the
// version it holds when no signed patch reaches it. Everything it receives is verified; wrong
// or missing pieces fall back to the ranges (issue 10).
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

#include "fixture.h"
#include "http_common.h"
#include "outpost/base/json.h"

using namespace outpost::test;
namespace fs = std::filesystem;

namespace {

bool eventually(const std::function<bool()>& cond, double timeout_s = 20) {
  const auto end = std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(static_cast<long>(timeout_s * 1000));
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return cond();
}

std::string http_get(const std::string& url) {
  RunResult r = run_program({curl(), "-s", "-f", url});
  return r.exit_code == 0 ? r.out : "";
}

// The value of an unlabelled metric on a /metrics page, -1 when absent.
long metric(const std::string& page, const std::string& name) {
  const std::string at = "\n" + name + " ";
  std::size_t i = page.find(at);
  if (i == std::string::npos) return -1;
  return std::stol(page.substr(i + at.size()));
}

// An office node: the daemon on a free loopback port, synced from the origin p.repo(), with
// no signed patch left in the repository (so nobody holds or serves one).
class Office {
 public:
  explicit Office(Published& p) : p_(p), port_(unused_port()) {
    set_patches_aside();
    write_text(p.dir / "office.toml",
               "store = \"" + store() + "\"\n[http]\nlisten = [\"127.0.0.1:" +
                   std::to_string(port_) + "\"]\n\n[[subscription]]\nurl = \"" + p.repo() +
                   "\"\nroot_pubkey = \"" + p.root_hex + "\"\n");
    child_ = std::make_unique<Child>(
        std::vector<std::string>{"/bin/sh", "-c",
                                 "exec '" + std::string(OUTPOST_BINARY) + "' serve --config '" +
                                     (p.dir / "office.toml") + "' 2>>'" + log_path() + "'"});
  }
  ~Office() { stop(); }
  // SIGTERM; the daemon's exit code (0: a clean stop, and no sanitizer report).
  int stop() {
    if (code_ < 0) {
      child_->signal(SIGTERM);
      code_ = child_->wait();
    }
    return code_;
  }
  std::string store() const { return p_.dir / "office"; }
  std::string log_path() const { return p_.dir / "office.log"; }
  std::string log() const { return fs::exists(log_path()) ? read_text(log_path()) : ""; }
  bool ready() const {
    return eventually([&] { return contains(log(), "synced from"); });
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string host_port() const { return "127.0.0.1:" + std::to_string(port_); }
  // "/repo/<id>/" of the one repository it serves.
  std::string repo_path() const {
    auto j = outpost::parse_json(http_get(base() + "/repo/"));
    if (!j.ok() || !j->is_array() || j->as_array().empty()) return "";
    return "/repo/" + j->as_array()[0].find("id")->as_string() + "/";
  }
  std::string metrics() const { return http_get(base() + "/metrics"); }
  // Publishes version 2 of the indicator (without patches) and has the office node take it.
  std::string publish_v2() {
    std::string csv = read_text(p_.indicator_src() + "/data.csv");
    csv += "17,17.6,17.6.1,MOBILE_BB_PER100,extra row,001,World,2020,80,PER_100_POP,,ITU,\n";
    write_text(p_.indicator_src() + "/data.csv", csv);
    // The publisher builds the new patch ladder from the patches it published.
    for (const auto& f : files_ending(p_.dir / "aside", ".patch")) {
      fs::rename(f, p_.repo() + "/" + fs::relative(f, p_.dir / "aside").string());
    }
    RunResult published = p_.publish_indicator();
    INFO(published.err);
    REQUIRE(published.exit_code == 0);
    set_patches_aside();
    RunResult now = run_outpost({"sync", "--now", "--store", store()});
    INFO(now.out << now.err);
    REQUIRE(now.exit_code == 0);
    REQUIRE(contains(now.out, "digital-divide-2019 1->2 by chunks"));
    return csv;
  }

 private:
  // The repository's patches out of reach (kept for the next publish), and the metadata update
  // files, which carry small patches too.
  void set_patches_aside() {
    for (const auto& f : files_ending(p_.repo() + "/metadata", ".upd")) fs::remove(f);
    for (const auto& f : files_ending(p_.repo() + "/objects", ".patch")) {
      const fs::path to = p_.dir / "aside" / fs::relative(f, p_.repo());
      fs::create_directories(to.parent_path());
      fs::rename(f, to);
    }
  }

  Published& p_;
  int port_;
  int code_ = -1;
  std::unique_ptr<Child> child_;
};

}  // namespace

TEST_CASE(
    "a node syncing from a peer fetches its missing chunks in one pieces request and a patch "
    "computed on demand from the version it holds",
    "[integration][serve]") {
  REQUIRE_CURL();
  Published p;
  Office office(p);
  REQUIRE(office.ready());
  const std::string peer = office.base() + office.repo_path();
  REQUIRE(peer.size() > office.base().size() + 7);

  TempDir kiosk;
  auto on_kiosk = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--store", kiosk.path()});
    return run_outpost(args);
  };
  REQUIRE(on_kiosk({"subscribe", peer, "--root-pubkey", p.root_hex}).exit_code == 0);
  const long before = metric(office.metrics(), "outpost_peer_pieces_requests_total");
  RunResult first = on_kiosk({"sync", "--json"});
  INFO(first.out << first.err);
  REQUIRE(first.exit_code == 0);
  CHECK(contains(first.out, "\"route\": \"chunks\""));
  // Both bundles' chunks came by id: one request each (a handful of chunks), no pack ranges.
  const std::string m1 = office.metrics();
  CHECK(metric(m1, "outpost_peer_pieces_requests_total") - before == 2);
  CHECK(on_kiosk({"cat", "un/ga/A-RES-75-202", "A-RES-75-202.en.md"}).out ==
        read_text(p.resolution_src() + "/A-RES-75-202.en.md"));

  // Version 2, with no signed patch anywhere: the peer makes one from version 1.
  const std::string csv = office.publish_v2();
  RunResult second = on_kiosk({"sync", "--json"});
  INFO(second.out << second.err);
  REQUIRE(second.exit_code == 0);
  CHECK(contains(second.out, "\"route\": \"patch\""));
  INFO(office.log());
  CHECK(metric(office.metrics(), "outpost_peer_patches_made_total") == 1);
  CHECK(on_kiosk({"cat", "itu/ict/digital-divide-2019", "data.csv"}).out == csv);
  CHECK(on_kiosk({"verify"}).exit_code == 0);

  // Absurd or malformed on-demand requests are refused.
  auto code = [&](const std::string& query) {
    return run_program({curl(), "-s", "-o", "/dev/null", "-w", "%{http_code}", peer + query}).out;
  };
  CHECK(code("pieces?bundle=itu/ict/digital-divide-2019&from=2&to=1") == "400");
  CHECK(code("pieces?bundle=itu/ict/digital-divide-2019&from=1&to=99") == "404");
  CHECK(code("pieces?bundle=no/such&from=1&to=2") == "404");
  CHECK(code("pieces?bundle=itu/ict/digital-divide-2019&from=x&to=2") == "400");
  INFO(office.log());
  CHECK(office.stop() == 0);
}

TEST_CASE(
    "wrong or missing pieces from a peer fall back to ranges, and a damaged or missing patch "
    "on demand to the chunks, and everything stored verifies",
    "[integration][serve][http]") {
  REQUIRE_CURL();
  Published p;
  Office office(p);
  REQUIRE(office.ready());
  const std::string path = office.repo_path();
  REQUIRE_FALSE(path.empty());
  // Every pieces answer damaged: one bit flipped inside the first record.
  FaultProxy proxy(office.host_port(), R"([{"match": "pieces", "flip": 120}])");
  REQUIRE_RIG(proxy);
  TempDir kiosk;
  auto on_kiosk = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--store", kiosk.path()});
    return run_outpost(args);
  };
  REQUIRE(on_kiosk({"subscribe", proxy.url() + path, "--root-pubkey", p.root_hex}).exit_code == 0);
  RunResult first = on_kiosk({"sync", "--json"});
  INFO(first.out << first.err << proxy.log());
  REQUIRE(first.exit_code == 0);
  CHECK(contains(proxy.log(), "pieces?chunks="));
  CHECK(contains(proxy.log(), ".pack"));  // the ranges took over
  CHECK(on_kiosk({"cat", "un/ga/A-RES-75-202", "A-RES-75-202.en.md"}).out ==
        read_text(p.resolution_src() + "/A-RES-75-202.en.md"));

  // Version 2: the patch on demand arrives damaged, then the chunks are refused (404).
  const std::string csv = office.publish_v2();
  proxy.set_rules(R"([{"match": "pieces?bundle", "flip": 80},
                      {"match": "pieces?chunks", "status": 404}])");
  RunResult second = on_kiosk({"sync", "--json"});
  INFO(second.out << second.err << proxy.log());
  REQUIRE(second.exit_code == 0);
  CHECK(contains(proxy.log(), "pieces?bundle="));
  CHECK(contains(second.out, "\"route\": \"chunks\""));
  CHECK(on_kiosk({"cat", "itu/ict/digital-divide-2019", "data.csv"}).out == csv);
  CHECK(on_kiosk({"verify"}).exit_code == 0);
  INFO(office.log());
  CHECK(office.stop() == 0);
}
