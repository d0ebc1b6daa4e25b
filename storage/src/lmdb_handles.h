// RAII handles around LMDB and the one mapping from LMDB return codes to Status.
// This is the only file in outpost that includes <lmdb.h>; MDB_* types never leave src/.
//
// Rules encoded here (from lmdb.h, LMDB 0.9.24 as shipped by Debian 12):
//  - mdb_env_close, mdb_txn_abort and mdb_cursor_close free their handle; each is the
//    deleter of one unique_ptr type, so a handle is released exactly once on every path.
//  - mdb_txn_commit frees the transaction even when it fails, so commit() releases the
//    unique_ptr *before* calling it (never abort after a failed commit).
//  - A cursor must be closed before its transaction ends: declare the Cursor after the Txn
//    it belongs to (or in an inner scope) so destruction order does it.
//  - MDB_val data returned by LMDB points into the map and is valid only until the next
//    update in the transaction or the end of the transaction: view() results must not
//    outlive either; copy() them out otherwise.
#pragma once

#include <lmdb.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"

namespace outpost::storage::lmdb {

// A deleter with no state, so unique_ptr<T, Deleter<f>> is one pointer wide.
template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};

using Env = std::unique_ptr<MDB_env, Deleter<&mdb_env_close>>;
// Aborts in its destructor unless released by commit().
using Txn = std::unique_ptr<MDB_txn, Deleter<&mdb_txn_abort>>;
using Cursor = std::unique_ptr<MDB_cursor, Deleter<&mdb_cursor_close>>;

// Commits and consumes txn (LMDB frees the handle whether or not the commit succeeds).
inline int commit(Txn& txn) { return mdb_txn_commit(txn.release()); }

inline MDB_val val(ByteView bytes) {
  // LMDB takes void* but does not write through key or data pointers passed in.
  return MDB_val{bytes.size(), const_cast<std::uint8_t*>(bytes.data())};
}
inline ByteView view(const MDB_val& v) {
  return {static_cast<const std::uint8_t*>(v.mv_data), v.mv_size};
}
inline Bytes copy(const MDB_val& v) {
  auto b = view(v);
  return Bytes(b.begin(), b.end());
}

inline std::string mib(std::uint64_t bytes) {
  return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB";
}

