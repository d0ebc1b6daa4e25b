#include "outpost/sync/node.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "node_records.h"
#include "outpost/base/fs.h"
#include "outpost/crypto/hash.h"
#include "outpost/crypto/tuf.h"
#include "outpost/packaging/chunk_index.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/manifest.h"
#include "outpost/storage/store.h"
#include "outpost/sync/source.h"

namespace outpost::sync {

namespace tuf = crypto::tuf;
using packaging::ChunkIndex;
using packaging::Manifest;
using storage::Table;

namespace {

constexpr std::string_view kManifestSuffix = "/manifest.json";
// Chunks are written in batches of about this many stored bytes: few transactions (SD cards
// wear out) and little lost when a link or the power drops mid-sync.
constexpr std::size_t kChunkBatchBytes = 2u << 20;
// ... and of at most this many chunks: every random-key insert faults in a leaf page of the
// map, and the kernel maps up to 64 KB around each fault, so the count bounds resident
// memory as much as the bytes do.
constexpr std::size_t kChunkBatchCount = 192;
// Ranges of a pack closer than this are read as one.
constexpr std::uint64_t kCoalesceGap = 16u << 10;
// Streaming through the store maps its pages into this process (with the kernel's 64 KB
// fault-around per chunk looked up); dropping them every few MB or few hundred chunks keeps
// resident memory flat (64 MB target) however large the store is.
constexpr std::uint64_t kReleaseEvery = 4u << 20;
constexpr std::uint64_t kReleaseEveryChunks = 192;

// Counts bytes read from the store and releases its mapped pages every kReleaseEvery.
class PageBudget {
 public:
  explicit PageBudget(storage::Store& store) : store_(store) {}
  void add(std::uint64_t n) {
    read_ += n;
    if (read_ >= kReleaseEvery || ++chunks_ >= kReleaseEveryChunks) {
      store_.release_memory();
      read_ = 0;
      chunks_ = 0;
    }
  }

 private:
  storage::Store& store_;
  std::uint64_t read_ = 0;
  std::uint64_t chunks_ = 0;
};

ByteView view(const Bytes& b) { return {b.data(), b.size()}; }

// Ends a read transaction early: the store can only grow its map while none is open.
void end(storage::ReadTxn& txn) { storage::ReadTxn gone = std::move(txn); }

std::string role_key(const std::string& delegated_name) { return "delegated/" + delegated_name; }

Result<tuf::TrustedMetadata> load_trusted(const storage::ReadTxn& txn, const std::string& repo) {
  tuf::TrustedMetadata t;
  auto get = [&](std::string_view role, Bytes& out) -> Status {
    OUTPOST_ASSIGN_OR_RETURN(auto v, txn.get(Table::kMetadata, records::metadata_key(repo, role)));
    if (v) out = std::move(*v);
    return Status::Ok();
  };
  OUTPOST_RETURN_IF_ERROR(get("root", t.root));
  if (t.root.empty()) {
    return Status::FailedPrecondition("no trusted root for repository " + repo +
                                      ": subscribe to it again");
  }
  OUTPOST_RETURN_IF_ERROR(get("timestamp", t.timestamp));
  OUTPOST_RETURN_IF_ERROR(get("snapshot", t.snapshot));
  OUTPOST_RETURN_IF_ERROR(get("targets", t.targets));
  Bytes prefix = records::metadata_key(repo, "delegated/");
  OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kMetadata, view(prefix), [&](ByteView k, ByteView v) {
    std::string name(as_chars(k.subspan(prefix.size())));
    t.delegated[name] = Bytes(v.begin(), v.end());
    return true;
  }));
  return t;
}

Status save_trusted(storage::WriteTxn& txn, const std::string& repo,
                    const tuf::TrustedMetadata& t) {
  auto put = [&](std::string_view role, const Bytes& b) -> Status {
    Bytes key = records::metadata_key(repo, role);
    if (b.empty()) return txn.del(Table::kMetadata, view(key));
    return txn.put(Table::kMetadata, view(key), view(b));
  };
  OUTPOST_RETURN_IF_ERROR(put("root", t.root));
  OUTPOST_RETURN_IF_ERROR(put("timestamp", t.timestamp));
  OUTPOST_RETURN_IF_ERROR(put("snapshot", t.snapshot));
  OUTPOST_RETURN_IF_ERROR(put("targets", t.targets));
  // Replace the delegated set as a whole: roles the new snapshot dropped must go.
  Bytes prefix = records::metadata_key(repo, "delegated/");
  std::vector<Bytes> old_keys;
  OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kMetadata, view(prefix), [&](ByteView k, ByteView) {
    old_keys.emplace_back(k.begin(), k.end());
    return true;
  }));
  for (const Bytes& k : old_keys) OUTPOST_RETURN_IF_ERROR(txn.del(Table::kMetadata, view(k)));
  for (const auto& [name, bytes] : t.delegated) OUTPOST_RETURN_IF_ERROR(put(role_key(name), bytes));
  return Status::Ok();
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

struct HeldVersion {
  Manifest manifest;
  ChunkIndex index;
};

