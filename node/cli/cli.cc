// The outpost command line (DESIGN.md, Command line). Presentation only: each command's
// arguments are parsed by CLI11, one library operation runs, and its result is printed for
// people, or as JSON with --json.
//
// Strict by design (docs/cli.md, "Errors and exit codes"): an unknown option, an extra
// argument, a missing value or a malformed or out-of-range number is refused with one
// "outpost: error: ..." line, the command's usage line and exit code 2, before anything is
// opened. Every other failure is one line on stderr and an exit code that follows the class
// of the Status (exit_code()). A URL's password never reaches the output (redact()).
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/base/json.h"
#include "outpost/base/size.h"
#include "outpost/base/status.h"
#include "outpost/crypto/keys.h"
#include "outpost/node/json_view.h"
#include "outpost/node/node.h"
#include "outpost/node/usb.h"
#include "outpost/packaging/manifest.h"
#include "outpost/packaging/repository.h"
#include "outpost/serve/daemon.h"

namespace outpost {
namespace {

constexpr const char* kVersion = "0.1.0";

// ---- what every command prints ----

// Replaces the password of every URL in text ("https://user:secret@host/x") with "***", so
// a mirror's credentials never reach a terminal, a log or a script's JSON.
std::string redact(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t scheme = text.find("://", i);
    if (scheme == std::string::npos) break;
    const std::size_t start = scheme + 3;
    std::size_t end = start;  // the authority: userinfo@host:port
    while (end < text.size() &&
           std::string_view("/?#\"' \t\r\n<>\\").find(text[end]) == std::string_view::npos) {
      ++end;
    }
    const std::size_t at = text.rfind('@', end == start ? start : end - 1);
    const std::size_t colon =
        at == std::string::npos || at < start ? std::string::npos : text.find(':', start);
    if (colon != std::string::npos && colon + 1 < at) {
      out.append(text, i, colon + 1 - i);
      out += "***";
      i = at;
    } else {
      out.append(text, i, end - i);
      i = end;
    }
  }
  out.append(text, i, std::string::npos);
  return out;
}

// The exit code of a failure follows the class of its Status (docs/cli.md, exit codes).
int exit_code(const Status& s) {
  switch (s.code()) {
    case Code::kOk: return 0;
    case Code::kInvalidArgument: return 2;
    case Code::kNotFound: return 3;
    case Code::kCorruption:
    case Code::kVerificationFailed: return 4;
    case Code::kResourceExhausted: return 5;
    case Code::kUnavailable:
    case Code::kAborted: return 6;
    case Code::kFailedPrecondition:
    case Code::kInternal: return 1;
    case Code::kCancelled: return 130;  // as a shell reports Ctrl-C
  }
  return 1;
}

// The library's messages name the problem and the way out in words any front end can show
// (the kiosk, the daemon's log); the command line adds which of its options or commands does
// that.
std::string with_cli_hint(const std::string& message) {
  static const std::pair<const char*, const char*> kHints[] = {
      {"CA certificate the mirror", " (--ca-file PEM)"},
      {"subscribe to a repository first", " (outpost subscribe, or --store DIR)"},
      {"the data budget is used up", " ('outpost budget' shows it)"},
      {"(garbage collection)", " ('outpost gc')"},
      {"give the directory of the store", " (--store DIR)"},
  };
  for (const auto& [needle, hint] : kHints) {
    if (message.find(needle) != std::string::npos) return message + hint;
  }
  return message;
}

int fail(const Status& s) {
  std::fprintf(stderr, "outpost: error: %s\n", redact(with_cli_hint(s.message())).c_str());
  return exit_code(s);
}

void print_json(const Json& j) { std::cout << redact(j.dump(2)) << "\n"; }

std::string human_bytes(std::uint64_t n) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string default_store() {
  if (const char* env = std::getenv("OUTPOST_STORE"); env && *env) return env;
  if (::geteuid() == 0) return "/var/lib/outpost";
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) {
    return std::string(xdg) + "/outpost";
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    return std::string(home) + "/.local/share/outpost";
  }
  return "outpost-store";
}

// ---- values on the command line ----
// Each parser is used twice: as a CLI11 check (so a bad value is a usage error before
// anything runs) and by the command to read the value it checked.

constexpr std::uint64_t kMaxBytes = 1'000'000'000'000'000;  // 1 PB: "1000000G"

// A size as parse_byte_size reads it (outpost/base/size.h), at most kMaxBytes.
Result<std::uint64_t> parse_bytes(const std::string& text) {
  OUTPOST_ASSIGN_OR_RETURN(std::uint64_t bytes, parse_byte_size(text));
  if (bytes > kMaxBytes) {
    return Status::InvalidArgument("'" + text + "' is too large (at most 1000000G)");
  }
  return bytes;
}

// A whole number in [lo, hi].
Result<std::int64_t> parse_whole(const std::string& text, std::int64_t lo, std::int64_t hi) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || v < lo || v > hi) {
    return Status::InvalidArgument(
        "'" + text + "' is not a whole number " +
        (hi == INT64_MAX ? "of at least " + std::to_string(lo)
                         : "from " + std::to_string(lo) + " to " + std::to_string(hi)));
  }
  return v;
}

// A number of seconds (decimals allowed) in [lo, hi].
Result<double> parse_seconds(const std::string& text, double lo, double hi) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || !std::isfinite(v) ||
      v < lo || v > hi) {
    char range[64];
    std::snprintf(range, sizeof range, "%g to %g", lo, hi);
    return Status::InvalidArgument("'" + text + "' is not a number of seconds from " + range);
  }
  return v;
}

template <typename Parse>
CLI::Validator check_with(Parse parse, const std::string& name) {
  return CLI::Validator(
      [parse](std::string& text) -> std::string {
        auto r = parse(text);
        return r.ok() ? std::string() : r.error().message();
      },
      "", name);
}

CLI::Validator bytes_value() {
  return check_with([](const std::string& t) { return parse_bytes(t); }, "bytes");
}
CLI::Validator whole_value(std::int64_t lo, std::int64_t hi) {
  return check_with([lo, hi](const std::string& t) { return parse_whole(t, lo, hi); }, "whole");
}
CLI::Validator seconds_value(double lo, double hi) {
  return check_with([lo, hi](const std::string& t) { return parse_seconds(t, lo, hi); }, "seconds");
}
CLI::Validator rank_value() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        Status s = node::check_rank_pattern(text);
        return s.ok() ? std::string() : s.message();
      },
      "", "rank");
}
CLI::Validator one_of(std::vector<std::string> choices) {
  return CLI::Validator(
      [choices](std::string& text) -> std::string {
        std::string list;
        for (const auto& c : choices) {
          if (c == text) return "";
          list += (list.empty() ? "" : ", ") + c;
        }
        return "'" + text + "' is not one of " + list;
      },
      "", "one_of");
}

// Bounds of the numeric options (docs/cli.md).
constexpr std::int64_t kMaxThreshold = 100;
constexpr std::int64_t kMaxRetries = 100;
constexpr std::int64_t kMaxRetain = 1000;
constexpr double kMaxBackoff = 3600;
constexpr double kMaxStall = 86400;

// What a command was given, after CLI11 checked it.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> options;  // only those given
  std::string usage;                                        // "outpost ls [--json] ..."

  bool has(const std::string& name) const { return options.count(name) != 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const {
    auto it = options.find(name);
    return it == options.end() || it->second.empty() ? fallback : it->second.back();
  }
  const std::vector<std::string>& all(const std::string& name) const {
    static const std::vector<std::string> kNone;
    auto it = options.find(name);
    return it == options.end() ? kNone : it->second;
  }
  // Values checked by the option's validator when it was parsed, so they cannot fail here.
  std::uint64_t bytes(const std::string& name) const { return parse_bytes(get(name)).value(); }
  std::int64_t whole(const std::string& name, std::int64_t fallback) const {
    return has(name) ? parse_whole(get(name), INT64_MIN, INT64_MAX).value() : fallback;
  }
  double seconds(const std::string& name, double fallback) const {
    return has(name) ? parse_seconds(get(name), -HUGE_VAL, HUGE_VAL).value() : fallback;
  }
  // A command line that parsed but does not make sense (a missing choice between options):
  // the error line and the usage line, exit 2, as for a parse error.
  int usage_error(const std::string& message) const {
    std::fprintf(stderr, "outpost: error: %s\nusage: %s\n", redact(message).c_str(), usage.c_str());
    return 2;
  }
};

Result<std::unique_ptr<node::Node>> open_node(const Args& a, bool create) {
  return node::Node::open(a.get("store", default_store()), create);
}

// For commands that only read: works on a store on a read-only file system too.
Result<std::unique_ptr<node::Node>> open_reader(const Args& a) {
  node::NodeOptions o;
  o.dir = a.get("store", default_store());
  o.read_only = true;
  return node::Node::open(o);
}

// ---- the daemon (outpost serve, docs/daemon.md) ----
// `status` and `sync --now` ask a running daemon through its admin socket first; without one
// they work on the store directly.

int cmd_serve(const Args& a) {
  if (a.has("check-config")) return serve::check_config(a.get("config"));
  return serve::run_daemon({.config_path = a.get("config"), .clock = nullptr});
}

