#include "outpost/packaging/repository.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <iterator>
#include <set>

#include "outpost/base/fs.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/delta.h"
#include "outpost/packaging/layout.h"
#include "outpost/packaging/release_patch.h"
#include "outpost/packaging/update_file.h"
#include "repo_files.h"
#include "update_patches.h"

namespace outpost::packaging {

namespace tuf = crypto::tuf;
using namespace repo_detail;

namespace {

constexpr int kMaxBundleSegments = 6;
constexpr std::uint64_t kMaxRepositoryJsonBytes = 1u << 20;

bool dir_is_empty_or_missing(const std::string& dir, Status& err) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return true;
    err = detail::errno_status(errno, "opening", dir);
    return false;
  }
  bool empty = true;
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") {
      empty = false;
      break;
    }
  }
  ::closedir(d);
  return empty;
}

std::size_t segment_count(std::string_view s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '/')) + 1;
}

// Segments of the prefix a delegated role was made for ("un/ga/*/*" -> 2); 0 for roles that
// are not prefix delegations (hashed bins, foreign tools).
std::size_t prefix_depth(const tuf::DelegatedRole& r) {
  if (r.paths.empty()) return 0;
  std::string_view p = r.paths.front();
  while (p.size() >= 2 && p.substr(p.size() - 2) == "/*") p.remove_suffix(2);
  return p.empty() ? 0 : segment_count(p);
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

Json ladder_json(const std::vector<std::int64_t>& rungs) {
  Json a = Json::array();
  for (std::int64_t r : rungs) a.push(r);
  return a;
}

// A content stream in an unlinked temp file, mapped read-only once complete: the publisher
// holds big streams without holding them in its heap (the kernel pages them in and out).
Result<std::vector<std::int64_t>> ladder_field(const Json& j, std::string_view key,
                                               const std::vector<std::int64_t>& fallback) {
  const Json* v = j.find(key);
  if (v == nullptr) return fallback;
  if (!v->is_array()) {
    return Status::Corruption(std::string(kRepositoryJson) + ": " + std::string(key) +
                              " is not an array");
  }
  std::vector<std::int64_t> rungs;
  for (const Json& r : v->as_array()) {
    if (!r.is_int()) {
      return Status::Corruption(std::string(kRepositoryJson) + ": " + std::string(key) +
                                " holds a non-integer");
    }
    rungs.push_back(r.as_int());
  }
  auto n = normalize_ladder(std::move(rungs));
  if (!n.ok()) {
    return Status::Corruption(std::string(kRepositoryJson) + ": " + std::string(key) + ": " +
                              n.error().message());
  }
  return n;
}

}  // namespace

// ---- ladders and configuration -----------------------------------------------------------------

Result<std::vector<std::int64_t>> normalize_ladder(std::vector<std::int64_t> rungs) {
  std::sort(rungs.begin(), rungs.end());
  rungs.erase(std::unique(rungs.begin(), rungs.end()), rungs.end());
  for (std::int64_t r : rungs) {
    if (r < 1 || r > kMaxLadderRung) {
      return Status::InvalidArgument("ladder rung " + std::to_string(r) + " is not in 1.." +
                                     std::to_string(kMaxLadderRung));
    }
  }
  if (rungs.size() > kMaxLadderRungs) {
    return Status::InvalidArgument("a ladder has at most " + std::to_string(kMaxLadderRungs) +
                                   " rungs, " + std::to_string(rungs.size()) + " given");
  }
  return rungs;
}

Result<std::vector<std::int64_t>> parse_ladder(std::string_view text) {
  std::vector<std::int64_t> rungs;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    const std::string item(text.substr(start, comma - start));
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || end != item.c_str() + item.size()) {
      return Status::InvalidArgument("ladder '" + std::string(text.substr(0, 200)) + "': '" + item +
                                     "' is not a number; give steps back like 1,2,4,8");
    }
    rungs.push_back(static_cast<std::int64_t>(v));
    start = comma + 1;
  }
  return normalize_ladder(std::move(rungs));
}

Result<RepositoryConfig> load_repository_config(const std::string& repo) {
  const std::string path = in_repo(repo, kRepositoryJson);
  if (!real_fs().exists(path)) return Status::NotFound(path + " is missing");
  OUTPOST_ASSIGN_OR_RETURN(Bytes bytes, read_repo_file(path, kMaxRepositoryJsonBytes));
  auto j = parse_json(as_chars(bytes));
  if (!j.ok()) return j.error().With(path);
  if (!j->is_object()) return Status::Corruption(path + ": not a JSON object");
  RepositoryConfig c;
  if (const Json* chunk = j->find("chunking"); chunk != nullptr && chunk->is_object()) {
    auto num = [&](std::string_view k, std::uint32_t fallback) -> std::uint32_t {
      const Json* v = chunk->find(k);
      return v != nullptr && v->is_int() && v->as_int() > 0 && v->as_int() <= 0xFFFFFFFFll
                 ? static_cast<std::uint32_t>(v->as_int())
                 : fallback;
    };
    c.chunking = ChunkerParams{num("min", c.chunking.min), num("avg", c.chunking.avg),
                               num("max", c.chunking.max)};
    if (Status s = c.chunking.validate(); !s.ok())
      return Status::Corruption(path + ": " + s.message());
  }
  OUTPOST_ASSIGN_OR_RETURN(c.patch_ladder, ladder_field(*j, "patch_ladder", kDefaultPatchLadder));
  OUTPOST_ASSIGN_OR_RETURN(c.update_ladder,
                           ladder_field(*j, "update_ladder", kDefaultUpdateLadder));
  return c;
}

std::string role_name_for_prefix(std::string_view prefix) {
  std::string name(prefix);
  std::replace(name.begin(), name.end(), '/', '.');
  return name;
}

