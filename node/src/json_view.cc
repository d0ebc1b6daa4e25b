#include "outpost/node/json_view.h"

#include "outpost/base/clock.h"
#include "outpost/base/retry.h"

namespace outpost::node {

Json to_json(const Status& status) {
  Json j = Json::object();
  j.set("code", code_name(status.code()));
  j.set("retry", retry_class_name(retry_class(status)));
  j.set("message", status.message());
  return j;
}

Json to_json(const Route& route) {
  Json j = Json::object();
  j.set("kind", route_name(route.kind));
  Json steps = Json::array();
  for (auto v : route.steps) steps.push(v);
  j.set("steps", std::move(steps));
  j.set("bytes", route.bytes);
  j.set("requests", route.requests);
  j.set("cost", route.cost);
  j.set("estimate", route.estimate);
  return j;
}

Json to_json(const PlannedBundle& planned) {
  Json j = Json::object();
  j.set("bundle", planned.bundle);
  j.set("from", planned.from);
  j.set("to", planned.to);
  j.set("route", route_name(planned.route.kind));
  j.set("cost", planned.route.cost);
  j.set("bytes", planned.route.bytes);
  if (!planned.deferred.empty()) j.set("reason", planned.deferred);
  j.set("kind", planned.kind);
  j.set("order", static_cast<std::uint64_t>(planned.order));
  j.set("rank", static_cast<std::uint64_t>(planned.rank));
  if (!planned.rank_pattern.empty()) j.set("rank_pattern", planned.rank_pattern);
  Json considered = Json::array();
  for (const auto& r : planned.considered) considered.push(to_json(r));
  j.set("considered", std::move(considered));
  return j;
}

Json to_json(const SyncItem& item) {
  Json j = Json::object();
  j.set("bundle", item.bundle);
  j.set("from", item.from);
  j.set("to", item.to);
  j.set("route", route_name(item.route));
  j.set("chunks_fetched", item.chunks_fetched);
  j.set("chunks_held", item.chunks_held);
  j.set("bytes", item.bytes);
  return j;
}

Json to_json(const FailedBundle& failed) {
  Json j = to_json(failed.why);
  j.set("bundle", failed.bundle);
  j.set("from", failed.from);
  j.set("to", failed.to);
  return j;
}

Json to_json(const SyncReport& report, bool dry_run) {
  Json j = Json::object();
  j.set("repository", report.repo);
  j.set("location", report.location);
  j.set("unchanged", report.unchanged);
  j.set("partial", report.partial());
  j.set("metered", report.metered);
  j.set("bytes_read", report.bytes_read);
  j.set("requests", report.requests);
  j.set("dry_run", dry_run);
  j.set("budget_left", report.budget_left == UINT64_MAX ? Json() : Json(report.budget_left));
  auto list = [](const auto& items) {
    Json a = Json::array();
    for (const auto& i : items) a.push(to_json(i));
    return a;
  };
  j.set("updated", list(report.updated));
  j.set("failed", list(report.failed));
  j.set("plan", list(report.plan));
  j.set("deferred", list(report.deferred));
  Json skipped = Json::array();
  for (const auto& s : report.skipped_sources) skipped.push(s);
  j.set("skipped_sources", std::move(skipped));
  return j;
}

Json to_json(const NodeStatus& status) {
  Json j = Json::object();
  j.set("store", status.store);
  j.set("map_bytes", status.map_bytes);
  j.set("used_bytes", status.used_bytes);
  j.set("in_use_bytes", status.in_use_bytes);
  j.set("file_bytes", status.file_bytes);
  j.set("chunks", status.chunks);
  j.set("bundles", status.bundles);
  j.set("time_floor", status.time_floor ? format_utc(status.time_floor) : std::string("none"));
  Json repos = Json::array();
  for (const auto& s : status.repositories) {
    Json r = Json::object();
    r.set("id", s.id);
    r.set("location", s.location);
    r.set("last_sync", s.last_sync ? format_utc(s.last_sync) : std::string("never"));
    if (s.timestamp_version > 0) {
      r.set("timestamp_version", s.timestamp_version);
      r.set("timestamp_expires", format_utc(s.timestamp_expires));
    }
    Json ranks = Json::array();
    for (const auto& pattern : s.ranks) ranks.push(pattern);
    r.set("ranks", std::move(ranks));
    repos.push(std::move(r));
  }
  j.set("repositories", std::move(repos));
  return j;
}

}  // namespace outpost::node
