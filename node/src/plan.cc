#include "plan.h"

#include <algorithm>
#include <map>

namespace outpost::node {

namespace {

int kind_rank(RouteKind kind) { return static_cast<int>(kind); }

}  // namespace

const char* route_name(RouteKind kind) {
  switch (kind) {
    case RouteKind::kPatch: return "patch";
    case RouteKind::kChain: return "chain";
    case RouteKind::kChunks: return "chunks";
    case RouteKind::kFull: return "full";
  }
  return "full";
}

std::vector<Route> price_routes(const packaging::Manifest& target,
                                const std::vector<HeldRoot>& held,
                                const std::optional<ChunkCost>& chunks,
                                std::uint64_t request_cost) {
  std::vector<Route> routes;
  for (const auto& p : target.patches) {
    Route r;
    r.bytes = p.length;
    r.requests = 1;
    if (p.from == 0) {
      r.kind = RouteKind::kFull;
    } else {
      auto it = std::find_if(held.begin(), held.end(), [&](const HeldRoot& h) {
        return h.version == static_cast<std::uint64_t>(p.from) &&
               crypto::digest_equal(h.root, p.from_root);
      });
      if (it == held.end()) continue;
      r.kind = RouteKind::kPatch;
      r.steps = {it->version};
    }
    routes.push_back(std::move(r));
  }
  if (chunks) {
    Route r;
    r.kind = RouteKind::kChunks;
    r.bytes = chunks->bytes;
    r.requests = chunks->requests;
    r.estimate = chunks->estimate;
    if (!held.empty()) {
      r.steps = {std::max_element(held.begin(), held.end(), [](auto& a, auto& b) {
                   return a.version < b.version;
                 })->version};
    }
    routes.push_back(std::move(r));
  }
  for (auto& r : routes) r.cost = r.bytes + r.requests * request_cost;
  std::stable_sort(routes.begin(), routes.end(), [](const Route& a, const Route& b) {
    if (a.cost != b.cost) return a.cost < b.cost;
    if (a.requests != b.requests) return a.requests < b.requests;
    return kind_rank(a.kind) < kind_rank(b.kind);
  });
  return routes;
}

ChunkCost estimate_chunks(const packaging::Manifest& target, const packaging::Manifest* held,
                          std::uint64_t full_bytes) {
  ChunkCost c;
  c.estimate = true;
  c.requests = 2;  // the index, then the chunks in one multi-range request
  std::map<std::string, std::uint64_t> old_sizes;
  if (held != nullptr) {
    for (const auto& f : held->files) old_sizes[f.path] = f.size;
  }
  // Files whose path and size are unchanged are assumed held; every other file costs its
  // share of the full download.
  std::uint64_t changed = 0;
  for (const auto& f : target.files) {
    auto it = old_sizes.find(f.path);
    if (it == old_sizes.end() || it->second != f.size) changed += f.size;
  }
  std::uint64_t share =
      target.content_size == 0
          ? 0
          : static_cast<std::uint64_t>(
                static_cast<double>(full_bytes) *
                (static_cast<double>(changed) / static_cast<double>(target.content_size)));
  c.bytes = target.index.length + share;
  return c;
}

}  // namespace outpost::node
