// `outpost serve` as an operator runs it: the real binary with a configuration file, its log
// on stderr, signals, the admin socket through `outpost status` and `outpost sync --now`, and a
// second node syncing from the first over loopback (issue 10).
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <sstream>
#include <thread>

#include "fixture.h"
#include "http_common.h"
#include "outpost/base/json.h"

using namespace outpost::test;
namespace fs = std::filesystem;

namespace {

// Polls cond every 50 ms up to timeout_s.
bool eventually(const std::function<bool()>& cond, double timeout_s = 20) {
  const auto end = std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(static_cast<long>(timeout_s * 1000));
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return cond();
}

// A daemon started with a configuration file, its stderr appended to a log file.
class Daemon {
 public:
  Daemon(const std::string& config, const std::string& log) : log_(log) {
    child_ = std::make_unique<Child>(
        std::vector<std::string>{"/bin/sh", "-c",
                                 "exec '" + std::string(OUTPOST_BINARY) + "' serve --config '" +
                                     config + "' 2>>'" + log + "'"});
  }
  std::string log() const { return fs::exists(log_) ? read_text(log_) : ""; }
  bool logged(const std::string& text) const { return contains(log(), text); }
  bool wait_logged(const std::string& text, double timeout_s = 20) const {
    return eventually([&] { return logged(text); }, timeout_s);
  }
  void signal(int sig) { child_->signal(sig); }
  int pid() const { return child_->pid(); }
  // The pids of its worker processes (docs/daemon.md, "Worker processes") whose command line
  // holds `role` ("__node", "__kiosk-index").
  std::vector<int> workers(const std::string& role) const {
    std::vector<int> out;
    for (const auto& e : fs::directory_iterator("/proc")) {
      const std::string name = e.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::string stat, cmdline;
      try {
        stat = read_text(e.path() / "stat");
        cmdline = read_text(e.path() / "cmdline");
      } catch (...) {
        continue;  // ended meanwhile
      }
      // "pid (comm) state ppid ...": the comm may hold spaces, so read after the last ')'. A
      // process that ended between the listing and the read leaves an empty file.
      const std::size_t comm_end = stat.rfind(')');
      if (comm_end == std::string::npos || comm_end + 2 > stat.size()) continue;
      std::istringstream rest(stat.substr(comm_end + 2));
      std::string state;
      int ppid = 0;
      rest >> state >> ppid;
      if (ppid == pid() && contains(cmdline, role)) out.push_back(std::stoi(name));
    }
    return out;
  }
  // Stops with SIGTERM; returns the exit code and how long it took.
  std::pair<int, double> stop() {
    const auto start = std::chrono::steady_clock::now();
    child_->signal(SIGTERM);
    const int code = child_->wait();
    return {code, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
  }

 private:
  std::string log_;
  std::unique_ptr<Child> child_;
};

std::string config_text(const std::string& store, int port, const std::string& url,
                        const std::string& root_hex, const std::string& extra = "") {
  return "store = \"" + store + "\"\n" + extra +
         "\n[http]\nlisten = [\"127.0.0.1:" + std::to_string(port) +
         "\"]\n\n[[subscription]]\nurl = \"" + url + "\"\nroot_pubkey = \"" + root_hex + "\"\n";
}

std::string http_get(const std::string& url) {
  RunResult r = run_program({curl(), "-s", "-f", url});
  return r.exit_code == 0 ? r.out : "";
}

// The first repository id the daemon at port lists under /repo/.
std::string served_repository(int port) {
  auto j = outpost::parse_json(http_get("http://127.0.0.1:" + std::to_string(port) + "/repo/"));
  if (!j.ok() || !j->is_array() || j->as_array().empty()) return "";
  return j->as_array()[0].find("id")->as_string();
}

}  // namespace

TEST_CASE(
    "daemon lifecycle: check-config, ready, reload, a bad reload keeps the running "
    "configuration, SIGTERM stops within 5 s",
    "[integration][serve]") {
  REQUIRE_CURL();
  Published p;
  const int port = unused_port();
  const std::string config = p.dir / "outpost.toml";
  write_text(config, config_text(p.store(), port, p.repo(), p.root_hex));
  RunResult check = run_outpost({"serve", "--config", config, "--check-config"});
  CHECK(check.exit_code == 0);
  CHECK(contains(check.out, "is valid"));

  Daemon d(config, p.dir / "serve.log");
  REQUIRE(d.wait_logged("ready: http on 127.0.0.1:" + std::to_string(port)));
  REQUIRE(d.wait_logged("synced from " + p.repo()));
  // CLI readers work while the daemon runs; status asks the daemon.
  RunResult ls = p.node({"ls"});
  CHECK(ls.exit_code == 0);
  CHECK(contains(ls.out, "un/ga/A-RES-75-202"));
  RunResult status = p.node({"status"});
  CHECK(status.exit_code == 0);
  CHECK(contains(status.out, "daemon:    running"));
  CHECK(contains(status.out, "last success 20"));
  const std::string page = http_get("http://127.0.0.1:" + std::to_string(port) + "/status");
  CHECK(contains(page, "<h1>outpost node</h1>"));
  auto json =
      outpost::parse_json(http_get("http://127.0.0.1:" + std::to_string(port) + "/status.json"));
  REQUIRE(json.ok());
  CHECK(json->find("node")->find("bundles")->as_int() == 2);
  const std::string metrics = http_get("http://127.0.0.1:" + std::to_string(port) + "/metrics");
  CHECK(contains(metrics, "# TYPE outpost_last_sync_success gauge"));
  CHECK(contains(metrics, "outpost_store_bundles 2"));

  // A bad reload is logged and changes nothing.
  write_text(config, config_text(p.store(), port, p.repo(), p.root_hex, "colour = \"blue\""));
  d.signal(SIGHUP);
  REQUIRE(d.wait_logged("reload failed, keeping the running configuration: " + config +
                        ":2: colour: unknown key"));
  CHECK(contains(http_get("http://127.0.0.1:" + std::to_string(port) + "/status"), "outpost"));
  // A good one applies (the budget) at once.
  write_text(config,
             config_text(p.store(), port, p.repo(), p.root_hex, "[link]\ndaily_budget = \"5M\"\n"));
  d.signal(SIGHUP);
  REQUIRE(d.wait_logged("reloaded " + config));
  CHECK(eventually([&] { return contains(p.node({"budget"}).out, "5"); }));

  auto [code, seconds] = d.stop();
  CHECK(code == 0);
  CHECK(seconds < 5);
  CHECK(d.logged("stopping (SIGTERM)"));
  CHECK(d.logged("stopped"));
  CHECK_FALSE(fs::exists(p.store() + "/serve.sock"));
  // Without a daemon, status and sync --now work on the store directly.
  RunResult direct = p.node({"status"});
  CHECK(direct.exit_code == 0);
  CHECK_FALSE(contains(direct.out, "daemon:"));
  CHECK(contains(direct.out, "bundles:   2"));
  RunResult now = p.node({"sync", "--now"});
  CHECK(now.exit_code == 0);
  CHECK(contains(now.out, "up to date"));
}

TEST_CASE("a sync of many bundles logs one short line: the first 20 by name and a count",
          "[integration][serve]") {
  Published p;
  const std::string batch = p.dir / "batch";
  for (int i = 0; i < 24; ++i) {
    const std::string d = batch + "/log" + std::to_string(i);
    make_dirs(d);
    write_text(d + "/bundle.json", "{\"name\": \"un/ga/LOG-" + std::to_string(i) + "\"}");
    write_text(d + "/text.md", "Bundle " + std::to_string(i) + " of a library.\n");
  }
  p.must(
      {"publish", p.repo(), "--key", p.keys() + "/un.key", "--keys", p.keys(), "--batch", batch});
  const int port = unused_port();
  const std::string config = p.dir / "outpost.toml";
  write_text(config, config_text(p.store(), port, p.repo(), p.root_hex));
  Daemon d(config, p.dir / "serve.log");
  REQUIRE(d.wait_logged("synced from " + p.repo()));
  const std::string log = d.log();
  const std::string line = log.substr(log.find("synced from"));
  INFO(line);
  // 26 bundles: the two samples and the 24 of the batch.
  CHECK(contains(line, " 0->1 by "));
  CHECK(contains(line, " and 6 more ("));
  CHECK(line.substr(0, line.find('\n')).size() < 2000);
  CHECK(d.stop().first == 0);
  CHECK(p.node({"ls"}).out.find("un/ga/LOG-23") != std::string::npos);
}

TEST_CASE(
    "two nodes: the second syncs from the first over loopback, then uses it as a mirror "
    "when the origin is down",
    "[integration][serve][http]") {
  Published p;
  auto origin = std::make_unique<Nginx>(p.repo());
  REQUIRE_RIG(*origin);
  REQUIRE_CURL();
  const int port = unused_port();
  const std::string config = p.dir / "outpost.toml";
  const std::string office = p.dir / "office";
  write_text(config, config_text(office, port, origin->url(), p.root_hex));
  Daemon d(config, p.dir / "serve.log");
  REQUIRE(d.wait_logged("synced from " + origin->url()));
  const std::string id = served_repository(port);
  REQUIRE(id.size() == 16);
  const std::string peer = "http://127.0.0.1:" + std::to_string(port) + "/repo/" + id + "/";

  // A kiosk subscribes to the office node as it would to any mirror.
  TempDir kiosk;
  auto on_kiosk = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--store", kiosk.path()});
    return run_outpost(args);
  };
  RunResult sub = on_kiosk({"subscribe", peer, "--root-pubkey", p.root_hex});
  INFO(sub.err);
  REQUIRE(sub.exit_code == 0);
  RunResult synced = on_kiosk({"sync"});
  INFO(synced.err);
  REQUIRE(synced.exit_code == 0);
  CHECK(on_kiosk({"cat", "itu/ict/digital-divide-2019", "data.csv"}).out ==
        read_text(p.indicator_src() + "/data.csv"));