Result<HeldVersion> load_version(const storage::ReadTxn& txn, const std::string& bundle,
                                 std::uint64_t version) {
  Bytes key = storage::version_key(bundle, version);
  OUTPOST_ASSIGN_OR_RETURN(auto m, txn.get(Table::kManifests, view(key)));
  OUTPOST_ASSIGN_OR_RETURN(auto i, txn.get(Table::kIndexes, view(key)));
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
  OUTPOST_ASSIGN_OR_RETURN(auto v, txn.get(Table::kChunks, {entry.id.data(), entry.id.size()}));
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

// One sync of one repository from one source.
class RepoSync {
 public:
  RepoSync(storage::Store& store, Source& source, std::string repo, std::int64_t now)
      : store_(store), source_(source), repo_(std::move(repo)), now_(now) {}

  Result<SyncReport> run() {
    SyncReport report;
    report.repo = repo_;
    report.location = source_.describe();
    OUTPOST_ASSIGN_OR_RETURN(auto rtxn, store_.read());
    OUTPOST_ASSIGN_OR_RETURN(tuf::TrustedMetadata trusted, load_trusted(rtxn, repo_));
    OUTPOST_ASSIGN_OR_RETURN(std::int64_t floor, time_floor(rtxn));
    end(rtxn);
    tuf::UpdaterOptions options;
    options.now = std::max(now_, floor);
    tuf::Updater updater(trusted, source_, options);
    OUTPOST_RETURN_IF_ERROR(updater.refresh());
    OUTPOST_ASSIGN_OR_RETURN(auto targets, updater.all_targets());

    // Trust moves forward first: the metadata is verified whatever happens to the content.
    OUTPOST_RETURN_IF_ERROR(store_.update([&](storage::WriteTxn& txn) -> Status {
      OUTPOST_RETURN_IF_ERROR(save_trusted(txn, repo_, updater.trusted()));
      return raise_time_floor(txn, options.now);
    }));

    for (const auto& [path, target] : targets) {
      if (path.size() <= kManifestSuffix.size() ||
          path.compare(path.size() - kManifestSuffix.size(), kManifestSuffix.size(),
                       kManifestSuffix) != 0) {
        continue;  // not a bundle manifest; other target kinds are not ours to fetch
      }
      std::string bundle = path.substr(0, path.size() - kManifestSuffix.size());
      auto item = sync_bundle(bundle, path, target);
      if (!item.ok()) return item.error().With(bundle);
      if (item->to != 0) report.updated.push_back(*item);
    }
    report.unchanged = updater.unchanged() && report.updated.empty();
    report.bytes_read = source_.bytes_read();
    return report;
  }

 private:
  Result<SyncItem> sync_bundle(const std::string& bundle, const std::string& target_path,
                               const tuf::TargetFile& target) {
    SyncItem item;
    item.bundle = bundle;
    OUTPOST_RETURN_IF_ERROR(packaging::validate_bundle_name(bundle));
    OUTPOST_ASSIGN_OR_RETURN(auto rtxn, store_.read());
    OUTPOST_ASSIGN_OR_RETURN(auto record, get_bundle(rtxn, bundle));
    OUTPOST_ASSIGN_OR_RETURN(auto accepted_v,
                             rtxn.get(Table::kTrust, view(records::accepted_version_key(bundle))));
    std::uint64_t accepted = records::get_u64(accepted_v).value_or(0);

    std::optional<std::uint64_t> declared;
    if (const Json* o = target.custom.find("outpost"); o != nullptr) {
      if (const Json* v = o->find("version"); v != nullptr && v->is_int() && v->as_int() > 0) {
        declared = static_cast<std::uint64_t>(v->as_int());
      }
    }
    if (declared && *declared < accepted) {
      return Status::VerificationFailed(
          "the repository offers version " + std::to_string(*declared) + ", older than version " +
          std::to_string(accepted) +
          " already accepted (rollback): refusing it; try another mirror");
    }
    if (record && declared && *declared == record->current) {
      // Already current: make sure nothing it needs went missing (a damaged chunk dropped by
      // verify --repair is fetched again here), then confirm it.
      OUTPOST_ASSIGN_OR_RETURN(HeldVersion held, load_version(rtxn, bundle, record->current));
      OUTPOST_ASSIGN_OR_RETURN(auto missing, missing_chunks(rtxn, held.index));
      end(rtxn);
      if (!missing.empty()) {
        OUTPOST_RETURN_IF_ERROR(fetch_chunks(held.index, missing));
        item.chunks_fetched = missing.size();
      }
      return confirm(bundle);
    }

    // The manifest: length and SHA-256 come from signed targets metadata.
    auto dir = target_path.substr(0, target_path.rfind('/') + 1);
    std::string file = "targets/" + dir + target.sha256 + ".manifest.json";
    auto manifest_bytes = source_.read_file(file, static_cast<std::uint64_t>(target.length));
    if (!manifest_bytes.ok()) return manifest_bytes.error().With("fetching the manifest");
    if (manifest_bytes->size() != static_cast<std::size_t>(target.length) ||
        crypto::hex(crypto::sha256(view(*manifest_bytes))) != target.sha256) {
      return Status::Corruption("the manifest from " + source_.describe() +
                                " does not match its signed length and hash: try another "
                                "mirror");
    }
    auto manifest = Manifest::parse(view(*manifest_bytes));
    if (!manifest.ok()) return manifest.error().With("signed manifest");
    if (manifest->bundle != bundle) {
      return Status::VerificationFailed("the manifest listed as " + target_path +
                                        " describes bundle " + manifest->bundle);
    }
    auto version = static_cast<std::uint64_t>(manifest->version);
    if ((declared && *declared != version) || version < accepted) {
      return Status::VerificationFailed("manifest version " + std::to_string(version) +
                                        " is older than version " + std::to_string(accepted) +
                                        " already accepted, or differs from the version its "
                                        "targets entry declares (rollback): try another mirror");
    }
    if (record && version == record->current) {
      end(rtxn);
      return confirm(bundle);
    }

    // The chunk index, checked against the hash the manifest carries.
    auto index_bytes = source_.read_file(manifest->index.path, manifest->index.length);
    if (!index_bytes.ok()) return index_bytes.error().With("fetching the chunk index");
    if (index_bytes->size() != manifest->index.length ||
        !crypto::digest_equal(crypto::blake2b(view(*index_bytes)), manifest->index.blake2b)) {
      return Status::Corruption("the chunk index " + manifest->index.path + " from " +
                                source_.describe() +
                                " does not match the hash in its signed manifest");
    }
    OUTPOST_ASSIGN_OR_RETURN(ChunkIndex index,
                             ChunkIndex::parse(view(*index_bytes), manifest->chunking.max));
    OUTPOST_RETURN_IF_ERROR(index.check_against(*manifest));

    OUTPOST_ASSIGN_OR_RETURN(auto missing, missing_chunks(rtxn, index));
    end(rtxn);
    std::set<crypto::Digest> unique;
    for (const auto& c : index.chunks) unique.insert(c.id);
    item.chunks_fetched = missing.size();
    item.chunks_held = unique.size() - missing.size();
    OUTPOST_RETURN_IF_ERROR(fetch_chunks(index, missing));

    // Every chunk is in; rebuild the content and check the signed root before it counts.
    HeldVersion held{std::move(*manifest), std::move(index)};
    {
      OUTPOST_ASSIGN_OR_RETURN(auto check_txn, store_.read());
      OUTPOST_ASSIGN_OR_RETURN(crypto::Digest root, compute_root(store_, check_txn, held));
      if (!crypto::digest_equal(root, held.manifest.content_root)) {
        return Status::Corruption("the content rebuilt for version " + std::to_string(version) +
                                  " does not match its signed root hash: not accepted");
      }
    }

    item.from = record ? record->current : 0;
    item.to = version;
    item.bytes = held.manifest.content_size;
    Bytes key = storage::version_key(bundle, version);
    OUTPOST_RETURN_IF_ERROR(store_.update([&](storage::WriteTxn& txn) -> Status {
      OUTPOST_ASSIGN_OR_RETURN(auto rec, get_bundle(txn, bundle));
      records::BundleRecord r = rec.value_or(records::BundleRecord{});
      r.repo = repo_;
      r.current = version;
      if (std::find(r.versions.begin(), r.versions.end(), version) == r.versions.end()) {
        r.versions.push_back(version);
        std::sort(r.versions.begin(), r.versions.end());
      }
      r.confirmed = now_;
      OUTPOST_RETURN_IF_ERROR(txn.put(Table::kManifests, view(key), view(*manifest_bytes)));
      OUTPOST_RETURN_IF_ERROR(txn.put(Table::kIndexes, view(key), view(*index_bytes)));
      OUTPOST_RETURN_IF_ERROR(txn.put(Table::kBundles, as_bytes(bundle), view(records::encode(r))));
      return txn.put(Table::kTrust, view(records::accepted_version_key(bundle)),
                     view(records::u64_value(version)));
    }));
    return item;
  }

  Result<SyncItem> confirm(const std::string& bundle) {
    OUTPOST_RETURN_IF_ERROR(store_.update([&](storage::WriteTxn& txn) -> Status {
      OUTPOST_ASSIGN_OR_RETURN(auto rec, get_bundle(txn, bundle));
      if (!rec) return Status::Ok();
      rec->confirmed = now_;
      return txn.put(Table::kBundles, as_bytes(bundle), view(records::encode(*rec)));
    }));
    SyncItem none;
    none.bundle = bundle;
    return none;
  }

  // Positions in index.chunks of the first occurrence of each chunk the store lacks.
  Result<std::vector<std::size_t>> missing_chunks(const storage::ReadTxn& txn,
                                                  const ChunkIndex& index) {
    std::vector<std::size_t> out;
    std::set<crypto::Digest> seen;
    PageBudget pages(store_);
    for (std::size_t i = 0; i < index.chunks.size(); ++i) {
      const auto& id = index.chunks[i].id;
      if (!seen.insert(id).second) continue;
      pages.add(0);
      OUTPOST_ASSIGN_OR_RETURN(auto v, txn.get(Table::kChunks, {id.data(), id.size()}));
      if (!v) out.push_back(i);
    }
    return out;
  }

  // Reads the missing chunks pack by pack in coalesced ranges, verifies each one against its
  // id, and commits them in batches.
  Status fetch_chunks(const ChunkIndex& index, const std::vector<std::size_t>& missing) {
    std::map<std::uint32_t, std::vector<const packaging::ChunkEntry*>> by_pack;
    for (std::size_t i : missing) by_pack[index.chunks[i].pack].push_back(&index.chunks[i]);
    packaging::Decompressor dec;
    std::vector<std::pair<crypto::Digest, Bytes>> batch;
    std::size_t batch_bytes = 0;
    auto flush = [&]() -> Status {
      if (batch.empty()) return Status::Ok();
      OUTPOST_RETURN_IF_ERROR(store_.update([&](storage::WriteTxn& txn) -> Status {
        for (const auto& [id, value] : batch) {
          OUTPOST_RETURN_IF_ERROR(txn.put(Table::kChunks, {id.data(), id.size()}, view(value)));
        }
        return Status::Ok();
      }));
      batch.clear();
      batch_bytes = 0;
      store_.release_memory();
      return Status::Ok();
    };
    for (auto& [pack, entries] : by_pack) {
      std::sort(entries.begin(), entries.end(),
                [](auto* a, auto* b) { return a->offset < b->offset; });
      std::string pack_path = "packs/" + crypto::hex(index.packs[pack]) + ".pack";
      std::size_t i = 0;
      while (i < entries.size()) {
        // One range covering a run of nearby chunks, bounded to about one batch.
        std::size_t j = i;
        std::uint64_t start = entries[i]->offset;
        std::uint64_t end = start + entries[i]->stored_length;
        while (j + 1 < entries.size() && entries[j + 1]->offset <= end + kCoalesceGap &&
               entries[j + 1]->offset + entries[j + 1]->stored_length - start <= kChunkBatchBytes) {
          ++j;
          end = std::max(end, entries[j]->offset + entries[j]->stored_length);
        }
        auto data = source_.read_ranges(pack_path, {ByteRange{start, end - start}});
        if (!data.ok()) return data.error().With("reading " + pack_path);
        const Bytes& range = data->front();
        for (std::size_t k = i; k <= j; ++k) {
          const auto& e = *entries[k];
          ByteView frame(range.data() + (e.offset - start), e.stored_length);
          std::string name = "chunk " + crypto::hex(e.id) + " from " + pack_path;
          auto raw = dec.decompress(frame, e.raw_length, name);
          if (!raw.ok()) return raw.error();
          if (!crypto::digest_equal(crypto::blake2b(view(*raw)), e.id)) {
            return Status::Corruption(name +
                                      " does not match its hash (damaged or tampered): "
                                      "not stored; try another mirror");
          }
          batch.emplace_back(e.id, records::chunk_value(e.raw_length, frame));
          batch_bytes += frame.size();
          if (batch_bytes >= kChunkBatchBytes || batch.size() >= kChunkBatchCount) {
            OUTPOST_RETURN_IF_ERROR(flush());
          }
        }
        i = j + 1;
      }
    }
    return flush();
  }

  storage::Store& store_;
  Source& source_;
  std::string repo_;
  std::int64_t now_;
};

}  // namespace