std::vector<std::string> role_paths_for_prefix(std::string_view prefix) {
  // Target paths are "<bundle>/manifest.json": one segment more than the bundle name. TUF
  // matches segment by segment, so one pattern per possible depth.
  std::vector<std::string> paths;
  const std::size_t k = segment_count(prefix);
  std::string pattern(prefix);
  for (std::size_t depth = k + 1; depth <= kMaxBundleSegments + 1; ++depth) {
    pattern += "/*";
    if (depth >= 3) paths.push_back(pattern);  // bundle names have at least 2 segments
  }
  return paths;
}

// ---- reading ---------------------------------------------------------------------------------

Result<RepositoryState> load_repository(const std::string& repo) {
  RepositoryState st;
  const std::string ts_path = repo_metadata(repo, "timestamp.json");
  if (!real_fs().exists(ts_path)) {
    return Status::NotFound(repo + " is not an outpost repository (no metadata/timestamp.json)");
  }
  OUTPOST_ASSIGN_OR_RETURN(st.root, read_role<tuf::Root>(repo_metadata(repo, "root.json"), "root"));
  OUTPOST_ASSIGN_OR_RETURN(st.timestamp, read_role<tuf::Timestamp>(ts_path, "timestamp"));
  OUTPOST_ASSIGN_OR_RETURN(
      st.snapshot,
      read_role<tuf::Snapshot>(
          repo_metadata(repo, versioned_metadata_name(st.timestamp.snapshot.version, "snapshot")),
          "snapshot"));
  for (const auto& [file, info] : st.snapshot.meta) {
    if (file.size() < 6 || file.substr(file.size() - 5) != ".json") {
      return Status::Corruption("snapshot lists '" + file + "', not a metadata file");
    }
    const std::string role = file.substr(0, file.size() - 5);
    OUTPOST_ASSIGN_OR_RETURN(
        tuf::Targets t,
        read_role<tuf::Targets>(repo_metadata(repo, versioned_metadata_name(info.version, role)),
                                "targets"));
    if (role == "targets") {
      st.targets = std::move(t);
    } else {
      st.roles.emplace(role, std::move(t));
    }
  }
  return st;
}

Result<PublishedManifest> load_current_manifest(const std::string& repo,
                                                const RepositoryState& state,
                                                const std::string& bundle) {
  const std::string target = manifest_target_path(bundle);
  const tuf::TargetFile* tf = nullptr;
  for (const auto& [role, t] : state.roles) {
    (void)role;
    auto it = t.targets.find(target);
    if (it != t.targets.end()) {
      tf = &it->second;
      break;
    }
  }
  if (tf == nullptr) return Status::NotFound("bundle " + bundle + " has no published version");
  PublishedManifest pm;
  pm.path = manifest_file_path(bundle, tf->sha256);
  OUTPOST_ASSIGN_OR_RETURN(pm.bytes, read_repo_file(repo + "/" + pm.path, kMaxManifestBytes));
  if (static_cast<std::int64_t>(pm.bytes.size()) != tf->length ||
      crypto::hex(crypto::sha256(pm.bytes)) != tf->sha256) {
    return Status::Corruption(pm.path + " does not match its length and hash in targets metadata");
  }
  OUTPOST_ASSIGN_OR_RETURN(pm.manifest, Manifest::parse(pm.bytes));
  if (pm.manifest.bundle != bundle) {
    return Status::Corruption(pm.path + " is the manifest of " + pm.manifest.bundle);
  }
  return pm;
}

// ---- metadata update files ---------------------------------------------------------------------

