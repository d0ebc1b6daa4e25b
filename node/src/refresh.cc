#include "refresh.h"

#include <algorithm>
#include <optional>

#include "assembly.h"
#include "node_internal.h"
#include "outpost/crypto/hash.h"
#include "outpost/node/store_files.h"
#include "outpost/packaging/layout.h"
#include "transfer.h"

namespace outpost::node {

using namespace detail;
using storage::Table;

namespace {

Bytes etag_key(const SyncContext& ctx) {
  return storage::text_key("etag", ctx.repo + "\n" + ctx.location);
}

// The validator of the timestamp trusted from this source ("" when unknown).
Result<std::string> held_etag(const storage::ReadTxn& txn, const SyncContext& ctx) {
  OUTPOST_ASSIGN_OR_RETURN(auto etag, txn.get(Table::kSettings, view(etag_key(ctx))));
  return etag ? std::string(as_chars(view(*etag))) : std::string();
}

// A base for an update file entry: a trusted metadata file or a held current manifest.
// The manifest of the version of `bundle` the node holds; nullopt when it holds none.
std::optional<Bytes> held_manifest(SyncContext& ctx, const std::string& bundle) {
  auto txn = ctx.store.read();
  if (!txn.ok()) return std::nullopt;
  auto rec = get_bundle(*txn, bundle);
  if (!rec.ok() || !rec->has_value()) return std::nullopt;
  auto m = get_file(*txn, Table::kManifests, view(storage::version_key(bundle, (*rec)->current)));
  if (!m.ok() || !m->has_value()) return std::nullopt;
  return std::move(**m);
}

std::optional<Bytes> held_content(SyncContext& ctx, const std::string& bundle, std::uint64_t size) {
  auto txn = ctx.store.read();
  if (!txn.ok()) return std::nullopt;
  auto rec = get_bundle(*txn, bundle);
  if (!rec.ok() || !rec->has_value()) return std::nullopt;
  auto held = load_version(*txn, bundle, (*rec)->current);
  end(*txn);
  if (!held.ok()) return std::nullopt;
  auto stream = read_held_content(ctx.store, *held, size);
  if (!stream.ok()) return std::nullopt;
  return std::move(*stream);
}

std::optional<Bytes> held_base(SyncContext& ctx, const packaging::UpdateEntry& entry) {
  auto match = [&](const Bytes& b) {
    return !b.empty() && packaging::base_matches(entry, crypto::sha256(view(b)));
  };
  for (const Bytes* b : {&ctx.trusted.snapshot, &ctx.trusted.targets, &ctx.trusted.timestamp}) {
    if (match(*b)) return *b;
  }
  for (const auto& [role, bytes] : ctx.trusted.delegated) {
    if (match(bytes)) return bytes;
  }
  // The bundle's current manifest, for an entry named "manifest/<bundle>"
  // (packaging::library_manifest_name) or by its repository path
  // "targets/<bundle>/<sha256>.manifest.json"; a new bundle's names another bundle's.
  const std::string& name = entry.base_name.empty() ? entry.name : entry.base_name;
  const std::string by_bundle = packaging::library_manifest_name("");
  std::string bundle;
  if (name.rfind(by_bundle, 0) == 0) {
    bundle = name.substr(by_bundle.size());
  } else if (auto in_folder = packaging::bundle_of_targets_file(name)) {
    bundle = std::move(*in_folder);
  } else {
    return std::nullopt;
  }
  auto m = held_manifest(ctx, bundle);
  if (!m || !match(*m)) return std::nullopt;
  return m;
}

std::int64_t root_version(const Bytes& root) {
  auto env = tuf::parse_metadata(view(root), "root");
  if (!env.ok()) return 0;
  auto r = tuf::Root::from_signed(*env->find("signed"));
  return r.ok() ? r->version : 0;
}

Result<Refreshed> refresh_once(SyncContext& ctx);

// Whether the node holds a version of any bundle of ctx.repo.
Result<bool> holds_any_bundle(SyncContext& ctx) {
  OUTPOST_ASSIGN_OR_RETURN(auto txn, ctx.store.read());
  bool found = false;
  OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kBundles, ByteView(), [&](ByteView, ByteView v) {
    auto r = records::parse_bundle(v);
    if (r.ok() && r->repo == ctx.repo) found = true;
    return !found;
  }));
  return found;
}