Node::~Node() = default;

Result<std::unique_ptr<Node>> Node::open(const std::string& dir, bool create, Clock& clock) {
  storage::StoreOptions options;
  options.dir = dir;
  options.create = create;
  OUTPOST_ASSIGN_OR_RETURN(auto store, storage::Store::open(options));
  std::unique_ptr<Node> node(new Node());
  node->store_ = std::move(store);
  node->clock_ = &clock;
  return node;
}

Result<Subscription> Node::subscribe(const std::string& location, const SubscribeOptions& options) {
  OUTPOST_ASSIGN_OR_RETURN(auto source, open_source(location));
  Bytes root_bytes;
  if (!options.root_json_path.empty()) {
    OUTPOST_ASSIGN_OR_RETURN(root_bytes, real_fs().read_file(options.root_json_path, 512 * 1024));
  } else if (options.root_pubkey) {
    auto first = source->fetch("1.root.json", 512 * 1024);
    if (!first.ok()) return first.error().With("reading the first root of " + location);
    root_bytes = std::move(*first);
  } else {
    return Status::InvalidArgument("subscribe needs --root-pubkey HEX or --root ROOT_JSON");
  }
  auto envelope = tuf::parse_metadata(view(root_bytes), "root");
  if (!envelope.ok()) return envelope.error().With("root metadata");
  const Json* signed_part = envelope->find("signed");
  OUTPOST_ASSIGN_OR_RETURN(tuf::Root root, tuf::Root::from_signed(*signed_part));
  auto role = root.roles.find("root");
  if (role == root.roles.end()) return Status::Corruption("root metadata has no root role");
  OUTPOST_RETURN_IF_ERROR(tuf::verify_threshold(*envelope, root.keys, role->second, "root"));
  if (options.root_pubkey) {
    // The pinned key must be one of the root keys and must have signed this root.
    std::string keyid = options.root_pubkey->keyid();
    for (const auto& [id, key] : root.keys) {
      if (key == *options.root_pubkey) keyid = id;  // ids hash the key object as written
    }
    bool listed = std::find(role->second.keyids.begin(), role->second.keyids.end(), keyid) !=
                  role->second.keyids.end();
    tuf::RoleKeys only{{keyid}, 1};
    if (!listed || !tuf::verify_threshold(*envelope, root.keys, only, "root").ok()) {
      return Status::VerificationFailed(
          "the root of " + location + " is not signed by the root key " +
          options.root_pubkey->hex() + ": check the key with the publisher");
    }
  }
  std::string repo = repo_id_for(root);
  tuf::TrustedMetadata trusted;
  trusted.root = root_bytes;
  // Walk the whole chain now, so a subscription is only recorded for a repository that
  // verifies; sync does it again and fetches content.
  OUTPOST_ASSIGN_OR_RETURN(auto rtxn, store_->read());
  OUTPOST_ASSIGN_OR_RETURN(std::int64_t floor, time_floor(rtxn));
  OUTPOST_ASSIGN_OR_RETURN(auto existing, rtxn.get(Table::kSubscriptions, as_bytes(repo)));
  end(rtxn);
  std::int64_t now = std::max(clock_->now(), floor);
  tuf::UpdaterOptions uopt;
  uopt.now = now;
  tuf::Updater updater(trusted, *source, uopt);
  OUTPOST_RETURN_IF_ERROR(updater.refresh().With("checking " + location));

  Subscription sub{repo, location, now, 0};
  if (existing) {
    auto j = parse_json(as_chars(view(*existing)));
    if (j.ok()) {
      sub.added = j->get_int("added").ok() ? *j->get_int("added") : now;
      sub.last_sync = j->get_int("last_sync").ok() ? *j->get_int("last_sync") : 0;
    }
  }
  OUTPOST_RETURN_IF_ERROR(store_->update([&](storage::WriteTxn& txn) -> Status {
    if (!existing) {
      // A repository seen for the first time: trust starts at the verified chain.
      OUTPOST_RETURN_IF_ERROR(save_trusted(txn, repo, updater.trusted()));
    }
    OUTPOST_RETURN_IF_ERROR(raise_time_floor(txn, now));
    return txn.put(Table::kSubscriptions, as_bytes(repo),
                   view(records::encode_subscription(repo, location, sub.added, sub.last_sync)));
  }));
  return sub;
}

