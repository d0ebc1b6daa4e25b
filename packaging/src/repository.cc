#include "outpost/packaging/repository.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

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
#include "outpost/packaging/delta.h"
#include "outpost/packaging/pack.h"
#include "outpost/packaging/update_file.h"

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
  const std::string path = meta_path(repo, name);
  struct stat before {};
  const bool had = ::stat(path.c_str(), &before) == 0;
  OUTPOST_RETURN_IF_ERROR(write_repo_file(path, bytes));
  // timestamp.json is the one file rewritten in place, and nodes ask for it with
  // If-None-Match. Web servers derive ETags from the modification time in whole seconds and
  // the size (nginx: "mtime-size"), so a new timestamp of the same length written within the
  // same second as the old one would look unchanged: its mtime is moved past the old one's.
  struct stat after {};
  if (had && ::stat(path.c_str(), &after) == 0 && after.st_mtim.tv_sec <= before.st_mtim.tv_sec) {
    struct timespec times[2];
    times[0].tv_sec = 0;
    times[0].tv_nsec = UTIME_OMIT;
    times[1].tv_sec = before.st_mtim.tv_sec + 1;
    times[1].tv_nsec = 0;
    if (::utimensat(AT_FDCWD, path.c_str(), times, 0) != 0) {
      return Status::Unavailable("setting the modification time of " + path + ": " +
                                 std::strerror(errno));
    }
  }
  if (out != nullptr) *out = std::move(bytes);
  return Status::Ok();
}

// New snapshot (version + 1, the given meta), the metadata update files to it (one per rung
// of update_ladder whose snapshot exists), then the timestamp pointing at it.
Status write_snapshot_and_timestamp(const std::string& repo, RepositoryState& st,
                                    const crypto::SecretKey& snapshot_key,
                                    const crypto::SecretKey& timestamp_key, std::int64_t now,
                                    const Expiries& expiry,
                                    const std::vector<std::int64_t>& update_ladder) {
  st.snapshot.version += 1;
  st.snapshot.expires = now + expiry.snapshot;
  Bytes snap;
  OUTPOST_RETURN_IF_ERROR(write_metadata(repo, versioned(st.snapshot.version, "snapshot"),
                                         st.snapshot.to_signed(), {&snapshot_key}, &snap));
  if (!update_ladder.empty()) {
    auto written = write_update_files(repo, st.snapshot.version, update_ladder);
    if (!written.ok()) return written.error().With("writing metadata update files");
  }
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

constexpr std::uint64_t kMaxRepositoryJsonBytes = 1u << 20;
constexpr std::uint64_t kMaxHistoryBytes = 16u << 20;
constexpr int kFullPatchLevel = 19;

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

Json ladder_json(const std::vector<std::int64_t>& rungs) {
  Json a = Json::array();
  for (std::int64_t r : rungs) a.push(r);
  return a;
}

// A content stream in an unlinked temp file, mapped read-only once complete: the publisher
// holds big streams without holding them in its heap (the kernel pages them in and out).
class StreamFile {
 public:
  static Result<std::unique_ptr<StreamFile>> create(const std::string& dir) {
    std::string tmpl = dir + "/.tmp-stream-XXXXXX";
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0) return detail::errno_status(errno, "creating a temp file in", dir);
    ::unlink(tmpl.c_str());  // nothing is left behind, even after a crash
    auto f = std::unique_ptr<StreamFile>(new StreamFile());
    f->fd_ = detail::Fd(fd);
    f->path_ = tmpl;
    return f;
  }
  ~StreamFile() {
    if (map_ != nullptr) ::munmap(map_, size_);
  }
  StreamFile(const StreamFile&) = delete;
  StreamFile& operator=(const StreamFile&) = delete;

  Status append(ByteView bytes) {
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
    size_ += bytes.size();
    if (buffer_.size() >= (1u << 20)) return flush();
    return Status::Ok();
  }
  // Flushes and maps the file; view() is valid from then on.
  Status map() {
    OUTPOST_RETURN_IF_ERROR(flush());
    if (size_ == 0) return Status::Ok();
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_.get(), 0);
    if (p == MAP_FAILED) return detail::errno_status(errno, "mapping", path_);
    map_ = p;
    return Status::Ok();
  }
  // Reads [offset, offset + out.size()) of what was appended (after flush()).
  Status read(std::uint64_t offset, Bytes& out) {
    OUTPOST_RETURN_IF_ERROR(flush());
    std::size_t done = 0;
    while (done < out.size()) {
      const ssize_t n = ::pread(fd_.get(), out.data() + done, out.size() - done,
                                static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return detail::errno_status(errno, "reading", path_);
      if (n == 0) return Status::Internal("temp stream " + path_ + " is shorter than written");
      done += static_cast<std::size_t>(n);
    }
    return Status::Ok();
  }
  ByteView view() const {
    return map_ == nullptr ? ByteView() : ByteView(static_cast<const std::uint8_t*>(map_), size_);
  }
  std::uint64_t size() const { return size_; }

 private:
  StreamFile() = default;
  Status flush() {
    Status s = detail::write_all(fd_.get(), buffer_, path_);
    buffer_.clear();
    return s;
  }
  detail::Fd fd_;
  std::string path_;
  Bytes buffer_;
  std::uint64_t size_ = 0;
  void* map_ = nullptr;
};