namespace {

// A bundle whose manifest an update file carries: its manifest at N and, when it existed at
// M, its manifest then (repository paths); for a bundle new at N, the manifest at M of the
// bundle beside it by name, a base for its own, and that bundle's entry name.
struct ChangedBundle {
  std::string bundle;
  std::string after;
  std::optional<std::string> before;
  std::optional<std::string> sibling;
  std::string sibling_name;
};

using ReadFile = std::function<Result<const Bytes*>(const std::string&, std::uint64_t)>;
// What a thin manifest saves by leaving out the BLAKE2b of a patch the file carries (32 bytes
// that do not compress, and its path, which repeats them).
constexpr std::uint64_t kThinPatchSaving = 34;
// What a thin manifest saves by leaving out its new content root (release_patch.h).
constexpr std::uint64_t kThinRootSaving = 32;
// A manifest of the repository, parsed (once for all the update files of a snapshot).
using ReadManifest = std::function<Result<const Manifest*>(const std::string& relative)>;

// The patch routes of the changed bundles (update_patches.h), smallest first, while they fit
// in kCarriedTotal and in `room` (what the update file may still grow by); by the index of
// their bundle in `changed`.
Result<std::vector<std::pair<std::size_t, CarriedRoute>>> choose_routes(
    const std::vector<ChangedBundle>& changed, const ReadFile& file, const ReadManifest& manifest,
    std::uint64_t room) {
  const ReadRepoFile read_manifest = [&](const std::string& relative) {
    return file(relative, kMaxManifestBytes);
  };
  std::vector<std::pair<std::size_t, CarriedRoute>> routes;
  for (std::size_t i = 0; i < changed.size(); ++i) {
    const ChangedBundle& c = changed[i];
    OUTPOST_ASSIGN_OR_RETURN(const Manifest* after, manifest(c.after));
    std::optional<Manifest> before;
    if (c.before) {
      auto parsed = manifest(*c.before);
      if (!parsed.ok()) continue;  // the node plans this one on its own
      before = **parsed;
    }
    OUTPOST_ASSIGN_OR_RETURN(auto route, carried_route(before, *after, read_manifest));
    if (route) routes.emplace_back(i, std::move(*route));
  }
  std::stable_sort(routes.begin(), routes.end(),
                   [](const auto& a, const auto& b) { return a.second.bytes < b.second.bytes; });
  std::uint64_t total = 0;
  std::size_t kept = 0;
  for (; kept < routes.size(); ++kept) {
    if (total + routes[kept].second.bytes > std::min(kCarriedTotal, room)) break;
    total += routes[kept].second.bytes;
  }
  routes.resize(kept);
  return routes;
}

// The patch of a carried route that goes straight from the bundle's version at M, whose
// BLAKE2b a thin manifest then leaves out; nullopt for a chain or the whole content.
std::optional<crypto::Digest> direct_patch(const CarriedRoute& route) {
  if (!route.manifests.empty() || route.patches.size() != 1 || route.patches[0].from == 0) {
    return std::nullopt;
  }
  return route.patches[0].blake2b;
}

// The carried routes' files, each once: intermediate manifests, then patches. A direct patch
// of a thin manifest goes under thin_patch_name, the others under carried_patch_name.
Status add_carried_entries(UpdateFile& upd, const std::vector<ChangedBundle>& changed,
                           const std::vector<std::pair<std::size_t, CarriedRoute>>& routes,
                           const std::set<std::string>& thin_patched, const ReadFile& file,
                           Compressor& compressor) {
  std::set<std::string> names;
  for (const auto& e : upd.entries) names.insert(e.name);
  for (const auto& [at, r] : routes) {
    for (const std::string& m : r.manifests) {
      if (!names.insert(m).second) continue;
      OUTPOST_ASSIGN_OR_RETURN(const Bytes* bytes, file(m, kMaxManifestBytes));
      OUTPOST_ASSIGN_OR_RETURN(UpdateEntry e, make_update_entry(m, *bytes, {}, compressor));
      upd.entries.push_back(std::move(e));
    }
    for (const PatchRef& p : r.patches) {
      // Compressed already: stored as it is (a zstd frame around it only adds bytes), under
      // a short name (64 hex digits would not compress).
      std::optional<std::string> name = carried_patch_name(p.path);
      if (!name) return Status::Corruption("a patch path that is not one: " + p.path);
      if (thin_patched.count(changed[at].bundle) != 0) name = thin_patch_name(changed[at].bundle);
      if (!names.insert(*name).second) continue;  // the same patch in two routes
      OUTPOST_ASSIGN_OR_RETURN(const Bytes* bytes, file(p.path, p.length));
      OUTPOST_ASSIGN_OR_RETURN(UpdateEntry e, make_stored_entry(*name, *bytes));
      upd.entries.push_back(std::move(e));
    }
  }
  return Status::Ok();
}

// A version's content stream, rebuilt from its patch from 0; nullopt when it lists none.
Result<std::optional<Bytes>> content_of(const Manifest& m, const ReadFile& file) {
  for (const PatchRef& p : m.patches) {
    if (p.from != 0) continue;
    OUTPOST_ASSIGN_OR_RETURN(const Bytes* patch, file(p.path, p.length));
    OUTPOST_ASSIGN_OR_RETURN(Bytes stream,
                             apply_delta(ByteView(), ByteView(*patch), content_stream_size(m)));
    return std::optional<Bytes>(std::move(stream));
  }
  return std::optional<Bytes>();
}

// The release patch of the changed bundles (release_patch.h), in their order; nullopt when
// there are none, their contents are more than kMaxReleasePatchContent or than
// `work` (what is left of the publish's release_patch_work, reduced here by what is encoded), or
// one of them cannot be rebuilt here (the routes then carry them bundle by bundle).
Result<std::optional<Bytes>> release_patch(const std::vector<ChangedBundle>& changed,
                                           const ReadFile& file, const ReadManifest& manifest,
                                           std::uint64_t& work) {
  if (changed.empty() || work == 0) return std::optional<Bytes>();
  std::vector<std::pair<const Manifest*, const Manifest*>> versions;  // at M (or none), at N
  std::uint64_t total = 0;
  for (const ChangedBundle& c : changed) {
    OUTPOST_ASSIGN_OR_RETURN(const Manifest* after, manifest(c.after));
    const Manifest* before = nullptr;
    if (c.before) {
      auto parsed = manifest(*c.before);
      if (!parsed.ok()) return std::optional<Bytes>();
      before = *parsed;
      total += content_stream_size(*before);
    }
    total += content_stream_size(*after);
    if (total > std::min(kMaxReleasePatchContent, work)) return std::optional<Bytes>();
    versions.emplace_back(before, after);
  }
  work -= total;
  std::vector<Bytes> contents;  // old and new of each bundle, in order
  contents.reserve(2 * versions.size());
  for (const auto& [before, after] : versions) {
    std::optional<Bytes> old = Bytes();
    if (before != nullptr) {
      OUTPOST_ASSIGN_OR_RETURN(old, content_of(*before, file));
    }
    OUTPOST_ASSIGN_OR_RETURN(std::optional<Bytes> now, content_of(*after, file));
    if (!old || !now) return std::optional<Bytes>();
    contents.push_back(std::move(*old));
    contents.push_back(std::move(*now));
  }
  std::vector<ReleasePart> parts;
  for (std::size_t i = 0; i < contents.size(); i += 2) {
    parts.push_back(ReleasePart{ByteView(contents[i]), ByteView(contents[i + 1])});
  }
  OUTPOST_ASSIGN_OR_RETURN(Bytes patch, encode_release_patch(parts, kDefaultPatchLevel));
  return std::optional<Bytes>(std::move(patch));
}

// The changed manifests (entries from `first` on, their files in `files`) as one group
// (update_file.h, kFollows) when their frame alone is smaller than their entries each against
// its base: a release that touches hundreds of small bundles has manifests alike in all but
// their hashes (caniuse-lite, 244 manifests: 58.8 KB in one frame against 72.6 KB one by one).
// A few manifests stay one by one, where the base wins.
Status group_manifests(UpdateFile& upd, std::size_t first, const std::vector<Bytes>& files,
                       Compressor& compressor) {
  if (files.size() < 2 || upd.entries.size() != first + files.size()) return Status::Ok();
  Bytes all;
  std::uint64_t alone = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    all.insert(all.end(), files[i].begin(), files[i].end());
    alone += upd.entries[first + i].data.size();
  }
  if (all.size() > kMaxUpdateGroupBytes) return Status::Ok();
  OUTPOST_ASSIGN_OR_RETURN(Bytes frame, compressor.compress(all));
  if (frame.size() >= alone) return Status::Ok();
  for (std::size_t i = first; i < upd.entries.size(); ++i) {
    UpdateEntry& e = upd.entries[i];
    e.encoding = i == first ? UpdateEncoding::kZstd : UpdateEncoding::kFollows;
    e.base_sha256 = crypto::Digest{};
    e.base_name.clear();
    e.data.clear();
  }
  upd.entries[first].data = std::move(frame);
  return Status::Ok();
}

}  // namespace

