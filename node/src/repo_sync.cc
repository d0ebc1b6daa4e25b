#include "repo_sync.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <set>

#include "metadata_overlay.h"
#include "node_internal.h"
#include "outpost/base/retry.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/chunker.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/delta.h"
#include "outpost/sync/http.h"
#include "plan.h"

namespace outpost::node {

using namespace detail;
using packaging::ChunkIndex;
using packaging::Manifest;
using packaging::PatchRef;
using storage::Table;

namespace {

// A patch or full download is committed to the store in pieces of this size as it arrives,
// so a dropped link or a killed process loses at most one piece.
constexpr std::size_t kTransferPiece = 256u << 10;
// Missing chunks are asked for in calls of at most this many stored bytes (each one HTTP
// request with many ranges).
constexpr std::uint64_t kRangeCallBytes = 8u << 20;
// Chunks a node rebuilds from a patch are stored at this zstd level: fast on a Pi's core.
constexpr int kRebuiltChunkLevel = 3;
constexpr std::uint64_t kNoBudget = std::numeric_limits<std::uint64_t>::max();
// Chains hold one intermediate version in memory: only for bundles up to this size.
constexpr std::uint64_t kChainMaxStream = 64u << 20;
constexpr int kMaxChainHops = 4;

std::string transfer_prefix(const crypto::Digest& object) {
  return "object/" + crypto::hex(object) + "/";
}

Bytes piece_key(const crypto::Digest& object, std::uint64_t offset) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(offset));
  return to_bytes(transfer_prefix(object) + buf);
}

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

// Verified chunks on their way into the store: committed in batches (few transactions, for
// SD cards) of bounded bytes and count (bounded resident memory), skipping chunks already
// held.
class ChunkBatch {
 public:
  explicit ChunkBatch(storage::Store& store) : store_(store) {}
  Status add(const crypto::Digest& id, std::uint32_t raw_length, ByteView frame) {
    batch_.emplace_back(id, records::chunk_value(raw_length, frame));
    bytes_ += frame.size();
    if (bytes_ >= kChunkBatchBytes || batch_.size() >= kChunkBatchCount) return flush();
    return Status::Ok();
  }
  Status flush() {
    if (batch_.empty()) return Status::Ok();
    OUTPOST_RETURN_IF_ERROR(store_.update([&](storage::WriteTxn& txn) -> Status {
      for (const auto& [id, value] : batch_) {
        ByteView key(id.data(), id.size());
        OUTPOST_ASSIGN_OR_RETURN(auto have, txn.get(Table::kChunks, key));
        if (!have) OUTPOST_RETURN_IF_ERROR(txn.put(Table::kChunks, key, view(value)));
      }
      return Status::Ok();
    }));
    batch_.clear();
    bytes_ = 0;
    store_.release_memory();
    return Status::Ok();
  }

 private:
  storage::Store& store_;
  std::vector<std::pair<crypto::Digest, Bytes>> batch_;
  std::size_t bytes_ = 0;
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

class RepoSync {
 public:
  RepoSync(storage::Store& store, sync::MeteredSource& source, std::string repo,
           std::string location, std::int64_t now, const SyncOptions& options)
      : store_(store),
        source_(source),
        repo_(std::move(repo)),
        location_(std::move(location)),
        now_(now),
        options_(options) {}

