#include "outpost/storage/store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

#include "lmdb_handles.h"
#include "lmdb_meta.h"
#include "outpost/base/fs.h"

namespace outpost::storage {

namespace fs = std::filesystem;

namespace {

constexpr int kWordBits = static_cast<int>(sizeof(void*) * 8);
// Named databases: one per Table plus room for tables a later format 1 may add.
constexpr MDB_dbi kMaxDbs = kTableCount + 4;
// Files are readable and writable by the owner and the group (members of the outpost group
// may run the CLI against the daemon's store: LMDB readers write the lock file too).
constexpr mdb_mode_t kFileMode = 0660;

const char* const kTableNames[kTableCount] = {
    "chunks", "manifests",     "indexes",   "bundles",  "metadata",
    "trust",  "subscriptions", "transfers", "settings", "chunk_blocks",
};

std::string no_store(const std::string& dir) {
  return "no store at " + dir +
         ": subscribe to a repository first (that makes the store), or give the directory of "
         "an existing store";
}

std::string not_outpost(const std::string& dir) {
  return dir + " holds an LMDB environment that is not an outpost store: check the store " +
         "directory, or move this one aside and subscribe again to start a new store";
}

std::string other_word_size(const std::string& dir, int theirs) {
  return "the store in " + dir + " was written by a " + std::to_string(theirs) +
         "-bit build of outpost and this is a " + std::to_string(kWordBits) +
         "-bit build; LMDB files differ between the two: export its content with the " +
         std::to_string(theirs) + "-bit build, then import that export here into a new store";
}

std::string format_marker() {
  return "outpost-store " + std::to_string(kStoreFormat) + " " + std::to_string(kWordBits) + "-bit";
}

// Checks the value of the "format" key written by format_marker().
Status check_marker(std::string_view text, const std::string& dir) {
  constexpr std::string_view kPrefix = "outpost-store ";
  if (text.substr(0, kPrefix.size()) != kPrefix) return Status::Corruption(not_outpost(dir));
  text.remove_prefix(kPrefix.size());
  auto space = text.find(' ');
  if (space == std::string_view::npos || space == 0 || space > 9) {
    return Status::Corruption(not_outpost(dir));
  }
  int format = 0;
  for (char ch : text.substr(0, space)) {
    if (ch < '0' || ch > '9') return Status::Corruption(not_outpost(dir));
    format = format * 10 + (ch - '0');
  }
  if (format != kStoreFormat) {
    return Status::FailedPrecondition("the store in " + dir + " has format " +
                                      std::to_string(format) + " and this outpost reads format " +
                                      std::to_string(kStoreFormat) +
                                      (format > kStoreFormat ? ": upgrade outpost"
                                                             : ": export it with the outpost that "
                                                               "wrote it and import it here"));
  }
  std::string_view width = text.substr(space + 1);
  if (width == "32-bit" || width == "64-bit") {
    int theirs = width[0] == '3' ? 32 : 64;
    if (theirs != kWordBits) return Status::FailedPrecondition(other_word_size(dir, theirs));
    return Status::Ok();
  }
  return Status::Corruption(not_outpost(dir));
}

// LMDB 0.9 reports a short write (the file system filled up in the middle of a write) as
// EIO ("short write, filesystem full?"). Call it what it is when the disk is (nearly) full,
// so the user frees space instead of replacing a healthy SD card.
int refine_write_error(int rc, const std::string& dir) {
  if (rc != EIO) return rc;
  struct statvfs v {};
  if (::statvfs(dir.c_str(), &v) != 0) return rc;
  const std::uint64_t avail = static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize;
  return avail < (1u << 20) ? ENOSPC : rc;
}

}  // namespace

namespace detail {

// One open environment, shared by the Stores of this process opened on its directory.
// Kept outside the Store class so that ReadTxn::Impl can name it.
struct Core {
  StoreOptions options;  // the first opener's (map sizes, read_only)
  std::string dir;
  lmdb::Env env;
  // Registry bookkeeping (guarded by the registry mutex): Stores sharing this environment,
  // the process that opened it (a forked child must not touch its parent's), the directory.
  int refs = 0;
  pid_t pid = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  MDB_dbi dbi[kTableCount] = {};
  std::size_t max_key = kMaxKeyBytes;
  // Set when a failed resize left the environment without a map: nothing may touch it.
  std::atomic<bool> broken{false};

  // The growth gate: mdb_env_set_mapsize may run only while no transaction of this
  // environment is open in this process. Transactions "enter" it; a resize waits for
  // active == 0 and, while it waits, keeps new transactions out (so a steady stream of
  // readers cannot starve it). A thread that already holds a transaction enters
  // reentrantly, without waiting: waiting there would deadlock against the resize.
  std::mutex mu;
  std::condition_variable cv;
  int active = 0;
  int resizers_waiting = 0;
  bool resizing = false;

  void enter(bool reentrant) {
    std::unique_lock<std::mutex> lock(mu);
    if (!reentrant) cv.wait(lock, [&] { return !resizing && resizers_waiting == 0; });
    ++active;
  }
  void leave() {
    std::lock_guard<std::mutex> lock(mu);
    if (--active == 0) cv.notify_all();
  }
  void lock_exclusive() {
    std::unique_lock<std::mutex> lock(mu);
    ++resizers_waiting;
    cv.wait(lock, [&] { return active == 0 && !resizing; });
    --resizers_waiting;
    resizing = true;
  }
  void unlock_exclusive() {
    std::lock_guard<std::mutex> lock(mu);
    resizing = false;
    cv.notify_all();
  }