  // Many pieces in one response: the patches the office node kept, as one pack.
  std::string hashes;
  for (const auto& f : files_ending(p.repo() + "/objects", ".patch")) {
    hashes += fs::path(f).stem().string() + ",";
  }
  hashes += std::string(64, '0');  // one it does not hold
  RunResult pieces = run_program({curl(), "-s", "-D", "-", peer + "pieces?patches=" + hashes});
  CHECK(contains(pieces.out, "200 OK"));
  CHECK(contains(pieces.out, "X-Outpost-Missing: 1"));
  CHECK(contains(pieces.out, "outpack1"));
  auto pieces_code = [&](const std::string& query) {
    return run_program({curl(), "-s", "-o", "/dev/null", "-w", "%{http_code}", peer + query}).out;
  };
  CHECK(pieces_code("pieces?chunks=" + std::string(64, '0')) == "404");  // none held
  CHECK(pieces_code("pieces?chunks=xyz") == "400");
  std::string absurd = "pieces?chunks=";
  for (int i = 0; i < 1000; ++i) absurd += std::string(64, 'a') + ",";
  CHECK(pieces_code(absurd).rfind('4', 0) == 0);  // refused: far too many

  // A node of the origin with the office node as its mirror.
  TempDir field;
  auto on_field = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--store", field.path()});
    return run_outpost(args);
  };
  REQUIRE(on_field({"subscribe", origin->url(), "--root-pubkey", p.root_hex, "--mirror", peer})
              .exit_code == 0);
  REQUIRE(on_field({"sync"}).exit_code == 0);

  // Version 2 reaches the office node (sync --now goes through the daemon)...
  std::string csv = read_text(p.indicator_src() + "/data.csv");
  csv += "17,17.6,17.6.1,MOBILE_BB_PER100,extra row,001,World,2020,80,PER_100_POP,,ITU,\n";
  write_text(p.indicator_src() + "/data.csv", csv);
  REQUIRE(p.publish_indicator().exit_code == 0);
  RunResult now = run_outpost({"sync", "--now", "--store", office});
  INFO(now.err);
  CHECK(now.exit_code == 0);
  CHECK(contains(now.out, "(by the daemon)"));
  CHECK(contains(now.out, "digital-divide-2019 1->2"));

  // ...then the origin goes away: the field node gets version 2 from the office node.
  origin.reset();
  RunResult from_mirror = on_field({"sync", "--json", "--retries", "0"});
  INFO(from_mirror.out << from_mirror.err);
  CHECK(from_mirror.exit_code == 0);
  CHECK(contains(from_mirror.out, peer));
  CHECK(on_field({"cat", "itu/ict/digital-divide-2019", "data.csv"}).out == csv);
  // And the kiosk updates from the office node too.
  CHECK(on_kiosk({"sync"}).exit_code == 0);
  CHECK(on_kiosk({"cat", "itu/ict/digital-divide-2019", "data.csv"}).out == csv);
  // Peers changed nothing on the office node: it holds what it synced, and verifies.
  CHECK(run_outpost({"verify", "--store", office}).exit_code == 0);
  auto [code, seconds] = d.stop();
  CHECK(code == 0);
  CHECK(seconds < 5);
}

