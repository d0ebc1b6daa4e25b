// A FileSystem for tests that wraps a real one and makes it fail the way disks and sticks do
// (after leveldb's FaultInjectionTestEnv and syncthing's errorfs):
//   - a full disk: ENOSPC once N more bytes have been written (the write that crosses the
//     limit writes what fits, then fails, as a real disk does);
//   - EIO (or any errno) from chosen calls on paths containing a given string;
//   - a power cut: simulate_crash() drops (or tears: keeps a prefix of) what was written
//     but not fsynced, and undoes creations, renames and removals in directories that were
//     not fsynced since, so the real files afterwards are what a disk could hold after the cut;
//   - a pulled USB stick: remove_stick() is a crash followed by every call failing as on a
//     removed device (EIO: kUnavailable "... was the device removed?") until reinsert_stick().
// Everything else passes through to the wrapped file system and real files.
//
// The crash model tracks only files created through this object (append-only, as
// FileWriter and WritableFile write them); files that existed before count as durable.
// Thread-safety: every method may be called from any thread (one mutex).
#pragma once

#include <cerrno>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "outpost/base/fs.h"

namespace outpost::test {

class FaultFileSystem final : public FileSystem {
 public:
  // The calls a fault can be attached to.
  enum class Op {
    kRead,      // read_file, read_range, FileReader::read / read_at
    kOpen,      // open_reader
    kCreate,    // create_file
    kAppend,    // WritableFile::append
    kSync,      // WritableFile::sync
    kClose,     // WritableFile::close
    kRename,    // rename, rename_no_replace (matched against both names)
    kRemove,    // remove
    kSyncDir,   // fsync_dir
    kMakeDirs,  // make_dirs
    kLook,      // stat, lstat, list_dir, free_space
    kMeta,      // set_mtime, try_lock
    kAny,
  };
  enum class Crash {
    kDropUnsynced,  // unsynced bytes are lost
    kTearUnsynced,  // half of the unsynced bytes of each file survive (a torn write)
  };

  explicit FaultFileSystem(FileSystem& base = real_fs());
  ~FaultFileSystem() override;

  // ---- faults ----
  // Appends fail with ENOSPC once `bytes` more bytes have been appended (all files together).
  void fail_writes_after(std::uint64_t bytes);
  void clear_space_limit();
  // The next `times` calls of `op` (-1: every call) on a path containing `path_part` ("" for
  // any path) fail with `err`. Several faults may be armed at once; the first match wins.
  void fail(Op op, std::string path_part, int err = EIO, int times = -1);
  void clear_faults();
  // A power cut (see the file comment). WritableFiles and FileReaders open at the time fail
  // every later call (EIO). The wrapped files are changed for real.
  void simulate_crash(Crash mode = Crash::kDropUnsynced);
  // The stick is pulled: a crash (unsynced data is gone), then every call fails with EIO
  // and exists() is false, until reinsert_stick().
  void remove_stick(Crash mode = Crash::kDropUnsynced);
  void reinsert_stick();

  // ---- what happened ----
  std::uint64_t bytes_appended() const;  // by successful (or partial) appends, in total
  int calls(Op op) const;                // calls made of op (kAny: of every op)
  // Paths of files created through this object that have data not yet fsynced.
  std::vector<std::string> unsynced_files() const;

  // ---- FileSystem ----
  Result<Bytes> read_file(const std::string& path, std::uint64_t max_bytes) override;
  Result<Bytes> read_range(const std::string& path, std::uint64_t offset,
                           std::uint64_t length) override;
  Result<std::unique_ptr<FileReader>> open_reader(const std::string& path) override;
  Result<std::unique_ptr<WritableFile>> create_file(const std::string& path, std::uint32_t mode,
                                                    bool exclusive) override;
  Status rename(const std::string& from, const std::string& to) override;
  Status rename_no_replace(const std::string& from, const std::string& to) override;
  Status remove(const std::string& path) override;
  Status fsync_dir(const std::string& dir) override;
  Status make_dirs(const std::string& path) override;
  bool exists(const std::string& path) override;
  Result<FileStat> stat(const std::string& path) override;
  Result<FileStat> lstat(const std::string& path) override;
  Result<std::vector<DirEntry>> list_dir(const std::string& dir) override;
  Result<std::uint64_t> free_space(const std::string& path) override;
  Status set_mtime(const std::string& path, std::int64_t mtime_ns) override;
  Result<std::unique_ptr<FileLock>> try_lock(const std::string& path) override;

 private:
  friend class FaultWritable;
  friend class FaultReader;
  struct Fault {
    Op op;
    std::string part;
    int err;
    int times;
  };
  struct FileState {
    std::uint64_t size = 0;    // bytes appended since creation
    std::uint64_t synced = 0;  // bytes covered by the last fsync
  };
  // A change of names in a directory, undone by a crash unless that directory was synced.
  struct DirOp {
    enum Kind { kCreate, kRename, kRemove } kind;
    std::string dir;                   // the directory whose fsync makes it durable
    std::string from;                  // kRename: the old name
    std::string path;                  // created / renamed-to / removed path
    std::optional<Bytes> old_content;  // what `path` held before (kRename over a file, kRemove)
    std::uint32_t old_mode = 0644;
  };

  // Under mu_: counts the call and returns the armed fault's (or the pulled stick's) error.
  std::optional<Status> check(Op op, const std::string& path, const char* doing);
  std::optional<Status> check_locked(Op op, const std::string& path, const char* doing);
  void crash_locked(Crash mode);
  std::optional<Bytes> snapshot(const std::string& path, std::uint32_t* mode);

  FileSystem& base_;
  mutable std::mutex mu_;
  std::vector<Fault> faults_;
  std::optional<std::uint64_t> space_left_;
  bool stick_removed_ = false;
  std::uint64_t generation_ = 0;  // bumped by a crash: older handles are dead
  std::uint64_t appended_ = 0;
  std::map<Op, int> calls_;
  std::map<std::string, FileState> files_;
  std::vector<DirOp> dir_ops_;
};

}  // namespace outpost::test
