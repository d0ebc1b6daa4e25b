#include "outpost/base/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "outpost/base/unique_fd.h"

namespace outpost {

std::string errno_text(int err) {
  char buf[256];
  // GNU strerror_r returns the message (maybe not in buf); thread-safe unlike strerror.
  return ::strerror_r(err, buf, sizeof buf);
}

Status errno_status(int err, std::string_view doing, std::string_view path) {
  std::string msg;
  msg.reserve(doing.size() + path.size() + 64);
  msg.append(doing).append(" ").append(path).append(": ").append(errno_text(err));
  switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return Status::ResourceExhausted(msg +
                                       ": the disk is full: free some space and run the "
                                       "command again");
    case EMFILE:
    case ENFILE:
      return Status::ResourceExhausted(msg + ": raise the limit of open files (ulimit -n) and " +
                                       "run the command again");
    case ENOMEM:
      return Status::ResourceExhausted(msg + ": free memory or raise the address-space limit " +
                                       "(ulimit -v) and run the command again");
    case ENOENT:
    case ENOTDIR: return Status::NotFound(msg);
    case EACCES:
    case EPERM:
      return Status::FailedPrecondition(msg + ": check the permissions, or run as the user " +
                                        "that owns it");
    case EROFS:
      return Status::FailedPrecondition(msg + ": the file system is read-only: remount it " +
                                        "read-write (or unlock the stick)");
    case EEXIST:
    case ENOTEMPTY:
    case EXDEV: return Status::FailedPrecondition(msg);
    case EIO:
    case ENODEV:
    case ENXIO:
    case ESTALE:
      return Status::Unavailable(msg + ": was the device removed? check the disk, SD card " +
                                 "or stick and run the command again");
    case EINTR:
    case EAGAIN:
    case EBUSY:
    case ETIMEDOUT: return Status::Unavailable(msg);
    case EISDIR:
    case ENAMETOOLONG:
    case ELOOP: return Status::InvalidArgument(msg);
    default: return Status::Internal(msg);
  }
}

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

