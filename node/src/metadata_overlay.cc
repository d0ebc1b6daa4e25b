#include "metadata_overlay.h"

#include <algorithm>
#include <charconv>
#include <iterator>

#include "outpost/base/json.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/layout.h"
#include "outpost/packaging/manifest.h"
#include "outpost/packaging/release_patch.h"
#include "outpost/sync/http.h"

namespace outpost::node {

namespace {

const std::string kTimestampPath = packaging::metadata_path("timestamp.json");
// An update file is a few hundred bytes for a one-bundle update; at most
// packaging::kMaxUpdateFileBytes (a larger update is fetched file by file).
using packaging::kMaxUpdateFileBytes;
constexpr std::uint64_t kMaxUpdateEntries = 1u << 20;
// A library file (N.from-0.upd, read by a node holding nothing) carries whole contents: it is
// held in memory, compressed and then raw, while the sync reads it.
constexpr std::uint64_t kMaxLibraryFileBytes = 64u << 20;
constexpr std::uint64_t kMaxLibraryRawBytes = 96u << 20;
// Request and response headers of the update file's request, kept out of the budget its
// body may take.
constexpr std::uint64_t kUpdateHeaderBytes = 1000;

// "12.root.json" -> 12; nullopt for other names.
std::optional<std::int64_t> root_version(const std::string& name) {
  constexpr std::string_view kSuffix = ".root.json";
  if (name.size() <= kSuffix.size() ||
      name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
    return std::nullopt;
  }
  std::int64_t v = 0;
  const char* end = name.data() + name.size() - kSuffix.size();
  auto [p, ec] = std::from_chars(name.data(), end, v);
  if (ec != std::errc() || p != end) return std::nullopt;
  return v;
}

// packaging::manifest_file_path(bundle, sha) = "targets/<bundle>/<sha hex>.manifest.json".
constexpr std::string_view kManifestSuffix = ".manifest.json";

std::optional<std::string> library_name(const std::string& path) {
  auto bundle = packaging::bundle_of_targets_file(path);
  if (!bundle) return std::nullopt;
  return packaging::library_manifest_name(*bundle);
}

std::string sha_of_manifest_path(const std::string& path) {
  const std::string file = path.substr(path.rfind('/') + 1);
  if (!packaging::is_manifest_file_name(file)) return {};
  return file.substr(0, file.size() - kManifestSuffix.size());
}

}  // namespace

MetadataOverlay::MetadataOverlay(Source& source, std::int64_t held_snapshot, BaseLookup bases,
                                 HeldManifest held_manifests, HeldContent held_contents,
                                 std::string held_timestamp_etag)
    : source_(source),
      held_snapshot_(held_snapshot),
      bases_(std::move(bases)),
      held_manifests_(std::move(held_manifests)),
      held_contents_(std::move(held_contents)) {
  // Exactly the validator of the trusted timestamp, none when unknown: one the source learned
  // from a timestamp that was then refused (a stale mirror) must not turn the next refresh's
  // answer into "304, unchanged".
  source_.set_validator(kTimestampPath, std::move(held_timestamp_etag));
}

std::string MetadataOverlay::timestamp_etag() const { return source_.validator(kTimestampPath); }

Result<Bytes> MetadataOverlay::fetch(const std::string& filename, std::uint64_t max_length) {
  if (update_) {
    if (auto v = root_version(filename);
        v && *v > static_cast<std::int64_t>(update_->latest_root)) {
      return Status::NotFound(filename + " does not exist (the update file lists root version " +
                              std::to_string(update_->latest_root) + " as the newest)");
    }
    if (auto bytes = from_update(filename, max_length)) {
      if (auto v = root_version(filename)) roots_[*v] = *bytes;
      return std::move(*bytes);
    }
  }
  Result<Bytes> got = source_.fetch(filename, max_length);
  if (auto v = root_version(filename); v && got.ok()) roots_[*v] = *got;
  return got;
}

Result<std::optional<Bytes>> MetadataOverlay::fetch_if_changed(const std::string& filename,
                                                               std::uint64_t max_length,
                                                               ByteView held) {
  Result<std::optional<Bytes>> got = std::optional<Bytes>();
  if (filename == "timestamp.json" && !held.empty()) {
    got = source_.read_file_if_changed(kTimestampPath, max_length);
  } else {
    got = source_.fetch_if_changed(filename, max_length, held);
  }
  if (!got.ok() || !got->has_value()) return got;
  const Bytes& bytes = **got;
  if (bytes.size() == held.size() && std::equal(bytes.begin(), bytes.end(), held.begin())) {
    return std::optional<Bytes>();
  }
  if (filename == "timestamp.json") load_update({bytes.data(), bytes.size()});
  return got;
}

Result<Bytes> MetadataOverlay::read_file(const std::string& path, std::uint64_t max_length) {
  if (update_) {
    if (auto bytes = from_update(path, max_length)) return std::move(*bytes);
  }
  return source_.read_file(path, max_length);
}

Result<Bytes> MetadataOverlay::read_manifest(const std::string& path, std::uint64_t max_length) {
  if (update_) {
    // Taken when it is the one asked for, else fetched alone: an update file names a bundle's
    // current manifest by the bundle (an older version's is not there), an intermediate
    // version's by its path.
    const std::string sha = sha_of_manifest_path(path);
    for (const std::optional<std::string>& name :
         {std::optional<std::string>(path), library_name(path)}) {
      if (!name) continue;
      auto bytes = from_update(*name, max_length);
      if (bytes && crypto::hex(crypto::sha256(ByteView(*bytes))) == sha) return std::move(*bytes);
    }
    if (auto bytes = from_rootless(path, sha, max_length)) return std::move(*bytes);
    if (auto bytes = from_thin(path, sha, max_length)) return std::move(*bytes);
  }
  auto packed = source_.read_file(path + ".zst", max_length);
  if (packed.ok()) {
    auto size = packaging::zstd_frame_content_size({packed->data(), packed->size()});
    if (size && *size <= max_length) {
      packaging::Decompressor dec;
      auto raw = dec.decompress({packed->data(), packed->size()}, static_cast<std::size_t>(*size),
                                path + ".zst");
      if (raw.ok()) return std::move(*raw);
    }
  } else if (!packed.error().IsNotFound() && packed.error().code() != Code::kCorruption) {
    return packed.error();  // the source is failing: no point asking it again
  }
  return source_.read_file(path, max_length);
}

std::optional<Bytes> MetadataOverlay::from_thin(const std::string& path, const std::string& sha,
                                                std::uint64_t max_length) {
  const auto bundle = packaging::bundle_of_targets_file(path);
  if (!bundle || !held_manifests_) return std::nullopt;
  const auto thin = from_update(packaging::thin_manifest_name(*bundle), max_length);
  if (!thin) return std::nullopt;
  const auto held = held_manifests_(*bundle);
  if (!held) return std::nullopt;
  const auto held_manifest = packaging::Manifest::parse(ByteView(*held));
  if (!held_manifest.ok()) return std::nullopt;
  const packaging::HeldVersion version{held_manifest->content_root,
                                       crypto::sha256(ByteView(*held))};
  // The patch from the held version, when carried: its BLAKE2b and path are left out.
  std::optional<crypto::Digest> patch;
  const auto carried_at = by_name_.find(packaging::thin_patch_name(*bundle));
  if (carried_at != by_name_.end()) {
    const auto bytes = from_update(carried_at->first, kMaxUpdateFileBytes);
    if (!bytes) return std::nullopt;
    patch = crypto::blake2b(ByteView(*bytes));
  }
  // Its new content root, when the release patch rebuilt its content.
  std::optional<crypto::Digest> root;
  if (auto r = derived_roots_.find(*bundle); r != derived_roots_.end()) root = r->second;
  auto filled = packaging::fill_thin_manifest(ByteView(*thin), version, patch, root);
  if (!filled || filled->size() > max_length ||
      crypto::hex(crypto::sha256(ByteView(*filled))) != sha) {
    return std::nullopt;
  }
  if (patch) {
    by_name_.emplace(entry_name(packaging::patch_object_path(*patch)), carried_at->second);
  }
  return filled;
}

std::optional<Bytes> MetadataOverlay::from_rootless(const std::string& path, const std::string& sha,
                                                    std::uint64_t max_length) {
  if (!library_) return std::nullopt;
  const auto bundle = packaging::bundle_of_targets_file(path);
  if (!bundle) return std::nullopt;
  const auto root = library_roots_.find(*bundle);
  if (root == library_roots_.end()) return std::nullopt;
  const auto rootless = from_update(packaging::library_manifest_name(*bundle), max_length);
  if (!rootless) return std::nullopt;
  auto filled = packaging::fill_rootless_manifest(ByteView(*rootless), root->second);
  if (!filled || filled->size() > max_length ||
      crypto::hex(crypto::sha256(ByteView(*filled))) != sha) {
    return std::nullopt;  // a damaged content or manifest: both come on their own
  }
  return filled;
}

// A patch is carried under a short name (packaging::carried_patch_name), anything else under
// its own.
std::string MetadataOverlay::entry_name(const std::string& path) {
  return packaging::carried_patch_name(path).value_or(path);
}

std::optional<Bytes> MetadataOverlay::carried(const std::string& path, std::uint64_t max_length) {
  if (!update_) return std::nullopt;
  if (auto d = derived_.find(path); d != derived_.end()) {
    if (d->second.size() > max_length) return std::nullopt;
    return d->second;
  }
  if (auto a = by_root_.find(path); a != by_root_.end()) return from_update(a->second, max_length);
  return from_update(entry_name(path), max_length);
}

bool MetadataOverlay::carries(const std::string& path) const {
  if (!update_) return false;
  return derived_.count(path) != 0 || by_root_.count(path) != 0 ||
         by_name_.count(entry_name(path)) != 0;
}

// The new timestamp is not verified yet: it is only read for the snapshot version it names,
// to pick the update file's name. Anything wrong here just means no update file.
void MetadataOverlay::load_update(ByteView timestamp_bytes) {
  update_.reset();
  auto env = crypto::tuf::parse_metadata(timestamp_bytes, "timestamp");
  if (!env.ok()) return;
  auto ts = crypto::tuf::Timestamp::from_signed(*env->find("signed"));
  if (!ts.ok() || ts->snapshot.version <= held_snapshot_) return;
  // A node holding nothing reads the release's library file (everything, content included).
  read_update(ts->snapshot.version, std::max<std::int64_t>(held_snapshot_, 0));
  // No update file for this gap: the library file's metadata in place of the raw snapshot
  // and roles, and the rest of it later if the node takes it (docs/sync.md, "A long
  // absence").
  if (!update_ && held_snapshot_ > 0) read_library_metadata(ts->snapshot.version);
}

bool MetadataOverlay::budget_allows(std::uint64_t bytes) const {
  if (!budget_left_) return true;
  const std::uint64_t left = budget_left_();
  return left == UINT64_MAX || (left > kUpdateHeaderBytes && left - kUpdateHeaderBytes >= bytes);
}

void MetadataOverlay::use(packaging::UpdateFile file, bool library) {
  update_ = std::move(file);
  library_ = library;
  by_name_.clear();
  groups_.clear();
  for (std::size_t i = 0; i < update_->entries.size(); ++i) {
    by_name_.emplace(update_->entries[i].name, i);
  }
  derive_contents();
  library_roots_.clear();
  by_root_.clear();
  if (library) name_library_contents();
}

// Once, when a library file is taken: the root of each content it carries by bundle
// (packaging::library_content_name), for the bundle's rootless manifest and for the planner,
// which asks for contents by root. A damaged content only gets a root no manifest signs.
void MetadataOverlay::name_library_contents() {
  const std::string prefix = packaging::library_content_name("");
  for (const packaging::UpdateEntry& e : update_->entries) {
    if (e.name.rfind(prefix, 0) != 0 || e.encoding != packaging::UpdateEncoding::kStored) continue;
    const crypto::Digest root = crypto::blake2b(ByteView(e.data));
    library_roots_.emplace(e.name.substr(prefix.size()), root);
    by_root_.emplace(packaging::content_entry_name(root), e.name);
  }
}

// Once, when the update file is taken: the planner asks which contents are carried before it
// chooses routes. Anything wrong (a damaged patch, a bundle held at another version than the
// publisher joined) only leaves contents out or names them by roots no manifest signs.
void MetadataOverlay::derive_contents() {
  derived_.clear();
  derived_roots_.clear();
  const auto found = by_name_.find(packaging::kReleasePatchName);
  if (found == by_name_.end() || !held_contents_) return;
  const packaging::UpdateEntry& entry = update_->entries[found->second];
  if (entry.encoding != packaging::UpdateEncoding::kStored) return;
  const std::vector<std::string> bundles = packaging::release_patch_bundles(*update_);
  auto contents = packaging::apply_release_patch(
      ByteView(entry.data), bundles.size(),
      [&](std::size_t part, std::uint64_t size) { return held_contents_(bundles[part], size); });
  if (!contents.ok()) return;
  for (std::size_t i = 0; i < bundles.size(); ++i) {
    const crypto::Digest root = crypto::blake2b(ByteView((*contents)[i]));
    derived_roots_.emplace(bundles[i], root);
    derived_.emplace(packaging::content_entry_name(root), std::move((*contents)[i]));
  }
}

void MetadataOverlay::read_library_metadata(std::int64_t version) {
  const std::string path = packaging::update_file_path(version, 0);
  const std::uint64_t want = packaging::kLibraryHeadBytes + metadata_guess_;
  if (!budget_allows(want)) return;
  auto got = source_.read_prefix(path, want, kMaxLibraryFileBytes);
  if (!got.ok()) return;  // no library file (or an older one without a head)
  const auto head = packaging::parse_library_head({got->bytes.data(), got->bytes.size()});
  if (!head || head->file_bytes != got->size) return;
  const std::uint64_t meta_end = packaging::kLibraryHeadBytes + head->metadata_frame_bytes;
  Bytes bytes = std::move(got->bytes);
  if (bytes.size() < meta_end) {  // the metadata grew past the guess: the rest of its frame
    if (!budget_allows(meta_end - bytes.size())) return;
    auto more = source_.read_ranges(path, {{bytes.size(), meta_end - bytes.size()}});
    if (!more.ok() || more->size() != 1) return;
    bytes.insert(bytes.end(), more->front().begin(), more->front().end());
  }
  const ByteView frame =
      ByteView(bytes).subspan(packaging::kLibraryHeadBytes, head->metadata_frame_bytes);
  auto frames = packaging::library_frames(frame, kMaxLibraryRawBytes);
  if (!frames.ok() || frames->size() != 1) return;
  packaging::Decompressor dec;
  auto raw = dec.decompress(frames->front().frame,
                            static_cast<std::size_t>(frames->front().raw_size), path);
  if (!raw.ok()) return;
  auto parsed = packaging::parse_update_file_head({raw->data(), raw->size()}, kMaxUpdateEntries);
  if (!parsed.ok()) return;
  use(std::move(*parsed), false);
  library_start_ = LibraryStart{version, std::move(bytes), head->file_bytes};
}

void MetadataOverlay::load_library(std::int64_t snapshot_version) {
  if (!library_start_ || library_start_->version != snapshot_version) {
    read_update(snapshot_version, 0);
    return;
  }
  LibraryStart start = std::move(*library_start_);
  library_start_.reset();
  if (start.bytes.size() < start.size) {
    const std::uint64_t rest = start.size - start.bytes.size();
    if (!budget_allows(rest)) return;
    auto more = source_.read_ranges(packaging::update_file_path(snapshot_version, 0),
                                    {{start.bytes.size(), rest}});
    if (!more.ok() || more->size() != 1) return;
    start.bytes.insert(start.bytes.end(), more->front().begin(), more->front().end());
  }
  auto parsed = packaging::parse_library_file({start.bytes.data(), start.bytes.size()},
                                              kMaxLibraryRawBytes, kMaxUpdateEntries);
  if (parsed.ok()) use(std::move(*parsed), true);
}

void MetadataOverlay::read_update(std::int64_t to, std::int64_t from) {
  std::string path = packaging::update_file_path(to, from);
  std::uint64_t max_length = from == 0 ? kMaxLibraryFileBytes : kMaxUpdateFileBytes;
  if (budget_left_) {
    // Room for the request and response headers; a file that does not fit ends at its
    // headers (too long), so it costs about one request.
    const std::uint64_t left = budget_left_();
    if (left != UINT64_MAX) {
      max_length = std::min(max_length, left > kUpdateHeaderBytes ? left - kUpdateHeaderBytes : 0);
      if (max_length == 0) return;
    }
  }
  auto bytes = source_.read_file(path, max_length);
  if (!bytes.ok()) return;  // none written for this pair: fetch file by file
  auto parsed =
      from == 0 ? packaging::parse_library_file({bytes->data(), bytes->size()}, kMaxLibraryRawBytes,
                                                kMaxUpdateEntries)
                : packaging::parse_update_file({bytes->data(), bytes->size()}, kMaxUpdateEntries);
  if (!parsed.ok()) return;
  use(std::move(*parsed), from == 0);
}

// A group's frame is decompressed once, for the first of its files asked for.
std::optional<Bytes> MetadataOverlay::from_group(std::size_t at, std::uint64_t max_length) {
  if (update_->entries[at].result_length > max_length) return std::nullopt;
  auto cached = std::find_if(groups_.begin(), groups_.end(), [&](const packaging::UpdateGroup& g) {
    return at >= g.first && at < g.first + g.files.size();
  });
  if (cached == groups_.end()) {
    packaging::Decompressor dec;
    auto group = packaging::rebuild_group(*update_, at, kMaxUpdateFileBytes, dec);
    if (!group.ok()) return std::nullopt;
    groups_.push_back(std::move(*group));
    cached = std::prev(groups_.end());
  }
  return cached->files[at - cached->first];
}

std::optional<Bytes> MetadataOverlay::from_update(const std::string& name,
                                                  std::uint64_t max_length) {
  auto found = by_name_.find(name);
  if (found != by_name_.end() && packaging::in_group(*update_, found->second)) {
    return from_group(found->second, max_length);
  }
  if (found != by_name_.end()) {
    const packaging::UpdateEntry& entry = update_->entries[found->second];
    Bytes base;
    if (entry.encoding == packaging::UpdateEncoding::kZstdDelta) {
      auto held = bases_(entry);
      if (!held) return std::nullopt;
      base = std::move(*held);
    }
    auto rebuilt = packaging::rebuild_entry(entry, {base.data(), base.size()}, max_length);
    if (!rebuilt.ok()) return std::nullopt;
    return std::move(*rebuilt);
  }
  return std::nullopt;
}

}  // namespace outpost::node