// -1: no daemon runs on this store (the caller goes on by itself); else the exit code.
int daemon_command(const Args& a, const std::string& command) {
  const std::string socket = serve::default_admin_socket(a.get("store", default_store()));
  auto answer = serve::admin_call(socket, command, command == "sync" ? 24 * 3600.0 : 10.0);
  if (!answer.ok() && answer.error().IsNotFound()) return -1;
  if (!answer.ok()) return fail(answer.error());
  if (a.has("json")) {
    print_json(*answer);
  } else if (command == "status") {
    std::cout << redact(serve::describe_status(*answer));
  } else if (const Json* synced = answer->find("synced"); synced && synced->is_array()) {
    for (const Json& r : synced->as_array()) {
      std::cout << r.find("repository")->as_string() << ": "
                << redact(r.find("outcome")->as_string()) << " (by the daemon)\n";
    }
    if (synced->as_array().empty()) std::cout << "nothing to sync (by the daemon)\n";
  }
  return 0;
}
// ---- end of the daemon's block ----

// A repository location as the subscription records it: a path made absolute (realpath), so
// a sync from another folder (cron, the daemon) finds it; a URL as given.
std::string absolute_location(const std::string& location) {
  if (location.find("://") != std::string::npos) return location;
  if (char* real = ::realpath(location.c_str(), nullptr)) {
    std::string out(real);
    std::free(real);
    return out;
  }
  std::error_code ec;
  auto abs = std::filesystem::absolute(location, ec);
  return ec ? location : abs.lexically_normal().string();
}

// A role's key: --<role>-key FILE, else --keys DIR/<role>.key.
Result<crypto::SecretKey> role_key(const Args& a, const std::string& role) {
  std::string path = a.get(role + "-key");
  if (path.empty() && a.has("keys")) path = a.get("keys") + "/" + role + ".key";
  if (path.empty()) {
    return Status::InvalidArgument("missing --" + role + "-key FILE (or --keys DIR holding " +
                                   role + ".key)");
  }
  auto key = crypto::SecretKey::load(path);
  if (!key.ok()) return key.error().With("loading the " + role + " key");
  return key;
}

// The keys of the three top-level roles besides root, as most repo commands need them.
struct TopKeys {
  crypto::SecretKey targets, snapshot, timestamp;
};

Result<TopKeys> load_top_keys(const Args& a) {
  OUTPOST_ASSIGN_OR_RETURN(crypto::SecretKey targets, role_key(a, "targets"));
  OUTPOST_ASSIGN_OR_RETURN(crypto::SecretKey snapshot, role_key(a, "snapshot"));
  OUTPOST_ASSIGN_OR_RETURN(crypto::SecretKey timestamp, role_key(a, "timestamp"));
  return TopKeys{std::move(targets), std::move(snapshot), std::move(timestamp)};
}

Result<std::vector<crypto::SecretKey>> load_keys(const std::vector<std::string>& paths,
                                                 const std::string& what) {
  std::vector<crypto::SecretKey> keys;
  for (const auto& path : paths) {
    auto k = crypto::SecretKey::load(path);
    if (!k.ok()) return k.error().With("loading " + what + " " + path);
    keys.push_back(std::move(*k));
  }
  return keys;
}

// --ca-file, --rate, --retries, --backoff, --stall-timeout (docs/cli.md).
sync::HttpOptions http_options(const Args& a) {
  sync::HttpOptions h;
  h.ca_file = a.get("ca-file");
  if (a.has("rate")) h.max_recv_speed = a.bytes("rate");
  h.retries = static_cast<int>(a.whole("retries", h.retries));
  h.backoff_initial_s = a.seconds("backoff", h.backoff_initial_s);
  h.stall_timeout_s = std::max(
      1L, static_cast<long>(a.seconds("stall-timeout", static_cast<double>(h.stall_timeout_s))));
  return h;
}

// ---- commands ----

int cmd_keygen(const Args& a) {
  auto role = crypto::parse_key_role(a.get("role"));
  if (!role.ok()) return fail(role.error());
  auto key = crypto::SecretKey::generate();
  if (!key.ok()) return fail(key.error());
  if (Status s = key->save(a.get("out"), *role); !s.ok()) return fail(s);
  if (a.has("json")) {
    Json j = Json::object();
    j.set("role", crypto::key_role_name(*role));
    j.set("public", key->public_key().hex());
    j.set("keyid", key->public_key().keyid());
    j.set("file", a.get("out"));
    print_json(j);
  } else {
    std::cout << key->public_key().hex() << "\n";
  }
  return 0;
}

int cmd_repo_init(const Args& a) {
  const std::string& repo = a.positional[0];
  std::vector<std::string> root_paths = a.all("root-key");
  if (root_paths.empty() && a.has("keys")) root_paths.push_back(a.get("keys") + "/root.key");
  if (root_paths.empty())
    return a.usage_error("repo init needs --root-key KEYFILE (or --keys DIR)");
  auto loaded = load_keys(root_paths, "root key");
  if (!loaded.ok()) return fail(loaded.error());
  std::vector<crypto::SecretKey> roots = std::move(*loaded);
  auto top = load_top_keys(a);
  if (!top.ok()) return fail(top.error());
  packaging::InitOptions o;
  for (const auto& k : roots) o.root_keys.push_back(&k);
  o.threshold = static_cast<int>(a.whole("threshold", 1));
  o.targets_key = &top->targets;
  o.snapshot_key = &top->snapshot;
  o.timestamp_key = &top->timestamp;
  for (const auto& [option, ladder] :
       {std::pair<const char*, std::vector<std::int64_t>*>{"patch-ladder", &o.patch_ladder},
        {"update-ladder", &o.update_ladder}}) {
    if (!a.has(option)) continue;
    auto rungs = packaging::parse_ladder(a.get(option));
    if (!rungs.ok()) return fail(rungs.error().With(std::string("--") + option));
    *ladder = std::move(rungs).value();
  }
  if (Status s = packaging::init_repository(repo, o); !s.ok()) return fail(s);
  std::cout << "created repository " << repo << " (root threshold " << o.threshold << " of "
            << roots.size() << ")\n";
  return 0;
}

int cmd_repo_delegate(const Args& a) {
  const std::string& repo = a.positional[0];
  auto pub = crypto::PublicKey::from_hex(a.get("publisher-pubkey"));
  if (!pub.ok())
    return fail(Status::InvalidArgument("--publisher-pubkey HEX: " + pub.error().message()));
  auto top = load_top_keys(a);
  if (!top.ok()) return fail(top.error());
  Status s = packaging::delegate(repo, top->targets, top->snapshot, top->timestamp, *pub,
                                 a.get("prefix"), system_clock());
  if (!s.ok()) return fail(s);
  std::cout << "delegated " << a.get("prefix") << "/... to publisher key " << pub->hex() << "\n";
  return 0;
}

int cmd_repo_refresh(const Args& a) {
  const std::string& repo = a.positional[0];
  auto timestamp = role_key(a, "timestamp");
  if (!timestamp.ok()) return fail(timestamp.error());
  // With the snapshot key too, the snapshot (30 days) is re-signed as well; with the
  // timestamp key alone only the timestamp, refused when the snapshot would expire first.
  bool with_snapshot = a.has("snapshot-key") || a.has("keys");
  Status s;
  if (with_snapshot) {
    auto snapshot = role_key(a, "snapshot");
    if (!snapshot.ok()) return fail(snapshot.error());
    s = packaging::refresh_snapshot(repo, *snapshot, *timestamp, system_clock());
  } else {
    s = packaging::refresh_timestamp(repo, *timestamp, system_clock());
  }
  if (!s.ok()) return fail(s);
  std::cout << "re-signed " << (with_snapshot ? "snapshot and timestamp" : "timestamp") << " of "
            << repo << "\n";
  return 0;
}

int cmd_repo_rotate(const Args& a) {
  const std::string& repo = a.positional[0];
  if (a.all("old-root-key").empty() || a.all("root-key").empty()) {
    return a.usage_error(
        "repo rotate needs the old root keys (--old-root-key) and the new ones "
        "(--root-key)");
  }
  auto old_keys = load_keys(a.all("old-root-key"), "old root key");
  if (!old_keys.ok()) return fail(old_keys.error());
  auto new_keys = load_keys(a.all("root-key"), "root key");
  if (!new_keys.ok()) return fail(new_keys.error());
  std::vector<crypto::SecretKey> olds = std::move(*old_keys), news = std::move(*new_keys);
  auto top = load_top_keys(a);
  if (!top.ok()) return fail(top.error());
  packaging::RotateOptions o;
  for (const auto& k : olds) o.old_root_keys.push_back(&k);
  for (const auto& k : news) o.new_root_keys.push_back(&k);
  o.threshold = static_cast<int>(a.whole("threshold", 1));
  o.targets_key = &top->targets;
  o.snapshot_key = &top->snapshot;
  o.timestamp_key = &top->timestamp;
  if (Status s = packaging::rotate_root(repo, o); !s.ok()) return fail(s);
  std::cout << "wrote a new root version for " << repo << "\n";
  return 0;
}