  std::uint64_t map_size() const {
    MDB_envinfo info{};
    mdb_env_info(env.get(), &info);
    return info.me_mapsize;
  }
};

namespace {

class Exclusive {
 public:
  explicit Exclusive(Core& core) : core_(core) { core_.lock_exclusive(); }
  ~Exclusive() { core_.unlock_exclusive(); }
  Exclusive(const Exclusive&) = delete;
  Exclusive& operator=(const Exclusive&) = delete;

 private:
  Core& core_;
};

// The transactions the current thread holds, so that it never waits at the gate for a
// resize that waits for it, and never opens a second write transaction (LMDB's write
// mutex is not recursive).
struct Held {
  const Core* core;
  bool write;
};
thread_local std::vector<Held> t_held;

bool holds(const Core* core, bool write_only) {
  for (const Held& h : t_held) {
    if (h.core == core && (h.write || !write_only)) return true;
  }
  return false;
}
void remember(const Core* core, bool write) { t_held.push_back({core, write}); }
void forget(const Core* core, bool write) {
  for (auto it = t_held.rbegin(); it != t_held.rend(); ++it) {
    if (it->core == core && it->write == write) {
      t_held.erase(std::next(it).base());
      return;
    }
  }
}

}  // namespace
}  // namespace detail

struct Store::Impl {
  detail::Core* core = nullptr;
  bool read_only = false;  // this Store's own option (the environment may be writable)
};

namespace detail {
namespace {

// LMDB allows one environment per directory per process: closing a second one would drop
// the process's fcntl locks on lock.mdb, which the first still relies on. So Stores opened
// on one directory in one process share a Core, counted under this mutex; the environment
// is opened and closed under it too, so a close never races an open.
struct Registry {
  std::mutex mu;
  std::map<std::pair<dev_t, ino_t>, Core*> open;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: Stores may outlive static teardown
  return *r;
}

}  // namespace
}  // namespace detail

struct ReadTxn::Impl {
  detail::Core* core = nullptr;
  lmdb::Txn txn;
  bool write = false;
  bool open = false;
  bool map_full = false;           // some call of this transaction hit MDB_MAP_FULL
  std::uint64_t map_at_begin = 0;  // map size when it began (see Store::grow)
  Status failed;                   // first error of a write transaction (LMDB's error state)

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { finish(); }

  // Aborts if the LMDB transaction is still alive, then leaves the gate.
  void finish() {
    if (!open) return;
    txn.reset();
    open = false;
    core->leave();
    detail::forget(core, write);
  }

  Status usable() const {
    if (!open) return Status::Internal("use of an ended store transaction (a bug in outpost)");
    return failed;
  }

  Status check(Table table, ByteView key) const {
    const int t = static_cast<int>(table);
    if (t < 0 || t >= kTableCount) {
      return Status::InvalidArgument("table number " + std::to_string(t) + " does not exist");
    }
    if (key.empty() || key.size() > core->max_key) {
      return Status::InvalidArgument("a key of " + std::to_string(key.size()) +
                                     " bytes for table " + kTableNames[t] + " in the store " +
                                     "in " + core->dir + ": keys are 1 to " +
                                     std::to_string(core->max_key) + " bytes");
    }
    return Status::Ok();
  }

  MDB_dbi dbi(Table table) const { return core->dbi[static_cast<int>(table)]; }

  // The value under key, a view into the map (valid while the transaction is); nullopt when
  // absent.
  Result<std::optional<ByteView>> find(Table table, ByteView key) const {
    OUTPOST_RETURN_IF_ERROR(usable());
    OUTPOST_RETURN_IF_ERROR(check(table, key));
    MDB_val k = lmdb::val(key);
    MDB_val v{};
    int rc = mdb_get(txn.get(), dbi(table), &k, &v);
    if (rc == MDB_NOTFOUND) return std::optional<ByteView>();
    if (rc != MDB_SUCCESS) return lmdb::to_status(rc, "reading", core->dir);
    return std::optional<ByteView>(lmdb::view(v));
  }

