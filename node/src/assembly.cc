#include "assembly.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "node_records.h"
#include "outpost/crypto/hash.h"
#include "outpost/node/store_files.h"
#include "outpost/packaging/chunker.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/delta.h"
#include "outpost/packaging/layout.h"
#include "transfer.h"

namespace outpost::node {

using namespace detail;
using packaging::ChunkIndex;
using packaging::Manifest;
using packaging::PatchRef;
using storage::Table;

namespace {

// Chunks a node rebuilds from a patch are stored at the publisher's level (the packs' size on
// an SD card: docs/BENCHMARKS.md, "The store on an SD card"), only the chunks the store lacks
// are compressed at all, and a version of more than kRebuiltFastAbove bytes (a first sync of
// a large bundle) at level 3, fast on a Pi's core.
constexpr int kRebuiltChunkLevel = packaging::kDefaultChunkLevel;
constexpr int kRebuiltFastLevel = 3;
constexpr std::uint64_t kRebuiltFastAbove = 64ull << 20;
constexpr std::size_t kRebuiltBatchBytes = 32u << 20;
constexpr std::size_t kRebuiltBatchCount = 3072;

bool is_local_index(const ChunkIndex& index) {
  return index.packs.size() == 1 && index.packs[0] == crypto::Digest{};
}

// The bytes of a held version's content stream, read at any offset: the stream's magic and
// file headers come from the manifest, file bytes from the stored chunks. Each read opens
// its own short read transaction, so the caller may write to the store between reads.
class HeldStream {
 public:
  HeldStream(storage::Store& store, const HeldVersion& held) : store_(store), held_(held) {
    std::uint64_t at = 0;
    auto add_bytes = [&](Bytes b) {
      Segment s;
      s.offset = at;
      s.length = b.size();
      s.literal = std::move(b);
      at += s.length;
      segments_.push_back(std::move(s));
    };
    add_bytes(to_bytes(packaging::kContentStreamMagic));
    std::size_t next = 0;
    for (std::size_t f = 0; f < held.manifest.files.size(); ++f) {
      add_bytes(packaging::content_file_header(held.manifest.files[f]));
      for (std::uint32_t c = 0; c < held.index.file_chunks[f]; ++c, ++next) {
        Segment s;
        s.offset = at;
        s.length = held.index.chunks[next].raw_length;
        s.chunk = next;
        at += s.length;
        segments_.push_back(std::move(s));
      }
    }
    size_ = at;
  }

  std::uint64_t size() const { return size_; }

  Status read(std::uint64_t offset, std::uint64_t length, Bytes& out) {
    if (offset > size_ || length > size_ - offset) {
      return Status::Corruption("a patch reads past the end of the version it starts from");
    }
    out.clear();
    out.reserve(length);
    auto it = std::upper_bound(segments_.begin(), segments_.end(), offset,
                               [](std::uint64_t o, const Segment& s) { return o < s.offset; });
    if (it != segments_.begin()) --it;
    OUTPOST_ASSIGN_OR_RETURN(auto txn, store_.read());
    PageBudget pages(store_);
    for (; it != segments_.end() && out.size() < length; ++it) {
      ByteView bytes;
      Bytes raw;
      if (it->chunk == kNoChunk) {
        bytes = view(it->literal);
      } else {
        OUTPOST_ASSIGN_OR_RETURN(raw, read_chunk(txn, dec_, held_.index.chunks[it->chunk]));
        pages.add(raw.size());
        bytes = view(raw);
      }
      std::uint64_t from = offset + out.size() - it->offset;
      std::uint64_t n = std::min<std::uint64_t>(bytes.size() - from, length - out.size());
      out.insert(out.end(), bytes.begin() + static_cast<std::ptrdiff_t>(from),
                 bytes.begin() + static_cast<std::ptrdiff_t>(from + n));
    }
    return Status::Ok();
  }

 private:
  static constexpr std::size_t kNoChunk = SIZE_MAX;
  struct Segment {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    std::size_t chunk = kNoChunk;
    Bytes literal;
  };
  storage::Store& store_;
  const HeldVersion& held_;
  packaging::Decompressor dec_;
  std::vector<Segment> segments_;
  std::uint64_t size_ = 0;
};

// Cuts the files of a rebuilt content stream into chunks exactly as the publisher did (the
// cut points are part of the format), building the node's own chunk index.
class Rechunker {
 public:
  using OnChunk = std::function<Status(const crypto::Digest& id, ByteView raw)>;
  Rechunker(const Manifest& manifest, OnChunk on_chunk)
      : manifest_(manifest), chunker_(manifest.chunking), on_chunk_(std::move(on_chunk)) {
    index_.packs = {crypto::Digest{}};
    index_.file_chunks.assign(manifest.files.size(), 0);
  }

