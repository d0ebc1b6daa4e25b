// The daemon's configuration: one TOML file (docs/configuration.md lists every key, its type
// and default). Parsed with toml++; every error is one line naming the file, the line, the key
// and the fix ("/etc/outpost/outpost.toml:12: link.daily_budget: 'lots' is not a number of
// bytes: write e.g. \"50M\""). Unknown keys are errors (a typo must not silently fall back to a
// default). Pure data: thread-safe to copy and read.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/status.h"

namespace outpost::serve {

// A sync window in local time of day, minutes since midnight. end < start wraps midnight
// ("22:00-06:00"); start == end is the whole day.
struct Window {
  int start = 0;
  int end = 0;
  friend bool operator==(const Window&, const Window&) = default;
};

struct SubscriptionConfig {
  std::string url;          // path or URL of the repository
  std::string root_pubkey;  // hex; or
  std::string root_json;    // a root.json trusted as given
  std::vector<std::string> mirrors;
  std::vector<std::string> bundles;  // name prefixes to hold; empty: all (see docs)
  int priority = 100;                // lower syncs first
};

struct LinkConfig {
  std::uint64_t rate = 0;             // bytes/s cap on downloads, 0: none
  std::uint64_t daily_budget = 0;     // bytes per UTC day, 0: none
  std::uint64_t monthly_budget = 0;   // bytes per calendar month, 0: none
  std::vector<Window> windows;        // empty: any time
  std::int64_t check_interval = 900;  // seconds between syncs of an up-to-date repository
  std::int64_t backoff_min = 60;      // seconds, first wait after a failure
  std::int64_t backoff_max = 21600;   // seconds, the longest wait
  std::int64_t link_timeout = 5;      // seconds for the link check's TCP connect
};

struct HttpConfig {
  std::vector<std::string> listen = {"127.0.0.1:8080"};  // "HOST:PORT", "[::]:PORT"
  bool peer_serving = true;  // serve held repositories under /repo/<id>/
  unsigned threads = 4;
  unsigned max_connections = 1024;
  unsigned per_ip_connections = 0;                 // 0: no limit per address
  unsigned connection_timeout = 15;                // seconds a connection may stay idle or slow
  std::uint64_t max_inflight_bytes = 64ull << 20;  // response bytes held at once; more: 503
};

// The kiosk pages at "/" (docs/kiosk.md).
struct KioskConfig {
  bool enabled = true;
  std::string index;                   // search index folder; "": <store>/kiosk-index
  std::string site_name = "outpost";   // shown at the top of every page
  std::int64_t stale_after_days = 14;  // days without confirmation before pages warn
};

struct Config {
  std::string path;  // the file it was read from
  std::string store;
  std::string admin_socket;  // default: <store>/serve.sock
  int retain = 2;            // versions gc keeps per bundle (0: the daemon never collects)
  bool dns_sd = false;       // announce over DNS-SD (Avahi) when built with it
  // Browse DNS-SD for other nodes and use them as mirrors of the repositories they serve, at
  // run time (never written to the file or the store); only in builds with Avahi.
  bool browse = true;
  HttpConfig http;
  LinkConfig link;
  KioskConfig kiosk;
  std::vector<SubscriptionConfig> subscriptions;
};

// Reads and validates the file. kNotFound for a missing file, kInvalidArgument for anything
// wrong in it; the message names file, line, key and the fix.
Result<Config> load_config(const std::string& path);
// The same from text (path is only used in messages and to resolve relative paths).
Result<Config> parse_config(std::string_view text, const std::string& path);

// "HH:MM-HH:MM" -> Window.
Result<Window> parse_window(std::string_view text);

}  // namespace outpost::serve
