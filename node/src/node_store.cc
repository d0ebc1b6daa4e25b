#include <algorithm>
#include <cstdio>
#include <map>

#include "node_internal.h"
#include "outpost/node/chunk_store.h"
#include "outpost/node/store_files.h"
#include "outpost/packaging/content.h"

namespace outpost::node::detail {

using packaging::ChunkIndex;
using packaging::Manifest;
using storage::Table;

namespace {

constexpr std::string_view kPrevious = "previous/";

// The roles of one set under `at` ("" for the current set, kPrevious for the one before).
Status load_roles(const storage::ReadTxn& txn, const std::string& repo, std::string_view at,
                  tuf::TrustedMetadata& t) {
  auto get = [&](std::string_view role, Bytes& out) -> Status {
    OUTPOST_ASSIGN_OR_RETURN(
        auto v, txn.get(Table::kMetadata,
                        view(records::metadata_key(repo, std::string(at) + std::string(role)))));
    if (v) out = std::move(*v);
    return Status::Ok();
  };
  OUTPOST_RETURN_IF_ERROR(get("snapshot", t.snapshot));
  OUTPOST_RETURN_IF_ERROR(get("targets", t.targets));
  Bytes prefix = records::metadata_key(repo, std::string(at) + "delegated/");
  return txn.scan(Table::kMetadata, view(prefix), [&](ByteView k, ByteView v) {
    std::string name(as_chars(k.subspan(prefix.size())));
    t.delegated[name] = Bytes(v.begin(), v.end());
    return true;
  });
}

// Deletes every metadata record of `repo` under `at`.
Status erase_roles(storage::WriteTxn& txn, const std::string& repo, std::string_view at) {
  Bytes prefix = records::metadata_key(repo, at);
  return txn.erase_if(Table::kMetadata, view(prefix), [](ByteView, ByteView) { return true; })
      .status();
}

// Before a new snapshot replaces the held one: the held set moves to "previous/". Only the
// snapshot is read when it is unchanged (every refresh that brings a new timestamp only).
Status keep_previous(storage::WriteTxn& txn, const std::string& repo,
                     const tuf::TrustedMetadata& next) {
  OUTPOST_ASSIGN_OR_RETURN(Bytes current, load_role(txn, repo, "snapshot"));
  if (current.empty() || current == next.snapshot) return Status::Ok();
  tuf::TrustedMetadata held;
  OUTPOST_RETURN_IF_ERROR(load_roles(txn, repo, "", held));
  OUTPOST_RETURN_IF_ERROR(erase_roles(txn, repo, kPrevious));
  auto put = [&](const std::string& role, const Bytes& b) -> Status {
    if (b.empty()) return Status::Ok();
    return txn.put(Table::kMetadata,
                   view(records::metadata_key(repo, std::string(kPrevious) + role)), view(b));
  };
  OUTPOST_RETURN_IF_ERROR(put("snapshot", held.snapshot));
  OUTPOST_RETURN_IF_ERROR(put("targets", held.targets));
  for (const auto& [name, bytes] : held.delegated)
    OUTPOST_RETURN_IF_ERROR(put(role_key(name), bytes));
  return Status::Ok();
}

}  // namespace

Result<Bytes> load_role(const storage::ReadTxn& txn, const std::string& repo,
                        std::string_view role) {
  OUTPOST_ASSIGN_OR_RETURN(auto v, txn.get(Table::kMetadata, records::metadata_key(repo, role)));
  return v ? std::move(*v) : Bytes{};
}

Result<tuf::TrustedMetadata> load_trusted(const storage::ReadTxn& txn, const std::string& repo) {
  tuf::TrustedMetadata t;
  OUTPOST_ASSIGN_OR_RETURN(t.root, load_role(txn, repo, "root"));
  if (t.root.empty()) {
    return Status::FailedPrecondition("no trusted root for repository " + repo +
                                      ": subscribe to it again");
  }
  OUTPOST_ASSIGN_OR_RETURN(t.timestamp, load_role(txn, repo, "timestamp"));
  OUTPOST_RETURN_IF_ERROR(load_roles(txn, repo, "", t));
  return t;
}

Result<tuf::TrustedMetadata> load_previous(const storage::ReadTxn& txn, const std::string& repo) {
  tuf::TrustedMetadata t;
  OUTPOST_RETURN_IF_ERROR(load_roles(txn, repo, kPrevious, t));
  return t;
}

Status save_trusted(storage::WriteTxn& txn, const std::string& repo,
                    const tuf::TrustedMetadata& t) {
  auto put = [&](std::string_view role, const Bytes& b) -> Status {
    Bytes key = records::metadata_key(repo, role);
    if (b.empty()) return txn.del(Table::kMetadata, view(key));
    return txn.put(Table::kMetadata, view(key), view(b));
  };
  OUTPOST_RETURN_IF_ERROR(keep_previous(txn, repo, t));
  OUTPOST_RETURN_IF_ERROR(put("root", t.root));
  if (!t.root.empty()) OUTPOST_RETURN_IF_ERROR(save_root_history(txn, repo, t.root));
  OUTPOST_RETURN_IF_ERROR(put("timestamp", t.timestamp));
  OUTPOST_RETURN_IF_ERROR(put("snapshot", t.snapshot));
  OUTPOST_RETURN_IF_ERROR(put("targets", t.targets));
  // Replace the delegated set as a whole: roles the new snapshot dropped must go.
  OUTPOST_RETURN_IF_ERROR(erase_roles(txn, repo, "delegated/"));
  for (const auto& [name, bytes] : t.delegated) OUTPOST_RETURN_IF_ERROR(put(role_key(name), bytes));
  return Status::Ok();
}

namespace {

std::int64_t root_version_of(const Bytes& root) {
  auto env = tuf::parse_metadata(view(root), "root");
  if (!env.ok()) return 0;
  const Json* s = env->find("signed");
  if (s == nullptr) return 0;
  auto v = s->get_int("version");
  return v.ok() ? *v : 0;
}

}  // namespace

Status save_root_history(storage::WriteTxn& txn, const std::string& repo, const Bytes& root) {
  const std::int64_t version = root_version_of(root);
  if (version <= 0) return Status::Ok();
  char digits[24];
  std::snprintf(digits, sizeof digits, "%020lld", static_cast<long long>(version));
  Bytes key = records::metadata_key(repo, std::string(kRootHistoryPrefix) + digits);
  OUTPOST_ASSIGN_OR_RETURN(auto held, txn.get(Table::kMetadata, view(key)));
  if (held) return Status::Ok();
  return txn.put(Table::kMetadata, view(key), view(root));
}

Result<std::map<std::int64_t, Bytes>> load_root_history(const storage::ReadTxn& txn,
                                                        const std::string& repo) {
  std::map<std::int64_t, Bytes> out;
  Bytes prefix = records::metadata_key(repo, kRootHistoryPrefix);
  OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kMetadata, view(prefix), [&](ByteView, ByteView v) {
    Bytes b(v.begin(), v.end());
    const std::int64_t version = root_version_of(b);
    if (version > 0) out.emplace(version, std::move(b));
    return true;
  }));
  OUTPOST_ASSIGN_OR_RETURN(auto current,
                           txn.get(Table::kMetadata, records::metadata_key(repo, "root")));
  if (current) {
    const std::int64_t version = root_version_of(*current);
    if (version > 0) out[version] = std::move(*current);
  }
  return out;
}

