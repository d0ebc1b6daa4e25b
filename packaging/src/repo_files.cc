#include "repo_files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "outpost/base/fs.h"
#include "outpost/crypto/hash.h"

namespace outpost::packaging::repo_detail {

namespace tuf = crypto::tuf;

Result<RepoLock> RepoLock::acquire(const std::string& repo) {
  const std::string dir = in_repo(repo, kMetadataDir);
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

Status make_repo_dirs(const std::string& repo, std::string_view relative_dir, FileSystem& fs) {
  std::size_t pos = 0;
  while (pos < relative_dir.size()) {
    std::size_t slash = relative_dir.find('/', pos);
    if (slash == std::string_view::npos) slash = relative_dir.size();
    const std::string dir = in_repo(repo, relative_dir.substr(0, slash));
    pos = slash + 1;
    auto st = fs.stat(dir);
    if (st.ok()) {
      if (st->type != FileType::kDirectory) {
        return Status::FailedPrecondition(dir + " exists and is not a directory");
      }
      continue;
    }
    if (st.error().code() != Code::kNotFound) return st.error();
    OUTPOST_RETURN_IF_ERROR(fs.make_dirs(dir));
    // The new name is durable once its parent is synced (a file renamed into the folder later
    // is synced with the folder, not with the parent).
    OUTPOST_RETURN_IF_ERROR(fs.fsync_dir(dir_name(dir)));
    // mkdir applies the umask: a web server's workers must be able to list and traverse.
    // FileSystem has no chmod, so a folder it made narrower is widened directly.
    OUTPOST_ASSIGN_OR_RETURN(FileStat made, fs.stat(dir));
    if ((made.mode & 07777) != kPublishedDirMode && ::chmod(dir.c_str(), kPublishedDirMode) != 0) {
      return detail::errno_status(errno, "setting the mode of", dir);
    }
  }
  return Status::Ok();
}

Status publish_temp_file(FileSystem& fs, const std::string& tmp_path, const std::string& repo,
                         std::string_view relative) {
  const std::string full = in_repo(repo, relative);
  const std::size_t slash = relative.rfind('/');
  if (slash != std::string_view::npos) {
    OUTPOST_RETURN_IF_ERROR(make_repo_dirs(repo, relative.substr(0, slash), fs));
  }
  OUTPOST_RETURN_IF_ERROR(fs.rename(tmp_path, full));
  return fs.fsync_dir(dir_name(full));
}

Status write_repo_file(const std::string& repo, std::string_view relative, ByteView data,
                       FileSystem& fs) {
  const std::string full = in_repo(repo, relative);
  const std::size_t slash = relative.rfind('/');
  Status s = Status::Ok();
  if (slash != std::string_view::npos) s = make_repo_dirs(repo, relative.substr(0, slash), fs);
  if (s.ok()) {
    // The temp file is created with exactly 0644 (a web server running as another user
    // answers 403 for a file narrowed by the umask), before any reader can see it.
    auto w = FileWriter::open(fs, full, {.mode = kPublishedFileMode});
    if (!w.ok()) {
      s = w.error();
    } else {
      s = (*w)->write(data);
      if (s.ok()) s = (*w)->commit();
    }
  }
  if (!s.ok()) return s.With("writing " + full);
  return Status::Ok();
}

Result<Bytes> read_repo_file(const std::string& path, std::uint64_t max) {
  auto r = real_fs().read_file(path, max);
  if (!r.ok()) return r.error().With("reading " + path);
  return r;
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
                      const std::vector<const crypto::SecretKey*>& keys, Bytes* out,
                      FileSystem& fs) {
  Bytes bytes = tuf::sign_metadata(signed_part, keys);
  const std::string path = repo_metadata(repo, name);
  auto before = fs.stat(path);
  OUTPOST_RETURN_IF_ERROR(write_repo_file(repo, metadata_path(name), bytes, fs));
  // timestamp.json is the one file rewritten in place, and nodes ask for it with
  // If-None-Match. Web servers derive ETags from the modification time in whole seconds and
  // the size (nginx: "mtime-size"), so a new timestamp of the same length written within the
  // same second as the old one would look unchanged: its mtime is moved past the old one's.
  constexpr std::int64_t kNs = 1000000000;
  if (before.ok()) {
    auto after = fs.stat(path);
    const std::int64_t before_s = before->mtime_ns / kNs;
    if (after.ok() && after->mtime_ns / kNs <= before_s) {
      OUTPOST_RETURN_IF_ERROR(fs.set_mtime(path, (before_s + 1) * kNs));
    }
  }
  if (out != nullptr) *out = std::move(bytes);
  return Status::Ok();
}

Status write_snapshot_and_timestamp(const std::string& repo, RepositoryState& st,
                                    const crypto::SecretKey& snapshot_key,
                                    const crypto::SecretKey& timestamp_key, std::int64_t now,
                                    const Expiries& expiry,
                                    const std::vector<std::int64_t>& update_ladder, FileSystem& fs,
                                    const std::function<Status()>& before_timestamp,
                                    std::uint64_t release_patch_work) {
  st.snapshot.version += 1;
  st.snapshot.expires = now + expiry.snapshot;
  Bytes snap;
  OUTPOST_RETURN_IF_ERROR(write_metadata(repo,
                                         versioned_metadata_name(st.snapshot.version, "snapshot"),
                                         st.snapshot.to_signed(), {&snapshot_key}, &snap, fs));
  // The library file first: the update files leave out what a node would read from it.
  if (before_timestamp) OUTPOST_RETURN_IF_ERROR(before_timestamp());
  if (!update_ladder.empty()) {
    auto written =
        write_update_files(repo, st.snapshot.version, update_ladder, fs, release_patch_work);
    if (!written.ok()) return written.error().With("writing metadata update files");
  }
  st.timestamp.version += 1;
  st.timestamp.expires = now + expiry.timestamp;
  st.timestamp.snapshot.version = st.snapshot.version;
  st.timestamp.snapshot.length = static_cast<std::int64_t>(snap.size());
  st.timestamp.snapshot.sha256 = crypto::hex(crypto::sha256(snap));
  return write_metadata(repo, "timestamp.json", st.timestamp.to_signed(), {&timestamp_key}, nullptr,
                        fs);
}

Result<RepositoryConfig> config_or_default(const std::string& repo) {
  auto c = load_repository_config(repo);
  if (!c.ok() && c.error().code() == Code::kNotFound) return RepositoryConfig{};
  return c;
}

}  // namespace outpost::packaging::repo_detail
