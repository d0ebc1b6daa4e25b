// What the parts of one repository sync share (repo_sync.h): the store, the metered source,
// the options, the repository, the time, and, once refresh() has run, the metadata the node
// trusted before this sync and the overlay through which this sync reads metadata and
// manifests. One SyncContext per sync, passed by reference; it must not move once refresh()
// has set the overlay (the overlay refers back to it). Also Pending: one bundle on its way to
// a new version, from the plan to the commit. Internal to the node; one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "metadata_overlay.h"
#include "node_records.h"
#include "outpost/base/bytes.h"
#include "outpost/crypto/tuf.h"
#include "outpost/node/node.h"
#include "outpost/packaging/manifest.h"
#include "outpost/storage/store.h"
#include "plan.h"

namespace outpost::node {

struct SyncContext {
  storage::Store& store;
  // Metered by the data budget: its left() is what this sync may still spend.
  sync::MeteredSource& source;
  const SyncOptions& options;
  std::string repo;
  // The path or URL of `source`, as the subscription names it (keys the timestamp's HTTP
  // validator in the store).
  std::string location;
  std::int64_t now = 0;
  // Set by refresh(): the trusted metadata as held before this sync (bases for the update
  // file), and the overlay that reads the metadata and manifests of this sync.
  crypto::tuf::TrustedMetadata trusted;
  std::optional<MetadataOverlay> overlay;
};

// A bundle whose new version this sync fetches: set by the planner, read by the transfers
// and the assembly.
struct Pending {
  std::string bundle;
  std::optional<records::BundleRecord> record;
  Bytes manifest_bytes;
  packaging::Manifest manifest;
  PlannedBundle planned;
  std::vector<HeldRoot> held;
  // The chain route, when one was found: the patches in the order they apply, and the
  // manifest of the version each one leads to (the last is `manifest`).
  std::vector<packaging::PatchRef> chain;
  std::deque<packaging::Manifest> chain_manifests;  // intermediate versions, nearest to held first
};

}  // namespace outpost::node
