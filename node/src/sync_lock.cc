#include "sync_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "outpost/base/fs.h"

namespace outpost::node {

// flock on a file of its own: LMDB's lock.mdb has its own locking protocol, not ours to use.
Result<SyncLock> SyncLock::acquire(const std::string& store_dir, const std::string& repo,
                                   double wait_s, const std::stop_token& stop) {
  const std::string path = join_path(store_dir, "sync-" + repo + ".lock");
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) {
    if (errno == EMFILE || errno == ENFILE) {
      return Status::ResourceExhausted("cannot create " + path + ": " + errno_text(errno) +
                                       ": raise the limit of open files (ulimit -n) and sync "
                                       "again");
    }
    return Status::FailedPrecondition("cannot create " + path + ": " + errno_text(errno) +
                                      ": the store's folder must be writable to sync");
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_s);
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      return Status::FailedPrecondition("cannot lock " + path + ": " + errno_text(errno));
    }
    if (stop.stop_requested()) return Status::Cancelled("sync stopped on request");
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Unavailable(
          "another sync of repository " + repo +
          " is running on this store: it will finish on its own; run this one again later");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return SyncLock(std::move(fd));
}

}  // namespace outpost::node
