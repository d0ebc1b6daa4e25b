// Which bundles a sync fetches and how (docs/sync.md, "The plan" and "Data budget"): each
// bundle manifest the verified targets list is checked against what the node holds and has
// accepted (rollback refused); a bundle already current is confirmed (and repaired when
// chunks it needs went missing); for each changed one the new manifest is fetched and checked
// against its signed hash, every route priced with plan.h's price_routes, a patch chain
// searched through older manifests when no direct patch applies, and the bundles ordered
// cheapest first, those the data budget cannot pay for deferred.
// Owns: the Pending list and each bundle's planned route, until the fetch takes them.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/crypto/tuf.h"
#include "outpost/node/node.h"
#include "outpost/packaging/chunk_index.h"
#include "sync_context.h"

namespace outpost::node {

// The bundles of `targets` that need fetching, planned and in the order to fetch them; what
// fits in the data budget goes to report.plan, the rest to report.deferred (and keeps its
// reason in planned.deferred). Errors name the bundle.
Result<std::vector<Pending>> plan_bundles(
    SyncContext& ctx, const std::map<std::string, crypto::tuf::TargetFile>& targets,
    SyncReport& report);

// The chunk route's data once its index is in, priced exactly.
struct ChunkRoute {
  packaging::ChunkIndex index;
  Bytes index_bytes;
  std::vector<std::size_t> missing;  // positions in index.chunks (transfer.h, missing_chunks)
};
// Fetches p's chunk index and prices every route again with the exact chunk cost (a patch
// may still win), leaving out the routes in `failed`; p.planned.route becomes the cheapest.
Result<ChunkRoute> price_with_index(SyncContext& ctx, Pending& p, const std::vector<Route>& failed);

// Whether `failed` (routes already tried for a bundle) holds `r`.
bool already_failed(const std::vector<Route>& failed, const Route& r);

}  // namespace outpost::node
