// The TUF client workflow (specification 1.0.x, section 5) over a MetadataSource.
//
// refresh() runs the steps on the members and restores them on any error, so what the node
// trusts only ever moves from one fully verified state to the next.
#include <algorithm>
#include <set>
#include <utility>

#include "outpost/base/clock.h"
#include "outpost/crypto/hash.h"
#include "outpost/crypto/tuf.h"

namespace outpost::crypto::tuf {
namespace {

const RoleKeys kNoKeys{};

const RoleKeys& role_keys(const Root& root, const std::string& name) {
  auto it = root.roles.find(name);
  return it == root.roles.end() ? kNoKeys : it->second;
}

std::string v(std::int64_t n) { return std::to_string(n); }

bool expired(std::int64_t expires, std::int64_t now) { return expires <= now; }

// Parses a trusted file and checks its signatures against `root`'s keys for the role.
template <typename T>
Result<T> parse_verified(ByteView bytes, const char* type, const Root& root,
                         const std::string& what) {
  OUTPOST_ASSIGN_OR_RETURN(Json env, parse_metadata(bytes, type));
  OUTPOST_RETURN_IF_ERROR(verify_threshold(env, root.keys, role_keys(root, type), what));
  return T::from_signed(*env.find("signed"));
}

// Identifies the keys and threshold a delegation gives a role, to know whether metadata
// checked once is still checked against the same delegation.
std::string fingerprint(const DelegatedRole& role, const Delegations& parent) {
  std::string f = v(role.threshold);
  std::vector<std::string> ids = role.keyids;
  std::sort(ids.begin(), ids.end());
  for (const std::string& id : ids) {
    f += '|';
    f += id;
    if (auto k = parent.keys.find(id); k != parent.keys.end()) {
      f += '=';
      f += k->second.hex();
    }
  }
  return f;
}

bool matches_meta(ByteView bytes, const MetaFile& meta) {
  if (meta.length && static_cast<std::uint64_t>(*meta.length) != bytes.size()) return false;
  if (meta.sha256) {
    Digest want{};
    if (!parse_digest(*meta.sha256, want)) return false;
    return digest_equal(want, sha256(bytes));
  }
  return true;
}

}  // namespace

Updater::Updater(TrustedMetadata trusted, MetadataSource& source, UpdaterOptions options)
    : trusted_(std::move(trusted)), source_(source), options_(options) {
  load_status_ = load_trusted();
}

// What the node holds was verified when it arrived, but the store is only a disk: check it
// again. The root must verify by itself; other files that no longer verify are dropped and
// fetched again (a dropped timestamp or snapshot costs rollback protection only until the
// next refresh, exactly as after a key rotation).
Status Updater::load_trusted() {
  if (trusted_.root.empty()) {
    return Status::FailedPrecondition(
        "no trusted root metadata: subscribe to the repository first (outpost subscribe "
        "... --root ROOT_JSON or --root-pubkey HEX)");
  }
  {
    const std::string what = "trusted root metadata";
    Result<Json> env = parse_metadata(trusted_.root, "root");
    if (!env.ok()) return env.error().With(what);
    Result<Root> root = Root::from_signed(*env->find("signed"));
    if (!root.ok()) return root.error().With(what);
    OUTPOST_RETURN_IF_ERROR(
        verify_threshold(*env, root->keys, role_keys(*root, "root"), what + " (self-signed)"));
    root_ = std::move(root).value();
  }
  if (!trusted_.timestamp.empty()) {
    auto t = parse_verified<Timestamp>(trusted_.timestamp, "timestamp", root_, "timestamp.json");
    if (t.ok()) {
      timestamp_ = std::move(t).value();
    } else {
      trusted_.timestamp.clear();
    }
  }
  if (!trusted_.snapshot.empty()) {
    auto s = parse_verified<Snapshot>(trusted_.snapshot, "snapshot", root_, "snapshot.json");
    if (s.ok()) {
      snapshot_ = std::move(s).value();
    } else {
      trusted_.snapshot.clear();
    }
  }
  if (!trusted_.targets.empty()) {
    auto t = parse_verified<Targets>(trusted_.targets, "targets", root_, "targets.json");
    if (t.ok()) {
      targets_ = std::move(t).value();
    } else {
      trusted_.targets.clear();
    }
  }
  // Delegated roles are checked against their parent's delegation when first used.
  for (auto it = trusted_.delegated.begin(); it != trusted_.delegated.end();) {
    Result<Json> env = parse_metadata(it->second, "targets");
    Result<Targets> t =
        env.ok() ? Targets::from_signed(*env->find("signed")) : Result<Targets>(env.error());
    if (t.ok()) {
      delegated_[it->first] = LoadedRole{std::move(t).value(), ""};
      ++it;
    } else {
      it = trusted_.delegated.erase(it);
    }
  }
  return Status::Ok();
}

Status Updater::refresh() {
  unchanged_ = false;
  if (!load_status_.ok()) return load_status_;
  // Delegated metadata is only touched by the last, infallible step, so it needs no copy.
  Bytes saved_root = trusted_.root;
  Bytes saved_timestamp = trusted_.timestamp;
  Bytes saved_snapshot = trusted_.snapshot;
  Bytes saved_targets = trusted_.targets;
  Root saved_root_md = root_;
  std::optional<Timestamp> saved_timestamp_md = timestamp_;
  std::optional<Snapshot> saved_snapshot_md = snapshot_;
  std::optional<Targets> saved_targets_md = targets_;

  // The timestamp first: when it is the one already trusted, nothing changed (a root rotation
  // always comes with a new timestamp), so the root probe is skipped and a no-change check
  // costs one request. Otherwise the root chain is brought up to date before the new
  // timestamp is verified, as in the spec.
  const std::string ts_name = "timestamp.json";
  Status status;
  // With no trusted timestamp, `held` is empty and any answer counts as changed.
  Result<std::optional<Bytes>> fetched =
      source_.fetch_if_changed(ts_name, options_.max_timestamp_bytes, trusted_.timestamp);
  if (fetched.ok() && !fetched->has_value() && !timestamp_) {
    fetched = std::optional<Bytes>(Bytes());  // an empty file: refused as malformed below
  }
  if (!fetched.ok()) {
    status = fetched.error().With("fetching " + ts_name);
  } else if (!fetched->has_value()) {
    if (expired(root_.expires, options_.now)) {
      status = Status::VerificationFailed(
          "root metadata expired on " + format_utc(root_.expires) + " (version " +
          v(root_.version) +
          "): ask the publisher to publish a new root version, or check this device's clock");
    } else {
      status = update_timestamp(trusted_.timestamp);
    }
  } else {
    status = update_root();
    if (status.ok()) status = update_timestamp(std::move(**fetched));
  }
  if (status.ok()) status = update_snapshot();
  if (status.ok()) status = update_targets();
  if (!status.ok()) {
    trusted_.root = std::move(saved_root);
    trusted_.timestamp = std::move(saved_timestamp);
    trusted_.snapshot = std::move(saved_snapshot);
    trusted_.targets = std::move(saved_targets);
    root_ = std::move(saved_root_md);
    timestamp_ = std::move(saved_timestamp_md);
    snapshot_ = std::move(saved_snapshot_md);
    targets_ = std::move(saved_targets_md);
    unchanged_ = false;
    return status;
  }
  drop_superseded_delegations();
  return Status::Ok();
}

// 5.3: walk the root chain one version at a time; each new root must be signed by a
// threshold of the previous root's root keys and of its own.
Status Updater::update_root() {
  const Root original = root_;
  for (int i = 0; i < options_.max_root_rotations; ++i) {
    const std::int64_t next = root_.version + 1;
    const std::string name = v(next) + ".root.json";
    Result<Bytes> bytes = source_.fetch(name, options_.max_root_bytes);
    if (!bytes.ok()) {
      if (bytes.error().IsNotFound()) break;  // the newest root is the one we have
      return bytes.error().With("fetching " + name);
    }
    if (bytes->size() > options_.max_root_bytes) {
      return Status::Corruption(name + " is longer than the " + v(options_.max_root_bytes) +
                                "-byte limit for root metadata: try another mirror");
    }
    Result<Json> env = parse_metadata(*bytes, "root");
    if (!env.ok()) return env.error().With(name);
    OUTPOST_RETURN_IF_ERROR(
        verify_threshold(*env, root_.keys, role_keys(root_, "root"),
                         name + " (checked against the root keys of trusted root version " +
                             v(root_.version) + ")"));
    Result<Root> next_root = Root::from_signed(*env->find("signed"));
    if (!next_root.ok()) return next_root.error().With(name);
    OUTPOST_RETURN_IF_ERROR(verify_threshold(*env, next_root->keys, role_keys(*next_root, "root"),
                                             name + " (checked against its own root keys)"));
    if (next_root->version != next) {
      return Status::VerificationFailed(
          name + " holds root version " + v(next_root->version) + ", expected version " + v(next) +
          ": the mirror is broken or replaying old metadata; try another mirror");
    }
    root_ = std::move(next_root).value();
    trusted_.root = std::move(bytes).value();
  }
  if (expired(root_.expires, options_.now)) {
    return Status::VerificationFailed(
        "root metadata expired on " + format_utc(root_.expires) + " (version " + v(root_.version) +
        "): ask the publisher to publish a new root version, or check this device's clock");
  }
  if (root_.version == original.version) return Status::Ok();

  // 5.3.11: after a rotation of the timestamp or snapshot keys, forget the trusted timestamp
  // and snapshot, so that versions fast-forwarded with a compromised key cannot block the
  // real ones forever.
  if (role_keys(original, "timestamp").keyids != role_keys(root_, "timestamp").keyids ||
      role_keys(original, "snapshot").keyids != role_keys(root_, "snapshot").keyids) {
    timestamp_.reset();
    snapshot_.reset();
    trusted_.timestamp.clear();
    trusted_.snapshot.clear();
  }
  // Whatever else is held must still verify under the new root (a threshold may have risen,
  // a key been revoked); what does not is fetched again.
  if (timestamp_ &&
      !parse_verified<Timestamp>(trusted_.timestamp, "timestamp", root_, "timestamp.json").ok()) {
    timestamp_.reset();
    trusted_.timestamp.clear();
  }
  if (snapshot_ &&
      !parse_verified<Snapshot>(trusted_.snapshot, "snapshot", root_, "snapshot.json").ok()) {
    snapshot_.reset();
    trusted_.snapshot.clear();
  }
  if (targets_ &&
      !parse_verified<Targets>(trusted_.targets, "targets", root_, "targets.json").ok()) {
    targets_.reset();
    trusted_.targets.clear();
  }
  return Status::Ok();
}

// 5.4: the timestamp.
Status Updater::update_timestamp(Bytes fetched) {
  const std::string name = "timestamp.json";
  Result<Bytes> bytes(std::move(fetched));
  if (bytes->size() > options_.max_timestamp_bytes) {
    return Status::Corruption(name + " is longer than the " + v(options_.max_timestamp_bytes) +
                              "-byte limit: try another mirror");
  }
  Result<Json> env = parse_metadata(*bytes, "timestamp");
  if (!env.ok()) return env.error().With(name);
  OUTPOST_RETURN_IF_ERROR(verify_threshold(*env, root_.keys, role_keys(root_, "timestamp"), name));
  Result<Timestamp> fresh = Timestamp::from_signed(*env->find("signed"));
  if (!fresh.ok()) return fresh.error().With(name);

  if (timestamp_) {
    if (fresh->version < timestamp_->version) {
      return Status::VerificationFailed(
          name + " version " + v(fresh->version) + " is older than version " +
          v(timestamp_->version) +
          " already trusted (rollback attack or stale mirror): try another mirror");
    }
    if (fresh->version == timestamp_->version) {
      unchanged_ = true;  // 5.4.3.1: keep what is trusted
    } else if (fresh->snapshot.version < timestamp_->snapshot.version) {
      return Status::VerificationFailed(
          name + " version " + v(fresh->version) + " names snapshot.json version " +
          v(fresh->snapshot.version) + ", which is older than version " +
          v(timestamp_->snapshot.version) +
          " already trusted (rollback attack or stale mirror): try another mirror");
    }
  }
  if (!unchanged_) {
    timestamp_ = std::move(fresh).value();
    trusted_.timestamp = std::move(bytes).value();
  }
  if (expired(timestamp_->expires, options_.now) && !options_.accept_expired_timestamp) {
    return Status::VerificationFailed(
        name + " expired on " + format_utc(timestamp_->expires) + " (version " +
        v(timestamp_->version) +
        "): the mirror is stale or replaying old metadata (freeze attack); try another "
        "mirror, or ask the publisher to run 'outpost repo refresh'");
  }
  return Status::Ok();
}

// 5.5: the snapshot the timestamp names.
Status Updater::update_snapshot() {
  const MetaFile& meta = timestamp_->snapshot;
  const bool have_it = snapshot_ && snapshot_->version == meta.version &&
                       !trusted_.snapshot.empty() && matches_meta(trusted_.snapshot, meta);
  if (!have_it) {
    const std::string name = v(meta.version) + ".snapshot.json";
    OUTPOST_ASSIGN_OR_RETURN(
        Bytes bytes, fetch_meta(name, &meta, options_.max_snapshot_bytes, "timestamp.json"));
    Result<Json> env = parse_metadata(bytes, "snapshot");
    if (!env.ok()) return env.error().With(name);
    OUTPOST_RETURN_IF_ERROR(verify_threshold(*env, root_.keys, role_keys(root_, "snapshot"), name));
    Result<Snapshot> fresh = Snapshot::from_signed(*env->find("signed"));
    if (!fresh.ok()) return fresh.error().With(name);
    if (fresh->version != meta.version) {
      return Status::VerificationFailed(
          name + " holds snapshot version " + v(fresh->version) +
          " but timestamp.json names version " + v(meta.version) +
          " (mix-and-match attack or broken mirror): try another mirror");
    }
    if (snapshot_) {
      if (fresh->version < snapshot_->version) {
        return Status::VerificationFailed(
            "snapshot.json version " + v(fresh->version) + " is older than version " +
            v(snapshot_->version) +
            " already trusted (rollback attack or stale mirror): try another mirror");
      }
      for (const auto& [file, old] : snapshot_->meta) {
        auto it = fresh->meta.find(file);
        if (it == fresh->meta.end()) {
          return Status::VerificationFailed(
              "snapshot.json version " + v(fresh->version) + " no longer lists " + file +
              ", which trusted version " + v(snapshot_->version) +
              " listed (rollback attack or broken mirror): try another mirror");
        }
        if (it->second.version < old.version) {
          return Status::VerificationFailed(
              "snapshot.json version " + v(fresh->version) + " lists " + file + " version " +
              v(it->second.version) + ", which is older than version " + v(old.version) +
              " already trusted (rollback attack or stale mirror): try another mirror");
        }
      }
    }
    snapshot_ = std::move(fresh).value();
    trusted_.snapshot = std::move(bytes);
  }
  if (expired(snapshot_->expires, options_.now)) {
    return Status::VerificationFailed(
        "snapshot.json expired on " + format_utc(snapshot_->expires) + " (version " +
        v(snapshot_->version) +
        "): the mirror is stale or replaying old metadata (freeze attack); try another "
        "mirror, or ask the publisher to publish again");
  }
  return Status::Ok();
}

// 5.6: the top-level targets the snapshot names.
Status Updater::update_targets() {
  auto it = snapshot_->meta.find("targets.json");
  if (it == snapshot_->meta.end()) {
    return Status::Corruption("snapshot.json does not list targets.json: try another mirror");
  }
  const MetaFile& meta = it->second;
  const bool have_it = targets_ && targets_->version == meta.version && !trusted_.targets.empty() &&
                       matches_meta(trusted_.targets, meta);
  if (!have_it) {
    const std::string name = v(meta.version) + ".targets.json";
    OUTPOST_ASSIGN_OR_RETURN(Bytes bytes,
                             fetch_meta(name, &meta, options_.max_targets_bytes, "snapshot.json"));
    Result<Json> env = parse_metadata(bytes, "targets");
    if (!env.ok()) return env.error().With(name);
    OUTPOST_RETURN_IF_ERROR(verify_threshold(*env, root_.keys, role_keys(root_, "targets"), name));
    Result<Targets> fresh = Targets::from_signed(*env->find("signed"));
    if (!fresh.ok()) return fresh.error().With(name);
    if (fresh->version != meta.version) {
      return Status::VerificationFailed(
          name + " holds targets version " + v(fresh->version) +
          " but snapshot.json names version " + v(meta.version) +
          " (mix-and-match attack or broken mirror): try another mirror");
    }
    targets_ = std::move(fresh).value();
    trusted_.targets = std::move(bytes);
  }
  if (expired(targets_->expires, options_.now)) {
    return Status::VerificationFailed("targets.json expired on " + format_utc(targets_->expires) +
                                      " (version " + v(targets_->version) +
                                      "): ask the publisher to publish it again");
  }
  return Status::Ok();
}

// Delegated metadata whose version the new snapshot no longer names is superseded; it is
// fetched again when a lookup needs it.
void Updater::drop_superseded_delegations() {
  for (auto it = delegated_.begin(); it != delegated_.end();) {
    auto m = snapshot_->meta.find(it->first + ".json");
    if (m == snapshot_->meta.end() || m->second.version != it->second.targets.version) {
      trusted_.delegated.erase(it->first);
      it = delegated_.erase(it);
    } else {
      ++it;
    }
  }
}

Result<Bytes> Updater::fetch_meta(const std::string& filename, const MetaFile* meta,
                                  std::uint64_t cap, std::string_view declared_by) {
  std::uint64_t max = cap;
  if (meta != nullptr && meta->length) {
    const auto declared = static_cast<std::uint64_t>(*meta->length);
    if (declared > cap) {
      return Status::Corruption(std::string(declared_by) + " declares " + filename + " as " +
                                v(*meta->length) + " bytes, more than the limit of " + v(cap) +
                                ": refusing to fetch it");
    }
    max = declared;
  }
  Result<Bytes> bytes = source_.fetch(filename, max);
  if (!bytes.ok()) return bytes.error().With("fetching " + filename);
  if (bytes->size() > max) {
    return Status::Corruption(filename + " is longer than the " + v(max) +
                              " bytes declared: try another mirror");
  }
  if (meta != nullptr && meta->length &&
      bytes->size() != static_cast<std::uint64_t>(*meta->length)) {
    return Status::Corruption(filename + " is " + v(static_cast<std::int64_t>(bytes->size())) +
                              " bytes but " + std::string(declared_by) + " declares " +
                              v(*meta->length) + ": truncated or tampered; try another mirror");
  }
  if (meta != nullptr && meta->sha256 && !matches_meta(*bytes, *meta)) {
    return Status::Corruption(filename + " does not match the sha256 " + std::string(declared_by) +
                              " declares: damaged or tampered; try another mirror");
  }
  return bytes;
}

Status Updater::check_ready() const {
  if (!load_status_.ok()) return load_status_;
  if (!timestamp_ || !snapshot_ || !targets_) {
    return Status::FailedPrecondition(
        "no complete trusted metadata for this repository yet: sync it first");
  }
  auto t = snapshot_->meta.find("targets.json");
  if (snapshot_->version != timestamp_->snapshot.version || t == snapshot_->meta.end() ||
      t->second.version != targets_->version) {
    return Status::FailedPrecondition(
        "the trusted metadata is from an interrupted update: sync the repository again");
  }
  if (expired(targets_->expires, options_.now)) {
    return Status::VerificationFailed("targets.json expired on " + format_utc(targets_->expires) +
                                      ": sync the repository to get current metadata");
  }
  return Status::Ok();
}

// 5.6.7.2: a delegated role's metadata, at the version the snapshot names, signed by a
// threshold of the keys its parent delegates to it.
Result<const Targets*> Updater::load_delegated(const DelegatedRole& role,
                                               const Delegations& parent) {
  const std::string file = role.name + ".json";
  auto m = snapshot_->meta.find(file);
  if (m == snapshot_->meta.end()) {
    // A role delegated but never published (`repo delegate` before the publisher's first
    // release) has no metadata yet, so the snapshot cannot list it: it signs no target. Only
    // a role this node already trusts a version of and the snapshot now leaves out is a
    // rollback (update_snapshot() refuses that against the trusted snapshot; this catches
    // held role metadata the snapshot never listed).
    if (delegated_.count(role.name) != 0 || trusted_.delegated.count(role.name) != 0) {
      return Status::VerificationFailed(
          "snapshot.json version " + v(snapshot_->version) + " does not list " + file +
          ", a delegated role this node already trusts a version of (rollback attack or broken "
          "mirror): try another mirror");
    }
    return nullptr;
  }
  const MetaFile& meta = m->second;
  const std::string fp = fingerprint(role, parent);
  const RoleKeys keys{role.keyids, role.threshold};

  const Targets* loaded = nullptr;
  auto held = delegated_.find(role.name);
  if (held != delegated_.end() && held->second.targets.version == meta.version) {
    auto bytes = trusted_.delegated.find(role.name);
    if (held->second.verified_by == fp) {
      loaded = &held->second.targets;
    } else if (bytes != trusted_.delegated.end() && matches_meta(bytes->second, meta)) {
      Result<Json> env = parse_metadata(bytes->second, "targets");
      if (env.ok() && verify_threshold(*env, parent.keys, keys, file).ok()) {
        held->second.verified_by = fp;
        loaded = &held->second.targets;
      }
    }
  }
  if (loaded == nullptr) {
    const std::string name = v(meta.version) + "." + file;
    OUTPOST_ASSIGN_OR_RETURN(Bytes bytes,
                             fetch_meta(name, &meta, options_.max_targets_bytes, "snapshot.json"));
    Result<Json> env = parse_metadata(bytes, "targets");
    if (!env.ok()) return env.error().With(name);
    OUTPOST_RETURN_IF_ERROR(verify_threshold(*env, parent.keys, keys, name));
    Result<Targets> fresh = Targets::from_signed(*env->find("signed"));
    if (!fresh.ok()) return fresh.error().With(name);
    if (fresh->version != meta.version) {
      return Status::VerificationFailed(
          name + " holds version " + v(fresh->version) + " but snapshot.json names version " +
          v(meta.version) + " (mix-and-match attack or broken mirror): try another mirror");
    }
    LoadedRole& slot = delegated_[role.name];
    slot = LoadedRole{std::move(fresh).value(), fp};
    trusted_.delegated[role.name] = std::move(bytes);
    loaded = &slot.targets;
  }
  if (expired(loaded->expires, options_.now)) {
    return Status::VerificationFailed(file + " expired on " + format_utc(loaded->expires) +
                                      " (version " + v(loaded->version) +
                                      "): ask the publisher to publish it again");
  }
  return loaded;
}

Result<TargetFile> Updater::find_target(const std::string& path) {
  OUTPOST_RETURN_IF_ERROR(check_ready());
  if (auto it = targets_->targets.find(path); it != targets_->targets.end()) return it->second;

  // Pre-order depth-first search over the delegations that match the path, in priority
  // order. Parents stay put in targets_ / delegated_ while their children are searched.
  struct Pending {
    const DelegatedRole* role;
    const Targets* parent;
  };
  std::vector<Pending> stack;
  auto push_children = [&](const Targets& t) {
    if (!t.delegations) return;
    std::vector<Pending> children;
    for (const DelegatedRole& r : t.delegations->roles) {
      if (!r.matches(path)) continue;
      children.push_back({&r, &t});
      if (r.terminating) {
        stack.clear();  // nothing after a terminating role may answer for this path
        break;
      }
    }
    stack.insert(stack.end(), children.rbegin(), children.rend());
  };
  push_children(*targets_);

  std::set<std::string> visited{"targets"};
  int count = 0;
  while (!stack.empty()) {
    Pending next = stack.back();
    stack.pop_back();
    if (!visited.insert(next.role->name).second) continue;
    if (count >= options_.max_delegations) {
      return Status::NotFound("target '" + path + "' not found within " +
                              v(options_.max_delegations) +
                              " delegated roles (the search stops there): the repository's "
                              "delegations are too deep or form a cycle");
    }
    ++count;
    OUTPOST_ASSIGN_OR_RETURN(const Targets* t,
                             load_delegated(*next.role, *next.parent->delegations));
    if (t == nullptr) continue;  // not published yet: lists nothing, delegates nothing
    if (auto it = t->targets.find(path); it != t->targets.end()) return it->second;
    push_children(*t);
  }
  return Status::NotFound("target '" + path +
                          "' is not listed by any role trusted for it: it is not published, "
                          "or it is signed by a key that was not delegated this name");
}

Result<std::map<std::string, TargetFile>> Updater::all_targets() {
  OUTPOST_RETURN_IF_ERROR(check_ready());
  // Load every reachable role, then ask find_target for each path any of them lists, so a
  // path is attributed to exactly the role a lookup would trust for it.
  std::set<std::string> paths;
  for (const auto& [p, f] : targets_->targets) paths.insert(p);
  struct Pending {
    const DelegatedRole* role;
    const Targets* parent;
  };
  std::vector<Pending> stack;
  auto push_children = [&stack](const Targets& t) {
    if (!t.delegations) return;
    for (auto r = t.delegations->roles.rbegin(); r != t.delegations->roles.rend(); ++r) {
      stack.push_back({&*r, &t});
    }
  };
  push_children(*targets_);
  std::set<std::string> visited{"targets"};
  while (!stack.empty()) {
    Pending next = stack.back();
    stack.pop_back();
    if (!visited.insert(next.role->name).second) continue;
    OUTPOST_ASSIGN_OR_RETURN(const Targets* t,
                             load_delegated(*next.role, *next.parent->delegations));
    if (t == nullptr) continue;  // not published yet
    for (const auto& [p, f] : t->targets) paths.insert(p);
    push_children(*t);
  }
  std::map<std::string, TargetFile> out;
  for (const std::string& p : paths) {
    Result<TargetFile> f = find_target(p);
    if (f.ok()) {
      out.emplace(p, std::move(f).value());
    } else if (!f.error().IsNotFound()) {
      return f.error();
    }
  }
  return out;
}

}  // namespace outpost::crypto::tuf
