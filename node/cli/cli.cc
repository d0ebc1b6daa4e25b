// The outpost command line (DESIGN.md, Command line). Each command parses its arguments,
// calls one library operation and prints the result for people, or JSON with --json.
// Every failure is one line on stderr, "outpost: error: ...", and a non-zero exit code that
// says what kind of failure it was (docs/cli.md).
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/base/json.h"
#include "outpost/base/status.h"
#include "outpost/crypto/keys.h"
#include "outpost/node/json_view.h"
#include "outpost/node/node.h"
#include "outpost/packaging/manifest.h"
#include "outpost/packaging/repository.h"

namespace outpost {
namespace {

constexpr const char* kVersion = "0.1.0";

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> options;
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
};

// Options that take no value.
bool is_flag(const std::string& name) {
  return name == "json" || name == "help" || name == "repair" || name == "dry-run";
}

Result<Args> parse_args(const std::vector<std::string>& argv) {
  Args a;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& s = argv[i];
    if (s.rfind("--", 0) != 0 || s == "--") {
      a.positional.push_back(s);
      continue;
    }
    std::string name = s.substr(2);
    auto eq = name.find('=');
    if (eq != std::string::npos) {
      a.options[name.substr(0, eq)].push_back(name.substr(eq + 1));
    } else if (is_flag(name)) {
      a.options[name];
    } else if (i + 1 < argv.size()) {
      a.options[name].push_back(argv[++i]);
    } else {
      return Status::InvalidArgument("option --" + name + " needs a value");
    }
  }
  return a;
}

int exit_code(const Status& s) {
  switch (s.code()) {
    case Code::kOk: return 0;
    case Code::kInvalidArgument: return 2;
    case Code::kNotFound: return 3;
    case Code::kCorruption:
    case Code::kVerificationFailed: return 4;
    case Code::kResourceExhausted: return 5;
    case Code::kUnavailable: return 6;
    case Code::kCancelled: return 130;  // as a shell reports Ctrl-C
    default: return 1;
  }
}

int fail(const Status& s) {
  std::fprintf(stderr, "outpost: error: %s\n", s.message().c_str());
  return exit_code(s);
}

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

// A role's key: --<role>-key FILE, else --keys DIR/<role>.key.
Result<crypto::SecretKey> role_key(const Args& a, const std::string& role, bool required = true) {
  std::string path = a.get(role + "-key");
  if (path.empty() && a.has("keys")) path = a.get("keys") + "/" + role + ".key";
  if (path.empty()) {
    return Status::InvalidArgument("missing --" + role + "-key FILE (or --keys DIR holding " +
                                   role + ".key)");
  }
  (void)required;
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

Status need_positional(const Args& a, std::size_t n, const char* usage) {
  if (a.positional.size() < n) return Status::InvalidArgument(std::string("usage: ") + usage);
  return Status::Ok();
}

void print_json(const Json& j) { std::cout << j.dump(2) << "\n"; }

// "1500", "64k", "10M", "2G" (powers of 1000; "KiB"-style suffixes are powers of 1024).
Result<std::uint64_t> parse_bytes(const std::string& text) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (...) {
    return Status::InvalidArgument("'" + text + "' is not a number of bytes (e.g. 500k, 20M)");
  }
  std::string unit = text.substr(used);
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mult = 1;
  if (unit.empty() || unit == "b")
    mult = 1;
  else if (unit == "k" || unit == "kb")
    mult = 1e3;
  else if (unit == "m" || unit == "mb")
    mult = 1e6;
  else if (unit == "g" || unit == "gb")
    mult = 1e9;
  else if (unit == "kib")
    mult = 1024;
  else if (unit == "mib")
    mult = 1024.0 * 1024;
  else if (unit == "gib")
    mult = 1024.0 * 1024 * 1024;
  else
    return Status::InvalidArgument("'" + text + "': unknown unit (use k, M or G)");
  if (v < 0) return Status::InvalidArgument("'" + text + "' is negative");
  return static_cast<std::uint64_t>(v * mult);
}

