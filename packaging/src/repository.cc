#include "outpost/packaging/repository.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <unordered_map>

#include "io_util.h"
#include "outpost/base/fs.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/chunk_index.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/pack.h"

namespace outpost::packaging {

namespace tuf = crypto::tuf;

namespace {

constexpr int kMaxBundleSegments = 6;
constexpr std::uint64_t kMaxMetadataBytes = 64u << 20;
constexpr const char* kRepositoryJson = "outpost-repository.json";

std::string meta_path(const std::string& repo, const std::string& name) {
  return repo + "/metadata/" + name;
}
std::string versioned(std::int64_t version, const std::string& role) {
  return std::to_string(version) + "." + role + ".json";
}

Clock& clock_of(Clock* c) { return c != nullptr ? *c : system_clock(); }

// Exclusive lock on REPO/metadata for the lifetime of the object.
class RepoLock {
 public:
  static Result<RepoLock> acquire(const std::string& repo) {
    const std::string dir = repo + "/metadata";
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) {
        return Status::NotFound(repo +
                                " is not an outpost repository (no metadata/ folder): "
                                "run 'outpost repo init' first");
      }
      return detail::errno_status(errno, "opening", dir);
    }
    detail::Fd owner(fd);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        return Status::Aborted("another outpost command is changing " + repo +
                               ": try again when it has finished");
      }
      return detail::errno_status(errno, "locking", dir);
    }
    RepoLock lock;
    lock.fd_ = std::move(owner);
    return lock;
  }

 private:
  detail::Fd fd_;  // closing releases the lock
};

Result<Bytes> read_repo_file(const std::string& path, std::uint64_t max) {
  auto r = real_fs().read_file(path, max);
  if (!r.ok()) return r.error().With("reading " + path);
  return r;
}

Status write_repo_file(const std::string& path, ByteView data) {
  const std::size_t slash = path.rfind('/');
  if (slash != std::string::npos) {
    OUTPOST_RETURN_IF_ERROR(real_fs().make_dirs(path.substr(0, slash)));
  }
  Status s = real_fs().write_file_atomic(path, data, 0644);
  return s.With("writing " + path);
}

template <typename T>
Result<T> read_role(const std::string& path, std::string_view type) {
  OUTPOST_ASSIGN_OR_RETURN(Bytes bytes, read_repo_file(path, kMaxMetadataBytes));
  auto env = tuf::parse_metadata(bytes, type);
  if (!env.ok()) return env.error().With(path);
  const Json* signed_part = env->find("signed");
  if (signed_part == nullptr) return Status::Corruption(path + ": no \"signed\" part");
  auto value = T::from_signed(*signed_part);
  if (!value.ok()) return value.error().With(path);
  return value;
}

bool key_listed(const tuf::Root& root, const std::string& role, const crypto::SecretKey& key) {
  auto it = root.roles.find(role);
  if (it == root.roles.end()) return false;
  const std::string id = key.public_key().keyid();
  return std::find(it->second.keyids.begin(), it->second.keyids.end(), id) !=
         it->second.keyids.end();
}

Status require_role_key(const tuf::Root& root, const std::string& role,
                        const crypto::SecretKey& key) {
  if (key_listed(root, role, key)) return Status::Ok();
  return Status::FailedPrecondition(
      "key " + key.public_key().keyid().substr(0, 16) + " is not the repository's " + role +
      " key (per metadata/root.json): use the " + role + " key file given to 'outpost repo init'");
}

Status write_metadata(const std::string& repo, const std::string& name, const Json& signed_part,
                      const std::vector<const crypto::SecretKey*>& keys, Bytes* out = nullptr) {
  Bytes bytes = tuf::sign_metadata(signed_part, keys);
  OUTPOST_RETURN_IF_ERROR(write_repo_file(meta_path(repo, name), bytes));
  if (out != nullptr) *out = std::move(bytes);
  return Status::Ok();
}

