// The one JSON form of the node's typed results, shared by the CLI's --json and the daemon's
// HTTP API, so both say the same thing in the same words. Field names are documented in
// docs/cli.md ("JSON output"); adding a field is compatible, renaming one is not.
#pragma once

#include "outpost/base/json.h"
#include "outpost/base/status.h"
#include "outpost/node/node.h"

namespace outpost::node {

// {"code":"not found","retry":"retry now","message":"..."}
Json to_json(const Status& status);
// {"kind":"patch","steps":[3],"bytes":..,"requests":..,"cost":..,"estimate":false}
Json to_json(const Route& route);
// {"bundle","from","to","route","cost","bytes","reason"?,"considered":[Route...]}
Json to_json(const PlannedBundle& planned);
// {"bundle","from","to","route","chunks_fetched","chunks_held","bytes"}
Json to_json(const SyncItem& item);
// {"bundle","from","to","code","retry","message"}
Json to_json(const FailedBundle& failed);
// {"repository","location","unchanged","partial","metered","bytes_read","requests","dry_run",
//  "updated":[..],"failed":[..],"plan":[..],"deferred":[..],"skipped_sources":[..]}
Json to_json(const SyncReport& report, bool dry_run);
// {"store","map_bytes","used_bytes","in_use_bytes","file_bytes","chunks","bundles",
//  "time_floor" ("none" or UTC),"repositories":[{"id","location","last_sync" ("never" or
//  UTC),"timestamp_version"?,"timestamp_expires"?}]}
Json to_json(const NodeStatus& status);

}  // namespace outpost::node