Result<std::vector<std::string>> write_update_files(const std::string& repo,
                                                    std::int64_t snapshot_version,
                                                    const std::vector<std::int64_t>& ladder,
                                                    FileSystem& fs,
                                                    std::uint64_t release_patch_work) {
  std::vector<std::string> written;
  // Files read at most once, whatever the number of update files that need them.
  std::map<std::string, Bytes> files;
  auto file = [&](const std::string& relative, std::uint64_t max) -> Result<const Bytes*> {
    auto it = files.find(relative);
    if (it == files.end()) {
      OUTPOST_ASSIGN_OR_RETURN(Bytes b, read_repo_file(repo + "/" + relative, max));
      it = files.emplace(relative, std::move(b)).first;
    }
    return &it->second;
  };
  std::map<std::string, Manifest> parsed_manifests;  // by repository path
  const ReadManifest manifest = [&](const std::string& relative) -> Result<const Manifest*> {
    auto it = parsed_manifests.find(relative);
    if (it == parsed_manifests.end()) {
      OUTPOST_ASSIGN_OR_RETURN(const Bytes* bytes, file(relative, kMaxManifestBytes));
      OUTPOST_ASSIGN_OR_RETURN(Manifest m, Manifest::parse(ByteView(*bytes)));
      it = parsed_manifests.emplace(relative, std::move(m)).first;
    }
    return &it->second;
  };
  std::map<std::string, tuf::Targets> parsed_roles;  // by metadata file name
  auto role_targets = [&](const std::string& name) -> Result<const tuf::Targets*> {
    auto it = parsed_roles.find(name);
    if (it == parsed_roles.end()) {
      OUTPOST_ASSIGN_OR_RETURN(tuf::Targets t,
                               read_role<tuf::Targets>(repo_metadata(repo, name), "targets"));
      it = parsed_roles.emplace(name, std::move(t)).first;
    }
    return &it->second;
  };

  const std::string snap_name = versioned_metadata_name(snapshot_version, "snapshot");
  OUTPOST_ASSIGN_OR_RETURN(tuf::Snapshot snap,
                           read_role<tuf::Snapshot>(repo_metadata(repo, snap_name), "snapshot"));
  OUTPOST_ASSIGN_OR_RETURN(tuf::Root root,
                           read_role<tuf::Root>(repo_metadata(repo, "root.json"), "root"));
  std::int64_t latest_root = root.version;
  while (real_fs().exists(repo_metadata(repo, versioned_metadata_name(latest_root + 1, "root"))))
    ++latest_root;
  if (latest_root < 0 || latest_root > 0xFFFFFFFFll) {
    return Status::Corruption("root version " + std::to_string(latest_root) + " out of range");
  }

  // A node whose snapshot listed no bundle holds none, and reads the library file when there is
  // one (it carries everything an update file from that snapshot would, and the contents).
  const bool library = real_fs().exists(repo + "/" + update_file_path(snapshot_version, 0));
  // With zstd's checksum: a compact update file gives no result hashes.
  Compressor compressor(kUpdateLevel, /*checksum=*/true);
  std::uint64_t release_work = release_patch_work;
  for (std::int64_t rung : ladder) {
    const std::int64_t from = snapshot_version - rung;
    if (from < 1) continue;
    const std::string from_name = versioned_metadata_name(from, "snapshot");
    if (!real_fs().exists(repo_metadata(repo, from_name))) continue;
    OUTPOST_ASSIGN_OR_RETURN(tuf::Snapshot old,
                             read_role<tuf::Snapshot>(repo_metadata(repo, from_name), "snapshot"));
    UpdateFile upd;
    upd.latest_root = static_cast<std::uint32_t>(latest_root);
    std::vector<ChangedBundle> changed_bundles;
    // Past what a node reads (kMaxUpdateFileBytes) the file is not written: from a snapshot
    // that held a few bundles of what is now a library, it would carry every manifest (13 MB
    // for 10,000 bundles) and cost most of a one-bundle release's time. Counted as entries
    // are added, so that the rest is not compressed at all.
    std::uint64_t size = kUpdateHeaderBytes;
    auto add_bytes = [&](const std::string& name, ByteView bytes, std::optional<ByteView> base,
                         const std::string& base_name = {}) -> Status {
      if (size > kMaxUpdateFileBytes) return Status::Ok();
      OUTPOST_ASSIGN_OR_RETURN(UpdateEntry e, make_update_entry(name, bytes, base, compressor));
      e.base_name = base_name;
      size += update_entry_bytes(e) + base_name.size();
      upd.entries.push_back(std::move(e));
      return Status::Ok();
    };
    auto add = [&](const std::string& name, const std::string& relative,
                   const std::optional<std::string>& base_relative, std::uint64_t max) -> Status {
      if (size > kMaxUpdateFileBytes) return Status::Ok();
      OUTPOST_ASSIGN_OR_RETURN(const Bytes* bytes, file(relative, max));
      std::optional<ByteView> base;
      if (base_relative) {
        OUTPOST_ASSIGN_OR_RETURN(const Bytes* b, file(*base_relative, max));
        base = ByteView(*b);
      }
      return add_bytes(name, ByteView(*bytes), base);
    };
    OUTPOST_RETURN_IF_ERROR(
        add(snap_name, metadata_path(snap_name), metadata_path(from_name), kMaxMetadataBytes));

    std::vector<std::string> changed_roles;  // delegated roles, by metadata file name at N
    for (const auto& [meta_file, info] : snap.meta) {
      if (!ends_with(meta_file, ".json")) continue;
      const std::string role = meta_file.substr(0, meta_file.size() - 5);
      auto before = old.meta.find(meta_file);
      if (before != old.meta.end() && before->second.version == info.version) continue;
      const std::string name = versioned_metadata_name(info.version, role);
      std::optional<std::string> base;
      if (before != old.meta.end()) {
        base = metadata_path(versioned_metadata_name(before->second.version, role));
      }
      OUTPOST_RETURN_IF_ERROR(add(name, metadata_path(name), base, kMaxMetadataBytes));
      if (role != "targets") changed_roles.push_back(name);
    }
    // The changed bundles, whose manifests are the entries after the roles (and may be
    // written as one group below).
    if (!changed_roles.empty()) {
      // Every bundle's manifest at M, whichever role listed it.
      std::map<std::string, const tuf::TargetFile*> before_targets;
      for (const auto& [meta_file, info] : old.meta) {
        if (meta_file == "targets.json" || !ends_with(meta_file, ".json")) continue;
        const std::string role = meta_file.substr(0, meta_file.size() - 5);
        OUTPOST_ASSIGN_OR_RETURN(const tuf::Targets* t,
                                 role_targets(versioned_metadata_name(info.version, role)));
        for (const auto& [path, tf] : t->targets) before_targets.emplace(path, &tf);
      }
      if (library && before_targets.empty()) continue;
      for (const std::string& name : changed_roles) {
        OUTPOST_ASSIGN_OR_RETURN(const tuf::Targets* t, role_targets(name));
        for (const auto& [path, tf] : t->targets) {
          const std::optional<std::string> bundle = bundle_of_target(path);
          if (!bundle) continue;
          auto b = before_targets.find(path);
          if (b != before_targets.end() && b->second->sha256 == tf.sha256) continue;
          const std::string relative = manifest_file_path(*bundle, tf.sha256);
          std::optional<std::string> base;
          if (b != before_targets.end()) {
            base = manifest_file_path(*bundle, b->second->sha256);
            if (!real_fs().exists(repo + "/" + *base)) base.reset();
          }
          // A new bundle's manifest against a neighbour's (the bundle before it by name at M,
          // else the one after): same keys, same kind of file table, half the bytes alone.
          std::optional<std::string> sibling;
          std::string sibling_name;
          if (b == before_targets.end() && !before_targets.empty()) {
            auto next = before_targets.lower_bound(path);
            auto near = next == before_targets.begin() ? next : std::prev(next);
            const std::optional<std::string> other = bundle_of_target(near->first);
            if (other) {
              sibling = manifest_file_path(*other, near->second->sha256);
              sibling_name = library_manifest_name(*other);
              if (!real_fs().exists(repo + "/" + *sibling)) sibling.reset();
            }
          }
          changed_bundles.push_back(ChangedBundle{*bundle, relative, base, sibling,
                                                  base || !sibling ? std::string() : sibling_name});
        }
      }
    }
    // The routes to carry are chosen before the manifests are written, so that a manifest can
    // leave out the BLAKE2b of its carried patch (thin_manifest). Their room is what is left
    // beside the manifests uncompressed; when that is too little (thousands of changed
    // bundles), they are chosen after, with the manifests' real size, and no manifest leaves
    // its patch out.
    constexpr std::uint64_t kEntrySlack = 64u << 10;  // the carried entries' names and fields
    auto room_left = [&](std::uint64_t more) {
      return kMaxUpdateFileBytes > size + more + kEntrySlack
                 ? kMaxUpdateFileBytes - size - more - kEntrySlack
                 : 0;
    };
    std::uint64_t raw_manifests = 0;
    for (const ChangedBundle& c : changed_bundles) {
      OUTPOST_ASSIGN_OR_RETURN(const Bytes* bytes, file(c.after, kMaxManifestBytes));
      raw_manifests += bytes->size();
      if (raw_manifests > kMaxUpdateFileBytes) break;  // too many: chosen after, as said
    }
    const bool routes_first = room_left(raw_manifests) >= kCarriedTotal;
    std::vector<std::pair<std::size_t, CarriedRoute>> routes;
    std::set<std::string> thin_patched;  // bundles whose thin manifest leaves its patch out
    std::map<std::string, crypto::Digest> direct;
    std::optional<Bytes> release;  // the release patch, in place of the routes
    if (routes_first) {
      OUTPOST_ASSIGN_OR_RETURN(routes,
                               choose_routes(changed_bundles, file, manifest, kCarriedTotal));
      std::uint64_t carried = 0;
      for (const auto& [at, r] : routes) {
        carried += r.bytes;
        if (auto p = direct_patch(r)) direct.emplace(changed_bundles[at].bundle, *p);
      }
      // One patch for all of them when it is smaller than theirs (counting the hash each
      // thin manifest could leave out beside its own patch), or when it carries bundles
      // the routes leave to a request of their own.
      // A single bundle too, when all its route has is its patch from 0 (a small bundle lists
      // no other, repository.h kMinRungSaving), and no larger than a route of its own may be.
      const bool one = changed_bundles.size() == 1;
      const bool one_full = one && (routes.empty() || (routes[0].second.manifests.empty() &&
                                                       routes[0].second.patches.size() == 1 &&
                                                       routes[0].second.patches[0].from == 0));
      if (!one || one_full) {
        OUTPOST_ASSIGN_OR_RETURN(release,
                                 release_patch(changed_bundles, file, manifest, release_work));
      }
      std::uint64_t held = 0;  // bundles a node holds at M: their manifests can go thin
      for (const ChangedBundle& c : changed_bundles) held += c.before ? 1 : 0;
      if (release && release->size() <= (one ? kCarriedRouteMax : kCarriedTotal) &&
          (routes.size() < changed_bundles.size() ||
           release->size() + kThinPatchSaving * direct.size() < carried + kThinRootSaving * held)) {
        routes.clear();
        direct.clear();
      } else {
        release.reset();
      }
    }
    const std::size_t first_manifest = upd.entries.size();
    std::vector<Bytes> manifest_files;
    for (const ChangedBundle& c : changed_bundles) {
      OUTPOST_ASSIGN_OR_RETURN(const Bytes* bytes, file(c.after, kMaxManifestBytes));
      std::optional<Bytes> thin;
      const Bytes* before = nullptr;
      if (c.before) {
        OUTPOST_ASSIGN_OR_RETURN(before, file(*c.before, kMaxManifestBytes));
        auto held = manifest(*c.before);
        auto d = direct.find(c.bundle);
        const std::optional<crypto::Digest> patch =
            d == direct.end() ? std::nullopt : std::optional<crypto::Digest>(d->second);
        if (held.ok()) {
          const HeldVersion hv{(*held)->content_root, crypto::sha256(ByteView(*before))};
          // With a release patch the node has the new content before the manifest.
          std::optional<crypto::Digest> new_root;
          if (release) {
            OUTPOST_ASSIGN_OR_RETURN(const Manifest* after, manifest(c.after));
            new_root = after->content_root;
          }
          thin = thin_manifest(ByteView(*bytes), hv, patch, new_root);
          if (thin && patch) {
            thin_patched.insert(c.bundle);
          } else if (!thin && patch) {
            thin = thin_manifest(ByteView(*bytes), hv, std::nullopt, new_root);
          }
        }
      }
      if (thin) {
        // Against the held manifest, which its name does not imply.
        OUTPOST_RETURN_IF_ERROR(add_bytes(thin_manifest_name(c.bundle), ByteView(*thin),
                                          ByteView(*before), library_manifest_name(c.bundle)));
        manifest_files.push_back(std::move(*thin));
        continue;
      }
      // Named by the bundle, as in a library file: the role gives its SHA-256, and the 64
      // hex digits of its path would not compress.
      const std::optional<std::string>& base = c.before ? c.before : c.sibling;
      std::optional<ByteView> base_bytes;
      if (base) {
        OUTPOST_ASSIGN_OR_RETURN(const Bytes* b, file(*base, kMaxManifestBytes));
        base_bytes = ByteView(*b);
      }
      OUTPOST_RETURN_IF_ERROR(
          add_bytes(library_manifest_name(c.bundle), ByteView(*bytes), base_bytes, c.sibling_name));
      manifest_files.push_back(*bytes);
    }
    if (size > kMaxUpdateFileBytes) continue;
    OUTPOST_RETURN_IF_ERROR(group_manifests(upd, first_manifest, manifest_files, compressor));
    if (release) {
      std::vector<std::string> order;
      for (const ChangedBundle& c : changed_bundles) order.push_back(c.bundle);
      // The thin manifests left their roots out for it: a node must read the same parts.
      if (release_patch_bundles(upd) != order) {
        return Status::Internal("update file " + update_file_name(snapshot_version, from) +
                                ": its manifests are not the release patch's parts");
      }
      OUTPOST_ASSIGN_OR_RETURN(UpdateEntry e, make_stored_entry(kReleasePatchName, *release));
      size += update_entry_bytes(e);
      upd.entries.push_back(std::move(e));
    }
    if (!routes_first) {
      OUTPOST_ASSIGN_OR_RETURN(routes,
                               choose_routes(changed_bundles, file, manifest, room_left(0)));
    }
    OUTPOST_RETURN_IF_ERROR(
        add_carried_entries(upd, changed_bundles, routes, thin_patched, file, compressor));
    OUTPOST_ASSIGN_OR_RETURN(Bytes encoded, encode_compact_update_file(upd, compressor));
    if (encoded.size() > kMaxUpdateFileBytes) continue;
    const std::string out_name = update_file_name(snapshot_version, from);
    OUTPOST_RETURN_IF_ERROR(
        write_repo_file(repo, update_file_path(snapshot_version, from), encoded, fs));
    written.push_back(out_name);
  }
  return written;
}