Result<std::vector<Subscription>> Node::subscriptions() {
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
  std::vector<Subscription> out;
  Status bad = Status::Ok();
  OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kSubscriptions, {}, [&](ByteView, ByteView v) {
    auto j = parse_json(as_chars(v));
    if (!j.ok() || !j->get_string("id").ok() || !j->get_string("location").ok()) {
      bad = Status::Corruption("a subscription record in the store is damaged: subscribe again");
      return false;
    }
    Subscription s;
    s.id = *j->get_string("id");
    s.location = *j->get_string("location");
    s.added = j->get_int("added").ok() ? *j->get_int("added") : 0;
    s.last_sync = j->get_int("last_sync").ok() ? *j->get_int("last_sync") : 0;
    out.push_back(std::move(s));
    return true;
  }));
  OUTPOST_RETURN_IF_ERROR(bad);
  return out;
}

Result<std::vector<SyncReport>> Node::sync(const std::string& location) {
  OUTPOST_ASSIGN_OR_RETURN(auto subs, subscriptions());
  if (subs.empty()) {
    return Status::FailedPrecondition(
        "this store has no subscriptions: run 'outpost subscribe PATH --root-pubkey HEX' first");
  }
  std::vector<SyncReport> reports;
  for (auto& sub : subs) {
    std::string from = location.empty() ? sub.location : location;
    OUTPOST_ASSIGN_OR_RETURN(auto source, open_source(from));
    RepoSync run(*store_, *source, sub.id, clock_->now());
    auto report = run.run();
    if (!report.ok()) {
      // A location given on the command line may belong to another subscription.
      if (!location.empty() && subs.size() > 1 && report.error().IsVerificationFailed()) continue;
      return report.error().With("syncing " + from);
    }
    report->location = from;
    reports.push_back(std::move(*report));
    sub.last_sync = clock_->now();
    OUTPOST_RETURN_IF_ERROR(store_->update([&](storage::WriteTxn& txn) -> Status {
      return txn.put(
          Table::kSubscriptions, as_bytes(sub.id),
          view(records::encode_subscription(sub.id, sub.location, sub.added, sub.last_sync)));
    }));
  }
  return reports;
}