namespace {

// A daemon's store ("office") subscribed to the samples on nginx, its link capped at 1 KB/s so
// that a sync takes seconds; full_speed() lifts the cap.
struct SlowOrigin {
  Published p;
  Nginx origin{p.repo()};
  const int port = unused_port();
  const std::string config = p.dir / "outpost.toml";
  const std::string office = p.dir / "office";
  SlowOrigin() {
    write_text(config,
               config_text(office, port, origin.url(), p.root_hex, "[link]\nrate = \"1k\"\n"));
  }
  void full_speed() { write_text(config, config_text(office, port, origin.url(), p.root_hex)); }
  // The daemon is under way: the first patch was asked for.
  bool syncing() { return contains(log_text(origin), ".patch"); }
  bool synced_whole() {
    return run_outpost({"cat", "itu/ict/digital-divide-2019", "data.csv", "--store", office}).out ==
           read_text(p.indicator_src() + "/data.csv");
  }
};

}  // namespace

TEST_CASE(
    "bad input: SIGTERM in the middle of a sync stops within 5 s, and the next start "
    "finishes it",
    "[integration][serve][http]") {
  SlowOrigin s;
  REQUIRE_RIG(s.origin);
  {
    Daemon d(s.config, s.p.dir / "serve.log");
    REQUIRE(eventually([&] { return s.syncing(); }, 30));
    auto [code, seconds] = d.stop();
    CHECK(code == 0);
    CHECK(seconds < 5);
    CHECK(d.logged("sync stopped; verified pieces kept"));
  }
  s.full_speed();
  Daemon again(s.config, s.p.dir / "serve.log");
  REQUIRE(again.wait_logged("synced from " + s.origin.url()));
  CHECK(s.synced_whole());
  CHECK(again.stop().first == 0);
}

