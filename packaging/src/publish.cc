// publish(): turning a folder into the next version of its bundle, in named steps (see
// publish() at the bottom for the order and why it is safe for readers).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>

#include "delta_internal.h"
#include "full_patch.h"
#include "io_util.h"
#include "library_file.h"
#include "outpost/base/fs.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/chunk_index.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/delta.h"
#include "outpost/packaging/layout.h"
#include "outpost/packaging/pack.h"
#include "outpost/packaging/repository.h"
#include "outpost/packaging/update_file.h"
#include "repo_files.h"
#include "stream_file.h"

namespace outpost::packaging {

namespace tuf = crypto::tuf;
using namespace repo_detail;
using publish_detail::StreamFile;

namespace {

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

constexpr std::uint64_t kMaxHistoryBytes = 16u << 20;

// What the update files of a publish may encode into release patches: none when the publisher
// asked for no patches from older versions (an empty patch ladder: bundles whose versions share
// nothing, where a release patch costs seconds a MB to find what a patch from 0 says).
std::uint64_t release_patch_work(const std::vector<std::int64_t>& patch_ladder) {
  return patch_ladder.empty() ? 0 : kReleasePatchWork;
}

// Reads chunks out of the repository's packs, keeping each pack open.
class PackChunkReader {
 public:
  explicit PackChunkReader(std::string repo) : repo_(std::move(repo)) {}