// New snapshot (version + 1, the given meta) then the timestamp pointing at it.
Status write_snapshot_and_timestamp(const std::string& repo, RepositoryState& st,
                                    const crypto::SecretKey& snapshot_key,
                                    const crypto::SecretKey& timestamp_key, std::int64_t now,
                                    const Expiries& expiry) {
  st.snapshot.version += 1;
  st.snapshot.expires = now + expiry.snapshot;
  Bytes snap;
  OUTPOST_RETURN_IF_ERROR(write_metadata(repo, versioned(st.snapshot.version, "snapshot"),
                                         st.snapshot.to_signed(), {&snapshot_key}, &snap));
  st.timestamp.version += 1;
  st.timestamp.expires = now + expiry.timestamp;
  st.timestamp.snapshot.version = st.snapshot.version;
  st.timestamp.snapshot.length = static_cast<std::int64_t>(snap.size());
  st.timestamp.snapshot.sha256 = crypto::hex(crypto::sha256(snap));
  return write_metadata(repo, "timestamp.json", st.timestamp.to_signed(), {&timestamp_key});
}

bool dir_is_empty_or_missing(const std::string& dir, Status& err) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return true;
    err = detail::errno_status(errno, "opening", dir);
    return false;
  }
  bool empty = true;
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") {
      empty = false;
      break;
    }
  }
  ::closedir(d);
  return empty;
}

std::size_t segment_count(std::string_view s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '/')) + 1;
}

// Segments of the prefix a delegated role was made for ("un/ga/*/*" -> 2); 0 for roles that
// are not prefix delegations (hashed bins, foreign tools).
std::size_t prefix_depth(const tuf::DelegatedRole& r) {
  if (r.paths.empty()) return 0;
  std::string_view p = r.paths.front();
  while (p.size() >= 2 && p.substr(p.size() - 2) == "/*") p.remove_suffix(2);
  return p.empty() ? 0 : segment_count(p);
}

struct DigestHash {
  std::size_t operator()(const crypto::Digest& d) const {
    std::size_t h;
    std::memcpy(&h, d.data(), sizeof h);
    return h;
  }
};

struct ChunkLocation {
  std::uint32_t pack_slot;  // index into the publisher's pack list; kNewPack for the new one
  std::uint64_t offset;
  std::uint32_t stored_length;
  std::uint32_t raw_length;
};
constexpr std::uint32_t kNewPack = 0xFFFFFFFFu;

}  // namespace

std::string role_name_for_prefix(std::string_view prefix) {
  std::string name(prefix);
  std::replace(name.begin(), name.end(), '/', '.');
  return name;
}

std::vector<std::string> role_paths_for_prefix(std::string_view prefix) {
  // Target paths are "<bundle>/manifest.json": one segment more than the bundle name. TUF
  // matches segment by segment, so one pattern per possible depth.
  std::vector<std::string> paths;
  const std::size_t k = segment_count(prefix);
  std::string pattern(prefix);
  for (std::size_t depth = k + 1; depth <= kMaxBundleSegments + 1; ++depth) {
    pattern += "/*";
    if (depth >= 3) paths.push_back(pattern);  // bundle names have at least 2 segments
  }
  return paths;
}

// ---- reading ---------------------------------------------------------------------------------

Result<RepositoryState> load_repository(const std::string& repo) {
  RepositoryState st;
  const std::string ts_path = meta_path(repo, "timestamp.json");
  if (!real_fs().exists(ts_path)) {
    return Status::NotFound(repo + " is not an outpost repository (no metadata/timestamp.json)");
  }
  OUTPOST_ASSIGN_OR_RETURN(st.root, read_role<tuf::Root>(meta_path(repo, "root.json"), "root"));
  OUTPOST_ASSIGN_OR_RETURN(st.timestamp, read_role<tuf::Timestamp>(ts_path, "timestamp"));
  OUTPOST_ASSIGN_OR_RETURN(
      st.snapshot,
      read_role<tuf::Snapshot>(
          meta_path(repo, versioned(st.timestamp.snapshot.version, "snapshot")), "snapshot"));
  for (const auto& [file, info] : st.snapshot.meta) {
    if (file.size() < 6 || file.substr(file.size() - 5) != ".json") {
      return Status::Corruption("snapshot lists '" + file + "', not a metadata file");
    }
    const std::string role = file.substr(0, file.size() - 5);
    OUTPOST_ASSIGN_OR_RETURN(
        tuf::Targets t,
        read_role<tuf::Targets>(meta_path(repo, versioned(info.version, role)), "targets"));
    if (role == "targets") {
      st.targets = std::move(t);
    } else {
      st.roles.emplace(role, std::move(t));
    }
  }
  return st;
}