  // Records an LMDB failure of a write: the transaction is now unusable (LMDB sets its
  // error flag), and later calls report the same error.
  Status fail(int rc) {
    if (rc == MDB_MAP_FULL) map_full = true;
    Status s = lmdb::to_status(refine_write_error(rc, core->dir), "writing", core->dir);
    if (rc != MDB_BAD_VALSIZE) failed = s;
    return s;
  }
};

// --- ReadTxn / WriteTxn ------------------------------------------------------------------

ReadTxn::ReadTxn(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ReadTxn::ReadTxn(ReadTxn&&) noexcept = default;
ReadTxn& ReadTxn::operator=(ReadTxn&& other) noexcept {
  if (this != &other) impl_ = std::move(other.impl_);  // the old Impl's destructor ends it
  return *this;
}
ReadTxn::~ReadTxn() = default;

void ReadTxn::end() {
  if (impl_) impl_->finish();
}

Result<std::optional<Bytes>> ReadTxn::get(Table table, ByteView key) const {
  if (!impl_) return Status::Internal("use of a moved-from store transaction (a bug)");
  OUTPOST_ASSIGN_OR_RETURN(auto value, impl_->find(table, key));
  if (!value) return std::optional<Bytes>();
  return std::optional<Bytes>(Bytes(value->begin(), value->end()));
}

Result<std::optional<Bytes>> ReadTxn::get_part(Table table, ByteView key, std::uint64_t offset,
                                               std::uint64_t length) const {
  if (!impl_) return Status::Internal("use of a moved-from store transaction (a bug)");
  OUTPOST_ASSIGN_OR_RETURN(auto found, impl_->find(table, key));
  if (!found) return std::optional<Bytes>();
  const ByteView value = *found;
  if (offset > value.size() || length > value.size() - offset) {
    return Status::Corruption("a record of table " + std::string(table_name(table)) + " in " +
                              impl_->core->dir + " is shorter (" + std::to_string(value.size()) +
                              " bytes) than the part asked, " + std::to_string(length) +
                              " bytes at " + std::to_string(offset) +
                              ": run 'outpost verify --repair'");
  }
  const ByteView part =
      value.subspan(static_cast<std::size_t>(offset), static_cast<std::size_t>(length));
  return std::optional<Bytes>(Bytes(part.begin(), part.end()));
}

Status ReadTxn::scan(Table table, ByteView prefix,
                     const std::function<bool(ByteView key, ByteView value)>& fn) const {
  if (!impl_) return Status::Internal("use of a moved-from store transaction (a bug)");
  OUTPOST_RETURN_IF_ERROR(impl_->usable());
  if (!prefix.empty()) {
    OUTPOST_RETURN_IF_ERROR(impl_->check(table, prefix));
  } else if (static_cast<int>(table) < 0 || static_cast<int>(table) >= kTableCount) {
    return impl_->check(table, as_bytes("-"));
  }
  const std::string& dir = impl_->core->dir;
  MDB_cursor* raw = nullptr;
  int rc = mdb_cursor_open(impl_->txn.get(), impl_->dbi(table), &raw);
  if (rc != MDB_SUCCESS) return lmdb::to_status(rc, "reading", dir);
  lmdb::Cursor cursor(raw);  // closed before the transaction ends: it dies with this call
  MDB_val k = lmdb::val(prefix);
  MDB_val v{};
  rc = mdb_cursor_get(cursor.get(), &k, &v, prefix.empty() ? MDB_FIRST : MDB_SET_RANGE);
  while (rc == MDB_SUCCESS) {
    ByteView key = lmdb::view(k);
    if (key.size() < prefix.size() || !std::equal(prefix.begin(), prefix.end(), key.begin())) {
      return Status::Ok();
    }
    if (!fn(key, lmdb::view(v))) return Status::Ok();
    rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT);
  }
  if (rc == MDB_NOTFOUND) return Status::Ok();
  return lmdb::to_status(rc, "reading", dir);
}

Result<std::uint64_t> ReadTxn::count(Table table) const {
  if (!impl_) return Status::Internal("use of a moved-from store transaction (a bug)");
  OUTPOST_RETURN_IF_ERROR(impl_->usable());
  const int t = static_cast<int>(table);
  if (t < 0 || t >= kTableCount) return impl_->check(table, as_bytes("-"));
  MDB_stat st{};
  int rc = mdb_stat(impl_->txn.get(), impl_->dbi(table), &st);
  if (rc != MDB_SUCCESS) return lmdb::to_status(rc, "reading", impl_->core->dir);
  return static_cast<std::uint64_t>(st.ms_entries);
}

WriteTxn::WriteTxn(std::unique_ptr<Impl> impl) : ReadTxn(std::move(impl)) {}
WriteTxn::~WriteTxn() = default;

Status WriteTxn::put(Table table, ByteView key, ByteView value) {
  if (!impl_) return Status::Internal("use of a moved-from store transaction (a bug)");
  OUTPOST_RETURN_IF_ERROR(impl_->usable());
  OUTPOST_RETURN_IF_ERROR(impl_->check(table, key));
  MDB_val k = lmdb::val(key);
  MDB_val v = lmdb::val(value);
  int rc = mdb_put(impl_->txn.get(), impl_->dbi(table), &k, &v, 0);
  if (rc != MDB_SUCCESS) return impl_->fail(rc);
  return Status::Ok();
}

Status WriteTxn::del(Table table, ByteView key) {
  if (!impl_) return Status::Internal("use of a moved-from store transaction (a bug)");
  OUTPOST_RETURN_IF_ERROR(impl_->usable());
  OUTPOST_RETURN_IF_ERROR(impl_->check(table, key));
  MDB_val k = lmdb::val(key);
  int rc = mdb_del(impl_->txn.get(), impl_->dbi(table), &k, nullptr);
  if (rc == MDB_NOTFOUND) return Status::Ok();
  if (rc != MDB_SUCCESS) return impl_->fail(rc);
  return Status::Ok();
}

Result<std::uint64_t> WriteTxn::erase_if(
    Table table, ByteView prefix, const std::function<bool(ByteView key, ByteView value)>& fn) {
  // Collect first, delete after: deleting under an open cursor would move it.
  std::vector<Bytes> doomed;
  OUTPOST_RETURN_IF_ERROR(scan(table, prefix, [&](ByteView k, ByteView v) {
    if (fn(k, v)) doomed.emplace_back(k.begin(), k.end());
    return true;
  }));
  std::uint64_t removed = 0;
  for (const Bytes& key : doomed) {
    MDB_val k = lmdb::val(key);
    int rc = mdb_del(impl_->txn.get(), impl_->dbi(table), &k, nullptr);
    if (rc == MDB_NOTFOUND) continue;
    if (rc != MDB_SUCCESS) return impl_->fail(rc);
    ++removed;
  }
  return removed;
}

Status WriteTxn::commit() {
  if (!impl_) return Status::Internal("use of a moved-from store transaction (a bug)");
  Impl& t = *impl_;
  if (!t.open) return t.usable();
  if (!t.failed.ok()) {
    Status s = t.failed;
    t.finish();
    return s;
  }
  int rc = lmdb::commit(t.txn);  // LMDB frees the transaction, committed or not
  t.finish();
  if (rc == MDB_SUCCESS) return Status::Ok();
  return t.fail(rc);
}

// --- Store -------------------------------------------------------------------------------

const char* table_name(Table t) {
  const int i = static_cast<int>(t);
  return i >= 0 && i < kTableCount ? kTableNames[i] : "?";
}

Store::Store() : impl_(std::make_unique<Impl>()) {}

Store::~Store() {
  detail::Core* core = impl_->core;
  if (core == nullptr) return;
  detail::Registry& reg = detail::registry();
  std::lock_guard<std::mutex> lock(reg.mu);
  if (--core->refs > 0) return;
  // Every transaction must have ended: LMDB would otherwise free their memory under them.
  assert(core->active == 0);
  auto it = reg.open.find({core->dev, core->ino});
  if (it != reg.open.end() && it->second == core) reg.open.erase(it);
  delete core;  // closes the environment, still under the registry mutex
}

namespace {

// Opens the named databases (creating them and the format marker in a new store) and checks
// the marker. Tries a read transaction first so that opening an existing store never waits
// for a writer in another process; only a new (or older, with tables missing) store needs
// the write transaction.
Status open_tables(detail::Core& c) {
  const std::string& dir = c.dir;
  for (int pass = 0; pass < 2; ++pass) {
    const bool write = pass == 1;
    const char* doing = write ? "creating" : "opening";
    MDB_txn* raw = nullptr;
    int rc = mdb_txn_begin(c.env.get(), nullptr, write ? 0 : MDB_RDONLY, &raw);
    if (rc != MDB_SUCCESS) return lmdb::to_status(rc, doing, dir);
    lmdb::Txn txn(raw);

    MDB_dbi main_db = 0;
    rc = mdb_dbi_open(txn.get(), nullptr, 0, &main_db);
    if (rc != MDB_SUCCESS) return lmdb::to_status(rc, doing, dir);
    MDB_stat st{};
    rc = mdb_stat(txn.get(), main_db, &st);
    if (rc != MDB_SUCCESS) return lmdb::to_status(rc, doing, dir);
    const bool fresh = st.ms_entries == 0;
    if (fresh && !write) {
      if (c.options.read_only) return Status::NotFound(no_store(dir));
      continue;  // create it in pass 2
    }

    if (!fresh) {
      MDB_dbi settings = 0;
      rc = mdb_dbi_open(txn.get(), kTableNames[static_cast<int>(Table::kSettings)], 0, &settings);
      if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
        return Status::Corruption(not_outpost(dir));
      }
      if (rc != MDB_SUCCESS) return lmdb::to_status(rc, doing, dir);
      MDB_val k = lmdb::val(as_bytes(kFormatKey));
      MDB_val v{};
      rc = mdb_get(txn.get(), settings, &k, &v);
      if (rc == MDB_NOTFOUND) return Status::Corruption(not_outpost(dir));
      if (rc != MDB_SUCCESS) return lmdb::to_status(rc, doing, dir);
      OUTPOST_RETURN_IF_ERROR(check_marker(as_chars(lmdb::view(v)), dir));
    }

    bool missing = false;
    for (int i = 0; i < kTableCount && !missing; ++i) {
      rc = mdb_dbi_open(txn.get(), kTableNames[i], write ? MDB_CREATE : 0, &c.dbi[i]);
      if (rc == MDB_NOTFOUND && !write) {
        if (c.options.read_only) {
          return Status::FailedPrecondition(
              "the store in " + dir + " has no table '" + kTableNames[i] +
              "' (made by an older outpost): open it once read-write to upgrade it");
        }
        missing = true;
      } else if (rc == MDB_INCOMPATIBLE) {
        return Status::Corruption(not_outpost(dir));
      } else if (rc != MDB_SUCCESS) {
        return lmdb::to_status(rc, doing, dir);
      }
    }
    if (missing) continue;  // the read transaction aborts; pass 2 creates what is missing

    if (fresh) {
      const std::string marker = format_marker();
      MDB_val k = lmdb::val(as_bytes(kFormatKey));
      MDB_val v = lmdb::val(as_bytes(marker));
      rc = mdb_put(txn.get(), c.dbi[static_cast<int>(Table::kSettings)], &k, &v, 0);
      if (rc != MDB_SUCCESS) return lmdb::to_status(refine_write_error(rc, dir), doing, dir);
    }
    // Committing (a read transaction too) keeps the table handles open for the environment.
    rc = lmdb::commit(txn);
    if (rc != MDB_SUCCESS) return lmdb::to_status(refine_write_error(rc, dir), doing, dir);
    return Status::Ok();
  }
  return Status::Internal("opening the tables of the store in " + dir + " did not finish");
}

}  // namespace