  // kNotFound when the pack is missing; kCorruption when the chunk does not match its id.
  Result<Bytes> read(const crypto::Digest& pack, const ChunkEntry& e) {
    auto it = fds_.find(pack);
    if (it == fds_.end()) {
      const std::string path = in_repo(repo_, pack_object_path(pack));
      OUTPOST_ASSIGN_OR_RETURN(detail::Fd fd, detail::open_read(path));
      it = fds_.emplace(pack, std::move(fd)).first;
    }
    Bytes frame(e.stored_length);
    std::size_t done = 0;
    while (done < frame.size()) {
      const ssize_t n = ::pread(it->second.get(), frame.data() + done, frame.size() - done,
                                static_cast<off_t>(e.offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return detail::errno_status(errno, "reading", pack_object_path(pack));
      if (n == 0) {
        return Status::Corruption(pack_object_path(pack) + " is shorter than its chunk index says");
      }
      done += static_cast<std::size_t>(n);
    }
    const std::string what = "chunk " + crypto::hex(e.id).substr(0, 16);
    OUTPOST_ASSIGN_OR_RETURN(Bytes raw, decompressor_.decompress(frame, e.raw_length, what));
    if (!crypto::digest_equal(crypto::blake2b(raw), e.id)) {
      return Status::Corruption(what + " in " + pack_object_path(pack) + " does not match its id");
    }
    return raw;
  }

 private:
  std::string repo_;
  std::map<crypto::Digest, detail::Fd> fds_;
  Decompressor decompressor_;
};

// Rebuilds the content stream of a version from its chunk index and the packs into `out`, and
// checks it against the manifest's content root. kNotFound when a pack is missing.
Status build_stream(const Manifest& m, const ChunkIndex& index, PackChunkReader& reader,
                    StreamFile& out) {
  crypto::Blake2b hasher;
  std::size_t next_chunk = 0;
  Status s = write_content_stream(
      m,
      [&](std::size_t i, const FileEntry&, const ContentSink& sink) -> Status {
        for (std::uint32_t k = 0; k < index.file_chunks[i]; ++k) {
          const ChunkEntry& e = index.chunks[next_chunk++];
          OUTPOST_ASSIGN_OR_RETURN(Bytes raw, reader.read(index.packs[e.pack], e));
          OUTPOST_RETURN_IF_ERROR(sink(raw));
        }
        return Status::Ok();
      },
      [&](ByteView b) -> Status {
        hasher.update(b);
        return out.append(b);
      });
  if (!s.ok()) return s.With("rebuilding version " + std::to_string(m.version) + " of " + m.bundle);
  if (!crypto::digest_equal(hasher.finish(), m.content_root)) {
    return Status::Corruption("version " + std::to_string(m.version) + " of " + m.bundle +
                              " rebuilt from its packs does not match its content root");
  }
  return Status::Ok();
}

// The chunk index a manifest names, checked against its hash and the manifest.
Result<ChunkIndex> load_index(const std::string& repo, const Manifest& m) {
  const std::string ipath = in_repo(repo, m.index.path);
  OUTPOST_ASSIGN_OR_RETURN(Bytes ibytes, read_repo_file(ipath, kMaxIndexBytes));
  if (ibytes.size() != m.index.length ||
      !crypto::digest_equal(crypto::blake2b(ibytes), m.index.blake2b)) {
    return Status::Corruption(ipath + " does not match its hash in the manifest of " + m.bundle);
  }
  auto idx = ChunkIndex::parse(ibytes, m.chunking.max);
  if (!idx.ok()) return idx.error().With(ipath);
  OUTPOST_RETURN_IF_ERROR(idx->check_against(m));
  return idx;
}

// ---- the publisher's history of a bundle's manifests (layout.h history_file_path) ----

// version -> repository-relative manifest path. A missing or malformed file is an empty
// history: it is only an index, rebuilt by scanning (scan_manifests) and rewritten.
std::map<std::int64_t, std::string> load_history(const std::string& repo,
                                                 const std::string& bundle) {
  std::map<std::int64_t, std::string> out;
  auto bytes = real_fs().read_file(in_repo(repo, history_file_path(bundle)), kMaxHistoryBytes);
  if (!bytes.ok()) return out;
  auto j = parse_json(as_chars(*bytes));
  if (!j.ok() || !j->is_object()) return out;
  const Json* versions = j->find("versions");
  if (versions == nullptr || !versions->is_object()) return out;
  for (const auto& [key, value] : versions->as_object()) {
    char* end = nullptr;
    const long long v = std::strtoll(key.c_str(), &end, 10);
    if (end == key.c_str() || *end != '\0' || v < 1 || !value.is_string()) continue;
    out.emplace(static_cast<std::int64_t>(v), value.as_string());
  }
  return out;
}

Status write_history(const std::string& repo, const std::string& bundle,
                     const std::map<std::int64_t, std::string>& history, FileSystem& fs) {
  Json versions = Json::object();
  for (const auto& [v, path] : history) versions.set(std::to_string(v), path);
  Json j = Json::object();
  j.set("versions", std::move(versions));
  return write_repo_file(repo, history_file_path(bundle), to_bytes(j.dump(1) + "\n"), fs);
}

// Every manifest file of the bundle in its folder, by version (repositories without a
// history file, or versions it lacks). Files that do not parse are skipped.
std::map<std::int64_t, std::string> scan_manifests(const std::string& repo,
                                                   const std::string& bundle) {
  std::map<std::int64_t, std::string> out;
  const std::string dir = in_repo(repo, bundle_manifest_dir(bundle));
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (is_manifest_file_name(n)) names.push_back(n);
  }
  ::closedir(d);
  for (const std::string& n : names) {
    auto bytes = real_fs().read_file(dir + n, kMaxManifestBytes);
    if (!bytes.ok()) continue;
    auto m = Manifest::parse(*bytes);
    if (!m.ok() || m->bundle != bundle) continue;
    out.emplace(m->version, bundle_manifest_dir(bundle) + n);
  }
  return out;
}

// Version `version` of the bundle, found through the history (then a scan of the folder).
// The file's SHA-256 must be the one in its name. nullopt when it cannot be found.
std::optional<PublishedManifest> find_version(const std::string& repo, const std::string& bundle,
                                              std::int64_t version,
                                              std::map<std::int64_t, std::string>& history,
                                              bool& scanned) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto it = history.find(version);
    if (it != history.end()) {
      const std::string& path = it->second;
      auto bytes = real_fs().read_file(in_repo(repo, path), kMaxManifestBytes);
      if (bytes.ok() && path == manifest_file_path(bundle, crypto::hex(crypto::sha256(*bytes)))) {
        auto m = Manifest::parse(*bytes);
        if (m.ok() && m->bundle == bundle && m->version == version) {
          return PublishedManifest{std::move(m).value(), std::move(bytes).value(), path};
        }
      }
    }
    if (scanned) break;
    scanned = true;
    for (auto& [v, p] : scan_manifests(repo, bundle)) history[v] = p;
  }
  return std::nullopt;
}

PatchRef patch_ref(const crypto::Digest& blake2b, std::uint64_t length, std::int64_t from,
                   const crypto::Digest& from_root, const crypto::Digest& from_manifest,
                   DeltaEngine engine) {
  PatchRef p;
  p.from = from;
  p.from_root = from_root;
  p.from_manifest = from_manifest;
  p.engine = engine;
  p.length = length;
  p.blake2b = blake2b;
  p.path = patch_object_path(blake2b);
  return p;
}

// The patches to new version `m` (index `index`, already stored with its packs): from 0, and
// from each rung of the ladder that can be rebuilt. Sorted by `from`.
Result<std::vector<PatchRef>> make_patches(const std::string& repo, const Manifest& m,
                                           const ChunkIndex& index,
                                           const std::vector<std::int64_t>& ladder,
                                           const PublishOptions& o, PublishResult& result,
                                           FileSystem& fs) {
  PackChunkReader reader(repo);
  const std::string tmp_dir = in_repo(repo, kObjectsDir);
  OUTPOST_ASSIGN_OR_RETURN(std::unique_ptr<StreamFile> now, StreamFile::create(tmp_dir));
  OUTPOST_RETURN_IF_ERROR(build_stream(m, index, reader, *now));
  std::map<std::int64_t, std::string> history = load_history(repo, m.bundle);
  bool scanned = false;
  // The previous version's patch from 0: its frames of unchanged segments are copied.
  std::string previous;
  if (std::optional<PublishedManifest> prev =
          m.version > 1 ? find_version(repo, m.bundle, m.version - 1, history, scanned)
                        : std::nullopt) {
    for (const PatchRef& p : prev->manifest.patches) {
      if (p.from == 0) previous = p.path;
    }
  }
  std::vector<PatchRef> out;
  auto full = publish_detail::write_full_patch(repo, *now, previous, o.full_patch_segment,
                                               o.patch_level, fs);
  if (!full.ok()) return full.error().With("writing the full patch");
  const std::uint64_t full_length = full->length;
  result.full_patch_segments = full->segments;
  result.full_patch_reused = full->reused;
  out.push_back(patch_ref(full->blake2b, full->length, 0, crypto::Digest{}, crypto::Digest{},
                          DeltaEngine::kZstd));
  if (ladder.empty() || now->size() > o.max_ladder_stream) return out;
  OUTPOST_RETURN_IF_ERROR(now->map());

  std::set<std::int64_t> done;
  for (std::int64_t rung : ladder) {
    const std::int64_t from = m.version - rung;
    if (from < 1 || !done.insert(from).second) continue;
    std::optional<PublishedManifest> old = find_version(repo, m.bundle, from, history, scanned);
    if (!old) continue;  // not in this repository any more: no patch from it
    if (content_stream_size(old->manifest) > o.max_ladder_stream) continue;
    auto idx = load_index(repo, old->manifest);
    if (!idx.ok()) {
      if (idx.error().code() == Code::kNotFound) continue;
      return idx.error().With("building the patch from version " + std::to_string(from));
    }
    OUTPOST_ASSIGN_OR_RETURN(std::unique_ptr<StreamFile> before, StreamFile::create(tmp_dir));
    if (Status s = build_stream(old->manifest, *idx, reader, *before); !s.ok()) {
      if (s.code() == Code::kNotFound) continue;  // a pack of it is gone
      return s.With("building the patch from version " + std::to_string(from));
    }
    OUTPOST_RETURN_IF_ERROR(before->map());
    DeltaParams params;
    params.engine = DeltaEngine::kSuffix;
    params.level = o.patch_level;
    auto patch = encode_delta(before->view(), now->view(), params);
    if (!patch.ok()) {
      return patch.error().With("building the patch from version " + std::to_string(from));
    }
    // A node never picks a patch larger than the one from 0: do not store it. Nor one that
    // saves too little to pay for its place in the manifest (kMinRungSaving).
    if (patch->size() >= full_length) continue;
    if (full_length - patch->size() < kMinRungSaving) continue;
    PatchRef p = patch_ref(crypto::blake2b(*patch), patch->size(), from, old->manifest.content_root,
                           crypto::sha256(old->bytes), DeltaEngine::kSuffix);
    OUTPOST_RETURN_IF_ERROR(write_repo_file(repo, p.path, *patch, fs));
    out.push_back(std::move(p));
  }
  std::sort(out.begin(), out.end(),
            [](const PatchRef& a, const PatchRef& b) { return a.from < b.from; });
  return out;
}
// ---- step 1: the delegated role that signs this bundle -------------------------------------

// The first delegation that matches the bundle's target path, as a TUF client searches, and
// that delegates it to `key`. kFailedPrecondition naming what the repository owner must do.
Result<std::string> signing_role(const RepositoryState& st, const std::string& bundle,
                                 const crypto::SecretKey& key) {
  const std::string target = manifest_target_path(bundle);
  const tuf::DelegatedRole* role = nullptr;
  if (st.targets.delegations) {
    for (const auto& r : st.targets.delegations->roles) {
      if (r.matches(target)) {
        role = &r;
        break;
      }
    }
  }
  if (role == nullptr) {
    return Status::FailedPrecondition("no delegation covers bundle name " + bundle +
                                      ": ask the repository owner to run 'outpost repo delegate'");
  }
  const std::string pub_id = key.public_key().keyid();
  if (std::find(role->keyids.begin(), role->keyids.end(), pub_id) == role->keyids.end()) {
    return Status::FailedPrecondition("key " + pub_id.substr(0, 16) +
                                      " is not delegated bundle name " + bundle +
                                      ": ask the repository owner to run 'outpost repo delegate'");
  }
  return role->name;
}

// ---- step 2: the chunks the repository already stores --------------------------------------

// The chunks of the current version of every bundle, by id, with the packs that hold them;
// and the current version of the bundle being published.
struct ChunkCatalog {
  std::vector<crypto::Digest> packs;  // by slot
  std::unordered_map<crypto::Digest, std::uint32_t, DigestHash> pack_slot;
  std::unordered_map<crypto::Digest, ChunkLocation, DigestHash> chunks;
  std::optional<PublishedManifest> previous;
};

Result<ChunkCatalog> load_chunk_catalog(const std::string& repo, const RepositoryState& st,
                                        const std::string& publishing) {
  ChunkCatalog cat;
  for (const auto& [rname, t] : st.roles) {
    for (const auto& [path, tf] : t.targets) {
      (void)tf;
      const std::optional<std::string> bundle = bundle_of_target(path);
      if (!bundle) continue;
      auto pm = load_current_manifest(repo, st, *bundle);
      if (!pm.ok()) return pm.error().With("reading the repository");
      auto idx = load_index(repo, pm->manifest);
      if (!idx.ok()) return idx.error();
      std::vector<std::uint32_t> slots(idx->packs.size(), kNewPack);
      for (std::size_t p = 0; p < idx->packs.size(); ++p) {
        const crypto::Digest& pid = idx->packs[p];
        auto found = cat.pack_slot.find(pid);
        if (found != cat.pack_slot.end()) {
          slots[p] = found->second;
        } else if (real_fs().exists(in_repo(repo, pack_object_path(pid)))) {
          slots[p] = static_cast<std::uint32_t>(cat.packs.size());
          cat.pack_slot.emplace(pid, slots[p]);
          cat.packs.push_back(pid);
        }
      }
      for (const ChunkEntry& c : idx->chunks) {
        if (slots[c.pack] == kNewPack) continue;  // pack missing: store the chunk again
        cat.chunks.emplace(c.id,
                           ChunkLocation{slots[c.pack], c.offset, c.stored_length, c.raw_length});
      }
      if (*bundle == publishing) cat.previous = std::move(pm).value();
    }
  }
  return cat;
}

// ---- step 3: reading the source files -------------------------------------------------------

// What identifies a file's content without reading it: a write changes mtime and ctime, a
// replacement (rename over it) the inode.
struct FileIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  struct timespec mtime {};
  struct timespec ctime {};

