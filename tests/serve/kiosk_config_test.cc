// The [kiosk] section of the daemon's configuration (issue 11; docs/configuration.md): its
// defaults, every key, and each kind of bad value refused with the file, line and key.
#include <catch2/catch.hpp>

#include "outpost/serve/config.h"

using namespace outpost;
using namespace outpost::serve;

namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

constexpr const char* kFile = "/etc/outpost/outpost.toml";

std::string kiosk_error(const std::string& section) {
  auto c = parse_config("store = \"/var/lib/outpost\"\n" + section, kFile);
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().code() == Code::kInvalidArgument);
  return c.error().message();
}

}  // namespace

TEST_CASE("kiosk config: without a [kiosk] section the kiosk is on with its defaults",
          "[serve][config][kiosk]") {
  auto c = parse_config("store = \"/var/lib/outpost\"\n", kFile);
  REQUIRE(c.ok());
  CHECK(c->kiosk.enabled);
  CHECK(c->kiosk.index.empty());  // <store>/kiosk-index
  CHECK(c->kiosk.site_name == "outpost");
  CHECK(c->kiosk.stale_after_days == 14);
}

TEST_CASE("kiosk config: every key is read, a relative index beside the config file",
          "[serve][config][kiosk]") {
  auto c = parse_config(
      "store = \"/var/lib/outpost\"\n[kiosk]\nenabled = false\nindex = \"cache/kiosk\"\n"
      "site_name = \"Kibera community centre\"\nstale_after_days = 30\n",
      kFile);
  REQUIRE(c.ok());
  CHECK_FALSE(c->kiosk.enabled);
  CHECK(c->kiosk.index == "/etc/outpost/cache/kiosk");
  CHECK(c->kiosk.site_name == "Kibera community centre");
  CHECK(c->kiosk.stale_after_days == 30);

  auto absolute = parse_config(
      "store = \"/s\"\n[kiosk]\nindex = \"/var/cache/outpost-kiosk\"\nstale_after_days = 1\n",
      kFile);
  REQUIRE(absolute.ok());
  CHECK(absolute->kiosk.index == "/var/cache/outpost-kiosk");
  CHECK(absolute->kiosk.stale_after_days == 1);
}

TEST_CASE("kiosk config: a bad value is refused naming the file, line and key",
          "[serve][config][kiosk]") {
  CHECK(contains(kiosk_error("[kiosk]\nenabled = \"yes\"\n"),
                 "outpost.toml:3: kiosk.enabled: must be true or false"));
  CHECK(contains(kiosk_error("[kiosk]\nsite_name = 42\n"),
                 "outpost.toml:3: kiosk.site_name: must be a string in double quotes"));
  CHECK(contains(kiosk_error("[kiosk]\nsite_name = \"  \"\n"),
                 "outpost.toml:3: kiosk.site_name: is empty"));
  CHECK(contains(kiosk_error("[kiosk]\nindex = false\n"),
                 "outpost.toml:3: kiosk.index: must be a string in double quotes"));
  CHECK(contains(kiosk_error("[kiosk]\nstale_after_days = \"14\"\n"),
                 "outpost.toml:3: kiosk.stale_after_days: must be a whole number from 1 to 3650"));
  CHECK(contains(kiosk_error("[kiosk]\nstale_after_days = 0\n"),
                 "kiosk.stale_after_days: 0 is out of range: use 1 to 3650"));
  CHECK(contains(kiosk_error("[kiosk]\nstale_after_days = 4000\n"),
                 "kiosk.stale_after_days: 4000 is out of range: use 1 to 3650"));
  CHECK(contains(kiosk_error("kiosk = true\n"), "kiosk: must be a table: write [kiosk]"));
}

TEST_CASE("kiosk config: an unknown key is refused with the key it was probably meant to be",
          "[serve][config][kiosk]") {
  CHECK(contains(kiosk_error("[kiosk]\nsitename = \"x\"\n"),
                 "outpost.toml:3: kiosk.sitename: unknown key: did you mean 'kiosk.site_name'?"));
  CHECK(contains(kiosk_error("[kiosk]\nenable = false\n"), "did you mean 'kiosk.enabled'?"));
}
