// The metadata a node fetches during one sync, from a source and, when the publisher wrote
// one, from a metadata update file (packaging/update_file.h): after a changed timestamp, one
// request for "metadata/updates/N.from-M.upd" replaces the requests for the snapshot, the
// targets metadata, the changed delegated roles and the changed manifests, and tells which
// root versions exist (so the root probe needs no request).
//
// Nothing here is trusted: the TUF updater verifies every file it is handed exactly as if it
// had been fetched alone, and manifests are checked against their signed hashes by the
// caller. An update file that is missing, damaged, or built against bases the node does not
// hold only costs the fallback requests.
// Thread-safety: one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/crypto/tuf.h"
#include "outpost/packaging/update_file.h"
#include "outpost/sync/source.h"

namespace outpost::node {

using sync::Source;

class MetadataOverlay : public crypto::tuf::MetadataSource {
 public:
  // The bytes of the file the node holds that an update entry (encoding 1) names as its base
  // (packaging::base_matches); nullopt when not held.
  using BaseLookup = std::function<std::optional<Bytes>(const packaging::UpdateEntry& entry)>;
  // The manifest of the version of a bundle the node holds, by bundle name; nullopt when none.
  // A thin manifest (packaging::thin_manifest) is filled in from it.
  using HeldManifest = std::function<std::optional<Bytes>(const std::string& bundle)>;
  // The content stream of the version of a bundle the node holds, when it is `size` bytes;
  // nullopt otherwise. A release patch (packaging/release_patch.h) starts from these.
  using HeldContent =
      std::function<std::optional<Bytes>(const std::string& bundle, std::uint64_t size)>;

  // held_snapshot: the version of the snapshot the node trusts (0: none). held_timestamp_etag:
  // the validator of the trusted timestamp on this source ("" when unknown), used for a
  // conditional request when `source` is HTTP.
  MetadataOverlay(Source& source, std::int64_t held_snapshot, BaseLookup bases,
                  HeldManifest held_manifests, HeldContent held_contents,
                  std::string held_timestamp_etag);

  Result<Bytes> fetch(const std::string& filename, std::uint64_t max_length) override;
  Result<std::optional<Bytes>> fetch_if_changed(const std::string& filename,
                                                std::uint64_t max_length, ByteView held) override;

  // A repository file (a manifest): from the update file when it carries it, else the source.
  Result<Bytes> read_file(const std::string& path, std::uint64_t max_length);
  // A manifest: from the update file when its SHA-256 is the one `path` names (a thin one
  // filled in first, its patch then carried under its own name too), else its
  // zstd-compressed copy "<path>.zst" that the publisher writes beside it (a manifest's file
  // table compresses about tenfold), else the file itself. At most max_length bytes either
  // way; the caller checks the signed hash.
  Result<Bytes> read_manifest(const std::string& path, std::uint64_t max_length);

  // A content object (a patch, docs/format-repository.md "Patches carried in update files";
  // a whole content stream "content/<root>", carried by a library file, by its root or by its
  // bundle, or rebuilt from the update file's release patch) the update file carries, rebuilt
  // and checked against the entry's length (the caller checks the signed length and BLAKE2b,
  // or content root); nullopt when not carried or damaged.
  std::optional<Bytes> carried(const std::string& path, std::uint64_t max_length);
  // Whether the update file has an entry named `path` (nothing is rebuilt).
  bool carries(const std::string& path) const;

