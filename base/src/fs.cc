#include "outpost/base/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "outpost/base/unique_fd.h"

namespace outpost {

std::string errno_text(int err) { return std::strerror(err); }

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

namespace {

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status io_error(const std::string& what, const std::string& path, int err) {
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) {
    return Status::ResourceExhausted("disk full while " + what + " " + path +
                                     ": free some space and run the command again");
  }
  if (err == ENOENT) return Status::NotFound(what + " " + path + ": no such file or directory");
  if (err == EACCES || err == EPERM || err == EROFS) {
    return Status::FailedPrecondition(what + " " + path + ": " + errno_text(err) +
                                      ": check the permissions");
  }
  if (err == EIO) {
    return Status::Unavailable(what + " " + path +
                               ": input/output error (was the device removed?)");
  }
  return Status::Unavailable(what + " " + path + ": " + errno_text(err));
}

using Fd = UniqueFd;

class RealFileSystem final : public FileSystem {
 public:
  Result<Bytes> read_file(const std::string& path, std::uint64_t max_bytes) override {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return io_error("reading", path, errno);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return io_error("reading", path, errno);
    if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
      return Status::ResourceExhausted(path + " is " + std::to_string(st.st_size) +
                                       " bytes, more than the " + std::to_string(max_bytes) +
                                       " allowed");
    }
    Bytes out;
    out.reserve(static_cast<std::size_t>(st.st_size));
    std::uint8_t buf[65536];
    while (true) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        return io_error("reading", path, errno);
      }
      if (n == 0) break;
      if (out.size() + static_cast<std::size_t>(n) > max_bytes) {
        return Status::ResourceExhausted(path + " grew past the " + std::to_string(max_bytes) +
                                         " bytes allowed while being read");
      }
      out.insert(out.end(), buf, buf + n);
    }
    return out;
  }

  Result<Bytes> read_range(const std::string& path, std::uint64_t offset,
                           std::uint64_t length) override {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return io_error("reading", path, errno);
    Bytes out(length);
    std::uint64_t got = 0;
    while (got < length) {
      ssize_t n =
          ::pread(fd.get(), out.data() + got, length - got, static_cast<off_t>(offset + got));
      if (n < 0) {
        if (errno == EINTR) continue;
        return io_error("reading", path, errno);
      }
      if (n == 0) {
        return Status::Corruption(path + " is truncated: wanted bytes " + std::to_string(offset) +
                                  "-" + std::to_string(offset + length) + ", file ends at " +
                                  std::to_string(offset + got));
      }
      got += static_cast<std::uint64_t>(n);
    }
    return out;
  }

  Status write_file_atomic(const std::string& path, ByteView data, int mode) override {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    std::string tmp =
        path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(rng() % 1000000);
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (fd.get() < 0) return io_error("writing", path, errno);
    std::size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        ::unlink(tmp.c_str());
        return io_error("writing", path, err);
      }
      done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return io_error("writing", path, err);
    }
    ::close(fd.release());
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return io_error("renaming into place", path, err);
    }
    Fd dir(::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() >= 0) ::fsync(dir.get());
    return Status::Ok();
  }

  Status make_dirs(const std::string& path) override {
    if (path.empty()) return Status::Ok();
    std::string partial;
    std::size_t pos = 0;
    while (pos != std::string::npos) {
      pos = path.find('/', pos + 1);
      partial = path.substr(0, pos);
      if (partial.empty()) continue;
      if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
        return io_error("creating directory", partial, errno);
      }
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Status::FailedPrecondition(path + " exists and is not a directory");
    }
    return Status::Ok();
  }

  bool exists(const std::string& path) override {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
  }
};

}  // namespace

FileSystem& real_fs() {
  static RealFileSystem fs;
  return fs;
}

}  // namespace outpost
