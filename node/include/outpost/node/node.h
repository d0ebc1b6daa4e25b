// A node: the store plus what it trusts, holds and subscribes to. Every command of the
// `outpost` binary that touches a store goes through here.
//
// Guarantees: a bundle version becomes visible in one write transaction, only after every
// chunk is present and its content root verifies; trusted metadata only moves forward; on
// any error the visible state (bundles, trust) is exactly as before. Verified chunks that
// arrived before an error are kept (they are content-addressed), so a rerun resumes.
// Concurrency: one Node per thread. Several processes may open the same store: any number
// of readers (ls, cat, checkout, a kiosk) run while one process syncs; they see the last
// committed state. One sync per repository runs at a time across processes: a second one
// waits up to SyncOptions::lock_wait_s, then returns kUnavailable ("a sync is running").
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/base/fs.h"
#include "outpost/base/json.h"
#include "outpost/base/status.h"
#include "outpost/crypto/keys.h"
#include "outpost/sync/http.h"
#include "outpost/sync/source.h"

namespace outpost::storage {
class Store;
}

namespace outpost::node {

using sync::HttpOptions;

struct SubscribeOptions {
  // One of the two: a root public key the repository's root must be signed by, or a
  // root.json file trusted as given (out of band).
  std::optional<crypto::PublicKey> root_pubkey;
  std::string root_json_path;
  // Further locations of the same repository, tried in order after the first when it fails
  // or sends something that does not verify.
  std::vector<std::string> mirrors;
  // Tried after the mirrors, not recorded in the subscription (nodes found on the LAN by the
  // daemon, docs/daemon.md "LAN discovery").
  std::vector<std::string> extra_sources;
  HttpOptions http;  // for http(s) locations (ca_file, timeouts)
  // A USB pack only (as SyncOptions::accept_expired_timestamp): a node that trusts a
  // repository from a stick months after it was written.
  bool accept_expired_timestamp = false;
  // The subscription's ranking (docs/sync.md, "Priorities"): rank patterns, highest first
  // (check_rank_pattern). nullopt: keep what a subscription of the same repository already
  // has (none for a new one); a list, even empty: replace it.
  std::optional<std::vector<std::string>> ranks;
  // The first location already open (a stick import's scanned pack), used instead of opening
  // it again; not owned, must outlive the call.
  sync::Source* opened = nullptr;
};

// Rank patterns (docs/sync.md, "Priorities"): "un/ga/*" (the bundles under a name prefix),
// "un/ga" or "un/ga/A-RES-75-202" (that name and the names under it), "kind:indicator" (the
// bundles of a kind: resolution, indicator or generic). kInvalidArgument, naming the
// pattern and what is accepted, for anything else.
Status check_rank_pattern(std::string_view pattern);
// The rank of a bundle under `patterns` (valid ones, highest first): 1 + the position of the
// first pattern that matches it; 0 when none does (such bundles come after every ranked one).
std::uint32_t bundle_rank(const std::vector<std::string>& patterns, std::string_view bundle,
                          std::string_view kind);

struct Subscription {
  std::string id;        // short stable id of the repository (from its first trusted root)
  std::string location;  // path or URL it syncs from
  std::vector<std::string> mirrors;
  std::int64_t added = 0;
  std::int64_t last_sync = 0;
  std::vector<std::string> ranks;  // rank patterns, highest first (none: no ranking)
};

struct BundleInfo {
  std::string name;
  std::string repo;
  std::string kind;
  std::string title;
  std::uint64_t current = 0;
  std::vector<std::uint64_t> versions;  // held, ascending
  std::uint64_t files = 0;
  std::uint64_t size = 0;
  std::int64_t published = 0;
  std::int64_t confirmed = 0;  // last time a sync confirmed this version current
};

// One way to a bundle's new version, priced from sizes declared in signed metadata
// (docs/sync.md, "The plan").
enum class RouteKind {
  kPatch,   // one patch from a held version
  kChain,   // several patches, one after another, from a held version
  kChunks,  // the chunks not held, by range requests over packs
  kFull,    // the whole content (a patch from nothing)
};
// "patch", "chain", "chunks", "full".
const char* route_name(RouteKind kind);

struct Route {
  RouteKind kind = RouteKind::kFull;
  std::vector<std::uint64_t> steps;  // versions it starts from / passes through
  std::uint64_t bytes = 0;           // declared bytes to fetch (an estimate where says so)
  std::uint64_t requests = 0;
  std::uint64_t cost = 0;  // bytes + requests * SyncOptions::request_cost
  bool estimate = false;   // chunks before their index is known
};

struct PlannedBundle {
  std::string bundle;
  std::uint64_t from = 0;  // the version held (0: none)
  std::uint64_t to = 0;
  Route route;                    // the cheapest
  std::vector<Route> considered;  // every route priced, cheapest first
  std::string deferred;           // why it waits ("data budget"), empty when fetched
  std::string kind;               // the bundle's kind, from its new manifest
  // Rank under the subscription's patterns: 1 = the first pattern; 0 = no pattern matched.
  std::uint32_t rank = 0;
  std::string rank_pattern;  // the pattern that gave the rank ("" when unranked)
  std::uint32_t order = 0;   // position in the plan, 1 first (fetched or deferred alike)
};

struct SyncItem {
  std::string bundle;
  std::uint64_t from = 0;  // 0: new
  std::uint64_t to = 0;
  RouteKind route = RouteKind::kFull;
  std::uint64_t chunks_fetched = 0;
  std::uint64_t chunks_held = 0;
  std::uint64_t bytes = 0;  // content bytes of the new version
};

struct FailedBundle {
  std::string bundle;
  std::uint64_t from = 0;
  std::uint64_t to = 0;
  Status why;  // what went wrong on the last route tried (retry_class() tells what to do)
};

struct SyncReport {
  std::string repo;
  std::string location;    // where the content came from (a mirror when the first failed)
  bool unchanged = false;  // the timestamp named nothing new
  std::vector<SyncItem> updated;
  std::vector<PlannedBundle> plan;      // every bundle that needed work (dry-run: nothing else)
  std::vector<PlannedBundle> deferred;  // left for later (data budget)
  // Bundles that could not be completed from any route of this source, with the reason;
  // every other bundle was committed. Not empty: the sync was partial.
  std::vector<FailedBundle> failed;
  std::vector<std::string> skipped_sources;  // "URL: why" for mirrors that failed first
  bool metered = false;                      // the source is a link (HTTP), not a path
  std::uint64_t bytes_read = 0;  // a link: on the wire, headers included; a path: bytes read
  std::uint64_t requests = 0;    // a link: HTTP requests; a path: file reads
  // What the data budget left for content when the plan was made, after the metadata
  // (UINT64_MAX: no limit, or a local path).
  std::uint64_t budget_left = UINT64_MAX;
  bool partial() const { return !failed.empty(); }
};

struct SyncProgress {
  std::string bundle;
  std::string route;
  std::uint64_t done = 0;   // bytes of this transfer received
  std::uint64_t total = 0;  // declared bytes of this transfer
};

struct SyncOptions {
  bool dry_run = false;  // fetch metadata, price the routes, change no bundle
  HttpOptions http;
  // What one more request costs in bytes when routes are compared (headers both ways plus
  // the bytes a 600 ms round trip at 64 kbit/s could have carried).
  std::uint64_t request_cost = 5000;
  std::function<void(const SyncProgress&)> progress;
  // Cancellation: a stop request ends the sync within about a second (a transfer under way
  // is aborted, a backoff sleep wakes) with kCancelled, keeping every verified piece; the next
  // sync resumes. (http.stop is set from this.)
  std::stop_token stop;
  // How long to wait for another process's sync of the same repository to end.
  double lock_wait_s = 2.0;
  // A USB pack only (DESIGN.md, Trust): an expired timestamp is accepted when it names a
  // newer, validly signed snapshot. Never set for a link.
  bool accept_expired_timestamp = false;
  // Keep the patches used (in the transfers table) instead of dropping them, so a peer-serving
  // daemon can serve them as they were published (docs/daemon.md, "Peer serving").
  bool keep_patches = false;
  // Bundles to hold, by repository id: name prefixes (a subscription's `bundles` filter,
  // docs/configuration.md). A prefix matches the name itself and the names under it ("un/ga"
  // holds "un/ga/A-RES-75-202", not "un/gab"). A repository not listed, or listed with no
  // prefix, syncs every bundle; bundles already held and no longer matched stay as they are.
  std::map<std::string, std::vector<std::string>> bundle_filters;
  // Rank patterns by repository id (docs/sync.md, "Priorities"), in place of the ones stored
  // with the subscription; a repository not listed uses its stored ones.
  std::map<std::string, std::vector<std::string>> bundle_ranks;
  // Bytes this sync may spend on links, over every repository and mirror (0: no cap of its
  // own); the stored data budget holds as well, whichever leaves less. Local paths are free.
  std::uint64_t budget = 0;
};

// Bytes a node may spend on the wire per calendar day and month (UTC), 0: no limit.
struct DataBudget {
  std::uint64_t day = 0;
  std::uint64_t month = 0;
  std::uint64_t used_day = 0;
  std::uint64_t used_month = 0;
};

struct VerifyReport {
  std::uint64_t chunks_checked = 0;
  std::uint64_t versions_checked = 0;
  std::uint64_t metadata_checked = 0;
  std::vector<std::string> problems;  // one line each: what is wrong, where, what to do
};

struct GcReport {
  std::uint64_t versions_removed = 0;
  std::uint64_t chunks_removed = 0;     // exactly the records deleted (malformed ones included)
  std::uint64_t malformed_removed = 0;  // of which malformed (wrong key length, bad value)
  std::uint64_t bytes_freed = 0;        // stored (compressed) bytes
};

struct RepairReport {
  std::uint64_t chunks_removed = 0;   // malformed, or not hashing to their id
  std::uint64_t bundles_removed = 0;  // malformed bundle records (the next sync fetches them)
};

struct RepositoryStatus {
  std::string id;
  std::string location;
  std::int64_t last_sync = 0;           // 0: never
  std::uint64_t timestamp_version = 0;  // of the trusted timestamp; 0: none yet
  std::int64_t timestamp_expires = 0;
  std::vector<std::string> ranks;  // rank patterns, highest first
};

struct NodeStatus {
  std::string store;               // its directory
  std::uint64_t map_bytes = 0;     // LMDB map size
  std::uint64_t used_bytes = 0;    // high-water mark of the file's pages (never shrinks)
  std::uint64_t in_use_bytes = 0;  // pages the data holds: shrinks after gc
  std::uint64_t file_bytes = 0;    // size of data.mdb
  std::uint64_t chunks = 0;
  std::uint64_t bundles = 0;
  std::int64_t time_floor = 0;  // the latest time the node has seen; 0: none
  std::vector<RepositoryStatus> repositories;
};

struct NodeOptions {
  std::string dir;      // the store's directory
  bool create = false;  // make the store when missing (otherwise kNotFound with advice)
  // Only reading (list, show, cat, checkout, verify, status, subscriptions, budget): the
  // store is opened read-only, so it also works on a read-only file system; anything that
  // would write returns kFailedPrecondition.
  bool read_only = false;
  Clock* clock = nullptr;  // nullptr: system_clock()
  // Where checkout writes (nullptr: real_fs()); tests pass a fault-injecting one. Must
  // outlive the Node. The store itself is LMDB's and does not go through it.
  FileSystem* fs = nullptr;
};

class Node {
 public:
  ~Node();
  static Result<std::unique_ptr<Node>> open(const NodeOptions& options);
  // The same, read-write.
  static Result<std::unique_ptr<Node>> open(const std::string& dir, bool create,
                                            Clock& clock = system_clock());

