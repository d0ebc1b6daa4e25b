// The orchestration of one sync; the parts it runs are refresh.h (the verified metadata),
// planner.h (which bundles, by which route), transfer.h (bytes from the source) and
// assembly.h (verified bytes into a visible version). Here: the route fallback per bundle,
// the per-bundle failure list, stop requests between bundles, and the report.
#include "repo_sync.h"

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "assembly.h"
#include "outpost/base/retry.h"
#include "outpost/packaging/layout.h"
#include "planner.h"
#include "refresh.h"
#include "sync_context.h"
#include "transfer.h"

namespace outpost::node {

namespace {

// A subscription's bundle filter: the name itself or a name under one of the prefixes.
bool bundle_matches(const std::string& name, const std::vector<std::string>& prefixes) {
  for (std::string p : prefixes) {
    while (!p.empty() && p.back() == '/') p.pop_back();
    if (p.empty() || name == p) return true;
    if (name.size() > p.size() && name.compare(0, p.size(), p) == 0 && name[p.size()] == '/') {
      return true;
    }
  }
  return false;
}

// Whether a failure concerns this bundle's data at this source (missing, damaged, refused
// by the server), so another route or bundle may still work, rather than everything alike.
bool bundle_local(const Status& st) {
  RetryClass c = retry_class(st);
  return c == RetryClass::kNow || (c == RetryClass::kOperator && !st.IsResourceExhausted());
}

// p.planned.route, except that the chunk route is priced again once its index is in.
Result<SyncItem> fetch_route(SyncContext& ctx, Pending& p, const std::vector<Route>& failed) {
  SyncItem item;
  item.bundle = p.bundle;
  item.from = p.record ? p.record->current : 0;
  item.to = static_cast<std::uint64_t>(p.manifest.version);
  item.bytes = p.manifest.content_size;
  if (p.planned.route.kind == RouteKind::kChunks) {
    // The index prices the chunk route exactly; a patch may still win.
    OUTPOST_ASSIGN_OR_RETURN(ChunkRoute chunks, price_with_index(ctx, p, failed));
    if (p.planned.route.kind == RouteKind::kChunks) {
      std::set<crypto::Digest> unique;
      for (const auto& c : chunks.index.chunks) unique.insert(c.id);
      item.chunks_fetched = chunks.missing.size();
      item.chunks_held = unique.size() - chunks.missing.size();
      OUTPOST_RETURN_IF_ERROR(fetch_chunks(ctx, chunks.index, chunks.missing, p.bundle));
      OUTPOST_RETURN_IF_ERROR(accept_from_chunks(ctx, p, chunks.index, chunks.index_bytes));
      item.route = RouteKind::kChunks;
      return item;
    }
  }
  Route route = p.planned.route;
  if (route.kind == RouteKind::kChain) {
    OUTPOST_RETURN_IF_ERROR(apply_chain(ctx, p));
  } else {
    // A patch from a held version, or the whole content (a patch from nothing).
    OUTPOST_RETURN_IF_ERROR(apply_patch(ctx, p, route));
  }
  item.route = route.kind;
  return item;
}

// Takes the planned route; when its data is missing or damaged at this source (a patch the
// mirror lost, a flipped byte), the next cheapest route, and so on. The error of the last
// route tried is returned when none works.
Result<SyncItem> fetch(SyncContext& ctx, Pending& p) {
  std::vector<Route> routes = p.planned.considered;
  std::vector<Route> failed;  // routes of this bundle that did not work here
  Status worst;
  for (std::size_t attempt = 0; attempt <= routes.size(); ++attempt) {
    auto next = std::find_if(routes.begin(), routes.end(),
                             [&](const Route& r) { return !already_failed(failed, r); });
    if (next == routes.end()) break;
    p.planned.route = *next;
    auto item = fetch_route(ctx, p, failed);
    if (item.ok()) return item;
    Status last = item.error();
    if (!bundle_local(last)) return last;
    // Damage says more than a missing file: report it when no route works.
    if (worst.ok() || (worst.IsNotFound() && !last.IsNotFound())) worst = last;
    failed.push_back(p.planned.route);
  }
  return worst;
}

}  // namespace

Result<SyncReport> sync_repository(storage::Store& store, sync::MeteredSource& source,
                                   const std::string& repo, const std::string& location,
                                   std::int64_t now, const SyncOptions& options) {
  const sync::TransferStats before = source.stats();
  SyncContext ctx{
      .store = store,
      .source = source,
      .options = options,
      .repo = repo,
      .location = location,
      .now = now,
      .trusted = {},
      .overlay = {},
  };
  SyncReport report;
  report.repo = repo;
  report.location = location;
  auto finish = [&]() -> Result<SyncReport> {
    const sync::TransferStats stats = source.stats();
    report.bytes_read = stats.total() - before.total();
    report.requests = stats.requests - before.requests;
    report.metered = source.metered();
    return std::move(report);
  };

  OUTPOST_ASSIGN_OR_RETURN(Refreshed refreshed, refresh(ctx));
  if (auto f = options.bundle_filters.find(repo);
      f != options.bundle_filters.end() && !f->second.empty()) {
    for (auto it = refreshed.targets.begin(); it != refreshed.targets.end();) {
      auto bundle = packaging::bundle_of_target(it->first);
      if (bundle && !bundle_matches(*bundle, f->second)) {
        it = refreshed.targets.erase(it);
      } else {
        ++it;
      }
    }
  }
  OUTPOST_ASSIGN_OR_RETURN(std::vector<Pending> pending,
                           plan_bundles(ctx, refreshed.targets, report));
  if (options.dry_run) {
    report.unchanged = refreshed.unchanged && pending.empty();
    return finish();
  }

  for (auto& p : pending) {
    if (!p.planned.deferred.empty()) continue;
    if (options.stop.stop_requested()) return Status::Cancelled("sync stopped on request");
    auto item = fetch(ctx, p);
    if (item.ok()) {
      report.updated.push_back(*item);
      continue;
    }
    // One bundle that cannot be completed here does not hold back the others: it is listed
    // with its reason. What concerns every bundle alike (the link is down, the disk or the
    // budget is full, a stop request) ends the sync.
    if (!bundle_local(item.error())) return item.error().With(p.bundle);
    report.failed.push_back(
        FailedBundle{p.bundle, p.planned.from, p.planned.to, item.error().With(p.bundle)});
  }
  report.unchanged = refreshed.unchanged && report.updated.empty() && report.deferred.empty();
  return finish();
}

}  // namespace outpost::node