// The one mapping from an LMDB (or errno) return code to a Status the user can act on.
// `doing` is a gerund for the message ("writing", "opening", "reading"); dir the store.
// MDB_NOTFOUND is not an error for get/del: callers handle it before calling this.
inline Status to_status(int rc, std::string_view doing, const std::string& dir) {
  const std::string what(doing);
  switch (rc) {
    case MDB_SUCCESS: return Status::Ok();
    case MDB_MAP_FULL:
      // Store::update() catches this (by the transaction's flag, not the text), grows the
      // map and retries; only users of a bare write() transaction see this message.
      return Status::ResourceExhausted("the store in " + dir + " is full (its LMDB map) while " +
                                       what + ": run 'outpost gc' or raise the limit");
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return Status::ResourceExhausted("disk full while " + what + " the store in " + dir +
                                       ": free space and run the command again");
    case MDB_INVALID:
      return Status::Corruption(dir + " is not an outpost store (not an LMDB file): check " +
                                "--store, or move the directory aside and run 'outpost " +
                                "subscribe' to start a new store");
    case MDB_VERSION_MISMATCH:
      return Status::FailedPrecondition(
          "the store in " + dir + " was written by an incompatible LMDB version: export it " +
          "with the outpost that wrote it ('outpost export') and import it here");
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
      return Status::Corruption("the store in " + dir + " is damaged (" + mdb_strerror(rc) +
                                ") while " + what + ": move it aside, then subscribe and " +
                                "sync again or import a pack");
    case MDB_INCOMPATIBLE:
      return Status::Corruption("the store in " + dir + " has tables outpost does not " +
                                "recognise: it is not an outpost store, check --store");
    case MDB_PANIC:
      return Status::FailedPrecondition("the store in " + dir + " had a fatal error while " + what +
                                        ": restart outpost (committed data is safe)");
    case MDB_MAP_RESIZED:
      return Status::Unavailable("the store in " + dir + " was grown by another process " +
                                 "while " + what + ": end open transactions and retry");
    case MDB_READERS_FULL:
      return Status::Unavailable("too many readers of the store in " + dir + ": retry later, " +
                                 "or stop some of the processes using it");
    case MDB_TXN_FULL:
      return Status::ResourceExhausted("one transaction changed too much while " + what +
                                       " the store in " + dir + ": commit in smaller batches");
    case MDB_BAD_VALSIZE:
      return Status::InvalidArgument("key or value size refused while " + what + " the store in " +
                                     dir + " (keys are 1 to 511 bytes)");
    case EACCES:
    case EPERM:
      return Status::FailedPrecondition("permission denied while " + what + " the store in " + dir +
                                        ": run as the user that owns it, or fix the " +
                                        "permissions of the directory and its files");
    case EROFS:
      return Status::FailedPrecondition("the store in " + dir + " is on a read-only file " +
                                        "system: remount it read-write, or open the store " +
                                        "read-only");
    case EIO:
      return Status::Unavailable("input/output error while " + what + " the store in " + dir +
                                 ": was the device removed? check the SD card or disk");
    case ENOMEM:
      return Status::ResourceExhausted(
          "out of memory or address space while " + what + " the store in " + dir +
          (sizeof(void*) == 4 ? " (a 32-bit build maps at most about 2 GiB: run 'outpost gc', "
                                "or move to a 64-bit OS with export and import)"
                              : ": raise the address-space limit (ulimit -v) or free memory, "
                                "then run the command again"));
    case EMFILE:
    case ENFILE:
      return Status::ResourceExhausted("too many open files while " + what + " the store in " +
                                       dir + ": raise the limit (ulimit -n, or LimitNOFILE= " +
                                       "in the systemd unit) or close other programs");
    case ENOENT:
      return Status::NotFound("no store at " + dir +
                              ": run 'outpost subscribe' first or pass --store");
    default:
      // MDB_BAD_TXN, MDB_BAD_DBI, MDB_BAD_RSLOT, MDB_DBS_FULL, EINVAL, ...: misuse of LMDB.
      return Status::Internal("LMDB error while " + what + " the store in " + dir + ": " +
                              mdb_strerror(rc) + " (a bug in outpost)");
  }
}

// LMDB's data file starts with a meta page: a page header (page number as a size_t, then
// u16 pad, u16 flags, u16 lower, u16 upper) followed by the meta (u32 magic 0xBEEFC0DE,
// u32 data version 1). The page number's width makes the layout differ between 32-bit and
// 64-bit builds, and LMDB answers MDB_INVALID for the other one. Returns 32 or 64 when the
// first bytes of `path` are a meta page of that word size (little-endian), 0 otherwise.
inline int data_file_word_size(const std::string& path) {
  std::uint8_t head[24] = {};
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return 0;
  std::size_t n = std::fread(head, 1, sizeof head, f);
  std::fclose(f);
  if (n < sizeof head) return 0;
  auto u16 = [&](std::size_t at) {
    return static_cast<std::uint16_t>(head[at] | (head[at + 1] << 8));
  };
  constexpr std::uint16_t kPageMeta = 0x08;  // P_META
  constexpr std::uint32_t kMagic = 0xBEEFC0DEu;
  if ((u16(6) & kPageMeta) && get_u32le(head + 12) == kMagic && get_u32le(head + 16) == 1) {
    return 32;
  }
  if ((u16(10) & kPageMeta) && get_u32le(head + 16) == kMagic && get_u32le(head + 20) == 1) {
    return 64;
  }
  return 0;
}

}  // namespace outpost::storage::lmdb
