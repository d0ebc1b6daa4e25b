#include "transfer.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "node_internal.h"
#include "node_records.h"
#include "outpost/node/chunk_store.h"
#include "outpost/packaging/layout.h"
#include "outpost/packaging/pack.h"
#include "outpost/sync/source.h"

namespace outpost::node {

using namespace detail;
using packaging::ChunkIndex;
using packaging::PatchRef;
using storage::Table;

namespace {

// A patch or full download is committed to the store in pieces of this size as it arrives,
// so a dropped link or a killed process loses at most one piece.
constexpr std::size_t kTransferPiece = 256u << 10;
// Missing chunks are asked for in calls of at most this many stored bytes (each one HTTP
// request with many ranges).
constexpr std::uint64_t kRangeCallBytes = 8u << 20;
// From a peer node, missing chunks are asked for by id, this many per request (each id is 65
// bytes of the request line, which a peer bounds) and at most kRangeCallBytes stored bytes.
constexpr std::size_t kPiecesPerRequest = 150;

std::string transfer_prefix(const crypto::Digest& object) {
  return "object/" + crypto::hex(object) + "/";
}

Bytes piece_key(const crypto::Digest& object, std::uint64_t offset) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(offset));
  return to_bytes(transfer_prefix(object) + buf);
}

// Stores `bytes`, the object's bytes from `offset` on, as values of at most kTransferPiece.
Status put_pieces(storage::WriteTxn& txn, const crypto::Digest& object, std::uint64_t offset,
                  ByteView bytes) {
  for (std::size_t at = 0; at < bytes.size(); at += kTransferPiece) {
    const std::size_t n = std::min(kTransferPiece, bytes.size() - at);
    Bytes key = piece_key(object, offset + at);
    OUTPOST_RETURN_IF_ERROR(txn.put(Table::kTransfers, view(key), bytes.subspan(at, n)));
  }
  return Status::Ok();
}

// Spans of one pack to read: runs of nearby missing chunks merged into one range.
struct Span {
  std::uint32_t pack = 0;
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::vector<const packaging::ChunkEntry*> entries;
};

std::vector<Span> spans_for(const ChunkIndex& index, const std::vector<std::size_t>& missing) {
  std::map<std::uint32_t, std::vector<const packaging::ChunkEntry*>> by_pack;
  for (std::size_t i : missing) by_pack[index.chunks[i].pack].push_back(&index.chunks[i]);
  std::vector<Span> spans;
  for (auto& [pack, entries] : by_pack) {
    std::sort(entries.begin(), entries.end(),
              [](auto* a, auto* b) { return a->offset < b->offset; });
    for (const auto* e : entries) {
      if (!spans.empty() && spans.back().pack == pack &&
          e->offset <= spans.back().end + kCoalesceGap &&
          e->offset + e->stored_length - spans.back().start <= kChunkBatchBytes) {
        spans.back().end = std::max(spans.back().end, e->offset + e->stored_length);
        spans.back().entries.push_back(e);
        continue;
      }
      spans.push_back(Span{pack, e->offset, e->offset + e->stored_length, {e}});
    }
  }
  return spans;
}

}  // namespace

ChunkBatch::~ChunkBatch() { (void)wait(); }

Status ChunkBatch::add(const crypto::Digest& id, std::uint32_t raw_length, ByteView frame) {
  batch_.emplace_back(id, records::chunk_value(raw_length, frame));
  bytes_ += frame.size();
  ++added_;
  if (bytes_ < max_bytes_ && batch_.size() < max_count_) return Status::Ok();
  if (writes_ == Writes::kInline) return flush();
  OUTPOST_RETURN_IF_ERROR(wait());
  writing_.swap(batch_);
  batch_.clear();
  bytes_ = 0;
  writing_upto_ = added_;
  try {
    writer_ = std::thread([this] { written_ = write(writing_); });
  } catch (const std::system_error&) {  // no thread to be had: commit it here
    written_ = write(writing_);
  }
  return Status::Ok();
}

