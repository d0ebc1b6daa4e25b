// The TUF refresh of one sync (docs/sync.md, steps 1 and 2): the timestamp first, as a
// conditional request; when it changed, the metadata update file or the files one by one,
// through a MetadataOverlay whose bases are the metadata files and current manifests the node
// holds. The new trust (with the time floor and the timestamp's validator) is saved before
// any content is fetched, except on a dry run.
// Owns: ctx.trusted and ctx.overlay, which it sets; the repository's trusted metadata, the
// time floor and the timestamp's validator in the store.
#pragma once

#include <map>
#include <string>

#include "outpost/base/status.h"
#include "outpost/crypto/tuf.h"
#include "sync_context.h"

namespace outpost::node {

struct Refreshed {
  // Every target the verified metadata lists, by path.
  std::map<std::string, crypto::tuf::TargetFile> targets;
  // The timestamp was the one the node already trusted.
  bool unchanged = false;
};

// Verifies the repository's metadata as the TUF client workflow says; errors as
// tuf::Updater::refresh() and all_targets(), and the store's.
Result<Refreshed> refresh(SyncContext& ctx);

}  // namespace outpost::node