namespace {

// LMDB maps its lock file and writes reader slots through the map. Touching a page of a
// sparse file on a full disk raises SIGBUS instead of returning ENOSPC, so reserve the lock
// file's blocks first. FALLOC_FL_KEEP_SIZE leaves its size, and so LMDB's reader count,
// alone. Only called while this process has no environment open on dir (closing any fd of
// lock.mdb drops the process's fcntl locks on it).
constexpr off_t kLockFileReserve = 64 << 10;  // LMDB needs 8 KiB for 126 readers

Status reserve_lock_file(const std::string& dir) {
  const std::string path = dir + "/lock.mdb";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kFileMode);
  if (fd < 0) return lmdb::to_status(errno, "opening", dir);
  int err = ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, kLockFileReserve) == 0 ? 0 : errno;
  ::close(fd);
  if (err == ENOSPC || err == EDQUOT) return lmdb::to_status(err, "opening", dir);
  return Status::Ok();  // EOPNOTSUPP (some file systems): nothing more can be done
}

std::string way_out(const std::string& dir) {
  return "restore " + dir + " from a backup, or move it aside, subscribe again and sync to " +
         "fetch its content again from the repository";
}

// Checks data.mdb before LMDB maps it. LMDB maps the whole file and reads pages through the
// map: a page past the end of a truncated file is SIGBUS in every command, and a zero-length
// file is taken for a new environment and silently initialised. Both are damage to report.
Status check_data_file(const StoreOptions& options) {
  const std::string& dir = options.dir;
  const std::string data_file = dir + "/data.mdb";
  std::error_code ec;
  const std::uint64_t size = fs::file_size(data_file, ec);
  if (ec) return Status::Ok();  // no data file yet: a new store (Store::open checked create)
  if (size == 0) {
    // A new store gets its meta pages in mdb_env_open; a data file that stays empty after
    // that is never what outpost left behind. Only `create` on a directory that never held
    // a store (no marker file) may start over.
    const bool marked = fs::exists(dir + "/" + std::string(kMarkerFile), ec);
    if (!options.create || marked) {
      return Status::Corruption("store data.mdb in " + dir + " is empty (0 bytes)" +
                                (marked ? " though the store was created before" : "") +
                                ": its content was lost (power cut, full disk or an interrupted "
                                "copy?): " +
                                way_out(dir));
    }
    return Status::Ok();
  }
  // Two meta pages of at most 64 KiB each.
  const std::uint64_t head_bytes = std::min<std::uint64_t>(size, 2 * 65536);
  Result<Bytes> head = real_fs().read_range(data_file, 0, head_bytes);
  if (!head.ok()) return head.error().With("checking the store in " + dir);
  std::optional<lmdb::DataFileNeed> need = lmdb::data_file_need(head->data(), head->size());
  // Not LMDB, or the other word size: mdb_env_open says MDB_INVALID and open_core names it.
  if (!need || need->meta.word_bits != kWordBits) return Status::Ok();
  if (size < need->bytes) {
    return Status::Corruption("store data.mdb in " + dir + " is truncated (" +
                              std::to_string(size) + " of " + std::to_string(need->bytes) +
                              " bytes): it was cut short (full disk, power cut or an "
                              "interrupted copy?): " +
                              way_out(dir));
  }
  return Status::Ok();
}