Result<PublishedManifest> load_current_manifest(const std::string& repo,
                                                const RepositoryState& state,
                                                const std::string& bundle) {
  const std::string target = manifest_target_path(bundle);
  const tuf::TargetFile* tf = nullptr;
  for (const auto& [role, t] : state.roles) {
    (void)role;
    auto it = t.targets.find(target);
    if (it != t.targets.end()) {
      tf = &it->second;
      break;
    }
  }
  if (tf == nullptr) return Status::NotFound("bundle " + bundle + " has no published version");
  PublishedManifest pm;
  pm.path = "targets/" + bundle + "/" + tf->sha256 + ".manifest.json";
  OUTPOST_ASSIGN_OR_RETURN(pm.bytes, read_repo_file(repo + "/" + pm.path, kMaxManifestBytes));
  if (static_cast<std::int64_t>(pm.bytes.size()) != tf->length ||
      crypto::hex(crypto::sha256(pm.bytes)) != tf->sha256) {
    return Status::Corruption(pm.path + " does not match its length and hash in targets metadata");
  }
  OUTPOST_ASSIGN_OR_RETURN(pm.manifest, Manifest::parse(pm.bytes));
  if (pm.manifest.bundle != bundle) {
    return Status::Corruption(pm.path + " is the manifest of " + pm.manifest.bundle);
  }
  return pm;
}

// ---- init ------------------------------------------------------------------------------------

Status init_repository(const std::string& repo, const InitOptions& o) {
  if (o.targets_key == nullptr || o.snapshot_key == nullptr || o.timestamp_key == nullptr) {
    return Status::InvalidArgument("repo init needs the targets, snapshot and timestamp keys");
  }
  std::map<std::string, const crypto::SecretKey*> root_keys;
  for (const crypto::SecretKey* k : o.root_keys) {
    if (k != nullptr) root_keys.emplace(k->public_key().keyid(), k);
  }
  if (o.threshold < 1 || static_cast<std::size_t>(o.threshold) > root_keys.size()) {
    return Status::InvalidArgument("root threshold " + std::to_string(o.threshold) +
                                   " needs at least that many distinct root keys (given " +
                                   std::to_string(root_keys.size()) + ")");
  }
  OUTPOST_RETURN_IF_ERROR(o.chunking.validate());
  Status err;
  if (!dir_is_empty_or_missing(repo, err)) {
    if (!err.ok()) return err;
    return Status::FailedPrecondition(repo + " exists and is not empty: choose a new folder");
  }
  for (const char* sub : {"metadata", "targets", "objects", "packs"}) {
    OUTPOST_RETURN_IF_ERROR(real_fs().make_dirs(repo + "/" + sub));
  }
  const std::int64_t now = clock_of(o.clock).now();

  RepositoryState st;
  st.root.version = 1;
  st.root.expires = now + o.expiry.root;
  st.root.consistent_snapshot = true;
  tuf::RoleKeys rk;
  rk.threshold = o.threshold;
  std::vector<const crypto::SecretKey*> root_signers;
  for (const auto& [id, k] : root_keys) {
    st.root.keys.emplace(id, k->public_key());
    rk.keyids.push_back(id);
    root_signers.push_back(k);
  }
  st.root.roles["root"] = rk;
  for (const auto& [role, key] :
       {std::pair<const char*, const crypto::SecretKey*>{"targets", o.targets_key},
        {"snapshot", o.snapshot_key},
        {"timestamp", o.timestamp_key}}) {
    const std::string id = key->public_key().keyid();
    st.root.keys.emplace(id, key->public_key());
    st.root.roles[role] = tuf::RoleKeys{{id}, 1};
  }
  Bytes root_bytes;
  OUTPOST_RETURN_IF_ERROR(
      write_metadata(repo, "1.root.json", st.root.to_signed(), root_signers, &root_bytes));
  OUTPOST_RETURN_IF_ERROR(write_repo_file(meta_path(repo, "root.json"), root_bytes));

  st.targets.version = 1;
  st.targets.expires = now + o.expiry.targets;
  OUTPOST_RETURN_IF_ERROR(
      write_metadata(repo, "1.targets.json", st.targets.to_signed(), {o.targets_key}));

  Json desc = Json::object();
  desc.set("_type", "outpost/repository");
  desc.set("format", 1);
  Json chunk = Json::object();
  chunk.set("algorithm", kChunkAlgorithm);
  chunk.set("min", static_cast<std::int64_t>(o.chunking.min));
  chunk.set("avg", static_cast<std::int64_t>(o.chunking.avg));
  chunk.set("max", static_cast<std::int64_t>(o.chunking.max));
  desc.set("chunking", std::move(chunk));
  OUTPOST_RETURN_IF_ERROR(
      write_repo_file(repo + "/" + kRepositoryJson, to_bytes(desc.dump(2) + "\n")));

  st.snapshot.version = 0;  // write_snapshot_and_timestamp moves both to version 1
  st.snapshot.meta["targets.json"] = tuf::MetaFile{1, std::nullopt, std::nullopt};
  st.timestamp.version = 0;
  return write_snapshot_and_timestamp(repo, st, *o.snapshot_key, *o.timestamp_key, now, o.expiry);
}