// ---- init ------------------------------------------------------------------------------------

Status init_repository(const std::string& repo, const InitOptions& o) {
  if (o.targets_key == nullptr || o.snapshot_key == nullptr || o.timestamp_key == nullptr) {
    return Status::InvalidArgument("repo init needs the targets, snapshot and timestamp keys");
  }
  std::map<std::string, const crypto::SecretKey*> root_keys;
  for (const crypto::SecretKey* k : o.root_keys) {
    if (k != nullptr) root_keys.emplace(k->public_key().keyid(), k);
  }
  if (o.threshold < 1 || static_cast<std::size_t>(o.threshold) > root_keys.size()) {
    return Status::InvalidArgument("root threshold " + std::to_string(o.threshold) +
                                   " needs at least that many distinct root keys (given " +
                                   std::to_string(root_keys.size()) + ")");
  }
  OUTPOST_RETURN_IF_ERROR(o.chunking.validate());
  auto patch_ladder = normalize_ladder(o.patch_ladder);
  if (!patch_ladder.ok()) return patch_ladder.error().With("patch ladder");
  auto update_ladder = normalize_ladder(o.update_ladder);
  if (!update_ladder.ok()) return update_ladder.error().With("update ladder");
  Status err;
  if (!dir_is_empty_or_missing(repo, err)) {
    if (!err.ok()) return err;
    return Status::FailedPrecondition(repo + " exists and is not empty: choose a new folder");
  }
  OUTPOST_RETURN_IF_ERROR(real_fs().make_dirs(repo));
  // The repository's root is the top of the published tree: a web server's workers traverse it.
  if (::chmod(repo.c_str(), kPublishedDirMode) != 0) {
    return Status::FailedPrecondition("setting the mode of " + repo + ": " + errno_text(errno));
  }
  for (std::string_view sub : kRepositoryDirs) OUTPOST_RETURN_IF_ERROR(make_repo_dirs(repo, sub));
  const std::int64_t now = clock_of(o.clock).now();

  RepositoryState st;
  st.root.version = 1;
  st.root.expires = now + o.expiry.root;
  st.root.consistent_snapshot = true;
  tuf::RoleKeys rk;
  rk.threshold = o.threshold;
  std::vector<const crypto::SecretKey*> root_signers;
  for (const auto& [id, k] : root_keys) {
    st.root.keys.emplace(id, k->public_key());
    rk.keyids.push_back(id);
    root_signers.push_back(k);
  }
  st.root.roles["root"] = rk;
  for (const auto& [role, key] :
       {std::pair<const char*, const crypto::SecretKey*>{"targets", o.targets_key},
        {"snapshot", o.snapshot_key},
        {"timestamp", o.timestamp_key}}) {
    const std::string id = key->public_key().keyid();
    st.root.keys.emplace(id, key->public_key());
    st.root.roles[role] = tuf::RoleKeys{{id}, 1};
  }
  Bytes root_bytes;
  OUTPOST_RETURN_IF_ERROR(
      write_metadata(repo, "1.root.json", st.root.to_signed(), root_signers, &root_bytes));
  OUTPOST_RETURN_IF_ERROR(write_repo_file(repo, metadata_path("root.json"), root_bytes));

  st.targets.version = 1;
  st.targets.expires = now + o.expiry.targets;
  OUTPOST_RETURN_IF_ERROR(
      write_metadata(repo, "1.targets.json", st.targets.to_signed(), {o.targets_key}));

  Json desc = Json::object();
  desc.set("_type", "outpost/repository");
  desc.set("format", 1);
  Json chunk = Json::object();
  chunk.set("algorithm", kChunkAlgorithm);
  chunk.set("min", static_cast<std::int64_t>(o.chunking.min));
  chunk.set("avg", static_cast<std::int64_t>(o.chunking.avg));
  chunk.set("max", static_cast<std::int64_t>(o.chunking.max));
  desc.set("chunking", std::move(chunk));
  desc.set("patch_ladder", ladder_json(*patch_ladder));
  desc.set("update_ladder", ladder_json(*update_ladder));
  OUTPOST_RETURN_IF_ERROR(write_repo_file(repo, kRepositoryJson, to_bytes(desc.dump(2) + "\n")));

  st.snapshot.version = 0;  // write_snapshot_and_timestamp moves both to version 1
  st.snapshot.meta["targets.json"] = tuf::MetaFile{1, std::nullopt, std::nullopt};
  st.timestamp.version = 0;
  return write_snapshot_and_timestamp(repo, st, *o.snapshot_key, *o.timestamp_key, now, o.expiry,
                                      {});
}