// Marks the directory as holding a store, so that an emptied data.mdb is recognised as
// damage later (check_data_file). Best effort: a store without the marker still opens.
void write_marker_file(const std::string& dir) {
  const std::string path = dir + "/" + std::string(kMarkerFile);
  if (real_fs().exists(path)) return;
  (void)real_fs().write_file_atomic(path, as_bytes(format_marker() + "\n"), 0644);
}

// Opens the environment of a directory this process does not have open yet.
Result<std::unique_ptr<detail::Core>> open_core(const StoreOptions& options) {
  const std::string& dir = options.dir;
  const std::string data_file = dir + "/data.mdb";
  auto c = std::make_unique<detail::Core>();
  c->options = options;
  c->dir = dir;
  c->pid = ::getpid();

  OUTPOST_RETURN_IF_ERROR(check_data_file(options));
  if (!options.read_only) OUTPOST_RETURN_IF_ERROR(reserve_lock_file(dir));
  MDB_env* raw = nullptr;
  int rc = mdb_env_create(&raw);
  if (rc != MDB_SUCCESS) return lmdb::to_status(rc, "opening", dir);
  c->env.reset(raw);
  rc = mdb_env_set_maxdbs(raw, kMaxDbs);
  if (rc != MDB_SUCCESS) return lmdb::to_status(rc, "opening", dir);
  // A new environment takes the configured size (LMDB's own default is 1 MiB). An existing
  // one must not be configured: LMDB would shrink its map to the configured size.
  std::error_code size_ec;
  const bool fresh_file = fs::file_size(data_file, size_ec) == 0 || size_ec;
  if (fresh_file) {
    rc = mdb_env_set_mapsize(raw, options.initial_map_bytes);
    if (rc != MDB_SUCCESS) return lmdb::to_status(rc, "opening", dir);
  }
  // MDB_NOTLS: a reader slot belongs to the transaction, not the thread, so one thread can
  //   hold several read transactions (a helper opening its own read() inside a scan).
  // MDB_NORDAHEAD: chunk lookups are random reads; readahead on a store larger than the
  //   Pi's RAM evicts useful pages and costs SD-card reads for nothing.
  // Not MDB_WRITEMAP: a write into a sparse map on a full disk is SIGBUS, not ENOSPC; with
  //   pwrite a full disk is an error code and the store stays as it was.
  // Not MDB_NOSYNC / MDB_NOMETASYNC: commit() means durable.
  unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (options.read_only ? MDB_RDONLY : 0u);
  rc = mdb_env_open(raw, dir.c_str(), flags, kFileMode);
  if (rc == MDB_INVALID) {
    const int theirs = lmdb::data_file_word_size(data_file);
    if (theirs != 0 && theirs != kWordBits) {
      return Status::FailedPrecondition(other_word_size(dir, theirs));
    }
    std::error_code ec;
    const auto size = fs::file_size(data_file, ec);
    if (theirs == kWordBits && !ec && size < 2 * 4096) {
      // Only the first of the two meta pages made it to disk when the store was created.
      return Status::Corruption("the store in " + dir + " was never fully created (was the " +
                                "disk full?): remove the directory and run the command again");
    }
  }
  if (rc != MDB_SUCCESS) {
    return lmdb::to_status(refine_write_error(rc, dir), options.create ? "creating" : "opening",
                           dir);
  }

  // Reader slots of processes that died (a SIGKILLed CLI) would otherwise pin old pages.
  int dead = 0;
  mdb_reader_check(raw, &dead);

  // An existing store keeps the size it grew to (LMDB takes it from the file), but never
  // less than initial_map_bytes.
  if (!options.read_only && c->map_size() < options.initial_map_bytes) {
    rc = mdb_env_set_mapsize(raw, options.initial_map_bytes);
    if (rc != MDB_SUCCESS) return lmdb::to_status(rc, "opening", dir);
  }
  c->max_key = static_cast<std::size_t>(mdb_env_get_maxkeysize(raw));

  OUTPOST_RETURN_IF_ERROR(open_tables(*c));
  if (!options.read_only) write_marker_file(dir);
  return c;
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options) {
  const std::string& dir = options.dir;
  if (dir.empty()) return Status::InvalidArgument("no store directory given");
  if (options.create && options.read_only) {
    return Status::InvalidArgument("cannot create the store in " + dir + " read-only");
  }
  if (options.initial_map_bytes < (1u << 16) || options.max_map_bytes < options.initial_map_bytes) {
    return Status::InvalidArgument("store map sizes for " + dir +
                                   ": the initial size must be at least 64 KiB and at most " +
                                   "the limit");
  }

  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return lmdb::to_status(ec.value(), "opening", dir);
  }
  if (!fs::exists(st)) {
    if (!options.create) return Status::NotFound(no_store(dir));
    fs::create_directories(dir, ec);
    if (ec) return lmdb::to_status(ec.value(), "creating", dir);
  } else if (!fs::is_directory(st)) {
    return Status::FailedPrecondition(dir + " is not a directory: give the directory of the " +
                                      "store");
  }
  if (!options.create && !fs::exists(dir + "/data.mdb", ec)) {
    return Status::NotFound(no_store(dir));
  }
  struct stat dir_stat {};
  if (::stat(dir.c_str(), &dir_stat) != 0) return lmdb::to_status(errno, "opening", dir);

  std::unique_ptr<Store> store(new Store());
  store->dir_ = dir;
  store->impl_->read_only = options.read_only;

  detail::Registry& reg = detail::registry();
  std::lock_guard<std::mutex> lock(reg.mu);
  const std::pair<dev_t, ino_t> id{dir_stat.st_dev, dir_stat.st_ino};
  auto it = reg.open.find(id);
  if (it != reg.open.end() && it->second->pid != ::getpid()) {
    // Inherited through fork(): the parent's, not ours. Leave it alone (never close it here).
    reg.open.erase(it);
    it = reg.open.end();
  }
  if (it != reg.open.end()) {
    detail::Core* core = it->second;
    if (core->options.read_only && !options.read_only) {
      return Status::FailedPrecondition("the store in " + dir + " is already open read-only " +
                                        "in this process: open it read-only here too");
    }
    ++core->refs;
    store->impl_->core = core;
    return store;
  }
  OUTPOST_ASSIGN_OR_RETURN(std::unique_ptr<detail::Core> core, open_core(options));
  core->dev = id.first;
  core->ino = id.second;
  core->refs = 1;
  store->impl_->core = core.get();
  reg.open[id] = core.release();
  return store;
}

