// The publisher's file primitives, shared by repository.cc (init, delegate, refresh, rotate,
// update files) and publish.cc: the repository lock, reading and writing files of the
// published tree (always world-readable: files 0644, folders 0755, whatever the umask), and
// signing metadata. Paths are built with layout.h.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "io_util.h"
#include "outpost/base/bytes.h"
#include "outpost/base/clock.h"
#include "outpost/base/fs.h"
#include "outpost/base/json.h"
#include "outpost/base/status.h"
#include "outpost/crypto/keys.h"
#include "outpost/crypto/tuf.h"
#include "outpost/packaging/layout.h"
#include "outpost/packaging/repository.h"

namespace outpost::packaging::repo_detail {

inline constexpr std::uint64_t kMaxMetadataBytes = 64u << 20;

inline Clock& clock_of(Clock* c) { return c != nullptr ? *c : system_clock(); }

// REPO/<relative>.
inline std::string in_repo(const std::string& repo, std::string_view relative) {
  return repo + "/" + std::string(relative);
}
// REPO/metadata/<name>.
inline std::string repo_metadata(const std::string& repo, std::string_view name) {
  return in_repo(repo, metadata_path(name));
}

// Exclusive lock on REPO/metadata for the lifetime of the object. kNotFound when repo is not
// a repository; kAborted when another writer holds it.
class RepoLock {
 public:
  static Result<RepoLock> acquire(const std::string& repo);

 private:
  detail::Fd fd_;  // closing releases the lock
};

// Every write of the published tree goes through a FileSystem (PublishOptions::fs; real_fs()
// elsewhere), so tests can fail it the way disks do.
//
// Creates REPO/<relative_dir> and the folders between through fs, each mode 0755. The
// FileSystem has no chmod: a folder it created narrower (umask) is chmod-ed directly.
// Folders that exist are left as they are.
Status make_repo_dirs(const std::string& repo, std::string_view relative_dir,
                      FileSystem& fs = real_fs());
// Writes REPO/<relative> atomically through a FileWriter (temp in the same folder created
// with mode 0644, fsync, rename, fsync of the folder), creating its folders as
// make_repo_dirs().
Status write_repo_file(const std::string& repo, std::string_view relative, ByteView data,
                       FileSystem& fs = real_fs());
// Moves a finished temp file (created with mode 0644 through fs, already synced and closed,
// in a folder of the tree) to REPO/<relative> as a published file, then syncs its folder.
Status publish_temp_file(FileSystem& fs, const std::string& tmp_path, const std::string& repo,
                         std::string_view relative);
// Reads a file of at most max bytes; the message names the path.
Result<Bytes> read_repo_file(const std::string& path, std::uint64_t max);

// A role's metadata file, parsed (not verified: the publisher reading its own tree).
template <typename T>
Result<T> read_role(const std::string& path, std::string_view type) {
  OUTPOST_ASSIGN_OR_RETURN(Bytes bytes, read_repo_file(path, kMaxMetadataBytes));
  auto env = crypto::tuf::parse_metadata(bytes, type);
  if (!env.ok()) return env.error().With(path);
  const Json* signed_part = env->find("signed");
  if (signed_part == nullptr) return Status::Corruption(path + ": no \"signed\" part");
  auto value = T::from_signed(*signed_part);
  if (!value.ok()) return value.error().With(path);
  return value;
}

bool key_listed(const crypto::tuf::Root& root, const std::string& role,
                const crypto::SecretKey& key);
// kFailedPrecondition naming the role when the root does not list the key for it.
Status require_role_key(const crypto::tuf::Root& root, const std::string& role,
                        const crypto::SecretKey& key);

// Signs and writes metadata/<name>; the signed bytes go to *out when given.
Status write_metadata(const std::string& repo, const std::string& name, const Json& signed_part,
                      const std::vector<const crypto::SecretKey*>& keys, Bytes* out = nullptr,
                      FileSystem& fs = real_fs());

// New snapshot (version + 1, the given meta), `before_timestamp` when given (the library
// file), the metadata update files to it (one per rung of update_ladder whose snapshot exists
// and whose file fits a node's limit; release patches within release_patch_work, as
// write_update_files), then the timestamp pointing at it.
Status write_snapshot_and_timestamp(const std::string& repo, RepositoryState& st,
                                    const crypto::SecretKey& snapshot_key,
                                    const crypto::SecretKey& timestamp_key, std::int64_t now,
                                    const Expiries& expiry,
                                    const std::vector<std::int64_t>& update_ladder,
                                    FileSystem& fs = real_fs(),
                                    const std::function<Status()>& before_timestamp = {},
                                    std::uint64_t release_patch_work = kReleasePatchWork);

// The repository's configuration; defaults when outpost-repository.json is missing.
Result<RepositoryConfig> config_or_default(const std::string& repo);

}  // namespace outpost::packaging::repo_detail