  Result<SyncReport> run() {
    SyncReport report;
    report.repo = repo_;
    report.location = location_;
    OUTPOST_ASSIGN_OR_RETURN(auto rtxn, store_.read());
    OUTPOST_ASSIGN_OR_RETURN(tuf::TrustedMetadata trusted, load_trusted(rtxn, repo_));
    OUTPOST_ASSIGN_OR_RETURN(std::int64_t floor, time_floor(rtxn));
    OUTPOST_ASSIGN_OR_RETURN(auto etag, rtxn.get(Table::kSettings, view(etag_key())));
    end(rtxn);
    std::int64_t held_snapshot = 0;
    if (!trusted.snapshot.empty()) {
      auto env = tuf::parse_metadata(view(trusted.snapshot), "snapshot");
      if (env.ok()) {
        auto snap = tuf::Snapshot::from_signed(*env->find("signed"));
        if (snap.ok()) held_snapshot = snap->version;
      }
    }
    MetadataOverlay overlay(
        source_, held_snapshot,
        [&](const std::string& name, const crypto::Digest& sha) { return held_base(name, sha); },
        etag ? std::string(as_chars(view(*etag))) : std::string());
    overlay_ = &overlay;
    trusted_ = &trusted;

    tuf::UpdaterOptions uopt;
    uopt.now = std::max(now_, floor);
    tuf::Updater updater(trusted, overlay, uopt);
    OUTPOST_RETURN_IF_ERROR(updater.refresh());
    OUTPOST_ASSIGN_OR_RETURN(auto targets, updater.all_targets());

    // Trust moves forward first: the metadata is verified whatever happens to the content.
    if (!options_.dry_run) {
      std::string new_etag = overlay.timestamp_etag();
      OUTPOST_RETURN_IF_ERROR(store_.update([&](storage::WriteTxn& txn) -> Status {
        OUTPOST_RETURN_IF_ERROR(save_trusted(txn, repo_, updater.trusted()));
        if (!new_etag.empty()) {
          OUTPOST_RETURN_IF_ERROR(txn.put(Table::kSettings, view(etag_key()), as_bytes(new_etag)));
        }
        return raise_time_floor(txn, uopt.now);
      }));
    }

    std::vector<Pending> pending;
    for (const auto& [path, target] : targets) {
      if (path.size() <= kManifestSuffix.size() ||
          path.compare(path.size() - kManifestSuffix.size(), kManifestSuffix.size(),
                       kManifestSuffix) != 0) {
        continue;  // not a bundle manifest; other target kinds are not ours to fetch
      }
      std::string bundle = path.substr(0, path.size() - kManifestSuffix.size());
      auto p = check_bundle(bundle, path, target);
      if (!p.ok()) return p.error().With(bundle);
      if (p->has_value()) pending.push_back(std::move(**p));
    }

    // Plan: every route priced, the cheapest bundles first (small urgent updates before large
    // ones), as many as fit in the data budget.
    for (auto& p : pending) OUTPOST_RETURN_IF_ERROR(plan(p).With(p.bundle));
    std::stable_sort(pending.begin(), pending.end(), [](const Pending& a, const Pending& b) {
      return a.planned.route.cost < b.planned.route.cost;
    });
    // What is left after the metadata this sync already fetched.
    std::uint64_t left = source_.left();
    for (auto& p : pending) {
      std::uint64_t need = p.planned.route.bytes + p.planned.route.requests * kHeaderBytes;
      if (need > left) {
        p.planned.deferred = "data budget: needs about " + std::to_string(need) + " bytes, " +
                             std::to_string(left) + " left";
        report.deferred.push_back(p.planned);
        continue;
      }
      if (left != kNoBudget) left -= need;
      report.plan.push_back(p.planned);
    }
    if (options_.dry_run) {
      report.unchanged = updater.unchanged() && pending.empty();
      return finish(report);
    }

    for (auto& p : pending) {
      if (!p.planned.deferred.empty()) continue;
      if (options_.stop.stop_requested()) return Status::Cancelled("sync stopped on request");
      auto item = fetch(p);
      if (item.ok()) {
        report.updated.push_back(*item);
        continue;
      }
      // One bundle that cannot be completed here does not hold back the others: it is listed
      // with its reason. What concerns every bundle alike (the link is down, the disk or the
      // budget is full, a stop request) ends the sync.
      if (!bundle_local(item.error())) return item.error().With(p.bundle);
      report.failed.push_back(
          FailedBundle{p.bundle, p.planned.from, p.planned.to, item.error().With(p.bundle)});
    }
    report.unchanged = updater.unchanged() && report.updated.empty() && report.deferred.empty();
    return finish(report);
  }

 private:
  // Response headers plus request line and headers of one request, for budget checks.
  static constexpr std::uint64_t kHeaderBytes = 400;

  struct Pending {
    std::string bundle;
    std::optional<records::BundleRecord> record;
    Bytes manifest_bytes;
    Manifest manifest;
    PlannedBundle planned;
    std::vector<HeldRoot> held;
    // The chain route, when one was found: the patches in the order they apply, and the
    // manifest of the version each one leads to (the last is `manifest`).
    std::vector<PatchRef> chain;
    std::deque<Manifest> chain_manifests;  // intermediate versions, nearest to held first
  };

  Bytes etag_key() const { return storage::text_key("etag", repo_ + "\n" + location_); }

  Result<SyncReport> finish(SyncReport& report) {
    const sync::TransferStats stats = source_.stats();
    report.bytes_read = stats.total() - stats_before_.total();
    report.requests = stats.requests - stats_before_.requests;
    report.metered = source_.metered();
    return std::move(report);
  }