// publish --batch DIR: every bundle folder under DIR as one release.
int publish_batch(const Args& a, const packaging::PublishOptions& o) {
  auto r = packaging::publish_batch(a.positional[0], o);
  if (!r.ok()) return fail(r.error());
  std::size_t changed = 0;
  for (const auto& b : r->bundles) changed += b.unchanged ? 0 : 1;
  if (a.has("json")) {
    Json j = Json::object();
    j.set("snapshot", r->snapshot_version);
    j.set("catalog_reused", r->catalog_reused);
    if (r->library_file) {
      Json lib = Json::object();
      lib.set("frames", static_cast<std::int64_t>(r->library_frames));
      lib.set("copied", static_cast<std::int64_t>(r->library_frames_copied));
      j.set("library_file", std::move(lib));
    }
    Json bundles = Json::array();
    for (const auto& b : r->bundles) {
      Json e = Json::object();
      e.set("bundle", b.bundle);
      e.set("version", b.version);
      e.set("unchanged", b.unchanged);
      e.set("bytes", b.bytes);
      e.set("pack_bytes", b.pack_bytes);
      bundles.push(std::move(e));
    }
    j.set("bundles", std::move(bundles));
    print_json(j);
  } else if (changed == 0) {
    std::cout << "all " << r->bundles.size() << " bundles unchanged: no new release\n";
  } else {
    std::cout << "release " << r->snapshot_version << ": " << changed << " of " << r->bundles.size()
              << " bundles changed\n";
  }
  return 0;
}

int cmd_publish(const Args& a) {
  if (a.positional.size() != (a.has("batch") ? 1u : 2u)) {
    return a.usage_error("publish needs REPO_DIR and either SRC_DIR or --batch DIR");
  }
  if (a.has("bundle")) {
    // Checked before any key is loaded; the library's message names the fault, this adds
    // what a valid name looks like.
    if (Status s = packaging::validate_bundle_name(a.get("bundle")); !s.ok()) {
      return fail(Status::InvalidArgument(
          "--bundle: " + s.message() +
          ": give 2 to 6 segments of A-Z a-z 0-9 . _ - joined by '/', e.g. un/ga/A-RES-75-202"));
    }
  }
  auto publisher = crypto::SecretKey::load(a.get("key"));
  if (!publisher.ok()) return fail(publisher.error().With("loading the publisher key"));
  auto snapshot = role_key(a, "snapshot");
  if (!snapshot.ok()) return fail(snapshot.error());
  auto timestamp = role_key(a, "timestamp");
  if (!timestamp.ok()) return fail(timestamp.error());
  packaging::PublishOptions o;
  o.source_dir = a.has("batch") ? a.get("batch") : a.positional[1];
  if (a.has("bundle")) o.overrides.name = a.get("bundle");
  if (a.has("kind")) o.overrides.kind = a.get("kind");
  if (a.has("title")) o.overrides.title = a.get("title");
  o.zstd_level = static_cast<int>(a.whole("level", o.zstd_level));
  o.patch_level = static_cast<int>(a.whole("patch-level", o.patch_level));
  if (a.has("patch-ladder")) {
    // "--patch-ladder ''" writes the from-0 patch only.
    auto rungs = packaging::parse_ladder(a.get("patch-ladder"));
    if (!rungs.ok()) return fail(rungs.error().With("--patch-ladder"));
    o.patch_ladder = std::move(rungs).value();
  }
  o.publisher_key = &*publisher;
  o.snapshot_key = &*snapshot;
  o.timestamp_key = &*timestamp;
  if (a.has("batch")) return publish_batch(a, o);
  auto r = packaging::publish(a.positional[0], o);
  if (!r.ok()) return fail(r.error());
  if (a.has("json")) {
    Json j = Json::object();
    j.set("bundle", r->bundle);
    j.set("version", r->version);
    j.set("unchanged", r->unchanged);
    j.set("files", r->files);
    j.set("bytes", r->bytes);
    j.set("new_chunks", r->new_chunks);
    j.set("reused_chunks", r->reused_chunks);
    j.set("pack_bytes", r->pack_bytes);
    Json patches = Json::array();
    for (const auto& p : r->patches) {
      Json e = Json::object();
      e.set("from", p.from);
      e.set("engine", packaging::delta_engine_name(p.engine));
      e.set("length", p.length);
      e.set("path", p.path);
      patches.push(std::move(e));
    }
    j.set("patches", std::move(patches));
    print_json(j);
  } else if (r->unchanged) {
    std::cout << r->bundle << ": unchanged, still version " << r->version << "\n";
  } else {
    std::cout << r->bundle << " version " << r->version << ": " << r->files << " files, "
              << human_bytes(r->bytes) << ", " << r->new_chunks << " new chunks ("
              << human_bytes(r->pack_bytes) << " packed), " << r->reused_chunks << " reused\n";
    if (!r->patches.empty()) {
      std::cout << "  patches:";
      for (const auto& p : r->patches) {
        std::cout << (p.from == 0 ? " full " : " from " + std::to_string(p.from) + " ")
                  << human_bytes(p.length) << ";";
      }
      std::cout << "\n";
    }
  }
  return 0;
}

int cmd_subscribe(const Args& a) {
  if (!a.has("root-pubkey") && !a.has("root")) {
    return a.usage_error(
        "subscribe needs --root-pubkey HEX or --root ROOT_JSON (the repository's root key, "
        "from its publisher)");
  }
  node::SubscribeOptions o;
  if (a.has("root-pubkey")) {
    auto k = crypto::PublicKey::from_hex(a.get("root-pubkey"));
    if (!k.ok()) return fail(Status::InvalidArgument("--root-pubkey: " + k.error().message()));
    o.root_pubkey = *k;
  }
  o.root_json_path = a.get("root");
  for (const auto& m : a.all("mirror")) o.mirrors.push_back(absolute_location(m));
  if (a.has("rank") && a.has("no-rank")) {
    return a.usage_error("--rank and --no-rank contradict each other: give one");
  }
  // Without either, subscribing again keeps the ranking the repository has.
  if (a.has("rank") || a.has("no-rank")) o.ranks = a.all("rank");
  o.http = http_options(a);
  auto node = open_node(a, true);
  if (!node.ok()) return fail(node.error());
  auto sub = (*node)->subscribe(absolute_location(a.positional[0]), o);
  if (!sub.ok()) return fail(sub.error());
  if (a.has("json")) {
    Json j = Json::object();
    j.set("id", sub->id);
    j.set("location", sub->location);
    Json ranks = Json::array();
    for (const auto& pattern : sub->ranks) ranks.push(pattern);
    j.set("ranks", std::move(ranks));
    print_json(j);
  } else {
    std::cout << "subscribed to " << redact(sub->location) << " (repository " << sub->id
              << "); run 'outpost sync' to fetch it\n";
    for (std::size_t i = 0; i < sub->ranks.size(); ++i) {
      std::cout << "  rank " << i + 1 << ": " << sub->ranks[i] << "\n";
    }
  }
  return 0;
}

// Progress on a terminal: one line rewritten in place (bytes, rate, ETA, route).
class ProgressLine {
 public:
  ProgressLine() : on_(::isatty(STDERR_FILENO) == 1) {}
  ~ProgressLine() { done(); }
  void show(const node::SyncProgress& p) {
    if (!on_) return;
    auto now = std::chrono::steady_clock::now();
    if (p.bundle != bundle_) {
      bundle_ = p.bundle;
      start_ = now;
      start_bytes_ = p.done;
    }
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = secs > 0.2 ? static_cast<double>(p.done - start_bytes_) / secs : 0;
    std::string eta = "";
    if (rate > 0 && p.total > p.done) {
      eta = ", ETA " +
            std::to_string(static_cast<long>(static_cast<double>(p.total - p.done) / rate)) + " s";
    }
    std::fprintf(stderr, "\r%s (%s): %s of %s, %s/s%s\033[K", p.bundle.c_str(), p.route.c_str(),
                 human_bytes(p.done).c_str(), human_bytes(p.total).c_str(),
                 human_bytes(static_cast<std::uint64_t>(rate)).c_str(), eta.c_str());
    shown_ = true;
  }
  void done() {
    if (shown_) std::fprintf(stderr, "\r\033[K");
    shown_ = false;
  }

 private:
  bool on_;
  bool shown_ = false;
  std::string bundle_;
  std::chrono::steady_clock::time_point start_;
  std::uint64_t start_bytes_ = 0;
};

// Turns SIGINT and SIGTERM into a stop request for as long as it lives: the signals are
// blocked and a thread waits for them (sigwait), so nothing runs in a signal handler. It is
// made before any other thread of the command starts, so every thread inherits the mask. A
// second signal after the stop request ends the process at once.
class StopOnSignals {
 public:
  StopOnSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGUSR1);  // our own wake-up when the command ends
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
    waiter_ = std::thread([this] {
      int sig = 0;
      while (sigwait(&set_, &sig) == 0) {
        if (sig == SIGUSR1) {
          if (done_.load()) return;
          continue;
        }
        if (stop_.stop_requested()) std::_Exit(128 + sig);
        std::fprintf(stderr, "outpost: stopping (keeping what was verified)...\n");
        stop_.request_stop();
      }
    });
  }
  ~StopOnSignals() {
    done_ = true;
    pthread_kill(waiter_.native_handle(), SIGUSR1);
    waiter_.join();
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;
  std::stop_token token() const { return stop_.get_token(); }

 private:
  sigset_t set_{};
  sigset_t old_{};
  std::stop_source stop_;
  std::atomic<bool> done_{false};
  std::thread waiter_;
};

std::string describe_route(const node::Route& r) {
  std::string s = node::route_name(r.kind);
  if (r.kind == node::RouteKind::kPatch && !r.steps.empty())
    s += " from version " + std::to_string(r.steps[0]);
  s += ": " + std::string(r.estimate ? "about " : "") + human_bytes(r.bytes) + " in " +
       std::to_string(r.requests) + " request" + (r.requests == 1 ? "" : "s");
  return s;
}