// ---- delegate --------------------------------------------------------------------------------

Status delegate(const std::string& repo, const crypto::SecretKey& targets_key,
                const crypto::SecretKey& snapshot_key, const crypto::SecretKey& timestamp_key,
                const crypto::PublicKey& publisher, std::string prefix, Clock& clock,
                const Expiries& expiry) {
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  OUTPOST_RETURN_IF_ERROR(validate_bundle_prefix(prefix));
  const std::string role = role_name_for_prefix(prefix);
  if (role == "root" || role == "targets" || role == "snapshot" || role == "timestamp") {
    return Status::InvalidArgument("prefix '" + prefix + "' would name a delegated role '" + role +
                                   "', which is a top-level TUF role: choose another prefix");
  }
  OUTPOST_ASSIGN_OR_RETURN(RepoLock lock, RepoLock::acquire(repo));
  OUTPOST_ASSIGN_OR_RETURN(RepositoryState st, load_repository(repo));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "targets", targets_key));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "snapshot", snapshot_key));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "timestamp", timestamp_key));

  tuf::Delegations d = st.targets.delegations.value_or(tuf::Delegations{});
  const std::vector<std::string> paths = role_paths_for_prefix(prefix);
  const std::string keyid = publisher.keyid();
  auto it = std::find_if(d.roles.begin(), d.roles.end(),
                         [&](const tuf::DelegatedRole& r) { return r.name == role; });
  if (it != d.roles.end()) {
    if (it->paths != paths) {
      return Status::InvalidArgument("prefix '" + prefix + "' maps to role '" + role +
                                     "', which already delegates another prefix: choose a prefix "
                                     "whose segments do not contain '.' ambiguously");
    }
    it->keyids = {keyid};
    it->threshold = 1;
  } else {
    tuf::DelegatedRole r;
    r.name = role;
    r.keyids = {keyid};
    r.threshold = 1;
    r.terminating = true;
    r.paths = paths;
    d.roles.push_back(std::move(r));
  }
  d.keys[keyid] = publisher;
  // More specific prefixes first: TUF visits roles in order, and a terminating role stops the
  // search, so "un/ga" owns its names even when "un" is delegated to someone else.
  std::stable_sort(d.roles.begin(), d.roles.end(),
                   [](const tuf::DelegatedRole& a, const tuf::DelegatedRole& b) {
                     return prefix_depth(a) > prefix_depth(b);
                   });
  // Drop keys no role uses any more (revocation by replacement).
  std::set<std::string> used;
  for (const auto& r : d.roles) used.insert(r.keyids.begin(), r.keyids.end());
  for (auto k = d.keys.begin(); k != d.keys.end();) {
    k = used.count(k->first) != 0 ? std::next(k) : d.keys.erase(k);
  }
  st.targets.delegations = std::move(d);
  const std::int64_t now = clock.now();
  st.targets.version += 1;
  st.targets.expires = now + expiry.targets;
  OUTPOST_RETURN_IF_ERROR(write_metadata(repo, versioned(st.targets.version, "targets"),
                                         st.targets.to_signed(), {&targets_key}));
  st.snapshot.meta["targets.json"] = tuf::MetaFile{st.targets.version, std::nullopt, std::nullopt};
  return write_snapshot_and_timestamp(repo, st, snapshot_key, timestamp_key, now, expiry);
}