  // A base for an update file entry: a trusted metadata file or a held current manifest.
  std::optional<Bytes> held_base(const std::string& name, const crypto::Digest& sha) {
    auto match = [&](const Bytes& b) {
      return !b.empty() && crypto::digest_equal(crypto::sha256(view(b)), sha);
    };
    for (const Bytes* b : {&trusted_->snapshot, &trusted_->targets, &trusted_->timestamp}) {
      if (match(*b)) return *b;
    }
    for (const auto& [role, bytes] : trusted_->delegated) {
      if (match(bytes)) return bytes;
    }
    // "targets/<bundle>/<sha>.manifest.json": the bundle's current manifest.
    if (name.rfind("targets/", 0) != 0) return std::nullopt;
    std::string bundle = name.substr(8, name.rfind('/') - 8);
    auto txn = store_.read();
    if (!txn.ok()) return std::nullopt;
    auto rec = get_bundle(*txn, bundle);
    if (!rec.ok() || !rec->has_value()) return std::nullopt;
    auto m = txn->get(Table::kManifests, view(storage::version_key(bundle, (*rec)->current)));
    if (!m.ok() || !m->has_value() || !match(**m)) return std::nullopt;
    return std::move(**m);
  }

  // What a bundle needs: nothing (current, confirmed here), or its new manifest to plan for.
  Result<std::optional<Pending>> check_bundle(const std::string& bundle,
                                              const std::string& target_path,
                                              const tuf::TargetFile& target) {
    OUTPOST_RETURN_IF_ERROR(packaging::validate_bundle_name(bundle));
    OUTPOST_ASSIGN_OR_RETURN(auto rtxn, store_.read());
    OUTPOST_ASSIGN_OR_RETURN(auto record, get_bundle(rtxn, bundle));
    OUTPOST_ASSIGN_OR_RETURN(auto accepted_v,
                             rtxn.get(Table::kTrust, view(records::accepted_version_key(bundle))));
    std::uint64_t accepted = records::get_u64(accepted_v).value_or(0);

    std::optional<std::uint64_t> declared;
    if (const Json* o = target.custom.find("outpost"); o != nullptr) {
      if (const Json* v = o->find("version"); v != nullptr && v->is_int() && v->as_int() > 0) {
        declared = static_cast<std::uint64_t>(v->as_int());
      }
    }
    if (declared && *declared < accepted) {
      return Status::VerificationFailed(
          "the repository offers version " + std::to_string(*declared) + ", older than version " +
          std::to_string(accepted) +
          " already accepted (rollback): refusing it; try another mirror");
    }
    if (record && declared && *declared == record->current) {
      // Already current: make sure nothing it needs went missing (a damaged chunk dropped by
      // verify --repair is fetched again here), then confirm it.
      OUTPOST_ASSIGN_OR_RETURN(HeldVersion held, load_version(rtxn, bundle, record->current));
      end(rtxn);
      if (!options_.dry_run) {
        OUTPOST_RETURN_IF_ERROR(repair(held));
        OUTPOST_RETURN_IF_ERROR(confirm(bundle));
      }
      return std::optional<Pending>();
    }
    end(rtxn);

    // The manifest: length and SHA-256 come from signed targets metadata.
    auto dir = target_path.substr(0, target_path.rfind('/') + 1);
    std::string file = "targets/" + dir + target.sha256 + ".manifest.json";
    auto manifest_bytes = overlay_->read_manifest(file, static_cast<std::uint64_t>(target.length));
    if (!manifest_bytes.ok()) return manifest_bytes.error().With("fetching the manifest");
    if (manifest_bytes->size() != static_cast<std::size_t>(target.length) ||
        crypto::hex(crypto::sha256(view(*manifest_bytes))) != target.sha256) {
      return Status::Corruption("the manifest from " + source_.describe() +
                                " does not match its signed length and hash: try another "
                                "mirror");
    }
    auto manifest = Manifest::parse(view(*manifest_bytes));
    if (!manifest.ok()) return manifest.error().With("signed manifest");
    if (manifest->bundle != bundle) {
      return Status::VerificationFailed("the manifest listed as " + target_path +
                                        " describes bundle " + manifest->bundle);
    }
    auto version = static_cast<std::uint64_t>(manifest->version);
    if ((declared && *declared != version) || version < accepted) {
      return Status::VerificationFailed("manifest version " + std::to_string(version) +
                                        " is older than version " + std::to_string(accepted) +
                                        " already accepted, or differs from the version its "
                                        "targets entry declares (rollback): try another mirror");
    }
    if (record && version == record->current) {
      if (!options_.dry_run) OUTPOST_RETURN_IF_ERROR(confirm(bundle));
      return std::optional<Pending>();
    }
    Pending p;
    p.bundle = bundle;
    p.record = std::move(record);
    p.manifest_bytes = std::move(*manifest_bytes);
    p.manifest = std::move(*manifest);
    return std::optional<Pending>(std::move(p));
  }