  static FileIdentity of(const struct stat& st) {
    return FileIdentity{st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
  }
  bool operator==(const FileIdentity& o) const {
    return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
           mtime.tv_nsec == o.mtime.tv_nsec && ctime.tv_sec == o.ctime.tv_sec &&
           ctime.tv_nsec == o.ctime.tv_nsec;
  }
};

bool not_before(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec >= b.tv_nsec);
}

Status changed_while_published(const std::string& full, const std::string& how) {
  return Status::Aborted(full + " changed while it was being published (" + how +
                         "): nothing was published; publish again once it is no longer written");
}

// Chunks one source file through its own descriptor, and refuses it when it changed while it
// was read: the bytes read would then be neither its old nor its new content. A change is
// seen by its identity (size, mtime and ctime in ns, inode) before and after reading, and the
// path naming another file after. The kernel stamps times with a coarse clock, so a write in
// the same tick as the first stat would leave the times equal: a file whose times are not
// older than the start of the read is read again and its chunk ids compared.
Status chunk_source_file(const std::string& full, const std::string& bundle_path,
                         std::uint64_t listed_size, const PublishOptions& o,
                         const std::function<Status(ByteView, const crypto::Digest&)>& on_chunk) {
  struct timespec started {};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &started);
  OUTPOST_ASSIGN_OR_RETURN(detail::Fd fd, detail::open_read(full));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return detail::errno_status(errno, "reading", full);
  const FileIdentity before = FileIdentity::of(st);
  if (static_cast<std::uint64_t>(st.st_size) != listed_size) {
    return changed_while_published(full, "its size is " + std::to_string(st.st_size) + " bytes, " +
                                             std::to_string(listed_size) +
                                             " when the folder was listed");
  }
  const int raw = fd.get();
  std::vector<crypto::Digest> ids;
  std::uint64_t offset = 0;
  OUTPOST_RETURN_IF_ERROR(chunk_stream(
      [raw, &full](std::span<std::uint8_t> dst) { return detail::read_some(raw, dst, full); },
      o.chunking,
      [&](ByteView c) -> Status {
        const crypto::Digest id = crypto::blake2b(c);
        ids.push_back(id);
        OUTPOST_RETURN_IF_ERROR(on_chunk(c, id));
        offset += c.size();
        if (o.after_chunk_read) o.after_chunk_read(bundle_path, offset);
        return Status::Ok();
      }));
  if (offset != listed_size) {
    return changed_while_published(
        full, std::to_string(offset) + " bytes read, " + std::to_string(listed_size) + " listed");
  }
  if (::fstat(fd.get(), &st) != 0) return detail::errno_status(errno, "reading", full);
  if (!(FileIdentity::of(st) == before)) {
    return changed_while_published(full, "its size or modification time changed");
  }
  struct stat now {};
  if (::stat(full.c_str(), &now) != 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev) {
    return changed_while_published(full, "it was replaced or removed");
  }
  if (!not_before(st.st_mtim, started) && !not_before(st.st_ctim, started)) return Status::Ok();
  // Modified in the tick the read started in: compare with a second read.
  if (::lseek(raw, 0, SEEK_SET) != 0) return detail::errno_status(errno, "reading", full);
  std::size_t k = 0;
  bool same = true;
  OUTPOST_RETURN_IF_ERROR(chunk_stream(
      [raw, &full](std::span<std::uint8_t> dst) { return detail::read_some(raw, dst, full); },
      o.chunking,
      [&](ByteView c) -> Status {
        same = same && k < ids.size() && crypto::digest_equal(crypto::blake2b(c), ids[k]);
        ++k;
        return Status::Ok();
      }));
  if (!same || k != ids.size()) {
    return changed_while_published(full, "a second read found other bytes");
  }
  return Status::Ok();
}

