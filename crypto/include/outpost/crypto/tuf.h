// The Update Framework (specification 1.0.x) for outpost: the four top-level roles plus
// delegated targets roles, as typed values that read from and write to the JSON that is
// signed (canonical JSON of "signed"), and the client update workflow of section 5.
//
// Files follow the spec with consistent snapshots: "N.root.json", "timestamp.json",
// "N.snapshot.json", "N.targets.json", "N.<delegated-role>.json"; targets are stored as
// "<dir>/<sha256>.<name>". Times are whole seconds (UTC). Thread-safety: values and a
// single-threaded Updater.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/json.h"
#include "outpost/base/status.h"
#include "outpost/crypto/keys.h"

namespace outpost::crypto::tuf {

inline constexpr const char* kSpecVersion = "1.0.31";

struct RoleKeys {
  std::vector<std::string> keyids;  // sorted, unique
  int threshold = 1;
};

struct Root {
  std::int64_t version = 1;
  std::int64_t expires = 0;
  bool consistent_snapshot = true;
  std::map<std::string, PublicKey> keys;  // keyid -> key
  std::map<std::string, RoleKeys> roles;  // "root", "targets", "snapshot", "timestamp"

  Json to_signed() const;
  static Result<Root> from_signed(const Json& signed_part);
};

struct MetaFile {
  std::int64_t version = 0;
  std::optional<std::int64_t> length;
  std::optional<std::string> sha256;  // hex
};

struct Timestamp {
  std::int64_t version = 1;
  std::int64_t expires = 0;
  MetaFile snapshot;  // meta["snapshot.json"]

  Json to_signed() const;
  static Result<Timestamp> from_signed(const Json& signed_part);
};

struct Snapshot {
  std::int64_t version = 1;
  std::int64_t expires = 0;
  std::map<std::string, MetaFile> meta;  // "targets.json", "<role>.json"

  Json to_signed() const;
  static Result<Snapshot> from_signed(const Json& signed_part);
};

struct TargetFile {
  std::int64_t length = 0;
  std::string sha256;  // hex
  Json custom;         // outpost's fields (bundle version, kind, ...) or null

  friend bool operator==(const TargetFile&, const TargetFile&) = default;
};

struct DelegatedRole {
  std::string name;
  std::vector<std::string> keyids;
  int threshold = 1;
  bool terminating = false;
  std::vector<std::string> paths;               // TUF path patterns ("un/ga/*")
  std::vector<std::string> path_hash_prefixes;  // hashed bins (hex prefixes of sha256(path))

  // True when this role is trusted for target path `path` (section 5.6.7.2 matching).
  bool matches(const std::string& path) const;
};

struct Delegations {
  std::map<std::string, PublicKey> keys;
  std::vector<DelegatedRole> roles;  // in priority order
};

struct Targets {
  std::int64_t version = 1;
  std::int64_t expires = 0;
  std::map<std::string, TargetFile> targets;
  std::optional<Delegations> delegations;

  Json to_signed() const;
  static Result<Targets> from_signed(const Json& signed_part);
};

// Wraps a signed part into {"signatures":[...],"signed":...} signed by each key, and returns
// the file bytes (canonical JSON).
Bytes sign_metadata(const Json& signed_part, const std::vector<const SecretKey*>& keys);

// Parses a metadata file with the hard JSON limits, checks "_type" == expected_type, and
// returns the envelope. kCorruption when malformed.
Result<Json> parse_metadata(ByteView file, std::string_view expected_type);

// Counts valid signatures over canonical(signed) by distinct keys of `role` listed in
// `keys`; kVerificationFailed naming the role when fewer than the threshold.
Status verify_threshold(const Json& envelope, const std::map<std::string, PublicKey>& keys,
                        const RoleKeys& role, std::string_view role_name);

// Where the client gets metadata files from (a local path, an HTTP mirror, a USB pack).
class MetadataSource {
 public:
  virtual ~MetadataSource() = default;
  // Returns the file's bytes, reading at most max_length bytes: a longer file is
  // kCorruption ("longer than declared"). kNotFound when the source does not have it.
  virtual Result<Bytes> fetch(const std::string& filename, std::uint64_t max_length) = 0;
  // The file when it differs from `held` (the bytes the client trusts now), nullopt when it
  // is the same. A source that can ask cheaply (an HTTP conditional request) overrides this;
  // by default the file is fetched and compared.
  virtual Result<std::optional<Bytes>> fetch_if_changed(const std::string& filename,
                                                        std::uint64_t max_length, ByteView held) {
    Result<Bytes> bytes = fetch(filename, max_length);
    if (!bytes.ok()) return bytes.error();
    if (bytes->size() == held.size() && std::equal(bytes->begin(), bytes->end(), held.begin())) {
      return std::optional<Bytes>();
    }
    return std::optional<Bytes>(std::move(bytes).value());
  }
};

// The metadata a node trusts, as the exact signed bytes; persisted by the store between runs.
struct TrustedMetadata {
  Bytes root;
  Bytes timestamp;
  Bytes snapshot;
  Bytes targets;
  std::map<std::string, Bytes> delegated;  // role name -> bytes
};

struct UpdaterOptions {
  std::int64_t now = 0;  // seconds; the caller applies its time floor
  // Outpost's one departure (DESIGN.md, Trust): for a USB pack, an expired timestamp is
  // accepted when it names a newer, validly signed snapshot. Never for online sources.
  bool accept_expired_timestamp = false;
  std::uint64_t max_root_bytes = 512 * 1024;
  std::uint64_t max_timestamp_bytes = 16 * 1024;
  std::uint64_t max_snapshot_bytes = 64u << 20;
  std::uint64_t max_targets_bytes = 64u << 20;
  int max_root_rotations = 256;
  int max_delegations = 64;  // delegated roles visited in one lookup
};

// The client workflow (section 5). Construct with what the node trusts (at least a root);
// refresh() moves it forward or fails leaving trusted() unchanged.
class Updater {
 public:
  // Parses and re-verifies `trusted` (the root by its own keys; timestamp, snapshot and
  // targets by the root's keys; delegated roles by their parent when first used). Held files
  // that no longer verify are dropped from trusted() and fetched again. When the root itself
  // is missing (kFailedPrecondition) or does not verify, every call returns that error.
  // `source` must outlive the Updater.
  Updater(TrustedMetadata trusted, MetadataSource& source, UpdaterOptions options);