// ---- publish ---------------------------------------------------------------------------------

Result<PublishResult> publish(const std::string& repo, const PublishOptions& o) {
  if (o.publisher_key == nullptr || o.snapshot_key == nullptr || o.timestamp_key == nullptr) {
    return Status::InvalidArgument("publish needs the publisher, snapshot and timestamp keys");
  }
  OUTPOST_RETURN_IF_ERROR(o.chunking.validate());
  OUTPOST_ASSIGN_OR_RETURN(BundleSource src, read_bundle_dir(o.source_dir, o.overrides));
  OUTPOST_ASSIGN_OR_RETURN(RepoLock lock, RepoLock::acquire(repo));
  OUTPOST_ASSIGN_OR_RETURN(RepositoryState st, load_repository(repo));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "snapshot", *o.snapshot_key));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "timestamp", *o.timestamp_key));

  // The delegated role for this bundle: the first that matches, as a TUF client searches.
  const std::string target = manifest_target_path(src.name);
  const tuf::DelegatedRole* role = nullptr;
  if (st.targets.delegations) {
    for (const auto& r : st.targets.delegations->roles) {
      if (r.matches(target)) {
        role = &r;
        break;
      }
    }
  }
  const std::string pub_id = o.publisher_key->public_key().keyid();
  if (role == nullptr) {
    return Status::FailedPrecondition("no delegation covers bundle name " + src.name +
                                      ": ask the repository owner to run 'outpost repo delegate'");
  }
  if (std::find(role->keyids.begin(), role->keyids.end(), pub_id) == role->keyids.end()) {
    return Status::FailedPrecondition("key " + pub_id.substr(0, 16) +
                                      " is not delegated bundle name " + src.name +
                                      ": ask the repository owner to run 'outpost repo delegate'");
  }
  const std::string role_name = role->name;

  // Chunks the repository already stores: those of the current version of every bundle.
  std::vector<crypto::Digest> known_packs;
  std::unordered_map<crypto::Digest, std::uint32_t, DigestHash> pack_slot;
  std::unordered_map<crypto::Digest, ChunkLocation, DigestHash> chunks;
  std::optional<PublishedManifest> previous;
  for (const auto& [rname, t] : st.roles) {
    for (const auto& [path, tf] : t.targets) {
      (void)tf;
      const std::string suffix = "/manifest.json";
      if (path.size() <= suffix.size() ||
          path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0) {
        continue;
      }
      const std::string bundle = path.substr(0, path.size() - suffix.size());
      auto pm = load_current_manifest(repo, st, bundle);
      if (!pm.ok()) return pm.error().With("reading the repository");
      const Manifest& m = pm->manifest;
      const std::string ipath = repo + "/" + m.index.path;
      OUTPOST_ASSIGN_OR_RETURN(Bytes ibytes, read_repo_file(ipath, kMaxIndexBytes));
      if (ibytes.size() != m.index.length ||
          !crypto::digest_equal(crypto::blake2b(ibytes), m.index.blake2b)) {
        return Status::Corruption(ipath + " does not match its hash in the manifest of " + bundle);
      }
      auto idx = ChunkIndex::parse(ibytes, m.chunking.max);
      if (!idx.ok()) return idx.error().With(ipath);
      std::vector<std::uint32_t> slots(idx->packs.size(), kNewPack);
      for (std::size_t p = 0; p < idx->packs.size(); ++p) {
        const crypto::Digest& pid = idx->packs[p];
        auto found = pack_slot.find(pid);
        if (found != pack_slot.end()) {
          slots[p] = found->second;
        } else if (real_fs().exists(repo + "/" + pack_object_path(pid))) {
          slots[p] = static_cast<std::uint32_t>(known_packs.size());
          pack_slot.emplace(pid, slots[p]);
          known_packs.push_back(pid);
        }
      }
      for (const ChunkEntry& c : idx->chunks) {
        if (slots[c.pack] == kNewPack) continue;  // pack missing: store the chunk again
        chunks.emplace(c.id, ChunkLocation{slots[c.pack], c.offset, c.stored_length, c.raw_length});
      }
      if (bundle == src.name) previous = std::move(pm).value();
    }
  }

  // Stream every file: hash the content, chunk it, store new chunks in one new pack.
  const std::int64_t now = clock_of(o.clock).now();
  ContentHasher hasher;
  Compressor compressor(o.zstd_level);
  std::unique_ptr<PackFileWriter> pack;
  struct Ref {
    crypto::Digest id;
    ChunkLocation loc;
  };
  std::vector<Ref> refs;
  std::vector<std::uint32_t> file_chunks;
  file_chunks.reserve(src.files.size());
  PublishResult result;
  result.bundle = src.name;
  for (const SourceFile& f : src.files) {
    const std::string full = src.full_path(f);
    if (Status s = hasher.add_file(f.path, f.mode, f.size); !s.ok()) {
      return Status::Aborted(s.message() + ": it changed while publishing; publish again");
    }
    std::uint32_t count = 0;
    Status s = chunk_file(full, o.chunking, [&](ByteView c) -> Status {
      if (Status hs = hasher.update(c); !hs.ok()) {
        return Status::Aborted(hs.message() + ": it changed while publishing; publish again");
      }
      const crypto::Digest id = crypto::blake2b(c);
      auto it = chunks.find(id);
      if (it != chunks.end()) {
        ++result.reused_chunks;
        refs.push_back({id, it->second});
      } else {
        if (!pack) {
          OUTPOST_ASSIGN_OR_RETURN(pack, PackFileWriter::create(repo + "/packs"));
        }
        OUTPOST_ASSIGN_OR_RETURN(Bytes frame, compressor.compress(c));
        OUTPOST_ASSIGN_OR_RETURN(std::uint64_t off, pack->writer().add_chunk(id, c.size(), frame));
        const ChunkLocation loc{kNewPack, off, static_cast<std::uint32_t>(frame.size()),
                                static_cast<std::uint32_t>(c.size())};
        chunks.emplace(id, loc);
        ++result.new_chunks;
        refs.push_back({id, loc});
      }
      ++count;
      return Status::Ok();
    });
    if (!s.ok()) return s.With("publishing " + full);
    file_chunks.push_back(count);
  }
  auto root = hasher.finish();
  if (!root.ok()) {
    return Status::Aborted(root.error().message() + ": it changed while publishing; publish again");
  }

  Manifest m;
  m.bundle = src.name;
  m.kind = src.kind;
  m.meta = src.meta;
  m.published = now;
  m.chunking = o.chunking;
  m.content_root = *root;
  m.content_size = hasher.total_size();
  m.files.reserve(src.files.size());
  for (const SourceFile& f : src.files) {
    m.files.push_back(FileEntry{f.path, f.size, f.mode, media_type_for(f.path)});
  }
  result.files = m.files.size();
  result.bytes = m.content_size;

  if (previous) {
    const Manifest& p = previous->manifest;
    if (crypto::digest_equal(p.content_root, m.content_root) && p.files == m.files &&
        p.kind == m.kind && p.meta == m.meta) {
      // The pack (if any: only when stored chunks went missing) is dropped with its temp file.
      result.unchanged = true;
      result.version = p.version;
      result.manifest_path = previous->path;
      result.new_chunks = 0;
      return result;
    }
    m.version = p.version + 1;
  } else {
    m.version = 1;
  }

  // 1. the pack
  crypto::Digest new_pack_id{};
  if (pack) {
    OUTPOST_ASSIGN_OR_RETURN(PackFileInfo info, pack->commit());
    new_pack_id = info.id;
    result.pack_id = info.id;
    result.pack_bytes = info.size;
  }
  // 2. the index (packs numbered in order of first use)
  ChunkIndex index;
  index.file_chunks = std::move(file_chunks);
  index.chunks.reserve(refs.size());
  std::unordered_map<std::uint32_t, std::uint32_t> numbers;
  for (const Ref& r : refs) {
    auto [it, fresh] =
        numbers.emplace(r.loc.pack_slot, static_cast<std::uint32_t>(index.packs.size()));
    if (fresh)
      index.packs.push_back(r.loc.pack_slot == kNewPack ? new_pack_id
                                                        : known_packs[r.loc.pack_slot]);
    index.chunks.push_back(
        ChunkEntry{r.id, r.loc.raw_length, it->second, r.loc.offset, r.loc.stored_length});
  }
  refs.clear();
  refs.shrink_to_fit();
  const Bytes index_bytes = index.encode();
  m.index.blake2b = crypto::blake2b(index_bytes);
  m.index.length = index_bytes.size();
  m.index.path = index_object_path(m.index.blake2b);
  OUTPOST_RETURN_IF_ERROR(write_repo_file(repo + "/" + m.index.path, index_bytes));
  // 3. the manifest
  const Bytes manifest_bytes = m.encode();
  const std::string sha = crypto::hex(crypto::sha256(manifest_bytes));
  result.manifest_path = "targets/" + m.bundle + "/" + sha + ".manifest.json";
  OUTPOST_RETURN_IF_ERROR(write_repo_file(repo + "/" + result.manifest_path, manifest_bytes));
  // 4. the delegated role's metadata
  tuf::Targets role_meta;
  if (auto it = st.roles.find(role_name); it != st.roles.end()) {
    role_meta = it->second;
    role_meta.version += 1;
  } else {
    role_meta.version = 1;
  }
  role_meta.expires = now + o.expiry.delegated;
  role_meta.delegations.reset();
  Json custom = Json::object();
  Json outpost = Json::object();
  outpost.set("version", m.version);
  outpost.set("kind", m.kind);
  custom.set("outpost", std::move(outpost));
  role_meta.targets[target] =
      tuf::TargetFile{static_cast<std::int64_t>(manifest_bytes.size()), sha, std::move(custom)};
  OUTPOST_RETURN_IF_ERROR(write_metadata(repo, versioned(role_meta.version, role_name),
                                         role_meta.to_signed(), {o.publisher_key}));
  // 5. snapshot, then timestamp last
  st.snapshot.meta[role_name + ".json"] =
      tuf::MetaFile{role_meta.version, std::nullopt, std::nullopt};
  OUTPOST_RETURN_IF_ERROR(
      write_snapshot_and_timestamp(repo, st, *o.snapshot_key, *o.timestamp_key, now, o.expiry));
  result.version = m.version;
  return result;
}