Result<std::int64_t> time_floor(const storage::ReadTxn& txn) {
  OUTPOST_ASSIGN_OR_RETURN(auto v, txn.get(Table::kTrust, as_bytes(records::kTimeFloorKey)));
  return static_cast<std::int64_t>(records::get_u64(v).value_or(0));
}

// The time a node uses for expiry: never earlier than a time it has already seen (a
// Raspberry Pi has no real-time clock and may boot in 1970).
Status raise_time_floor(storage::WriteTxn& txn, std::int64_t now) {
  OUTPOST_ASSIGN_OR_RETURN(std::int64_t floor, time_floor(txn));
  if (now <= floor) return Status::Ok();
  return txn.put(Table::kTrust, as_bytes(records::kTimeFloorKey),
                 view(records::u64_value(static_cast<std::uint64_t>(now))));
}

Result<std::optional<records::BundleRecord>> get_bundle(const storage::ReadTxn& txn,
                                                        const std::string& name) {
  OUTPOST_ASSIGN_OR_RETURN(auto v, txn.get(Table::kBundles, as_bytes(name)));
  if (!v) return std::optional<records::BundleRecord>();
  OUTPOST_ASSIGN_OR_RETURN(auto r, records::parse_bundle(view(*v)));
  return std::optional<records::BundleRecord>(std::move(r));
}

