#include "planner.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <optional>

#include "assembly.h"
#include "node_internal.h"
#include "outpost/crypto/hash.h"
#include "outpost/node/store_files.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/layout.h"
#include "plan.h"
#include "transfer.h"

namespace outpost::node {

using namespace detail;
using packaging::Manifest;
using packaging::PatchRef;
using storage::Table;

namespace {

constexpr std::uint64_t kNoBudget = std::numeric_limits<std::uint64_t>::max();
// Chains hold one intermediate version in memory: only for bundles up to this size.
constexpr std::uint64_t kChainMaxStream = 64u << 20;
constexpr int kMaxChainHops = 4;
// Response headers plus request line and headers of one request, for budget checks.
constexpr std::uint64_t kHeaderBytes = 400;

// What a bundle needs: nothing (current, confirmed here), or its new manifest to plan for.
Result<std::optional<Pending>> check_bundle(SyncContext& ctx, const std::string& bundle,
                                            const std::string& target_path,
                                            const tuf::TargetFile& target) {
  OUTPOST_RETURN_IF_ERROR(packaging::validate_bundle_name(bundle));
  OUTPOST_ASSIGN_OR_RETURN(auto rtxn, ctx.store.read());
  OUTPOST_ASSIGN_OR_RETURN(auto record, get_bundle(rtxn, bundle));
  OUTPOST_ASSIGN_OR_RETURN(auto accepted_v,
                           rtxn.get(Table::kTrust, view(records::accepted_version_key(bundle))));
  std::uint64_t accepted = records::get_u64(accepted_v).value_or(0);

  std::optional<std::uint64_t> declared;
  if (const Json* o = target.custom.find("outpost"); o != nullptr) {
    if (const Json* v = o->find("version"); v != nullptr && v->is_int() && v->as_int() > 0) {
      declared = static_cast<std::uint64_t>(v->as_int());
    }
  }
  if (declared && *declared < accepted) {
    return Status::VerificationFailed(
        "the repository offers version " + std::to_string(*declared) + ", older than version " +
        std::to_string(accepted) + " already accepted (rollback): refusing it; try another mirror");
  }
  if (record && declared && *declared == record->current) {
    // Already current: make sure nothing it needs went missing (a damaged chunk dropped by
    // verify --repair is fetched again here), then confirm it.
    OUTPOST_ASSIGN_OR_RETURN(HeldVersion held, load_version(rtxn, bundle, record->current));
    end(rtxn);
    if (!ctx.options.dry_run) {
      OUTPOST_RETURN_IF_ERROR(repair(ctx, held));
      OUTPOST_RETURN_IF_ERROR(confirm(ctx, bundle));
    }
    return std::optional<Pending>();
  }
  end(rtxn);

  // The manifest: length and SHA-256 come from signed targets metadata.
  std::string file = packaging::manifest_file_path(bundle, target.sha256);
  auto manifest_bytes = ctx.overlay->read_manifest(file, static_cast<std::uint64_t>(target.length));
  auto signed_match = [&](const Bytes& b) {
    return b.size() == static_cast<std::size_t>(target.length) &&
           crypto::hex(crypto::sha256(view(b))) == target.sha256;
  };
  // Damaged in transit over a network (see fetch_object): fetched once more.
  if (manifest_bytes.ok() && !signed_match(*manifest_bytes) && ctx.source.metered()) {
    manifest_bytes = ctx.overlay->read_manifest(file, static_cast<std::uint64_t>(target.length));
  }
  if (!manifest_bytes.ok()) return manifest_bytes.error().With("fetching the manifest");
  if (!signed_match(*manifest_bytes)) {
    return Status::Corruption("the manifest from " + ctx.source.describe() +
                              " does not match its signed length and hash: try another "
                              "mirror");
  }
  auto manifest = Manifest::parse(view(*manifest_bytes));
  if (!manifest.ok()) return manifest.error().With("signed manifest");
  if (manifest->bundle != bundle) {
    return Status::VerificationFailed("the manifest listed as " + target_path +
                                      " describes bundle " + manifest->bundle);
  }
  auto version = static_cast<std::uint64_t>(manifest->version);
  if ((declared && *declared != version) || version < accepted) {
    return Status::VerificationFailed("manifest version " + std::to_string(version) +
                                      " is older than version " + std::to_string(accepted) +
                                      " already accepted, or differs from the version its "
                                      "targets entry declares (rollback): try another mirror");
  }
  if (record && version == record->current) {
    if (!ctx.options.dry_run) OUTPOST_RETURN_IF_ERROR(confirm(ctx, bundle));
    return std::optional<Pending>();
  }
  Pending p;
  p.bundle = bundle;
  p.record = std::move(record);
  p.manifest_bytes = std::move(*manifest_bytes);
  p.manifest = std::move(*manifest);
  return std::optional<Pending>(std::move(p));
}

// A chain of patches from a held version through older versions the publisher's ladder
// lists: each step moves to the rung nearest above what the node holds, fetching (and
// checking against the hash the newer manifest declares) that version's manifest to see
// its own patches. At most kMaxChainHops manifests are fetched; they are metadata, so a
// dry run fetches them too.
Result<std::optional<Route>> find_chain(SyncContext& ctx, Pending& p) {
  const std::uint64_t current = p.record->current;
  const Manifest* at = &p.manifest;
  std::vector<PatchRef> down;  // patches from the target down to the nearest rung
  std::deque<Manifest> manifests;
  std::optional<std::uint64_t> full_cost;
  for (const auto& r : p.manifest.patches) {
    if (r.from != 0) continue;
    const bool carried =
        ctx.overlay->carries(r.path) ||
        ctx.overlay->carries(packaging::content_entry_name(p.manifest.content_root));
    full_cost = carried ? 0 : r.length + ctx.options.request_cost;
  }
  for (int hop = 0; hop <= kMaxChainHops; ++hop) {
    for (const auto& r : at->patches) {
      if (r.from == 0) continue;
      auto held = std::find_if(p.held.begin(), p.held.end(), [&](const HeldRoot& h) {
        return h.version == static_cast<std::uint64_t>(r.from) &&
               crypto::digest_equal(h.root, r.from_root);
      });
      if (held == p.held.end() || hop == 0) continue;
      Route route;
      route.kind = RouteKind::kChain;
      route.steps.push_back(held->version);
      p.chain = {r};
      for (auto it = manifests.rbegin(); it != manifests.rend(); ++it) {
        route.steps.push_back(static_cast<std::uint64_t>(it->version));
      }
      for (auto it = down.rbegin(); it != down.rend(); ++it) p.chain.push_back(*it);
      for (const auto& c : p.chain) route.bytes += c.length;
      route.requests = p.chain.size();
      route.cost = route.bytes + route.requests * ctx.options.request_cost;
      p.chain_manifests = std::move(manifests);
      std::reverse(p.chain_manifests.begin(), p.chain_manifests.end());
      return std::optional<Route>(route);
    }
    if (hop == kMaxChainHops) break;
    const PatchRef* next = nullptr;
    for (const auto& r : at->patches) {
      if (static_cast<std::uint64_t>(r.from) > current && (!next || r.from < next->from)) {
        next = &r;
      }
    }
    if (next == nullptr) break;
    // Stop when the patches down to here already cost as much as the whole content: a chain
    // through them cannot beat the full route (carried patches cost nothing).
    auto price = [&](const PatchRef& r) -> std::uint64_t {
      return ctx.overlay->carries(r.path) ? 0 : r.length + ctx.options.request_cost;
    };
    std::uint64_t spent = price(*next);
    for (const auto& r : down) spent += price(r);
    if (full_cost && spent >= *full_cost) break;
    std::string path = packaging::manifest_file_path(p.bundle, crypto::hex(next->from_manifest));
    auto bytes = ctx.overlay->read_manifest(path, packaging::kMaxManifestBytes);
    if (!bytes.ok()) {
      if (bytes.error().IsNotFound()) break;  // the publisher no longer keeps it
      return bytes.error().With("fetching the manifest of version " + std::to_string(next->from));
    }
    auto parsed = Manifest::parse(view(*bytes));
    if (!crypto::digest_equal(crypto::sha256(view(*bytes)), next->from_manifest) || !parsed.ok() ||
        parsed->bundle != p.bundle || parsed->version != next->from ||
        !crypto::digest_equal(parsed->content_root, next->from_root)) {
      return Status::Corruption(path + " from " + ctx.source.describe() +
                                " does not match the hash a signed manifest declares for "
                                "it: try another mirror");
    }
    down.push_back(*next);
    manifests.push_back(std::move(*parsed));
    at = &manifests.back();
  }
  return std::optional<Route>();
}

// Routes whose patches the metadata update file carries (docs/sync.md, "Patches carried in
// the update file") cost no request and no further byte; the routes are sorted again.
void discount_carried(SyncContext& ctx, const Pending& p, std::vector<Route>& routes) {
  if (!ctx.overlay) return;
  bool changed = false;
  for (Route& r : routes) {
    std::vector<const PatchRef*> refs;
    if (r.kind == RouteKind::kChain) {
      for (const auto& c : p.chain) refs.push_back(&c);
    } else if (r.kind == RouteKind::kFull || r.kind == RouteKind::kPatch) {
      const std::uint64_t from =
          r.kind == RouteKind::kFull || r.steps.empty() ? 0 : r.steps.front();
      for (const auto& c : p.manifest.patches) {
        if (static_cast<std::uint64_t>(c.from) == from) refs.push_back(&c);
      }
    }
    if (refs.empty()) continue;
    std::uint64_t bytes = 0;
    std::uint64_t requests = 0;
    const bool whole_carried =
        r.kind == RouteKind::kFull &&
        ctx.overlay->carries(packaging::content_entry_name(p.manifest.content_root));
    for (const PatchRef* c : refs) {
      if (whole_carried || ctx.overlay->carries(c->path)) continue;
      bytes += c->length;
      ++requests;
    }
    if (requests == r.requests && bytes == r.bytes) continue;
    r.bytes = bytes;
    r.requests = requests;
    r.cost = bytes + requests * ctx.options.request_cost;
    changed = true;
  }
  if (changed) {
    std::stable_sort(routes.begin(), routes.end(), [](const Route& a, const Route& b) {
      if (a.cost != b.cost) return a.cost < b.cost;
      return a.requests < b.requests;
    });
  }
}

Status plan(SyncContext& ctx, Pending& p) {
  p.planned.bundle = p.bundle;
  p.planned.from = p.record ? p.record->current : 0;
  p.planned.to = static_cast<std::uint64_t>(p.manifest.version);
  std::optional<Manifest> current;
  if (p.record) {
    OUTPOST_ASSIGN_OR_RETURN(auto txn, ctx.store.read());
    for (std::uint64_t v : p.record->versions) {
      OUTPOST_ASSIGN_OR_RETURN(
          auto m, get_file(txn, Table::kManifests, view(storage::version_key(p.bundle, v))));
      if (!m) continue;
      auto parsed = Manifest::parse(view(*m));
      if (!parsed.ok()) continue;  // verify reports it; plan around it
      p.held.push_back(HeldRoot{v, parsed->content_root});
      if (v == p.record->current) current = std::move(*parsed);
    }
  }
  std::uint64_t full = p.manifest.content_size;
  for (const auto& patch : p.manifest.patches) {
    if (patch.from == 0) full = patch.length;
  }
  // The chunk route is always priced: for a new bundle it costs more than the whole download
  // (so it is never chosen first), but it is the way in when a source lacks the patches (a
  // peer node, which holds chunks and no patches: docs/daemon.md).
  std::optional<ChunkCost> chunks =
      estimate_chunks(p.manifest, current ? &*current : nullptr, full);
  p.planned.considered = price_routes(p.manifest, p.held, chunks, ctx.options.request_cost);
  if (p.planned.considered.empty()) {
    return Status::Corruption("manifest version " + std::to_string(p.manifest.version) +
                              " offers no way to fetch its content");
  }
  bool direct = std::any_of(p.planned.considered.begin(), p.planned.considered.end(),
                            [](const Route& r) { return r.kind == RouteKind::kPatch; });
  if (!direct && p.record && packaging::content_stream_size(p.manifest) <= kChainMaxStream) {
    OUTPOST_ASSIGN_OR_RETURN(std::optional<Route> chain, find_chain(ctx, p));
    if (chain) {
      p.planned.considered.push_back(*chain);
      std::stable_sort(p.planned.considered.begin(), p.planned.considered.end(),
                       [](const Route& a, const Route& b) { return a.cost < b.cost; });
    }
  }
  discount_carried(ctx, p, p.planned.considered);
  p.planned.route = p.planned.considered.front();
  return Status::Ok();
}

}  // namespace

Result<std::vector<Pending>> plan_bundles(SyncContext& ctx,
                                          const std::map<std::string, tuf::TargetFile>& targets,
                                          SyncReport& report) {
  std::vector<Pending> pending;
  for (const auto& [path, target] : targets) {
    // Not a bundle manifest: other target kinds are not ours to fetch.
    std::optional<std::string> bundle = packaging::bundle_of_target(path);
    if (!bundle) continue;
    auto p = check_bundle(ctx, *bundle, path, target);
    if (!p.ok()) return p.error().With(*bundle);
    if (p->has_value()) pending.push_back(std::move(**p));
  }

  // Plan: every route priced; the subscription's ranks first (docs/sync.md, "Priorities"),
  // then the cheapest bundles first (small urgent updates before large ones); as many as fit
  // in the data budget, each in that order taking what it needs of what is left.
  static const std::vector<std::string> kNoRanks;
  auto ranks = ctx.options.bundle_ranks.find(ctx.repo);
  const std::vector<std::string>& patterns =
      ranks == ctx.options.bundle_ranks.end() ? kNoRanks : ranks->second;
  for (auto& p : pending) {
    OUTPOST_RETURN_IF_ERROR(plan(ctx, p).With(p.bundle));
    p.planned.kind = p.manifest.kind;
    p.planned.rank = bundle_rank(patterns, p.bundle, p.manifest.kind);
    if (p.planned.rank != 0) p.planned.rank_pattern = patterns[p.planned.rank - 1];
  }
  std::stable_sort(pending.begin(), pending.end(), [](const Pending& a, const Pending& b) {
    // Unranked (0) after every ranked bundle.
    auto key = [](std::uint32_t rank) { return rank == 0 ? UINT32_MAX : rank; };
    if (key(a.planned.rank) != key(b.planned.rank)) {
      return key(a.planned.rank) < key(b.planned.rank);
    }
    return a.planned.route.cost < b.planned.route.cost;
  });
  // What is left after the metadata this sync already fetched (the update file included, so
  // the patches it carries are paid for and cost nothing here).
  std::uint64_t left = ctx.source.left();
  report.budget_left = left;
  std::uint32_t order = 0;
  for (auto& p : pending) {
    p.planned.order = ++order;
    std::uint64_t need = p.planned.route.bytes + p.planned.route.requests * kHeaderBytes;
    if (need > left) {
      p.planned.deferred = "data budget: needs about " + std::to_string(need) + " bytes, " +
                           std::to_string(left) + " left";
      report.deferred.push_back(p.planned);
      continue;
    }
    if (left != kNoBudget) left -= need;
    report.plan.push_back(p.planned);
  }
  return pending;
}

Result<ChunkRoute> price_with_index(SyncContext& ctx, Pending& p,
                                    const std::vector<Route>& failed) {
  ChunkRoute out;
  OUTPOST_ASSIGN_OR_RETURN(out.index_bytes, fetch_index(ctx, p.manifest));
  OUTPOST_ASSIGN_OR_RETURN(
      out.index, packaging::ChunkIndex::parse(view(out.index_bytes), p.manifest.chunking.max));
  OUTPOST_RETURN_IF_ERROR(out.index.check_against(p.manifest));
  OUTPOST_ASSIGN_OR_RETURN(out.missing, missing_chunks(ctx, out.index));
  ChunkCost exact = chunk_cost(out.index, out.missing);
  auto routes = price_routes(p.manifest, p.held, exact, ctx.options.request_cost);
  discount_carried(ctx, p, routes);
  routes.erase(std::remove_if(routes.begin(), routes.end(),
                              [&](const Route& r) { return already_failed(failed, r); }),
               routes.end());
  p.planned.route = routes.front();
  return out;
}

bool already_failed(const std::vector<Route>& failed, const Route& r) {
  return std::any_of(failed.begin(), failed.end(),
                     [&](const Route& f) { return f.kind == r.kind && f.steps == r.steps; });
}

}  // namespace outpost::node