  Status plan(Pending& p) {
    p.planned.bundle = p.bundle;
    p.planned.from = p.record ? p.record->current : 0;
    p.planned.to = static_cast<std::uint64_t>(p.manifest.version);
    std::optional<Manifest> current;
    if (p.record) {
      OUTPOST_ASSIGN_OR_RETURN(auto txn, store_.read());
      for (std::uint64_t v : p.record->versions) {
        OUTPOST_ASSIGN_OR_RETURN(
            auto m, txn.get(Table::kManifests, view(storage::version_key(p.bundle, v))));
        if (!m) continue;
        auto parsed = Manifest::parse(view(*m));
        if (!parsed.ok()) continue;  // verify reports it; plan around it
        p.held.push_back(HeldRoot{v, parsed->content_root});
        if (v == p.record->current) current = std::move(*parsed);
      }
    }
    std::uint64_t full = p.manifest.content_size;
    for (const auto& patch : p.manifest.patches) {
      if (patch.from == 0) full = patch.length;
    }
    std::optional<ChunkCost> chunks;
    if (current || p.manifest.patches.empty() ||
        std::none_of(p.manifest.patches.begin(), p.manifest.patches.end(),
                     [](const PatchRef& r) { return r.from == 0; })) {
      chunks = estimate_chunks(p.manifest, current ? &*current : nullptr, full);
    }
    p.planned.considered = price_routes(p.manifest, p.held, chunks, options_.request_cost);
    if (p.planned.considered.empty()) {
      return Status::Corruption("manifest version " + std::to_string(p.manifest.version) +
                                " offers no way to fetch its content");
    }
    bool direct = std::any_of(p.planned.considered.begin(), p.planned.considered.end(),
                              [](const Route& r) { return r.kind == RouteKind::kPatch; });
    if (!direct && p.record && packaging::content_stream_size(p.manifest) <= kChainMaxStream) {
      OUTPOST_ASSIGN_OR_RETURN(std::optional<Route> chain, find_chain(p));
      if (chain) {
        p.planned.considered.push_back(*chain);
        std::stable_sort(p.planned.considered.begin(), p.planned.considered.end(),
                         [](const Route& a, const Route& b) { return a.cost < b.cost; });
      }
    }
    p.planned.route = p.planned.considered.front();
    return Status::Ok();
  }

  // A chain of patches from a held version through older versions the publisher's ladder
  // lists: each step moves to the rung nearest above what the node holds, fetching (and
  // checking against the hash the newer manifest declares) that version's manifest to see
  // its own patches. At most kMaxChainHops manifests are fetched; they are metadata, so a
  // dry run fetches them too.
  Result<std::optional<Route>> find_chain(Pending& p) {
    const std::uint64_t current = p.record->current;
    const Manifest* at = &p.manifest;
    std::vector<PatchRef> down;  // patches from the target down to the nearest rung
    std::deque<Manifest> manifests;
    for (int hop = 0; hop <= kMaxChainHops; ++hop) {
      for (const auto& r : at->patches) {
        if (r.from == 0) continue;
        auto held = std::find_if(p.held.begin(), p.held.end(), [&](const HeldRoot& h) {
          return h.version == static_cast<std::uint64_t>(r.from) &&
                 crypto::digest_equal(h.root, r.from_root);
        });
        if (held == p.held.end() || hop == 0) continue;
        Route route;
        route.kind = RouteKind::kChain;
        route.steps.push_back(held->version);
        p.chain = {r};
        for (auto it = manifests.rbegin(); it != manifests.rend(); ++it) {
          route.steps.push_back(static_cast<std::uint64_t>(it->version));
        }
        for (auto it = down.rbegin(); it != down.rend(); ++it) p.chain.push_back(*it);
        for (const auto& c : p.chain) route.bytes += c.length;
        route.requests = p.chain.size();
        route.cost = route.bytes + route.requests * options_.request_cost;
        p.chain_manifests = std::move(manifests);
        std::reverse(p.chain_manifests.begin(), p.chain_manifests.end());
        return std::optional<Route>(route);
      }
      if (hop == kMaxChainHops) break;
      const PatchRef* next = nullptr;
      for (const auto& r : at->patches) {
        if (static_cast<std::uint64_t>(r.from) > current && (!next || r.from < next->from)) {
          next = &r;
        }
      }
      if (next == nullptr) break;
      std::string path =
          "targets/" + p.bundle + "/" + crypto::hex(next->from_manifest) + ".manifest.json";
      auto bytes = overlay_->read_manifest(path, packaging::kMaxManifestBytes);
      if (!bytes.ok()) {
        if (bytes.error().IsNotFound()) break;  // the publisher no longer keeps it
        return bytes.error().With("fetching the manifest of version " + std::to_string(next->from));
      }
      auto parsed = Manifest::parse(view(*bytes));
      if (!crypto::digest_equal(crypto::sha256(view(*bytes)), next->from_manifest) ||
          !parsed.ok() || parsed->bundle != p.bundle || parsed->version != next->from ||
          !crypto::digest_equal(parsed->content_root, next->from_root)) {
        return Status::Corruption(path + " from " + source_.describe() +
                                  " does not match the hash a signed manifest declares for "
                                  "it: try another mirror");
      }
      down.push_back(*next);
      manifests.push_back(std::move(*parsed));
      at = &manifests.back();
    }
    return std::optional<Route>();
  }

