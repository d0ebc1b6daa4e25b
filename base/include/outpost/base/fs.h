// The file system seam: every file outpost reads or writes outside the LMDB store goes
// through a FileSystem, so tests can wrap the real one and inject what real disks do on bad
// days (ENOSPC at byte N, EIO, writes lost or torn by a power cut, a USB stick pulled out).
// tests/support/fault_fs.h is that wrapper; docs/file-access.md lists the file access that
// still bypasses this interface, and why.
//
// Files are written the way a power cut cannot tear: a temp file in the same directory,
// fsync, rename over the final name, fsync of the directory (FileWriter). A reader, or a
// node after a crash, sees the old file or the new one, never half of either.
//
// Errors. Every errno is turned into a Status by one function, errno_status() below, so the
// codes mean the same everywhere: disk full is kResourceExhausted, a missing file kNotFound,
// permissions and read-only file systems kFailedPrecondition (an operator must act), EIO and
// a removed device kUnavailable (retry once the device is back), a file shorter than asked
// for kCorruption. Messages name the action and the path: "writing /x/y: No space left on
// device: the disk is full: free some space and run the command again".
//
// Ownership. Readers and writers are owned by the caller (unique_ptr) and must be destroyed
// before the FileSystem that made them. Paths are plain strings, absolute or relative to the
// working directory; nothing here follows a path through a symlink on purpose except stat()
// and the opening of files for reading.
//
// Thread-safety. real_fs() is stateless and may be used from any thread. A FileReader or
// FileWriter is a single-threaded object. Wrappers (FaultFileSystem) state their own rules.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"

namespace outpost {

// The one mapping from an errno to a Status (see the file comment). `doing` is what was being
// done ("writing", "renaming", "opening directory"), `path` what it was done to.
//   ENOSPC EDQUOT EFBIG          kResourceExhausted  "...: the disk is full: free some space..."
//   EMFILE ENFILE ENOMEM         kResourceExhausted
//   ENOENT ENOTDIR               kNotFound
//   EACCES EPERM                 kFailedPrecondition "...: check the permissions..."
//   EROFS                        kFailedPrecondition "...: the file system is read-only..."
//   EEXIST ENOTEMPTY EXDEV       kFailedPrecondition
//   EIO ENODEV ENXIO ESTALE      kUnavailable        "...: was the device removed? ..."
//   EINTR EAGAIN EBUSY ETIMEDOUT kUnavailable
//   EISDIR ENAMETOOLONG ELOOP    kInvalidArgument
//   EINVAL, anything else        kInternal
Status errno_status(int err, std::string_view doing, std::string_view path);

// strerror(err), thread-safe.
std::string errno_text(int err);

enum class FileType { kRegular, kDirectory, kSymlink, kOther };

struct FileStat {
  FileType type = FileType::kOther;
  std::uint64_t size = 0;     // bytes (regular files; 0 or the fs's value for others)
  std::int64_t mtime_ns = 0;  // modification time, nanoseconds since the Unix epoch
  std::uint32_t mode = 0;     // permission bits (07777), without the type
};

struct DirEntry {
  std::string name;  // a name in the directory, never "." or ".."
  FileType type = FileType::kOther;
  friend bool operator==(const DirEntry&, const DirEntry&) = default;
};

// An open file, read front to back or at offsets. Single-threaded; closes on destruction.
class FileReader {
 public:
  virtual ~FileReader() = default;
  // Reads up to dst.size() bytes from the current position: the count read, 0 at the end of
  // the file. Read errors through errno_status().
  virtual Result<std::size_t> read(std::span<std::uint8_t> dst) = 0;
  // Reads exactly dst.size() bytes at `offset` (the position of read() is unchanged).
  // kCorruption "PATH is truncated: ..." when the file ends first.
  virtual Status read_at(std::uint64_t offset, std::span<std::uint8_t> dst) = 0;
  // The size of the file when it was opened.
  virtual std::uint64_t size() const = 0;
  virtual const std::string& path() const = 0;
};

// A new file, append only, as made by FileSystem::create_file. Most code wants FileWriter
// (below), which adds the temp file and the rename; this is the primitive it is built on, and
// what a fault-injecting wrapper intercepts. Single-threaded; closes (without syncing) on
// destruction.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Writes all of data at the end of the file (retrying short writes and EINTR). On error
  // some prefix of data may have been written.
  virtual Status append(ByteView data) = 0;
  // fsync: what was appended survives a power cut once this returns Ok.
  virtual Status sync() = 0;
  // Closes the descriptor and reports close()'s error (NFS and FUSE report write errors
  // there). Further calls fail with kInternal.
  virtual Status close() = 0;
};

