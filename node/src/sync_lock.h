// One sync per repository at a time, across processes: an advisory lock (flock) on a small
// file in the store's directory, released when the holder ends or dies (the kernel drops it
// with the process, so a SIGKILLed sync never leaves a stale lock). Internal to the node.
#pragma once

#include <stop_token>
#include <string>

#include "outpost/base/status.h"
#include "outpost/base/unique_fd.h"

namespace outpost::node {

class SyncLock {
 public:
  // Waits up to wait_s for another process's sync of `repo` to end; then kUnavailable naming
  // it. kCancelled when stop is requested while waiting.
  static Result<SyncLock> acquire(const std::string& store_dir, const std::string& repo,
                                  double wait_s, const std::stop_token& stop);

 private:
  explicit SyncLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace outpost::node