Result<std::vector<BundleInfo>> Node::list() {
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
  std::vector<std::pair<std::string, records::BundleRecord>> recs;
  Status bad = Status::Ok();
  OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kBundles, {}, [&](ByteView k, ByteView v) {
    auto r = records::parse_bundle(v);
    if (!r.ok()) {
      bad = r.error().With("bundle record " + std::string(as_chars(k)));
      return false;
    }
    recs.emplace_back(std::string(as_chars(k)), std::move(*r));
    return true;
  }));
  OUTPOST_RETURN_IF_ERROR(bad);
  std::vector<BundleInfo> out;
  for (auto& [name, r] : recs) {
    Bytes key = storage::version_key(name, r.current);
    OUTPOST_ASSIGN_OR_RETURN(auto m, txn.get(Table::kManifests, view(key)));
    if (!m)
      return Status::Corruption("the manifest of " + name + " is missing: run 'outpost verify'");
    OUTPOST_ASSIGN_OR_RETURN(Manifest manifest, Manifest::parse(view(*m)));
    BundleInfo info;
    info.name = name;
    info.repo = r.repo;
    info.kind = manifest.kind;
    if (const Json* t = manifest.meta.find("title"); t && t->is_string())
      info.title = t->as_string();
    info.current = r.current;
    info.versions = r.versions;
    info.files = manifest.files.size();
    info.size = manifest.content_size;
    info.published = manifest.published;
    info.confirmed = r.confirmed;
    out.push_back(std::move(info));
  }
  return out;
}

