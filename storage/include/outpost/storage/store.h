// The node's store: one LMDB environment in a directory, with named tables. Generic on
// purpose: keys and values are bytes, and the modules above give them meaning
// (docs/format-store.md lists every table, its key layout and the module owning its values).
//
// Transactions. One writer at a time (write() blocks while another write transaction is
// open, in this process or another), any number of readers; a reader sees one consistent
// snapshot for its whole life, unaffected by commits made after it began. Several
// processes may open the same directory at once (LMDB's lock file coordinates them); a
// commit in one is seen by the next transaction begun in the others.
//
// Thread-safety. A Store may be shared between threads. A transaction belongs to the thread
// that opened it: use it, commit it and destroy it on that thread (LMDB's write lock is
// owned by a thread, and map growth tracks what each thread holds). A thread may hold
// several ReadTxns of one Store at once, and ReadTxns while it holds a WriteTxn (the
// environment is opened with MDB_NOTLS, so a reader slot belongs to a transaction, not to
// a thread); it may not open a second WriteTxn, nor call update() while it holds any
// transaction of the Store (both return kInternal: they would deadlock).
// Stores opened on one directory in one process share a single LMDB environment (LMDB
// allows only one per process: closing a second would drop the file locks of the first), so
// opening the store again, e.g. one Node per thread, is safe and cheap.
// Do not use a Store in a child process after fork(): open a new one there.
//
// Lifetimes. Every transaction must end before its Store is destroyed. get() returns a copy
// (valid after the transaction ends); the views scan() passes to its callback are valid only
// during that call.
//
// Map growth. LMDB maps the file at a fixed size; update() grows it (doubling, up to
// StoreOptions::max_map_bytes) when a transaction does not fit. The map can only be resized
// while no transaction of this Store is open in any thread, so growth waits for the other
// threads' transactions to end, and new transactions wait while it is pending: keep read
// transactions short, and never block a thread that holds one on a thread that is writing.
//
// Durability. commit() returns after the data pages and then the meta page have been
// fsync'ed (LMDB's default; never MDB_NOSYNC): a committed transaction survives a crash or
// power cut, an uncommitted one leaves no trace. The one exception is asked for by name:
// update(fn, Sync::kDataOnly) leaves the meta page to the next durable commit (MDB_NOMETASYNC
// for that commit), so a power cut may undo it, never tear the store. On any commit error
// (disk full, I/O error) the store is exactly as before the transaction.
//
// SD cards. Each commit costs at least two fsyncs plus a copy of every B-tree page on the
// path to each changed key, so batching is the caller's job: put the chunks of a download
// or an import into a few large update() calls, not one commit per chunk. LMDB rewrites no
// page in place and never shrinks the file: freed pages are reused by later transactions.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"

namespace outpost::storage {

// One LMDB named database each. The values are defined by the module named in
// docs/format-store.md; this module only stores bytes.
enum class Table {
  kChunks,         // BLAKE2b-256 of raw bytes -> the chunk, or where it is in a block
  kManifests,      // version_key(bundle, version) -> manifest bytes as signed
  kIndexes,        // version_key(bundle, version) -> chunk index bytes
  kBundles,        // bundle name -> bundle record (current version, held versions)
  kMetadata,       // text_key(repository id, role) -> TUF metadata bytes as signed
  kTrust,          // trusted state that content can never overwrite (time floor, versions)
  kSubscriptions,  // repository id -> subscription record
  kTransfers,      // unfinished transfers (resume state)
  kSettings,       // node settings (retention, ...); key "format" is reserved (see below)
  kChunkBlocks,    // u64 big-endian block id -> small chunks packed together
};
inline constexpr int kTableCount = 10;
// The LMDB database name of a table ("chunks", "manifests", ...); "?" when out of range.
const char* table_name(Table t);

// The key in Table::kSettings that marks a directory as an outpost store. Its value is
// "outpost-store <format> <width>-bit", e.g. "outpost-store 1 64-bit"; open() writes it in
// a new store and checks it in an existing one. Other modules must not write this key.
inline constexpr std::string_view kFormatKey = "format";
inline constexpr int kStoreFormat = 1;
// A file in the store's directory, written (atomically, holding the same text as the format
// key) once a writable open has checked the store. A zero-length data.mdb next to it is
// damage (kCorruption), never a new store to initialise.
inline constexpr std::string_view kMarkerFile = "outpost-store";

// Keys are 1 to kMaxKeyBytes bytes (LMDB's limit); put/get/del return kInvalidArgument
// otherwise. Values may be empty and up to a few GiB (bounded by the map).
inline constexpr std::size_t kMaxKeyBytes = 511;

struct StoreOptions {
  std::string dir;                              // created (mkdir -p) when create == true
  bool create = false;                          // false: a missing store is kNotFound
  std::uint64_t initial_map_bytes = 64u << 20;  // map size of a new store (and the minimum)
  // Upper bound for automatic growth; 32-bit builds cap it below 2 GiB (address space).
  std::uint64_t max_map_bytes = sizeof(void*) == 4 ? (1536ull << 20) : (1ull << 40);
  // Opens with MDB_RDONLY: write() and update() return kFailedPrecondition, and a directory
  // without a store (or with an empty one) is kNotFound. The directory must still be
  // writable for LMDB's lock file, except on a read-only file system.
  bool read_only = false;
};

class Store;

// A read-only snapshot. Move-only; the destructor ends it (releases the snapshot).
// Operations on a moved-from or ended transaction return kInternal.
class ReadTxn {
 public:
  ReadTxn(ReadTxn&&) noexcept;
  ReadTxn& operator=(ReadTxn&&) noexcept;  // ends this transaction first
  virtual ~ReadTxn();