TEST_CASE(
    "a sync worker killed in the middle of a sync is one failed round: the kiosk and peer "
    "serving stay up, the store is sound and the next round finishes it",
    "[integration][serve][http]") {
  SlowOrigin s;
  REQUIRE_RIG(s.origin);
  Daemon d(s.config, s.p.dir / "serve.log");
  REQUIRE(eventually([&] { return s.syncing(); }, 30));
  std::vector<int> workers;
  REQUIRE(eventually([&] { return !(workers = d.workers("__node")).empty(); }, 10));
  // As the kernel's out-of-memory killer would.
  for (int w : workers) ::kill(w, SIGKILL);
  REQUIRE(d.wait_logged("sync failed"));
  CHECK(d.logged("the node worker was ended by signal 9"));
  const std::string base = "http://127.0.0.1:" + std::to_string(s.port);
  CHECK(contains(http_get(base + "/status"), "<h1>outpost node</h1>"));
  CHECK(contains(http_get(base + "/"), "<html"));
  CHECK(run_outpost({"verify", "--store", s.office}).exit_code == 0);
  // The operator asks again, at full speed: the round resumes from what was verified.
  s.full_speed();
  d.signal(SIGHUP);
  REQUIRE(d.wait_logged("reloaded " + s.config));
  REQUIRE(run_outpost({"sync", "--now", "--store", s.office}).exit_code == 0);
  CHECK(s.synced_whole());
  // None is left behind (one the round that follows may start ends by itself).
  CHECK(eventually([&] { return d.workers("__node").empty(); }, 20));
  CHECK(d.stop().first == 0);
}