// Bundles of `targets` the node does not hold at the version their entry declares.
constexpr std::size_t kLibraryMinChanged = 8;
Result<std::size_t> changed_bundles(SyncContext& ctx,
                                    const std::map<std::string, tuf::TargetFile>& targets) {
  OUTPOST_ASSIGN_OR_RETURN(auto txn, ctx.store.read());
  std::size_t changed = 0;
  for (const auto& [path, target] : targets) {
    std::optional<std::string> bundle = packaging::bundle_of_target(path);
    if (!bundle) continue;
    std::int64_t declared = -1;
    if (const Json* o = target.custom.find("outpost"); o != nullptr) {
      if (const Json* v = o->find("version"); v != nullptr && v->is_int()) declared = v->as_int();
    }
    OUTPOST_ASSIGN_OR_RETURN(auto rec, get_bundle(txn, *bundle));
    if (!rec || declared < 0 || rec->current != static_cast<std::uint64_t>(declared)) {
      ++changed;
    }
  }
  return changed;
}

// Held bundles of ctx.repo whose current version lacks chunks.
Result<std::size_t> incomplete_bundles(SyncContext& ctx) {
  std::vector<std::pair<std::string, std::uint64_t>> held;
  {
    OUTPOST_ASSIGN_OR_RETURN(auto txn, ctx.store.read());
    OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kBundles, ByteView(), [&](ByteView k, ByteView v) {
      auto r = records::parse_bundle(v);
      if (r.ok() && r->repo == ctx.repo) held.emplace_back(std::string(as_chars(k)), r->current);
      return true;
    }));
  }
  std::size_t incomplete = 0;
  for (const auto& [bundle, current] : held) {
    std::optional<HeldVersion> version;
    {
      OUTPOST_ASSIGN_OR_RETURN(auto txn, ctx.store.read());
      auto v = load_version(txn, bundle, current);
      if (v.ok()) version = std::move(*v);
    }
    if (!version) {
      ++incomplete;
      continue;
    }
    OUTPOST_ASSIGN_OR_RETURN(auto missing, missing_chunks(ctx, version->index));
    if (!missing.empty()) ++incomplete;
  }
  return incomplete;
}

}  // namespace

// Over a network, metadata damaged in transit (a flipped bit, a cut the transport did not
// notice) fails its parse, length, hash or signature check exactly as a tampered file does:
// fetch it again (twice at most) before calling the mirror bad. A local path or a pack reads the
// same bytes again, so it is not retried.
Result<Refreshed> refresh(SyncContext& ctx) {
  Result<Refreshed> r = refresh_once(ctx);
  for (int again = 0;
       again < 2 && !r.ok() && ctx.source.metered() &&
       (r.error().code() == Code::kCorruption || r.error().code() == Code::kVerificationFailed);
       ++again) {
    r = refresh_once(ctx);
  }
  return r;
}

