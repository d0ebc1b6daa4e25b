#include "outpost/serve/daemon.h"

#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "dns_sd.h"
#include "outpost/base/retry.h"
#include "outpost/base/unique_fd.h"
#include "outpost/crypto/keys.h"
#include "outpost/kiosk/kiosk.h"
#include "outpost/node/json_view.h"
#include "outpost/node/node.h"
#include "outpost/serve/config.h"
#include "outpost/serve/http_server.h"
#include "outpost/serve/peer.h"
#include "outpost/serve/scheduler.h"
#include "outpost/storage/store.h"
#include "outpost/sync/http.h"
#include "sd_notify.h"
#include "worker.h"

namespace outpost::serve {

namespace {

// The first argument that makes the binary the kiosk's indexing worker (run_worker).
constexpr const char* kIndexWorker = "__kiosk-index";

// One line per event: "2026-12-02T20:30:00Z outpost serve: ready: ...".
void log_line(const std::string& text) {
  std::string line = format_utc(system_clock().now()) + " outpost serve: " + text + "\n";
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// What a sync changed, for the log: the first bundles by name and a count of the rest. A
// library's first sync changes thousands, and one line per sync has to stay readable (and
// under journald's line limit, 48 KB, past which it is split).
std::string listed(const std::vector<std::string>& updated) {
  constexpr std::size_t kNamed = 20;
  if (updated.size() <= kNamed) return join(updated, ", ");
  std::vector<std::string> named(updated.begin(), updated.begin() + kNamed);
  return join(named, ", ") + " and " + std::to_string(updated.size() - kNamed) + " more";
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// Replaces a URL's password with ***: status pages and logs never show credentials.
std::string redact(const std::string& url) {
  std::size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  std::size_t start = scheme + 3;
  std::size_t end = url.find('/', start);
  std::size_t at = url.rfind('@', end);
  if (at == std::string::npos || at < start) return url;
  std::size_t colon = url.find(':', start);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

std::string when(std::int64_t t, const char* zero) {
  if (t == 0) return zero;
  if (t == kNever) return "when an operator acts (outpost sync --now)";
  return format_utc(t);
}

std::uint64_t budget_left(const node::DataBudget& b) {
  std::uint64_t left = UINT64_MAX;
  if (b.day != 0) left = std::min(left, b.day > b.used_day ? b.day - b.used_day : 0);
  if (b.month != 0) left = std::min(left, b.month > b.used_month ? b.month - b.used_month : 0);
  return left;
}

// Sync counters for /metrics, by repository and by route.
struct SyncCounters {
  std::map<std::string, std::uint64_t> bytes_fetched;     // repository -> wire bytes
  std::map<std::string, std::uint64_t> content_by_route;  // route -> bytes of versions built
  std::map<std::string, std::uint64_t> versions_by_route;
  std::map<std::string, std::uint64_t> failures;  // repository
};

// The kiosk knows nothing of the HTTP server: its request and response, adapted.
HttpResponse kiosk_page(kiosk::Kiosk& k, const HttpRequest& r) {
  kiosk::KioskRequest kr;
  kr.method = r.method;
  kr.path = r.path;
  kr.args = r.args;
  kr.headers = r.headers;
  kiosk::KioskResponse resp = k.handle(kr);
  HttpResponse h;
  h.status = resp.status;
  h.content_type = std::move(resp.content_type);
  h.headers = std::move(resp.headers);
  h.body = std::move(resp.body);
  return h;
}

class Daemon {
 public:
  Daemon(Config config, Clock& clock) : config_(std::move(config)), clock_(clock) {}

  int run();

 private:
  Status start();
  void scheduler_loop(std::stop_token stop);
  void admin_loop(std::stop_token stop);
  void sync_round(std::stop_token stop, bool forced, Json* results);
  void ensure_subscriptions(node::Node& node, std::stop_token stop);
  void refresh_snapshot(node::Node& node);
  void reload();
  Json status_json();
  HttpResponse status_page(const HttpRequest& r);
  HttpResponse metrics_page();
  std::string admin_answer(const std::string& command);
  void probe_lan_peers(const Config& cfg, std::stop_token stop);
  std::vector<std::string> lan_mirrors(const std::string& repo_id);
  std::vector<std::string> all_lan_mirrors();

  Config config_;  // guarded by mu_ (the scheduler copies what it needs)
  Clock& clock_;
  std::int64_t started_ = 0;
  std::unique_ptr<node::Node> node_;  // the scheduler thread's
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<PeerServer> peer_;
  std::unique_ptr<kiosk::Kiosk> kiosk_;   // the pages at "/" (kiosk.enabled)
  std::unique_ptr<Scheduler> scheduler_;  // the scheduler thread's (guarded by mu_ for reads)

  std::mutex mu_;
  std::condition_variable_any wake_;
  bool force_pending_ = false;
  bool forced_running_ = false;
  std::uint64_t rounds_done_ = 0;  // forced rounds finished
  Json last_forced_ = Json::array();
  std::optional<node::NodeStatus> snapshot_;
  node::DataBudget budget_;
  std::map<std::string, std::string> locations_;  // repository id -> location
  std::map<std::string, RepoState> states_;       // copy of the scheduler's, for status
  SyncCounters counters_;
  std::set<std::string> subscribe_failed_;  // URLs whose subscribe failed (logged once)
  std::pair<std::uint64_t, std::uint64_t> applied_budget_{UINT64_MAX, UINT64_MAX};
  std::atomic<bool> stopping_{false};
  UniqueFd admin_fd_;
  // LAN discovery (docs/daemon.md): the nodes found over DNS-SD, and what each serves.
  std::unique_ptr<Announcer> lan_;
  struct LanNode {
    LanPeer peer;
    std::vector<std::string> repositories;  // ids it serves
    std::int64_t checked = 0;               // when its list was read (clock_)
    std::string error;                      // why the last read failed
  };
  std::map<std::string, LanNode> lan_nodes_;  // by service name; guarded by mu_
  bool lan_changed_ = false;                  // guarded by mu_
  std::set<std::string> lan_fresh_;           // repositories with a LAN source new this round
};

Status Daemon::start() {
  started_ = clock_.now();
  node::NodeOptions no;
  no.dir = config_.store;
  no.create = true;
  no.clock = &clock_;
  auto node = node::Node::open(no);
  if (!node.ok()) return node.error().With("opening the store " + config_.store);
  node_ = std::move(*node);
  peer_ = std::make_unique<PeerServer>(node_->store());
  HttpServerOptions ho;
  ho.listen = config_.http.listen;
  ho.threads = config_.http.threads;
  ho.max_connections = config_.http.max_connections;
  ho.per_ip_connections = config_.http.per_ip_connections;
  ho.connection_timeout = config_.http.connection_timeout;
  ho.max_inflight_bytes = config_.http.max_inflight_bytes;
  http_ = std::make_unique<HttpServer>(ho);
  if (config_.http.peer_serving) peer_->install(*http_, "/repo/");
  http_->route("/status", [this](const HttpRequest& r) { return status_page(r); });
  http_->route("/metrics", [this](const HttpRequest&) { return metrics_page(); });
  if (config_.kiosk.enabled) {
    kiosk::KioskOptions ko;
    ko.store = config_.store;
    ko.index_dir = config_.kiosk.index;
    ko.site_name = config_.kiosk.site_name;
    ko.stale_after = config_.kiosk.stale_after_days * 86400;
    ko.clock = &clock_;
    ko.index_command = {"/proc/self/exe", kIndexWorker};
    auto k = kiosk::Kiosk::open(ko);
    if (!k.ok())
      return k.error().With("starting the kiosk (set kiosk.enabled = false to run without)");
    kiosk_ = std::move(k).value();
    http_->route("/", [this](const HttpRequest& r) { return kiosk_page(*kiosk_, r); });
  } else {
    http_->route("/", [](const HttpRequest& r) {
      if (r.path != "/") return HttpResponse::text(404, "not found");
      HttpResponse h;
      h.status = 302;
      h.headers.emplace_back("Location", "/status");
      return h;
    });
  }
  OUTPOST_RETURN_IF_ERROR(http_->start());
  scheduler_ = std::make_unique<Scheduler>(config_.link, clock_);

  // The admin socket: a stale one (no daemon behind it) is replaced; a live one means a
  // second daemon on this store.
  auto live = admin_call(config_.admin_socket, "ping", 1.0);
  if (live.ok()) {
    return Status::FailedPrecondition("a daemon already runs on this store (admin socket " +
                                      config_.admin_socket + "): stop it first");
  }
  ::unlink(config_.admin_socket.c_str());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (config_.admin_socket.size() >= sizeof addr.sun_path) {
    return Status::InvalidArgument(config_.path + ": admin_socket: path longer than " +
                                   std::to_string(sizeof addr.sun_path - 1) +
                                   " bytes: choose a shorter one");
  }
  std::memcpy(addr.sun_path, config_.admin_socket.c_str(), config_.admin_socket.size());
  admin_fd_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  mode_t old = ::umask(0117);  // 0660: the store's group may use it
  int rc = ::bind(admin_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (rc != 0 || ::listen(admin_fd_.get(), 16) != 0) {
    return Status::FailedPrecondition("cannot create the admin socket " + config_.admin_socket +
                                      ": " + std::strerror(errno) +
                                      ": check the folder's permissions or set admin_socket");
  }
  return Status::Ok();
}

void Daemon::ensure_subscriptions(node::Node& node, std::stop_token stop) {
  auto subs = node.subscriptions();
  if (!subs.ok()) return;
  Config cfg;
  {
    std::lock_guard lock(mu_);
    cfg = config_;
  }
  for (const auto& s : cfg.subscriptions) {
    bool have = std::any_of(subs->begin(), subs->end(),
                            [&](const node::Subscription& x) { return x.location == s.url; });
    if (have) continue;
    node::SubscribeOptions so;
    if (!s.root_pubkey.empty()) {
      auto key = crypto::PublicKey::from_hex(s.root_pubkey);
      if (!key.ok()) continue;  // checked by the config parser
      so.root_pubkey = *key;
    }
    so.root_json_path = s.root_json;
    so.mirrors = s.mirrors;
    so.http.max_recv_speed = cfg.link.rate;
    // Nodes found on the LAN may serve it: a kiosk with no other link subscribes through
    // them (the root key decides what is trusted, not where it came from).
    Status up = check_link(s.url, static_cast<int>(cfg.link.link_timeout));
    if (!up.ok()) {
      so.extra_sources = all_lan_mirrors();
      if (so.extra_sources.empty() && s.mirrors.empty()) {
        // A dead link costs nothing: no request, and the next round tries again.
        if (subscribe_failed_.insert(s.url).second) {
          log_line("cannot subscribe to " + redact(s.url) + " yet: " + up.message() + " (" +
                   retry_class_name(retry_class(up)) + ")");
        }
        continue;
      }
      so.http.retries = 1;  // the origin is down: on to the next source soon
    }
    so.http.stop = stop;
    auto sub = subscribe_in_worker(cfg.store, s.url, so);
    if (stop.stop_requested()) return;  // the daemon is stopping: the next start subscribes
    if (sub.ok()) {
      log_line("subscribed to " + redact(s.url) + " (repository " + sub->id + ")");
      subscribe_failed_.erase(s.url);
    } else if (subscribe_failed_.insert(s.url).second) {
      log_line("cannot subscribe to " + redact(s.url) + " yet: " + sub.error().message() + " (" +
               retry_class_name(retry_class(sub.error())) + ")");
    }
  }
}

void Daemon::refresh_snapshot(node::Node& node) {
  auto st = node.status();
  auto b = node.budget();
  std::lock_guard lock(mu_);
  if (st.ok()) snapshot_ = *st;
  if (b.ok()) budget_ = *b;
  states_ = scheduler_->states();
}

void Daemon::sync_round(std::stop_token stop, bool forced, Json* results) {
  node::Node& node = *node_;
  {
    Config cfg;
    {
      std::lock_guard lock(mu_);
      cfg = config_;
    }
    probe_lan_peers(cfg, stop);
  }
  ensure_subscriptions(node, stop);
  auto subs = node.subscriptions();
  if (!subs.ok()) {
    log_line("cannot read the subscriptions: " + subs.error().message());
    return;
  }
  Config cfg;
  {
    std::lock_guard lock(mu_);
    cfg = config_;
  }
  std::vector<RepoPlan> plans;
  std::map<std::string, node::Subscription> by_id;
  for (const auto& s : *subs) {
    int priority = 100;
    for (const auto& c : cfg.subscriptions) {
      if (c.url == s.location) priority = c.priority;
    }
    plans.push_back({s.id, priority});
    by_id[s.id] = s;
  }
  if (applied_budget_ != std::pair{cfg.link.daily_budget, cfg.link.monthly_budget}) {
    Status set = node.set_budget(cfg.link.daily_budget, cfg.link.monthly_budget);
    if (set.ok()) {
      applied_budget_ = {cfg.link.daily_budget, cfg.link.monthly_budget};
    } else {
      log_line("cannot set the data budget: " + set.message());
    }
  }
  scheduler_->set_link(cfg.link);
  scheduler_->set_repositories(plans);
  // A repository that failed may come from a node that just appeared on the LAN.
  for (const auto& p : plans) {
    const auto& st = scheduler_->states().at(p.id);
    if (st.failures > 0 && !lan_mirrors(p.id).empty() && lan_fresh_.count(p.id) != 0) {
      scheduler_->make_due(p.id);
    }
  }
  lan_fresh_.clear();
  if (forced) scheduler_->force();
  auto budget = node.budget();
  const std::uint64_t left = budget.ok() ? budget_left(*budget) : UINT64_MAX;
  std::vector<std::string> due = scheduler_->due(left, forced);
  if (forced && due.empty() && !subs->empty()) {
    std::string why = "the data budget is used up";
    for (const auto& s : *subs) {
      Json j = Json::object();
      j.set("repository", s.id);
      j.set("outcome", "not synced: " + why);
      results->push(std::move(j));
    }
  }
  for (const std::string& id : due) {
    if (stop.stop_requested()) break;
    const node::Subscription& sub = by_id[id];
    Json outcome = Json::object();
    outcome.set("repository", id);
    // The cheap check first: a dead link costs nothing and backs off.
    std::vector<std::string> locations = {sub.location};
    locations.insert(locations.end(), sub.mirrors.begin(), sub.mirrors.end());
    for (auto& m : lan_mirrors(id)) {
      if (std::find(locations.begin(), locations.end(), m) == locations.end()) {
        locations.push_back(std::move(m));
      }
    }
    // The origin, then its configured mirrors, then the nodes found on the LAN that serve this
    // repository, each verified against the publisher's signatures as any mirror; those whose
    // link is down are not tried (a dead origin would cost its retries first).
    std::vector<std::string> reachable;
    Status link = Status::Ok();
    for (const auto& m : locations) {
      Status up = check_link(m, static_cast<int>(cfg.link.link_timeout));
      if (up.ok()) {
        reachable.push_back(m);
      } else if (m == sub.location) {
        link = up;
      }
    }
    if (reachable.empty()) {
      auto& st = scheduler_->states().at(id);
      if (st.failures == 0 || forced) log_line(id + ": " + link.message() + "; will retry");
      scheduler_->record(id, link);
      outcome.set("outcome", link.message());
      results->push(std::move(outcome));
      continue;
    }
    if (reachable.front() != sub.location) {
      log_line(id + ": " + redact(sub.location) + " is unreachable; syncing from " +
               redact(reachable.front()));
    }
    node::SyncOptions so;
    so.http.max_recv_speed = cfg.link.rate;
    so.stop = stop;
    so.keep_patches = cfg.http.peer_serving;  // what peers ask for first
    for (const auto& c : cfg.subscriptions) {
      if (c.url == sub.location && !c.bundles.empty()) so.bundle_filters[id] = c.bundles;
    }
    auto reports = sync_in_worker(cfg.store, reachable.front(), so);
    for (std::size_t at = 1; at < reachable.size(); ++at) {
      const bool complete =
          reports.ok() && std::none_of(reports->begin(), reports->end(),
                                       [&](const auto& r) { return r.repo == id && r.partial(); });
      if (complete || (!reports.ok() &&
                       (reports.error().IsCancelled() || reports.error().IsResourceExhausted() ||
                        reports.error().code() == Code::kInvalidArgument))) {
        break;
      }
      log_line(id + ": " + redact(reachable[at - 1]) + " failed (" +
               (reports.ok() ? std::string("some bundles incomplete") : reports.error().message()) +
               "); trying " + redact(reachable[at]));
      reports = sync_in_worker(cfg.store, reachable[at], so);
    }
    Status result = Status::Ok();
    std::string line;
    if (!reports.ok()) {
      result = reports.error();
    } else {
      std::uint64_t fetched = 0;
      std::vector<std::string> updated;
      for (const auto& r : *reports) {
        fetched += r.bytes_read;
        for (const auto& f : r.failed) {
          if (result.ok()) result = f.why;
        }
        for (const auto& u : r.updated) {
          updated.push_back(u.bundle + " " + std::to_string(u.from) + "->" + std::to_string(u.to) +
                            " by " + node::route_name(u.route));
          std::lock_guard lock(mu_);
          counters_.content_by_route[node::route_name(u.route)] += u.bytes;
          counters_.versions_by_route[node::route_name(u.route)] += 1;
        }
        for (const auto& d : r.deferred)
          updated.push_back(d.bundle + " deferred (" + d.deferred + ")");
      }
      {
        std::lock_guard lock(mu_);
        counters_.bytes_fetched[id] += fetched;
      }
      if (!updated.empty()) {
        line = id + ": synced from " +
               redact(reports->empty() ? sub.location : reports->front().location) + ": " +
               listed(updated) + " (" + std::to_string(fetched) + " bytes fetched)";
        peer_->invalidate();
        if (cfg.retain > 0) {
          auto gc = gc_in_worker(cfg.store, cfg.retain);
          if (gc.ok() && gc->versions_removed > 0) {
            log_line("gc: removed " + std::to_string(gc->versions_removed) + " old versions, " +
                     std::to_string(gc->bytes_freed) + " bytes freed");
          }
        }
      }
    }
    if (result.code() == Code::kCancelled) {
      log_line(id + ": sync stopped; verified pieces kept, the next start resumes");
      outcome.set("outcome", "stopped");
      results->push(std::move(outcome));
      break;
    }
    scheduler_->record(id, result);
    const RepoState& st = scheduler_->states().at(id);
    if (!line.empty()) log_line(line);
    if (!result.ok()) {
      {
        std::lock_guard lock(mu_);
        counters_.failures[id] += 1;
      }
      log_line(id + ": sync failed (" + retry_class_name(retry_class(result)) +
               "): " + result.message() + "; next attempt " + when(st.next, "now"));
      outcome.set("outcome", "failed: " + result.message());
    } else {
      outcome.set("outcome", line.empty() ? "up to date" : line.substr(id.size() + 2));
    }
    results->push(std::move(outcome));
  }
  {
    std::lock_guard lock(mu_);
    locations_.clear();
    for (const auto& s : *subs) locations_[s.id] = s.location;
  }
  refresh_snapshot(node);
  // A round reads the store through its map (a sync reads much of it) and parses metadata:
  // hand the pages and the freed heap back while the daemon waits for the next round, as the
  // kiosk does after its own reads (it releases only when something changed, so a round that
  // synced nothing would otherwise leave what it read resident). Cheap: a walk of the page
  // tables and of the heap, once a round.
  node.store().release_memory();
  malloc_trim(0);
}

void Daemon::probe_lan_peers(const Config& cfg, std::stop_token stop) {
  if (!lan_) return;
  const std::vector<LanPeer> found = lan_->peers();
  const std::int64_t now = clock_.now();
  std::map<std::string, LanNode> known;
  {
    std::lock_guard lock(mu_);
    known = lan_nodes_;
  }
  std::map<std::string, LanNode> next;
  for (const LanPeer& peer : found) {
    LanNode n;
    if (auto k = known.find(peer.name); k != known.end() && k->second.peer == peer) n = k->second;
    n.peer = peer;
    // What a node serves changes when it subscribes to more: read its list again now and then.
    if (n.checked == 0 || now - n.checked >= 60 || now < n.checked) {
      const bool first = n.checked == 0;
      const std::string was = n.error;
      n.checked = now;
      n.error.clear();
      sync::HttpOptions http;
      http.connect_timeout_s = cfg.link.link_timeout;
      http.stall_timeout_s = 10;
      http.retries = 1;
      http.stop = stop;
      auto list = peer_list_in_worker(peer.url(), http);
      if (list.ok()) {
        if (first || *list != n.repositories) {
          log_line("LAN node '" + peer.name + "' at " + peer.url() + " serves " +
                   std::to_string(list->size()) + " repositories" +
                   (list->empty() ? "" : ": " + join(*list, ", ")));
        }
        n.repositories = std::move(*list);
      } else {
        n.repositories.clear();
        n.error = list.error().message();
        if (n.error != was)
          log_line("LAN node '" + peer.name + "' at " + peer.url() + " cannot be used: " + n.error);
      }
    }
    next[peer.name] = std::move(n);
  }
  std::lock_guard lock(mu_);
  lan_changed_ = false;
  for (const auto& [name, n] : next) {
    auto k = known.find(name);
    for (const auto& id : n.repositories) {
      if (k == known.end() ||
          std::find(k->second.repositories.begin(), k->second.repositories.end(), id) ==
              k->second.repositories.end()) {
        lan_fresh_.insert(id);
      }
    }
  }
  lan_nodes_ = std::move(next);
}

std::vector<std::string> Daemon::lan_mirrors(const std::string& repo_id) {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, n] : lan_nodes_) {
    if (std::find(n.repositories.begin(), n.repositories.end(), repo_id) != n.repositories.end()) {
      out.push_back(n.peer.url() + repo_id + "/");
    }
  }
  return out;
}

std::vector<std::string> Daemon::all_lan_mirrors() {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, n] : lan_nodes_) {
    for (const auto& id : n.repositories) out.push_back(n.peer.url() + id + "/");
  }
  return out;
}

void Daemon::scheduler_loop(std::stop_token stop) {
  while (!stop.stop_requested()) {
    bool forced = false;
    {
      std::lock_guard lock(mu_);
      forced = force_pending_;
      force_pending_ = false;
      forced_running_ = forced;
    }
    Json results = Json::array();
    sync_round(stop, forced, &results);
    std::unique_lock lock(mu_);
    if (forced) {
      last_forced_ = std::move(results);
      ++rounds_done_;
      forced_running_ = false;
    }
    // Sleep until something is due (at most 30 s, so clock jumps and the budget's new day are
    // noticed), a forced round, or stop.
    std::int64_t next = scheduler_->next_due();
    std::int64_t now = clock_.now();
    std::int64_t wait = next == kNever ? 30 : std::clamp<std::int64_t>(next - now, 1, 30);
    wake_.wait_for(lock, stop, std::chrono::seconds(wait),
                   [&] { return force_pending_ || lan_changed_; });
  }
}

std::string Daemon::admin_answer(const std::string& command) {
  if (command == "ping") return "{\"ok\":true}";
  if (command == "status") return status_json().dump(2);
  Json j = Json::object();
  j.set("error", "unknown command '" + command + "': use status or sync");
  return j.dump();
}

namespace {

void send_all(int fd, const std::string& text) {
  std::size_t sent = 0;
  while (sent < text.size()) {
    ssize_t n = ::send(fd, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
}

}  // namespace

void Daemon::admin_loop(std::stop_token stop) {
  // `sync` answers once its forced round is done; meanwhile other commands are answered.
  std::vector<std::pair<UniqueFd, std::uint64_t>> waiting;
  auto answer_waiting = [&](bool stopping) {
    std::lock_guard lock(mu_);
    for (auto it = waiting.begin(); it != waiting.end();) {
      if (!stopping && rounds_done_ < it->second) {
        ++it;
        continue;
      }
      Json j = Json::object();
      j.set("synced", last_forced_);
      if (stopping && rounds_done_ < it->second) j.set("error", "the daemon is stopping");
      send_all(it->first.get(), j.dump(2) + "\n");
      it = waiting.erase(it);
    }
  };
  while (!stop.stop_requested()) {
    answer_waiting(false);
    pollfd p{admin_fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 200) != 1) continue;
    UniqueFd c(::accept4(admin_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c.valid()) continue;
    // One line, at most 64 bytes, within 2 s.
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (line.find('\n') == std::string::npos && line.size() < 64 &&
           std::chrono::steady_clock::now() < deadline) {
      pollfd q{c.get(), POLLIN, 0};
      if (::poll(&q, 1, 100) != 1) continue;
      char buf[64];
      ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
      if (n <= 0) break;
      line.append(buf, static_cast<std::size_t>(n));
    }
    line = line.substr(0, line.find('\n'));
    if (line == "sync" && waiting.size() < 64) {
      std::lock_guard lock(mu_);
      // A forced round already running may have read the store before this request.
      const std::uint64_t target = rounds_done_ + (forced_running_ ? 2 : 1);
      force_pending_ = true;
      wake_.notify_all();
      waiting.emplace_back(std::move(c), target);
      continue;
    }
    send_all(c.get(), admin_answer(line) + "\n");
  }
  answer_waiting(true);
}

Json Daemon::status_json() {
  std::lock_guard lock(mu_);
  Json j = Json::object();
  Json d = Json::object();
  d.set("pid", static_cast<std::int64_t>(::getpid()));
  d.set("started", format_utc(started_));
  d.set("config", config_.path);
  Json listen = Json::array();
  for (const auto& l : config_.http.listen) listen.push(l);
  d.set("listen", std::move(listen));
  Json ports = Json::array();
  for (int p : http_->ports()) ports.push(p);
  d.set("ports", std::move(ports));
  d.set("peer_serving", config_.http.peer_serving);
  j.set("daemon", std::move(d));
  if (snapshot_) j.set("node", node::to_json(*snapshot_));
  Json b = Json::object();
  b.set("day", budget_.day);
  b.set("month", budget_.month);
  b.set("used_day", budget_.used_day);
  b.set("used_month", budget_.used_month);
  b.set("left",
        budget_left(budget_) == UINT64_MAX ? Json("unlimited") : Json(budget_left(budget_)));
  j.set("budget", std::move(b));
  Json repos = Json::array();
  for (const auto& [id, s] : states_) {
    Json r = Json::object();
    r.set("id", id);
    r.set("location", redact(locations_.count(id) ? locations_.at(id) : ""));
    r.set("priority", s.priority);
    r.set("last_attempt", when(s.last_attempt, "never"));
    r.set("last_success", when(s.last_success, "never"));
    r.set("failures", s.failures);
    r.set("outcome", s.last_attempt == 0    ? "none yet"
                     : s.last_error.empty() ? "ok"
                                            : retry_class_name(s.last_class));
    if (!s.last_error.empty()) r.set("error", s.last_error);
    r.set("next", when(s.next, "now"));
    repos.push(std::move(r));
  }
  j.set("repositories", std::move(repos));
  HttpServerStats hs = http_->stats();
  PeerStats ps = peer_->stats();
  Json h = Json::object();
  h.set("requests", hs.requests);
  h.set("bytes_sent", hs.bytes_sent);
  h.set("connections", hs.connections);
  h.set("peer_requests", ps.requests);
  h.set("peer_bytes", ps.bytes);
  h.set("peers", ps.peers);
  j.set("http", std::move(h));
  // Nodes found on the LAN (DNS-SD) and the repositories each serves: used as mirrors.
  Json lan = Json::array();
  for (const auto& [name, n] : lan_nodes_) {
    Json p = Json::object();
    p.set("name", name);
    p.set("url", n.peer.url());
    Json ids = Json::array();
    for (const auto& id : n.repositories) ids.push(id);
    p.set("repositories", std::move(ids));
    if (!n.error.empty()) p.set("error", n.error);
    lan.push(std::move(p));
  }
  j.set("peers", std::move(lan));
  return j;
}

HttpResponse Daemon::status_page(const HttpRequest& r) {
  Json j = status_json();
  const bool json =
      r.path == "/status.json" || r.header("accept").find("application/json") != std::string::npos;
  if (r.path != "/status" && r.path != "/status.json") return HttpResponse::text(404, "not found");
  HttpResponse out;
  out.headers.emplace_back("Cache-Control", "no-cache");
  if (json) {
    out.content_type = "application/json";
    out.body = j.dump(2) + "\n";
    return out;
  }
  std::ostringstream h;
  h << "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
       "<meta name=\"viewport\" content=\"width=device-width\"><title>outpost status</title>"
       "<style>body{font-family:sans-serif;margin:1em}td,th{padding:.2em .6em;text-align:left}"
       "</style></head><body><h1>outpost node</h1>";
  if (const Json* n = j.find("node")) {
    h << "<p>Store " << html_escape(n->find("store")->as_string()) << ": "
      << n->find("bundles")->as_int() << " bundles, " << n->find("in_use_bytes")->as_int()
      << " bytes in use.</p>";
  }
  const Json* b = j.find("budget");
  h << "<p>Data budget left: "
    << html_escape(b->find("left")->is_string()
                       ? b->find("left")->as_string()
                       : std::to_string(b->find("left")->as_int()) + " bytes")
    << ".</p><h2>Repositories</h2><table><tr><th>id</th><th>location</th><th>last success</th>"
       "<th>outcome</th><th>next</th></tr>";
  for (const Json& rep : j.find("repositories")->as_array()) {
    h << "<tr><td>" << html_escape(rep.find("id")->as_string());
    if (config_.http.peer_serving) {
      h << " (<a href=\"/repo/" << html_escape(rep.find("id")->as_string()) << "/\">shared</a>)";
    }
    h << "</td><td>" << html_escape(rep.find("location")->as_string()) << "</td><td>"
      << html_escape(rep.find("last_success")->as_string()) << "</td><td>"
      << html_escape(rep.find("outcome")->as_string()) << "</td><td>"
      << html_escape(rep.find("next")->as_string()) << "</td></tr>";
  }
  h << "</table>";
  if (const Json* lan = j.find("peers"); lan != nullptr && !lan->as_array().empty()) {
    h << "<h2>Nodes on the LAN</h2><table><tr><th>name</th><th>address</th>"
         "<th>repositories</th></tr>";
    for (const Json& p : lan->as_array()) {
      std::string ids;
      for (const Json& id : p.find("repositories")->as_array()) {
        ids += (ids.empty() ? "" : ", ") + id.as_string();
      }
      h << "<tr><td>" << html_escape(p.find("name")->as_string()) << "</td><td>"
        << html_escape(p.find("url")->as_string()) << "</td><td>" << html_escape(ids)
        << "</td></tr>";
    }
    h << "</table>";
  }
  h << "<p><a href=\"/status.json\">JSON</a> · <a href=\"/metrics\">metrics</a></p>"
       "</body></html>\n";
  out.content_type = "text/html; charset=utf-8";
  out.body = h.str();
  return out;
}

HttpResponse Daemon::metrics_page() {
  std::ostringstream m;
  auto metric = [&](const char* name, const char* type, const char* help) {
    m << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  };
  HttpServerStats hs = http_->stats();
  PeerStats ps = peer_->stats();
  std::lock_guard lock(mu_);
  metric("outpost_http_requests_total", "counter", "HTTP requests answered.");
  m << "outpost_http_requests_total " << hs.requests << "\n";
  metric("outpost_http_response_bytes_total", "counter", "HTTP response body bytes queued.");
  m << "outpost_http_response_bytes_total " << hs.bytes_sent << "\n";
  metric("outpost_http_connections", "gauge", "Open HTTP connections.");
  m << "outpost_http_connections " << hs.connections << "\n";
  metric("outpost_http_busy_total", "counter", "Requests refused with 503 (bytes in flight).");
  m << "outpost_http_busy_total " << hs.busy << "\n";
  metric("outpost_peer_requests_total", "counter", "Requests for held repositories (/repo/).");
  m << "outpost_peer_requests_total " << ps.requests << "\n";
  metric("outpost_peer_bytes_total", "counter", "Bytes served to peers.");
  m << "outpost_peer_bytes_total " << ps.bytes << "\n";
  metric("outpost_peer_pieces_requests_total", "counter",
         "Requests for many pieces in one response, or a patch on demand (/repo/<id>/pieces).");
  m << "outpost_peer_pieces_requests_total " << ps.pieces_requests << "\n";
  metric("outpost_peer_patches_made_total", "counter", "Patches computed on demand for peers.");
  m << "outpost_peer_patches_made_total " << ps.patches_made << "\n";
  metric("outpost_peers", "gauge", "Distinct peer addresses in the last 10 minutes.");
  m << "outpost_peers " << ps.peers << "\n";
  metric("outpost_lan_peers", "gauge", "Nodes found on the LAN over DNS-SD.");
  m << "outpost_lan_peers " << lan_nodes_.size() << "\n";
  metric("outpost_lan_peer_repositories", "gauge",
         "Repositories a node found on the LAN serves (a mirror of each), per node.");
  for (const auto& [name, n] : lan_nodes_) {
    m << "outpost_lan_peer_repositories{peer=\"" << n.peer.url() << "\"} " << n.repositories.size()
      << "\n";
  }
  metric("outpost_sync_fetched_bytes_total", "counter", "Bytes moved by syncs, per repository.");
  for (const auto& [id, n] : counters_.bytes_fetched) {
    m << "outpost_sync_fetched_bytes_total{repository=\"" << id << "\"} " << n << "\n";
  }
  metric("outpost_sync_content_bytes_total", "counter",
         "Content bytes of the versions built, per route (patch, chain, chunks, full).");
  for (const auto& [route, n] : counters_.content_by_route) {
    m << "outpost_sync_content_bytes_total{route=\"" << route << "\"} " << n << "\n";
  }
  metric("outpost_sync_versions_total", "counter", "Bundle versions built, per route.");
  for (const auto& [route, n] : counters_.versions_by_route) {
    m << "outpost_sync_versions_total{route=\"" << route << "\"} " << n << "\n";
  }
  metric("outpost_sync_failures_total", "counter", "Failed syncs, per repository.");
  for (const auto& [id, n] : counters_.failures) {
    m << "outpost_sync_failures_total{repository=\"" << id << "\"} " << n << "\n";
  }
  metric("outpost_last_sync_timestamp_seconds", "gauge", "Last sync attempt, per repository.");
  for (const auto& [id, s] : states_) {
    m << "outpost_last_sync_timestamp_seconds{repository=\"" << id << "\"} " << s.last_attempt
      << "\n";
  }
  metric("outpost_last_sync_success", "gauge", "1 when the last sync succeeded, per repository.");
  for (const auto& [id, s] : states_) {
    m << "outpost_last_sync_success{repository=\"" << id << "\"} "
      << (s.last_attempt != 0 && s.last_error.empty() ? 1 : 0) << "\n";
  }
  metric("outpost_budget_remaining_bytes", "gauge", "Data budget left (-1: no limit).");
  for (auto [period, limit, used] : {std::tuple{"day", budget_.day, budget_.used_day},
                                     std::tuple{"month", budget_.month, budget_.used_month}}) {
    m << "outpost_budget_remaining_bytes{period=\"" << period << "\"} "
      << (limit == 0 ? std::string("-1") : std::to_string(limit > used ? limit - used : 0)) << "\n";
  }
  if (snapshot_) {
    metric("outpost_store_bytes", "gauge", "Bytes the store's data holds.");
    m << "outpost_store_bytes " << snapshot_->in_use_bytes << "\n";
    metric("outpost_store_file_bytes", "gauge", "Size of the store's data.mdb.");
    m << "outpost_store_file_bytes " << snapshot_->file_bytes << "\n";
    metric("outpost_store_bundles", "gauge", "Bundles held.");
    m << "outpost_store_bundles " << snapshot_->bundles << "\n";
    metric("outpost_store_chunks", "gauge", "Chunks held.");
    m << "outpost_store_chunks " << snapshot_->chunks << "\n";
  }
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = m.str();
  return r;
}

void Daemon::reload() {
  auto fresh = load_config(config_.path);
  if (!fresh.ok()) {
    log_line("reload failed, keeping the running configuration: " + fresh.error().message());
    return;
  }
  std::vector<std::string> restart;
  if (fresh->store != config_.store) restart.push_back("store");
  if (fresh->http.listen != config_.http.listen) restart.push_back("http.listen");
  if (fresh->admin_socket != config_.admin_socket) restart.push_back("admin_socket");
  if (fresh->http.peer_serving != config_.http.peer_serving) restart.push_back("http.peer_serving");
  if (fresh->kiosk.enabled != config_.kiosk.enabled || fresh->kiosk.index != config_.kiosk.index ||
      fresh->kiosk.site_name != config_.kiosk.site_name ||
      fresh->kiosk.stale_after_days != config_.kiosk.stale_after_days) {
    restart.push_back("kiosk");
  }
  {
    std::lock_guard lock(mu_);
    Config keep = config_;
    config_ = *fresh;
    // What only a restart can change stays as it runs.
    config_.store = keep.store;
    config_.http = keep.http;
    config_.admin_socket = keep.admin_socket;
    config_.kiosk = keep.kiosk;
    force_pending_ = true;  // new subscriptions and policy apply at once
    wake_.notify_all();
  }
  std::string note = restart.empty() ? "" : "; restart to apply " + join(restart, ", ");
  log_line("reloaded " + config_.path + ": " + std::to_string(fresh->subscriptions.size()) +
           (fresh->subscriptions.size() == 1 ? " subscription" : " subscriptions") + note);
}

int Daemon::run() {
  // Signals go to the main thread only: block them before any thread starts.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  Status st = start();
  if (!st.ok()) {
    std::fprintf(stderr, "outpost: error: %s\n", st.message().c_str());
    http_.reset();
    switch (retry_class(st)) {
      case RetryClass::kLater: return 6;
      case RetryClass::kGiveUp: return st.code() == Code::kInvalidArgument ? 2 : 1;
      default: return 1;
    }
  }
  // The budget and the node's state are applied by the scheduler thread.
  refresh_snapshot(*node_);
  {
    std::lock_guard lock(mu_);
    force_pending_ = false;
  }
  auto ports = http_->ports();
  // LAN discovery: this node announces itself (dns_sd) so kiosks and other nodes add it as a
  // mirror, and browses (browse) to do the same with the nodes it finds.
  const bool browse = config_.browse && Announcer::built_in();
  if ((config_.dns_sd || browse) && !ports.empty()) {
    lan_ = std::make_unique<Announcer>([](const std::string& line) { log_line(line); },
                                       [this] {
                                         std::lock_guard lock(mu_);
                                         lan_changed_ = true;
                                         wake_.notify_all();
                                       });
    char host[256] = {};
    (void)::gethostname(host, sizeof host - 1);
    Status started = lan_->start(std::string("outpost on ") + host,
                                 static_cast<std::uint16_t>(ports[0]), config_.dns_sd, browse);
    if (!started.ok()) {
      log_line(config_.dns_sd ? started.message()
                              : "LAN discovery is off: " + started.message() +
                                    " (start avahi-daemon, or set discovery.browse = false)");
      lan_.reset();
    }
  }
  std::jthread scheduler([this](std::stop_token s) { scheduler_loop(s); });
  std::jthread admin([this](std::stop_token s) { admin_loop(s); });
  std::vector<std::string> where;
  for (std::size_t i = 0; i < ports.size(); ++i) {
    std::string l = config_.http.listen[i];
    where.push_back(l.substr(0, l.rfind(':')) + ":" + std::to_string(ports[i]));
  }
  log_line("ready: http on " + join(where, ", ") + " (peer serving " +
           (config_.http.peer_serving ? "on" : "off") + "), store " + config_.store +
           ", admin socket " + config_.admin_socket);
  sd::notify("READY=1\nSTATUS=serving");
  const auto watchdog = sd::watchdog_interval();
  while (true) {
    timespec ts{};
    ts.tv_sec = 0;
    ts.tv_nsec = 500'000'000;
    if (watchdog.count() > 0) sd::notify("WATCHDOG=1");
    int sig = ::sigtimedwait(&set, nullptr, &ts);
    if (sig == SIGHUP) {
      sd::notify("RELOADING=1");
      reload();
      sd::notify("READY=1");
    } else if (sig == SIGTERM || sig == SIGINT) {
      log_line(std::string("stopping (") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ")");
      sd::notify("STOPPING=1");
      break;
    }
  }
  stopping_ = true;
  scheduler.request_stop();
  admin.request_stop();
  {
    std::lock_guard lock(mu_);
    wake_.notify_all();
  }
  scheduler.join();
  admin.join();
  if (lan_) lan_->stop();
  http_->stop();
  ::unlink(config_.admin_socket.c_str());
  log_line("stopped");
  return 0;
}

}  // namespace

std::string default_config_path() {
  if (const char* env = std::getenv("OUTPOST_CONFIG"); env != nullptr && *env != '\0') return env;
  return "/etc/outpost/outpost.toml";
}

std::string default_admin_socket(const std::string& store_dir) { return store_dir + "/serve.sock"; }

int run_daemon(const DaemonOptions& options) {
  const std::string path =
      options.config_path.empty() ? default_config_path() : options.config_path;
  auto config = load_config(path);
  if (!config.ok()) {
    std::fprintf(stderr, "outpost: error: %s\n", config.error().message().c_str());
    return config.error().IsNotFound() ? 3 : 2;
  }
  Daemon d(std::move(*config), options.clock != nullptr ? *options.clock : system_clock());
  return d.run();
}

int run_worker(int argc, char** argv) {
  if (argc < 2) return -1;
  const bool node_worker = std::strcmp(argv[1], kNodeWorker) == 0;
  if (!node_worker && std::strcmp(argv[1], kIndexWorker) != 0) return -1;
  // A worker ends with the daemon that started it (a daemon killed outright leaves none).
  const pid_t parent = ::getppid();
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) return 1;
  // Its work yields the processor to the pages the kiosk serves meanwhile.
  ::setpriority(PRIO_PROCESS, 0, 10);  // best effort
  if (node_worker) return argc == 2 ? run_node_worker() : 2;
  if (argc != 4) {
    std::fprintf(stderr, "outpost: error: %s is the daemon's: %s STORE INDEX_DIR\n", kIndexWorker,
                 kIndexWorker);
    return 2;
  }
  kiosk::KioskOptions ko;
  ko.store = argv[2];
  ko.index_dir = argv[3];
  Status st = kiosk::Kiosk::index_store(ko);
  if (!st.ok()) {
    std::fprintf(stderr, "outpost: error: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}

int check_config(const std::string& given) {
  const std::string path = given.empty() ? default_config_path() : given;
  auto config = load_config(path);
  if (!config.ok()) {
    std::fprintf(stderr, "outpost: error: %s\n", config.error().message().c_str());
    return config.error().IsNotFound() ? 3 : 2;
  }
  std::printf("%s is valid: store %s, listening on %s, %zu subscription%s, peer serving %s\n",
              path.c_str(), config->store.c_str(), join(config->http.listen, ", ").c_str(),
              config->subscriptions.size(), config->subscriptions.size() == 1 ? "" : "s",
              config->http.peer_serving ? "on" : "off");
  return 0;
}

Result<Json> admin_call(const std::string& socket_path, const std::string& command,
                        double timeout_s) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    return Status::NotFound("admin socket path too long: " + socket_path);
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid() || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno == EACCES) {
      return Status::FailedPrecondition("cannot reach the daemon at " + socket_path +
                                        ": permission denied: join the store's group");
    }
    return Status::NotFound("no daemon at " + socket_path);
  }
  const std::string line = command + "\n";
  if (::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(line.size())) {
    return Status::Unavailable("the daemon at " + socket_path + " did not take the command");
  }
  std::string answer;
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<std::int64_t>(timeout_s * 1000));
  while (answer.size() < (16u << 20)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return Status::Unavailable("the daemon at " + socket_path + " did not answer in time");
    }
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 1000))) != 1) continue;
    char buf[4096];
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0)
      return Status::Unavailable("reading the daemon's answer: " +
                                 std::string(std::strerror(errno)));
    if (n == 0) break;
    answer.append(buf, static_cast<std::size_t>(n));
  }
  JsonLimits limits;
  limits.max_bytes = 16u << 20;
  auto j = parse_json(answer, limits);
  if (!j.ok())
    return Status::Unavailable("the daemon's answer is not JSON: " + j.error().message());
  return *j;
}