Status ChunkBatch::wait() {
  if (writer_.joinable()) writer_.join();
  if (writing_upto_ == 0) return Status::Ok();
  Status s = written_;
  written_ = Status::Ok();
  if (s.ok()) stored_ = writing_upto_;
  writing_upto_ = 0;
  writing_.clear();
  return s;
}

Status ChunkBatch::flush() {
  OUTPOST_RETURN_IF_ERROR(wait());
  if (batch_.empty()) return Status::Ok();
  OUTPOST_RETURN_IF_ERROR(write(batch_));
  batch_.clear();
  bytes_ = 0;
  stored_ = added_;
  return Status::Ok();
}

// Each new key's descent maps pages of the store (tens of MB for a batch of 128 random
// keys, with the kernel's fault-around): dropped every few puts and before the commit, which
// waits on the disk with them otherwise resident (docs/BENCHMARKS.md, "USB packs").
constexpr std::size_t kReleaseEveryPuts = 32;

Status ChunkBatch::write(const Batch& batch) {
  // Chunks can be fetched again, and the version that uses them commits durably after them,
  // flushing them too: a power cut may undo this batch (kDataOnly), never tear the store.
  OUTPOST_RETURN_IF_ERROR(store_.update(
      [&](storage::WriteTxn& txn) -> Status {
        std::size_t n = 0;
        chunks::Writer writer(txn);  // small chunks packed into blocks (chunk_store.h)
        for (const auto& [id, value] : batch) {
          OUTPOST_RETURN_IF_ERROR(writer.add(id, view(value)));
          if (++n % kReleaseEveryPuts == 0) store_.release_memory();
        }
        OUTPOST_RETURN_IF_ERROR(writer.finish());
        store_.release_memory();
        return Status::Ok();
      },
      storage::Store::Sync::kDataOnly));
  store_.release_memory();
  return Status::Ok();
}

namespace {

Result<Bytes> fetch_object_once(SyncContext& ctx, const PatchRef& ref, const std::string& bundle,
                                const std::string& route);

}  // namespace

// Over a network, an object damaged in transit fails its hash like a tampered one: the
// damaged bytes are dropped (fetch_object_once) and the object is fetched once more, whole,
// before the source is called bad. A local path or a pack would read the same bytes again.
Result<Bytes> fetch_object(SyncContext& ctx, const PatchRef& ref, const std::string& bundle,
                           const std::string& route) {
  // Carried by the metadata update file already fetched: no request.
  if (ctx.overlay) {
    if (auto carried = ctx.overlay->carried(ref.path, ref.length)) {
      if (carried->size() == ref.length &&
          crypto::digest_equal(crypto::blake2b(view(*carried)), ref.blake2b)) {
        // A node that keeps patches for its peers keeps this one as if it had fetched it.
        if (ctx.options.keep_patches) {
          OUTPOST_RETURN_IF_ERROR(keep_transfer(ctx, ref.blake2b, view(*carried)));
        }
        return std::move(*carried);
      }
    }
  }
  Result<Bytes> r = fetch_object_once(ctx, ref, bundle, route);
  if (!r.ok() && r.error().code() == Code::kCorruption && ctx.source.metered()) {
    r = fetch_object_once(ctx, ref, bundle, route);
  }
  return r;
}