// The bundle's content as read: the chunk references by file, the content root, and the new
// pack holding the chunks the repository did not have (not committed yet).
struct Ingested {
  struct Ref {
    crypto::Digest id;
    ChunkLocation loc;
  };
  std::vector<Ref> refs;
  std::vector<std::uint32_t> file_chunks;
  crypto::Digest content_root{};
  std::uint64_t content_size = 0;
  std::unique_ptr<PackFileWriter> pack;
  std::uint64_t new_chunks = 0;
  std::uint64_t reused_chunks = 0;
};

// Streams every file: hashes the content, chunks it, appends chunks the catalog lacks to one
// new pack (a temp file under packs/ until step 5 commits it), adding them to the catalog.
Result<Ingested> ingest_files(const std::string& repo, const BundleSource& src,
                              const PublishOptions& o, ChunkCatalog& cat, FileSystem& fs) {
  Ingested in;
  ContentHasher hasher;
  Compressor compressor(o.zstd_level);
  in.file_chunks.reserve(src.files.size());
  for (const SourceFile& f : src.files) {
    const std::string full = src.full_path(f);
    if (Status s = hasher.add_file(f.path, f.mode, f.size); !s.ok()) {
      return changed_while_published(full, s.message());
    }
    std::uint32_t count = 0;
    Status s = chunk_source_file(
        full, f.path, f.size, o, [&](ByteView c, const crypto::Digest& id) -> Status {
          if (Status hs = hasher.update(c); !hs.ok())
            return changed_while_published(full, hs.message());
          auto it = cat.chunks.find(id);
          if (it != cat.chunks.end()) {
            ++in.reused_chunks;
            in.refs.push_back({id, it->second});
          } else {
            if (!in.pack) {
              OUTPOST_ASSIGN_OR_RETURN(in.pack,
                                       PackFileWriter::create(in_repo(repo, kPacksDir), fs));
            }
            OUTPOST_ASSIGN_OR_RETURN(Bytes frame, compressor.compress(c));
            OUTPOST_ASSIGN_OR_RETURN(std::uint64_t off,
                                     in.pack->writer().add_chunk(id, c.size(), frame));
            const ChunkLocation loc{kNewPack, off, static_cast<std::uint32_t>(frame.size()),
                                    static_cast<std::uint32_t>(c.size())};
            cat.chunks.emplace(id, loc);
            ++in.new_chunks;
            in.refs.push_back({id, loc});
          }
          ++count;
          return Status::Ok();
        });
    if (!s.ok()) {
      if (s.code() == Code::kAborted) return s;  // names the file already
      return s.With("publishing " + full);
    }
    in.file_chunks.push_back(count);
  }
  auto root = hasher.finish();
  if (!root.ok())
    return Status::Aborted(root.error().message() + ": it changed while publishing; publish again");
  in.content_root = *root;
  in.content_size = hasher.total_size();
  return in;
}

// ---- step 4: the manifest, and whether anything changed -------------------------------------