// Reads chunks out of the repository's packs, keeping each pack open.
class PackChunkReader {
 public:
  explicit PackChunkReader(std::string repo) : repo_(std::move(repo)) {}

  // kNotFound when the pack is missing; kCorruption when the chunk does not match its id.
  Result<Bytes> read(const crypto::Digest& pack, const ChunkEntry& e) {
    auto it = fds_.find(pack);
    if (it == fds_.end()) {
      const std::string path = repo_ + "/" + pack_object_path(pack);
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
  const std::string ipath = repo + "/" + m.index.path;
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

// ---- the publisher's history of a bundle's manifests (targets/<bundle>/.history.json) ----
// Named with a leading '.' because no bundle name segment can start with one, so it never
// collides with a bundle whose name continues this one's ("un/ga/X/history.json" is a valid
// bundle name).

std::string history_path(const std::string& repo, const std::string& bundle) {
  return repo + "/targets/" + bundle + "/.history.json";
}

// version -> repository-relative manifest path. A missing or malformed file is an empty
// history: it is only an index, rebuilt by scanning (scan_manifests) and rewritten.
std::map<std::int64_t, std::string> load_history(const std::string& repo,
                                                 const std::string& bundle) {
  std::map<std::int64_t, std::string> out;
  auto bytes = real_fs().read_file(history_path(repo, bundle), kMaxHistoryBytes);
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
                     const std::map<std::int64_t, std::string>& history) {
  Json versions = Json::object();
  for (const auto& [v, path] : history) versions.set(std::to_string(v), path);
  Json j = Json::object();
  j.set("versions", std::move(versions));
  return write_repo_file(history_path(repo, bundle), to_bytes(j.dump(1) + "\n"));
}

// Every manifest file of the bundle in its folder, by version (repositories without a
// history file, or versions it lacks). Files that do not parse are skipped.
std::map<std::int64_t, std::string> scan_manifests(const std::string& repo,
                                                   const std::string& bundle) {
  std::map<std::int64_t, std::string> out;
  const std::string dir = repo + "/targets/" + bundle;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.size() == 64 + 14 && ends_with(n, ".manifest.json")) names.push_back(n);
  }
  ::closedir(d);
  for (const std::string& n : names) {
    auto bytes = real_fs().read_file(dir + "/" + n, kMaxManifestBytes);
    if (!bytes.ok()) continue;
    auto m = Manifest::parse(*bytes);
    if (!m.ok() || m->bundle != bundle) continue;
    out.emplace(m->version, "targets/" + bundle + "/" + n);
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
      const std::string prefix = "targets/" + bundle + "/";
      auto bytes = real_fs().read_file(repo + "/" + path, kMaxManifestBytes);
      if (path.rfind(prefix, 0) == 0 && path.size() == prefix.size() + 64 + 14 && bytes.ok() &&
          crypto::hex(crypto::sha256(*bytes)) == path.substr(prefix.size(), 64)) {
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

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

void put_varint(Bytes& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

// The patch from 0 (from the empty stream): the new content stream compressed, written as a
// delta patch (docs/format-delta.md) of engine zstd whose segments have no old slice — so
// apply_delta applies it like any other — but produced here segment by segment with zstd's
// long-distance matching, reading the stream from its temp file and writing the patch to a
// temp file: memory stays bounded (one segment in, one out, one zstd context) whatever the
// bundle's size. Stored as objects/<hh>/<blake2b>.patch (temp + fsync + rename).
// 8 MiB segments with hash and chain tables of 2^20 entries keep zstd level 19 under ~30 MiB
// (its own tables for an 8-16 MiB window would take 50-85 MiB), for a few tenths of a percent
// of ratio.
constexpr std::uint64_t kFullPatchSegment = 8ull << 20;
constexpr int kFullPatchTableLog = 20;

Result<PatchRef> write_full_patch(const std::string& repo, StreamFile& stream) {
  const std::uint64_t to_size = stream.size();
  const std::uint64_t segments = (to_size + kFullPatchSegment - 1) / kFullPatchSegment;
  const std::uint64_t largest = std::min(to_size, kFullPatchSegment);
  const std::uint64_t window = std::max<std::uint64_t>(kMinDeltaWindow, largest);
  const std::string dir = repo + "/objects";
  std::string tmp = dir + "/.tmp-patch-XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) return detail::errno_status(errno, "creating a temp file in", dir);
  detail::Fd out(fd);
  struct Remove {
    std::string path;
    ~Remove() {
      if (!path.empty()) ::unlink(path.c_str());
    }
  } remove{tmp};
  crypto::Blake2b hash;
  std::uint64_t length = 0;
  auto emit = [&](ByteView b) -> Status {
    hash.update(b);
    length += b.size();
    return detail::write_all(out.get(), b, tmp);
  };
  Bytes head = {'O', 'P', 'D', '1', static_cast<std::uint8_t>(DeltaEngine::kZstd)};
  put_varint(head, 0);
  put_varint(head, to_size);
  put_varint(head, window);
  put_varint(head, segments);
  OUTPOST_RETURN_IF_ERROR(emit(head));

  std::unique_ptr<ZSTD_CCtx, CCtxFree> cctx(ZSTD_createCCtx());
  if (!cctx) return Status::Internal("zstd: out of memory");
  Bytes in;
  Bytes frame;
  for (std::uint64_t i = 0; i < segments; ++i) {
    const std::uint64_t off = i * kFullPatchSegment;
    in.resize(static_cast<std::size_t>(std::min(kFullPatchSegment, to_size - off)));
    OUTPOST_RETURN_IF_ERROR(stream.read(off, in));
    int window_log = 10;  // zstd's smallest window
    while (window_log < kMaxWindowLog && (std::uint64_t{1} << window_log) < in.size()) {
      ++window_log;
    }
    ZSTD_CCtx* c = cctx.get();
    ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
    std::size_t r = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, kFullPatchLevel);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_enableLongDistanceMatching, 1);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log);
    const int table_log = std::min(kFullPatchTableLog, window_log + 1);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_hashLog, table_log);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_chainLog, table_log);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
    if (ZSTD_isError(r)) {
      return Status::Internal(std::string("zstd: setting parameters: ") + ZSTD_getErrorName(r));
    }
    frame.resize(ZSTD_compressBound(in.size()));
    const std::size_t n = ZSTD_compress2(c, frame.data(), frame.size(), in.data(), in.size());
    if (ZSTD_isError(n)) {
      return Status::Internal(std::string("zstd: compressing: ") + ZSTD_getErrorName(n));
    }
    Bytes seg = {1};  // kind 1: a zstd frame with the (empty) old slice as prefix
    put_varint(seg, in.size());
    put_varint(seg, 0);
    put_varint(seg, 0);
    put_varint(seg, n);
    OUTPOST_RETURN_IF_ERROR(emit(seg));
    OUTPOST_RETURN_IF_ERROR(emit(ByteView(frame).first(n)));
  }
  if (::fsync(out.get()) != 0) return detail::errno_status(errno, "syncing", tmp);
  out.reset();
  const crypto::Digest id = hash.finish();
  const std::string path = patch_object_path(id);
  const std::string full = repo + "/" + path;
  const std::string obj_dir = full.substr(0, full.rfind('/'));
  OUTPOST_RETURN_IF_ERROR(real_fs().make_dirs(obj_dir));
  if (::rename(tmp.c_str(), full.c_str()) != 0) {
    return detail::errno_status(errno, "renaming into place", full);
  }
  remove.path.clear();
  OUTPOST_RETURN_IF_ERROR(detail::fsync_dir(obj_dir));
  return patch_ref(id, length, 0, crypto::Digest{}, crypto::Digest{}, DeltaEngine::kZstd);
}