  // Takes the planned route; when its data is missing or damaged at this source (a patch the
  // mirror lost, a flipped byte), the next cheapest route, and so on. The error of the last
  // route tried is returned when none works.
  Result<SyncItem> fetch(Pending& p) {
    std::vector<Route> routes = p.planned.considered;
    failed_.clear();
    Status worst;
    for (std::size_t attempt = 0; attempt <= routes.size(); ++attempt) {
      auto next =
          std::find_if(routes.begin(), routes.end(), [&](const Route& r) { return !failed(r); });
      if (next == routes.end()) break;
      p.planned.route = *next;
      auto item = fetch_route(p);
      if (item.ok()) return item;
      Status last = item.error();
      if (!bundle_local(last)) return last;
      // Damage says more than a missing file: report it when no route works.
      if (worst.ok() || (worst.IsNotFound() && !last.IsNotFound())) worst = last;
      failed_.push_back(p.planned.route);
    }
    return worst;
  }

  // Whether a failure concerns this bundle's data at this source (missing, damaged, refused
  // by the server), so another route or bundle may still work, rather than everything alike.
  static bool bundle_local(const Status& st) {
    RetryClass c = retry_class(st);
    return c == RetryClass::kNow || (c == RetryClass::kOperator && !st.IsResourceExhausted());
  }

  bool failed(const Route& r) const {
    return std::any_of(failed_.begin(), failed_.end(),
                       [&](const Route& f) { return f.kind == r.kind && f.steps == r.steps; });
  }

  Result<SyncItem> fetch_route(Pending& p) {
    SyncItem item;
    item.bundle = p.bundle;
    item.from = p.record ? p.record->current : 0;
    item.to = static_cast<std::uint64_t>(p.manifest.version);
    item.bytes = p.manifest.content_size;
    Route route = p.planned.route;
    std::optional<ChunkIndex> index;
    Bytes index_bytes;
    if (route.kind == RouteKind::kChunks) {
      // The index prices the chunk route exactly; a patch may still win.
      OUTPOST_ASSIGN_OR_RETURN(index_bytes, fetch_index(p.manifest));
      OUTPOST_ASSIGN_OR_RETURN(index,
                               ChunkIndex::parse(view(index_bytes), p.manifest.chunking.max));
      OUTPOST_RETURN_IF_ERROR(index->check_against(p.manifest));
      OUTPOST_ASSIGN_OR_RETURN(auto missing, missing_chunks(*index));
      ChunkCost exact = chunk_cost(*index, missing);
      auto routes = price_routes(p.manifest, p.held, exact, options_.request_cost);
      routes.erase(
          std::remove_if(routes.begin(), routes.end(), [&](const Route& r) { return failed(r); }),
          routes.end());
      route = routes.front();
      p.planned.route = route;
      if (route.kind == RouteKind::kChunks) {
        std::set<crypto::Digest> unique;
        for (const auto& c : index->chunks) unique.insert(c.id);
        item.chunks_fetched = missing.size();
        item.chunks_held = unique.size() - missing.size();
        OUTPOST_RETURN_IF_ERROR(fetch_chunks(*index, missing, p.bundle));
        OUTPOST_RETURN_IF_ERROR(accept_from_chunks(p, *index, index_bytes));
        item.route = RouteKind::kChunks;
        return item;
      }
    }
    if (route.kind == RouteKind::kChain) {
      OUTPOST_RETURN_IF_ERROR(apply_chain(p));
      item.route = RouteKind::kChain;
      return item;
    }
    // A patch from a held version, or the whole content (a patch from nothing).
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
                             fetch_object(*patch, p.bundle, route_name(route.kind)));
    std::optional<HeldVersion> base;
    if (patch->from != 0) {
      OUTPOST_ASSIGN_OR_RETURN(auto txn, store_.read());
      OUTPOST_ASSIGN_OR_RETURN(
          base, load_version(txn, p.bundle, static_cast<std::uint64_t>(patch->from)));
    }
    Status applied = accept_from_patch(p, base ? &*base : nullptr, patch_bytes);
    if (!applied.ok()) {
      // A patch that does not rebuild the signed content is useless: drop it, so the next
      // attempt (or mirror) fetches it again.
      (void)drop_transfer(patch->blake2b);
      return applied;
    }
    OUTPOST_RETURN_IF_ERROR(drop_transfer(patch->blake2b));
    item.route = route.kind;
    return item;
  }