TEST_CASE("bad input: SIGTERM in the middle of a peer transfer stops within 5 s",
          "[integration][serve]") {
  REQUIRE_CURL();
  Published p;
  const int port = unused_port();
  const std::string config = p.dir / "outpost.toml";
  write_text(config, config_text(p.store(), port, p.repo(), p.root_hex));
  Daemon d(config, p.dir / "serve.log");
  REQUIRE(d.wait_logged("synced from"));
  const std::string id = served_repository(port);
  REQUIRE_FALSE(id.empty());
  // The biggest file a peer would fetch, read at 200 bytes/s.
  const auto patches = files_ending(p.repo() + "/objects", ".patch");
  REQUIRE_FALSE(patches.empty());
  std::string biggest = patches[0];
  for (const auto& f : patches) {
    if (fs::file_size(f) > fs::file_size(biggest)) biggest = f;
  }
  const std::string rel = biggest.substr(p.repo().size() + 1);
  Child slow({curl(), "-s", "--limit-rate", "200", "-o", "/dev/null",
              "http://127.0.0.1:" + std::to_string(port) + "/repo/" + id + "/" + rel});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto [code, seconds] = d.stop();
  CHECK(code == 0);
  CHECK(seconds < 5);
  CHECK(run_outpost({"verify", "--store", p.store()}).exit_code == 0);
}

namespace {

// A port on loopback that takes connections (the kernel completes them) and never answers;
// returns the descriptor, to close, and sets *port.
int silent_listener(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 16) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

}  // namespace

TEST_CASE("bad input: SIGTERM while a first subscription waits on a silent server stops within 5 s",
          "[integration][serve]") {
  Published p;
  int silent = 0;
  const int fd = silent_listener(&silent);
  const int port = unused_port();
  const std::string config = p.dir / "outpost.toml";
  write_text(config,
             config_text(p.dir / "office", port,
                         "http://127.0.0.1:" + std::to_string(silent) + "/repo", p.root_hex));
  Daemon d(config, p.dir / "serve.log");
  REQUIRE(d.wait_logged("ready: http on"));
  REQUIRE(eventually([&] { return !d.workers("__node").empty(); }, 10));  // subscribing
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto [code, seconds] = d.stop();
  ::close(fd);
  CHECK(code == 0);
  CHECK(seconds < 5);
  CHECK_FALSE(d.logged("cannot subscribe"));
}

TEST_CASE("bad input: serve on a port already in use fails with one error line",
          "[integration][serve]") {
  Published p;
  int port = 0;
  const int fd = silent_listener(&port);
  const std::string config = p.dir / "outpost.toml";
  write_text(config, config_text(p.store(), port, p.repo(), p.root_hex));
  RunResult r = run_outpost({"serve", "--config", config});
  ::close(fd);
  CHECK(r.exit_code == 6);
  CHECK(one_error_line(r));
  CHECK(contains(r.err, "127.0.0.1:" + std::to_string(port) + ": address already in use"));
}

TEST_CASE("bad input: serve with a malformed or missing configuration names the problem",
          "[integration][serve]") {
  TempDir dir;
  write_text(dir / "bad.toml", "store = \"/tmp/x\"\n[link]\nwindows = [\"evenings\"]\n");
  RunResult bad = run_outpost({"serve", "--config", dir / "bad.toml", "--check-config"});
  CHECK(bad.exit_code == 2);
  CHECK(one_error_line(bad));
  CHECK(contains(bad.err, dir / "bad.toml:3: link.windows: 'evenings' is not a window"));
  RunResult missing = run_outpost({"serve", "--config", dir / "none.toml"});
  CHECK(missing.exit_code == 3);
  CHECK(contains(missing.err, "no configuration file at " + dir / "none.toml"));
}