// An advisory lock taken by FileSystem::try_lock; destroying it releases the lock.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // ---- reading ----
  // Reads a whole file. kNotFound when missing; kResourceExhausted when larger than max_bytes.
  virtual Result<Bytes> read_file(const std::string& path, std::uint64_t max_bytes) = 0;
  // Reads [offset, offset+length) of a file; kCorruption when the file is shorter.
  virtual Result<Bytes> read_range(const std::string& path, std::uint64_t offset,
                                   std::uint64_t length) = 0;
  // Opens a file for streaming reads (follows symlinks). kNotFound when missing.
  virtual Result<std::unique_ptr<FileReader>> open_reader(const std::string& path) = 0;

  // ---- writing ----
  // Creates a new file with exactly `mode` (fchmod after open, so the umask does not narrow
  // it). exclusive: kFailedPrecondition when the path exists (O_EXCL, and never through a
  // symlink); otherwise an existing file is truncated. The file is not synced until sync().
  virtual Result<std::unique_ptr<WritableFile>> create_file(const std::string& path,
                                                            std::uint32_t mode, bool exclusive) = 0;
  // Writes path atomically through a FileWriter: temp file in the same directory, fsync,
  // rename, fsync of the directory. The old file, if any, is untouched on error; the temp
  // file is removed. ENOSPC is kResourceExhausted.
  virtual Status write_file_atomic(const std::string& path, ByteView data, int mode = 0644);

  // ---- names ----
  // rename(2): atomically replaces `to` when it exists. Not durable until fsync_dir() of the
  // directories of both names.
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  // Like rename, but kFailedPrecondition ("... already exists") when `to` exists, checked
  // atomically (renameat2 RENAME_NOREPLACE; link + unlink where that is not supported).
  virtual Status rename_no_replace(const std::string& from, const std::string& to) = 0;
  // Removes a file, a symlink or an empty directory. kNotFound when missing.
  virtual Status remove(const std::string& path) = 0;
  // fsync of a directory: makes creations, renames and removals in it durable. File systems
  // that cannot sync a directory (EINVAL: FAT on some kernels) count as success.
  virtual Status fsync_dir(const std::string& dir) = 0;
  // mkdir -p with mode 0755. kFailedPrecondition when a component exists and is not a
  // directory. Does not sync the parents (call fsync_dir where that matters).
  virtual Status make_dirs(const std::string& path) = 0;

  // ---- looking ----
  // True when something exists at path (any type; follows symlinks, so a dangling one is
  // "no"). Errors count as "no".
  virtual bool exists(const std::string& path) = 0;
  // stat(2) (follows symlinks) / lstat(2) (does not). kNotFound when missing.
  virtual Result<FileStat> stat(const std::string& path) = 0;
  virtual Result<FileStat> lstat(const std::string& path) = 0;
  // The entries of a directory, sorted by name (bytewise), without "." and "..".
  // kNotFound when missing; kNotFound too when it is not a directory (ENOTDIR).
  virtual Result<std::vector<DirEntry>> list_dir(const std::string& dir) = 0;
  // Bytes an unprivileged process may still write on the file system holding path
  // (statvfs f_bavail * f_frsize); UINT64_MAX when the file system reports no size at all
  // (some FUSE file systems): unknown, so a caller checks nothing in advance.
  virtual Result<std::uint64_t> free_space(const std::string& path) = 0;

  // ---- metadata and locks ----
  // Sets the modification time of path (nanoseconds since the epoch; the access time is left
  // alone). For files whose ETag a web server derives from the mtime.
  virtual Status set_mtime(const std::string& path, std::int64_t mtime_ns) = 0;
  // An exclusive advisory lock (flock) on a file or directory, without waiting: kAborted
  // when another process, or another lock object in this one, holds it (the caller says who
  // and what to do). Held until the returned object is destroyed; a crashed holder's lock
  // goes with its process.
  virtual Result<std::unique_ptr<FileLock>> try_lock(const std::string& path) = 0;
};

// How FileWriter writes its file.
struct WriteOptions {
  std::uint32_t mode = 0644;  // exact permission bits of the final file
  // false: commit() fails with kFailedPrecondition when the final path exists, and leaves the
  // existing file alone (key files are never overwritten).
  bool replace = true;
  // false: commit() renames but leaves the fsync of the directory to the caller, who writes
  // many files into one directory and calls FileSystem::fsync_dir once at the end (checkout
  // on an SD card). Until then a crash may lose the new names (never half a file).
  bool sync_dir = true;
};

// Writes one file atomically, streaming: the bytes go to a temp file next to the final path
// (".NAME.tmp-PID-N"), and commit() makes them appear under the final name whole, durably,
// or not at all. Destroying a writer that was not committed removes the temp file.
// After any error the writer is failed: later calls return that same error, and commit()
// removes the temp file. Single-threaded. Must not outlive its FileSystem.
class FileWriter {
 public:
  // Creates the temp file in the directory of `path` (which must exist: kNotFound).
  static Result<std::unique_ptr<FileWriter>> open(FileSystem& fs, const std::string& path,
                                                  WriteOptions options = {});
  ~FileWriter();
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  // Appends data (unbuffered: buffer large streams of small writes yourself).
  Status write(ByteView data);
  // fsyncs what was written so far (commit() does this too).
  Status sync();
  // fsync, close, rename onto the final path, fsync of the directory. After a successful
  // commit the file is durable under its final name. On error the temp file is removed and
  // the final path is as it was (unless the error came from the directory fsync, after the
  // rename: then the new file is in place but may not survive a power cut, and the error is
  // returned all the same).
  Status commit();
  // As commit(), to another final path in the same directory (a pack named by its hash).
  Status commit_as(const std::string& final_path);
  // Drops the temp file; idempotent. Later calls fail.
  void abort();

  std::uint64_t bytes_written() const { return written_; }
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }

 private:
  FileWriter(FileSystem& fs, std::string path, std::string tmp, WriteOptions options,
             std::unique_ptr<WritableFile> file);
  Status fail(Status s);
  FileSystem& fs_;
  std::string path_;
  std::string tmp_;
  WriteOptions options_;
  std::unique_ptr<WritableFile> file_;
  std::uint64_t written_ = 0;
  Status failed_;
  bool done_ = false;  // committed or aborted
};

// The real file system (POSIX). A process-wide instance; stateless and thread-safe.
FileSystem& real_fs();

// Path helpers (strings only, no file access).
std::string join_path(const std::string& a, const std::string& b);
// The directory part of a path: "a/b" -> "a", "b" -> ".", "/b" -> "/".
std::string dir_name(const std::string& path);
// The last component: "a/b" -> "b".
std::string base_name(const std::string& path);

}  // namespace outpost