std::string describe_rank(const node::PlannedBundle& p) {
  if (p.rank == 0) return "(unranked)";
  return "(rank " + std::to_string(p.rank) + ": " + p.rank_pattern + ")";
}

int cmd_sync(const Args& a) {
  if (a.has("now") && a.has("budget")) {
    return a.usage_error(
        "--budget applies to a sync run here; a running daemon (--now) keeps to its own "
        "budget: drop one of them");
  }
  if (a.has("now") && a.has("dry-run")) {
    return a.usage_error(
        "--dry-run shows the plan here and changes nothing; --now asks a running daemon to "
        "sync: drop one of them");
  }
  if (a.has("now")) {
    if (int code = daemon_command(a, "sync"); code >= 0) return code;
  }
  auto node = open_node(a, false);
  if (!node.ok()) return fail(node.error());
  node::SyncOptions options;
  options.dry_run = a.has("dry-run");
  if (a.has("budget")) options.budget = a.bytes("budget");
  options.http = http_options(a);
  ProgressLine line;
  if (!a.has("json")) options.progress = [&](const node::SyncProgress& p) { line.show(p); };
  // Ctrl-C and SIGTERM stop the sync within a second, keeping every verified piece.
  StopOnSignals signals;
  options.stop = signals.token();
  auto reports = (*node)->sync(a.positional.empty() ? "" : a.positional[0], options);
  line.done();
  if (!reports.ok()) return fail(reports.error());
  // A partial sync: every bundle that could be completed is committed (listed below); each
  // one that could not gets its error line, and the exit code is that of the first.
  int partial_exit = 0;
  for (const auto& r : *reports) {
    for (const auto& f : r.failed) {
      int code = fail(f.why);
      if (partial_exit == 0) partial_exit = code;
    }
  }
  if (a.has("json")) {
    Json out = Json::array();
    for (const auto& r : *reports) {
      Json j = node::to_json(r, options.dry_run);
      out.push(std::move(j));
    }
    print_json(out);
    return partial_exit;
  }
  for (const auto& r : *reports) {
    const std::string location = redact(r.location);
    const std::string moved = r.metered ? " on the wire in " : " read from disk in ";
    const std::string unit = r.metered ? " request" : " file read";
    for (const auto& s : r.skipped_sources) std::cout << "skipped " << redact(s) << "\n";
    if (options.dry_run) {
      if (r.plan.empty() && r.deferred.empty()) {
        std::cout << location << ": up to date (" << human_bytes(r.bytes_read) << " read)\n";
        continue;
      }
      // The plan in the order a sync takes it (docs/sync.md, "Priorities"): what fits in
      // the budget and what would wait, each at its place.
      std::vector<const node::PlannedBundle*> order;
      for (const auto& p : r.plan) order.push_back(&p);
      for (const auto& p : r.deferred) order.push_back(&p);
      std::stable_sort(order.begin(), order.end(),
                       [](const auto* x, const auto* y) { return x->order < y->order; });
      const bool ranked =
          std::any_of(order.begin(), order.end(), [](const auto* p) { return p->rank != 0; });
      std::uint64_t total = 0;
      for (const node::PlannedBundle* p : order) {
        if (p->deferred.empty()) total += p->route.bytes;
        std::cout << p->order << ". " << p->bundle;
        if (ranked) std::cout << " " << describe_rank(*p);
        std::cout << ": " << (p->from ? "version " + std::to_string(p->from) + " -> " : "new, ")
                  << "version " << p->to << " by " << describe_route(p->route);
        if (!p->deferred.empty()) std::cout << ", deferred (" << p->deferred << ")";
        std::cout << "\n";
        for (std::size_t k = 1; k < p->considered.size(); ++k) {
          std::cout << "    (or " << describe_route(p->considered[k]) << ")\n";
        }
      }
      std::cout << location << ": the plan fetches " << human_bytes(total) << " ("
                << human_bytes(r.bytes_read) << " of metadata read to make it)";
      if (r.budget_left != UINT64_MAX) {
        std::cout << ", " << r.deferred.size() << " deferred under the "
                  << human_bytes(r.budget_left) << " of budget left";
      }
      std::cout << "; nothing was changed (dry run)\n";
      continue;
    }
    if (r.updated.empty() && r.deferred.empty() && r.failed.empty()) {
      std::cout << location << ": up to date (" << human_bytes(r.bytes_read) << moved << r.requests
                << unit << (r.requests == 1 ? "" : "s") << ")\n";
      continue;
    }
    for (const auto& it : r.updated) {
      std::cout << it.bundle << ": "
                << (it.from ? "version " + std::to_string(it.from) + " -> " : "new, ") << "version "
                << it.to << " by " << node::route_name(it.route);
      if (it.route == node::RouteKind::kChunks) {
        std::cout << " (" << it.chunks_fetched << " chunks fetched, " << it.chunks_held
                  << " already held)";
      }
      std::cout << "\n";
    }
    for (const auto& p : r.deferred) {
      std::cout << p.bundle << (p.rank != 0 ? " " + describe_rank(p) : std::string())
                << ": deferred (" << p.deferred << "); a later sync fetches it\n";
    }
    for (const auto& f : r.failed) {
      std::cout << f.bundle << ": not completed (see the error above)\n";
    }
    std::cout << location << ": " << r.updated.size() << " bundle(s) updated";
    if (!r.failed.empty()) std::cout << ", " << r.failed.size() << " could not be completed";
    std::cout << ", " << human_bytes(r.bytes_read) << moved << r.requests << unit
              << (r.requests == 1 ? "" : "s") << "\n";
  }
  return partial_exit;
}

int cmd_budget(const Args& a) {
  auto node = open_node(a, a.has("day") || a.has("month"));
  if (!node.ok()) return fail(node.error());
  if (a.has("day") || a.has("month")) {
    auto cur = (*node)->budget();
    if (!cur.ok()) return fail(cur.error());
    const std::uint64_t day = a.has("day") ? a.bytes("day") : cur->day;
    const std::uint64_t month = a.has("month") ? a.bytes("month") : cur->month;
    if (Status s = (*node)->set_budget(day, month); !s.ok()) return fail(s);
  }
  auto b = (*node)->budget();
  if (!b.ok()) return fail(b.error());
  if (a.has("json")) {
    Json j = Json::object();
    j.set("day", b->day);
    j.set("month", b->month);
    j.set("used_day", b->used_day);
    j.set("used_month", b->used_month);
    print_json(j);
    return 0;
  }
  auto line = [](const char* what, std::uint64_t limit, std::uint64_t used) {
    std::cout << what << ": " << human_bytes(used) << " used of "
              << (limit ? human_bytes(limit) : std::string("no limit")) << "\n";
  };
  line("today", b->day, b->used_day);
  line("this month", b->month, b->used_month);
  return 0;
}

int cmd_ls(const Args& a) {
  auto node = open_reader(a);
  if (!node.ok()) return fail(node.error());
  auto list = (*node)->list();
  if (!list.ok()) return fail(list.error());
  if (a.has("json")) {
    Json out = Json::array();
    for (const auto& b : *list) {
      Json j = Json::object();
      j.set("name", b.name);
      j.set("kind", b.kind);
      j.set("title", b.title);
      j.set("version", b.current);
      j.set("files", b.files);
      j.set("bytes", b.size);
      j.set("published", format_utc(b.published));
      j.set("confirmed", format_utc(b.confirmed));
      out.push(std::move(j));
    }
    print_json(out);
    return 0;
  }
  if (list->empty()) {
    std::cout << "no bundles yet: run 'outpost sync'\n";
    return 0;
  }
  for (const auto& b : *list) {
    std::cout << b.name << "  v" << b.current << "  " << b.kind << "  " << b.files << " files  "
              << human_bytes(b.size) << "  " << b.title << "\n";
  }
  return 0;
}

int cmd_show(const Args& a) {
  auto node = open_reader(a);
  if (!node.ok()) return fail(node.error());
  auto j = (*node)->show(a.positional[0], static_cast<std::uint64_t>(a.whole("version", 0)));
  if (!j.ok()) return fail(j.error());
  if (a.has("json")) {
    print_json(*j);
    return 0;
  }
  std::cout << j->find("bundle")->as_string() << " version " << j->find("version")->as_int() << " ("
            << j->find("kind")->as_string() << ")\n";
  std::cout << "  published:  " << j->find("published")->as_string() << "\n";
  std::cout << "  confirmed current: " << j->find("confirmed")->as_string() << "\n";
  for (const auto& [k, v] : j->find("meta")->as_object()) {
    std::cout << "  " << k << ": " << (v.is_string() ? v.as_string() : v.dump()) << "\n";
  }
  const Json* files = j->find("files");
  const auto& paths = files->find("path")->as_array();
  const auto& sizes = files->find("size")->as_array();
  const auto& types = files->find("type")->as_array();
  std::cout << "  files:\n";
  for (std::size_t i = 0; i < paths.size(); ++i) {
    std::cout << "    " << paths[i].as_string() << "  "
              << human_bytes(static_cast<std::uint64_t>(sizes[i].as_int())) << "  "
              << types[i].as_string() << "\n";
  }
  return 0;
}