  Status add(std::size_t file, ByteView bytes) {
    if (file != file_) {
      OUTPOST_RETURN_IF_ERROR(end_file());
      file_ = file;
    }
    if (pos_ >= (1u << 20)) {
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
      pos_ = 0;
    }
    buf_.insert(buf_.end(), bytes.begin(), bytes.end());
    while (buf_.size() - pos_ > manifest_.chunking.max) {
      std::size_t cut = chunker_.next_cut(rest(), false);
      OUTPOST_RETURN_IF_ERROR(emit(cut));
    }
    return Status::Ok();
  }

  Result<ChunkIndex> finish() {
    OUTPOST_RETURN_IF_ERROR(end_file());
    return std::move(index_);
  }

 private:
  Status end_file() {
    while (pos_ < buf_.size()) {
      std::size_t cut = chunker_.next_cut(rest(), true);
      OUTPOST_RETURN_IF_ERROR(emit(cut));
    }
    buf_.clear();
    pos_ = 0;
    return Status::Ok();
  }

  ByteView rest() const { return ByteView(buf_.data() + pos_, buf_.size() - pos_); }

  Status emit(std::size_t cut) {
    ByteView raw(buf_.data() + pos_, cut);
    crypto::Digest id = crypto::blake2b(raw);
    OUTPOST_RETURN_IF_ERROR(on_chunk_(id, raw));
    packaging::ChunkEntry e;
    e.id = id;
    e.raw_length = static_cast<std::uint32_t>(cut);
    e.pack = 0;
    e.offset = 8;  // no pack: the chunk lives in this node's store only
    e.stored_length = static_cast<std::uint32_t>(cut);
    index_.chunks.push_back(e);
    index_.file_chunks[file_] += 1;
    pos_ += cut;
    return Status::Ok();
  }