Result<std::unique_ptr<ReadTxn::Impl>> Store::begin(bool write) {
  detail::Core& c = *impl_->core;
  if (c.broken) {
    return Status::FailedPrecondition("the store in " + dir_ + " could not be remapped after " +
                                      "a failed resize: restart outpost (committed data is " +
                                      "safe)");
  }
  if (write && impl_->read_only) {
    return Status::FailedPrecondition("the store in " + dir_ + " was opened read-only");
  }
  if (write && detail::holds(&c, true)) {
    return Status::Internal("a second write transaction on the store in " + dir_ +
                            " in one thread would deadlock (a bug in outpost)");
  }
  for (int attempt = 0;; ++attempt) {
    const bool reentrant = detail::holds(&c, false);
    c.enter(reentrant);
    const std::uint64_t map = c.map_size();
    MDB_txn* raw = nullptr;
    int rc = mdb_txn_begin(c.env.get(), nullptr, write ? 0 : MDB_RDONLY, &raw);
    if (rc == MDB_SUCCESS) {
      lmdb::Txn txn(raw);
      auto t = std::make_unique<ReadTxn::Impl>();
      t->core = &c;
      t->txn = std::move(txn);
      t->write = write;
      t->map_at_begin = map;
      t->open = true;
      detail::remember(&c, write);
      return t;
    }
    c.leave();
    // Another process grew the map and committed past the end of ours: adopt its size.
    if (rc == MDB_MAP_RESIZED && !reentrant && attempt < 3) {
      detail::Exclusive gate(c);
      const std::uint64_t before = c.map_size();
      rc = mdb_env_set_mapsize(c.env.get(), 0);
      if (rc != MDB_SUCCESS) {
        if (mdb_env_set_mapsize(c.env.get(), before) != MDB_SUCCESS) c.broken = true;
        return lmdb::to_status(rc, "growing", dir_);
      }
      continue;
    }
    return lmdb::to_status(rc, write ? "writing" : "reading", dir_);
  }
}