Result<double> parse_seconds(const Args& a, const std::string& name, double fallback) {
  if (!a.has(name)) return fallback;
  try {
    std::size_t used = 0;
    double v = std::stod(a.get(name), &used);
    if (used == a.get(name).size() && v >= 0) return v;
  } catch (...) {
  }
  return Status::InvalidArgument("--" + name + " needs a number of seconds");
}

// --ca-file, --rate, --retries, --backoff, --stall-timeout (docs/cli.md).
Result<sync::HttpOptions> http_options(const Args& a) {
  sync::HttpOptions h;
  h.ca_file = a.get("ca-file");
  if (a.has("rate")) {
    OUTPOST_ASSIGN_OR_RETURN(h.max_recv_speed, parse_bytes(a.get("rate")));
  }
  if (a.has("retries")) {
    try {
      h.retries = std::stoi(a.get("retries"));
    } catch (...) {
      return Status::InvalidArgument("--retries needs a whole number");
    }
  }
  OUTPOST_ASSIGN_OR_RETURN(h.backoff_initial_s, parse_seconds(a, "backoff", h.backoff_initial_s));
  OUTPOST_ASSIGN_OR_RETURN(
      double stall, parse_seconds(a, "stall-timeout", static_cast<double>(h.stall_timeout_s)));
  h.stall_timeout_s = std::max(1L, static_cast<long>(stall));
  return h;
}

// ---- commands ----