Manifest manifest_for(const BundleSource& src, const Ingested& in, const PublishOptions& o,
                      std::int64_t now) {
  Manifest m;
  m.bundle = src.name;
  m.kind = src.kind;
  m.meta = src.meta;
  m.published = now;
  m.chunking = o.chunking;
  m.content_root = in.content_root;
  m.content_size = in.content_size;
  m.files.reserve(src.files.size());
  for (const SourceFile& f : src.files) {
    m.files.push_back(FileEntry{f.path, f.size, f.mode, media_type_for(f.path)});
  }
  return m;
}

bool same_content(const Manifest& a, const Manifest& b) {
  return crypto::digest_equal(a.content_root, b.content_root) && a.files == b.files &&
         a.kind == b.kind && a.meta == b.meta;
}

// ---- step 5: the pack and the chunk index ----------------------------------------------------

// Commits the new pack (if any) and writes the chunk index (packs numbered in order of first
// use), filling m.index. Returns the index, which the patches are built from.
Result<ChunkIndex> store_chunks(const std::string& repo, Ingested& in, const ChunkCatalog& cat,
                                Manifest& m, PublishResult& result, FileSystem& fs) {
  crypto::Digest new_pack_id{};
  if (in.pack) {
    OUTPOST_ASSIGN_OR_RETURN(PackFileInfo info, in.pack->commit());
    new_pack_id = info.id;
    result.pack_id = info.id;
    result.pack_bytes = info.size;
  }
  ChunkIndex index;
  index.file_chunks = std::move(in.file_chunks);
  index.chunks.reserve(in.refs.size());
  std::unordered_map<std::uint32_t, std::uint32_t> numbers;
  for (const Ingested::Ref& r : in.refs) {
    auto [it, fresh] =
        numbers.emplace(r.loc.pack_slot, static_cast<std::uint32_t>(index.packs.size()));
    if (fresh) {
      index.packs.push_back(r.loc.pack_slot == kNewPack ? new_pack_id : cat.packs[r.loc.pack_slot]);
    }
    index.chunks.push_back(
        ChunkEntry{r.id, r.loc.raw_length, it->second, r.loc.offset, r.loc.stored_length});
  }
  in.refs.clear();
  in.refs.shrink_to_fit();
  const Bytes index_bytes = index.encode();
  m.index.blake2b = crypto::blake2b(index_bytes);
  m.index.length = index_bytes.size();
  m.index.path = index_object_path(m.index.blake2b);
  OUTPOST_RETURN_IF_ERROR(write_repo_file(repo, m.index.path, index_bytes, fs));
  return index;
}

// ---- step 7: the manifest file and the publisher's history -----------------------------------

// Writes the manifest (and beside it the same bytes zstd-compressed: what a node fetches when
// no metadata update file carries the manifest) and records it in the bundle's history.
// Returns the manifest's bytes.
Result<Bytes> write_manifest(const std::string& repo, const Manifest& m, PublishResult& result,
                             FileSystem& fs) {
  Bytes bytes = m.encode();
  const std::string sha = crypto::hex(crypto::sha256(bytes));
  result.manifest_path = manifest_file_path(m.bundle, sha);
  {
    Compressor packer(kUpdateLevel);
    OUTPOST_ASSIGN_OR_RETURN(Bytes packed, packer.compress(bytes));
    OUTPOST_RETURN_IF_ERROR(
        write_repo_file(repo, compressed_manifest_file_path(m.bundle, sha), packed, fs));
  }
  OUTPOST_RETURN_IF_ERROR(write_repo_file(repo, result.manifest_path, bytes, fs));
  std::map<std::int64_t, std::string> history = load_history(repo, m.bundle);
  if (history.empty() && m.version > 1) history = scan_manifests(repo, m.bundle);
  history[m.version] = result.manifest_path;
  OUTPOST_RETURN_IF_ERROR(write_history(repo, m.bundle, history, fs));
  return bytes;
}

// ---- step 8: the delegated role's metadata ----------------------------------------------------

// The role's next version listing the new manifest, signed by the publisher; records it in
// the snapshot's meta (written in step 9).
Status sign_role(const std::string& repo, RepositoryState& st, const std::string& role_name,
                 const Manifest& m, ByteView manifest_bytes, const PublishOptions& o,
                 std::int64_t now, FileSystem& fs) {
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
  role_meta.targets[m.target_path()] =
      tuf::TargetFile{static_cast<std::int64_t>(manifest_bytes.size()),
                      crypto::hex(crypto::sha256(manifest_bytes)), std::move(custom)};
  OUTPOST_RETURN_IF_ERROR(write_metadata(repo,
                                         versioned_metadata_name(role_meta.version, role_name),
                                         role_meta.to_signed(), {o.publisher_key}, nullptr, fs));
  st.snapshot.meta[role_name + ".json"] =
      tuf::MetaFile{role_meta.version, std::nullopt, std::nullopt};
  st.roles[role_name] = std::move(role_meta);
  return Status::Ok();
}

}  // namespace