int cmd_cat(const Args& a) {
  auto node = open_reader(a);
  if (!node.ok()) return fail(node.error());
  Status s = (*node)->cat(a.positional[0], a.positional[1], [](ByteView b) -> Status {
    if (std::fwrite(b.data(), 1, b.size(), stdout) != b.size()) {
      return Status::Unavailable("cannot write to standard output");
    }
    return Status::Ok();
  });
  std::fflush(stdout);
  return s.ok() ? 0 : fail(s);
}

int cmd_checkout(const Args& a) {
  const std::string& dir = a.positional[1];
  auto node = open_reader(a);
  if (!node.ok()) return fail(node.error());
  // The library refuses a folder that holds anything unless --force.
  Status s = (*node)->checkout(a.positional[0], dir, a.has("force"));
  if (!s.ok()) return fail(s);
  std::cout << "checked out " << a.positional[0] << " into " << dir << "\n";
  return 0;
}

int cmd_verify(const Args& a) {
  auto node = a.has("repair") ? open_node(a, false) : open_reader(a);
  if (!node.ok()) return fail(node.error());
  if (a.has("repair")) {
    auto fixed = (*node)->repair();
    if (!fixed.ok()) return fail(fixed.error());
    if (!a.has("json")) {
      std::cout << "removed " << fixed->chunks_removed << " damaged chunk record(s) and "
                << fixed->bundles_removed << " damaged bundle record(s)"
                << (fixed->chunks_removed + fixed->bundles_removed > 0
                        ? ": run 'outpost sync' to fetch them again"
                        : "")
                << "\n";
    }
  }
  auto r = (*node)->verify();
  if (!r.ok()) return fail(r.error());
  if (a.has("json")) {
    Json j = Json::object();
    j.set("chunks_checked", r->chunks_checked);
    j.set("versions_checked", r->versions_checked);
    j.set("metadata_checked", r->metadata_checked);
    Json p = Json::array();
    for (const auto& s : r->problems) p.push(Json(s));
    j.set("problems", std::move(p));
    print_json(j);
  } else {
    for (const auto& s : r->problems) std::cout << "problem: " << s << "\n";
    std::cout << "checked " << r->chunks_checked << " chunks, " << r->versions_checked
              << " bundle versions, " << r->metadata_checked << " metadata files: "
              << (r->problems.empty() ? "all good"
                                      : std::to_string(r->problems.size()) + " problem(s)")
              << "\n";
  }
  if (!r->problems.empty()) {
    std::fprintf(stderr, "outpost: error: the store has %zu problem(s): %s\n", r->problems.size(),
                 r->problems.front().c_str());
    return 4;
  }
  return 0;
}

int cmd_gc(const Args& a) {
  auto node = open_node(a, false);
  if (!node.ok()) return fail(node.error());
  int retain = static_cast<int>(a.whole("retain", 2));
  if (a.has("bundle")) {
    // A per-bundle retention is remembered in the store and used by every later gc.
    if (!a.has("retain")) return a.usage_error("gc --bundle NAME needs --retain N");
    if (Status s = (*node)->set_retention(a.get("bundle"), retain); !s.ok()) return fail(s);
    retain = 2;
  }
  auto r = (*node)->gc(retain);
  if (!r.ok()) return fail(r.error());
  if (a.has("json")) {
    Json j = Json::object();
    j.set("versions_removed", r->versions_removed);
    j.set("chunks_removed", r->chunks_removed);
    j.set("malformed_removed", r->malformed_removed);
    j.set("bytes_freed", r->bytes_freed);
    print_json(j);
  } else {
    std::cout << "removed " << r->versions_removed << " old versions and " << r->chunks_removed
              << " chunks (" << human_bytes(r->bytes_freed) << ")";
    if (r->malformed_removed > 0) {
      std::cout << ", of which " << r->malformed_removed
                << " malformed records: run 'outpost sync' to fetch what they held";
    }
    std::cout << "\n";
  }
  return 0;
}

int cmd_status(const Args& a) {
  if (int code = daemon_command(a, "status"); code >= 0) return code;
  auto node = open_reader(a);
  if (!node.ok()) return fail(node.error());
  auto st = (*node)->status();
  if (!st.ok()) return fail(st.error());
  const Json view = node::to_json(*st);
  const Json* j = &view;
  if (a.has("json")) {
    print_json(view);
    return 0;
  }
  // What the data holds (shrinks after gc) and the file, which never shrinks: LMDB reuses
  // freed pages instead of returning them.
  auto bytes = [&](const char* field) {
    return human_bytes(static_cast<std::uint64_t>(j->find(field)->as_int()));
  };
  std::cout << "store:     " << j->find("store")->as_string() << " (" << bytes("in_use_bytes")
            << " in use, file " << bytes("file_bytes") << ")\n";
  std::cout << "bundles:   " << j->find("bundles")->as_int() << "\n";
  std::cout << "chunks:    " << j->find("chunks")->as_int() << "\n";
  std::cout << "time floor: " << j->find("time_floor")->as_string() << "\n";
  for (const Json& r : j->find("repositories")->as_array()) {
    std::cout << "repository " << r.find("id")->as_string() << " at "
              << redact(r.find("location")->as_string()) << ": last sync "
              << r.find("last_sync")->as_string();
    if (const Json* e = r.find("timestamp_expires")) {
      std::cout << ", timestamp valid until " << e->as_string();
    }
    std::cout << "\n";
    if (const Json* ranks = r.find("ranks"); ranks != nullptr && ranks->is_array()) {
      std::size_t n = 0;
      for (const Json& pattern : ranks->as_array()) {
        std::cout << "  rank " << ++n << ": " << pattern.as_string() << "\n";
      }
    }
  }
  return 0;
}

// ---- USB sneakernet: have, export, import (docs/usb.md) ----

int cmd_have(const Args& a) {
  auto node = open_reader(a);
  if (!node.ok()) return fail(node.error());
  auto have = node::make_have(**node);
  if (!have.ok()) return fail(have.error());
  Bytes bytes = have->encode();
  Status st = real_fs().write_file_atomic(a.get("out"), {bytes.data(), bytes.size()});
  if (!st.ok()) return fail(st.With("writing the have-file"));
  std::size_t bundles = 0;
  for (const auto& r : have->repos) bundles += r.bundles.size();
  if (a.has("json")) {
    Json j = Json::object();
    j.set("file", a.get("out"));
    j.set("bytes", static_cast<std::uint64_t>(bytes.size()));
    j.set("repositories", static_cast<std::uint64_t>(have->repos.size()));
    j.set("bundles", static_cast<std::uint64_t>(bundles));
    print_json(j);
  } else {
    std::cout << "wrote " << a.get("out") << " (" << bytes.size()
              << " bytes: " << have->repos.size() << " repositories, " << bundles
              << " bundles); give it to the node that will write your stick\n";
  }
  return 0;
}

int cmd_export(const Args& a) {
  auto node = open_reader(a);
  if (!node.ok()) return fail(node.error());
  node::ExportOptions o;
  o.to = a.get("to");
  o.have_file = a.get("for");
  o.bundles = a.all("bundle");
  if (a.has("max-bytes")) o.max_bytes = a.bytes("max-bytes");
  if (a.has("volume-size")) o.volume_bytes = a.bytes("volume-size");
  o.readme_extra = a.get("note");
  for (const auto& l : a.all("lang")) {
    for (std::size_t at = 0; at <= l.size();) {
      std::size_t comma = std::min(l.find(',', at), l.size());
      if (comma > at) o.readme_languages.push_back(l.substr(at, comma - at));
      at = comma + 1;
    }
  }
  ProgressLine line;
  if (!a.has("json")) {
    o.progress = [&](const node::ExportProgress& p) {
      line.show(node::SyncProgress{"export", "to the stick", p.done, p.total});
    };
  }
  auto r = node::export_pack(**node, o);
  line.done();
  if (!r.ok()) return fail(r.error());
  Json out = Json::object();
  out.set("folder", r->folder);
  out.set("bytes", r->bytes);
  Json repos = Json::array();
  for (const auto& e : r->repos) {
    Json j = Json::object();
    j.set("repository", e.repo);
    j.set("index", e.index_path);
    j.set("bytes", e.bytes);
    j.set("volumes", static_cast<std::uint64_t>(e.volumes));
    j.set("up_to_date", e.up_to_date);
    Json bs = Json::array();
    for (const auto& b : e.bundles) {
      Json jb = Json::object();
      jb.set("bundle", b.name);
      jb.set("version", b.version);
      jb.set("from", b.from);
      jb.set("bytes", b.bytes);
      bs.push(std::move(jb));
    }
    j.set("bundles", std::move(bs));
    Json left = Json::array();
    for (const auto& l : e.left_out) left.push(l);
    j.set("left_out", std::move(left));
    repos.push(std::move(j));
  }
  out.set("repositories", std::move(repos));
  if (a.has("json")) {
    print_json(out);
    return 0;
  }
  for (const auto& e : r->repos) {
    if (e.up_to_date) {
      std::cout << "repository " << e.repo << ": the target is up to date; nothing written\n";
      continue;
    }
    for (const auto& b : e.bundles) {
      std::cout << b.name << ": version " << b.version
                << (b.from ? " (the target holds " + std::to_string(b.from) + ")" : " (whole)")
                << ", " << human_bytes(b.bytes) << "\n";
    }
    for (const auto& l : e.left_out) std::cout << "left out: " << l << "\n";
    std::cout << "repository " << e.repo << ": " << e.bundles.size() << " bundle(s), "
              << human_bytes(e.bytes) << " in " << e.volumes << " volume(s)\n";
  }
  std::cout << "wrote " << r->folder << " (" << human_bytes(r->bytes)
            << "); eject the stick before pulling it out\n";
  return 0;
}