Result<HeldVersion> load_version(const storage::ReadTxn& txn, const std::string& bundle,
                                 std::uint64_t version) {
  Bytes key = storage::version_key(bundle, version);
  OUTPOST_ASSIGN_OR_RETURN(auto m, get_file(txn, Table::kManifests, view(key)));
  OUTPOST_ASSIGN_OR_RETURN(auto i, get_file(txn, Table::kIndexes, view(key)));
  std::string what = bundle + " version " + std::to_string(version);
  if (!m || !i) {
    return Status::Corruption("the store lacks the manifest or index of " + what +
                              ": run 'outpost verify'");
  }
  auto manifest = Manifest::parse(view(*m));
  if (!manifest.ok()) return manifest.error().With("stored manifest of " + what);
  auto index = ChunkIndex::parse(view(*i), manifest->chunking.max);
  if (!index.ok()) return index.error().With("stored chunk index of " + what);
  OUTPOST_RETURN_IF_ERROR(index->check_against(*manifest).With("stored chunk index of " + what));
  return HeldVersion{std::move(*manifest), std::move(*index)};
}

Result<Bytes> read_chunk(const storage::ReadTxn& txn, packaging::Decompressor& dec,
                         const packaging::ChunkEntry& entry) {
  OUTPOST_ASSIGN_OR_RETURN(auto v, chunks::get(txn, {entry.id.data(), entry.id.size()}));
  std::string name = "chunk " + crypto::hex(entry.id);
  if (!v) {
    return Status::NotFound(name + " is missing from the store: run 'outpost sync' to fetch it");
  }
  OUTPOST_ASSIGN_OR_RETURN(auto stored, records::parse_chunk_value(view(*v)));
  if (stored.raw_length != entry.raw_length) {
    return Status::Corruption(name + " has the wrong length in the store: run 'outpost verify'");
  }
  auto raw = dec.decompress(stored.frame, entry.raw_length, name);
  if (!raw.ok()) return raw.error().With("run 'outpost verify --repair' then 'outpost sync'");
  if (!crypto::digest_equal(crypto::blake2b(view(*raw)), entry.id)) {
    return Status::Corruption(name +
                              " is damaged in the store: run 'outpost verify --repair' "
                              "then 'outpost sync' to fetch it again");
  }
  return raw;
}

Result<Bytes> content_stream(const storage::ReadTxn& txn, const HeldVersion& held,
                             packaging::Decompressor& dec) {
  Bytes out = to_bytes(packaging::kContentStreamMagic);
  std::size_t next = 0;
  for (std::size_t f = 0; f < held.manifest.files.size(); ++f) {
    Bytes header = packaging::content_file_header(held.manifest.files[f]);
    out.insert(out.end(), header.begin(), header.end());
    for (std::uint32_t c = 0; c < held.index.file_chunks[f]; ++c, ++next) {
      OUTPOST_ASSIGN_OR_RETURN(Bytes raw, read_chunk(txn, dec, held.index.chunks[next]));
      out.insert(out.end(), raw.begin(), raw.end());
    }
  }
  return out;
}

// Streams the content of a held version through fn(file index, bytes) in table order.
Status stream_content(storage::Store& store, const storage::ReadTxn& txn, const HeldVersion& held,
                      const std::function<Status(std::size_t, ByteView)>& fn) {
  packaging::Decompressor dec;
  PageBudget pages(store);
  std::size_t next = 0;
  for (std::size_t f = 0; f < held.index.file_chunks.size(); ++f) {
    for (std::uint32_t c = 0; c < held.index.file_chunks[f]; ++c, ++next) {
      OUTPOST_ASSIGN_OR_RETURN(Bytes raw, read_chunk(txn, dec, held.index.chunks[next]));
      pages.add(raw.size());
      OUTPOST_RETURN_IF_ERROR(fn(f, view(raw)));
    }
  }
  return Status::Ok();
}

