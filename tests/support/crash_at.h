// A power cut at a chosen file system call, for the power-cut sweeps (issue 12, point 2;
// docs/RELIABILITY.md "Lost and torn writes"), and the sweeps' density from the environment.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "outpost/base/fs.h"
#include "support/fault_fs.h"

namespace outpost::test {

// Which calls a power-cut sweep cuts at, of `total` calls: every `step`-th. CI's short form
// cuts at about `short_cuts` of them; OUTPOST_POWER_CUTS=all cuts at every call (the long form,
// bench/reliability/power_cuts.sh), OUTPOST_POWER_CUTS=N at about N.
inline int power_cut_step(int total, int short_cuts) {
  const char* v = std::getenv("OUTPOST_POWER_CUTS");
  int cuts = short_cuts;
  if (v != nullptr && std::string(v) == "all") return 1;
  if (v != nullptr && std::atoi(v) > 0) cuts = std::atoi(v);
  return total / cuts > 1 ? total / cuts : 1;
}

// True when OUTPOST_POWER_CUTS=all: a sweep cuts at every point it can.
inline bool power_cuts_all() {
  const char* v = std::getenv("OUTPOST_POWER_CUTS");
  return v != nullptr && std::string(v) == "all";
}

// A FileSystem in front of a FaultFileSystem that counts the calls made through it (and
// through the files it creates) and pulls the stick (a power cut, then every call fails) just
// before call number `crash_at` (0: never).
class CrashAt final : public FileSystem {
 public:
  CrashAt(FaultFileSystem& fault, int crash_at, FaultFileSystem::Crash mode)
      : f_(fault), at_(crash_at), mode_(mode) {}
  int calls() const { return calls_; }
  bool crashed() const { return crashed_; }

  Result<Bytes> read_file(const std::string& p, std::uint64_t max) override {
    tick();
    return f_.read_file(p, max);
  }
  Result<Bytes> read_range(const std::string& p, std::uint64_t off, std::uint64_t len) override {
    tick();
    return f_.read_range(p, off, len);
  }
  Result<std::unique_ptr<FileReader>> open_reader(const std::string& p) override {
    tick();
    return f_.open_reader(p);
  }
  Result<std::unique_ptr<WritableFile>> create_file(const std::string& p, std::uint32_t mode,
                                                    bool exclusive) override {
    tick();
    auto w = f_.create_file(p, mode, exclusive);
    if (!w.ok()) return w.error();
    return std::unique_ptr<WritableFile>(new File(*this, std::move(w).value()));
  }
  Status rename(const std::string& a, const std::string& b) override {
    tick();
    return f_.rename(a, b);
  }
  Status rename_no_replace(const std::string& a, const std::string& b) override {
    tick();
    return f_.rename_no_replace(a, b);
  }
  Status remove(const std::string& p) override {
    tick();
    return f_.remove(p);
  }
  Status fsync_dir(const std::string& d) override {
    tick();
    return f_.fsync_dir(d);
  }
  Status make_dirs(const std::string& p) override {
    tick();
    return f_.make_dirs(p);
  }
  bool exists(const std::string& p) override {
    tick();
    return f_.exists(p);
  }
  Result<FileStat> stat(const std::string& p) override {
    tick();
    return f_.stat(p);
  }
  Result<FileStat> lstat(const std::string& p) override {
    tick();
    return f_.lstat(p);
  }
  Result<std::vector<DirEntry>> list_dir(const std::string& d) override {
    tick();
    return f_.list_dir(d);
  }
  Result<std::uint64_t> free_space(const std::string& p) override {
    tick();
    return f_.free_space(p);
  }
  Status set_mtime(const std::string& p, std::int64_t t) override {
    tick();
    return f_.set_mtime(p, t);
  }
  Result<std::unique_ptr<FileLock>> try_lock(const std::string& p) override {
    tick();
    return f_.try_lock(p);
  }

 private:
  class File final : public WritableFile {
   public:
    File(CrashAt& owner, std::unique_ptr<WritableFile> f) : owner_(owner), f_(std::move(f)) {}
    Status append(ByteView data) override {
      owner_.tick();
      return f_->append(data);
    }
    Status sync() override {
      owner_.tick();
      return f_->sync();
    }
    Status close() override {
      owner_.tick();
      return f_->close();
    }

   private:
    CrashAt& owner_;
    std::unique_ptr<WritableFile> f_;
  };

  void tick() {
    if (++calls_ == at_) {
      f_.remove_stick(mode_);
      crashed_ = true;
    }
  }

  FaultFileSystem& f_;
  int at_;
  FaultFileSystem::Crash mode_;
  int calls_ = 0;
  bool crashed_ = false;
};

}  // namespace outpost::test