// The patches to new version `m` (index `index`, already stored with its packs): from 0, and
// from each rung of the ladder that can be rebuilt. Sorted by `from`.
Result<std::vector<PatchRef>> make_patches(const std::string& repo, const Manifest& m,
                                           const ChunkIndex& index,
                                           const std::vector<std::int64_t>& ladder,
                                           std::uint64_t max_ladder_stream) {
  PackChunkReader reader(repo);
  const std::string tmp_dir = repo + "/objects";
  OUTPOST_ASSIGN_OR_RETURN(std::unique_ptr<StreamFile> now, StreamFile::create(tmp_dir));
  OUTPOST_RETURN_IF_ERROR(build_stream(m, index, reader, *now));
  std::vector<PatchRef> out;
  auto full = write_full_patch(repo, *now);
  if (!full.ok()) return full.error().With("writing the full patch");
  const std::uint64_t full_length = full->length;
  out.push_back(std::move(full).value());
  if (ladder.empty() || now->size() > max_ladder_stream) return out;
  OUTPOST_RETURN_IF_ERROR(now->map());

  std::map<std::int64_t, std::string> history = load_history(repo, m.bundle);
  bool scanned = false;
  std::set<std::int64_t> done;
  for (std::int64_t rung : ladder) {
    const std::int64_t from = m.version - rung;
    if (from < 1 || !done.insert(from).second) continue;
    std::optional<PublishedManifest> old = find_version(repo, m.bundle, from, history, scanned);
    if (!old) continue;  // not in this repository any more: no patch from it
    if (content_stream_size(old->manifest) > max_ladder_stream) continue;
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
    auto patch = encode_delta(before->view(), now->view(), params);
    if (!patch.ok()) {
      return patch.error().With("building the patch from version " + std::to_string(from));
    }
    // A node never picks a patch larger than the one from 0: do not store it.
    if (patch->size() >= full_length) continue;
    PatchRef p = patch_ref(crypto::blake2b(*patch), patch->size(), from, old->manifest.content_root,
                           crypto::sha256(old->bytes), DeltaEngine::kSuffix);
    OUTPOST_RETURN_IF_ERROR(write_repo_file(repo + "/" + p.path, *patch));
    out.push_back(std::move(p));
  }
  std::sort(out.begin(), out.end(),
            [](const PatchRef& a, const PatchRef& b) { return a.from < b.from; });
  return out;
}