  // A copy of the value stored under key, or nullopt when absent.
  // kInvalidArgument for an empty or over-long key (or a Table out of range).
  Result<std::optional<Bytes>> get(Table table, ByteView key) const;
  // Bytes [offset, offset + length) of the value stored under key, copied; nullopt when
  // absent; kCorruption when the value is shorter. Errors as get().
  Result<std::optional<Bytes>> get_part(Table table, ByteView key, std::uint64_t offset,
                                        std::uint64_t length) const;
  // Calls fn for each key starting with prefix (every key when prefix is empty), in bytewise
  // key order, until fn returns false. key and value point into the map: valid only during
  // that call of fn, copy what you keep. fn must not write through this transaction.
  Status scan(Table table, ByteView prefix,
              const std::function<bool(ByteView key, ByteView value)>& fn) const;
  // Number of entries in the table, as of this snapshot (cheap: kept by LMDB).
  Result<std::uint64_t> count(Table table) const;

 protected:
  friend class Store;
  struct Impl;  // the LMDB transaction and the Store's bookkeeping (store.cc)
  explicit ReadTxn(std::unique_ptr<Impl> impl);
  void end();  // aborts if still open; idempotent
  std::unique_ptr<Impl> impl_;
};

// A write transaction: what it puts and deletes is visible to itself at once (get and
// scan see it), to others only after commit(). The destructor aborts unless committed.
// After any error from put/del the transaction is failed: later calls and commit() return
// that same error, and nothing of it is ever stored.
class WriteTxn : public ReadTxn {
 public:
  WriteTxn(WriteTxn&&) noexcept = default;
  WriteTxn& operator=(WriteTxn&&) noexcept = default;
  ~WriteTxn() override;

  // Inserts or replaces. kResourceExhausted when the map is full (update() then grows it
  // and runs its function again) or the disk is; kInvalidArgument for a bad key.
  Status put(Table table, ByteView key, ByteView value);
  // Deleting an absent key is not an error.
  Status del(Table table, ByteView key);
  // Deletes every entry of `table` whose key starts with `prefix` (every entry when prefix is
  // empty) for which fn(key, value) returns true, and returns how many it deleted: the
  // repair path for records no parser accepts (a store copied while a sync wrote it), whose
  // keys may even have the wrong length, and the way for gc to count exactly what it
  // removed. key and value are valid only during that call of fn; fn must not use this
  // transaction. Errors as scan() and del(); after a del() error the transaction is failed.
  Result<std::uint64_t> erase_if(Table table, ByteView prefix,
                                 const std::function<bool(ByteView key, ByteView value)>& fn);
  // Makes every change visible at once, durably (see the file comment), and ends the
  // transaction. On error nothing is changed and the transaction is ended as well:
  // kResourceExhausted when the disk or the map is full, kUnavailable on an I/O error.
  Status commit();

 private:
  friend class Store;
  explicit WriteTxn(std::unique_ptr<Impl> impl);
};

struct StoreStats {
  std::uint64_t map_bytes = 0;   // current size of the map (the file may be smaller)
  std::uint64_t used_bytes = 0;  // pages up to the highest in use * page size; free pages
                                 // inside that range count too (they are reused, the file
                                 // never shrinks)
  std::uint64_t page_bytes = 0;  // LMDB page size
  // Pages the tables really hold (branch, leaf and overflow pages of every table and of the
  // table directory, from mdb_stat) * page size: what the data takes. Unlike used_bytes and
  // the file size it shrinks when gc deletes records (the freed pages are reused later).
  std::uint64_t in_use_bytes = 0;
  std::uint64_t file_bytes = 0;             // size of data.mdb on disk (never shrinks)
  std::uint64_t entries[kTableCount] = {};  // indexed by static_cast<int>(Table)
};

class Store {
 public:
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  ~Store();  // every transaction must have ended