TEST_CASE("a peer serves packs by range, and refuses pieces it does not hold or absurd requests",
          "[integration][serve]") {
  REQUIRE_CURL();
  Published p;
  // Without patches the office node fetches by chunks: it holds the published index and the
  // chunks as the packs carried them, which is what a peer can serve from packs.
  for (const auto& f : files_ending(p.repo() + "/objects", ".patch")) fs::remove(f);
  const int port = unused_port();
  const std::string config = p.dir / "outpost.toml";
  write_text(config, config_text(p.store(), port, p.repo(), p.root_hex));
  Daemon d(config, p.dir / "serve.log");
  REQUIRE(d.wait_logged("by chunks"));
  const std::string id = served_repository(port);
  REQUIRE(id.size() == 16);
  const std::string peer = "http://127.0.0.1:" + std::to_string(port) + "/repo/" + id + "/";

  TempDir kiosk;
  REQUIRE(run_outpost({"subscribe", peer, "--root-pubkey", p.root_hex, "--store", kiosk.path()})
              .exit_code == 0);
  RunResult synced = run_outpost({"sync", "--json", "--store", kiosk.path()});
  INFO(synced.err);
  REQUIRE(synced.exit_code == 0);
  CHECK(contains(synced.out, "\"route\": \"chunks\""));
  CHECK(run_outpost({"cat", "un/ga/A-RES-75-202", "A-RES-75-202.en.md", "--store", kiosk.path()})
            .out == read_text(p.resolution_src() + "/A-RES-75-202.en.md"));

  const auto packs = files_ending(p.repo() + "/packs", ".pack");
  REQUIRE_FALSE(packs.empty());
  const std::string pack_url = peer + packs[0].substr(p.repo().size() + 1);
  auto code = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {curl(), "-s", "-o", "/dev/null", "-w", "%{http_code}"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_program(argv).out;
  };
  // The first chunk record's header and bytes, as in the published pack.
  const outpost::Bytes published = read_all(packs[0]);
  RunResult head = run_program({curl(), "-s", "-r", "0-99", pack_url});
  CHECK(head.out == std::string(published.begin(), published.begin() + 100));
  CHECK(code({pack_url}) == "416");                                // no whole pack to send
  CHECK(code({"-r", "999999999-1000000000", pack_url}) == "404");  // past what it holds
  std::string many;
  for (int i = 0; i < 1100; ++i) many += "8-9,";
  CHECK(code({"-r", many.substr(0, many.size() - 1), pack_url}) == "416");
  CHECK(code({"-r", "0-99", peer + "packs/" + std::string(64, '0') + ".pack"}) == "404");
  CHECK(code({peer + "objects/00/" + std::string(64, '0') + ".patch"}) == "404");
  CHECK(code({peer + "metadata/999.root.json"}) == "404");
  CHECK(code({"http://127.0.0.1:" + std::to_string(port) +
              "/repo/0000000000000000/metadata/"
              "timestamp.json"}) == "404");
  CHECK(code({"-X", "PUT", peer + "metadata/timestamp.json"}) == "405");
  CHECK(d.stop().first == 0);
}

TEST_CASE("a subscription's bundles filter holds only the bundles under its prefixes",
          "[integration][serve]") {
  REQUIRE_CURL();
  Published p;
  const int port = unused_port();
  const std::string config = p.dir / "outpost.toml";
  write_text(config,
             config_text(p.store(), port, p.repo(), p.root_hex) + "bundles = [\"itu/ict\"]\n");
  Daemon d(config, p.dir / "serve.log");
  REQUIRE(d.wait_logged("synced from " + p.repo()));
  RunResult ls = p.node({"ls"});
  CHECK(ls.exit_code == 0);
  CHECK(contains(ls.out, "itu/ict/digital-divide-2019"));
  CHECK_FALSE(contains(ls.out, "un/ga/A-RES-75-202"));
  CHECK(d.stop().first == 0);
  // Without the filter the same store takes the rest.
  write_text(config, config_text(p.store(), port, p.repo(), p.root_hex));
  Daemon again(config, p.dir / "serve2.log");
  REQUIRE(again.wait_logged("synced from " + p.repo()));
  CHECK(contains(p.node({"ls"}).out, "un/ga/A-RES-75-202"));
  CHECK(again.stop().first == 0);
}

// The tools a DNS-SD test needs, missing ones as " name name"; "" when all are there.
std::string missing_lan_tools() {
  std::string list;
  for (const char* tool : {"unshare", "dbus-daemon", "avahi-daemon", "ip", "curl"}) {
    if (find_program(tool, {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}).empty()) {
      list += std::string(" ") + tool;
    }
  }
  return list;
}