  // Section 5.3-5.6: root chain, timestamp, snapshot, top-level targets. Rollback, freeze,
  // mix-and-match and fast-forward recovery per the spec. kVerificationFailed for signature,
  // expiry and rollback failures; kCorruption for malformed or oversized files and for a
  // length or sha256 that differs from the one declared; the source's own code (kNotFound,
  // kUnavailable, ...) with "fetching FILE: " in front when a fetch fails.
  // Order (docs/trust-model.md): timestamp.json first, with fetch_if_changed(); when it is the
  // one already trusted, nothing else is fetched (one request on a link) and only expiries are
  // checked. Otherwise the root chain is walked ("N+1.root.json" ...) and the new timestamp is
  // verified against the newest root, then snapshot and targets as the spec says.
  // Delegated metadata the new snapshot supersedes is dropped from trusted().
  Status refresh();
  // True when refresh() found the same timestamp the node already trusted.
  bool unchanged() const { return unchanged_; }

  // Section 5.6.7: the target's info, walking delegations (and loading delegated metadata,
  // which becomes part of trusted()). kNotFound when no trusted role lists the path (or the
  // search stopped at options.max_delegations; a delegated role the snapshot does not list
  // yet, never published, lists nothing); kVerificationFailed when a delegated role on
  // the way is badly signed, expired or disagrees with the snapshot; kFailedPrecondition when
  // there is no complete trusted metadata yet (refresh first). Works offline on complete
  // trusted metadata; the targets and delegated roles it consults must not have expired.
  Result<TargetFile> find_target(const std::string& path);
  // Every target of every delegated role the client can reach (for listing a repository),
  // each attributed as find_target() would: a path a role lists outside what it was delegated
  // is left out. Loads every reachable delegated role; errors as find_target().
  Result<std::map<std::string, TargetFile>> all_targets();

  const TrustedMetadata& trusted() const { return trusted_; }
  const Root& root() const { return root_; }

 private:
  // A delegated role's parsed metadata, and the delegation (keys and threshold, as a
  // fingerprint) its signatures were last checked against; empty when loaded from the
  // trusted bytes and not yet checked against a parent.
  struct LoadedRole {
    Targets targets;
    std::string verified_by;
  };

  Status load_trusted();
  Status update_root();
  Status update_timestamp(Bytes bytes);
  Status update_snapshot();
  Status update_targets();
  void drop_superseded_delegations();
  Status check_ready() const;
  // Fetches a metadata file, bounded by the length `meta` declares (or `cap`), and checks
  // its length and hash against `meta` (as declared by `declared_by`).
  Result<Bytes> fetch_meta(const std::string& filename, const MetaFile* meta, std::uint64_t cap,
                           std::string_view declared_by);
  // The role's metadata, verified against the parent's delegation; owned by delegated_.
  // nullptr when the snapshot does not list the role and this node trusts no version of it:
  // delegated but not published yet, so it lists no target. kVerificationFailed when the node
  // holds a version of a role the snapshot leaves out (rollback).
  Result<const Targets*> load_delegated(const DelegatedRole& role, const Delegations& parent);

  TrustedMetadata trusted_;
  MetadataSource& source_;
  UpdaterOptions options_;
  Status load_status_;  // why the trusted root is unusable; refresh() and lookups return it
  Root root_;
  std::optional<Timestamp> timestamp_;
  std::optional<Snapshot> snapshot_;
  std::optional<Targets> targets_;
  std::map<std::string, LoadedRole> delegated_;
  bool unchanged_ = false;
};

}  // namespace outpost::crypto::tuf