  // Opens (or creates) the store in options.dir.
  //  kNotFound            no store there and !create ("no store at DIR: run 'outpost
  //                       subscribe' first or pass --store")
  //  kCorruption          the directory holds something that is not an outpost store
  //                       (data.mdb is not an LMDB file, or an LMDB file of another program),
  //                       or a damaged one: data.mdb shorter than the pages its meta page
  //                       counts ("store data.mdb in DIR is truncated (N of M bytes): ..."),
  //                       or empty while the store existed before (marker file present, or
  //                       !create). Checked before LMDB maps the file, so never SIGBUS.
  //  kFailedPrecondition  the store was written by the other word size (32/64-bit: export
  //                       and import), by a newer store format, or permissions/read-only fs
  //  kResourceExhausted   disk full while creating it
  //  kInvalidArgument     bad options (empty dir, create with read_only, map sizes)
  // When this process already has the directory open, the new Store shares that
  // environment: its map sizes are the first opener's, and asking to write a store that was
  // first opened read-only is kFailedPrecondition.
  static Result<std::unique_ptr<Store>> open(const StoreOptions& options);

  // Begins a read snapshot. kUnavailable when the reader table is full (126 readers across
  // all processes) or the map was grown by another process while this thread holds another
  // transaction of this Store.
  Result<ReadTxn> read();
  // Begins the write transaction, waiting for other writers (threads and processes).
  // kFailedPrecondition when opened read-only; kInternal when this thread already holds a
  // WriteTxn of this Store. A bare WriteTxn never grows the map: prefer update().
  Result<WriteTxn> write();

  // Runs fn inside one write transaction and commits it if fn returns Ok. When the map is
  // full (in a put or in the commit) the transaction is dropped, the map doubles and fn runs
  // again from the start, so fn must act only through the transaction and be repeatable.
  // Returns fn's error (the transaction aborted), or the commit's. kResourceExhausted when
  // the disk is full or the map limit is reached ("store is full (map limit N MiB
  // reached): run 'outpost gc' or raise the limit"): the store is then exactly as before.
  // kInternal when the calling thread holds a transaction of this Store (see Map growth).
  Status update(const std::function<Status(WriteTxn&)>& fn);
  // How a commit reaches the disk. kDurable: the data and then the meta page are flushed
  // before commit returns. kDataOnly: the data is flushed, the meta page that makes it
  // current only by the next durable commit (or the system): a power cut may undo this
  // commit, never tear the store (LMDB's MDB_NOMETASYNC). One flush instead of two, for
  // records that can be fetched again (chunks) and are followed by a durable commit.
  enum class Sync { kDurable, kDataOnly };
  Status update(const std::function<Status(WriteTxn&)>& fn, Sync sync);

  // Map size, bytes in use and entries per table (one read snapshot).
  Result<StoreStats> stats();
  // The id of the last committed write transaction, in this process or another: it changes
  // whenever anything is committed, so a poller can skip reading a store that did not change.
  // Cheap (a reader slot and the meta page).
  Result<std::uint64_t> last_commit();
  const std::string& dir() const { return dir_; }

  // Commits a transaction that leaves the store as it was, so that the pages the commits
  // before it freed can be reused by the next write. LMDB hands out a freed page only from
  // the second commit after the one that freed it, and an empty transaction commits nothing:
  // a caller that frees much and then writes as much in one large commit (a first sync's
  // download dropped, then its chunks) would otherwise grow the file by all of it.
  Status settle();

  // Drops this process's resident pages of the memory map (MADV_DONTNEED). The data stays in
  // the page cache and later reads fault it back in, so this is always safe; callers that
  // stream through the whole store (sync, verify, checkout) call it now and then to keep
  // their resident memory bounded whatever the store's size. Best effort: never fails.
  void release_memory();

 private:
  friend class ReadTxn;
  friend class WriteTxn;
  struct Impl;  // environment, table handles, growth gate (store.cc)
  Store();
  Result<std::unique_ptr<ReadTxn::Impl>> begin(bool write);
  Status grow(std::uint64_t map_bytes_seen);
  std::string dir_;
  std::unique_ptr<Impl> impl_;
};

// Key helpers for the tables above. Names must not contain NUL (bundle names and
// repository ids never do: packaging validates them).
// name \0 u64 big-endian: all versions of one bundle are adjacent, in numeric order, and
// text_key(name, "") (= name \0) is the scan prefix that selects exactly them.
Bytes version_key(std::string_view bundle, std::uint64_t version);
// a \0 b
Bytes text_key(std::string_view a, std::string_view b);

struct VersionKey {
  std::string bundle;
  std::uint64_t version = 0;
};
// The inverse of version_key; nullopt when key is not name \0 followed by 8 bytes.
std::optional<VersionKey> parse_version_key(ByteView key);

}  // namespace outpost::storage