namespace {

Result<Bytes> fetch_object_once(SyncContext& ctx, const PatchRef& ref, const std::string& bundle,
                                const std::string& route) {
  Bytes data;
  std::string prefix = transfer_prefix(ref.blake2b);
  {
    OUTPOST_ASSIGN_OR_RETURN(auto txn, ctx.store.read());
    OUTPOST_RETURN_IF_ERROR(
        txn.scan(Table::kTransfers, as_bytes(prefix), [&](ByteView, ByteView v) {
          data.insert(data.end(), v.begin(), v.end());
          return data.size() <= ref.length;
        }));
  }
  if (data.size() > ref.length) {
    OUTPOST_RETURN_IF_ERROR(drop_transfer(ctx, ref.blake2b));
    data.clear();
  }
  std::uint64_t committed = data.size();
  auto commit = [&]() -> Status {
    if (data.size() == committed) return Status::Ok();
    OUTPOST_RETURN_IF_ERROR(ctx.store.update([&](storage::WriteTxn& txn) {
      return put_pieces(txn, ref.blake2b, committed, view(data).subspan(committed));
    }));
    committed = data.size();
    return Status::Ok();
  };
  SyncProgress progress{bundle, route, data.size(), ref.length};
  if (data.size() < ref.length) {
    Status got;
    {
      bool restarted = false;
      bool reset_done = false;
      got = ctx.source.read_tail(
          ref.path, data.size(), ref.length,
          [&](ByteView piece) -> Status {
            if (restarted && !reset_done) {
              reset_done = true;
              data.clear();
              committed = 0;
              OUTPOST_RETURN_IF_ERROR(drop_transfer(ctx, ref.blake2b));
            }
            data.insert(data.end(), piece.begin(), piece.end());
            progress.done = data.size();
            if (ctx.options.progress) ctx.options.progress(progress);
            if (data.size() - committed >= kTransferPiece) return commit();
            return Status::Ok();
          },
          &restarted);
    }
    // Keep what arrived, even when the link dropped: the next attempt resumes after it.
    Status kept = got.ok() ? commit() : Status::Ok();
    if (!got.ok()) {
      if (data.size() >= committed && data.size() <= ref.length) (void)commit();
      return got.With("fetching " + ref.path);
    }
    OUTPOST_RETURN_IF_ERROR(kept);
  }
  if (data.size() != ref.length ||
      !crypto::digest_equal(crypto::blake2b(view(data)), ref.blake2b)) {
    OUTPOST_RETURN_IF_ERROR(drop_transfer(ctx, ref.blake2b));
    return Status::Corruption(ref.path + " from " + ctx.source.describe() +
                              " does not match the length and hash in its signed manifest "
                              "(damaged or tampered): not used; sync again or try another "
                              "mirror");
  }
  return data;
}

}  // namespace

Status drop_transfer(SyncContext& ctx, const crypto::Digest& object) {
  std::string prefix = transfer_prefix(object);
  return ctx.store.update([&](storage::WriteTxn& txn) -> Status {
    std::vector<Bytes> keys;
    OUTPOST_RETURN_IF_ERROR(
        txn.scan(Table::kTransfers, as_bytes(prefix), [&](ByteView k, ByteView) {
          keys.emplace_back(k.begin(), k.end());
          return true;
        }));
    for (const Bytes& k : keys) OUTPOST_RETURN_IF_ERROR(txn.del(Table::kTransfers, view(k)));
    return Status::Ok();
  });
}

Status keep_transfer(SyncContext& ctx, const crypto::Digest& object, ByteView bytes) {
  OUTPOST_RETURN_IF_ERROR(drop_transfer(ctx, object));
  return ctx.store.update(
      [&](storage::WriteTxn& txn) { return put_pieces(txn, object, 0, bytes); });
}

Result<Bytes> fetch_index(SyncContext& ctx, const packaging::Manifest& manifest) {
  auto index_bytes = ctx.source.read_file(manifest.index.path, manifest.index.length);
  // Damaged in transit (see fetch_object): once more over a network.
  if (index_bytes.ok() && ctx.source.metered() &&
      (index_bytes->size() != manifest.index.length ||
       !crypto::digest_equal(crypto::blake2b(view(*index_bytes)), manifest.index.blake2b))) {
    index_bytes = ctx.source.read_file(manifest.index.path, manifest.index.length);
  }
  if (!index_bytes.ok()) return index_bytes.error().With("fetching the chunk index");
  if (index_bytes->size() != manifest.index.length ||
      !crypto::digest_equal(crypto::blake2b(view(*index_bytes)), manifest.index.blake2b)) {
    return Status::Corruption("the chunk index " + manifest.index.path + " from " +
                              ctx.source.describe() +
                              " does not match the hash in its signed manifest");
  }
  return index_bytes;
}