Result<std::vector<std::int64_t>> ladder_field(const Json& j, std::string_view key,
                                               const std::vector<std::int64_t>& fallback) {
  const Json* v = j.find(key);
  if (v == nullptr) return fallback;
  if (!v->is_array()) {
    return Status::Corruption(std::string(kRepositoryJson) + ": " + std::string(key) +
                              " is not an array");
  }
  std::vector<std::int64_t> rungs;
  for (const Json& r : v->as_array()) {
    if (!r.is_int()) {
      return Status::Corruption(std::string(kRepositoryJson) + ": " + std::string(key) +
                                " holds a non-integer");
    }
    rungs.push_back(r.as_int());
  }
  auto n = normalize_ladder(std::move(rungs));
  if (!n.ok()) {
    return Status::Corruption(std::string(kRepositoryJson) + ": " + std::string(key) + ": " +
                              n.error().message());
  }
  return n;
}

// The repository's configuration; defaults when outpost-repository.json is missing.
Result<RepositoryConfig> config_or_default(const std::string& repo) {
  auto c = load_repository_config(repo);
  if (!c.ok() && c.error().code() == Code::kNotFound) return RepositoryConfig{};
  return c;
}

}  // namespace

// ---- ladders and configuration -----------------------------------------------------------------

Result<std::vector<std::int64_t>> normalize_ladder(std::vector<std::int64_t> rungs) {
  std::sort(rungs.begin(), rungs.end());
  rungs.erase(std::unique(rungs.begin(), rungs.end()), rungs.end());
  for (std::int64_t r : rungs) {
    if (r < 1 || r > kMaxLadderRung) {
      return Status::InvalidArgument("ladder rung " + std::to_string(r) + " is not in 1.." +
                                     std::to_string(kMaxLadderRung));
    }
  }
  if (rungs.size() > kMaxLadderRungs) {
    return Status::InvalidArgument("a ladder has at most " + std::to_string(kMaxLadderRungs) +
                                   " rungs, " + std::to_string(rungs.size()) + " given");
  }
  return rungs;
}