  Result<Bytes> fetch_index(const Manifest& manifest) {
    auto index_bytes = source_.read_file(manifest.index.path, manifest.index.length);
    if (!index_bytes.ok()) return index_bytes.error().With("fetching the chunk index");
    if (index_bytes->size() != manifest.index.length ||
        !crypto::digest_equal(crypto::blake2b(view(*index_bytes)), manifest.index.blake2b)) {
      return Status::Corruption("the chunk index " + manifest.index.path + " from " +
                                source_.describe() +
                                " does not match the hash in its signed manifest");
    }
    return index_bytes;
  }

  // ---- patches and full downloads -------------------------------------------------------

  // The object's bytes: what an earlier attempt left in the store, then the rest from the
  // source (a Range request from the last byte held), committed piece by piece; checked
  // against the length and hash the signed manifest declares.
  Result<Bytes> fetch_object(const PatchRef& ref, const std::string& bundle,
                             const std::string& route) {
    Bytes data;
    std::string prefix = transfer_prefix(ref.blake2b);
    {
      OUTPOST_ASSIGN_OR_RETURN(auto txn, store_.read());
      OUTPOST_RETURN_IF_ERROR(
          txn.scan(Table::kTransfers, as_bytes(prefix), [&](ByteView, ByteView v) {
            data.insert(data.end(), v.begin(), v.end());
            return data.size() <= ref.length;
          }));
    }
    if (data.size() > ref.length) {
      OUTPOST_RETURN_IF_ERROR(drop_transfer(ref.blake2b));
      data.clear();
    }
    std::uint64_t committed = data.size();
    auto commit = [&]() -> Status {
      if (data.size() == committed) return Status::Ok();
      ByteView piece(data.data() + committed, data.size() - committed);
      Bytes key = piece_key(ref.blake2b, committed);
      OUTPOST_RETURN_IF_ERROR(store_.update(
          [&](storage::WriteTxn& txn) { return txn.put(Table::kTransfers, view(key), piece); }));
      committed = data.size();
      return Status::Ok();
    };
    SyncProgress progress{bundle, route, data.size(), ref.length};
    if (data.size() < ref.length) {
      Status got;
      {
        bool restarted = false;
        bool reset_done = false;
        got = source_.read_tail(
            ref.path, data.size(), ref.length,
            [&](ByteView piece) -> Status {
              if (restarted && !reset_done) {
                reset_done = true;
                data.clear();
                committed = 0;
                OUTPOST_RETURN_IF_ERROR(drop_transfer(ref.blake2b));
              }
              data.insert(data.end(), piece.begin(), piece.end());
              progress.done = data.size();
              if (options_.progress) options_.progress(progress);
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
      OUTPOST_RETURN_IF_ERROR(drop_transfer(ref.blake2b));
      return Status::Corruption(ref.path + " from " + source_.describe() +
                                " does not match the length and hash in its signed manifest "
                                "(damaged or tampered): not used; sync again or try another "
                                "mirror");
    }
    return data;
  }

  Status drop_transfer(const crypto::Digest& object) {
    std::string prefix = transfer_prefix(object);
    return store_.update([&](storage::WriteTxn& txn) -> Status {
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

  // Applies the patch twice: first only to check that the rebuilt stream hashes to the signed
  // content root (nothing is stored from content that does not verify), then to store its
  // chunks and, in one transaction, the new version.
  Status accept_from_patch(const Pending& p, const HeldVersion* base, const Bytes& patch) {
    std::optional<HeldStream> from;
    if (base != nullptr) from.emplace(store_, *base);
    packaging::DeltaReader reader = [&](std::uint64_t offset, std::uint64_t length,
                                        Bytes& out) -> Status {
      if (!from) return Status::Corruption("a patch from nothing reads old content");
      return from->read(offset, length, out);
    };
    return accept_stream(p, reader, from ? from->size() : 0, patch);
  }

  // Applies each patch of the chain in turn: the first to a held version, each next one to
  // the content the previous one rebuilt (held in memory: chains are only planned for
  // bundles up to kChainMaxStream), each intermediate checked against its manifest's root.
  Status apply_chain(Pending& p) {
    std::vector<Bytes> patches;
    for (const auto& c : p.chain) {
      OUTPOST_ASSIGN_OR_RETURN(Bytes b, fetch_object(c, p.bundle, "chain"));
      patches.push_back(std::move(b));
    }
    OUTPOST_ASSIGN_OR_RETURN(auto txn, store_.read());
    OUTPOST_ASSIGN_OR_RETURN(
        HeldVersion base, load_version(txn, p.bundle, static_cast<std::uint64_t>(p.chain[0].from)));
    end(txn);
    HeldStream held(store_, base);
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
        (void)drop_transfer(p.chain[k].blake2b);
        return s.With("applying the patch chain");
      }
      stream = std::move(next);
    }
    packaging::DeltaReader last = memory_reader(stream);
    Status s = p.chain.size() == 1 ? accept_from_patch(p, &base, patches.back())
                                   : accept_stream(p, last, stream.size(), patches.back());
    for (const auto& c : p.chain) {
      if (!s.ok())
        (void)drop_transfer(c.blake2b);
      else
        OUTPOST_RETURN_IF_ERROR(drop_transfer(c.blake2b));
    }
    return s;
  }

  Status accept_stream(const Pending& p, const packaging::DeltaReader& reader,
                       std::uint64_t from_size, const Bytes& patch) {
    std::uint64_t to_size = packaging::content_stream_size(p.manifest);
    std::string what = "version " + std::to_string(p.manifest.version);

    crypto::Blake2b hasher;
    OUTPOST_RETURN_IF_ERROR(
        packaging::apply_delta(reader, from_size, view(patch), to_size, [&](ByteView piece) {
          hasher.update(piece);
          return Status::Ok();
        }).With("applying the patch to " + what));
    if (!crypto::digest_equal(hasher.finish(), p.manifest.content_root)) {
      return Status::Corruption("the content rebuilt for " + what +
                                " does not match its signed root hash: not accepted");
    }

    packaging::Compressor compressor(kRebuiltChunkLevel);
    ChunkBatch batch(store_);
    Rechunker chunks(p.manifest, [&](const crypto::Digest& id, ByteView raw) -> Status {
      OUTPOST_ASSIGN_OR_RETURN(Bytes frame, compressor.compress(raw));
      return batch.add(id, static_cast<std::uint32_t>(raw.size()), view(frame));
    });
    packaging::ContentSplitter splitter(
        p.manifest, [&](std::size_t file, const packaging::FileEntry&, std::uint64_t,
                        ByteView bytes) { return chunks.add(file, bytes); });
    OUTPOST_RETURN_IF_ERROR(
        packaging::apply_delta(reader, from_size, view(patch), to_size, [&](ByteView piece) {
          return splitter.update(piece);
        }).With("applying the patch to " + what));
    OUTPOST_RETURN_IF_ERROR(splitter.finish());
    OUTPOST_ASSIGN_OR_RETURN(ChunkIndex index, chunks.finish());
    OUTPOST_RETURN_IF_ERROR(batch.flush());
    return commit_version(p, index.encode());
  }

  Status accept_from_chunks(const Pending& p, const ChunkIndex& index, const Bytes& index_bytes) {
    // Every chunk is in; rebuild the content and check the signed root before it counts.
    HeldVersion held{p.manifest, index};
    {
      OUTPOST_ASSIGN_OR_RETURN(auto check_txn, store_.read());
      OUTPOST_ASSIGN_OR_RETURN(crypto::Digest root, compute_root(store_, check_txn, held));
      if (!crypto::digest_equal(root, held.manifest.content_root)) {
        return Status::Corruption("the content rebuilt for version " +
                                  std::to_string(p.manifest.version) +
                                  " does not match its signed root hash: not accepted");
      }
    }
    return commit_version(p, index_bytes);
  }

  Status commit_version(const Pending& p, const Bytes& index_bytes) {
    auto version = static_cast<std::uint64_t>(p.manifest.version);
    Bytes key = storage::version_key(p.bundle, version);
    return store_.update([&](storage::WriteTxn& txn) -> Status {
      OUTPOST_ASSIGN_OR_RETURN(auto rec, get_bundle(txn, p.bundle));
      records::BundleRecord r = rec.value_or(records::BundleRecord{});
      r.repo = repo_;
      r.current = version;
      if (std::find(r.versions.begin(), r.versions.end(), version) == r.versions.end()) {
        r.versions.push_back(version);
        std::sort(r.versions.begin(), r.versions.end());
      }
      r.confirmed = now_;
      OUTPOST_RETURN_IF_ERROR(txn.put(Table::kManifests, view(key), view(p.manifest_bytes)));
      OUTPOST_RETURN_IF_ERROR(txn.put(Table::kIndexes, view(key), view(index_bytes)));
      OUTPOST_RETURN_IF_ERROR(
          txn.put(Table::kBundles, as_bytes(p.bundle), view(records::encode(r))));
      return txn.put(Table::kTrust, view(records::accepted_version_key(p.bundle)),
                     view(records::u64_value(version)));
    });
  }

  Status confirm(const std::string& bundle) {
    return store_.update([&](storage::WriteTxn& txn) -> Status {
      OUTPOST_ASSIGN_OR_RETURN(auto rec, get_bundle(txn, bundle));
      if (!rec) return Status::Ok();
      rec->confirmed = now_;
      return txn.put(Table::kBundles, as_bytes(bundle), view(records::encode(*rec)));
    });
  }

  // ---- chunks ---------------------------------------------------------------------------

  // A held version whose chunks went missing: fetch them again. A version the node rebuilt
  // from a patch has an index of its own (no pack locations): the repository's index says
  // where its chunks are.
  Status repair(const HeldVersion& held) {
    OUTPOST_ASSIGN_OR_RETURN(auto missing, missing_chunks(held.index));
    if (missing.empty()) return Status::Ok();
    if (!is_local_index(held.index)) return fetch_chunks(held.index, missing, held.manifest.bundle);
    OUTPOST_ASSIGN_OR_RETURN(Bytes bytes, fetch_index(held.manifest));
    OUTPOST_ASSIGN_OR_RETURN(ChunkIndex index,
                             ChunkIndex::parse(view(bytes), held.manifest.chunking.max));
    OUTPOST_RETURN_IF_ERROR(index.check_against(held.manifest));
    OUTPOST_ASSIGN_OR_RETURN(auto remote_missing, missing_chunks(index));
    return fetch_chunks(index, remote_missing, held.manifest.bundle);
  }

  // Positions in index.chunks of the first occurrence of each chunk the store lacks.
  Result<std::vector<std::size_t>> missing_chunks(const ChunkIndex& index) {
    OUTPOST_ASSIGN_OR_RETURN(auto txn, store_.read());
    std::vector<std::size_t> out;
    std::set<crypto::Digest> seen;
    PageBudget pages(store_);
    for (std::size_t i = 0; i < index.chunks.size(); ++i) {
      const auto& id = index.chunks[i].id;
      if (!seen.insert(id).second) continue;
      pages.add(0);
      OUTPOST_ASSIGN_OR_RETURN(auto v, txn.get(Table::kChunks, {id.data(), id.size()}));
      if (!v) out.push_back(i);
    }
    return out;
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

  // Reads the missing chunks in coalesced ranges (many ranges per request), verifies each one
  // against its id, and commits them in batches.
  Status fetch_chunks(const ChunkIndex& index, const std::vector<std::size_t>& missing,
                      const std::string& bundle) {
    packaging::Decompressor dec;
    ChunkBatch batch(store_);
    std::vector<Span> spans = spans_for(index, missing);
    std::uint64_t total = 0;
    for (const Span& s : spans) total += s.end - s.start;
    SyncProgress progress{bundle, "chunks", 0, total};
    std::size_t i = 0;
    while (i < spans.size()) {
      if (options_.stop.stop_requested()) {
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
      std::vector<ByteRange> ranges;
      for (std::size_t k = i; k <= j; ++k) {
        ranges.push_back(ByteRange{spans[k].start, spans[k].end - spans[k].start});
      }
      std::string pack_path = "packs/" + crypto::hex(index.packs[spans[i].pack]) + ".pack";
      auto data = source_.read_ranges(pack_path, ranges);
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
      if (options_.progress) options_.progress(progress);
      i = j + 1;
    }
    return batch.flush();
  }

  storage::Store& store_;
  sync::MeteredSource& source_;
  const sync::TransferStats stats_before_ = source_.stats();
  std::string repo_;
  std::string location_;
  std::int64_t now_;
  const SyncOptions& options_;
  MetadataOverlay* overlay_ = nullptr;
  std::vector<Route> failed_;  // routes of the bundle being fetched that did not work here
  const tuf::TrustedMetadata* trusted_ = nullptr;
};

}  // namespace

Result<SyncReport> sync_repository(storage::Store& store, sync::MeteredSource& source,
                                   const std::string& repo, const std::string& location,
                                   std::int64_t now, const SyncOptions& options) {
  RepoSync run(store, source, repo, location, now, options);
  return run.run();
}

}  // namespace outpost::node
