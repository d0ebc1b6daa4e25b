#include "support/fault_fs.h"

#include <unistd.h>

#include <algorithm>

namespace outpost::test {

using Op = FaultFileSystem::Op;

namespace {

bool applies(Op armed, Op op) { return armed == Op::kAny || armed == op; }

}  // namespace

// ---- open handles --------------------------------------------------------------------------

class FaultWritable final : public WritableFile {
 public:
  FaultWritable(FaultFileSystem& fs, std::unique_ptr<WritableFile> inner, std::string path,
                std::uint64_t generation)
      : fs_(fs), inner_(std::move(inner)), path_(std::move(path)), generation_(generation) {}

  Status append(ByteView data) override {
    std::lock_guard<std::mutex> lock(fs_.mu_);
    if (auto s = dead()) return *s;
    if (auto s = fs_.check_locked(Op::kAppend, path_, "writing")) return *s;
    ByteView part = data;
    bool full = false;
    if (fs_.space_left_ && data.size() > *fs_.space_left_) {
      part = data.first(static_cast<std::size_t>(*fs_.space_left_));
      full = true;
    }
    Status s = inner_->append(part);
    if (!s.ok()) return s;
    fs_.appended_ += part.size();
    if (fs_.space_left_) *fs_.space_left_ -= part.size();
    fs_.files_[path_].size += part.size();
    if (full) return errno_status(ENOSPC, "writing", path_);
    return Status::Ok();
  }

  Status sync() override {
    std::lock_guard<std::mutex> lock(fs_.mu_);
    if (auto s = dead()) return *s;
    if (auto s = fs_.check_locked(Op::kSync, path_, "syncing")) return *s;
    OUTPOST_RETURN_IF_ERROR(inner_->sync());
    auto it = fs_.files_.find(path_);
    if (it != fs_.files_.end()) it->second.synced = it->second.size;
    return Status::Ok();
  }

  Status close() override {
    std::lock_guard<std::mutex> lock(fs_.mu_);
    if (auto s = dead()) return *s;
    if (auto s = fs_.check_locked(Op::kClose, path_, "closing")) return *s;
    return inner_->close();
  }

 private:
  std::optional<Status> dead() const {
    if (generation_ == fs_.generation_ && !fs_.stick_removed_) return std::nullopt;
    return errno_status(EIO, "writing", path_);
  }
  FaultFileSystem& fs_;
  std::unique_ptr<WritableFile> inner_;
  std::string path_;
  std::uint64_t generation_;
};

class FaultReader final : public FileReader {
 public:
  FaultReader(FaultFileSystem& fs, std::unique_ptr<FileReader> inner, std::uint64_t generation)
      : fs_(fs), inner_(std::move(inner)), generation_(generation) {}

  Result<std::size_t> read(std::span<std::uint8_t> dst) override {
    if (auto s = gate()) return *s;
    return inner_->read(dst);
  }
  Status read_at(std::uint64_t offset, std::span<std::uint8_t> dst) override {
    if (auto s = gate()) return *s;
    return inner_->read_at(offset, dst);
  }
  std::uint64_t size() const override { return inner_->size(); }
  const std::string& path() const override { return inner_->path(); }

 private:
  std::optional<Status> gate() {
    std::lock_guard<std::mutex> lock(fs_.mu_);
    if (generation_ != fs_.generation_ || fs_.stick_removed_) {
      return errno_status(EIO, "reading", inner_->path());
    }
    return fs_.check_locked(Op::kRead, inner_->path(), "reading");
  }
  FaultFileSystem& fs_;
  std::unique_ptr<FileReader> inner_;
  std::uint64_t generation_;
};

// ---- FaultFileSystem ---------------------------------------------------------------------------

FaultFileSystem::FaultFileSystem(FileSystem& base) : base_(base) {}
FaultFileSystem::~FaultFileSystem() = default;

void FaultFileSystem::fail_writes_after(std::uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  space_left_ = bytes;
}

void FaultFileSystem::clear_space_limit() {
  std::lock_guard<std::mutex> lock(mu_);
  space_left_.reset();
}

void FaultFileSystem::fail(Op op, std::string path_part, int err, int times) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.push_back({op, std::move(path_part), err, times});
}

void FaultFileSystem::clear_faults() {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.clear();
}

std::uint64_t FaultFileSystem::bytes_appended() const {
  std::lock_guard<std::mutex> lock(mu_);
  return appended_;
}

