// The patches a metadata update file carries (docs/format-repository.md, "Patches carried in
// update files"): for each bundle that changed between snapshots M and N, the patch route a
// node holding the bundle's version at M will take to its version at N (the direct ladder
// patch, else a chain through older versions with their manifests, else the whole content),
// when it is small. Carried, it costs the node no request of its own: an update of any
// number of bundles is the timestamp and the update file.
// Internal to the publisher; one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/packaging/manifest.h"

namespace outpost::packaging::repo_detail {

// A patch route is carried only when all its patches together are at most this long, and an
// update file carries at most kCarriedTotal bytes of patches (the smallest routes first), far
// below what a node reads of an update file (8 MiB).
inline constexpr std::uint64_t kCarriedRouteMax = 256u << 10;
inline constexpr std::uint64_t kCarriedTotal = 4u << 20;

// The files (repository paths) a node needs, besides the new manifest, to go from `before`
// (nullopt: a bundle new at N) to `after` without a request of its own: intermediate
// manifests of a chain, then the patches in the order they apply. nullopt when no route is
// small enough or an intermediate manifest is gone. `bytes` is the patches' total length.
struct CarriedRoute {
  std::vector<std::string> manifests;
  std::vector<PatchRef> patches;
  std::uint64_t bytes = 0;
};
using ReadRepoFile = std::function<Result<const Bytes*>(const std::string& relative)>;
Result<std::optional<CarriedRoute>> carried_route(const std::optional<Manifest>& before,
                                                  const Manifest& after, const ReadRepoFile& read);

}  // namespace outpost::packaging::repo_detail