Result<Json> Node::show(const std::string& bundle, std::uint64_t version) {
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
  OUTPOST_ASSIGN_OR_RETURN(auto rec, get_bundle(txn, bundle));
  if (!rec)
    return Status::NotFound("no bundle named " + bundle + " in this store: see 'outpost ls'");
  std::uint64_t v = version == 0 ? rec->current : version;
  OUTPOST_ASSIGN_OR_RETURN(auto m,
                           txn.get(Table::kManifests, view(storage::version_key(bundle, v))));
  if (!m) {
    return Status::NotFound("version " + std::to_string(v) + " of " + bundle + " is not held here");
  }
  OUTPOST_ASSIGN_OR_RETURN(Json j, parse_json(as_chars(view(*m))));
  j.set("held_versions", [&] {
    Json a = Json::array();
    for (auto x : rec->versions) a.push(Json(x));
    return a;
  }());
  j.set("confirmed", format_utc(rec->confirmed));
  return j;
}

Status Node::cat(const std::string& bundle, const std::string& path,
                 const std::function<Status(ByteView)>& out) {
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
  OUTPOST_ASSIGN_OR_RETURN(auto rec, get_bundle(txn, bundle));
  if (!rec)
    return Status::NotFound("no bundle named " + bundle + " in this store: see 'outpost ls'");
  OUTPOST_ASSIGN_OR_RETURN(HeldVersion held, load_version(txn, bundle, rec->current));
  const auto& files = held.manifest.files;
  auto it = std::find_if(files.begin(), files.end(), [&](const auto& f) { return f.path == path; });
  if (it == files.end()) {
    return Status::NotFound("bundle " + bundle + " has no file " + path + ": see 'outpost show " +
                            bundle + "'");
  }
  auto target = static_cast<std::size_t>(it - files.begin());
  std::size_t first = 0;
  for (std::size_t f = 0; f < target; ++f) first += held.index.file_chunks[f];
  packaging::Decompressor dec;
  PageBudget pages(*store_);
  for (std::uint32_t c = 0; c < held.index.file_chunks[target]; ++c) {
    OUTPOST_ASSIGN_OR_RETURN(Bytes raw, read_chunk(txn, dec, held.index.chunks[first + c]));
    pages.add(raw.size());
    OUTPOST_RETURN_IF_ERROR(out(view(raw)));
  }
  return Status::Ok();
}

namespace {

// Creates dir/a/b/... one level at a time, refusing any component that is a symlink, so a
// checkout can never write outside dir.
Status make_safe_dirs(const std::string& base, const std::string& rel) {
  std::string cur = base;
  std::size_t pos = 0;
  while (true) {
    std::size_t slash = rel.find('/', pos);
    if (slash == std::string::npos) return Status::Ok();
    cur = join_path(cur, rel.substr(pos, slash - pos));
    struct stat st {};
    if (::lstat(cur.c_str(), &st) == 0) {
      if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
        return Status::FailedPrecondition(cur +
                                          " is a link or a file, not a directory: "
                                          "refusing to write through it; remove it first");
      }
    } else if (::mkdir(cur.c_str(), 0755) != 0) {
      return Status::Unavailable("cannot create " + cur + ": " + errno_text(errno));
    }
    pos = slash + 1;
  }
}

}  // namespace

