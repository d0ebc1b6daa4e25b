#include "update_patches.h"

#include <algorithm>

#include "outpost/crypto/hash.h"
#include "outpost/packaging/layout.h"

namespace outpost::packaging::repo_detail {

namespace {

// The chain search of a node (node/src/planner.cc, find_chain), followed here so that the
// update file carries exactly what the node will ask for.
constexpr int kMaxChainHops = 4;

const PatchRef* from_zero(const Manifest& m) {
  for (const auto& r : m.patches) {
    if (r.from == 0) return &r;
  }
  return nullptr;
}

const PatchRef* from_version(const Manifest& m, const Manifest& held) {
  for (const auto& r : m.patches) {
    if (r.from == held.version && crypto::digest_equal(r.from_root, held.content_root)) return &r;
  }
  return nullptr;
}

}  // namespace

Result<std::optional<CarriedRoute>> carried_route(const std::optional<Manifest>& before,
                                                  const Manifest& after, const ReadRepoFile& read) {
  CarriedRoute route;
  const PatchRef* full = from_zero(after);
  if (before) {
    if (const PatchRef* direct = from_version(after, *before)) {
      route.patches = {*direct};
    } else {
      // Down the ladder: each hop to the rung nearest above the held version.
      std::vector<Manifest> manifests;  // intermediate versions, newest first
      std::vector<PatchRef> down;
      const Manifest* at = &after;
      for (int hop = 0; hop < kMaxChainHops && route.patches.empty(); ++hop) {
        const PatchRef* next = nullptr;
        for (const auto& r : at->patches) {
          if (r.from > before->version && (next == nullptr || r.from < next->from)) next = &r;
        }
        if (next == nullptr) break;
        std::string path = manifest_file_path(after.bundle, crypto::hex(next->from_manifest));
        auto bytes = read(path);
        if (!bytes.ok()) break;  // no longer kept: the node cannot chain through it either
        auto parsed = Manifest::parse(ByteView(**bytes));
        if (!parsed.ok() || parsed->bundle != after.bundle || parsed->version != next->from) break;
        down.push_back(*next);
        route.manifests.push_back(path);
        manifests.push_back(std::move(*parsed));
        at = &manifests.back();
        if (const PatchRef* first = from_version(*at, *before)) {
          route.patches.push_back(*first);
          for (auto it = down.rbegin(); it != down.rend(); ++it) route.patches.push_back(*it);
        }
      }
      if (route.patches.empty()) route.manifests.clear();
    }
  }
  for (const auto& p : route.patches) route.bytes += p.length;
  // The whole content when no patch route exists or it would cost more.
  if (full != nullptr && (route.patches.empty() || route.bytes >= full->length)) {
    route = CarriedRoute{};
    route.patches = {*full};
    route.bytes = full->length;
  }
  if (route.patches.empty() || route.bytes > kCarriedRouteMax) return std::optional<CarriedRoute>();
  return std::optional<CarriedRoute>(std::move(route));
}

}  // namespace outpost::packaging::repo_detail