// ---- refresh and rotate ----------------------------------------------------------------------

Status refresh_timestamp(const std::string& repo, const crypto::SecretKey& timestamp_key,
                         Clock& clock, const Expiries& expiry) {
  OUTPOST_ASSIGN_OR_RETURN(RepoLock lock, RepoLock::acquire(repo));
  OUTPOST_ASSIGN_OR_RETURN(tuf::Root root,
                           read_role<tuf::Root>(meta_path(repo, "root.json"), "root"));
  OUTPOST_RETURN_IF_ERROR(require_role_key(root, "timestamp", timestamp_key));
  OUTPOST_ASSIGN_OR_RETURN(
      tuf::Timestamp ts, read_role<tuf::Timestamp>(meta_path(repo, "timestamp.json"), "timestamp"));
  OUTPOST_ASSIGN_OR_RETURN(
      tuf::Snapshot snap,
      read_role<tuf::Snapshot>(meta_path(repo, versioned(ts.snapshot.version, "snapshot")),
                               "snapshot"));
  const std::int64_t now = clock.now();
  if (snap.expires < now + expiry.timestamp) {
    return Status::FailedPrecondition(
        "the snapshot expires " + format_utc(snap.expires) +
        ", before a new timestamp would: refresh with the snapshot key as well");
  }
  ts.version += 1;
  ts.expires = now + expiry.timestamp;
  return write_metadata(repo, "timestamp.json", ts.to_signed(), {&timestamp_key});
}