Result<ReadTxn> Store::read() {
  OUTPOST_ASSIGN_OR_RETURN(auto impl, begin(false));
  return ReadTxn(std::move(impl));
}

Result<WriteTxn> Store::write() {
  OUTPOST_ASSIGN_OR_RETURN(auto impl, begin(true));
  return WriteTxn(std::move(impl));
}

Status Store::grow(std::uint64_t map_bytes_seen) {
  detail::Core& c = *impl_->core;
  detail::Exclusive gate(c);
  const std::uint64_t current = c.map_size();
  if (current > map_bytes_seen) return Status::Ok();  // another thread grew it meanwhile
  const std::uint64_t limit = c.options.max_map_bytes;
  std::uint64_t next = current > limit / 2 ? limit : current * 2;
  next -= next % 4096;  // whole pages
  if (next <= current) {
    return Status::ResourceExhausted(
        "the store in " + dir_ + " is full (map limit " + lmdb::mib(limit) +
        " reached): remove old versions (garbage collection) or raise the limit");
  }
  int rc = mdb_env_set_mapsize(c.env.get(), next);
  if (rc != MDB_SUCCESS) {
    // LMDB unmapped the old map before failing to map the new one: put the old one back.
    if (mdb_env_set_mapsize(c.env.get(), current) != MDB_SUCCESS) c.broken = true;
    return lmdb::to_status(rc, "growing", dir_);
  }
  return Status::Ok();
}

Status Store::update(const std::function<Status(WriteTxn&)>& fn) {
  return update(fn, Sync::kDurable);
}

Status Store::update(const std::function<Status(WriteTxn&)>& fn, Sync sync) {
  if (detail::holds(impl_->core, false)) {
    return Status::Internal("update() on the store in " + dir_ + " while this thread holds " +
                            "one of its transactions: growing the map would deadlock (a " +
                            "bug in outpost)");
  }
  for (;;) {
    OUTPOST_ASSIGN_OR_RETURN(WriteTxn txn, write());
    Status s = fn(txn);
    if (s.ok() && txn.impl_->open) {
      // The flag may change at any time (LMDB's documentation); no other commit runs while
      // this thread holds the write transaction.
      MDB_env* env = impl_->core->env.get();
      const bool lazy = sync == Sync::kDataOnly;
      if (lazy) mdb_env_set_flags(env, MDB_NOMETASYNC, 1);
      s = txn.commit();
      if (lazy) mdb_env_set_flags(env, MDB_NOMETASYNC, 0);
    }
    const bool map_full = txn.impl_->map_full;
    const std::uint64_t seen = txn.impl_->map_at_begin;
    txn.end();  // aborts unless committed; must happen before the map can grow
    if (!map_full) return s;
    OUTPOST_RETURN_IF_ERROR(grow(seen));
  }
}

