// The daemon's node worker (docs/daemon.md, "Worker processes"): a subscription, a sync, a gc
// or the read of a LAN node's list runs in a process of its own, the daemon's binary started with
// "__node", asked on stdin and answering on stdout in JSON. What the work allocates, libcurl's and
// OpenSSL's set-up included, leaves with the process, so the daemon that stays (the kiosk's pages,
// peer serving) keeps only its own few megabytes; and a crash in the work is a failed round, not a
// dead kiosk.
#pragma once

#include <stop_token>
#include <string>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/node/node.h"
#include "outpost/sync/http.h"

namespace outpost::serve {

inline constexpr const char* kNodeWorker = "__node";

// Node::subscribe, Node::sync and Node::gc on the store at store_dir, each in a worker. What
// the daemon reads of the results comes back (SyncReport: repo, location, bytes_read, updated,
// failed, deferred). A stop request (SyncOptions::stop, HttpOptions::stop) ends the worker as
// SIGTERM ends `outpost sync`: kCancelled, verified pieces kept.
Result<node::Subscription> subscribe_in_worker(const std::string& store_dir,
                                               const std::string& location,
                                               const node::SubscribeOptions& options);
Result<std::vector<node::SyncReport>> sync_in_worker(const std::string& store_dir,
                                                     const std::string& location,
                                                     const node::SyncOptions& options);
Result<node::GcReport> gc_in_worker(const std::string& store_dir, int retain);
// The repository ids a node found on the LAN serves: the JSON list at its peer URL
// ("http://host:port/repo/").
Result<std::vector<std::string>> peer_list_in_worker(const std::string& peer_url,
                                                     const sync::HttpOptions& http);

// The worker's side: reads the request from stdin, writes the answer to stdout, returns the
// exit code.
int run_node_worker();

}  // namespace outpost::serve