  const Manifest& manifest_;
  packaging::Chunker chunker_;
  OnChunk on_chunk_;
  ChunkIndex index_;
  Bytes buf_;
  std::size_t pos_ = 0;  // bytes of buf_ already cut
  std::size_t file_ = 0;
};

// A reader over content held in memory (an intermediate version of a patch chain).
packaging::DeltaReader memory_reader(const Bytes& stream) {
  return [&stream](std::uint64_t offset, std::uint64_t length, Bytes& out) -> Status {
    if (offset > stream.size() || length > stream.size() - offset) {
      return Status::Corruption("a patch reads past the end of the version it starts from");
    }
    out.assign(stream.begin() + static_cast<std::ptrdiff_t>(offset),
               stream.begin() + static_cast<std::ptrdiff_t>(offset + length));
    return Status::Ok();
  };
}

Status commit_version(SyncContext& ctx, const Pending& p, const Bytes& index_bytes) {
  auto version = static_cast<std::uint64_t>(p.manifest.version);
  Bytes key = storage::version_key(p.bundle, version);
  return ctx.store.update([&](storage::WriteTxn& txn) -> Status {
    OUTPOST_ASSIGN_OR_RETURN(auto rec, get_bundle(txn, p.bundle));
    records::BundleRecord r = rec.value_or(records::BundleRecord{});
    OUTPOST_RETURN_IF_ERROR(put_index(txn, p.bundle, r.versions, version, view(index_bytes)));
    r.repo = ctx.repo;
    r.current = version;
    if (std::find(r.versions.begin(), r.versions.end(), version) == r.versions.end()) {
      r.versions.push_back(version);
      std::sort(r.versions.begin(), r.versions.end());
    }
    r.confirmed = ctx.now;
    OUTPOST_RETURN_IF_ERROR(
        txn.put(Table::kManifests, view(key), view(pack_file(view(p.manifest_bytes)))));
    OUTPOST_RETURN_IF_ERROR(txn.put(Table::kBundles, as_bytes(p.bundle), view(records::encode(r))));
    return txn.put(Table::kTrust, view(records::accepted_version_key(p.bundle)),
                   view(records::u64_value(version)));
  });
}

// Applies the patch twice: first only to check that the rebuilt stream hashes to the signed
// content root (nothing is stored from content that does not verify), then to store its
// chunks and, in one transaction, the new version.
// Produces the new content stream, passing it in pieces to the sink (twice: to check, then
// to store).
using StreamProducer = std::function<Status(const std::function<Status(ByteView)>& sink)>;
// Called once the content verified, before its chunks are stored.
using OnVerified = std::function<Status()>;

Status accept_produced(SyncContext& ctx, const Pending& p, const StreamProducer& produce,
                       const OnVerified& verified = nullptr) {
  std::string what = "version " + std::to_string(p.manifest.version);
  crypto::Blake2b hasher;
  OUTPOST_RETURN_IF_ERROR(produce([&](ByteView piece) {
    hasher.update(piece);
    return Status::Ok();
  }));
  if (!crypto::digest_equal(hasher.finish(), p.manifest.content_root)) {
    return Status::Corruption("the content rebuilt for " + what +
                              " does not match its signed root hash: not accepted");
  }
  if (verified) OUTPOST_RETURN_IF_ERROR(verified());

  packaging::Compressor compressor(
      p.manifest.content_size > kRebuiltFastAbove ? kRebuiltFastLevel : kRebuiltChunkLevel);
  // Few, large commits: each one rewrites LMDB's list of free pages, which after a first
  // sync's download is the whole object just dropped; with 2 MiB batches its churn left the
  // 200 MB tree's store file 1.24x the packs, 1.13x with these (and far fewer fsyncs). The
  // content is in memory already; a batch adds at most its compressed frames.
  ChunkBatch batch(ctx.store, kRebuiltBatchBytes, kRebuiltBatchCount);
  Rechunker chunks(p.manifest, [&](const crypto::Digest& id, ByteView raw) -> Status {
    {
      OUTPOST_ASSIGN_OR_RETURN(auto txn, ctx.store.read());
      OUTPOST_ASSIGN_OR_RETURN(auto held, txn.get(Table::kChunks, {id.data(), id.size()}));
      if (held) return Status::Ok();  // most of an update's chunks: not compressed again
    }
    OUTPOST_ASSIGN_OR_RETURN(Bytes frame, compressor.compress(raw));
    return batch.add(id, static_cast<std::uint32_t>(raw.size()), view(frame));
  });
  packaging::ContentSplitter splitter(
      p.manifest, [&](std::size_t file, const packaging::FileEntry&, std::uint64_t,
                      ByteView bytes) { return chunks.add(file, bytes); });
  OUTPOST_RETURN_IF_ERROR(produce([&](ByteView piece) { return splitter.update(piece); }));
  OUTPOST_RETURN_IF_ERROR(splitter.finish());
  OUTPOST_ASSIGN_OR_RETURN(ChunkIndex index, chunks.finish());
  OUTPOST_RETURN_IF_ERROR(batch.flush());
  return commit_version(ctx, p, index.encode());
}

Status accept_stream(SyncContext& ctx, const Pending& p, const packaging::DeltaReader& reader,
                     std::uint64_t from_size, const Bytes& patch,
                     const OnVerified& verified = nullptr) {
  std::uint64_t to_size = packaging::content_stream_size(p.manifest);
  std::string what = "version " + std::to_string(p.manifest.version);
  return accept_produced(
      ctx, p,
      [&](const std::function<Status(ByteView)>& sink) {
        return packaging::apply_delta(reader, from_size, view(patch), to_size, sink)
            .With("applying the patch to " + what);
      },
      verified);
}

// A patch from a held version (`base`), or from nothing (nullptr: the whole content).
Status accept_from_patch(SyncContext& ctx, const Pending& p, const HeldVersion* base,
                         const Bytes& patch, const OnVerified& verified = nullptr) {
  std::optional<HeldStream> from;
  if (base != nullptr) from.emplace(ctx.store, *base);
  packaging::DeltaReader reader = [&](std::uint64_t offset, std::uint64_t length,
                                      Bytes& out) -> Status {
    if (!from) return Status::Corruption("a patch from nothing reads old content");
    return from->read(offset, length, out);
  };
  return accept_stream(ctx, p, reader, from ? from->size() : 0, patch, verified);
}

}  // namespace

Result<Bytes> read_held_content(storage::Store& store, const HeldVersion& held,
                                std::uint64_t size) {
  HeldStream stream(store, held);
  if (stream.size() != size) return Status::NotFound("the held version is of another size");
  Bytes out;
  OUTPOST_RETURN_IF_ERROR(stream.read(0, size, out));
  return out;
}

Status apply_patch(SyncContext& ctx, const Pending& p, const Route& route) {
  // The whole content carried by the library file: no request.
  if (route.kind == RouteKind::kFull && ctx.overlay) {
    const std::uint64_t size = packaging::content_stream_size(p.manifest);
    if (auto stream =
            ctx.overlay->carried(packaging::content_entry_name(p.manifest.content_root), size)) {
      if (stream->size() == size) {
        Status s = accept_produced(ctx, p, [&](const std::function<Status(ByteView)>& sink) {
          return sink(view(*stream));
        });
        if (s.ok() || !s.IsCorruption()) return s;
      }
      // Damaged in the library file: this bundle falls back to its own patch.
    }
  }
  const PatchRef* patch = nullptr;
  for (const auto& r : p.manifest.patches) {
    if ((route.kind == RouteKind::kFull && r.from == 0) ||
        (route.kind == RouteKind::kPatch && !route.steps.empty() &&
         static_cast<std::uint64_t>(r.from) == route.steps.front())) {
      patch = &r;
    }
  }
  if (patch == nullptr) return Status::Internal("planned route has no patch");
  OUTPOST_ASSIGN_OR_RETURN(Bytes patch_bytes,
                           fetch_object(ctx, *patch, p.bundle, route_name(route.kind)));
  std::optional<HeldVersion> base;
  if (patch->from != 0) {
    OUTPOST_ASSIGN_OR_RETURN(auto txn, ctx.store.read());
    OUTPOST_ASSIGN_OR_RETURN(base,
                             load_version(txn, p.bundle, static_cast<std::uint64_t>(patch->from)));
  }
  // The patch is in memory and its content verified: its pieces in the store are dropped
  // before the chunks go in, which then take the pages the pieces freed (a first sync of a
  // large bundle would otherwise leave the store file twice the content: docs/BENCHMARKS.md,
  // "The store on an SD card"). A crash while the chunks go in keeps those already stored; the
  // next sync fetches only the rest.
  bool dropped = false;
  OnVerified drop_pieces = nullptr;
  if (!ctx.options.keep_patches) {
    drop_pieces = [&] {
      dropped = true;
      OUTPOST_RETURN_IF_ERROR(drop_transfer(ctx, patch->blake2b));
      return ctx.store.settle();  // the chunks' first batch takes the freed pages too
    };
  }
  Status applied = accept_from_patch(ctx, p, base ? &*base : nullptr, patch_bytes, drop_pieces);
  if (!applied.ok()) {
    if (dropped) {
      // It verified; the store failed (a full disk, a stop request): kept again if there is
      // room, so the next attempt does not pay for it twice.
      (void)keep_transfer(ctx, patch->blake2b, view(patch_bytes));
      return applied;
    }
    // A patch that does not rebuild the signed content is useless: drop it, so the next
    // attempt (or mirror) fetches it again.
    (void)drop_transfer(ctx, patch->blake2b);
    return applied;
  }
  if (ctx.options.keep_patches) return Status::Ok();
  return drop_transfer(ctx, patch->blake2b);
}

Status accept_unlisted_patch(SyncContext& ctx, const Pending& p, std::uint64_t from,
                             const Bytes& patch) {
  HeldVersion base;
  {
    OUTPOST_ASSIGN_OR_RETURN(auto txn, ctx.store.read());
    OUTPOST_ASSIGN_OR_RETURN(base, load_version(txn, p.bundle, from));
  }
  return accept_from_patch(ctx, p, &base, patch);
}

Status apply_chain(SyncContext& ctx, const Pending& p) {
  std::vector<Bytes> patches;
  for (const auto& c : p.chain) {
    OUTPOST_ASSIGN_OR_RETURN(Bytes b, fetch_object(ctx, c, p.bundle, "chain"));
    patches.push_back(std::move(b));
  }
  OUTPOST_ASSIGN_OR_RETURN(auto txn, ctx.store.read());
  OUTPOST_ASSIGN_OR_RETURN(
      HeldVersion base, load_version(txn, p.bundle, static_cast<std::uint64_t>(p.chain[0].from)));
  end(txn);
  HeldStream held(ctx.store, base);
  Bytes stream;
  for (std::size_t k = 0; k + 1 < p.chain.size(); ++k) {
    const Manifest& to = p.chain_manifests[k];
    Bytes next;
    packaging::DeltaReader in_memory = memory_reader(stream);
    packaging::DeltaReader reader = [&](std::uint64_t offset, std::uint64_t length,
                                        Bytes& out) -> Status {
      return k == 0 ? held.read(offset, length, out) : in_memory(offset, length, out);
    };
    std::uint64_t from_size = k == 0 ? held.size() : stream.size();
    Status s = packaging::apply_delta(reader, from_size, view(patches[k]),
                                      packaging::content_stream_size(to), [&](ByteView piece) {
                                        next.insert(next.end(), piece.begin(), piece.end());
                                        return Status::Ok();
                                      });
    if (s.ok() && !crypto::digest_equal(crypto::blake2b(view(next)), to.content_root)) {
      s = Status::Corruption("the content rebuilt for intermediate version " +
                             std::to_string(to.version) + " does not match its signed root");
    }
    if (!s.ok()) {
      (void)drop_transfer(ctx, p.chain[k].blake2b);
      return s.With("applying the patch chain");
    }
    stream = std::move(next);
  }
  packaging::DeltaReader last = memory_reader(stream);
  Status s = p.chain.size() == 1 ? accept_from_patch(ctx, p, &base, patches.back())
                                 : accept_stream(ctx, p, last, stream.size(), patches.back());
  for (const auto& c : p.chain) {
    if (!s.ok())
      (void)drop_transfer(ctx, c.blake2b);
    else if (!ctx.options.keep_patches)
      OUTPOST_RETURN_IF_ERROR(drop_transfer(ctx, c.blake2b));
  }
  return s;
}

Status accept_from_chunks(SyncContext& ctx, const Pending& p, const ChunkIndex& index,
                          const Bytes& index_bytes) {
  // Every chunk is in; rebuild the content and check the signed root before it counts.
  HeldVersion held{p.manifest, index};
  crypto::Digest root{};
  {
    OUTPOST_ASSIGN_OR_RETURN(auto check_txn, ctx.store.read());
    OUTPOST_ASSIGN_OR_RETURN(root, compute_root(ctx.store, check_txn, held));
  }
  return accept_with_root(ctx, p, root, index_bytes);
}

Status accept_with_root(SyncContext& ctx, const Pending& p, const crypto::Digest& root,
                        const Bytes& index_bytes) {
  if (!crypto::digest_equal(root, p.manifest.content_root)) {
    return Status::Corruption("the content rebuilt for version " +
                              std::to_string(p.manifest.version) +
                              " does not match its signed root hash: not accepted");
  }
  return commit_version(ctx, p, index_bytes);
}

Status confirm(SyncContext& ctx, const std::string& bundle) {
  return ctx.store.update([&](storage::WriteTxn& txn) -> Status {
    OUTPOST_ASSIGN_OR_RETURN(auto rec, get_bundle(txn, bundle));
    if (!rec) return Status::Ok();
    rec->confirmed = ctx.now;
    return txn.put(Table::kBundles, as_bytes(bundle), view(records::encode(*rec)));
  });
}

// A version the node rebuilt from a patch has an index of its own (no pack locations): the
// repository's index says where its chunks are.
Status repair(SyncContext& ctx, const HeldVersion& held) {
  OUTPOST_ASSIGN_OR_RETURN(auto missing, missing_chunks(ctx, held.index));
  if (missing.empty()) return Status::Ok();
  // The whole content carried by the library file (a store that lost most of its content
  // reads it: refresh.cc): rebuilt from it, no request.
  if (ctx.overlay) {
    const std::uint64_t size = packaging::content_stream_size(held.manifest);
    auto stream =
        ctx.overlay->carried(packaging::content_entry_name(held.manifest.content_root), size);
    if (stream && stream->size() == size) {
      Pending p;
      p.bundle = held.manifest.bundle;
      p.manifest = held.manifest;
      {
        OUTPOST_ASSIGN_OR_RETURN(auto txn, ctx.store.read());
        OUTPOST_ASSIGN_OR_RETURN(
            auto bytes, get_file(txn, Table::kManifests,
                                 view(storage::version_key(
                                     p.bundle, static_cast<std::uint64_t>(p.manifest.version)))));
        if (bytes) p.manifest_bytes = std::move(*bytes);
      }
      if (!p.manifest_bytes.empty()) {
        Status s = accept_produced(ctx, p, [&](const std::function<Status(ByteView)>& sink) {
          return sink(view(*stream));
        });
        if (s.ok() || !s.IsCorruption()) return s;
      }
      // Damaged in the library file: the missing chunks come on their own.
    }
  }
  if (!is_local_index(held.index))
    return fetch_chunks(ctx, held.index, missing, held.manifest.bundle);
  OUTPOST_ASSIGN_OR_RETURN(Bytes bytes, fetch_index(ctx, held.manifest));
  OUTPOST_ASSIGN_OR_RETURN(ChunkIndex index,
                           ChunkIndex::parse(view(bytes), held.manifest.chunking.max));
  OUTPOST_RETURN_IF_ERROR(index.check_against(held.manifest));
  OUTPOST_ASSIGN_OR_RETURN(auto remote_missing, missing_chunks(ctx, index));
  return fetch_chunks(ctx, index, remote_missing, held.manifest.bundle);
}

}  // namespace outpost::node
