// The daemon's configuration file: every key, its defaults, and one test per kind of bad
// input (issue 10): each error names the file, the line, the key and the fix.
#include "outpost/serve/config.h"

#include <catch2/catch.hpp>

#include "support/test_support.h"

using namespace outpost;
using namespace outpost::serve;

namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

std::string error_of(const std::string& text) {
  auto c = parse_config(text, "/etc/outpost/outpost.toml");
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().code() == Code::kInvalidArgument);
  return c.error().message();
}

const char* kRootHex = "8f2c6a1b4d3e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

}  // namespace

TEST_CASE("a full configuration sets every key and leaves the rest at their defaults",
          "[serve][config]") {
  const std::string text = std::string(R"(
store = "/var/lib/outpost"
retain = 3

[http]
listen = ["0.0.0.0:8080", "[::]:8081"]
peer_serving = false
threads = 2

[link]
rate = "64k"
daily_budget = "50M"
monthly_budget = "1GiB"
windows = ["22:00-06:00", "12:30-13:00"]
backoff_min = 30
backoff_max = 3600

[[subscription]]
url = "https://example.org/repo"
root_pubkey = ")") + kRootHex +
                           R"("
mirrors = ["http://office.local:8080/repo/abc/"]
priority = 5

[[subscription]]
url = "/media/stick/repo"
root = "root.json"
)";
  auto c = parse_config(text, "/etc/outpost/outpost.toml");
  REQUIRE(c.ok());
  CHECK(c->store == "/var/lib/outpost");
  CHECK(c->admin_socket == "/var/lib/outpost/serve.sock");
  CHECK(c->retain == 3);
  CHECK(c->http.listen == std::vector<std::string>{"0.0.0.0:8080", "[::]:8081"});
  CHECK_FALSE(c->http.peer_serving);
  CHECK(c->http.threads == 2);
  CHECK(c->http.max_connections == 1024);  // default
  CHECK(c->link.rate == 64000);
  CHECK(c->link.daily_budget == 50'000'000);
  CHECK(c->link.monthly_budget == (1ull << 30));
  REQUIRE(c->link.windows.size() == 2);
  CHECK(c->link.windows[0] == Window{22 * 60, 6 * 60});
  CHECK(c->link.windows[1] == Window{12 * 60 + 30, 13 * 60});
  CHECK(c->link.check_interval == 900);  // default
  CHECK(c->link.backoff_min == 30);
  REQUIRE(c->subscriptions.size() == 2);
  CHECK(c->subscriptions[0].priority == 5);
  CHECK(c->subscriptions[0].mirrors.size() == 1);
  CHECK(c->subscriptions[1].root_json == "/etc/outpost/root.json");  // relative to the file
  CHECK(c->subscriptions[1].priority == 100);
}

TEST_CASE("bad config: a malformed value names the file, line, key and fix", "[serve][config]") {
  const std::string e = error_of("store = \"/s\"\n[link]\n\ndaily_budget = \"lots\"\n");
  CHECK(contains(e, "/etc/outpost/outpost.toml:4: link.daily_budget: 'lots' is not a number"));
  CHECK(contains(e, "\"50M\""));
  CHECK(contains(error_of("store = \"/s\"\n[http]\nthreads = \"four\"\n"),
                 "outpost.toml:3: http.threads: must be a whole number from 1 to 64"));
  CHECK(contains(error_of("store = \"/s\"\n[http]\nthreads = 1000\n"),
                 "http.threads: 1000 is out of range: use 1 to 64"));
  CHECK(contains(error_of("store = \"/s\"\n[link]\nwindows = [\"25:00-06:00\"]\n"),
                 "link.windows: '25:00-06:00' is not a window of local time"));
  CHECK(contains(error_of("store = \"/s\"\n[http]\nlisten = [\"localhost\"]\n"),
                 "http.listen: 'localhost' is not an address: write \"HOST:PORT\""));
  CHECK(contains(error_of("store = \"/s\"\n[link]\nbackoff_min = 600\nbackoff_max = 60\n"),
                 "link.backoff_max: is smaller than link.backoff_min"));
  CHECK(contains(error_of("store = \"/s\"\n[[subscription]]\nurl = \"https://x/r\"\n"),
                 "give exactly one of root_pubkey"));
  CHECK(contains(error_of("store = \"/s\"\n[[subscription]]\nurl = \"https://x/r\"\n"
                          "root_pubkey = \"abc\"\n"),
                 "outpost.toml:4: subscription.root_pubkey: must be 64 hex digits"));
  CHECK(contains(error_of("[http]\nthreads = 2\n"), "store: missing"));
  CHECK(contains(error_of("store = \"/s\"\n[link\n"), "outpost.toml:2: not valid TOML"));
}

TEST_CASE("bad config: an unknown key is refused with the key it was probably meant to be",
          "[serve][config]") {
  const std::string e = error_of("store = \"/s\"\n[link]\ndaly_budget = \"5M\"\n");
  CHECK(contains(e,
                 "outpost.toml:3: link.daly_budget: unknown key: did you mean "
                 "'link.daily_budget'?"));
  CHECK(
      contains(error_of("store = \"/s\"\ncolour = \"blue\"\n"), "colour: unknown key: remove it"));
}

TEST_CASE("bad config: a missing file is not found and says how to make one", "[serve][config]") {
  test::TempDir dir;
  auto c = load_config(dir / "nope.toml");
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().IsNotFound());
  CHECK(contains(c.error().message(), dir / "nope.toml"));
  CHECK(contains(c.error().message(), "dist/outpost.toml"));
}

TEST_CASE("windows parse as documented", "[serve][config]") {
  CHECK(parse_window("00:00-24:00").value() == Window{0, 0});
  CHECK_FALSE(parse_window("6-8").ok());
}

TEST_CASE("the example configuration in dist/ is valid", "[serve][config]") {
  auto c = load_config(std::string(OUTPOST_SOURCE_DIR) + "/dist/outpost.toml");
  INFO((c.ok() ? std::string() : c.error().message()));
  REQUIRE(c.ok());
  CHECK(c->store == "/var/lib/outpost");
  CHECK(c->http.peer_serving);
}

TEST_CASE("discovery: browsing for LAN nodes is on by default and can be turned off",
          "[serve][config]") {
  auto plain = parse_config("store = \"/s\"\n", "/etc/outpost/outpost.toml");
  REQUIRE(plain.ok());
  CHECK(plain->browse);
  CHECK_FALSE(plain->dns_sd);
  auto off =
      parse_config("store = \"/s\"\n[discovery]\ndns_sd = true\nbrowse = false\n", "/x.toml");
  REQUIRE(off.ok());
  CHECK_FALSE(off->browse);
  CHECK(off->dns_sd);
  CHECK(contains(error_of("store = \"/s\"\n[discovery]\nbrowse = \"yes\"\n"), "discovery.browse"));
}
