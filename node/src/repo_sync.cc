// The orchestration of one sync; the parts it runs are refresh.h (the verified metadata),
// planner.h (which bundles, by which route), transfer.h (bytes from the source) and
// assembly.h (verified bytes into a visible version). Here: the route fallback per bundle,
// the per-bundle failure list, stop requests between bundles, and the report.
#include "repo_sync.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "assembly.h"
#include "outpost/base/retry.h"
#include "outpost/packaging/layout.h"
#include "outpost/packaging/pack.h"
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
      item.chunks_fetched = chunks.missing.size();
      item.chunks_held = first_occurrences(chunks.index).size() - chunks.missing.size();
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

// A patch a peer node computes on demand from the version held here (docs/daemon.md, "Many
// pieces in one response"), when no signed patch starts from it: read only up to the bytes the
// planned route would cost (else it is not worth it), and accepted only when the rebuilt
// content matches the signed content root, as any patch.
Result<SyncItem> patch_from_peer(SyncContext& ctx, Pending& p) {
  const std::uint64_t from = p.record->current;
  const auto to = static_cast<std::uint64_t>(p.manifest.version);
  std::string name;
  for (unsigned char c : p.bundle) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '.' || c == '_') {
      name.push_back(static_cast<char>(c));
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      name += hex;
    }
  }
  const std::string query =
      "pieces?bundle=" + name + "&from=" + std::to_string(from) + "&to=" + std::to_string(to);
  OUTPOST_ASSIGN_OR_RETURN(Bytes body, ctx.source.read_file(query, p.planned.route.bytes + 512));
  auto reader =
      packaging::PackReader::from_memory(ByteView(body.data(), body.size()), "the peer's patch");
  // The whole pack must be sound (records and trailer), though only the rebuilt content's
  // root decides whether the patch is accepted.
  std::optional<Bytes> patch;
  OUTPOST_RETURN_IF_ERROR(reader->for_each([&](const packaging::PackRecord& rec) {
    if (!patch && rec.info.type == packaging::RecordType::kPatch) patch = rec.stored;
    return Status::Ok();
  }));
  if (!patch) return Status::NotFound("the peer sent no patch for " + p.bundle);
  OUTPOST_RETURN_IF_ERROR(accept_unlisted_patch(ctx, p, from, *patch));
  SyncItem item;
  item.bundle = p.bundle;
  item.from = from;
  item.to = to;
  item.bytes = p.manifest.content_size;
  item.route = RouteKind::kPatch;
  return item;
}

// Takes the planned route; when its data is missing or damaged at this source (a patch the
// mirror lost, a flipped byte), the next cheapest route, and so on. The error of the last
// route tried is returned when none works.
Result<SyncItem> fetch(SyncContext& ctx, Pending& p) {
  std::vector<Route> routes = p.planned.considered;
  std::vector<Route> failed;  // routes of this bundle that did not work here
  Status worst;
  // A peer node is asked once for a patch from the held version, before the first route that
  // is not a signed patch (none starts from the held version, or the peer lacks it).
  bool ask_peer = ctx.source.peer() && p.record && p.record->current > 0 &&
                  p.record->current < static_cast<std::uint64_t>(p.manifest.version);
  for (std::size_t attempt = 0; attempt <= routes.size(); ++attempt) {
    auto next = std::find_if(routes.begin(), routes.end(),
                             [&](const Route& r) { return !already_failed(failed, r); });
    if (next == routes.end()) break;
    p.planned.route = *next;
    if (ask_peer && (next->kind == RouteKind::kChunks || next->kind == RouteKind::kFull)) {
      ask_peer = false;
      auto item = patch_from_peer(ctx, p);
      if (item.ok()) return item;
      if (item.error().IsCancelled() || item.error().IsResourceExhausted()) return item.error();
      // Otherwise the route, as if the peer had not been asked.
    }
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