Result<std::vector<std::int64_t>> parse_ladder(std::string_view text) {
  std::vector<std::int64_t> rungs;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    const std::string item(text.substr(start, comma - start));
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || end != item.c_str() + item.size()) {
      return Status::InvalidArgument("ladder '" + std::string(text.substr(0, 200)) + "': '" + item +
                                     "' is not a number; give steps back like 1,2,4,8");
    }
    rungs.push_back(static_cast<std::int64_t>(v));
    start = comma + 1;
  }
  return normalize_ladder(std::move(rungs));
}

Result<RepositoryConfig> load_repository_config(const std::string& repo) {
  const std::string path = repo + "/" + kRepositoryJson;
  if (!real_fs().exists(path)) return Status::NotFound(path + " is missing");
  OUTPOST_ASSIGN_OR_RETURN(Bytes bytes, read_repo_file(path, kMaxRepositoryJsonBytes));
  auto j = parse_json(as_chars(bytes));
  if (!j.ok()) return j.error().With(path);
  if (!j->is_object()) return Status::Corruption(path + ": not a JSON object");
  RepositoryConfig c;
  if (const Json* chunk = j->find("chunking"); chunk != nullptr && chunk->is_object()) {
    auto num = [&](std::string_view k, std::uint32_t fallback) -> std::uint32_t {
      const Json* v = chunk->find(k);
      return v != nullptr && v->is_int() && v->as_int() > 0 && v->as_int() <= 0xFFFFFFFFll
                 ? static_cast<std::uint32_t>(v->as_int())
                 : fallback;
    };
    c.chunking = ChunkerParams{num("min", c.chunking.min), num("avg", c.chunking.avg),
                               num("max", c.chunking.max)};
    if (Status s = c.chunking.validate(); !s.ok())
      return Status::Corruption(path + ": " + s.message());
  }
  OUTPOST_ASSIGN_OR_RETURN(c.patch_ladder, ladder_field(*j, "patch_ladder", kDefaultPatchLadder));
  OUTPOST_ASSIGN_OR_RETURN(c.update_ladder,
                           ladder_field(*j, "update_ladder", kDefaultUpdateLadder));
  return c;
}

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