namespace {

Result<Refreshed> refresh_once(SyncContext& ctx) {
  OUTPOST_ASSIGN_OR_RETURN(auto rtxn, ctx.store.read());
  OUTPOST_ASSIGN_OR_RETURN(ctx.trusted, load_trusted(rtxn, ctx.repo));
  OUTPOST_ASSIGN_OR_RETURN(std::int64_t floor, time_floor(rtxn));
  OUTPOST_ASSIGN_OR_RETURN(std::string etag, held_etag(rtxn, ctx));
  end(rtxn);
  std::int64_t held_snapshot = 0;
  if (!ctx.trusted.snapshot.empty()) {
    auto env = tuf::parse_metadata(view(ctx.trusted.snapshot), "snapshot");
    if (env.ok()) {
      auto snap = tuf::Snapshot::from_signed(*env->find("signed"));
      if (snap.ok()) held_snapshot = snap->version;
    }
  }
  MetadataOverlay& overlay = ctx.overlay.emplace(
      ctx.source, held_snapshot,
      [&ctx](const packaging::UpdateEntry& entry) { return held_base(ctx, entry); },
      [&ctx](const std::string& bundle) { return held_manifest(ctx, bundle); },
      [&ctx](const std::string& bundle, std::uint64_t size) {
        return held_content(ctx, bundle, size);
      },
      std::move(etag));
  overlay.set_budget([&ctx] { return ctx.source.left(); });
  {
    // The library's metadata frame holds newer versions of the snapshot and roles the node
    // holds, compressed: a role is mostly hex SHA-256 (half of it entropy) and names that
    // compress well (caniuse-lite as 825 bundles: 35,919 B for 170 KB).
    std::uint64_t held = ctx.trusted.snapshot.size() + ctx.trusted.targets.size();
    for (const auto& [role, bytes] : ctx.trusted.delegated) held += bytes.size();
    overlay.set_metadata_guess(held / 4 + 1024);
  }

  tuf::UpdaterOptions uopt;
  uopt.now = std::max(ctx.now, floor);
  uopt.accept_expired_timestamp = ctx.options.accept_expired_timestamp;
  tuf::Updater updater(ctx.trusted, overlay, uopt);
  OUTPOST_RETURN_IF_ERROR(updater.refresh());
  // A node that holds nothing of this repository (a first sync) reads the release's library
  // file: the roles, manifests and contents of every bundle in one request.
  auto load_library = [&] {
    auto env = tuf::parse_metadata(view(updater.trusted().snapshot), "snapshot");
    if (!env.ok()) return;
    auto snap = tuf::Snapshot::from_signed(*env->find("signed"));
    if (snap.ok()) overlay.load_library(snap->version);
  };
  if (!ctx.options.dry_run && !overlay.used_library_file()) {
    OUTPOST_ASSIGN_OR_RETURN(bool holds, holds_any_bundle(ctx));
    if (!holds) load_library();
  }
  Refreshed out;
  OUTPOST_ASSIGN_OR_RETURN(out.targets, updater.all_targets());
  // A node away longer than the update ladder reaches, for which at least a quarter of the
  // bundles changed: the library file costs about what their manifests and patches would, in
  // one request instead of two per bundle. After its metadata (a long absence) only its rest
  // is read: caniuse-lite as a library, N -> N+10 and N+50 cost what a node holding nothing
  // reads (526,842 and 837,835 B), where manifests and patches took 1.07 MB in 578 requests.
  if (!ctx.options.dry_run && (!overlay.used_update_file() || overlay.used_library_metadata())) {
    OUTPOST_ASSIGN_OR_RETURN(std::size_t changed, changed_bundles(ctx, out.targets));
    if (changed >= kLibraryMinChanged && 4 * changed >= out.targets.size()) load_library();
  }
  // A store that lost the content of a quarter of its bundles (damaged chunks dropped by
  // `verify --repair`, a store restored in part): the library file gives it back in one
  // request, where each bundle would fetch its missing chunks alone (assembly.cc, repair).
  if (!ctx.options.dry_run && !overlay.used_library_file()) {
    OUTPOST_ASSIGN_OR_RETURN(std::size_t incomplete, incomplete_bundles(ctx));
    if (incomplete >= kLibraryMinChanged && 4 * incomplete >= out.targets.size()) load_library();
  }
  out.unchanged = updater.unchanged();

  // Trust moves forward first: the metadata is verified whatever happens to the content.
  if (!ctx.options.dry_run) {
    std::string new_etag = overlay.timestamp_etag();
    OUTPOST_RETURN_IF_ERROR(ctx.store.update([&](storage::WriteTxn& txn) -> Status {
      OUTPOST_RETURN_IF_ERROR(save_trusted(txn, ctx.repo, updater.trusted()));
      // The roots walked through on the way (a node that missed rotations passes them on).
      const std::int64_t trusted_root = root_version(updater.trusted().root);
      for (const auto& [version, bytes] : overlay.roots_fetched()) {
        if (version < trusted_root)
          OUTPOST_RETURN_IF_ERROR(save_root_history(txn, ctx.repo, bytes));
      }
      if (!new_etag.empty()) {
        OUTPOST_RETURN_IF_ERROR(txn.put(Table::kSettings, view(etag_key(ctx)), as_bytes(new_etag)));
      }
      return raise_time_floor(txn, uopt.now);
    }));
  }
  return out;
}

}  // namespace

}  // namespace outpost::node