// Every step before the role metadata only adds files no published metadata names yet
// (content-addressed objects, a pack, a manifest), so a reader at any moment sees the old
// release; the snapshot and then timestamp.json switch to the new one. A failure before them,
// such as a file that changed while it was read, leaves the published release as it was.
Result<PublishResult> publish(const std::string& repo, const PublishOptions& o) {
  if (o.publisher_key == nullptr || o.snapshot_key == nullptr || o.timestamp_key == nullptr) {
    return Status::InvalidArgument("publish needs the publisher, snapshot and timestamp keys");
  }
  OUTPOST_RETURN_IF_ERROR(o.chunking.validate());
  OUTPOST_RETURN_IF_ERROR(publish_detail::full_patch_cuts(o.full_patch_segment).status());
  std::optional<std::vector<std::int64_t>> ladder_option;
  if (o.patch_ladder) {
    auto l = normalize_ladder(*o.patch_ladder);
    if (!l.ok()) return l.error().With("patch ladder");
    ladder_option = std::move(l).value();
  }
  OUTPOST_ASSIGN_OR_RETURN(BundleSource src, read_bundle_dir(o.source_dir, o.overrides));
  OUTPOST_ASSIGN_OR_RETURN(RepoLock lock, RepoLock::acquire(repo));
  OUTPOST_ASSIGN_OR_RETURN(RepositoryState st, load_repository(repo));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "snapshot", *o.snapshot_key));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "timestamp", *o.timestamp_key));
  OUTPOST_ASSIGN_OR_RETURN(RepositoryConfig config, config_or_default(repo));
  const std::vector<std::int64_t> patch_ladder = ladder_option.value_or(config.patch_ladder);
  const std::int64_t now = clock_of(o.clock).now();
  FileSystem& fs = o.fs != nullptr ? *o.fs : real_fs();

  // 1. who signs, 2. what the repository already stores
  OUTPOST_ASSIGN_OR_RETURN(const std::string role_name,
                           signing_role(st, src.name, *o.publisher_key));
  OUTPOST_ASSIGN_OR_RETURN(ChunkCatalog catalog, load_chunk_catalog(repo, st, src.name));
  // 3. read every file once
  OUTPOST_ASSIGN_OR_RETURN(Ingested in, ingest_files(repo, src, o, catalog, fs));
  PublishResult result;
  result.bundle = src.name;
  result.new_chunks = in.new_chunks;
  result.reused_chunks = in.reused_chunks;
  // 4. the manifest; nothing more when the content is unchanged (the uncommitted pack, only
  //    there when stored chunks went missing, is dropped with its temp file)
  Manifest m = manifest_for(src, in, o, now);
  result.files = m.files.size();
  result.bytes = m.content_size;
  if (catalog.previous) {
    const PublishedManifest& previous = *catalog.previous;
    if (same_content(previous.manifest, m)) {
      result.unchanged = true;
      result.version = previous.manifest.version;
      result.manifest_path = previous.path;
      result.new_chunks = 0;
      return result;
    }
    m.version = previous.manifest.version + 1;
  } else {
    m.version = 1;
  }
  // 5. the pack and the chunk index
  OUTPOST_ASSIGN_OR_RETURN(ChunkIndex index, store_chunks(repo, in, catalog, m, result, fs));
  // 6. the patches, from the content streams rebuilt out of the packs just written
  OUTPOST_ASSIGN_OR_RETURN(m.patches, make_patches(repo, m, index, patch_ladder, o, result, fs));
  result.patches = m.patches;
  // 7. the manifest and the bundle's history
  OUTPOST_ASSIGN_OR_RETURN(const Bytes manifest_bytes, write_manifest(repo, m, result, fs));
  // 8. the delegated role's metadata
  OUTPOST_RETURN_IF_ERROR(sign_role(repo, st, role_name, m, manifest_bytes, o, now, fs));
  // 9. the snapshot, the metadata update files, then timestamp.json last
  OUTPOST_RETURN_IF_ERROR(write_snapshot_and_timestamp(repo, st, *o.snapshot_key, *o.timestamp_key,
                                                       now, o.expiry, config.update_ladder, fs, {},
                                                       release_patch_work(patch_ladder)));
  result.version = m.version;
  return result;
}

// ---- batch publish: many bundles, one release ------------------------------------------------