// ---- delegate --------------------------------------------------------------------------------

Status delegate(const std::string& repo, const crypto::SecretKey& targets_key,
                const crypto::SecretKey& snapshot_key, const crypto::SecretKey& timestamp_key,
                const crypto::PublicKey& publisher, std::string prefix, Clock& clock,
                const Expiries& expiry) {
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  OUTPOST_RETURN_IF_ERROR(validate_bundle_prefix(prefix));
  const std::string role = role_name_for_prefix(prefix);
  if (role == "root" || role == "targets" || role == "snapshot" || role == "timestamp") {
    return Status::InvalidArgument("prefix '" + prefix + "' would name a delegated role '" + role +
                                   "', which is a top-level TUF role: choose another prefix");
  }
  OUTPOST_ASSIGN_OR_RETURN(RepoLock lock, RepoLock::acquire(repo));
  OUTPOST_ASSIGN_OR_RETURN(RepositoryState st, load_repository(repo));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "targets", targets_key));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "snapshot", snapshot_key));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "timestamp", timestamp_key));

  tuf::Delegations d = st.targets.delegations.value_or(tuf::Delegations{});
  const std::vector<std::string> paths = role_paths_for_prefix(prefix);
  const std::string keyid = publisher.keyid();
  auto it = std::find_if(d.roles.begin(), d.roles.end(),
                         [&](const tuf::DelegatedRole& r) { return r.name == role; });
  if (it != d.roles.end()) {
    if (it->paths != paths) {
      return Status::InvalidArgument("prefix '" + prefix + "' maps to role '" + role +
                                     "', which already delegates another prefix: choose a prefix "
                                     "whose segments do not contain '.' ambiguously");
    }
    it->keyids = {keyid};
    it->threshold = 1;
  } else {
    tuf::DelegatedRole r;
    r.name = role;
    r.keyids = {keyid};
    r.threshold = 1;
    r.terminating = true;
    r.paths = paths;
    d.roles.push_back(std::move(r));
  }
  d.keys[keyid] = publisher;
  // More specific prefixes first: TUF visits roles in order, and a terminating role stops the
  // search, so "un/ga" owns its names even when "un" is delegated to someone else.
  std::stable_sort(d.roles.begin(), d.roles.end(),
                   [](const tuf::DelegatedRole& a, const tuf::DelegatedRole& b) {
                     return prefix_depth(a) > prefix_depth(b);
                   });
  // Drop keys no role uses any more (revocation by replacement).
  std::set<std::string> used;
  for (const auto& r : d.roles) used.insert(r.keyids.begin(), r.keyids.end());
  for (auto k = d.keys.begin(); k != d.keys.end();) {
    k = used.count(k->first) != 0 ? std::next(k) : d.keys.erase(k);
  }
  st.targets.delegations = std::move(d);
  const std::int64_t now = clock.now();
  st.targets.version += 1;
  st.targets.expires = now + expiry.targets;
  OUTPOST_RETURN_IF_ERROR(write_metadata(repo,
                                         versioned_metadata_name(st.targets.version, "targets"),
                                         st.targets.to_signed(), {&targets_key}));
  st.snapshot.meta["targets.json"] = tuf::MetaFile{st.targets.version, std::nullopt, std::nullopt};
  OUTPOST_ASSIGN_OR_RETURN(RepositoryConfig config, config_or_default(repo));
  return write_snapshot_and_timestamp(repo, st, snapshot_key, timestamp_key, now, expiry,
                                      config.update_ladder);
}