int FaultFileSystem::calls(Op op) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (op != Op::kAny) {
    auto it = calls_.find(op);
    return it == calls_.end() ? 0 : it->second;
  }
  int n = 0;
  for (const auto& [o, c] : calls_) n += c;
  return n;
}

std::vector<std::string> FaultFileSystem::unsynced_files() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [path, st] : files_) {
    if (st.size > st.synced) out.push_back(path);
  }
  return out;
}

std::optional<Status> FaultFileSystem::check(Op op, const std::string& path, const char* doing) {
  std::lock_guard<std::mutex> lock(mu_);
  return check_locked(op, path, doing);
}

std::optional<Status> FaultFileSystem::check_locked(Op op, const std::string& path,
                                                    const char* doing) {
  ++calls_[op];
  if (stick_removed_) return errno_status(EIO, doing, path);
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (!applies(it->op, op) || path.find(it->part) == std::string::npos) continue;
    const int err = it->err;
    if (it->times > 0 && --it->times == 0) faults_.erase(it);
    return errno_status(err, doing, path);
  }
  return std::nullopt;
}

std::optional<Bytes> FaultFileSystem::snapshot(const std::string& path, std::uint32_t* mode) {
  auto st = base_.lstat(path);
  if (!st.ok() || st->type != FileType::kRegular) return std::nullopt;
  auto bytes = base_.read_file(path, std::uint64_t{1} << 32);
  if (!bytes.ok()) return std::nullopt;
  *mode = st->mode;
  return std::move(bytes).value();
}

void FaultFileSystem::crash_locked(Crash mode) {
  ++generation_;
  // 1. Data: what was not fsynced is lost, or torn (a prefix of it survives).
  for (const auto& [path, st] : files_) {
    if (st.size <= st.synced) continue;
    const std::uint64_t keep =
        st.synced + (mode == Crash::kTearUnsynced ? (st.size - st.synced) / 2 : 0);
    (void)::truncate(path.c_str(), static_cast<off_t>(keep));
  }
  // 2. Names: undo what directories that were not fsynced would forget, newest first.
  for (auto it = dir_ops_.rbegin(); it != dir_ops_.rend(); ++it) {
    const DirOp& op = *it;
    auto restore = [&](const std::string& path) {
      if (!op.old_content) return;
      auto f = base_.create_file(path, op.old_mode, /*exclusive=*/false);
      if (!f.ok()) return;
      (void)(*f)->append(*op.old_content);
      (void)(*f)->sync();
      (void)(*f)->close();
    };
    switch (op.kind) {
      case DirOp::kCreate: (void)base_.remove(op.path); break;
      case DirOp::kRename:
        (void)base_.rename(op.path, op.from);
        restore(op.path);
        break;
      case DirOp::kRemove: restore(op.path); break;
    }
  }
  files_.clear();
  dir_ops_.clear();
}

void FaultFileSystem::simulate_crash(Crash mode) {
  std::lock_guard<std::mutex> lock(mu_);
  crash_locked(mode);
}

void FaultFileSystem::remove_stick(Crash mode) {
  std::lock_guard<std::mutex> lock(mu_);
  crash_locked(mode);
  stick_removed_ = true;
}

void FaultFileSystem::reinsert_stick() {
  std::lock_guard<std::mutex> lock(mu_);
  stick_removed_ = false;
}

Result<Bytes> FaultFileSystem::read_file(const std::string& path, std::uint64_t max_bytes) {
  if (auto s = check(Op::kRead, path, "reading")) return *s;
  return base_.read_file(path, max_bytes);
}

Result<Bytes> FaultFileSystem::read_range(const std::string& path, std::uint64_t offset,
                                          std::uint64_t length) {
  if (auto s = check(Op::kRead, path, "reading")) return *s;
  return base_.read_range(path, offset, length);
}

Result<std::unique_ptr<FileReader>> FaultFileSystem::open_reader(const std::string& path) {
  std::uint64_t generation = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto s = check_locked(Op::kOpen, path, "opening")) return *s;
    generation = generation_;
  }
  OUTPOST_ASSIGN_OR_RETURN(auto inner, base_.open_reader(path));
  return std::unique_ptr<FileReader>(new FaultReader(*this, std::move(inner), generation));
}

