// The command line itself, through the `outpost` binary: a misspelt option or a malformed or
// out-of-range value is refused (the error line, the command's usage line, exit 2) before
// anything runs; every command prints its own --help; a subscribed path is recorded absolute;
// a password in a mirror URL never reaches the output; checkout does not merge into a folder
// that holds something. Regression tests are named after the bugs (issue 7).
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "fixture.h"
#include "support/nginx.h"

using namespace outpost::test;
namespace fs = std::filesystem;

namespace {

constexpr const char* kResolution = "un/ga/A-RES-75-202";
constexpr const char* kResolutionText = "A-RES-75-202.en.md";

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A refused command line: nothing on stdout; on stderr the error line naming the problem,
// then the usage of the command ("outpost ls", "outpost repo init"); exit 2.
void check_usage_error(const RunResult& r, const std::string& command, const std::string& what) {
  INFO("exit " << r.exit_code << ", stderr: " << r.err << "stdout: " << r.out);
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  const std::size_t first_end = r.err.find('\n');
  REQUIRE(first_end != std::string::npos);
  const std::string first = r.err.substr(0, first_end);
  CHECK(first.rfind("outpost: error: ", 0) == 0);
  CHECK(contains(first, what));
  CHECK(r.err.compare(first_end + 1, 15 + command.size(), "usage: outpost " + command) == 0);
}

// A node subscribed to the fixture's repository that holds version 1 of both samples.
struct Synced : Published {
  Synced() {
    RunResult sub = subscribe();
    INFO(sub.err);
    REQUIRE(sub.exit_code == 0);
    RunResult sync = node({"sync"});
    INFO(sync.err);
    REQUIRE(sync.exit_code == 0);
  }
};

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

// ---- strict parsing ----

TEST_CASE("ls --stroe is refused instead of listing the default store", "[integration][cli]") {
  Synced p;
  // The default store holds bundles: before the fix, the typo was ignored and this listed them.
  RunResult r = run_outpost({"ls", "--stroe", "/data/store"}, {"OUTPOST_STORE=" + p.store()});
  check_usage_error(r, "ls", "unknown option --stroe");
}

TEST_CASE("repo init --threshold two is refused and creates no repository", "[integration][cli]") {
  TempDir dir;
  for (const char* role : {"root", "targets", "snapshot", "timestamp"}) {
    REQUIRE(run_outpost({"keygen", "--role", role, "--out", dir / (std::string(role) + ".key")})
                .exit_code == 0);
  }
  for (const char* bad : {"two", "0", "1.5", "-1", "99999999999999999999"}) {
    RunResult r =
        run_outpost({"repo", "init", dir / "repo", "--keys", dir.path(), "--threshold", bad});
    check_usage_error(r, "repo init", "--threshold: '" + std::string(bad) + "'");
    CHECK_FALSE(fs::exists(dir / "repo"));
  }
  CHECK(run_outpost({"repo", "init", dir / "repo", "--keys", dir.path(), "--threshold", "1"})
            .exit_code == 0);
}

TEST_CASE("budget --day 99999999999999999999G is refused and the budget stays as it was",
          "[integration][cli]") {
  TempDir dir;
  const std::string store = dir / "store";
  REQUIRE(run_outpost({"budget", "--day", "5M", "--store", store}).exit_code == 0);
  for (const char* bad :
       {"99999999999999999999G", "18446744073709551616", "2000000G", "-5M", "5X", "M", ""}) {
    RunResult r = run_outpost({"budget", "--day", bad, "--store", store});
    check_usage_error(r, "budget", "--day: '" + std::string(bad) + "'");
  }
  RunResult month = run_outpost({"budget", "--month", "1.5G", "--store", store, "--json"});
  INFO(month.err);
  REQUIRE(month.exit_code == 0);
  CHECK(contains(month.out, "\"day\": 5000000,"));
  CHECK(contains(month.out, "\"month\": 1500000000,"));
}

TEST_CASE("sync --retries -1 is refused before anything is fetched", "[integration][cli]") {
  Published p;
  REQUIRE(p.subscribe().exit_code == 0);
  check_usage_error(p.node({"sync", "--retries", "-1"}), "sync", "--retries: '-1'");
  check_usage_error(p.node({"sync", "--retries=-1"}), "sync", "--retries: '-1'");
  check_usage_error(p.node({"sync", "--retries", "1000"}), "sync", "--retries: '1000'");
  check_usage_error(p.node({"sync", "--backoff", "soon"}), "sync", "--backoff: 'soon'");
  check_usage_error(p.node({"sync", "--rate", "fast"}), "sync", "--rate: 'fast'");
  check_usage_error(run_outpost({"sync", "--store", p.store(), "--retries"}), "sync",
                    "option --retries needs a value");
  RunResult ls = p.node({"ls", "--json"});
  INFO(ls.err);
  REQUIRE(ls.exit_code == 0);
  CHECK(ls.out == "[]\n");  // nothing was synced
}

TEST_CASE("an extra argument or a missing one is a usage error", "[integration][cli]") {
  Synced p;
  check_usage_error(p.node({"cat", kResolution, kResolutionText, "more"}), "cat",
                    "unexpected argument 'more'");
  check_usage_error(p.node({"ls", "status"}), "ls", "unexpected argument 'status'");
  check_usage_error(p.node({"show"}), "show", "missing BUNDLE");
  check_usage_error(p.node({"show", kResolution, "--version", "0"}), "show", "--version: '0'");
  check_usage_error(p.node({"gc", "--retain", "0"}), "gc", "--retain: '0'");
  check_usage_error(run_outpost({"keygen", "--role", "boss", "--out", p.dir / "k"}), "keygen",
                    "--role: 'boss'");
  CHECK_FALSE(fs::exists(p.dir / "k"));
  check_usage_error(run_outpost({"repo"}), "repo", "missing command after 'repo'");
  check_usage_error(run_outpost({"repo", "bogus", p.repo()}), "repo",
                    "unknown command 'repo bogus'");
}

TEST_CASE("an unknown command is refused with exit 2", "[integration][cli]") {
  RunResult r = run_outpost({"lsx", "--json"});
  check_usage_error(r, "COMMAND", "unknown command 'lsx'");
}

TEST_CASE("the global options --store and --json work before the command and after it",
          "[integration][cli]") {
  Synced p;
  RunResult before = run_outpost({"--store", p.store(), "--json", "ls"});
  INFO(before.err);
  REQUIRE(before.exit_code == 0);
  CHECK(contains(before.out, "\"name\": \"un/ga/A-RES-75-202\""));
  CHECK(before.out == run_outpost({"ls", "--json", "--store", p.store()}).out);
  // An option the command does not take is refused wherever it stands.
  check_usage_error(
      run_outpost({"--store", p.store(), "keygen", "--role", "root", "--out", p.dir / "k"}),
      "keygen", "--store does not apply");
  check_usage_error(
      run_outpost({"keygen", "--role", "root", "--out", p.dir / "k", "--store", p.store()}),
      "keygen", "unknown option --store");
  CHECK_FALSE(fs::exists(p.dir / "k"));
}

TEST_CASE("every command prints its own --help", "[integration][cli]") {
  const std::vector<std::vector<std::string>> commands = {{"keygen"},
                                                          {"repo"},
                                                          {"repo", "init"},
                                                          {"repo", "delegate"},
                                                          {"repo", "refresh"},
                                                          {"repo", "rotate"},
                                                          {"publish"},
                                                          {"subscribe"},
                                                          {"sync"},
                                                          {"budget"},
                                                          {"ls"},
                                                          {"show"},
                                                          {"cat"},
                                                          {"checkout"},
                                                          {"verify"},
                                                          {"gc"},
                                                          {"status"}};
  TempDir dir;
  for (const auto& command : commands) {
    std::string name;
    for (const auto& word : command) name += (name.empty() ? "" : " ") + word;
    INFO("outpost " << name << " --help");
    for (const char* help : {"--help", "-h"}) {
      std::vector<std::string> args = command;
      args.push_back(help);
      // A store that does not exist: help opens nothing.
      RunResult r = run_outpost(args, {"OUTPOST_STORE=" + dir / "none"});
      INFO(r.err);
      CHECK(r.exit_code == 0);
      CHECK(r.err.empty());
      CHECK(r.out.rfind("usage: outpost " + name, 0) == 0);
      CHECK(contains(r.out, "-h, --help"));
    }
    std::vector<std::string> args = {"help"};
    args.insert(args.end(), command.begin(), command.end());
    RunResult r = run_outpost(args);
    CHECK(r.exit_code == 0);
    CHECK(r.out.rfind("usage: outpost " + name, 0) == 0);
  }
  CHECK_FALSE(fs::exists(dir / "none"));
  RunResult all = run_outpost({"--help"});
  CHECK(all.exit_code == 0);
  CHECK(contains(all.out, "outpost subscribe PATH_OR_URL"));
}

// ---- subscriptions ----

TEST_CASE("subscribe repo stores the path absolute, so a sync from another folder works",
          "[integration][cli]") {
  Published p;
  RunResult sub = run_outpost_in(
      p.dir.path(), {"subscribe", "repo", "--root-pubkey", p.root_hex, "--store", p.store()});
  INFO(sub.err);
  REQUIRE(sub.exit_code == 0);
  const std::string absolute = fs::canonical(p.repo()).string();
  CHECK(contains(sub.out, "subscribed to " + absolute + " "));

  // cron and the daemon run from another folder.
  RunResult sync = run_outpost_in("/", {"sync", "--store", p.store()});
  INFO(sync.err);
  REQUIRE(sync.exit_code == 0);
  CHECK(contains(sync.out, kResolution));
  RunResult status = run_outpost_in("/", {"status", "--json", "--store", p.store()});
  CHECK(contains(status.out, "\"location\": \"" + absolute + "\""));
}

TEST_CASE("a password in a mirror URL is redacted by subscribe, status and sync",
          "[integration][cli]") {
  Published p;
  // A URL nothing answers, tried first; the local repository answers as the mirror.
  const std::string host = "127.0.0.1:" + std::to_string(unused_port());
  const std::string url = "http://reader:s3cret-pw@" + host + "/repo";
  const std::string shown = "http://reader:***@" + host + "/repo";
  const auto check_hidden = [&](const RunResult& r) {
    INFO("stdout: " << r.out << "stderr: " << r.err);
    CHECK_FALSE(contains(r.out, "s3cret"));
    CHECK_FALSE(contains(r.err, "s3cret"));
    CHECK(contains(r.out + r.err, shown));
  };

  RunResult sub = p.node(
      {"subscribe", url, "--mirror", p.repo(), "--root-pubkey", p.root_hex, "--retries", "0"});
  REQUIRE(sub.exit_code == 0);
  check_hidden(sub);
  check_hidden(p.node({"subscribe", url, "--mirror", p.repo(), "--root-pubkey", p.root_hex,
                       "--retries", "0", "--json"}));

  check_hidden(p.node({"status"}));
  check_hidden(p.node({"status", "--json"}));

  RunResult sync = p.node({"sync", "--retries", "0"});
  REQUIRE(sync.exit_code == 0);
  check_hidden(sync);  // "skipped http://reader:***@...: why"
  check_hidden(p.node({"sync", "--retries", "0", "--json"}));
  check_hidden(p.node({"sync", "--retries", "0", "--dry-run"}));

  // A failure names the URL in its error line: redacted too.
  RunResult failed = p.node({"sync", url, "--retries", "0"});
  CHECK(failed.exit_code != 0);
  check_hidden(failed);
}

// ---- checkout ----

TEST_CASE("checkout into a non-empty folder is refused instead of merging", "[integration][cli]") {
  Synced p;
  const std::string out = p.dir / "out";
  make_dirs(out);
  write_text(out + "/mine.txt", "not the bundle's\n");

  RunResult refused = p.node({"checkout", kResolution, out});
  check_refused(refused, 1);
  CHECK(contains(refused.err, "not empty"));
  CHECK(contains(refused.err, "--force"));
  CHECK(entries(out) == std::vector<std::string>{"mine.txt"});

  // --force writes the bundle's files into it and keeps the others.
  RunResult forced = p.node({"checkout", kResolution, out, "--force"});
  INFO(forced.err);
  REQUIRE(forced.exit_code == 0);
  CHECK(read_text(out + "/mine.txt") == "not the bundle's\n");
  CHECK(read_text(out + "/" + kResolutionText) ==
        read_text(p.resolution_src() + "/" + kResolutionText));

  // A file where the folder should be is refused, even with --force.
  write_text(p.dir / "file", "x");
  check_refused(p.node({"checkout", kResolution, p.dir / "file", "--force"}), 1);
}

TEST_CASE("checkout into a missing folder creates it, and into an empty one fills it",
          "[integration][cli]") {
  Synced p;
  const std::string fresh = p.dir / "new/and/deeper";
  RunResult r = p.node({"checkout", kResolution, fresh});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(read_text(fresh + "/" + kResolutionText) ==
        read_text(p.resolution_src() + "/" + kResolutionText));

  const std::string empty = p.dir / "empty";
  make_dirs(empty);
  RunResult e = p.node({"checkout", kResolution, empty});
  INFO(e.err);
  REQUIRE(e.exit_code == 0);
  CHECK(entries(empty) == entries(fresh));
}