std::string describe_status(const Json& j) {
  std::ostringstream o;
  const Json* d = j.find("daemon");
  if (d != nullptr) {
    o << "daemon:    running (pid " << d->find("pid")->as_int() << ", since "
      << d->find("started")->as_string() << "), http on";
    const Json* listen = d->find("listen");
    const Json* ports = d->find("ports");
    for (std::size_t i = 0; listen && i < listen->as_array().size(); ++i) {
      std::string l = listen->as_array()[i].as_string();
      std::string port = ports && i < ports->as_array().size()
                             ? std::to_string(ports->as_array()[i].as_int())
                             : l.substr(l.rfind(':') + 1);
      o << " " << l.substr(0, l.rfind(':')) << ":" << port;
    }
    o << "\n";
  }
  if (const Json* n = j.find("node")) {
    o << "store:     " << n->find("store")->as_string() << " (" << n->find("in_use_bytes")->as_int()
      << " bytes in use)\n";
    o << "bundles:   " << n->find("bundles")->as_int() << "\n";
    o << "chunks:    " << n->find("chunks")->as_int() << "\n";
  }
  if (const Json* b = j.find("budget")) {
    const Json* left = b->find("left");
    o << "budget:    "
      << (left->is_string() ? left->as_string() : std::to_string(left->as_int()) + " bytes")
      << " left\n";
  }
  if (const Json* repos = j.find("repositories")) {
    for (const Json& r : repos->as_array()) {
      o << "repository " << r.find("id")->as_string() << " at " << r.find("location")->as_string()
        << ": last success " << r.find("last_success")->as_string() << ", "
        << r.find("outcome")->as_string();
      if (const Json* e = r.find("error")) o << " (" << e->as_string() << ")";
      o << ", next " << r.find("next")->as_string() << "\n";
    }
  }
  if (const Json* h = j.find("http")) {
    o << "served:    " << h->find("requests")->as_int() << " requests, "
      << h->find("peer_requests")->as_int() << " to peers (" << h->find("peers")->as_int()
      << " peers in the last 10 minutes)\n";
  }
  if (const Json* lan = j.find("peers"); lan != nullptr && lan->is_array()) {
    for (const Json& p : lan->as_array()) {
      o << "LAN node  " << p.find("name")->as_string() << " at " << p.find("url")->as_string()
        << ": serves " << p.find("repositories")->as_array().size() << " repositories";
      if (const Json* e = p.find("error")) o << " (" << e->as_string() << ")";
      o << "\n";
    }
  }
  return o.str();
}

}  // namespace outpost::serve
