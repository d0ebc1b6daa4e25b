// Test helpers for the TUF tests: an in-memory MetadataSource and a small repository
// builder that signs metadata the way a publisher would, with deterministic keys.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/crypto/hash.h"
#include "outpost/crypto/keys.h"
#include "outpost/crypto/tuf.h"

namespace outpost::crypto::testing {

// libsodium must be initialised before anything else runs.
inline const bool kSodiumReady = crypto::init();

inline constexpr std::int64_t kDay = 24 * 60 * 60;
// 2026-11-28T12:00:00Z: "now" in every TUF test.
inline constexpr std::int64_t kNow = 1795867200;

// A deterministic key: the seed is 32 copies of `n`.
inline SecretKey test_key(std::uint8_t n) {
  std::vector<std::uint8_t> seed(32, n);
  return std::move(SecretKey::from_seed(seed)).value();
}

// A mirror held in memory; records what was asked for.
class MemorySource : public tuf::MetadataSource {
 public:
  Result<Bytes> fetch(const std::string& filename, std::uint64_t max_length) override {
    fetched.push_back(filename);
    auto it = files.find(filename);
    if (it == files.end()) return Status::NotFound(filename + " is not on this mirror");
    if (it->second.size() > max_length) {
      return Status::Corruption(filename + " is longer than declared");
    }
    return it->second;
  }

  std::map<std::string, Bytes> files;
  std::vector<std::string> fetched;
};

// A repository as a publisher holds it: the current metadata of every role, the keys, and
// the files a mirror serves. Root: 2 of 3 keys. Targets delegates "un/ga/..." to role un.ga
// (publisher key A) and "itu/ict/..." to role itu.ict (publisher key B).
class TestRepo {
 public:
  TestRepo()
      : root_keys{{test_key(1), test_key(2), test_key(3)}},
        targets_key(test_key(10)),
        snapshot_key(test_key(11)),
        timestamp_key(test_key(12)),
        publisher_a(test_key(20)),
        publisher_b(test_key(21)) {
    root.version = 1;
    root.expires = kNow + 365 * kDay;
    for (const SecretKey& k : root_keys) add_root_key("root", k.public_key());
    root.roles["root"].threshold = 2;
    add_root_key("targets", targets_key.public_key());
    add_root_key("snapshot", snapshot_key.public_key());
    add_root_key("timestamp", timestamp_key.public_key());
    root_signers = {&root_keys[0], &root_keys[1], &root_keys[2]};

    targets.version = 1;
    targets.expires = kNow + 365 * kDay;
    targets.delegations = tuf::Delegations{};
    delegate("un.ga", publisher_a, {"un/ga/*/*"});
    delegate("itu.ict", publisher_b, {"itu/ict/*/*"});

    add_target("un.ga", "un/ga/A-RES-75-202/manifest.json", "resolution 75/202 v1");
    add_target("itu.ict", "itu/ict/mobile-broadband/manifest.json", "indicators v1");

    snapshot.version = 1;
    snapshot.expires = kNow + 30 * kDay;
    timestamp.version = 1;
    timestamp.expires = kNow + 7 * kDay;
    write_root();
    publish();
  }

  void add_root_key(const std::string& role, const PublicKey& key) {
    root.keys[key.keyid()] = key;
    auto& ids = root.roles[role].keyids;
    ids.push_back(key.keyid());
    std::sort(ids.begin(), ids.end());
  }

  void delegate(const std::string& name, const SecretKey& key, std::vector<std::string> paths,
                bool terminating = false) {
    targets.delegations->keys[key.public_key().keyid()] = key.public_key();
    tuf::DelegatedRole r;
    r.name = name;
    r.keyids = {key.public_key().keyid()};
    r.threshold = 1;
    r.terminating = terminating;
    r.paths = std::move(paths);
    targets.delegations->roles.push_back(r);
    roles[name].version = 1;
    roles[name].expires = kNow + 365 * kDay;
    role_signers[name] = {&key};
  }