Status refresh_snapshot(const std::string& repo, const crypto::SecretKey& snapshot_key,
                        const crypto::SecretKey& timestamp_key, Clock& clock,
                        const Expiries& expiry) {
  OUTPOST_ASSIGN_OR_RETURN(RepoLock lock, RepoLock::acquire(repo));
  OUTPOST_ASSIGN_OR_RETURN(RepositoryState st, load_repository(repo));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "snapshot", snapshot_key));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "timestamp", timestamp_key));
  return write_snapshot_and_timestamp(repo, st, snapshot_key, timestamp_key, clock.now(), expiry);
}

Status rotate_root(const std::string& repo, const RotateOptions& o) {
  if (o.targets_key == nullptr || o.snapshot_key == nullptr || o.timestamp_key == nullptr) {
    return Status::InvalidArgument("root rotation needs the targets, snapshot and timestamp keys");
  }
  std::map<std::string, const crypto::SecretKey*> new_keys;
  for (const auto* k : o.new_root_keys) {
    if (k != nullptr) new_keys.emplace(k->public_key().keyid(), k);
  }
  if (o.threshold < 1 || static_cast<std::size_t>(o.threshold) > new_keys.size()) {
    return Status::InvalidArgument("new root threshold " + std::to_string(o.threshold) +
                                   " needs at least that many distinct new root keys (given " +
                                   std::to_string(new_keys.size()) + ")");
  }
  OUTPOST_ASSIGN_OR_RETURN(RepoLock lock, RepoLock::acquire(repo));
  OUTPOST_ASSIGN_OR_RETURN(RepositoryState st, load_repository(repo));
  // root.json must be the newest version: clients walk N+1.root.json from what they hold.
  if (real_fs().exists(meta_path(repo, versioned(st.root.version + 1, "root")))) {
    return Status::FailedPrecondition(
        "metadata/root.json is not the newest root version: "
        "restore it from the highest N.root.json");
  }
  std::map<std::string, const crypto::SecretKey*> signers;
  int old_valid = 0;
  for (const auto* k : o.old_root_keys) {
    if (k == nullptr) continue;
    if (key_listed(st.root, "root", *k) && signers.emplace(k->public_key().keyid(), k).second) {
      ++old_valid;
    }
  }
  const int old_threshold = st.root.roles["root"].threshold;
  if (old_valid < old_threshold) {
    return Status::FailedPrecondition("the current root needs " + std::to_string(old_threshold) +
                                      " of its keys to sign a new root; " +
                                      std::to_string(old_valid) + " given");
  }
  for (const auto& [id, k] : new_keys) signers.emplace(id, k);

  const std::string old_targets = st.root.roles["targets"].keyids.empty()
                                      ? std::string()
                                      : st.root.roles["targets"].keyids.front();
  tuf::Root next;
  next.version = st.root.version + 1;
  const std::int64_t now = clock_of(o.clock).now();
  next.expires = now + o.expiry.root;
  next.consistent_snapshot = true;
  tuf::RoleKeys rk;
  rk.threshold = o.threshold;
  for (const auto& [id, k] : new_keys) {
    next.keys.emplace(id, k->public_key());
    rk.keyids.push_back(id);
  }
  next.roles["root"] = rk;
  for (const auto& [role, key] :
       {std::pair<const char*, const crypto::SecretKey*>{"targets", o.targets_key},
        {"snapshot", o.snapshot_key},
        {"timestamp", o.timestamp_key}}) {
    const std::string id = key->public_key().keyid();
    next.keys.emplace(id, key->public_key());
    next.roles[role] = tuf::RoleKeys{{id}, 1};
  }
  std::vector<const crypto::SecretKey*> sign_with;
  for (const auto& [id, k] : signers) sign_with.push_back(k);
  Bytes root_bytes;
  OUTPOST_RETURN_IF_ERROR(write_metadata(repo, versioned(next.version, "root"), next.to_signed(),
                                         sign_with, &root_bytes));
  OUTPOST_RETURN_IF_ERROR(write_repo_file(meta_path(repo, "root.json"), root_bytes));
  st.root = next;
  if (o.targets_key->public_key().keyid() != old_targets) {
    st.targets.version += 1;
    st.targets.expires = now + o.expiry.targets;
    OUTPOST_RETURN_IF_ERROR(write_metadata(repo, versioned(st.targets.version, "targets"),
                                           st.targets.to_signed(), {o.targets_key}));
    st.snapshot.meta["targets.json"] =
        tuf::MetaFile{st.targets.version, std::nullopt, std::nullopt};
  }
  return write_snapshot_and_timestamp(repo, st, *o.snapshot_key, *o.timestamp_key, now, o.expiry);
}

}  // namespace outpost::packaging