std::vector<std::uint32_t> first_occurrences(const ChunkIndex& index) {
  // Positions sorted by (id, position), then the first of each id: 4 bytes a chunk, where a
  // set of ids cost ~70 (a 1 GB version has ~65,000 chunks).
  std::vector<std::uint32_t> at(index.chunks.size());
  for (std::size_t i = 0; i < at.size(); ++i) at[i] = static_cast<std::uint32_t>(i);
  std::sort(at.begin(), at.end(), [&](std::uint32_t a, std::uint32_t b) {
    const auto& x = index.chunks[a].id;
    const auto& y = index.chunks[b].id;
    return x < y || (x == y && a < b);
  });
  at.erase(std::unique(at.begin(), at.end(),
                       [&](std::uint32_t a, std::uint32_t b) {
                         return index.chunks[a].id == index.chunks[b].id;
                       }),
           at.end());
  return at;
}

Result<std::vector<std::size_t>> missing_chunks(SyncContext& ctx, const ChunkIndex& index) {
  OUTPOST_ASSIGN_OR_RETURN(auto txn, ctx.store.read());
  std::vector<std::size_t> out;
  PageBudget pages(ctx.store);
  // Looked up in key order: neighbouring keys share the store's pages.
  for (std::uint32_t i : first_occurrences(index)) {
    const auto& id = index.chunks[i].id;
    pages.add(0);
    OUTPOST_ASSIGN_OR_RETURN(auto v, txn.get(Table::kChunks, {id.data(), id.size()}));
    if (!v) out.push_back(i);
  }
  std::sort(out.begin(), out.end());
  return out;
}

ChunkCost chunk_cost(const ChunkIndex& index, const std::vector<std::size_t>& missing) {
  ChunkCost c;
  std::uint64_t call_bytes = 0;
  std::uint32_t pack = UINT32_MAX;
  for (const Span& s : spans_for(index, missing)) {
    c.bytes += s.end - s.start;
    if (s.pack != pack || call_bytes + (s.end - s.start) > kRangeCallBytes) {
      ++c.requests;
      call_bytes = 0;
      pack = s.pack;
    }
    call_bytes += s.end - s.start;
  }
  return c;
}

namespace {

// The peer route of the chunks (docs/daemon.md, "Many pieces in one response"): the missing
// chunks by id, many per request, each record checked against the id asked for (and the raw
// length the signed index gives) before it is stored. Sets *left to the positions that did not
// arrive (the caller reads those by ranges); only a stop request, a used-up budget or a full
// store end it with an error: whatever else goes wrong, the range route takes over.
Status fetch_chunks_by_id(SyncContext& ctx, const ChunkIndex& index,
                          const std::vector<std::size_t>& missing, ChunkBatch& batch,
                          SyncProgress& progress, std::vector<std::size_t>* left) {
  std::size_t i = 0;
  while (i < missing.size()) {
    if (ctx.options.stop.stop_requested()) break;
    std::size_t j = i;
    std::uint64_t bytes = 0;
    std::map<crypto::Digest, std::size_t> asked;  // id -> position in index.chunks
    std::string query = "pieces?chunks=";
    while (j < missing.size() && asked.size() < kPiecesPerRequest &&
           (asked.empty() || bytes + index.chunks[missing[j]].stored_length <= kRangeCallBytes)) {
      const auto& e = index.chunks[missing[j]];
      if (asked.emplace(e.id, missing[j]).second) {
        query += (asked.size() == 1 ? "" : ",") + crypto::hex(e.id);
        bytes += e.stored_length;
      }
      ++j;
    }
    // Each record: a 51-byte header; the pack: its magic and trailer.
    auto body = ctx.source.read_file(query, bytes + asked.size() * 64 + 4096);
    if (!body.ok()) {
      if (body.error().IsCancelled() || body.error().IsResourceExhausted()) return body.error();
      break;  // not served as asked (an older peer, a 404, a damaged answer): ranges it is
    }
    packaging::PackReaderOptions po;
    po.verify_chunks = true;  // decompressed (bounded) and hashed against the record's id
    auto reader = packaging::PackReader::from_memory(view(*body), "the peer's pieces", po);
    while (true) {
      auto rec = reader->next();
      if (!rec.ok() || !rec->has_value()) break;  // what verified before a bad record is kept
      const auto& info = (*rec)->info;
      if (info.type != packaging::RecordType::kChunk) continue;
      auto it = asked.find(info.id);
      if (it == asked.end() || info.raw_length != index.chunks[it->second].raw_length) continue;
      OUTPOST_RETURN_IF_ERROR(
          batch.add(info.id, static_cast<std::uint32_t>(info.raw_length), view((*rec)->stored)));
      progress.done += index.chunks[it->second].stored_length;
      asked.erase(it);
    }
    if (ctx.options.progress) ctx.options.progress(progress);
    for (std::size_t k = i; k < j; ++k) {
      if (asked.count(index.chunks[missing[k]].id) != 0) left->push_back(missing[k]);
    }
    i = j;
  }
  left->insert(left->end(), missing.begin() + static_cast<std::ptrdiff_t>(i), missing.end());
  return Status::Ok();
}

}  // namespace

