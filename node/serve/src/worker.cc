#include "worker.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <thread>

#include "outpost/base/child.h"
#include "outpost/base/json.h"
#include "outpost/sync/source.h"

namespace outpost::serve {

namespace {

Json status_json(const Status& s) {
  Json j = Json::object();
  j.set("code", static_cast<int>(s.code()));
  j.set("message", s.message());
  return j;
}

Status status_from(const Json* j) {
  if (j == nullptr || !j->is_object()) return Status::Internal("the node worker answered nothing");
  const Json* code = j->find("code");
  const Json* message = j->find("message");
  if (code == nullptr || !code->is_int() || code->as_int() < 0 ||
      code->as_int() > static_cast<int>(Code::kCancelled) || message == nullptr ||
      !message->is_string()) {
    return Status::Internal("the node worker's answer is malformed");
  }
  return Status(static_cast<Code>(code->as_int()), message->as_string());
}

std::uint64_t u64(const Json& j, const char* key) {
  const Json* v = j.find(key);
  return v != nullptr && v->is_int() && v->as_int() >= 0 ? static_cast<std::uint64_t>(v->as_int())
                                                         : 0;
}

std::string str(const Json& j, const char* key) {
  const Json* v = j.find(key);
  return v != nullptr && v->is_string() ? v->as_string() : "";
}

std::vector<std::string> strings(const Json& j, const char* key) {
  std::vector<std::string> out;
  if (const Json* v = j.find(key); v != nullptr && v->is_array()) {
    for (const auto& e : v->as_array()) {
      if (e.is_string()) out.push_back(e.as_string());
    }
  }
  return out;
}

Json strings_json(const std::vector<std::string>& list) {
  Json a = Json::array();
  for (const auto& s : list) a.push(s);
  return a;
}

node::RouteKind route_kind(const std::string& name) {
  for (auto k : {node::RouteKind::kPatch, node::RouteKind::kChain, node::RouteKind::kChunks}) {
    if (name == node::route_name(k)) return k;
  }
  return node::RouteKind::kFull;
}

Json report_json(const node::SyncReport& r) {
  Json j = Json::object();
  j.set("repo", r.repo);
  j.set("location", r.location);
  j.set("bytes_read", r.bytes_read);
  Json updated = Json::array();
  for (const auto& u : r.updated) {
    Json e = Json::object();
    e.set("bundle", u.bundle);
    e.set("from", u.from);
    e.set("to", u.to);
    e.set("route", node::route_name(u.route));
    e.set("bytes", u.bytes);
    updated.push(std::move(e));
  }
  j.set("updated", std::move(updated));
  Json failed = Json::array();
  for (const auto& f : r.failed) {
    Json e = Json::object();
    e.set("bundle", f.bundle);
    e.set("from", f.from);
    e.set("to", f.to);
    e.set("why", status_json(f.why));
    failed.push(std::move(e));
  }
  j.set("failed", std::move(failed));
  Json deferred = Json::array();
  for (const auto& d : r.deferred) {
    Json e = Json::object();
    e.set("bundle", d.bundle);
    e.set("deferred", d.deferred);
    deferred.push(std::move(e));
  }
  j.set("deferred", std::move(deferred));
  return j;
}

node::SyncReport report_from(const Json& j) {
  node::SyncReport r;
  r.repo = str(j, "repo");
  r.location = str(j, "location");
  r.bytes_read = u64(j, "bytes_read");
  if (const Json* a = j.find("updated"); a != nullptr && a->is_array()) {
    for (const auto& e : a->as_array()) {
      node::SyncItem u;
      u.bundle = str(e, "bundle");
      u.from = u64(e, "from");
      u.to = u64(e, "to");
      u.route = route_kind(str(e, "route"));
      u.bytes = u64(e, "bytes");
      r.updated.push_back(std::move(u));
    }
  }
  if (const Json* a = j.find("failed"); a != nullptr && a->is_array()) {
    for (const auto& e : a->as_array()) {
      node::FailedBundle f;
      f.bundle = str(e, "bundle");
      f.from = u64(e, "from");
      f.to = u64(e, "to");
      f.why = status_from(e.find("why"));
      r.failed.push_back(std::move(f));
    }
  }
  if (const Json* a = j.find("deferred"); a != nullptr && a->is_array()) {
    for (const auto& e : a->as_array()) {
      node::PlannedBundle d;
      d.bundle = str(e, "bundle");
      d.deferred = str(e, "deferred");
      r.deferred.push_back(std::move(d));
    }
  }
  return r;
}

// Runs one request in a worker; its answer's "status" when that failed, else the answer.
Result<Json> ask_worker(const Json& request, std::stop_token stop = {}) {
  ChildOptions co;
  co.input = request.dump();
  co.max_output = 16u << 20;
  co.stop = [stop] { return stop.stop_requested(); };
  OUTPOST_ASSIGN_OR_RETURN(ChildResult done, run_child({"/proc/self/exe", kNodeWorker}, co));
  auto answer = parse_json(done.out);
  if (!answer.ok() || !answer->is_object()) {
    if (stop.stop_requested()) return Status::Cancelled("stopped");
    return Status::Internal(done.failure("the node worker"));
  }
  if (const Json* s = answer->find("status"); s != nullptr) return status_from(s);
  return std::move(answer).value();
}

Json request(const std::string& op, const std::string& store_dir) {
  Json j = Json::object();
  j.set("op", op);
  j.set("store", store_dir);
  return j;
}

}  // namespace

Result<node::Subscription> subscribe_in_worker(const std::string& store_dir,
                                               const std::string& location,
                                               const node::SubscribeOptions& options) {
  Json r = request("subscribe", store_dir);
  r.set("location", location);
  if (options.root_pubkey) r.set("root_pubkey", options.root_pubkey->hex());
  r.set("root_json", options.root_json_path);
  r.set("mirrors", strings_json(options.mirrors));
  r.set("extra_sources", strings_json(options.extra_sources));
  r.set("rate", options.http.max_recv_speed);
  r.set("retries", options.http.retries);
  OUTPOST_ASSIGN_OR_RETURN(Json answer, ask_worker(r, options.http.stop));
  node::Subscription s;
  s.id = str(answer, "id");
  s.location = str(answer, "location");
  if (s.id.empty()) return Status::Internal("the node worker's answer is malformed");
  return s;
}

Result<std::vector<node::SyncReport>> sync_in_worker(const std::string& store_dir,
                                                     const std::string& location,
                                                     const node::SyncOptions& options) {
  Json r = request("sync", store_dir);
  r.set("location", location);
  r.set("rate", options.http.max_recv_speed);
  r.set("keep_patches", options.keep_patches);
  Json filters = Json::object();
  for (const auto& [id, prefixes] : options.bundle_filters) filters.set(id, strings_json(prefixes));
  r.set("filters", std::move(filters));
  OUTPOST_ASSIGN_OR_RETURN(Json answer, ask_worker(r, options.stop));
  std::vector<node::SyncReport> reports;
  if (const Json* a = answer.find("reports"); a != nullptr && a->is_array()) {
    for (const auto& e : a->as_array()) reports.push_back(report_from(e));
  }
  return reports;
}

Result<node::GcReport> gc_in_worker(const std::string& store_dir, int retain) {
  Json r = request("gc", store_dir);
  r.set("retain", retain);
  OUTPOST_ASSIGN_OR_RETURN(Json answer, ask_worker(r));
  node::GcReport g;
  g.versions_removed = u64(answer, "versions_removed");
  g.bytes_freed = u64(answer, "bytes_freed");
  return g;
}

Result<std::vector<std::string>> peer_list_in_worker(const std::string& peer_url,
                                                     const sync::HttpOptions& http) {
  Json r = request("peer-list", "");
  r.set("url", peer_url);
  r.set("connect_timeout", static_cast<std::int64_t>(http.connect_timeout_s));
  r.set("stall_timeout", static_cast<std::int64_t>(http.stall_timeout_s));
  r.set("retries", http.retries);
  OUTPOST_ASSIGN_OR_RETURN(Json answer, ask_worker(r, http.stop));
  return strings(answer, "ids");
}

namespace {

Result<Json> peer_list(const Json& req) {
  sync::HttpOptions http;
  http.connect_timeout_s = static_cast<long>(u64(req, "connect_timeout"));
  http.stall_timeout_s = static_cast<long>(u64(req, "stall_timeout"));
  http.retries = static_cast<int>(u64(req, "retries"));
  const std::string url = str(req, "url");
  const std::size_t host_at = url.find("://");
  const std::size_t path_at = host_at == std::string::npos ? host_at : url.find('/', host_at + 3);
  if (path_at == std::string::npos) return Status::InvalidArgument("not a peer URL: " + url);
  const std::string root = url.substr(0, path_at);
  OUTPOST_ASSIGN_OR_RETURN(auto source, sync::open_source(root, http));
  OUTPOST_ASSIGN_OR_RETURN(Bytes body, source->read_file(url.substr(path_at + 1), 256 * 1024));
  OUTPOST_ASSIGN_OR_RETURN(Json j, parse_json(as_chars(ByteView(body.data(), body.size()))));
  if (!j.is_array()) return Status::Corruption("its repository list is not a JSON array");
  Json ids = Json::array();
  for (const Json& e : j.as_array()) {
    if (const Json* id = e.find("id"); id != nullptr && id->is_string()) ids.push(*id);
  }
  Json out = Json::object();
  out.set("ids", std::move(ids));
  return out;
}

}  // namespace

int run_node_worker() {
  // SIGTERM (the daemon stopping) cancels the work as it does `outpost sync`: a thread waits
  // for it and asks the stop token, so every verified piece is kept.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigaddset(&term, SIGINT);
  pthread_sigmask(SIG_BLOCK, &term, nullptr);
  std::stop_source stopper;
  std::thread([term, stopper]() mutable {
    int sig = 0;
    if (sigwait(&term, &sig) == 0) stopper.request_stop();
  }).detach();

  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  auto answer = [&]() -> Result<Json> {
    OUTPOST_ASSIGN_OR_RETURN(Json req, parse_json(input));
    const std::string op = str(req, "op");
    if (op == "peer-list") return peer_list(req);
    node::NodeOptions no;
    no.dir = str(req, "store");
    OUTPOST_ASSIGN_OR_RETURN(auto n, node::Node::open(no));
    Json out = Json::object();
    if (op == "subscribe") {
      node::SubscribeOptions so;
      if (std::string hex = str(req, "root_pubkey"); !hex.empty()) {
        OUTPOST_ASSIGN_OR_RETURN(so.root_pubkey, crypto::PublicKey::from_hex(hex));
      }
      so.root_json_path = str(req, "root_json");
      so.mirrors = strings(req, "mirrors");
      so.extra_sources = strings(req, "extra_sources");
      so.http.max_recv_speed = u64(req, "rate");
      so.http.retries = static_cast<int>(u64(req, "retries"));
      so.http.stop = stopper.get_token();
      OUTPOST_ASSIGN_OR_RETURN(node::Subscription s, n->subscribe(str(req, "location"), so));
      out.set("id", s.id);
      out.set("location", s.location);
    } else if (op == "sync") {
      node::SyncOptions so;
      so.http.max_recv_speed = u64(req, "rate");
      so.stop = stopper.get_token();
      if (const Json* k = req.find("keep_patches"); k != nullptr && k->is_bool())
        so.keep_patches = k->as_bool();
      if (const Json* f = req.find("filters"); f != nullptr && f->is_object()) {
        for (const auto& [id, list] : f->as_object())
          so.bundle_filters[id] = strings(*f, id.c_str());
      }
      OUTPOST_ASSIGN_OR_RETURN(auto reports, n->sync(str(req, "location"), so));
      Json a = Json::array();
      for (const auto& r : reports) a.push(report_json(r));
      out.set("reports", std::move(a));
    } else if (op == "gc") {
      OUTPOST_ASSIGN_OR_RETURN(node::GcReport g, n->gc(static_cast<int>(u64(req, "retain"))));
      out.set("versions_removed", g.versions_removed);
      out.set("bytes_freed", g.bytes_freed);
    } else {
      return Status::InvalidArgument("the node worker has no operation '" + op + "'");
    }
    return out;
  }();
  Json reply = Json::object();
  if (answer.ok()) {
    reply = std::move(answer).value();
  } else {
    reply.set("status", status_json(answer.error()));
  }
  std::string text = reply.dump();
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  return answer.ok() ? 0 : 1;
}

}  // namespace outpost::serve