Result<std::unique_ptr<WritableFile>> FaultFileSystem::create_file(const std::string& path,
                                                                   std::uint32_t mode,
                                                                   bool exclusive) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto s = check_locked(Op::kCreate, path, "creating")) return *s;
  DirOp op{DirOp::kCreate, dir_name(path), "", path, std::nullopt, 0644};
  if (!exclusive) {
    // Truncating an existing file: a crash brings back its old content.
    op.old_content = snapshot(path, &op.old_mode);
    if (op.old_content) op.kind = DirOp::kRemove;
  }
  OUTPOST_ASSIGN_OR_RETURN(auto inner, base_.create_file(path, mode, exclusive));
  files_[path] = FileState{};
  dir_ops_.push_back(std::move(op));
  return std::unique_ptr<WritableFile>(
      new FaultWritable(*this, std::move(inner), path, generation_));
}

Status FaultFileSystem::rename(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto s = check_locked(Op::kRename, from, "renaming")) return *s;
  if (auto s = check_locked(Op::kRename, to, "renaming")) return *s;
  DirOp op{DirOp::kRename, dir_name(to), from, to, std::nullopt, 0644};
  op.old_content = snapshot(to, &op.old_mode);
  OUTPOST_RETURN_IF_ERROR(base_.rename(from, to));
  if (auto it = files_.find(from); it != files_.end()) {
    files_[to] = it->second;
    files_.erase(from);
  } else {
    files_.erase(to);
  }
  dir_ops_.push_back(std::move(op));
  return Status::Ok();
}

Status FaultFileSystem::rename_no_replace(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto s = check_locked(Op::kRename, from, "renaming")) return *s;
  if (auto s = check_locked(Op::kRename, to, "renaming")) return *s;
  OUTPOST_RETURN_IF_ERROR(base_.rename_no_replace(from, to));
  if (auto it = files_.find(from); it != files_.end()) {
    files_[to] = it->second;
    files_.erase(from);
  }
  dir_ops_.push_back({DirOp::kRename, dir_name(to), from, to, std::nullopt, 0644});
  return Status::Ok();
}

Status FaultFileSystem::remove(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto s = check_locked(Op::kRemove, path, "removing")) return *s;
  DirOp op{DirOp::kRemove, dir_name(path), "", path, std::nullopt, 0644};
  // A file created since the last sync of its directory simply was never there.
  const bool fresh = std::any_of(dir_ops_.begin(), dir_ops_.end(), [&](const DirOp& d) {
    return d.kind == DirOp::kCreate && d.path == path;
  });
  if (!fresh) op.old_content = snapshot(path, &op.old_mode);
  OUTPOST_RETURN_IF_ERROR(base_.remove(path));
  files_.erase(path);
  if (!fresh) dir_ops_.push_back(std::move(op));
  return Status::Ok();
}

Status FaultFileSystem::fsync_dir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto s = check_locked(Op::kSyncDir, dir, "syncing directory")) return *s;
  OUTPOST_RETURN_IF_ERROR(base_.fsync_dir(dir));
  std::erase_if(dir_ops_, [&](const DirOp& op) { return op.dir == dir; });
  return Status::Ok();
}

Status FaultFileSystem::make_dirs(const std::string& path) {
  if (auto s = check(Op::kMakeDirs, path, "creating directory")) return *s;
  return base_.make_dirs(path);
}

bool FaultFileSystem::exists(const std::string& path) {
  if (check(Op::kLook, path, "examining")) return false;
  return base_.exists(path);
}

Result<FileStat> FaultFileSystem::stat(const std::string& path) {
  if (auto s = check(Op::kLook, path, "examining")) return *s;
  return base_.stat(path);
}

Result<FileStat> FaultFileSystem::lstat(const std::string& path) {
  if (auto s = check(Op::kLook, path, "examining")) return *s;
  return base_.lstat(path);
}

Result<std::vector<DirEntry>> FaultFileSystem::list_dir(const std::string& dir) {
  if (auto s = check(Op::kLook, dir, "listing directory")) return *s;
  return base_.list_dir(dir);
}

Result<std::uint64_t> FaultFileSystem::free_space(const std::string& path) {
  if (auto s = check(Op::kLook, path, "examining")) return *s;
  OUTPOST_ASSIGN_OR_RETURN(std::uint64_t real, base_.free_space(path));
  std::lock_guard<std::mutex> lock(mu_);
  return space_left_ ? std::min(real, *space_left_) : real;
}

Status FaultFileSystem::set_mtime(const std::string& path, std::int64_t mtime_ns) {
  if (auto s = check(Op::kMeta, path, "setting the modification time of")) return *s;
  return base_.set_mtime(path, mtime_ns);
}

Result<std::unique_ptr<FileLock>> FaultFileSystem::try_lock(const std::string& path) {
  if (auto s = check(Op::kMeta, path, "locking")) return *s;
  return base_.try_lock(path);
}

}  // namespace outpost::test
