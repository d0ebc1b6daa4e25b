// Internals shared by the node's source files: how trusted metadata, bundle records and held
// versions are read from and written to the store. Not a public header.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "node_records.h"
#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/crypto/hash.h"
#include "outpost/crypto/tuf.h"
#include "outpost/packaging/chunk_index.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/manifest.h"
#include "outpost/storage/store.h"

namespace outpost::node::detail {

namespace tuf = crypto::tuf;

// Chunks are written in batches of about this many stored bytes: few transactions (SD cards
// wear out) and little lost when a link or the power drops mid-sync.
inline constexpr std::size_t kChunkBatchBytes = 2u << 20;
// ... and of at most this many chunks: every random-key insert faults in a leaf page of the
// map, and the kernel maps up to 64 KB around each fault, so the count bounds resident
// memory as much as the bytes do.
inline constexpr std::size_t kChunkBatchCount = 192;
// Ranges of a pack closer than this are read as one.
inline constexpr std::uint64_t kCoalesceGap = 16u << 10;
// Streaming through the store maps its pages into this process (with the kernel's 64 KB
// fault-around per chunk looked up); dropping them every few MB or few hundred chunks keeps
// resident memory flat (64 MB target) however large the store is.
inline constexpr std::uint64_t kReleaseEvery = 4u << 20;
inline constexpr std::uint64_t kReleaseEveryChunks = 192;

// Counts bytes read from the store and releases its mapped pages every kReleaseEvery.
class PageBudget {
 public:
  explicit PageBudget(storage::Store& store) : store_(store) {}
  void add(std::uint64_t n) {
    read_ += n;
    if (read_ >= kReleaseEvery || ++chunks_ >= kReleaseEveryChunks) {
      store_.release_memory();
      read_ = 0;
      chunks_ = 0;
    }
  }

 private:
  storage::Store& store_;
  std::uint64_t read_ = 0;
  std::uint64_t chunks_ = 0;
};

struct HeldVersion {
  packaging::Manifest manifest;
  packaging::ChunkIndex index;
};

inline ByteView view(const Bytes& b) { return {b.data(), b.size()}; }
// Ends a read transaction early: the store can only grow its map while none is open.
inline void end(storage::ReadTxn& txn) { storage::ReadTxn gone = std::move(txn); }
inline std::string role_key(const std::string& delegated_name) {
  return "delegated/" + delegated_name;
}

// One held role's bytes ("root", "timestamp", "snapshot", ...); empty when none is held.
Result<Bytes> load_role(const storage::ReadTxn& txn, const std::string& repo,
                        std::string_view role);
Result<tuf::TrustedMetadata> load_trusted(const storage::ReadTxn& txn, const std::string& repo);
// Also keeps the root in the repository's root history (save_root_history), and, when the
// snapshot changes, the snapshot, targets and delegated roles it replaces (load_previous).
Status save_trusted(storage::WriteTxn& txn, const std::string& repo, const tuf::TrustedMetadata& t);
// The snapshot, targets and delegated roles held before the current ones (keys "previous/..."
// in kMetadata; root and timestamp left empty; all empty when there were none): an export for
// a node one snapshot behind sends the new ones as deltas against them, as a link does.
Result<tuf::TrustedMetadata> load_previous(const storage::ReadTxn& txn, const std::string& repo);
// Every root version a node has trusted is kept (key "root-history/<20-digit version>" in
// kMetadata), so an export can carry each one an offline node may have missed: a node that
// trusts root N accepts N+2 only through N+1. Roots whose version cannot be read are skipped.
Status save_root_history(storage::WriteTxn& txn, const std::string& repo, const Bytes& root);
// version -> bytes of every root kept for `repo`, the current one included.
Result<std::map<std::int64_t, Bytes>> load_root_history(const storage::ReadTxn& txn,
                                                        const std::string& repo);
inline constexpr std::string_view kRootHistoryPrefix = "root-history/";
Result<std::int64_t> time_floor(const storage::ReadTxn& txn);
// The time a node uses for expiry: never earlier than a time it has already seen (a
// Raspberry Pi has no real-time clock and may boot in 1970).
Status raise_time_floor(storage::WriteTxn& txn, std::int64_t now);
Result<std::optional<records::BundleRecord>> get_bundle(const storage::ReadTxn& txn,
                                                        const std::string& name);
Result<HeldVersion> load_version(const storage::ReadTxn& txn, const std::string& bundle,
                                 std::uint64_t version);
Result<Bytes> read_chunk(const storage::ReadTxn& txn, packaging::Decompressor& dec,
                         const packaging::ChunkEntry& entry);
// The content stream (packaging/content.h) of a held version, whole in memory: for making a
// patch between two held versions (the caller bounds its size).
Result<Bytes> content_stream(const storage::ReadTxn& txn, const HeldVersion& held,
                             packaging::Decompressor& dec);
// Streams the content of a held version through fn(file index, bytes) in table order.
Status stream_content(storage::Store& store, const storage::ReadTxn& txn, const HeldVersion& held,
                      const std::function<Status(std::size_t, ByteView)>& fn);
Result<crypto::Digest> compute_root(storage::Store& store, const storage::ReadTxn& txn,
                                    const HeldVersion& held);
// Rechecks the signatures of metadata the node already trusts (for `verify`).
Status verify_trusted(const tuf::TrustedMetadata& t);
std::string repo_id_for(const tuf::Root& root);

}  // namespace outpost::node::detail