namespace {

// The publisher's chunk catalog kept between publications (docs/format-repository.md,
// "Publisher's chunk catalog"), so a release reads what changed instead of every bundle's
// manifest and index. Valid only for the snapshot version it names; anything else (missing,
// damaged, another snapshot, a pack gone) means a scan.
constexpr char kCatalogMagic[8] = {'o', 'u', 't', 'c', 'a', 't', '0', '1'};
constexpr std::uint64_t kMaxCatalogBytes = 1u << 30;
constexpr std::size_t kCatalogEntryBytes = 32 + 4 + 8 + 4 + 4;

std::optional<ChunkCatalog> read_saved_catalog(const std::string& repo,
                                               std::int64_t snapshot_version) {
  auto bytes = read_repo_file(in_repo(repo, kCatalogPath), kMaxCatalogBytes);
  if (!bytes.ok() || bytes->size() < 8 + 8 + 4 + 8) return std::nullopt;
  const Bytes& b = *bytes;
  if (std::memcmp(b.data(), kCatalogMagic, 8) != 0) return std::nullopt;
  if (get_u64le(b.data() + 8) != static_cast<std::uint64_t>(snapshot_version)) return std::nullopt;
  std::size_t at = 16;
  const std::uint32_t packs = get_u32le(b.data() + at);
  at += 4;
  if (packs > (b.size() - at) / 32) return std::nullopt;
  ChunkCatalog cat;
  for (std::uint32_t i = 0; i < packs; ++i, at += 32) {
    crypto::Digest id;
    std::memcpy(id.data(), b.data() + at, 32);
    if (!real_fs().exists(in_repo(repo, pack_object_path(id)))) return std::nullopt;
    cat.pack_slot.emplace(id, i);
    cat.packs.push_back(id);
  }
  if (b.size() - at < 8) return std::nullopt;
  const std::uint64_t chunks = get_u64le(b.data() + at);
  at += 8;
  if (chunks != (b.size() - at) / kCatalogEntryBytes || (b.size() - at) % kCatalogEntryBytes != 0) {
    return std::nullopt;
  }
  cat.chunks.reserve(static_cast<std::size_t>(chunks));
  for (std::uint64_t i = 0; i < chunks; ++i, at += kCatalogEntryBytes) {
    crypto::Digest id;
    std::memcpy(id.data(), b.data() + at, 32);
    ChunkLocation loc{get_u32le(b.data() + at + 32), get_u64le(b.data() + at + 36),
                      get_u32le(b.data() + at + 44), get_u32le(b.data() + at + 48)};
    if (loc.pack_slot >= packs) return std::nullopt;
    cat.chunks.emplace(id, loc);
  }
  return cat;
}

Status save_catalog(const std::string& repo, const ChunkCatalog& cat, std::int64_t snapshot_version,
                    FileSystem& fs) {
  Bytes out(8 + 8 + 4 + 32 * cat.packs.size() + 8 + kCatalogEntryBytes * cat.chunks.size());
  std::size_t at = 0;
  auto put = [&](std::uint64_t v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
    at += n;
  };
  std::memcpy(out.data(), kCatalogMagic, 8);
  at = 8;
  put(static_cast<std::uint64_t>(snapshot_version), 8);
  put(cat.packs.size(), 4);
  for (const auto& id : cat.packs) {
    std::memcpy(out.data() + at, id.data(), 32);
    at += 32;
  }
  put(cat.chunks.size(), 8);
  for (const auto& [id, loc] : cat.chunks) {
    std::memcpy(out.data() + at, id.data(), 32);
    at += 32;
    put(loc.pack_slot, 4);
    put(loc.offset, 8);
    put(loc.stored_length, 4);
    put(loc.raw_length, 4);
  }
  return write_repo_file(repo, kCatalogPath, out, fs);
}

// After a bundle's pack is committed, its chunks (kNewPack in the catalog) get the pack's slot,
// so the next bundles of the batch reuse them.
void adopt_new_pack(ChunkCatalog& cat, const ChunkIndex& index,
                    const std::optional<crypto::Digest>& pack_id) {
  if (!pack_id) return;
  auto number = std::find(index.packs.begin(), index.packs.end(), *pack_id);
  if (number == index.packs.end()) return;
  const auto n = static_cast<std::uint32_t>(number - index.packs.begin());
  const auto slot = static_cast<std::uint32_t>(cat.packs.size());
  cat.packs.push_back(*pack_id);
  cat.pack_slot.emplace(*pack_id, slot);
  for (const ChunkEntry& c : index.chunks) {
    if (c.pack != n) continue;
    auto it = cat.chunks.find(c.id);
    if (it != cat.chunks.end() && it->second.pack_slot == kNewPack) it->second.pack_slot = slot;
  }
}

// Chunks an unchanged bundle's read added to the catalog for a pack that is then dropped. Only
// that bundle's own chunks: scanning the whole catalog for each unchanged bundle of a batch
// made a release of 10,000 bundles spend a tenth of its time here.
void forget_new_chunks(ChunkCatalog& cat, const Ingested& in) {
  for (const Ingested::Ref& r : in.refs) {
    if (r.loc.pack_slot != kNewPack) continue;
    auto it = cat.chunks.find(r.id);
    if (it != cat.chunks.end() && it->second.pack_slot == kNewPack) cat.chunks.erase(it);
  }
}

// One new version of each touched role, listing every new manifest of the batch.
struct SignedManifest {
  std::string role;
  Manifest manifest;
  Bytes bytes;
};
Status sign_roles(const std::string& repo, RepositoryState& st,
                  const std::vector<SignedManifest>& signed_manifests, const PublishOptions& o,
                  std::int64_t now, FileSystem& fs) {
  std::map<std::string, tuf::Targets> roles;
  for (const SignedManifest& s : signed_manifests) {
    auto [it, fresh] = roles.try_emplace(s.role);
    tuf::Targets& role_meta = it->second;
    if (fresh) {
      if (auto old = st.roles.find(s.role); old != st.roles.end()) {
        role_meta = old->second;
        role_meta.version += 1;
      } else {
        role_meta.version = 1;
      }
      role_meta.expires = now + o.expiry.delegated;
      role_meta.delegations.reset();
    }
    Json custom = Json::object();
    Json outpost = Json::object();
    outpost.set("version", s.manifest.version);
    outpost.set("kind", s.manifest.kind);
    custom.set("outpost", std::move(outpost));
    role_meta.targets[s.manifest.target_path()] =
        tuf::TargetFile{static_cast<std::int64_t>(s.bytes.size()),
                        crypto::hex(crypto::sha256(s.bytes)), std::move(custom)};
  }
  for (auto& [name, role_meta] : roles) {
    OUTPOST_RETURN_IF_ERROR(write_metadata(repo, versioned_metadata_name(role_meta.version, name),
                                           role_meta.to_signed(), {o.publisher_key}, nullptr, fs));
    st.snapshot.meta[name + ".json"] = tuf::MetaFile{role_meta.version, std::nullopt, std::nullopt};
    st.roles[name] = std::move(role_meta);
  }
  return Status::Ok();
}

// The bundle folders directly under `dir`, in name order, each read as publish() reads one
// (hidden entries are skipped). kInvalidArgument naming the folder for a bad one, or two
// folders naming the same bundle.
Result<std::vector<BundleSource>> read_batch_dir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return Status::InvalidArgument("cannot read the batch folder " + dir + ": " +
                                   std::strerror(errno));
  }
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.empty() || name[0] == '.') continue;
    struct stat sb {};
    if (::stat((dir + "/" + name).c_str(), &sb) == 0 && S_ISDIR(sb.st_mode)) names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  if (names.empty()) {
    return Status::InvalidArgument("the batch folder " + dir +
                                   " holds no bundle folder (each needs its bundle.json)");
  }
  std::vector<BundleSource> out;
  std::map<std::string, std::string> seen;  // bundle name -> folder
  for (const std::string& name : names) {
    const std::string folder = dir + "/" + name;
    auto src = read_bundle_dir(folder);
    if (!src.ok()) return src.error().With("bundle folder " + folder + " (nothing was published)");
    auto [it, fresh] = seen.emplace(src->name, folder);
    if (!fresh) {
      return Status::InvalidArgument("bundle folders " + it->second + " and " + folder +
                                     " both name bundle " + src->name + " (nothing was published)");
    }
    out.push_back(std::move(src).value());
  }
  return out;
}

}  // namespace

