// Bytes from the source into the store (docs/sync.md, "Resume" and "Every byte verified
// before it counts"): a patch or full download resumed from the pieces an earlier attempt
// left in the kTransfers table and committed piece by piece as it arrives; the chunk index;
// missing chunks read in few coalesced range requests, each checked against its id before it
// is stored.
// Owns: the kTransfers table, chunk writes (ChunkBatch), and how missing chunks are grouped
// into range requests (so the planner prices the chunk route as they will be fetched).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "node_internal.h"
#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/chunk_index.h"
#include "outpost/packaging/manifest.h"
#include "outpost/storage/store.h"
#include "plan.h"
#include "sync_context.h"

namespace outpost::node {

// Verified chunks on their way into the store: committed in batches (few transactions, for
// SD cards) of bounded bytes and count (bounded resident memory), skipping chunks already
// held. With `Writes::kBackground` a full batch is committed on a thread of its own while the
// caller goes on filling the next one (at most one batch in flight): the disk's flush then
// overlaps the reading and checking of what comes next. The caller must hold no transaction
// of the store when it calls add() or flush() (a commit may need to grow the map).
class ChunkBatch {
 public:
  enum class Writes { kInline, kBackground };
  // Commits once `max_bytes` of frames or `max_count` chunks are pending.
  explicit ChunkBatch(storage::Store& store, std::size_t max_bytes = detail::kChunkBatchBytes,
                      std::size_t max_count = detail::kChunkBatchCount,
                      Writes writes = Writes::kInline)
      : store_(store), max_bytes_(max_bytes), max_count_(max_count), writes_(writes) {}
  ~ChunkBatch();  // waits for a commit in flight (its error is lost: call flush() first)
  ChunkBatch(const ChunkBatch&) = delete;
  ChunkBatch& operator=(const ChunkBatch&) = delete;
  // `frame`: the chunk's stored (compressed) bytes; `id` must already be verified. A failed
  // background commit of an earlier batch is returned here (or by flush()).
  Status add(const crypto::Digest& id, std::uint32_t raw_length, ByteView frame);
  // Commits what is pending and waits: on Ok, every chunk added is in the store.
  Status flush();
  // How many add() calls are known to be in the store: every chunk added before the
  // add() that made this count is stored.
  std::uint64_t stored() const { return stored_; }

 private:
  using Batch = std::vector<std::pair<crypto::Digest, Bytes>>;
  Status write(const Batch& batch);
  Status wait();  // for the commit in flight, if any
  storage::Store& store_;
  Batch batch_;
  std::size_t bytes_ = 0;
  std::size_t max_bytes_;
  std::size_t max_count_;
  Writes writes_;
  std::uint64_t added_ = 0;
  std::uint64_t stored_ = 0;
  // The commit in flight: its batch, how many adds it completes, and its result.
  std::thread writer_;
  Batch writing_;
  std::uint64_t writing_upto_ = 0;
  Status written_;
};

// The object's bytes: what an earlier attempt left in the store, then the rest from the
// source (a Range request from the last byte held), committed piece by piece; checked
// against the length and hash the signed manifest declares (kCorruption, transfer dropped,
// when they differ). What arrived before a failed read is kept for the next attempt.
Result<Bytes> fetch_object(SyncContext& ctx, const packaging::PatchRef& ref,
                           const std::string& bundle, const std::string& route);
// Forgets what the store holds of a transfer.
Status drop_transfer(SyncContext& ctx, const crypto::Digest& object);
// Stores a whole object as a finished transfer (fetch_object then reads it from the store),
// in place of any pieces held.
Status keep_transfer(SyncContext& ctx, const crypto::Digest& object, ByteView bytes);
// The manifest's chunk index, checked against its signed length and hash.
Result<Bytes> fetch_index(SyncContext& ctx, const packaging::Manifest& manifest);
// Positions in index.chunks of the first occurrence of each distinct chunk, in id order.
std::vector<std::uint32_t> first_occurrences(const packaging::ChunkIndex& index);
// Positions in index.chunks of the first occurrence of each chunk the store lacks, ascending.
Result<std::vector<std::size_t>> missing_chunks(SyncContext& ctx,
                                                const packaging::ChunkIndex& index);
// The exact price of fetching `missing` as fetch_chunks() will: stored bytes and requests.
ChunkCost chunk_cost(const packaging::ChunkIndex& index, const std::vector<std::size_t>& missing);
// Reads the missing chunks in coalesced ranges (many ranges per request), verifies each one
// against its id, and commits them in batches. kCancelled on a stop request, keeping what
// verified.
Status fetch_chunks(SyncContext& ctx, const packaging::ChunkIndex& index,
                    const std::vector<std::size_t>& missing, const std::string& bundle);

}  // namespace outpost::node