// ---- metadata update files ---------------------------------------------------------------------

Result<std::vector<std::string>> write_update_files(const std::string& repo,
                                                    std::int64_t snapshot_version,
                                                    const std::vector<std::int64_t>& ladder) {
  std::vector<std::string> written;
  // Files read at most once, whatever the number of update files that need them.
  std::map<std::string, Bytes> files;
  auto file = [&](const std::string& relative, std::uint64_t max) -> Result<const Bytes*> {
    auto it = files.find(relative);
    if (it == files.end()) {
      OUTPOST_ASSIGN_OR_RETURN(Bytes b, read_repo_file(repo + "/" + relative, max));
      it = files.emplace(relative, std::move(b)).first;
    }
    return &it->second;
  };
  std::map<std::string, tuf::Targets> parsed_roles;  // by metadata file name
  auto role_targets = [&](const std::string& name) -> Result<const tuf::Targets*> {
    auto it = parsed_roles.find(name);
    if (it == parsed_roles.end()) {
      OUTPOST_ASSIGN_OR_RETURN(tuf::Targets t,
                               read_role<tuf::Targets>(meta_path(repo, name), "targets"));
      it = parsed_roles.emplace(name, std::move(t)).first;
    }
    return &it->second;
  };

  const std::string snap_name = versioned(snapshot_version, "snapshot");
  OUTPOST_ASSIGN_OR_RETURN(tuf::Snapshot snap,
                           read_role<tuf::Snapshot>(meta_path(repo, snap_name), "snapshot"));
  OUTPOST_ASSIGN_OR_RETURN(tuf::Root root,
                           read_role<tuf::Root>(meta_path(repo, "root.json"), "root"));
  std::int64_t latest_root = root.version;
  while (real_fs().exists(meta_path(repo, versioned(latest_root + 1, "root")))) ++latest_root;
  if (latest_root < 0 || latest_root > 0xFFFFFFFFll) {
    return Status::Corruption("root version " + std::to_string(latest_root) + " out of range");
  }

  Compressor compressor(kUpdateLevel);
  for (std::int64_t rung : ladder) {
    const std::int64_t from = snapshot_version - rung;
    if (from < 1) continue;
    const std::string from_name = versioned(from, "snapshot");
    if (!real_fs().exists(meta_path(repo, from_name))) continue;
    OUTPOST_ASSIGN_OR_RETURN(tuf::Snapshot old,
                             read_role<tuf::Snapshot>(meta_path(repo, from_name), "snapshot"));
    UpdateFile upd;
    upd.latest_root = static_cast<std::uint32_t>(latest_root);
    auto add = [&](const std::string& name, const std::string& relative,
                   const std::optional<std::string>& base_relative, std::uint64_t max) -> Status {
      OUTPOST_ASSIGN_OR_RETURN(const Bytes* bytes, file(relative, max));
      std::optional<ByteView> base;
      if (base_relative) {
        OUTPOST_ASSIGN_OR_RETURN(const Bytes* b, file(*base_relative, max));
        base = ByteView(*b);
      }
      OUTPOST_ASSIGN_OR_RETURN(UpdateEntry e, make_update_entry(name, *bytes, base, compressor));
      upd.entries.push_back(std::move(e));
      return Status::Ok();
    };
    OUTPOST_RETURN_IF_ERROR(
        add(snap_name, "metadata/" + snap_name, "metadata/" + from_name, kMaxMetadataBytes));

    std::vector<std::string> changed_roles;  // delegated roles, by metadata file name at N
    for (const auto& [meta_file, info] : snap.meta) {
      if (!ends_with(meta_file, ".json")) continue;
      const std::string role = meta_file.substr(0, meta_file.size() - 5);
      auto before = old.meta.find(meta_file);
      if (before != old.meta.end() && before->second.version == info.version) continue;
      const std::string name = versioned(info.version, role);
      std::optional<std::string> base;
      if (before != old.meta.end()) base = "metadata/" + versioned(before->second.version, role);
      OUTPOST_RETURN_IF_ERROR(add(name, "metadata/" + name, base, kMaxMetadataBytes));
      if (role != "targets") changed_roles.push_back(name);
    }
    if (!changed_roles.empty()) {
      // Every bundle's manifest at M, whichever role listed it.
      std::map<std::string, const tuf::TargetFile*> before_targets;
      for (const auto& [meta_file, info] : old.meta) {
        if (meta_file == "targets.json" || !ends_with(meta_file, ".json")) continue;
        const std::string role = meta_file.substr(0, meta_file.size() - 5);
        OUTPOST_ASSIGN_OR_RETURN(const tuf::Targets* t,
                                 role_targets(versioned(info.version, role)));
        for (const auto& [path, tf] : t->targets) before_targets.emplace(path, &tf);
      }
      for (const std::string& name : changed_roles) {
        OUTPOST_ASSIGN_OR_RETURN(const tuf::Targets* t, role_targets(name));
        for (const auto& [path, tf] : t->targets) {
          const std::string suffix = "/manifest.json";
          if (!ends_with(path, suffix)) continue;
          auto b = before_targets.find(path);
          if (b != before_targets.end() && b->second->sha256 == tf.sha256) continue;
          const std::string bundle = path.substr(0, path.size() - suffix.size());
          const std::string relative = "targets/" + bundle + "/" + tf.sha256 + ".manifest.json";
          std::optional<std::string> base;
          if (b != before_targets.end()) {
            base = "targets/" + bundle + "/" + b->second->sha256 + ".manifest.json";
            if (!real_fs().exists(repo + "/" + *base)) base.reset();
          }
          OUTPOST_RETURN_IF_ERROR(add(relative, relative, base, kMaxManifestBytes));
        }
      }
    }
    OUTPOST_ASSIGN_OR_RETURN(Bytes encoded, encode_update_file(upd));
    const std::string out_name = update_file_name(snapshot_version, from);
    OUTPOST_RETURN_IF_ERROR(write_repo_file(meta_path(repo, "updates/" + out_name), encoded));
    written.push_back(out_name);
  }
  return written;
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
  auto patch_ladder = normalize_ladder(o.patch_ladder);
  if (!patch_ladder.ok()) return patch_ladder.error().With("patch ladder");
  auto update_ladder = normalize_ladder(o.update_ladder);
  if (!update_ladder.ok()) return update_ladder.error().With("update ladder");
  Status err;
  if (!dir_is_empty_or_missing(repo, err)) {
    if (!err.ok()) return err;
    return Status::FailedPrecondition(repo + " exists and is not empty: choose a new folder");
  }
  for (const char* sub : {"metadata", "metadata/updates", "targets", "objects", "packs"}) {
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
  desc.set("patch_ladder", ladder_json(*patch_ladder));
  desc.set("update_ladder", ladder_json(*update_ladder));
  OUTPOST_RETURN_IF_ERROR(
      write_repo_file(repo + "/" + kRepositoryJson, to_bytes(desc.dump(2) + "\n")));

  st.snapshot.version = 0;  // write_snapshot_and_timestamp moves both to version 1
  st.snapshot.meta["targets.json"] = tuf::MetaFile{1, std::nullopt, std::nullopt};
  st.timestamp.version = 0;
  return write_snapshot_and_timestamp(repo, st, *o.snapshot_key, *o.timestamp_key, now, o.expiry,
                                      {});
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
  OUTPOST_ASSIGN_OR_RETURN(RepositoryConfig config, config_or_default(repo));
  return write_snapshot_and_timestamp(repo, st, snapshot_key, timestamp_key, now, expiry,
                                      config.update_ladder);
}

// ---- publish ---------------------------------------------------------------------------------

Result<PublishResult> publish(const std::string& repo, const PublishOptions& o) {
  if (o.publisher_key == nullptr || o.snapshot_key == nullptr || o.timestamp_key == nullptr) {
    return Status::InvalidArgument("publish needs the publisher, snapshot and timestamp keys");
  }
  OUTPOST_RETURN_IF_ERROR(o.chunking.validate());
  std::vector<std::int64_t> patch_ladder;
  if (o.patch_ladder) {
    auto l = normalize_ladder(*o.patch_ladder);
    if (!l.ok()) return l.error().With("patch ladder");
    patch_ladder = std::move(l).value();
  }
  OUTPOST_ASSIGN_OR_RETURN(BundleSource src, read_bundle_dir(o.source_dir, o.overrides));
  OUTPOST_ASSIGN_OR_RETURN(RepoLock lock, RepoLock::acquire(repo));
  OUTPOST_ASSIGN_OR_RETURN(RepositoryState st, load_repository(repo));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "snapshot", *o.snapshot_key));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "timestamp", *o.timestamp_key));
  OUTPOST_ASSIGN_OR_RETURN(RepositoryConfig config, config_or_default(repo));
  if (!o.patch_ladder) patch_ladder = config.patch_ladder;

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
  // 3. the patches, from the content streams rebuilt out of the packs just written
  OUTPOST_ASSIGN_OR_RETURN(m.patches,
                           make_patches(repo, m, index, patch_ladder, o.max_ladder_stream));
  result.patches = m.patches;
  // 4. the manifest, and the publisher's history of the bundle
  const Bytes manifest_bytes = m.encode();
  const std::string sha = crypto::hex(crypto::sha256(manifest_bytes));
  result.manifest_path = "targets/" + m.bundle + "/" + sha + ".manifest.json";
  {
    // Beside it, the same bytes zstd-compressed: what a node fetches when no metadata update
    // file carries the manifest (a node far behind, or following a patch chain).
    Compressor packer(kUpdateLevel);
    OUTPOST_ASSIGN_OR_RETURN(Bytes packed, packer.compress(manifest_bytes));
    OUTPOST_RETURN_IF_ERROR(write_repo_file(repo + "/" + result.manifest_path + ".zst", packed));
  }
  OUTPOST_RETURN_IF_ERROR(write_repo_file(repo + "/" + result.manifest_path, manifest_bytes));
  {
    std::map<std::int64_t, std::string> history = load_history(repo, m.bundle);
    if (history.empty() && m.version > 1) history = scan_manifests(repo, m.bundle);
    history[m.version] = result.manifest_path;
    OUTPOST_RETURN_IF_ERROR(write_history(repo, m.bundle, history));
  }
  // 5. the delegated role's metadata
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
  // 6. snapshot, the metadata update files, then timestamp last
  st.snapshot.meta[role_name + ".json"] =
      tuf::MetaFile{role_meta.version, std::nullopt, std::nullopt};
  OUTPOST_RETURN_IF_ERROR(write_snapshot_and_timestamp(repo, st, *o.snapshot_key, *o.timestamp_key,
                                                       now, o.expiry, config.update_ladder));
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
  OUTPOST_ASSIGN_OR_RETURN(RepositoryConfig config, config_or_default(repo));
  return write_snapshot_and_timestamp(repo, st, snapshot_key, timestamp_key, clock.now(), expiry,
                                      config.update_ladder);
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
  OUTPOST_ASSIGN_OR_RETURN(RepositoryConfig config, config_or_default(repo));
  return write_snapshot_and_timestamp(repo, st, *o.snapshot_key, *o.timestamp_key, now, o.expiry,
                                      config.update_ladder);
}

}  // namespace outpost::packaging