// ---- refresh and rotate ----------------------------------------------------------------------

Status refresh_timestamp(const std::string& repo, const crypto::SecretKey& timestamp_key,
                         Clock& clock, const Expiries& expiry) {
  OUTPOST_ASSIGN_OR_RETURN(RepoLock lock, RepoLock::acquire(repo));
  OUTPOST_ASSIGN_OR_RETURN(tuf::Root root,
                           read_role<tuf::Root>(repo_metadata(repo, "root.json"), "root"));
  OUTPOST_RETURN_IF_ERROR(require_role_key(root, "timestamp", timestamp_key));
  OUTPOST_ASSIGN_OR_RETURN(
      tuf::Timestamp ts,
      read_role<tuf::Timestamp>(repo_metadata(repo, "timestamp.json"), "timestamp"));
  OUTPOST_ASSIGN_OR_RETURN(
      tuf::Snapshot snap,
      read_role<tuf::Snapshot>(
          repo_metadata(repo, versioned_metadata_name(ts.snapshot.version, "snapshot")),
          "snapshot"));
  const std::int64_t now = clock.now();
  if (snap.expires < now + expiry.timestamp) {
    return Status::FailedPrecondition(
        "the snapshot expires " + format_utc(snap.expires) +
        ", before a new timestamp would: refresh with the snapshot key as well");
  }
  ts.version += 1;
  ts.expires = now + expiry.timestamp;
  return write_metadata(repo, "timestamp.json", ts.to_signed(), {&timestamp_key});
}