int cmd_import(const Args& a) {
  node::ImportOptions o;
  if (a.has("root-pubkey")) {
    auto k = crypto::PublicKey::from_hex(a.get("root-pubkey"));
    if (!k.ok()) return fail(Status::InvalidArgument("--root-pubkey: " + k.error().message()));
    o.root_pubkey = *k;
  }
  auto node = open_node(a, a.has("root-pubkey"));
  if (!node.ok()) return fail(node.error());
  ProgressLine line;
  if (!a.has("json")) o.progress = [&](const node::SyncProgress& p) { line.show(p); };
  StopOnSignals signals;
  o.stop = signals.token();
  auto r = node::import_pack(**node, absolute_location(a.positional[0]), o);
  line.done();
  if (!r.ok()) return fail(r.error());
  int partial_exit = 0;
  for (const auto& repo : r->repos) {
    for (const auto& f : repo.sync.failed) {
      int code = fail(f.why);
      if (partial_exit == 0) partial_exit = code;
    }
    for (const auto& p : repo.problems) {
      std::fprintf(stderr, "outpost: %s\n", p.c_str());
      if (partial_exit == 0) partial_exit = exit_code(Status::Corruption(p));
    }
  }
  if (a.has("json")) {
    Json out = Json::array();
    for (const auto& repo : r->repos) {
      Json j = node::to_json(repo.sync, false);
      j.set("repository", repo.repo);
      j.set("index", repo.index_path);
      j.set("note", repo.note);
      j.set("expired_timestamp", repo.expired_timestamp);
      j.set("confirmed_as_of", format_utc(repo.confirmed_as_of));
      j.set("complete", repo.complete());
      Json probs = Json::array();
      for (const auto& p : repo.problems) probs.push(p);
      j.set("problems", std::move(probs));
      out.push(std::move(j));
    }
    print_json(out);
    return partial_exit;
  }
  for (const auto& repo : r->repos) {
    if (!repo.note.empty()) {
      std::cout << "repository " << repo.repo << ": " << repo.note << "\n";
      continue;
    }
    for (const auto& it : repo.sync.updated) {
      std::cout << it.bundle << ": "
                << (it.from ? "version " + std::to_string(it.from) + " -> " : "new, ") << "version "
                << it.to << "\n";
    }
    for (const auto& f : repo.sync.failed) {
      std::cout << f.bundle << ": version " << f.to << " not imported (see the error above)\n";
    }
    if (repo.expired_timestamp) {
      std::cout << "note: the pack's timestamp has expired; accepted because its snapshot is "
                   "newer and validly signed\n";
    }
    std::cout << "repository " << repo.repo << ": " << repo.sync.updated.size()
              << " bundle(s) imported";
    if (repo.sync.updated.empty() && repo.sync.failed.empty()) std::cout << " (already up to date)";
    if (!repo.sync.updated.empty()) {
      std::cout << ", confirmed current as of " << format_utc(repo.confirmed_as_of);
    }
    std::cout << (repo.complete() ? "" : "; the pack is incomplete (see above)") << "\n";
  }
  return partial_exit;
}

// ---- the command table ----

using Handler = int (*)(const Args&);

// One command: its CLI11 subcommand, the storage CLI11 parses into, and its usage and help in
// the project's words (CLI11's own help and error texts are not shown).
class Command {
 public:
  Command(CLI::App& parent, const std::string& name, std::string usage, std::string about,
          Handler run = nullptr)
      : app_(parent.add_subcommand(name, about)),
        usage_("outpost " + std::move(usage)),
        about_(std::move(about)),
        run_(run) {}
  Command(const Command&) = delete;
  Command& operator=(const Command&) = delete;

  Command& flag(const std::string& name, const std::string& help) {
    return add(app_->add_flag("--" + name), name, "", help, Kind::kFlag);
  }
  Command& option(const std::string& name, const std::string& meta, const std::string& help) {
    return add(app_->add_option("--" + name, single_[name]), name, meta, help, Kind::kSingle);
  }
  // An option that may be given several times, one value each time.
  Command& repeated(const std::string& name, const std::string& meta, const std::string& help) {
    CLI::Option* o = app_->add_option("--" + name, multi_[name])
                         ->allow_extra_args(false)
                         ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    return add(o, name, meta, help, Kind::kRepeated);
  }
  Command& positional(const std::string& meta, const std::string& help, bool required = true) {
    positional_values_.emplace_back();
    last_ = app_->add_option(meta, positional_values_.back(), help);
    if (required) last_->required();
    positionals_.push_back(last_);
    help_.push_back({meta, help});
    return *this;
  }
  // Refines the option or positional added last.
  Command& check(const CLI::Validator& v) {
    last_->check(v);
    return *this;
  }
  Command& required() {
    last_->required();
    return *this;
  }
  // Options many commands share.
  Command& store() {
    return option("store", "DIR",
                  "the node's store (default: $OUTPOST_STORE, /var/lib/outpost for root, "
                  "else ~/.local/share/outpost)");
  }
  Command& json() { return flag("json", "machine-readable output"); }
  Command& keys(const std::vector<std::string>& roles) {
    for (const auto& role : roles) {
      option(role + "-key", "FILE", "the " + role + " key");
    }
    return option("keys", "DIR", "the key directory: DIR/<role>.key for any key not given");
  }
  Command& http() {
    option("ca-file", "PEM", "extra CA certificates for https");
    option("rate", "BYTES_PER_S", "bandwidth cap, e.g. 20k (0: none)").check(bytes_value());
    option("retries", "N", "retries per request, 0 to " + std::to_string(kMaxRetries))
        .check(whole_value(0, kMaxRetries));
    option("backoff", "SECONDS", "first wait between retries").check(seconds_value(0, kMaxBackoff));
    return option("stall-timeout", "SECONDS", "give up on a transfer stalled this long")
        .check(seconds_value(1, kMaxStall));
  }

  CLI::App* app() const { return app_; }
  const std::string& usage() const { return usage_; }
  Handler handler() const { return run_; }
  bool takes(const std::string& name) const {
    for (const auto& o : options_) {
      if (o.name == name) return true;
    }
    return false;
  }

  // What was given, once CLI11 has parsed and checked it.
  Args args() const {
    Args a;
    a.usage = usage_;
    for (const auto& o : options_) {
      if (o.option->count() == 0) continue;
      switch (o.kind) {
        case Kind::kFlag: a.options[o.name]; break;
        case Kind::kSingle: a.options[o.name] = {single_.at(o.name)}; break;
        case Kind::kRepeated: a.options[o.name] = multi_.at(o.name); break;
      }
    }
    for (std::size_t i = 0; i < positionals_.size(); ++i) {
      if (positionals_[i]->count() != 0) a.positional.push_back(positional_values_[i]);
    }
    return a;
  }

  void print_help(const std::vector<const Command*>& children) const {
    std::cout << "usage: " << usage_ << "\n\n" << about_ << "\n";
    if (!children.empty()) {
      std::cout << "\ncommands:\n";
      for (const Command* c : children) std::cout << "  " << c->usage_ << "\n";
    }
    std::vector<std::pair<std::string, std::string>> rows = help_;
    rows.push_back({"-h, --help", "this help"});
    std::size_t width = 0;
    for (const auto& r : rows) width = std::max(width, r.first.size());
    std::cout << "\n";
    // Descriptions wrap at 100 columns, under their start.
    const std::size_t indent = width + 4, room = indent < 60 ? 100 - indent : 40;
    for (const auto& [left, right] : rows) {
      std::cout << "  " << left << std::string(width + 2 - left.size(), ' ');
      std::size_t at = 0;
      while (right.size() - at > room) {
        std::size_t cut = right.rfind(' ', at + room);
        if (cut == std::string::npos || cut <= at) cut = at + room;
        std::cout << right.substr(at, cut - at) << "\n" << std::string(indent, ' ');
        at = right[cut] == ' ' ? cut + 1 : cut;
      }
      std::cout << right.substr(at) << "\n";
    }
  }

 private:
  enum class Kind { kFlag, kSingle, kRepeated };
  struct Opt {
    std::string name;
    Kind kind;
    CLI::Option* option;
  };

  Command& add(CLI::Option* o, const std::string& name, const std::string& meta,
               const std::string& help, Kind kind) {
    last_ = o;
    options_.push_back({name, kind, o});
    help_.push_back({"--" + name + (meta.empty() ? "" : " " + meta), help});
    return *this;
  }

  CLI::App* app_;
  std::string usage_, about_;
  Handler run_;
  CLI::Option* last_ = nullptr;
  std::vector<Opt> options_;
  std::vector<CLI::Option*> positionals_;
  // Node-based containers: CLI11 keeps pointers into them.
  std::map<std::string, std::string> single_;
  std::map<std::string, std::vector<std::string>> multi_;
  std::deque<std::string> positional_values_;
  std::vector<std::pair<std::string, std::string>> help_;  // "--name META", what it does
};

const char* kUsage =
    R"(outpost - keeps published documents current over poor links and USB sticks