Status fetch_chunks(SyncContext& ctx, const ChunkIndex& index,
                    const std::vector<std::size_t>& given, const std::string& bundle) {
  packaging::Decompressor dec;
  ChunkBatch batch(ctx.store);
  std::vector<std::size_t> missing = given;
  std::uint64_t all = 0;
  for (const Span& s : spans_for(index, given)) all += s.end - s.start;
  SyncProgress by_id{bundle, "chunks", 0, all};
  if (ctx.source.peer() && !missing.empty()) {
    std::vector<std::size_t> left;
    OUTPOST_RETURN_IF_ERROR(fetch_chunks_by_id(ctx, index, given, batch, by_id, &left));
    missing = std::move(left);
  }
  std::vector<Span> spans = spans_for(index, missing);
  std::uint64_t total = 0;
  for (const Span& s : spans) total += s.end - s.start;
  SyncProgress progress{bundle, "chunks", 0, total};
  std::size_t i = 0;
  while (i < spans.size()) {
    if (ctx.options.stop.stop_requested()) {
      OUTPOST_RETURN_IF_ERROR(batch.flush());  // keep what verified
      return Status::Cancelled("sync stopped on request");
    }
    // One call: spans of one pack, up to kRangeCallBytes.
    std::size_t j = i;
    std::uint64_t bytes = spans[i].end - spans[i].start;
    while (j + 1 < spans.size() && spans[j + 1].pack == spans[i].pack &&
           bytes + (spans[j + 1].end - spans[j + 1].start) <= kRangeCallBytes) {
      ++j;
      bytes += spans[j].end - spans[j].start;
    }
    std::vector<sync::ByteRange> ranges;
    for (std::size_t k = i; k <= j; ++k) {
      ranges.push_back(sync::ByteRange{spans[k].start, spans[k].end - spans[k].start});
    }
    std::string pack_path = packaging::pack_object_path(index.packs[spans[i].pack]);
    auto data = ctx.source.read_ranges(pack_path, ranges);
    if (!data.ok()) return data.error().With("reading " + pack_path);
    for (std::size_t k = i; k <= j; ++k) {
      const Bytes& range = (*data)[k - i];
      for (const auto* e : spans[k].entries) {
        ByteView frame(range.data() + (e->offset - spans[k].start), e->stored_length);
        std::string name = "chunk " + crypto::hex(e->id) + " from " + pack_path;
        auto raw = dec.decompress(frame, e->raw_length, name);
        if (!raw.ok()) return raw.error().With("try another mirror");
        if (!crypto::digest_equal(crypto::blake2b(view(*raw)), e->id)) {
          return Status::Corruption(name +
                                    " does not match its hash (damaged or tampered): "
                                    "not stored; try another mirror");
        }
        OUTPOST_RETURN_IF_ERROR(batch.add(e->id, e->raw_length, frame));
      }
      progress.done += spans[k].end - spans[k].start;
    }
    if (ctx.options.progress) ctx.options.progress(progress);
    i = j + 1;
  }
  return batch.flush();
}

}  // namespace outpost::node