Result<StoreStats> Store::stats() {
  OUTPOST_ASSIGN_OR_RETURN(ReadTxn txn, read());
  StoreStats s;
  MDB_envinfo info{};
  MDB_stat est{};
  mdb_env_info(impl_->core->env.get(), &info);
  mdb_env_stat(impl_->core->env.get(), &est);
  s.map_bytes = info.me_mapsize;
  s.page_bytes = est.ms_psize;
  s.used_bytes = (static_cast<std::uint64_t>(info.me_last_pgno) + 1) * est.ms_psize;
  for (int i = 0; i < kTableCount; ++i) {
    OUTPOST_ASSIGN_OR_RETURN(s.entries[i], txn.count(static_cast<Table>(i)));
  }
  // In use: the pages each table's B-tree holds, plus the table directory (the main DB) and
  // the two meta pages. mdb_stat reads the counts from the tree roots: no scan.
  auto pages = [](const MDB_stat& st) {
    return static_cast<std::uint64_t>(st.ms_branch_pages) + st.ms_leaf_pages + st.ms_overflow_pages;
  };
  std::uint64_t in_use = 2;
  MDB_txn* t = txn.impl_->txn.get();
  for (int i = 0; i < kTableCount; ++i) {
    MDB_stat st{};
    int rc = mdb_stat(t, txn.impl_->dbi(static_cast<Table>(i)), &st);
    if (rc != MDB_SUCCESS) return lmdb::to_status(rc, "reading", dir_);
    in_use += pages(st);
  }
  MDB_dbi main_dbi = 0;
  if (mdb_dbi_open(t, nullptr, 0, &main_dbi) == MDB_SUCCESS) {
    MDB_stat st{};
    if (mdb_stat(t, main_dbi, &st) == MDB_SUCCESS) in_use += pages(st);
  }
  s.in_use_bytes = in_use * est.ms_psize;
  std::error_code ec;
  const auto size = fs::file_size(dir_ + "/data.mdb", ec);
  s.file_bytes = ec ? 0 : static_cast<std::uint64_t>(size);
  return s;
}

Result<std::uint64_t> Store::last_commit() {
  OUTPOST_ASSIGN_OR_RETURN(ReadTxn txn, read());
  return static_cast<std::uint64_t>(mdb_txn_id(txn.impl_->txn.get()));
}

Status Store::settle() {
  return update(
      [](WriteTxn& txn) -> Status {
        const ByteView key = as_bytes("settle");  // never left in the table
        OUTPOST_RETURN_IF_ERROR(txn.put(Table::kSettings, key, key));
        return txn.del(Table::kSettings, key);
      },
      Sync::kDataOnly);
}

void Store::release_memory() {
  auto txn = read();
  if (!txn.ok()) return;
  // LMDB hands out values in place, so any value read points into the map; the mapping that
  // holds it is the store's.
  MDB_val k = lmdb::val(as_bytes(kFormatKey));
  MDB_val v{};
  if (mdb_get(txn->impl_->txn.get(), txn->impl_->dbi(Table::kSettings), &k, &v) != MDB_SUCCESS) {
    return;
  }
  auto p = reinterpret_cast<std::uintptr_t>(v.mv_data);
  // Only as far as the data file goes: the map runs past its end. (The kiosk's benchmark saw
  // the map stay resident with the whole range; a test of this process did not reproduce it.)
  int fd = -1;
  struct stat file {};
  if (mdb_env_get_fd(txn->impl_->core->env.get(), &fd) != MDB_SUCCESS || ::fstat(fd, &file) != 0) {
    return;
  }
  const auto page = static_cast<unsigned long long>(::sysconf(_SC_PAGESIZE));
  const unsigned long long file_bytes =
      (static_cast<unsigned long long>(file.st_size) + page - 1) / page * page;
  std::FILE* maps = std::fopen("/proc/self/maps", "r");
  if (maps == nullptr) return;
  char line[512];
  while (std::fgets(line, sizeof line, maps) != nullptr) {
    unsigned long long start = 0, end = 0;
    if (std::sscanf(line, "%llx-%llx", &start, &end) != 2) continue;
    if (p >= start && p < end) {
      ::madvise(reinterpret_cast<void*>(start),
                static_cast<std::size_t>(std::min(end - start, file_bytes)), MADV_DONTNEED);
      break;
    }
  }
  std::fclose(maps);
}

// --- keys --------------------------------------------------------------------------------

Bytes version_key(std::string_view bundle, std::uint64_t version) {
  Bytes key(bundle.begin(), bundle.end());
  key.push_back(0);
  for (int shift = 56; shift >= 0; shift -= 8) {
    key.push_back(static_cast<std::uint8_t>(version >> shift));
  }
  return key;
}

Bytes text_key(std::string_view a, std::string_view b) {
  Bytes key;
  key.reserve(a.size() + 1 + b.size());
  key.insert(key.end(), a.begin(), a.end());
  key.push_back(0);
  key.insert(key.end(), b.begin(), b.end());
  return key;
}

std::optional<VersionKey> parse_version_key(ByteView key) {
  if (key.size() < 9) return std::nullopt;
  const std::size_t name_len = key.size() - 9;
  if (key[name_len] != 0) return std::nullopt;
  for (std::size_t i = 0; i < name_len; ++i) {
    if (key[i] == 0) return std::nullopt;
  }
  VersionKey out;
  out.bundle.assign(reinterpret_cast<const char*>(key.data()), name_len);
  for (std::size_t i = name_len + 1; i < key.size(); ++i) out.version = (out.version << 8) | key[i];
  return out;
}

}  // namespace outpost::storage