Publisher:
  outpost keygen --role root|targets|snapshot|timestamp|publisher --out KEYFILE
  outpost repo init REPO_DIR --root-key K [--root-key K ...] [--threshold N]
                    --targets-key K --snapshot-key K --timestamp-key K   (or --keys DIR)
                    [--patch-ladder 1,2,4,8,16,32] [--update-ladder 1,2,...,8,16,32]
  outpost repo delegate REPO_DIR --publisher-pubkey HEX --prefix NAME_PREFIX
                    --targets-key K --snapshot-key K --timestamp-key K   (or --keys DIR)
  outpost repo refresh REPO_DIR --timestamp-key K [--snapshot-key K]      (or --keys DIR)
  outpost repo rotate REPO_DIR --old-root-key K ... --root-key K ... [--threshold N] ...
  outpost publish REPO_DIR --key PUBLISHER_KEY [--bundle NAME] SRC_DIR|--batch DIR [--kind KIND]
                    [--title TITLE] [--patch-ladder LIST] --snapshot-key K --timestamp-key K
                    (or --keys DIR)

Node (every command takes --store DIR; default $OUTPOST_STORE, /var/lib/outpost for root,
else ~/.local/share/outpost):
  outpost subscribe PATH_OR_URL --root-pubkey HEX | --root ROOT_JSON [--mirror URL ...]
                    [--rank PATTERN ...] [--no-rank]   (e.g. --rank 'un/ga/*' --rank kind:indicator)
  outpost sync [PATH_OR_URL] [--dry-run] [--budget BYTES] [--rate BYTES_PER_S] [--ca-file PEM]
               [--retries N] [--backoff SECONDS] [--stall-timeout SECONDS]
  outpost budget [--day BYTES] [--month BYTES]      (e.g. --day 5M --month 100M; 0: none)
  outpost ls | show BUNDLE | cat BUNDLE PATH | checkout BUNDLE DIR [--force]
  outpost verify | gc [--retain N] [--bundle NAME --retain N] | status
  outpost serve [--config FILE] [--check-config]     (the daemon; status, sync --now ask it)

Options: --json (machine-readable output), --help (also after a command: its own help),
--version.
Exit codes: 0 ok, 1 other error, 2 bad usage, 3 not found, 4 damaged or failed verification,
5 disk or store full, 6 temporarily unavailable (retry).
)";

constexpr const char* kMainUsage = "outpost COMMAND [OPTIONS] (see 'outpost --help')";

// Every command and its options (docs/cli.md).
void define_commands(CLI::App& app, std::deque<Command>& out) {
  const auto add = [&](CLI::App& parent, const std::string& name, const std::string& usage,
                       const std::string& about, Handler run = nullptr) -> Command& {
    return out.emplace_back(parent, name, usage, about, run);
  };
  const std::vector<std::string> top = {"targets", "snapshot", "timestamp"};

  add(app, "keygen", "keygen --role root|targets|snapshot|timestamp|publisher --out KEYFILE",
      "Writes a new ed25519 secret key file (mode 0600, never overwritten) and prints its "
      "public key in hex.",
      cmd_keygen)
      .option("role", "ROLE", "root, targets, snapshot, timestamp or publisher")
      .required()
      .check(one_of({"root", "targets", "snapshot", "timestamp", "publisher"}))
      .option("out", "KEYFILE", "the key file to write")
      .required()
      .json();

  Command& repo = add(app, "repo", "repo init|delegate|refresh|rotate REPO_DIR ...",
                      "Creates and maintains a repository's signed metadata.");
  repo.app()->require_subcommand(1);
  add(*repo.app(), "init",
      "repo init REPO_DIR --root-key K [--root-key K ...] [--threshold N]\n"
      "                    --targets-key K --snapshot-key K --timestamp-key K (or --keys DIR)\n"
      "                    [--patch-ladder 1,2,4,8,16,32] [--update-ladder 1,2,3,4,5,6,7,8,16,32]",
      "Creates a repository (docs/format-repository.md).", cmd_repo_init)
      .positional("REPO_DIR", "the repository folder to create")
      .repeated("root-key", "FILE", "a root key (repeat for several)")
      .option("threshold", "N", "root keys needed to sign a new root (default 1)")
      .check(whole_value(1, kMaxThreshold))
      .keys(top)
      .option("patch-ladder", "LIST", "older versions each publish writes patches from")
      .option("update-ladder", "LIST", "older snapshots each publish writes update files for");
  add(*repo.app(), "delegate",
      "repo delegate REPO_DIR --publisher-pubkey HEX --prefix NAME_PREFIX\n"
      "                    --targets-key K --snapshot-key K --timestamp-key K (or --keys DIR)",
      "Lets a publisher key sign every bundle whose name starts with NAME_PREFIX/.",
      cmd_repo_delegate)
      .positional("REPO_DIR", "the repository")
      .option("publisher-pubkey", "HEX", "the publisher's public key")
      .required()
      .option("prefix", "NAME_PREFIX", "the bundle names it may sign, e.g. un/ga")
      .required()
      .keys(top);
  add(*repo.app(), "refresh",
      "repo refresh REPO_DIR --timestamp-key K [--snapshot-key K] (or --keys DIR)",
      "Re-signs timestamp.json (valid 7 days), and the snapshot too when its key is given.",
      cmd_repo_refresh)
      .positional("REPO_DIR", "the repository")
      .keys({"snapshot", "timestamp"});
  add(*repo.app(), "rotate",
      "repo rotate REPO_DIR --old-root-key K ... --root-key K ... [--threshold N]\n"
      "                    --targets-key K --snapshot-key K --timestamp-key K (or --keys DIR)",
      "Writes root version N+1 signed by the old and the new root keys.", cmd_repo_rotate)
      .positional("REPO_DIR", "the repository")
      .repeated("old-root-key", "FILE", "a current root key (repeat for several)")
      .repeated("root-key", "FILE", "a root key of the new version (repeat for several)")
      .option("threshold", "N", "root keys needed to sign the next root (default 1)")
      .check(whole_value(1, kMaxThreshold))
      .keys(top);

  add(app, "publish",
      "publish REPO_DIR --key PUBLISHER_KEY [--bundle NAME] SRC_DIR | --batch DIR\n"
      "                [--kind resolution|indicator|generic] [--title TITLE] [--level N]\n"
      "                [--patch-level N] [--patch-ladder LIST] --snapshot-key K --timestamp-key K "
      "(or --keys DIR)",
      "Publishes SRC_DIR as the next version of its bundle, or every bundle folder under "
      "--batch DIR as one release.",
      cmd_publish)
      .positional("REPO_DIR", "the repository")
      .positional("SRC_DIR", "the folder to publish", false)
      .option("batch", "DIR", "a folder of bundle folders, each with its bundle.json")
      .option("key", "FILE", "the publisher key")
      .required()
      .option("bundle", "NAME", "the bundle name (default: SRC_DIR/bundle.json)")
      .option("kind", "KIND", "resolution, indicator or generic")
      .check(one_of({"resolution", "indicator", "generic"}))
      .option("title", "TITLE", "the title (default: SRC_DIR/bundle.json)")
      .option("level", "N", "zstd level of the chunks, 1 to 22")
      .check(whole_value(1, 22))
      .option("patch-level", "N", "zstd level of the patches and the library file, 1 to 22 (19)")
      .check(whole_value(1, 22))
      .option("patch-ladder", "LIST", "patches from these older versions ('' for none)")
      .keys({"snapshot", "timestamp"})
      .json();

  add(app, "subscribe",
      "subscribe PATH_OR_URL --root-pubkey HEX | --root ROOT_JSON [--mirror URL ...]\n"
      "                  [--rank PATTERN ...] [--no-rank] [--ca-file PEM] [--store DIR] [--json]",
      "Trusts a repository: verifies its metadata and records the subscription (a path is "
      "recorded absolute).",
      cmd_subscribe)
      .positional("PATH_OR_URL", "a folder, file:// or http(s):// URL")
      .option("root-pubkey", "HEX", "the key the repository's first root must be signed by")
      .option("root", "ROOT_JSON", "a root.json obtained out of band, trusted as is")
      .repeated("mirror", "URL", "another location of the repository (repeat for several)")
      .repeated("rank", "PATTERN",
                "fetch these bundles first, highest first (repeat): a name prefix un/ga/*, a "
                "name, or kind:resolution|indicator|generic; replaces the ranking held")
      .check(rank_value())
      .flag("no-rank", "forget the repository's ranking")
      .http()
      .store()
      .json();

  add(app, "sync",
      "sync [PATH_OR_URL] [--dry-run] [--budget BYTES] [--now] [--json] [--rate BYTES_PER_S]\n"
      "             [--ca-file PEM] [--retries N] [--backoff SECONDS] [--stall-timeout SECONDS]\n"
      "             [--store DIR]",
      "Brings every subscription up to date (or reads the repository from PATH_OR_URL).", cmd_sync)
      .positional("PATH_OR_URL", "read the repository from here this time", false)
      .flag("dry-run", "print the plan in its order and its price, change nothing")
      .option("budget", "BYTES",
              "spend at most this on the wire in this sync, e.g. 2M (0: no cap of its own); "
              "what does not fit is deferred")
      .check(bytes_value())
      .flag("now", "ask the running daemon to sync now (without one: sync here)")
      .http()
      .store()
      .json();

  add(app, "budget", "budget [--day BYTES] [--month BYTES] [--json] [--store DIR]",
      "Sets (with options) and shows the data budget per UTC day and calendar month.", cmd_budget)
      .option("day", "BYTES", "bytes per day, e.g. 5M (0: no limit)")
      .check(bytes_value())
      .option("month", "BYTES", "bytes per month, e.g. 100M (0: no limit)")
      .check(bytes_value())
      .store()
      .json();

  add(app, "ls", "ls [--json] [--store DIR]", "Lists the bundles the node holds.", cmd_ls)
      .store()
      .json();
  add(app, "show", "show BUNDLE [--version N] [--json] [--store DIR]",
      "Shows a bundle version's metadata and files, and when it was last confirmed current.",
      cmd_show)
      .positional("BUNDLE", "the bundle name")
      .option("version", "N", "a held version (default: the current one)")
      .check(whole_value(1, INT64_MAX))
      .store()
      .json();
  add(app, "cat", "cat BUNDLE PATH [--store DIR]",
      "Writes one file of a bundle's current version to standard output.", cmd_cat)
      .positional("BUNDLE", "the bundle name")
      .positional("PATH", "the file's path in the bundle")
      .store();
  add(app, "checkout", "checkout BUNDLE DIR [--force] [--store DIR]",
      "Writes every file of a bundle's current version into DIR, a new or empty folder.",
      cmd_checkout)
      .positional("BUNDLE", "the bundle name")
      .positional("DIR", "a new or empty folder (created if missing)")
      .flag("force", "write into a folder that is not empty (same names are replaced)")
      .store();
  add(app, "verify", "verify [--repair] [--json] [--store DIR]",
      "Rehashes every chunk, rebuilds every held version and rechecks the trusted metadata.",
      cmd_verify)
      .flag("repair", "first remove damaged records, so the next sync fetches them again")
      .store()
      .json();
  add(app, "gc", "gc [--retain N] [--bundle NAME --retain N] [--json] [--store DIR]",
      "Keeps N versions per bundle (default 2) and removes chunks nothing kept uses.", cmd_gc)
      .option("retain", "N", "versions to keep, 1 to " + std::to_string(kMaxRetain))
      .check(whole_value(1, kMaxRetain))
      .option("bundle", "NAME", "remember --retain for this bundle, then collect")
      .store()
      .json();
  add(app, "status", "status [--json] [--store DIR]",
      "Shows the store, its subscriptions and when each last synced.", cmd_status)
      .store()
      .json();

  // USB sneakernet (docs/usb.md).
  add(app, "have", "have --out FILE [--json] [--store DIR]",
      "Writes a small have-file of what this node holds, for the node that writes its stick.",
      cmd_have)
      .option("out", "FILE", "where to write it")
      .required()
      .store()
      .json();
  add(app, "export",
      "export --to DIR [--for HAVE_FILE] [--bundle NAME ...] [--max-bytes N]\n"
      "               [--volume-size BYTES] [--lang fr,ar] [--note TEXT] [--json] [--store DIR]",
      "Writes a pack onto a stick: what the have-file's node lacks, or everything.", cmd_export)
      .option("to", "DIR", "the stick (the pack goes into DIR/outpost-pack)")
      .required()
      .option("for", "HAVE_FILE", "only what the node that wrote this have-file lacks")
      .repeated("bundle", "NAME", "only this bundle (repeat for several)")
      .option("max-bytes", "N", "write at most N bytes, by priority, saying what is left out")
      .check(bytes_value())
      .option("volume-size", "BYTES", "largest file of the pack (default 4G-1, FAT32's limit)")
      .check(bytes_value())
      .repeated("lang", "CODES", "README.txt in these languages too, after English: fr, ar")
      .option("note", "TEXT", "more words for README.txt (e.g. in the office's languages)")
      .store()
      .json();
  add(app, "import", "import PACK_OR_DIR [--root-pubkey HEX] [--json] [--store DIR]",
      "Imports a pack from a stick, checking every signature and hash first.", cmd_import)
      .positional("PACK_OR_DIR", "the stick, its outpost-pack folder or an index-*.json file")
      .option("root-pubkey", "HEX", "trust the pack's repository (its first root's key)")
      .store()
      .json();
  add(app, "serve", "serve [--config FILE] [--check-config]",
      "Runs the node daemon: syncs on schedule, shares held repositories over HTTP, answers "
      "'outpost status' and 'outpost sync --now' (docs/daemon.md).",
      cmd_serve)
      .option("config", "FILE",
              "the configuration (default: $OUTPOST_CONFIG, else "
              "/etc/outpost/outpost.toml)")
      .flag("check-config", "validate the configuration and exit");
}