Result<crypto::Digest> compute_root(storage::Store& store, const storage::ReadTxn& txn,
                                    const HeldVersion& held) {
  packaging::ContentHasher hasher;
  std::size_t current = SIZE_MAX;
  Status s = stream_content(store, txn, held, [&](std::size_t f, ByteView bytes) -> Status {
    while (current != f) {
      current = current == SIZE_MAX ? 0 : current + 1;
      const auto& file = held.manifest.files[current];
      OUTPOST_RETURN_IF_ERROR(hasher.add_file(file.path, file.mode, file.size));
    }
    return hasher.update(bytes);
  });
  OUTPOST_RETURN_IF_ERROR(s);
  // Files after the last one with chunks (empty files) still count.
  std::size_t start = current == SIZE_MAX ? 0 : current + 1;
  for (std::size_t f = start; f < held.manifest.files.size(); ++f) {
    const auto& file = held.manifest.files[f];
    OUTPOST_RETURN_IF_ERROR(hasher.add_file(file.path, file.mode, file.size));
  }
  return hasher.finish();
}

// Rechecks the signatures of metadata the node already trusts (for `verify`): each role
// against the keys its parent lists. Expiry is not checked here: expired metadata stays
// readable (DESIGN.md, freeze versus months offline).
Status verify_trusted(const tuf::TrustedMetadata& t) {
  auto check = [](const Bytes& bytes, std::string_view type, const std::string& role,
                  const std::map<std::string, crypto::PublicKey>& keys,
                  const tuf::RoleKeys& role_keys) -> Result<Json> {
    auto env = tuf::parse_metadata({bytes.data(), bytes.size()}, type);
    if (!env.ok()) return env.error().With("trusted " + role + " metadata");
    OUTPOST_RETURN_IF_ERROR(tuf::verify_threshold(*env, keys, role_keys, role));
    return env;
  };
  auto root_env = tuf::parse_metadata({t.root.data(), t.root.size()}, "root");
  if (!root_env.ok()) return root_env.error().With("trusted root metadata");
  OUTPOST_ASSIGN_OR_RETURN(tuf::Root root, tuf::Root::from_signed(*root_env->find("signed")));
  for (const char* role : {"root", "timestamp", "snapshot", "targets"}) {
    if (!root.roles.count(role)) return Status::Corruption(std::string("root lacks role ") + role);
  }
  OUTPOST_RETURN_IF_ERROR(tuf::verify_threshold(*root_env, root.keys, root.roles["root"], "root"));
  if (!t.timestamp.empty()) {
    OUTPOST_RETURN_IF_ERROR(
        check(t.timestamp, "timestamp", "timestamp", root.keys, root.roles["timestamp"]).status());
  }
  if (!t.snapshot.empty()) {
    OUTPOST_RETURN_IF_ERROR(
        check(t.snapshot, "snapshot", "snapshot", root.keys, root.roles["snapshot"]).status());
  }
  if (t.targets.empty()) return Status::Ok();
  OUTPOST_ASSIGN_OR_RETURN(
      Json targets_env, check(t.targets, "targets", "targets", root.keys, root.roles["targets"]));
  OUTPOST_ASSIGN_OR_RETURN(tuf::Targets targets,
                           tuf::Targets::from_signed(*targets_env.find("signed")));
  for (const auto& [name, bytes] : t.delegated) {
    if (!targets.delegations)
      return Status::Corruption("delegated role " + name + " is not delegated");
    const tuf::DelegatedRole* role = nullptr;
    for (const auto& r : targets.delegations->roles) {
      if (r.name == name) role = &r;
    }
    if (role == nullptr) continue;  // delegated by another delegated role: not nested here
    tuf::RoleKeys keys{role->keyids, role->threshold};
    OUTPOST_RETURN_IF_ERROR(
        check(bytes, "targets", name, targets.delegations->keys, keys).status());
  }
  return Status::Ok();
}

std::string repo_id_for(const tuf::Root& root) {
  auto it = root.roles.find("root");
  std::string ids;
  if (it != root.roles.end()) {
    for (const auto& k : it->second.keyids) ids += k;
  }
  return crypto::hex(crypto::sha256(as_bytes(ids))).substr(0, 16);
}

}  // namespace outpost::node::detail
