// Small POSIX file helpers shared by the packaging sources: an owning fd, errno -> Status.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <span>
#include <string>

#include "outpost/base/bytes.h"
#include "outpost/base/fs.h"
#include "outpost/base/status.h"
#include "outpost/base/unique_fd.h"

namespace outpost::packaging::detail {

// Maps an errno of an operation on `what` to a Status: base's one mapping (outpost/base/fs.h).
inline Status errno_status(int err, const std::string& action, const std::string& what) {
  return ::outpost::errno_status(err, action, what);
}

using Fd = UniqueFd;

inline Result<Fd> open_read(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errno_status(errno, "opening", path);
  return Fd(fd);
}

// read(2) retrying EINTR; returns bytes read (0 at end of file).
inline Result<std::size_t> read_some(int fd, std::span<std::uint8_t> dst, const std::string& path) {
  for (;;) {
    ssize_t n = ::read(fd, dst.data(), dst.size());
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    return errno_status(errno, "reading", path);
  }
}

inline Status write_all(int fd, ByteView data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status(errno, "writing", path);
    }
    data = data.subspan(static_cast<std::size_t>(n));
  }
  return Status::Ok();
}

inline Status fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status(errno, "opening directory", dir);
  Fd owner(fd);
  if (::fsync(fd) != 0 && errno != EINVAL) return errno_status(errno, "syncing directory", dir);
  return Status::Ok();
}

}  // namespace outpost::packaging::detail