Status Node::checkout(const std::string& bundle, const std::string& dir) {
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
  OUTPOST_ASSIGN_OR_RETURN(auto rec, get_bundle(txn, bundle));
  if (!rec)
    return Status::NotFound("no bundle named " + bundle + " in this store: see 'outpost ls'");
  OUTPOST_ASSIGN_OR_RETURN(HeldVersion held, load_version(txn, bundle, rec->current));
  OUTPOST_RETURN_IF_ERROR(real_fs().make_dirs(dir));
  for (const auto& f : held.manifest.files) {
    // Paths were validated when the manifest was parsed; check again at the point of use.
    OUTPOST_RETURN_IF_ERROR(packaging::validate_file_path(f.path));
    OUTPOST_RETURN_IF_ERROR(make_safe_dirs(dir, f.path));
    struct stat st {};
    std::string full = join_path(dir, f.path);
    if (::lstat(full.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      return Status::FailedPrecondition(full + " is a link: refusing to write through it");
    }
  }
  // Stream file by file through a temp file each, so a large file never sits in memory.
  // Temp files become durable in batches, one syncfs() per batch, and only then replace the
  // old files: after a crash each file is the old or the complete new one, for a few syncs
  // instead of one fsync per file (10,000 small files took minutes that way, and SD cards
  // wear out).
  std::vector<std::pair<std::string, std::string>> pending;  // temp file, final path
  std::uint64_t pending_bytes = 0;
  auto drop_pending = [&](std::size_t from) {
    for (std::size_t i = from; i < pending.size(); ++i) ::unlink(pending[i].first.c_str());
    pending.clear();
    pending_bytes = 0;
  };
  auto commit_pending = [&]() -> Status {
    if (pending.empty()) return Status::Ok();
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = dfd < 0 ? -1 : ::syncfs(dfd);
    int err = errno;
    if (dfd >= 0) ::close(dfd);
    if (rc != 0) {
      drop_pending(0);
      return Status::Unavailable("cannot write into " + dir + ": " + errno_text(err));
    }
    for (std::size_t i = 0; i < pending.size(); ++i) {
      if (::rename(pending[i].first.c_str(), pending[i].second.c_str()) != 0) {
        Status st =
            Status::Unavailable("cannot write " + pending[i].second + ": " + errno_text(errno));
        drop_pending(i);
        return st;
      }
    }
    pending.clear();
    pending_bytes = 0;
    return Status::Ok();
  };
  constexpr std::size_t kSyncEveryFiles = 4096;
  constexpr std::uint64_t kSyncEveryBytes = 64u << 20;
  std::size_t next = 0;
  packaging::Decompressor dec;
  PageBudget pages(*store_);
  for (std::size_t f = 0; f < held.manifest.files.size(); ++f) {
    const auto& file = held.manifest.files[f];
    std::string full = join_path(dir, file.path);
    std::string tmp = full + ".outpost-tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                    static_cast<mode_t>(file.mode));
    if (fd < 0) {
      Status st = Status::Unavailable("cannot write " + full + ": " + errno_text(errno));
      drop_pending(0);
      return st;
    }
    Status st = Status::Ok();
    for (std::uint32_t c = 0; c < held.index.file_chunks[f] && st.ok(); ++c, ++next) {
      auto raw = read_chunk(txn, dec, held.index.chunks[next]);
      if (!raw.ok()) {
        st = raw.error();
        break;
      }
      pages.add(raw->size());
      std::size_t done = 0;
      while (done < raw->size()) {
        ssize_t n = ::write(fd, raw->data() + done, raw->size() - done);
        if (n < 0) {
          if (errno == EINTR) continue;
          st = (errno == ENOSPC)
                   ? Status::ResourceExhausted("disk full writing " + full)
                   : Status::Unavailable("cannot write " + full + ": " + errno_text(errno));
          break;
        }
        done += static_cast<std::size_t>(n);
      }
    }
    if (::close(fd) != 0 && st.ok()) {
      st = Status::Unavailable("cannot write " + full + ": " + errno_text(errno));
    }
    if (st.ok() && ::chmod(tmp.c_str(), static_cast<mode_t>(file.mode)) != 0) {
      st = Status::Unavailable("cannot set the mode of " + full);
    }
    if (!st.ok()) {
      ::unlink(tmp.c_str());
      drop_pending(0);
      return st;
    }
    pending.emplace_back(std::move(tmp), std::move(full));
    pending_bytes += file.size;
    if (pending.size() >= kSyncEveryFiles || pending_bytes >= kSyncEveryBytes) {
      OUTPOST_RETURN_IF_ERROR(commit_pending());
    }
  }
  return commit_pending();
}

Result<VerifyReport> Node::verify() {
  VerifyReport report;
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
  packaging::Decompressor dec;
  PageBudget pages(*store_);
  // 1. Every chunk rehashes to its id.
  OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kChunks, {}, [&](ByteView k, ByteView v) {
    ++report.chunks_checked;
    pages.add(v.size());
    std::string name = "chunk " + to_hex(k);
    auto stored = records::parse_chunk_value(v);
    if (k.size() != 32 || !stored.ok()) {
      report.problems.push_back(name + ": record is malformed");
      return true;
    }
    auto raw = dec.decompress(stored->frame, stored->raw_length, name);
    crypto::Digest id;
    std::copy(k.begin(), k.end(), id.begin());
    if (!raw.ok() || !crypto::digest_equal(crypto::blake2b(view(*raw)), id)) {
      report.problems.push_back(name +
                                " is damaged (its bytes do not hash to its id): "
                                "run 'outpost verify --repair' then 'outpost sync'");
    }
    return true;
  }));
  // 2. Every held version is complete and its content matches its signed root.
  std::vector<std::pair<std::string, records::BundleRecord>> recs;
  OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kBundles, {}, [&](ByteView k, ByteView v) {
    auto r = records::parse_bundle(v);
    if (!r.ok()) {
      report.problems.push_back("bundle record " + std::string(as_chars(k)) + " is damaged");
    } else {
      recs.emplace_back(std::string(as_chars(k)), std::move(*r));
    }
    return true;
  }));
  for (const auto& [name, r] : recs) {
    for (auto v : r.versions) {
      ++report.versions_checked;
      std::string what = name + " version " + std::to_string(v);
      auto held = load_version(txn, name, v);
      if (!held.ok()) {
        report.problems.push_back(what + ": " + held.error().message());
        continue;
      }
      auto root = compute_root(*store_, txn, *held);
      if (!root.ok()) {
        report.problems.push_back(what + ": " + root.error().message());
      } else if (!crypto::digest_equal(*root, held->manifest.content_root)) {
        report.problems.push_back(what + ": content does not match its signed root hash");
      }
    }
  }
  // 3. Trusted metadata still carries valid signatures.
  OUTPOST_ASSIGN_OR_RETURN(auto subs, subscriptions());
  for (const auto& sub : subs) {
    auto trusted = load_trusted(txn, sub.id);
    if (!trusted.ok()) {
      report.problems.push_back("repository " + sub.id + ": " + trusted.error().message());
      continue;
    }
    Status s = verify_trusted(*trusted);
    report.metadata_checked += 4 + trusted->delegated.size();
    if (!s.ok()) report.problems.push_back("repository " + sub.id + ": " + s.message());
  }
  return report;
}

