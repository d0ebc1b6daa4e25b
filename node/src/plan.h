// Pricing the routes to a bundle's new version (docs/sync.md, "The plan"): from the sizes the
// signed manifest declares for its patches and chunk index, the versions the node holds, and a
// per-request cost. Pure functions, so the choice can be tested without a network.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "outpost/crypto/hash.h"
#include "outpost/node/node.h"
#include "outpost/packaging/manifest.h"

namespace outpost::node {

struct HeldRoot {
  std::uint64_t version = 0;
  crypto::Digest root{};
};

struct ChunkCost {
  std::uint64_t bytes = 0;     // stored bytes of the missing chunks (+ the index when unknown)
  std::uint64_t requests = 0;  // range requests after merging
  bool estimate = false;       // the index is not fetched yet
};

// Every route to `target` priced, cheapest first (ties: fewer requests, then patch before
// chunks before full). Patches count only from a held version whose content root matches
// the one the patch declares. `chunks` is the chunk route's price when known (nullopt: no
// chunk route, e.g. when nothing is held).
std::vector<Route> price_routes(const packaging::Manifest& target,
                                const std::vector<HeldRoot>& held,
                                const std::optional<ChunkCost>& chunks, std::uint64_t request_cost);

// An upper-bound-free guess of the chunk route before its index is fetched: the index itself
// plus the share of the full patch that the files the node does not hold in the same size
// would cost. Used to decide whether the index is worth fetching at all.
ChunkCost estimate_chunks(const packaging::Manifest& target, const packaging::Manifest* held,
                          std::uint64_t full_bytes);

}  // namespace outpost::node