// The start of a script run in mount, network and PID namespaces of its own: a tmpfs /run,
// loopback up, the D-Bus system bus and avahi-daemon, so the machine's /run and LAN are
// untouched and all of it ends with the test. Exit 77 when loopback cannot be brought up
// (no CAP_NET_ADMIN: a container started without it, such as systemd-nspawn's default).
const char* kLanNamespaceScript =
    "set -e\n"
    "mount -t tmpfs tmpfs /run\n"
    "mkdir -p /run/dbus /run/avahi-daemon\n"
    "if ! ip link set lo up 2>/dev/null; then exit 77; fi\n"
    "dbus-daemon --system --fork\n"
    "avahi-daemon --no-drop-root --no-rlimits -D\n";

// Runs a script that starts with kLanNamespaceScript in namespaces of its own. /proc is
// mounted again for the new PID namespace: LeakSanitizer reads /proc/<its pid>/task at exit,
// and with the machine's /proc that pid is another process or none ("LeakSanitizer has
// encountered a fatal error", exit 1).
RunResult run_in_lan_namespaces(const std::string& script) {
  return run_program({find_program("unshare", {"/usr/bin"}), "--mount", "--net", "--pid", "--fork",
                      "--mount-proc", "/bin/sh", script});
}

// True when the script could not bring loopback up: a failure under CI (which can), a loud
// skip elsewhere.
bool lan_unavailable(const RunResult& r) {
  if (r.exit_code != 77) return false;
  const char* why = "cannot bring loopback up in a network namespace (no CAP_NET_ADMIN here)";
  if (std::getenv("CI") != nullptr) FAIL(why);
  WARN("skipped: " << why);
  return true;
}

TEST_CASE("the daemon announces itself over DNS-SD through avahi-daemon when dns_sd is on",
          "[integration][serve]") {
  const std::string missing = missing_lan_tools();
  if (!missing.empty()) {
    if (std::getenv("CI") != nullptr) FAIL("missing:" << missing);
    WARN("skipped, missing:" << missing);
    return;
  }
  TempDir dir;
  const std::string config = dir / "outpost.toml";
  write_text(config, "store = \"" + (dir / "store") +
                         "\"\n[http]\nlisten = [\"127.0.0.1:0\"]\n[discovery]\ndns_sd = true\n");
  const std::string script = std::string(kLanNamespaceScript) + "'" + std::string(OUTPOST_BINARY) +
                             "' serve --config '" + config + "' 2>'" + (dir / "serve.log") +
                             "' &\n"
                             "pid=$!\n"
                             "for i in $(seq 1 200); do\n"
                             "  grep -q 'dns-sd: announced' '" +
                             (dir / "serve.log") +
                             "' 2>/dev/null && break\n"
                             "  sleep 0.1\n"
                             "done\n"
                             "kill -TERM $pid || true\nrc=0; wait $pid || rc=$?; echo $rc >'" +
                             (dir / "serve.rc") + "'\n";
  write_text(dir / "run.sh", script);
  RunResult r = run_in_lan_namespaces(dir / "run.sh");
  if (lan_unavailable(r)) return;
  const std::string log = fs::exists(dir / "serve.log") ? read_text(dir / "serve.log") : "";
  const std::string rc = fs::exists(dir / "serve.rc") ? read_text(dir / "serve.rc") : "";
  INFO("serve exit " << rc << r.err << r.out << log);
  CHECK(r.exit_code == 0);
  CHECK(rc == "0\n");
  CHECK(contains(log, "dns-sd: announced 'outpost on "));
  CHECK(contains(log, "(_outpost._tcp, port "));
  CHECK(contains(log, "stopped"));
}