Result<GcReport> Node::gc(int retain) {
  if (retain < 1) return Status::InvalidArgument("--retain must be at least 1");
  GcReport report;
  OUTPOST_RETURN_IF_ERROR(store_->update([&](storage::WriteTxn& txn) -> Status {
    report = {};
    std::vector<std::pair<std::string, records::BundleRecord>> recs;
    Status bad = Status::Ok();
    OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kBundles, {}, [&](ByteView k, ByteView v) {
      auto r = records::parse_bundle(v);
      if (!r.ok()) {
        bad = Status::Corruption("bundle record " + std::string(as_chars(k)) +
                                 " is damaged: gc stopped, nothing removed");
        return false;
      }
      recs.emplace_back(std::string(as_chars(k)), std::move(*r));
      return true;
    }));
    OUTPOST_RETURN_IF_ERROR(bad);
    std::set<crypto::Digest> live;
    for (auto& [name, r] : recs) {
      // Per-bundle retention overrides the default (kSettings "retain" \0 bundle).
      int keep = retain;
      OUTPOST_ASSIGN_OR_RETURN(auto setting,
                               txn.get(Table::kSettings, view(storage::text_key("retain", name))));
      if (auto n = records::get_u64(setting); n && *n >= 1) keep = static_cast<int>(*n);
      std::vector<std::uint64_t> kept;
      for (auto v : r.versions) {
        bool keep_it = v <= r.current && r.current - v < static_cast<std::uint64_t>(keep);
        Bytes key = storage::version_key(name, v);
        if (!keep_it) {
          OUTPOST_RETURN_IF_ERROR(txn.del(Table::kManifests, view(key)));
          OUTPOST_RETURN_IF_ERROR(txn.del(Table::kIndexes, view(key)));
          ++report.versions_removed;
          continue;
        }
        kept.push_back(v);
        OUTPOST_ASSIGN_OR_RETURN(HeldVersion held, load_version(txn, name, v));
        for (const auto& c : held.index.chunks) live.insert(c.id);
      }
      if (kept.size() != r.versions.size()) {
        r.versions = kept;
        OUTPOST_RETURN_IF_ERROR(txn.put(Table::kBundles, as_bytes(name), view(records::encode(r))));
      }
    }
    std::vector<std::pair<crypto::Digest, std::size_t>> dead;
    OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kChunks, {}, [&](ByteView k, ByteView v) {
      crypto::Digest id{};
      if (k.size() == id.size()) std::copy(k.begin(), k.end(), id.begin());
      if (k.size() != id.size() || !live.count(id)) dead.emplace_back(id, v.size());
      return true;
    }));
    for (const auto& [id, size] : dead) {
      OUTPOST_RETURN_IF_ERROR(txn.del(Table::kChunks, {id.data(), id.size()}));
      ++report.chunks_removed;
      report.bytes_freed += size;
    }
    return Status::Ok();
  }));
  return report;
}

Status Node::set_retention(const std::string& bundle, int n) {
  if (n < 1) return Status::InvalidArgument("--retain must be at least 1");
  OUTPOST_RETURN_IF_ERROR(packaging::validate_bundle_name(bundle));
  return store_->update([&](storage::WriteTxn& txn) -> Status {
    return txn.put(Table::kSettings, view(storage::text_key("retain", bundle)),
                   view(records::u64_value(static_cast<std::uint64_t>(n))));
  });
}

Result<Json> Node::status() {
  OUTPOST_ASSIGN_OR_RETURN(auto stats, store_->stats());
  OUTPOST_ASSIGN_OR_RETURN(auto subs, subscriptions());
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
  OUTPOST_ASSIGN_OR_RETURN(std::int64_t floor, time_floor(txn));
  Json j = Json::object();
  j.set("store", store_->dir());
  j.set("map_bytes", stats.map_bytes);
  j.set("used_bytes", stats.used_bytes);
  j.set("chunks", stats.entries[static_cast<int>(Table::kChunks)]);
  j.set("bundles", stats.entries[static_cast<int>(Table::kBundles)]);
  j.set("time_floor", floor ? format_utc(floor) : std::string("none"));
  Json repos = Json::array();
  for (const auto& s : subs) {
    Json r = Json::object();
    r.set("id", s.id);
    r.set("location", s.location);
    r.set("last_sync", s.last_sync ? format_utc(s.last_sync) : std::string("never"));
    auto trusted = load_trusted(txn, s.id);
    if (trusted.ok() && !trusted->timestamp.empty()) {
      auto env = tuf::parse_metadata(view(trusted->timestamp), "timestamp");
      if (env.ok()) {
        if (auto ts = tuf::Timestamp::from_signed(*env->find("signed")); ts.ok()) {
          r.set("timestamp_version", ts->version);
          r.set("timestamp_expires", format_utc(ts->expires));
        }
      }
    }
    repos.push(std::move(r));
  }
  j.set("repositories", std::move(repos));
  return j;
}

}  // namespace outpost::sync