  // The timestamp's validator after this sync ("" when the source has none).
  std::string timestamp_etag() const;
  // Whether an update file was used, and its size on the wire (for reports and tests).
  bool used_update_file() const { return update_.has_value(); }
  // Root files ("N.root.json") fetched during this sync, by version: unverified here; the
  // caller keeps those at or below the root the updater ended up trusting (each one was
  // then checked in the chain).
  const std::map<std::int64_t, Bytes>& roots_fetched() const { return roots_; }
  // Whether the update file in use is a library file (N.from-0.upd).
  bool used_library_file() const { return update_.has_value() && library_; }
  // Reads the library file of snapshot `snapshot_version` (docs/format-repository.md,
  // "Library files") in place of any update file; nothing changes when it is missing or
  // damaged (the node then fetches file by file). After read_library_metadata() of the same
  // version only the rest of the file is read.
  void load_library(std::int64_t snapshot_version);
  // Whether the update file in use is only the metadata of a library file: a node with no
  // update file for its gap (away longer than the update ladder) reads the library file's
  // head and metadata frame, the snapshot and every role, in place of those files; the
  // caller then decides whether to read the rest (load_library) or fetch bundle by bundle.
  bool used_library_metadata() const { return update_.has_value() && library_start_ && !library_; }
  // Bytes of metadata the node holds (its snapshot and roles): about what the library's
  // compressed metadata frame takes, read with the head in one request.
  void set_metadata_guess(std::uint64_t bytes) { metadata_guess_ = bytes; }
  // What the sync may still spend on the wire (the data budget; nullptr or UINT64_MAX: no
  // limit). An update or library file larger than what is left is not read (its headers tell
  // its length): the node fetches file by file then, each bundle by its own route in the
  // plan's order (docs/sync.md, "Priorities").
  void set_budget(std::function<std::uint64_t()> left) { budget_left_ = std::move(left); }

 private:
  static std::string entry_name(const std::string& path);
  // A file of a group of entries (packaging::rebuild_group); nullopt when not rebuildable.
  std::optional<Bytes> from_group(std::size_t at, std::uint64_t max_length);
  // Looks the file up in the update file; nullopt when absent or not rebuildable.
  std::optional<Bytes> from_update(const std::string& name, std::uint64_t max_length);
  // The thin manifest of the bundle of manifest `path`, filled in; nullopt when there is
  // none or it does not fill in to the SHA-256 `sha` (hex).
  std::optional<Bytes> from_thin(const std::string& path, const std::string& sha,
                                 std::uint64_t max_length);
  // The rootless manifest (packaging::rootless_manifest) of the bundle of manifest `path` in
  // a library file, its root filled in from the content carried beside it; nullopt when there
  // is none or it does not fill in to the SHA-256 `sha` (hex).
  std::optional<Bytes> from_rootless(const std::string& path, const std::string& sha,
                                     std::uint64_t max_length);
  void load_update(ByteView timestamp_bytes);
  void read_update(std::int64_t to, std::int64_t from);
  void read_library_metadata(std::int64_t version);
  // Whether `bytes` more (plus a request's headers) fit in the data budget.
  bool budget_allows(std::uint64_t bytes) const;
  void use(packaging::UpdateFile file, bool library);
  // Applies the update file's release patch, if any, to the contents the node holds.
  void derive_contents();
  // Computes the roots of the contents a library file carries by bundle.
  void name_library_contents();

  Source& source_;
  std::int64_t held_snapshot_;
  BaseLookup bases_;
  HeldManifest held_manifests_;
  HeldContent held_contents_;
  std::optional<packaging::UpdateFile> update_;
  std::map<std::int64_t, Bytes> roots_;
  bool library_ = false;
  // The start of the library file read by read_library_metadata, and the file's size.
  struct LibraryStart {
    std::int64_t version = 0;
    Bytes bytes;
    std::uint64_t size = 0;
  };
  std::optional<LibraryStart> library_start_;
  std::uint64_t metadata_guess_ = 0;
  std::function<std::uint64_t()> budget_left_;
  std::map<std::string, std::size_t> by_name_;  // entries of update_ by name
  std::vector<packaging::UpdateGroup> groups_;  // groups of update_ rebuilt so far
  // Contents rebuilt from the release patch, each named by its own content root
  // (packaging::content_entry_name): a bundle takes one only when it is its signed root.
  std::map<std::string, Bytes> derived_;
  // The root of each bundle's rebuilt content, for its thin manifest (which leaves it out).
  std::map<std::string, crypto::Digest> derived_roots_;
  // A library file's contents carried by bundle (packaging::library_content_name): each
  // one's BLAKE2b (the root its rootless manifest leaves out), by bundle, and its entry name
  // by packaging::content_entry_name of that root.
  std::map<std::string, crypto::Digest> library_roots_;
  std::map<std::string, std::string> by_root_;
};

}  // namespace outpost::node
