// The node's store: one LMDB environment in a directory, with named tables. Generic on
// purpose: keys and values are bytes, and the modules above give them meaning
// (docs/format-store.md lists every table and key layout).
//
// Concurrency: one writer at a time (write() blocks while another write transaction is open,
// in this process or another), any number of readers; readers see a consistent snapshot.
// A Store may be shared between threads; transactions belong to the thread that opened them.
// Values returned are copies: they stay valid after the transaction ends.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"

namespace outpost::storage {

enum class Table {
  kChunks,         // BLAKE2b-256 of raw bytes -> stored chunk (docs/format-store.md)
  kManifests,      // bundle name \0 u64be version -> manifest bytes as signed
  kIndexes,        // bundle name \0 u64be version -> chunk index bytes
  kBundles,        // bundle name -> bundle record (current version, held versions)
  kMetadata,       // repository id \0 role -> TUF metadata bytes as signed
  kTrust,          // trusted state that content can never overwrite (time floor, versions)
  kSubscriptions,  // repository id -> subscription record
  kTransfers,      // unfinished transfers (resume state)
  kSettings,       // node settings (retention, ...)
};
inline constexpr int kTableCount = 9;
const char* table_name(Table t);

struct StoreOptions {
  std::string dir;                       // created when create == true
  bool create = false;                   // false: a missing store is kNotFound
  std::uint64_t initial_map_bytes = 64u << 20;
  // Upper bound for automatic growth; 32-bit builds cap it below 2 GiB.
  std::uint64_t max_map_bytes = sizeof(void*) == 4 ? (1536ull << 20) : (1ull << 40);
  bool read_only = false;
};

class Store;

class ReadTxn {
 public:
  ReadTxn(ReadTxn&&) noexcept;
  ReadTxn& operator=(ReadTxn&&) noexcept;
  virtual ~ReadTxn();  // aborts (releases the snapshot)

  // nullopt when absent.
  Result<std::optional<Bytes>> get(Table table, ByteView key) const;
  // Calls fn for each key starting with prefix, in key order, until fn returns false.
  Status scan(Table table, ByteView prefix,
              const std::function<bool(ByteView key, ByteView value)>& fn) const;
  Result<std::uint64_t> count(Table table) const;

 protected:
  friend class Store;
  ReadTxn(Store* store, void* txn);
  Store* store_ = nullptr;
  void* txn_ = nullptr;  // MDB_txn*
};

class WriteTxn : public ReadTxn {
 public:
  WriteTxn(WriteTxn&&) noexcept = default;
  WriteTxn& operator=(WriteTxn&&) noexcept = default;
  ~WriteTxn() override;  // aborts unless committed

  Status put(Table table, ByteView key, ByteView value);
  // Deleting an absent key is not an error.
  Status del(Table table, ByteView key);
  // Makes every change visible at once, durably. On error nothing is changed.
  Status commit();

 private:
  friend class Store;
  WriteTxn(Store* store, void* txn) : ReadTxn(store, txn) {}
};

struct StoreStats {
  std::uint64_t map_bytes = 0;
  std::uint64_t used_bytes = 0;  // pages in use * page size
  std::uint64_t entries[kTableCount] = {};
};

class Store {
 public:
  ~Store();
  // Opens (or creates) the store in options.dir. kNotFound when missing and !create;
  // kCorruption when the directory holds something that is not an outpost store;
  // kFailedPrecondition when the store was written by another word size (32/64-bit).
  static Result<std::unique_ptr<Store>> open(const StoreOptions& options);

  Result<ReadTxn> read();
  Result<WriteTxn> write();

  // Runs fn inside one write transaction and commits. When the map is full the transaction
  // is dropped, the map grows and fn runs again from the start (so fn must only act through
  // the transaction). kResourceExhausted when the disk or the map limit is reached: the
  // store is then exactly as before.
  Status update(const std::function<Status(WriteTxn&)>& fn);

  Result<StoreStats> stats();
  const std::string& dir() const { return dir_; }

 private:
  friend class ReadTxn;
  friend class WriteTxn;
  Store() = default;
  Status grow();
  std::string dir_;
  StoreOptions options_;
  void* env_ = nullptr;          // MDB_env*
  unsigned dbi_[kTableCount] = {};  // MDB_dbi
};

// Key helpers for the tables above.
Bytes version_key(std::string_view bundle, std::uint64_t version);  // name \0 u64be
Bytes text_key(std::string_view a, std::string_view b);              // a \0 b

}  // namespace outpost::storage