Result<BatchPublishResult> publish_batch(const std::string& repo, const PublishOptions& o) {
  if (o.publisher_key == nullptr || o.snapshot_key == nullptr || o.timestamp_key == nullptr) {
    return Status::InvalidArgument("publish needs the publisher, snapshot and timestamp keys");
  }
  if (o.overrides.name || o.overrides.kind || o.overrides.title) {
    return Status::InvalidArgument(
        "--bundle, --kind and --title name one bundle: a batch takes them from each folder's "
        "bundle.json");
  }
  OUTPOST_RETURN_IF_ERROR(o.chunking.validate());
  OUTPOST_RETURN_IF_ERROR(publish_detail::full_patch_cuts(o.full_patch_segment).status());
  std::optional<std::vector<std::int64_t>> ladder_option;
  if (o.patch_ladder) {
    auto l = normalize_ladder(*o.patch_ladder);
    if (!l.ok()) return l.error().With("patch ladder");
    ladder_option = std::move(l).value();
  }
  OUTPOST_ASSIGN_OR_RETURN(std::vector<BundleSource> sources, read_batch_dir(o.source_dir));
  OUTPOST_ASSIGN_OR_RETURN(RepoLock lock, RepoLock::acquire(repo));
  OUTPOST_ASSIGN_OR_RETURN(RepositoryState st, load_repository(repo));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "snapshot", *o.snapshot_key));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "timestamp", *o.timestamp_key));
  OUTPOST_ASSIGN_OR_RETURN(RepositoryConfig config, config_or_default(repo));
  const std::vector<std::int64_t> patch_ladder = ladder_option.value_or(config.patch_ladder);
  const std::int64_t now = clock_of(o.clock).now();
  FileSystem& fs = o.fs != nullptr ? *o.fs : real_fs();
  auto named = [&](const BundleSource& src) {
    return "bundle " + src.name + " (" + src.dir + "; nothing was published)";
  };

  // 1. who signs each bundle: every refusal before anything is written
  std::vector<std::string> roles;
  for (const BundleSource& src : sources) {
    auto role = signing_role(st, src.name, *o.publisher_key);
    if (!role.ok()) return role.error().With(named(src));
    roles.push_back(std::move(role).value());
  }
  // 2. what the repository stores: the saved catalog, else a scan of every bundle
  BatchPublishResult out;
  ChunkCatalog catalog;
  if (auto saved = read_saved_catalog(repo, st.snapshot.version)) {
    catalog = std::move(*saved);
    out.catalog_reused = true;
  } else {
    OUTPOST_ASSIGN_OR_RETURN(catalog, load_chunk_catalog(repo, st, ""));
  }
  // 3-7. per bundle: read, pack, index, patches, manifest (files no metadata names yet)
  std::vector<SignedManifest> to_sign;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    const BundleSource& src = sources[i];
    std::optional<PublishedManifest> previous;
    if (auto pm = load_current_manifest(repo, st, src.name); pm.ok()) {
      previous = std::move(pm).value();
    } else if (!pm.error().IsNotFound()) {
      return pm.error().With(named(src));
    }
    auto in = ingest_files(repo, src, o, catalog, fs);
    if (!in.ok()) return in.error().With(named(src));
    PublishResult result;
    result.bundle = src.name;
    result.new_chunks = in->new_chunks;
    result.reused_chunks = in->reused_chunks;
    Manifest m = manifest_for(src, *in, o, now);
    result.files = m.files.size();
    result.bytes = m.content_size;
    if (previous && same_content(previous->manifest, m)) {
      forget_new_chunks(catalog, *in);
      result.unchanged = true;
      result.version = previous->manifest.version;
      result.manifest_path = previous->path;
      result.new_chunks = 0;
      out.bundles.push_back(std::move(result));
      continue;
    }
    m.version = previous ? previous->manifest.version + 1 : 1;
    auto index = store_chunks(repo, *in, catalog, m, result, fs);
    if (!index.ok()) return index.error().With(named(src));
    adopt_new_pack(catalog, *index, result.pack_id);
    auto patches = make_patches(repo, m, *index, patch_ladder, o, result, fs);
    if (!patches.ok()) return patches.error().With(named(src));
    m.patches = std::move(patches).value();
    result.patches = m.patches;
    auto bytes = write_manifest(repo, m, result, fs);
    if (!bytes.ok()) return bytes.error().With(named(src));
    result.version = m.version;
    to_sign.push_back(SignedManifest{roles[i], std::move(m), std::move(bytes).value()});
    out.bundles.push_back(std::move(result));
  }
  if (to_sign.empty()) return out;  // nothing changed: no release
  // 8. one new version of each touched role, 9. one snapshot, its update files, one timestamp
  OUTPOST_RETURN_IF_ERROR(sign_roles(repo, st, to_sign, o, now, fs));
  // The library file goes before the timestamp, so a node that sees the release finds it.
  auto library = [&]() -> Status {
    auto written = write_library_file(repo, st, o.patch_level, fs);
    if (!written.ok()) return written.error().With("writing the library file");
    out.library_file = written->written;
    out.library_frames = written->frames;
    out.library_frames_copied = written->copied;
    return Status::Ok();
  };
  OUTPOST_RETURN_IF_ERROR(write_snapshot_and_timestamp(repo, st, *o.snapshot_key, *o.timestamp_key,
                                                       now, o.expiry, config.update_ladder, fs,
                                                       library, release_patch_work(patch_ladder)));
  out.snapshot_version = st.snapshot.version;
  // The catalog for the next release (a failure here only costs it a scan).
  (void)save_catalog(repo, catalog, st.snapshot.version, fs);
  return out;
}

}  // namespace outpost::packaging