Status refresh_snapshot(const std::string& repo, const crypto::SecretKey& snapshot_key,
                        const crypto::SecretKey& timestamp_key, Clock& clock,
                        const Expiries& expiry) {
  OUTPOST_ASSIGN_OR_RETURN(RepoLock lock, RepoLock::acquire(repo));
  OUTPOST_ASSIGN_OR_RETURN(RepositoryState st, load_repository(repo));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "snapshot", snapshot_key));
  OUTPOST_RETURN_IF_ERROR(require_role_key(st.root, "timestamp", timestamp_key));
  OUTPOST_ASSIGN_OR_RETURN(RepositoryConfig config, config_or_default(repo));
  return write_snapshot_and_timestamp(repo, st, snapshot_key, timestamp_key, clock.now(), expiry,
                                      config.update_ladder);
}

Status rotate_root(const std::string& repo, const RotateOptions& o) {
  if (o.targets_key == nullptr || o.snapshot_key == nullptr || o.timestamp_key == nullptr) {
    return Status::InvalidArgument("root rotation needs the targets, snapshot and timestamp keys");
  }
  std::map<std::string, const crypto::SecretKey*> new_keys;
  for (const auto* k : o.new_root_keys) {
    if (k != nullptr) new_keys.emplace(k->public_key().keyid(), k);
  }
  if (o.threshold < 1 || static_cast<std::size_t>(o.threshold) > new_keys.size()) {
    return Status::InvalidArgument("new root threshold " + std::to_string(o.threshold) +
                                   " needs at least that many distinct new root keys (given " +
                                   std::to_string(new_keys.size()) + ")");
  }
  OUTPOST_ASSIGN_OR_RETURN(RepoLock lock, RepoLock::acquire(repo));
  OUTPOST_ASSIGN_OR_RETURN(RepositoryState st, load_repository(repo));
  // root.json must be the newest version: clients walk N+1.root.json from what they hold.
  if (real_fs().exists(repo_metadata(repo, versioned_metadata_name(st.root.version + 1, "root")))) {
    return Status::FailedPrecondition(
        "metadata/root.json is not the newest root version: "
        "restore it from the highest N.root.json");
  }
  std::map<std::string, const crypto::SecretKey*> signers;
  int old_valid = 0;
  for (const auto* k : o.old_root_keys) {
    if (k == nullptr) continue;
    if (key_listed(st.root, "root", *k) && signers.emplace(k->public_key().keyid(), k).second) {
      ++old_valid;
    }
  }
  const int old_threshold = st.root.roles["root"].threshold;
  if (old_valid < old_threshold) {
    return Status::FailedPrecondition("the current root needs " + std::to_string(old_threshold) +
                                      " of its keys to sign a new root; " +
                                      std::to_string(old_valid) + " given");
  }
  for (const auto& [id, k] : new_keys) signers.emplace(id, k);

  const std::string old_targets = st.root.roles["targets"].keyids.empty()
                                      ? std::string()
                                      : st.root.roles["targets"].keyids.front();
  tuf::Root next;
  next.version = st.root.version + 1;
  const std::int64_t now = clock_of(o.clock).now();
  next.expires = now + o.expiry.root;
  next.consistent_snapshot = true;
  tuf::RoleKeys rk;
  rk.threshold = o.threshold;
  for (const auto& [id, k] : new_keys) {
    next.keys.emplace(id, k->public_key());
    rk.keyids.push_back(id);
  }
  next.roles["root"] = rk;
  for (const auto& [role, key] :
       {std::pair<const char*, const crypto::SecretKey*>{"targets", o.targets_key},
        {"snapshot", o.snapshot_key},
        {"timestamp", o.timestamp_key}}) {
    const std::string id = key->public_key().keyid();
    next.keys.emplace(id, key->public_key());
    next.roles[role] = tuf::RoleKeys{{id}, 1};
  }
  std::vector<const crypto::SecretKey*> sign_with;
  for (const auto& [id, k] : signers) sign_with.push_back(k);
  Bytes root_bytes;
  OUTPOST_RETURN_IF_ERROR(write_metadata(repo, versioned_metadata_name(next.version, "root"),
                                         next.to_signed(), sign_with, &root_bytes));
  OUTPOST_RETURN_IF_ERROR(write_repo_file(repo, metadata_path("root.json"), root_bytes));
  st.root = next;
  if (o.targets_key->public_key().keyid() != old_targets) {
    st.targets.version += 1;
    st.targets.expires = now + o.expiry.targets;
    OUTPOST_RETURN_IF_ERROR(write_metadata(repo,
                                           versioned_metadata_name(st.targets.version, "targets"),
                                           st.targets.to_signed(), {o.targets_key}));
    st.snapshot.meta["targets.json"] =
        tuf::MetaFile{st.targets.version, std::nullopt, std::nullopt};
  }
  OUTPOST_ASSIGN_OR_RETURN(RepositoryConfig config, config_or_default(repo));
  return write_snapshot_and_timestamp(repo, st, *o.snapshot_key, *o.timestamp_key, now, o.expiry,
                                      config.update_ladder);
}

}  // namespace outpost::packaging