  // Trusts a repository: verifies its root against options and records the subscription.
  Result<Subscription> subscribe(const std::string& location, const SubscribeOptions& options);
  Result<std::vector<Subscription>> subscriptions();

  // Brings every subscription (or the one at `location`, which may also be a new location
  // for a subscribed repository) up to date. Stops at the first repository that fails.
  // Also remembers what it learned about servers (multi-range support) and the timestamp's
  // HTTP validator; honours the data budget: bundles that do not fit are deferred.
  Result<std::vector<SyncReport>> sync(const std::string& location = "",
                                       const SyncOptions& options = {});

  // The data budget (persisted in the store) and what was spent today and this month.
  Status set_budget(std::uint64_t day, std::uint64_t month);
  Result<DataBudget> budget();

  Result<std::vector<BundleInfo>> list();
  // The manifest of the current (or given) version as signed, parsed to JSON.
  Result<Json> show(const std::string& bundle, std::uint64_t version = 0);
  // Streams one file of the current version to out.
  Status cat(const std::string& bundle, const std::string& path,
             const std::function<Status(ByteView)>& out);
  // Writes every file of the current version under dir (created, with its parents, if
  // missing). dir must be missing or empty unless `force` (then files of the same name are
  // replaced and others kept); a dir that is not a folder is refused either way
  // (kFailedPrecondition, nothing written). Never writes through a symlink. Each file is
  // replaced at once: after a crash it is the old or the complete new one. Errors name dir;
  // a full disk is kResourceExhausted, and no temp file is left behind.
  Status checkout(const std::string& bundle, const std::string& dir, bool force = false);

  Result<VerifyReport> verify();
  // Keeps `retain` versions per bundle (current and the ones before it) and drops chunks no
  // kept version uses.
  Result<GcReport> gc(int retain = 2);
  // Deletes what verify calls damaged in the store itself (chunk records that are malformed
  // or do not hash to their id, malformed bundle records), in one transaction, so the next
  // sync fetches them again from the repository.
  Result<RepairReport> repair();
  // Remembers how many versions gc keeps for one bundle (overrides gc's default).
  // kInvalidArgument for n < 1 or an invalid name.
  Status set_retention(const std::string& bundle, int n);
  Result<NodeStatus> status();

  storage::Store& store() { return *store_; }
  Clock& clock() { return *clock_; }

 private:
  Node() = default;
  Result<Subscription> subscribe_from(const std::string& source_location,
                                      const std::string& location, const SubscribeOptions& options);
  std::unique_ptr<storage::Store> store_;
  Clock* clock_ = nullptr;
  FileSystem* fs_ = nullptr;
};

}  // namespace outpost::node