// The deepest command CLI11 got to (nullptr: none).
const Command* chosen(const CLI::App& app, const std::deque<Command>& commands) {
  const CLI::App* at = &app;
  while (!at->get_subcommands().empty()) at = at->get_subcommands().front();
  for (const auto& c : commands) {
    if (c.app() == at) return &c;
  }
  return nullptr;
}

std::vector<const Command*> children(const Command& parent, const std::deque<Command>& commands) {
  std::vector<const Command*> out;
  for (const auto& c : commands) {
    if (c.app()->get_parent() == parent.app()) out.push_back(&c);
  }
  return out;
}

// CLI11's error, in the project's words.
std::string parse_error_text(const CLI::ParseError& e, const CLI::App& app, const Command* at,
                             const std::deque<Command>& commands) {
  const std::string what = e.what();
  if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
    for (const auto& extra : app.remaining(true)) {
      if (extra == "--") continue;
      if (extra.size() > 1 && extra[0] == '-')
        return "unknown option " + extra.substr(0, extra.find('='));
      if (at == nullptr) return "unknown command '" + extra + "': see 'outpost --help'";
      if (at->handler() == nullptr) {
        return "unknown command '" + at->app()->get_name() + " " + extra + "': see 'outpost " +
               at->app()->get_name() + " --help'";
      }
      return "unexpected argument '" + extra + "'";
    }
  }
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr) {
    return "option " + what.substr(0, what.find(':')) + " needs a value";
  }
  if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
    if (what.find("subcommand") != std::string::npos && at != nullptr) {
      for (const auto& extra : app.remaining(true)) {
        if (extra.empty() || extra[0] == '-') continue;
        return "unknown command '" + at->app()->get_name() + " " + extra + "': see 'outpost " +
               at->app()->get_name() + " --help'";
      }
      std::string names;
      for (const Command* sub : children(*at, commands)) {
        names += (names.empty() ? "" : ", ") + sub->app()->get_name();
      }
      return "missing command after '" + at->app()->get_name() + "': one of " + names;
    }
    const std::string tail = " is required";
    if (what.size() > tail.size() &&
        what.compare(what.size() - tail.size(), tail.size(), tail) == 0) {
      return "missing " + what.substr(0, what.size() - tail.size());
    }
  }
  return what;
}

// Parses the command line into the command's handler and arguments; returns -1 then, or the
// exit code when there is nothing to run (help, version, a usage error).
int parse(int argc, char** argv, Handler* handler, Args* parsed) {
  CLI::App app("outpost");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.require_subcommand(0, 1);
  // --store and --json may also come before the command.
  std::string store;
  CLI::Option* store_option = app.add_option("--store", store);
  CLI::Option* json_option = app.add_flag("--json");
  CLI::Option* version_option = app.add_flag("--version");
  std::deque<Command> commands;
  define_commands(app, commands);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    const Command* at = chosen(app, commands);
    if (at == nullptr) {
      std::cout << kUsage;
    } else {
      at->print_help(children(*at, commands));
    }
    return 0;
  } catch (const CLI::ParseError& e) {
    const Command* at = chosen(app, commands);
    std::fprintf(stderr, "outpost: error: %s\nusage: %s\n",
                 redact(parse_error_text(e, app, at, commands)).c_str(),
                 at == nullptr ? kMainUsage : at->usage().c_str());
    return 2;
  }
  if (version_option->count() != 0) {
    std::cout << "outpost " << kVersion << "\n";
    return 0;
  }
  const Command* at = chosen(app, commands);
  if (at == nullptr) {
    std::cout << kUsage;
    return 2;
  }
  Args args = at->args();
  if (at->handler() == nullptr) return args.usage_error("missing command");
  for (const auto& [name, option] :
       {std::pair<std::string, CLI::Option*>{"store", store_option}, {"json", json_option}}) {
    if (option->count() == 0) continue;
    if (!at->takes(name)) return args.usage_error("--" + name + " does not apply to this command");
    if (!args.has(name)) {
      args.options[name] =
          name == "store" ? std::vector<std::string>{store} : std::vector<std::string>{};
    }
  }
  *handler = at->handler();
  *parsed = std::move(args);
  return -1;
}

int run(int argc, char** argv) {
  Handler handler = nullptr;
  Args args;
  // The parser (every command's options and help) is freed before the command runs: `outpost
  // serve` runs for months.
  if (int code = parse(argc, argv, &handler, &args); code >= 0) return code;
  return handler(args);
}

}  // namespace
}  // namespace outpost

int outpost_main(int argc, char** argv) {
  if (int worker = outpost::serve::run_worker(argc, argv); worker >= 0) return worker;
  // "outpost help [COMMAND ...]" is "outpost [COMMAND ...] --help".
  if (argc >= 2 && std::string(argv[1]) == "help") {
    std::vector<char*> args(argv, argv + argc);
    args.erase(args.begin() + 1);
    static char help[] = "--help";
    args.push_back(help);
    return outpost::run(static_cast<int>(args.size()), args.data());
  }
  if (argc < 2) {
    std::cout << outpost::kUsage;
    return 2;
  }
  return outpost::run(argc, argv);
}