std::string dir_name(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string base_name(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// ---- FileWriter -------------------------------------------------------------------------------

Result<std::unique_ptr<FileWriter>> FileWriter::open(FileSystem& fs, const std::string& path,
                                                     WriteOptions options) {
  // Unique within the process (counter) and across processes (pid); a leftover of a crashed
  // process is never reused because pids of live processes differ.
  static std::atomic<std::uint64_t> counter{0};
  const std::string dir = dir_name(path);
  const std::string tmp =
      join_path(dir, "." + base_name(path) + ".tmp-" + std::to_string(::getpid()) + "-" +
                         std::to_string(counter.fetch_add(1)));
  auto file = fs.create_file(tmp, options.mode, /*exclusive=*/true);
  if (!file.ok()) return file.error();
  return std::unique_ptr<FileWriter>(
      new FileWriter(fs, path, tmp, options, std::move(file).value()));
}

FileWriter::FileWriter(FileSystem& fs, std::string path, std::string tmp, WriteOptions options,
                       std::unique_ptr<WritableFile> file)
    : fs_(fs),
      path_(std::move(path)),
      tmp_(std::move(tmp)),
      options_(options),
      file_(std::move(file)) {}

FileWriter::~FileWriter() { abort(); }

Status FileWriter::fail(Status s) {
  if (failed_.ok()) failed_ = s;
  if (!done_) {
    file_.reset();
    (void)fs_.remove(tmp_);
    done_ = true;
  }
  return s;
}

Status FileWriter::write(ByteView data) {
  if (!failed_.ok()) return failed_;
  if (done_) return Status::Internal("write to " + path_ + " after commit or abort (a bug)");
  Status s = file_->append(data);
  if (!s.ok()) return fail(s);
  written_ += data.size();
  return Status::Ok();
}

Status FileWriter::sync() {
  if (!failed_.ok()) return failed_;
  if (done_) return Status::Internal("sync of " + path_ + " after commit or abort (a bug)");
  Status s = file_->sync();
  if (!s.ok()) return fail(s);
  return Status::Ok();
}

Status FileWriter::commit() { return commit_as(path_); }

Status FileWriter::commit_as(const std::string& final_path) {
  if (!failed_.ok()) return failed_;
  if (done_) return Status::Internal("commit of " + path_ + " after commit or abort (a bug)");
  if (dir_name(final_path) != dir_name(path_)) {
    return fail(Status::Internal("commit of " + path_ + " as " + final_path +
                                 ": not in the same directory (a bug)"));
  }
  Status s = file_->sync();
  if (s.ok()) s = file_->close();
  if (!s.ok()) return fail(s);
  file_.reset();
  s = options_.replace ? fs_.rename(tmp_, final_path) : fs_.rename_no_replace(tmp_, final_path);
  if (!s.ok()) return fail(s);
  done_ = true;
  path_ = final_path;
  if (!options_.sync_dir) return Status::Ok();
  s = fs_.fsync_dir(dir_name(final_path));
  if (!s.ok()) failed_ = s;
  return s;
}

void FileWriter::abort() {
  if (done_) return;
  file_.reset();
  (void)fs_.remove(tmp_);
  done_ = true;
  if (failed_.ok()) failed_ = Status::FailedPrecondition("writing " + path_ + " was abandoned");
}

Status FileSystem::write_file_atomic(const std::string& path, ByteView data, int mode) {
  OUTPOST_ASSIGN_OR_RETURN(
      auto w, FileWriter::open(*this, path, {.mode = static_cast<std::uint32_t>(mode)}));
  OUTPOST_RETURN_IF_ERROR(w->write(data));
  return w->commit();
}

// ---- the real file system ---------------------------------------------------------------------

namespace {

FileType type_of(mode_t m) {
  if (S_ISREG(m)) return FileType::kRegular;
  if (S_ISDIR(m)) return FileType::kDirectory;
  if (S_ISLNK(m)) return FileType::kSymlink;
  return FileType::kOther;
}

FileStat to_stat(const struct stat& st) {
  FileStat out;
  out.type = type_of(st.st_mode);
  out.size = static_cast<std::uint64_t>(st.st_size);
  out.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  out.mode = static_cast<std::uint32_t>(st.st_mode & 07777);
  return out;
}

Status truncated(const std::string& path, std::uint64_t offset, std::uint64_t length,
                 std::uint64_t got) {
  return Status::Corruption(path + " is truncated: wanted bytes " + std::to_string(offset) + "-" +
                            std::to_string(offset + length) + ", the file ends at " +
                            std::to_string(offset + got));
}

// pread until dst is full; the count read (short only at the end of the file).
Result<std::uint64_t> pread_full(int fd, std::uint64_t offset, std::span<std::uint8_t> dst,
                                 const std::string& path) {
  std::uint64_t got = 0;
  while (got < dst.size()) {
    ssize_t n = ::pread(fd, dst.data() + got, dst.size() - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status(errno, "reading", path);
    }
    if (n == 0) break;
    got += static_cast<std::uint64_t>(n);
  }
  return got;
}

class RealReader final : public FileReader {
 public:
  RealReader(UniqueFd fd, std::string path, std::uint64_t size)
      : fd_(std::move(fd)), path_(std::move(path)), size_(size) {}

  Result<std::size_t> read(std::span<std::uint8_t> dst) override {
    for (;;) {
      ssize_t n = ::read(fd_.get(), dst.data(), dst.size());
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno == EINTR) continue;
      return errno_status(errno, "reading", path_);
    }
  }
  Status read_at(std::uint64_t offset, std::span<std::uint8_t> dst) override {
    OUTPOST_ASSIGN_OR_RETURN(std::uint64_t got, pread_full(fd_.get(), offset, dst, path_));
    if (got < dst.size()) return truncated(path_, offset, dst.size(), got);
    return Status::Ok();
  }
  std::uint64_t size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  UniqueFd fd_;
  std::string path_;
  std::uint64_t size_;
};

class RealWritable final : public WritableFile {
 public:
  RealWritable(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}

  Status append(ByteView data) override {
    if (!fd_.valid()) return closed();
    while (!data.empty()) {
      ssize_t n = ::write(fd_.get(), data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_status(errno, "writing", path_);
      }
      data = data.subspan(static_cast<std::size_t>(n));
    }
    return Status::Ok();
  }
  Status sync() override {
    if (!fd_.valid()) return closed();
    if (::fsync(fd_.get()) != 0) return errno_status(errno, "syncing", path_);
    return Status::Ok();
  }
  Status close() override {
    if (!fd_.valid()) return closed();
    if (::close(fd_.release()) != 0) return errno_status(errno, "closing", path_);
    return Status::Ok();
  }

 private:
  Status closed() const { return Status::Internal("use of closed file " + path_ + " (a bug)"); }
  UniqueFd fd_;
  std::string path_;
};

class RealLock final : public FileLock {
 public:
  explicit RealLock(UniqueFd fd) : fd_(std::move(fd)) {}

 private:
  UniqueFd fd_;  // closing it releases the flock
};

class RealFileSystem final : public FileSystem {
 public:
  Result<Bytes> read_file(const std::string& path, std::uint64_t max_bytes) override {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return errno_status(errno, "reading", path);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return errno_status(errno, "reading", path);
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
        return errno_status(errno, "reading", path);
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
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return errno_status(errno, "reading", path);
    Bytes out(length);
    OUTPOST_ASSIGN_OR_RETURN(std::uint64_t got, pread_full(fd.get(), offset, out, path));
    if (got < length) return truncated(path, offset, length, got);
    return out;
  }

  Result<std::unique_ptr<FileReader>> open_reader(const std::string& path) override {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return errno_status(errno, "opening", path);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return errno_status(errno, "opening", path);
    if (S_ISDIR(st.st_mode)) return errno_status(EISDIR, "opening", path);
    return std::unique_ptr<FileReader>(
        new RealReader(std::move(fd), path, static_cast<std::uint64_t>(st.st_size)));
  }

  Result<std::unique_ptr<WritableFile>> create_file(const std::string& path, std::uint32_t mode,
                                                    bool exclusive) override {
    const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL | O_NOFOLLOW : O_TRUNC);
    UniqueFd fd(::open(path.c_str(), flags, static_cast<mode_t>(mode & 07777)));
    if (fd.get() < 0) {
      if (errno == EEXIST) {
        return Status::FailedPrecondition("creating " + path + ": it already exists");
      }
      return errno_status(errno, "creating", path);
    }
    if (::fchmod(fd.get(), static_cast<mode_t>(mode & 07777)) != 0) {
      const int err = errno;
      // FAT file systems (a USB stick) keep no Unix modes: vfat refuses a change with EPERM,
      // FUSE ones (fusefat) with ENOSYS. The file is written without one.
      if (err == EPERM || err == ENOSYS || err == EOPNOTSUPP) {
        return std::unique_ptr<WritableFile>(new RealWritable(std::move(fd), path));
      }
      fd.reset();
      if (exclusive) ::unlink(path.c_str());
      return errno_status(err, "setting the mode of", path);
    }
    return std::unique_ptr<WritableFile>(new RealWritable(std::move(fd), path));
  }

  Status rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return errno_status(errno, "renaming " + from + " to", to);
    }
    return Status::Ok();
  }

  Status rename_no_replace(const std::string& from, const std::string& to) override {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
      return Status::Ok();
    }
    int err = errno;
    if (err == EINVAL || err == ENOSYS || err == EOPNOTSUPP) {
      // No RENAME_NOREPLACE here: link fails with EEXIST just as atomically.
      if (::link(from.c_str(), to.c_str()) == 0) {
        ::unlink(from.c_str());
        return Status::Ok();
      }
      err = errno;
    }
    if (err == EEXIST) return Status::FailedPrecondition(to + " already exists");
    return errno_status(err, "renaming " + from + " to", to);
  }

  Status remove(const std::string& path) override {
    if (::unlink(path.c_str()) == 0) return Status::Ok();
    int err = errno;
    if (err == EISDIR || err == EPERM) {
      // Linux says EISDIR, POSIX allows EPERM for a directory.
      if (::rmdir(path.c_str()) == 0) return Status::Ok();
      if (errno != ENOTDIR) err = errno;
    }
    return errno_status(err, "removing", path);
  }

  Status fsync_dir(const std::string& dir) override {
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) return errno_status(errno, "opening directory", dir);
    if (::fsync(fd.get()) != 0 && errno != EINVAL) {
      return errno_status(errno, "syncing directory", dir);
    }
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
        return errno_status(errno, "creating directory", partial);
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

  Result<FileStat> stat(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return errno_status(errno, "examining", path);
    return to_stat(st);
  }

  Result<FileStat> lstat(const std::string& path) override {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return errno_status(errno, "examining", path);
    return to_stat(st);
  }

  Result<std::vector<DirEntry>> list_dir(const std::string& dir) override {
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), &::closedir);
    if (!d) return errno_status(errno, "listing directory", dir);
    std::vector<DirEntry> out;
    for (;;) {
      errno = 0;
      struct dirent* e = ::readdir(d.get());
      if (e == nullptr) {
        if (errno != 0) return errno_status(errno, "listing directory", dir);
        break;
      }
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      FileType type = FileType::kOther;
      switch (e->d_type) {
        case DT_REG: type = FileType::kRegular; break;
        case DT_DIR: type = FileType::kDirectory; break;
        case DT_LNK: type = FileType::kSymlink; break;
        case DT_UNKNOWN: {
          // Some file systems (older XFS, some FUSE) leave d_type out.
          struct stat st {};
          if (::lstat(join_path(dir, name).c_str(), &st) == 0) type = type_of(st.st_mode);
          break;
        }
        default: break;
      }
      out.push_back({std::move(name), type});
    }
    std::sort(out.begin(), out.end(),
              [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
    return out;
  }

  Status set_mtime(const std::string& path, std::int64_t mtime_ns) override {
    struct timespec times[2];
    times[0].tv_sec = 0;
    times[0].tv_nsec = UTIME_OMIT;
    times[1].tv_sec = static_cast<time_t>(mtime_ns / 1000000000);
    times[1].tv_nsec = static_cast<long>(mtime_ns % 1000000000);
    if (::utimensat(AT_FDCWD, path.c_str(), times, 0) != 0) {
      return errno_status(errno, "setting the modification time of", path);
    }
    return Status::Ok();
  }

  Result<std::unique_ptr<FileLock>> try_lock(const std::string& path) override {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return errno_status(errno, "locking", path);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) return Status::Aborted(path + " is locked by another process");
      return errno_status(errno, "locking", path);
    }
    return std::unique_ptr<FileLock>(new RealLock(std::move(fd)));
  }

  Result<std::uint64_t> free_space(const std::string& path) override {
    struct statvfs v {};
    if (::statvfs(path.c_str(), &v) != 0) return errno_status(errno, "examining", path);
    // A file system that reports no size at all (some FUSE ones, fusefat) does not know.
    if (v.f_blocks == 0) return UINT64_MAX;
    return static_cast<std::uint64_t>(v.f_bavail) * static_cast<std::uint64_t>(v.f_frsize);
  }
};

}  // namespace

FileSystem& real_fs() {
  static RealFileSystem fs;
  return fs;
}

}  // namespace outpost