int cmd_keygen(const Args& a) {
  auto role = crypto::parse_key_role(a.get("role"));
  if (!a.has("role") || !role.ok()) {
    return fail(Status::InvalidArgument(
        "usage: outpost keygen --role root|targets|snapshot|timestamp|publisher --out KEYFILE"));
  }
  if (!a.has("out")) return fail(Status::InvalidArgument("keygen needs --out KEYFILE"));
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

int cmd_repo(const Args& a) {
  if (a.positional.size() < 2) {
    return fail(
        Status::InvalidArgument("usage: outpost repo init|delegate|refresh|rotate REPO_DIR ..."));
  }
  const std::string& sub = a.positional[0];
  const std::string& repo = a.positional[1];
  if (sub == "init") {
    std::vector<std::string> root_paths = a.all("root-key");
    if (root_paths.empty() && a.has("keys")) root_paths.push_back(a.get("keys") + "/root.key");
    auto loaded = load_keys(root_paths, "root key");
    if (!loaded.ok()) return fail(loaded.error());
    std::vector<crypto::SecretKey> roots = std::move(*loaded);
    if (roots.empty()) return fail(Status::InvalidArgument("repo init needs --root-key KEYFILE"));
    auto top = load_top_keys(a);
    if (!top.ok()) return fail(top.error());
    packaging::InitOptions o;
    for (const auto& k : roots) o.root_keys.push_back(&k);
    o.threshold = std::atoi(a.get("threshold", "1").c_str());
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
  if (sub == "delegate") {
    auto top = load_top_keys(a);
    if (!top.ok()) return fail(top.error());
    auto pub = crypto::PublicKey::from_hex(a.get("publisher-pubkey"));
    if (!pub.ok())
      return fail(Status::InvalidArgument("--publisher-pubkey HEX: " + pub.error().message()));
    if (!a.has("prefix"))
      return fail(Status::InvalidArgument("repo delegate needs --prefix NAME_PREFIX"));
    Status s = packaging::delegate(repo, top->targets, top->snapshot, top->timestamp, *pub,
                                   a.get("prefix"), system_clock());
    if (!s.ok()) return fail(s);
    std::cout << "delegated " << a.get("prefix") << "/... to publisher key " << pub->hex() << "\n";
    return 0;
  }
  if (sub == "refresh") {
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
  if (sub == "rotate") {
    auto old_keys = load_keys(a.all("old-root-key"), "old root key");
    if (!old_keys.ok()) return fail(old_keys.error());
    auto new_keys = load_keys(a.all("root-key"), "root key");
    if (!new_keys.ok()) return fail(new_keys.error());
    std::vector<crypto::SecretKey> olds = std::move(*old_keys), news = std::move(*new_keys);
    if (olds.empty() || news.empty()) {
      return fail(Status::InvalidArgument(
          "usage: outpost repo rotate REPO_DIR --old-root-key K... --root-key K... "
          "[--threshold N] --targets-key K --snapshot-key K --timestamp-key K"));
    }
    auto top = load_top_keys(a);
    if (!top.ok()) return fail(top.error());
    packaging::RotateOptions o;
    for (const auto& k : olds) o.old_root_keys.push_back(&k);
    for (const auto& k : news) o.new_root_keys.push_back(&k);
    o.threshold = std::atoi(a.get("threshold", "1").c_str());
    o.targets_key = &top->targets;
    o.snapshot_key = &top->snapshot;
    o.timestamp_key = &top->timestamp;
    if (Status s = packaging::rotate_root(repo, o); !s.ok()) return fail(s);
    std::cout << "wrote a new root version for " << repo << "\n";
    return 0;
  }
  return fail(Status::InvalidArgument("unknown command 'repo " + sub + "': see 'outpost --help'"));
}

int cmd_publish(const Args& a) {
  if (Status s = need_positional(a, 2,
                                 "outpost publish REPO_DIR --key KEYFILE [--bundle NAME] "
                                 "SRC_DIR [--kind KIND] [--title TITLE] --keys DIR");
      !s.ok()) {
    return fail(s);
  }
  if (!a.has("key"))
    return fail(Status::InvalidArgument("publish needs --key KEYFILE (the publisher key)"));
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
  o.source_dir = a.positional[1];
  if (a.has("bundle")) o.overrides.name = a.get("bundle");
  if (a.has("kind")) o.overrides.kind = a.get("kind");
  if (a.has("title")) o.overrides.title = a.get("title");
  if (a.has("level")) o.zstd_level = std::atoi(a.get("level").c_str());
  if (a.has("patch-ladder")) {
    // "--patch-ladder ''" writes the from-0 patch only.
    auto rungs = packaging::parse_ladder(a.get("patch-ladder"));
    if (!rungs.ok()) return fail(rungs.error().With("--patch-ladder"));
    o.patch_ladder = std::move(rungs).value();
  }
  o.publisher_key = &*publisher;
  o.snapshot_key = &*snapshot;
  o.timestamp_key = &*timestamp;
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
  if (Status s =
          need_positional(a, 1, "outpost subscribe PATH --root-pubkey HEX | --root ROOT_JSON");
      !s.ok()) {
    return fail(s);
  }
  node::SubscribeOptions o;
  if (a.has("root-pubkey")) {
    auto k = crypto::PublicKey::from_hex(a.get("root-pubkey"));
    if (!k.ok()) return fail(Status::InvalidArgument("--root-pubkey: " + k.error().message()));
    o.root_pubkey = *k;
  }
  o.root_json_path = a.get("root");
  o.mirrors = a.all("mirror");
  if (auto h = http_options(a); h.ok()) {
    o.http = *h;
  } else {
    return fail(h.error());
  }
  if (!o.root_pubkey && o.root_json_path.empty()) {
    return fail(
        Status::InvalidArgument("subscribe needs --root-pubkey HEX or --root ROOT_JSON "
                                "(the repository's root key, from its publisher)"));
  }
  auto node = open_node(a, true);
  if (!node.ok()) return fail(node.error());
  auto sub = (*node)->subscribe(a.positional[0], o);
  if (!sub.ok()) return fail(sub.error());
  if (a.has("json")) {
    Json j = Json::object();
    j.set("id", sub->id);
    j.set("location", sub->location);
    print_json(j);
  } else {
    std::cout << "subscribed to " << sub->location << " (repository " << sub->id
              << "); run 'outpost sync' to fetch it\n";
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
// blocked and a thread waits for them (sigwait), so nothing runs in a signal handler. Blocking
// happens in the constructor, before any other thread of the command starts, so every thread
// inherits the mask. A second signal after the stop request ends the process at once.
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
        if (sig == SIGUSR1 && done_.load()) return;
        if (sig == SIGUSR1) continue;
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

int cmd_sync(const Args& a) {
  auto node = open_node(a, false);
  if (!node.ok()) return fail(node.error());
  node::SyncOptions options;
  options.dry_run = a.has("dry-run");
  auto http = http_options(a);
  if (!http.ok()) return fail(http.error());
  options.http = *http;
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
    for (const auto& s : r.skipped_sources) std::cout << "skipped " << s << "\n";
    if (options.dry_run) {
      if (r.plan.empty() && r.deferred.empty()) {
        std::cout << r.location << ": up to date (" << human_bytes(r.bytes_read) << " read)\n";
        continue;
      }
      std::uint64_t total = 0;
      for (const auto& p : r.plan) {
        total += p.route.bytes;
        std::cout << p.bundle << ": "
                  << (p.from ? "version " + std::to_string(p.from) + " -> " : "new, ") << "version "
                  << p.to << " by " << describe_route(p.route) << "\n";
        for (std::size_t k = 1; k < p.considered.size(); ++k) {
          std::cout << "    (or " << describe_route(p.considered[k]) << ")\n";
        }
      }
      for (const auto& p : r.deferred) {
        std::cout << p.bundle << ": deferred (" << p.deferred << ")\n";
      }
      std::cout << r.location << ": the plan fetches " << human_bytes(total) << " ("
                << human_bytes(r.bytes_read) << " of metadata read to make it); nothing was "
                << "changed (dry run)\n";
      continue;
    }
    const std::string moved = r.metered ? " on the wire in " : " read from disk in ";
    const std::string unit = r.metered ? " request" : " file read";
    if (r.updated.empty() && r.deferred.empty() && r.failed.empty()) {
      std::cout << r.location << ": up to date (" << human_bytes(r.bytes_read) << moved
                << r.requests << unit << (r.requests == 1 ? "" : "s") << ")\n";
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
      std::cout << p.bundle << ": deferred (" << p.deferred << ")\n";
    }
    for (const auto& f : r.failed) {
      std::cout << f.bundle << ": not completed (see the error above); the others are\n";
    }
    std::cout << r.location << ": " << r.updated.size() << " bundle(s) updated";
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
    auto day = a.has("day") ? parse_bytes(a.get("day")) : Result<std::uint64_t>(cur->day);
    if (!day.ok()) return fail(day.error().With("--day"));
    auto month = a.has("month") ? parse_bytes(a.get("month")) : Result<std::uint64_t>(cur->month);
    if (!month.ok()) return fail(month.error().With("--month"));
    if (Status s = (*node)->set_budget(*day, *month); !s.ok()) return fail(s);
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
  if (Status s = need_positional(a, 1, "outpost show BUNDLE"); !s.ok()) return fail(s);
  auto node = open_reader(a);
  if (!node.ok()) return fail(node.error());
  auto j =
      (*node)->show(a.positional[0], std::strtoull(a.get("version", "0").c_str(), nullptr, 10));
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
  if (Status s = need_positional(a, 2, "outpost cat BUNDLE PATH"); !s.ok()) return fail(s);
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
  if (Status s = need_positional(a, 2, "outpost checkout BUNDLE DIR"); !s.ok()) return fail(s);
  auto node = open_reader(a);
  if (!node.ok()) return fail(node.error());
  Status s = (*node)->checkout(a.positional[0], a.positional[1]);
  if (!s.ok()) return fail(s);
  std::cout << "checked out " << a.positional[0] << " into " << a.positional[1] << "\n";
  return 0;
}

int cmd_verify(const Args& a) {
  auto node = open_reader(a);
  if (!node.ok()) return fail(node.error());
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
  int retain = std::atoi(a.get("retain", "2").c_str());
  if (a.has("bundle")) {
    // A per-bundle retention is remembered in the store and used by every later gc.
    if (!a.has("retain")) return fail(Status::InvalidArgument("--bundle needs --retain N"));
    if (Status s = (*node)->set_retention(a.get("bundle"), retain); !s.ok()) return fail(s);
    retain = 2;
  }
  auto r = (*node)->gc(retain);
  if (!r.ok()) return fail(r.error());
  if (a.has("json")) {
    Json j = Json::object();
    j.set("versions_removed", r->versions_removed);
    j.set("chunks_removed", r->chunks_removed);
    j.set("bytes_freed", r->bytes_freed);
    print_json(j);
  } else {
    std::cout << "removed " << r->versions_removed << " old versions and " << r->chunks_removed
              << " chunks (" << human_bytes(r->bytes_freed) << ")\n";
  }
  return 0;
}

int cmd_status(const Args& a) {
  auto node = open_reader(a);
  if (!node.ok()) return fail(node.error());
  auto j = (*node)->status();
  if (!j.ok()) return fail(j.error());
  if (a.has("json")) {
    print_json(*j);
    return 0;
  }
  std::cout << "store:     " << j->find("store")->as_string() << " ("
            << human_bytes(static_cast<std::uint64_t>(j->find("used_bytes")->as_int()))
            << " used)\n";
  std::cout << "bundles:   " << j->find("bundles")->as_int() << "\n";
  std::cout << "chunks:    " << j->find("chunks")->as_int() << "\n";
  std::cout << "time floor: " << j->find("time_floor")->as_string() << "\n";
  for (const Json& r : j->find("repositories")->as_array()) {
    std::cout << "repository " << r.find("id")->as_string() << " at "
              << r.find("location")->as_string() << ": last sync "
              << r.find("last_sync")->as_string();
    if (const Json* e = r.find("timestamp_expires")) {
      std::cout << ", timestamp valid until " << e->as_string();
    }
    std::cout << "\n";
  }
  return 0;
}

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
  outpost publish REPO_DIR --key PUBLISHER_KEY [--bundle NAME] SRC_DIR [--kind KIND]
                    [--title TITLE] [--patch-ladder LIST] --snapshot-key K --timestamp-key K
                    (or --keys DIR)

Node (every command takes --store DIR; default $OUTPOST_STORE, /var/lib/outpost for root,
else ~/.local/share/outpost):
  outpost subscribe PATH_OR_URL --root-pubkey HEX | --root ROOT_JSON [--mirror URL ...]
  outpost sync [PATH_OR_URL] [--dry-run] [--rate BYTES_PER_S] [--ca-file PEM]
               [--retries N] [--backoff SECONDS] [--stall-timeout SECONDS]
  outpost budget [--day BYTES] [--month BYTES]      (e.g. --day 5M --month 100M; 0: none)
  outpost ls | show BUNDLE | cat BUNDLE PATH | checkout BUNDLE DIR
  outpost verify | gc [--retain N] [--bundle NAME --retain N] | status

Options: --json (machine-readable output), --help, --version.
Exit codes: 0 ok, 1 other error, 2 bad usage, 3 not found, 4 damaged or failed verification,
5 disk or store full, 6 temporarily unavailable (retry).
)";

}  // namespace
}  // namespace outpost

int outpost_main(int argc, char** argv) {
  using namespace outpost;
  std::vector<std::string> rest(argv + 1, argv + argc);
  if (rest.empty() || rest[0] == "--help" || rest[0] == "-h" || rest[0] == "help") {
    std::cout << kUsage;
    return rest.empty() ? 2 : 0;
  }
  if (rest[0] == "--version") {
    std::cout << "outpost " << kVersion << "\n";
    return 0;
  }
  std::string command = rest[0];
  auto args = parse_args({rest.begin() + 1, rest.end()});
  if (!args.ok()) return fail(args.error());
  if (args->has("help")) {
    std::cout << kUsage;
    return 0;
  }
  static const std::map<std::string, std::function<int(const Args&)>> kCommands = {
      {"keygen", cmd_keygen},   {"repo", cmd_repo},
      {"publish", cmd_publish}, {"subscribe", cmd_subscribe},
      {"sync", cmd_sync},       {"budget", cmd_budget},
      {"ls", cmd_ls},           {"show", cmd_show},
      {"cat", cmd_cat},         {"checkout", cmd_checkout},
      {"verify", cmd_verify},   {"gc", cmd_gc},
      {"status", cmd_status},
  };
  auto it = kCommands.find(command);
  if (it == kCommands.end()) {
    return fail(Status::InvalidArgument("unknown command '" + command + "': see 'outpost --help'"));
  }
  return it->second(*args);
}
