// The path scheme of a repository (docs/format-repository.md, "Layout"): every name a
// repository file has, relative to the repository's root, built here and nowhere else. The
// publisher writes these paths and a node asks a mirror for the same ones.
//
//   outpost-repository.json                       unsigned description (chunking, ladders)
//   metadata/root.json, metadata/N.root.json      TUF root, current and every version
//   metadata/timestamp.json                       the one file rewritten in place
//   metadata/N.snapshot.json, N.targets.json, N.<role>.json
//   metadata/updates/N.from-M.upd                 metadata update files
//   targets/<bundle>/<sha256>.manifest.json[.zst] manifests (TUF target "<bundle>/manifest.json")
//   targets/<bundle>/.history.json                the publisher's version -> manifest index
//   objects/<hh>/<blake2b>.index | .patch         chunk indexes and patches
//   packs/<blake2b>.pack                          packs of chunks
//
// Everything under the root is public: a web server serves it as static files, so the
// publisher writes files 0644 and folders 0755 whatever its umask. No key is ever written here.
// Pure functions of their arguments; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "outpost/crypto/hash.h"

namespace outpost::packaging {

inline constexpr std::string_view kRepositoryJson = "outpost-repository.json";
inline constexpr std::string_view kMetadataDir = "metadata";
inline constexpr std::string_view kUpdatesDir = "metadata/updates";
inline constexpr std::string_view kTargetsDir = "targets";
inline constexpr std::string_view kObjectsDir = "objects";
inline constexpr std::string_view kPacksDir = "packs";
// The publisher's saved chunk catalog (unsigned, never read by nodes; may be deleted).
inline constexpr std::string_view kCatalogPath = "objects/.chunk-catalog";
// The folders `repo init` creates.
inline constexpr std::string_view kRepositoryDirs[] = {kMetadataDir, kUpdatesDir, kTargetsDir,
                                                       kObjectsDir, kPacksDir};
// Modes of everything in the published tree.
inline constexpr unsigned kPublishedFileMode = 0644;
inline constexpr unsigned kPublishedDirMode = 0755;

// "N.<role>.json": a role's metadata file name at a version (consistent snapshots).
std::string versioned_metadata_name(std::int64_t version, std::string_view role);
// "metadata/<name>" for a metadata file name ("timestamp.json", "3.snapshot.json").
std::string metadata_path(std::string_view name);

// "N.from-M.upd" (the file name under metadata/updates/), and its repository path.
std::string update_file_name(std::int64_t to_snapshot, std::int64_t from_snapshot);
std::string update_file_path(std::int64_t to_snapshot, std::int64_t from_snapshot);

// "<bundle>/manifest.json": the TUF target path of a bundle's manifest.
std::string manifest_target_path(std::string_view bundle);
// The bundle a target path names ("un/ga/X/manifest.json" -> "un/ga/X"); nullopt for a target
// path that is not a manifest's.
std::optional<std::string> bundle_of_target(std::string_view target_path);
// "targets/<bundle>/<sha256 hex>.manifest.json": where a manifest with that SHA-256 lives.
std::string manifest_file_path(std::string_view bundle, std::string_view sha256_hex);
// The same with ".zst": the manifest zstd-compressed.
std::string compressed_manifest_file_path(std::string_view bundle, std::string_view sha256_hex);
// "targets/<bundle>/": the folder of a bundle's manifests.
std::string bundle_manifest_dir(std::string_view bundle);
// The bundle whose folder holds a file under targets/ ("targets/un/ga/X/<sha>.manifest.json"
// -> "un/ga/X"); nullopt for a path outside a bundle's folder.
std::optional<std::string> bundle_of_targets_file(std::string_view path);
// True for a file name in bundle_manifest_dir() that is a manifest ("<64 hex>.manifest.json").
bool is_manifest_file_name(std::string_view name);
// "targets/<bundle>/.history.json". The leading '.' keeps it apart from any bundle whose name
// continues this one's: no bundle name segment starts with '.'.
std::string history_file_path(std::string_view bundle);

// "objects/<first two hex digits>/<hex>.index"
std::string index_object_path(const crypto::Digest& blake2b);
// "objects/<first two hex digits>/<hex>.patch"
std::string patch_object_path(const crypto::Digest& blake2b);
// "content/<root hex>": a bundle version's whole content stream by its root, the name a node
// asks for a carried content by: library files (metadata/updates/N.from-0.upd) written before
// 2026-12-05 name their contents so, and a node names so the contents it computes the roots
// of (library_content_name) or rebuilds from a release patch. No file of the tree has this
// path.
std::string content_entry_name(const crypto::Digest& content_root);
// "content-of/<bundle>": the name of a bundle's whole content stream inside a library file
// since the manifests there are rootless (update_file.h, rootless_manifest): named by its
// bundle, which compresses, not by its root, which does not and which the node computes.
// A node reads both names.
std::string library_content_name(std::string_view bundle);
// "manifest/<bundle>": the name of a bundle's current manifest inside a library file. Not its
// repository path, whose SHA-256 the roles in the file's first frame already say: 32 bytes
// that compress only within one frame (825 bundles: 26 KB, 7 % of the file).
std::string library_manifest_name(std::string_view bundle);
// "manifest/<bundle>" also names a bundle's new manifest in an update file (N.from-M.upd).
// "thin-manifest/<bundle>": a changed bundle's manifest in an update file M -> N with what a
// node holding the bundle's version at M already knows left out (update_file.h,
// thin_manifest); "thin-patch/<bundle>": the patch from that version, whose BLAKE2b the node
// computes to fill in that manifest.
std::string thin_manifest_name(std::string_view bundle);
std::string thin_patch_name(std::string_view bundle);
// "patch/<first 16 hex digits>": the name of a patch an update file carries, for its path
// "objects/<hh>/<hex>.patch" (the node checks the whole BLAKE2b its manifest signs: 8 bytes
// tell apart the patches of one file); nullopt for any other path.
std::optional<std::string> carried_patch_name(std::string_view patch_path);
// "packs/<hex id>.pack" (defined with the pack format, packaging/src/pack.cc).
std::string pack_object_path(const crypto::Digest& pack_id);

}  // namespace outpost::packaging
