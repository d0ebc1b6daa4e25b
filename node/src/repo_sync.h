// One sync of one repository from one source (docs/sync.md): the TUF refresh (timestamp
// first, then the metadata update file or the files one by one), the plan for every changed
// bundle, and the transfers: patches and full downloads resumed from what the store already
// holds, or missing chunks in few range requests. Internal to the node; the parts are
// refresh.h, planner.h, transfer.h and assembly.h, sharing a SyncContext (sync_context.h).
#pragma once

#include <cstdint>
#include <string>

#include "outpost/base/status.h"
#include "outpost/node/node.h"
#include "outpost/storage/store.h"
#include "outpost/sync/source.h"

namespace outpost::node {

// source: metered by the data budget (its left() is what this sync may still spend).
// location: the path or URL of `source`, as the subscription names it (keys the timestamp's
// HTTP validator in the store).
Result<SyncReport> sync_repository(storage::Store& store, sync::MeteredSource& source,
                                   const std::string& repo, const std::string& location,
                                   std::int64_t now, const SyncOptions& options);

}  // namespace outpost::node
