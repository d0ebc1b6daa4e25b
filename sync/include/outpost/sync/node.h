// A node: the store plus what it trusts, holds and subscribes to. Every command of the
// `outpost` binary that touches a store goes through here.
//
// Guarantees: a bundle version becomes visible in one write transaction, only after every
// chunk is present and its content root verifies; trusted metadata only moves forward; on
// any error the visible state (bundles, trust) is exactly as before. Verified chunks that
// arrived before an error are kept (they are content-addressed), so a rerun resumes.
// Thread-safety: one Node per thread; several processes may open the same store.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/base/json.h"
#include "outpost/base/status.h"
#include "outpost/crypto/keys.h"

namespace outpost::storage {
class Store;
}

namespace outpost::sync {

struct SubscribeOptions {
  // One of the two: a root public key the repository's root must be signed by, or a
  // root.json file trusted as given (out of band).
  std::optional<crypto::PublicKey> root_pubkey;
  std::string root_json_path;
};

struct Subscription {
  std::string id;        // short stable id of the repository (from its first trusted root)
  std::string location;  // path or URL it syncs from
  std::int64_t added = 0;
  std::int64_t last_sync = 0;
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

struct SyncItem {
  std::string bundle;
  std::uint64_t from = 0;  // 0: new
  std::uint64_t to = 0;
  std::uint64_t chunks_fetched = 0;
  std::uint64_t chunks_held = 0;
  std::uint64_t bytes = 0;  // content bytes of the new version
};

struct SyncReport {
  std::string repo;
  std::string location;
  bool unchanged = false;  // the timestamp named nothing new
  std::vector<SyncItem> updated;
  std::uint64_t bytes_read = 0;
};

struct VerifyReport {
  std::uint64_t chunks_checked = 0;
  std::uint64_t versions_checked = 0;
  std::uint64_t metadata_checked = 0;
  std::vector<std::string> problems;  // one line each: what is wrong, where, what to do
};

struct GcReport {
  std::uint64_t versions_removed = 0;
  std::uint64_t chunks_removed = 0;
  std::uint64_t bytes_freed = 0;  // stored (compressed) bytes
};

class Node {
 public:
  ~Node();
  // Opens the store in dir. With create, makes it if missing; otherwise a missing store is
  // kNotFound with advice.
  static Result<std::unique_ptr<Node>> open(const std::string& dir, bool create,
                                            Clock& clock = system_clock());

  // Trusts a repository: verifies its root against options and records the subscription.
  Result<Subscription> subscribe(const std::string& location, const SubscribeOptions& options);
  Result<std::vector<Subscription>> subscriptions();

  // Brings every subscription (or the one at `location`, which may also be a new location
  // for a subscribed repository) up to date. Stops at the first repository that fails.
  Result<std::vector<SyncReport>> sync(const std::string& location = "");

  Result<std::vector<BundleInfo>> list();
  // The manifest of the current (or given) version as signed, parsed to JSON.
  Result<Json> show(const std::string& bundle, std::uint64_t version = 0);
  // Streams one file of the current version to out.
  Status cat(const std::string& bundle, const std::string& path,
             const std::function<Status(ByteView)>& out);
  // Writes every file of the current version under dir (created if missing).
  Status checkout(const std::string& bundle, const std::string& dir);

  Result<VerifyReport> verify();
  // Keeps `retain` versions per bundle (current and the ones before it) and drops chunks no
  // kept version uses.
  Result<GcReport> gc(int retain = 2);
  // Remembers how many versions gc keeps for one bundle (overrides gc's default).
  // kInvalidArgument for n < 1 or an invalid name.
  Status set_retention(const std::string& bundle, int n);
  Result<Json> status();

  storage::Store& store() { return *store_; }

 private:
  Node() = default;
  std::unique_ptr<storage::Store> store_;
  Clock* clock_ = nullptr;
};

}  // namespace outpost::sync