TEST_CASE(
    "LAN discovery: a node with no mirror configured and its origin down finds another node "
    "over DNS-SD, subscribes and syncs through it, and shows it in /status and /metrics",
    "[integration][serve]") {
  const std::string missing = missing_lan_tools();
  if (!missing.empty()) {
    if (std::getenv("CI") != nullptr) FAIL("missing:" << missing);
    WARN("skipped, missing:" << missing);
    return;
  }
  Published p;
  // In the namespaces nothing listens on dead_port: the kiosk's origin is down throughout.
  const int office_port = unused_port(), kiosk_port = unused_port(), dead_port = unused_port();
  const std::string office = p.dir / "office", kiosk = p.dir / "kiosk";
  const std::string dead = "http://127.0.0.1:" + std::to_string(dead_port) + "/repo";
  write_text(p.dir / "office.toml", config_text(office, office_port, p.repo(), p.root_hex,
                                                "[discovery]\ndns_sd = true\n"));
  // No mirror, and browse left at its default (on in a build with Avahi).
  write_text(p.dir / "kiosk.toml", config_text(kiosk, kiosk_port, dead, p.root_hex));
  const std::string bin = OUTPOST_BINARY;
  const std::string k = "http://127.0.0.1:" + std::to_string(kiosk_port);
  auto wait_for = [](const std::string& text, const std::string& log) {
    return "for i in $(seq 1 300); do\n  grep -q '" + text + "' '" + log +
           "' 2>/dev/null && break\n  sleep 0.1\ndone\n";
  };
  const std::string script =
      std::string(kLanNamespaceScript) + "'" + bin + "' serve --config '" +
      (p.dir / "office.toml") + "' 2>'" + (p.dir / "office.log") + "' &\n" + "a=$!\n" +
      wait_for("synced from", p.dir / "office.log") + "'" + bin + "' serve --config '" +
      (p.dir / "kiosk.toml") + "' 2>'" + (p.dir / "kiosk.log") + "' &\n" + "b=$!\n" +
      wait_for("synced from http", p.dir / "kiosk.log") + "curl -s " + k + "/status.json >'" +
      (p.dir / "status.json") + "' || true\ncurl -s " + k + "/metrics >'" +
      (p.dir / "metrics.txt") + "' || true\n" +
      // Each daemon's exit status on its own, so that a failure says which one and how.
      "kill -TERM $a $b || true\nrc=0; wait $a || rc=$?; echo $rc >'" + (p.dir / "office.rc") +
      "'\nrc=0; wait $b || rc=$?; echo $rc >'" + (p.dir / "kiosk.rc") + "'\n";
  write_text(p.dir / "run.sh", script);
  RunResult r = run_in_lan_namespaces(p.dir / "run.sh");
  if (lan_unavailable(r)) return;
  auto text = [&](const std::string& name) {
    return fs::exists(p.dir / name) ? read_text(p.dir / name) : std::string();
  };
  const std::string log = text("kiosk.log");
  // The short facts first: a long message is cut in the middle by CI's report.
  INFO("office exit " << text("office.rc") << "kiosk exit " << text("kiosk.rc") << r.err << r.out
                      << "--- office log\n"
                      << text("office.log") << "--- kiosk log\n"
                      << log);
  CHECK(r.exit_code == 0);
  CHECK(text("office.rc") == "0\n");
  CHECK(text("kiosk.rc") == "0\n");
  const std::string office_url = "http://127.0.0.1:" + std::to_string(office_port) + "/repo/";
  CHECK(contains(log, "dns-sd: found node 'outpost on "));
  CHECK(contains(log, "synced from " + office_url));
  CHECK(contains(log, "stopped"));
  CHECK(contains(text("office.log"), "stopped"));
  CHECK_FALSE(contains(text("office.log") + log, "Sanitizer"));
  // What it holds came from the office node and verifies.
  CHECK(run_outpost({"cat", "itu/ict/digital-divide-2019", "data.csv", "--store", kiosk}).out ==
        read_text(p.indicator_src() + "/data.csv"));
  CHECK(run_outpost({"verify", "--store", kiosk}).exit_code == 0);
  // The office node is listed with what it serves; the subscription still names the origin
  // (the LAN node is a mirror at run time, never written down).
  auto status = outpost::parse_json(text("status.json"));
  REQUIRE(status.ok());
  const outpost::Json* peers = status->find("peers");
  REQUIRE(peers != nullptr);
  REQUIRE(peers->as_array().size() == 1);
  CHECK(peers->as_array()[0].find("url")->as_string() == office_url);
  CHECK(peers->as_array()[0].find("repositories")->as_array().size() == 1);
  CHECK(status->find("repositories")->as_array()[0].find("location")->as_string() == dead);
  CHECK(contains(text("metrics.txt"), "outpost_lan_peers 1"));
  CHECK_FALSE(contains(read_text(p.dir / "kiosk.toml"), "mirror"));
}