  static tuf::TargetFile target_for(const std::string& content) {
    tuf::TargetFile f;
    f.length = static_cast<std::int64_t>(content.size());
    f.sha256 = hex(sha256(as_bytes(content)));
    Json custom = Json::object();
    Json outpost = Json::object();
    outpost.set("version", 1);
    outpost.set("kind", "resolution");
    custom.set("outpost", outpost);
    f.custom = custom;
    return f;
  }

  void add_target(const std::string& role, const std::string& path, const std::string& content) {
    roles[role].targets[path] = target_for(content);
  }

  Bytes sign(const Json& signed_part, const std::vector<const SecretKey*>& keys) const {
    return tuf::sign_metadata(signed_part, keys);
  }

  // Writes root.version's file, signed by root_signers (plus extra signers).
  void write_root(const std::vector<const SecretKey*>& extra = {}) {
    std::vector<const SecretKey*> signers = root_signers;
    signers.insert(signers.end(), extra.begin(), extra.end());
    source.files[std::to_string(root.version) + ".root.json"] = sign(root.to_signed(), signers);
    // A new root always comes with a new timestamp (outpost's rotate_root writes one): that is
    // what tells a node, which reads the timestamp first, to walk the root chain.
    if (source.files.count("timestamp.json")) {
      timestamp.version += 1;
      write_timestamp();
    }
  }

  void write_targets() {
    source.files[std::to_string(targets.version) + ".targets.json"] =
        sign(targets.to_signed(), {&targets_key});
  }
  void write_role(const std::string& name) {
    source.files[std::to_string(roles[name].version) + "." + name + ".json"] =
        sign(roles[name].to_signed(), role_signers[name]);
  }
  // Snapshot meta from the current versions (no lengths or hashes, as outpost publishes).
  void write_snapshot() {
    snapshot.meta.clear();
    snapshot.meta["targets.json"].version = targets.version;
    for (const auto& [name, t] : roles) snapshot.meta[name + ".json"].version = t.version;
    source.files[snapshot_name()] = sign(snapshot.to_signed(), {&snapshot_key});
  }
  std::string snapshot_name() const { return std::to_string(snapshot.version) + ".snapshot.json"; }
  // Timestamp naming the current snapshot file with its length and sha256.
  void write_timestamp() {
    const Bytes& snap = source.files.at(snapshot_name());
    timestamp.snapshot.version = snapshot.version;
    timestamp.snapshot.length = static_cast<std::int64_t>(snap.size());
    timestamp.snapshot.sha256 = hex(sha256(snap));
    source.files["timestamp.json"] = sign(timestamp.to_signed(), {timestamp_signer});
  }

  // Writes every current file of targets, roles, snapshot and timestamp.
  void publish() {
    write_targets();
    for (const auto& [name, t] : roles) write_role(name);
    write_snapshot();
    write_timestamp();
  }

  // A new release: role `role` gets a new version holding `path`; new snapshot and timestamp.
  void release(const std::string& role, const std::string& path, const std::string& content) {
    roles[role].version += 1;
    add_target(role, path, content);
    snapshot.version += 1;
    timestamp.version += 1;
    publish();
  }

  // Only a new timestamp (what `outpost repo refresh` does).
  void refresh_timestamp() {
    timestamp.version += 1;
    write_timestamp();
  }

  tuf::TrustedMetadata first_contact() const {
    tuf::TrustedMetadata t;
    t.root = source.files.at("1.root.json");
    return t;
  }

  tuf::UpdaterOptions options() const {
    tuf::UpdaterOptions o;
    o.now = kNow;
    return o;
  }

  std::array<SecretKey, 3> root_keys;
  SecretKey targets_key;
  SecretKey snapshot_key;
  SecretKey timestamp_key;
  SecretKey publisher_a;
  SecretKey publisher_b;
  const SecretKey* timestamp_signer = &timestamp_key;

  tuf::Root root;
  tuf::Targets targets;
  std::map<std::string, tuf::Targets> roles;
  tuf::Snapshot snapshot;
  tuf::Timestamp timestamp;
  std::vector<const SecretKey*> root_signers;
  std::map<std::string, std::vector<const SecretKey*>> role_signers;
  MemorySource source;
};

}  // namespace outpost::crypto::testing
