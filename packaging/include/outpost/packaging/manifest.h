// The manifest of one bundle version (docs/format-repository.md, "Manifest"): canonical JSON,
// a TUF target ("<bundle>/manifest.json"), carrying the file table by column, the content
// root, where the chunk index lives and the patches that lead to this version. Also the naming
// rules for bundles and file paths.
//
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/json.h"
#include "outpost/base/status.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/chunker.h"
#include "outpost/packaging/delta.h"
#include "outpost/packaging/layout.h"

namespace outpost::packaging {

// Format 2 added "patches" (format 1 is no longer read or written).
inline constexpr std::int64_t kManifestFormat = 2;
inline constexpr const char* kManifestType = "outpost/manifest";
// Hard limits applied by Manifest::parse (before anything else looks at the bytes).
inline constexpr std::size_t kMaxManifestBytes = 16u << 20;
inline constexpr std::size_t kMaxBundleFiles = 1u << 20;
inline constexpr std::uint64_t kMaxIndexBytes = 256u << 20;
inline constexpr std::size_t kMaxManifestPatches = 64;

// File modes a bundle may carry.
inline constexpr std::uint32_t kModeRegular = 0644;
inline constexpr std::uint32_t kModeExecutable = 0755;

struct FileEntry {
  std::string path;                   // valid per validate_file_path()
  std::uint64_t size = 0;             // bytes
  std::uint32_t mode = kModeRegular;  // 0644 or 0755
  std::string type;                   // media type, e.g. "text/markdown"

  friend bool operator==(const FileEntry&, const FileEntry&) = default;
};

// Where the chunk index of this version lives, and its length and hash (so the index is
// covered by the publisher's signature over the manifest).
struct IndexRef {
  std::string path;  // "objects/<hh>/<blake2b hex>.index" (index_object_path(blake2b))
  std::uint64_t length = 0;
  crypto::Digest blake2b{};

  friend bool operator==(const IndexRef&, const IndexRef&) = default;
};

// A patch to this version's content stream (content.h) from version `from`'s (0: from the
// empty stream, i.e. the whole content compressed). Applied with apply_delta (delta.h); the
// result is `content_stream_size(manifest)` bytes whose BLAKE2b-256 is the content root.
struct PatchRef {
  std::int64_t from = 0;           // 0 <= from < version; unique in a manifest
  crypto::Digest from_root{};      // content root of version `from`; all zero for from 0
  crypto::Digest from_manifest{};  // SHA-256 of version `from`'s manifest file; zero for 0
  DeltaEngine engine = DeltaEngine::kSuffix;  // "zstd" (always for from 0) or "sa"
  std::string path;          // "objects/<hh>/<blake2b hex>.patch" (patch_object_path(blake2b))
  std::uint64_t length = 0;  // 1 .. patch_length_limit(content stream size)
  crypto::Digest blake2b{};  // of the patch file

  friend bool operator==(const PatchRef&, const PatchRef&) = default;
};

struct Manifest {
  std::string bundle;            // valid per validate_bundle_name()
  std::int64_t version = 1;      // >= 1, increases by one per published version
  std::string kind = "generic";  // "resolution", "indicator" or "generic"
  Json meta = Json::object();    // bundle.json minus name, kind, files; always an object
  std::int64_t published = 0;    // seconds since the epoch; written as "YYYY-MM-DDTHH:MM:SSZ"
  ChunkerParams chunking;
  crypto::Digest content_root{};   // ContentHasher over the files in table order
  std::uint64_t content_size = 0;  // sum of files[i].size
  std::vector<FileEntry> files;    // bytewise increasing paths
  IndexRef index;
  std::vector<PatchRef> patches;  // sorted by `from`, strictly increasing

  // Canonical JSON bytes (what is published and hashed into targets metadata). Assumes a
  // valid manifest (as parse() returns, or as the publisher builds it).
  Bytes encode() const;

  // Parses and fully validates a manifest. Every error is kCorruption naming the bundle (when
  // known) and the field: "manifest of un/ga/X: files.path[3]: '..' segment not allowed".
  // Checks: size limit, JSON limits, "_type", "format" == 2, no unknown fields, every field's
  // type, bundle name, kind, published time, chunking params, content root hex, columns of
  // equal length == content.files, valid and strictly increasing paths, modes 0644/0755,
  // sizes summing to content.size without overflow, media types, index path matching its hash,
  // patches: at most kMaxManifestPatches, "from" in [0, version) strictly increasing,
  // from_root/from_manifest present exactly when from > 0, engine "zstd" or "sa" ("zstd" for
  // from 0), path matching its hash, length in [1, patch_length_limit(stream size)].
  static Result<Manifest> parse(ByteView bytes);

  // The TUF target path of this bundle's manifest: "<bundle>/manifest.json".
  std::string target_path() const;

  friend bool operator==(const Manifest&, const Manifest&) = default;
};

// Bundle name: 2 to 6 segments joined by '/', each 1-64 characters of A-Z a-z 0-9 . _ -,
// not "." or "..". kInvalidArgument with a message saying which rule failed.
Status validate_bundle_name(std::string_view name);
// A prefix for delegation: 1 to 6 segments under the same segment rules.
Status validate_bundle_prefix(std::string_view prefix);
// File path inside a bundle: relative, '/'-separated, valid UTF-8, 1-1024 bytes, no empty,
// "." or ".." segment, no leading '/', no backslash, no NUL or other control character
// (C0, DEL, C1). kInvalidArgument.
Status validate_file_path(std::string_view path);
// "resolution", "indicator" or "generic"; kInvalidArgument otherwise.
Status validate_kind(std::string_view kind);

// Media type by file extension (case-insensitive), "application/octet-stream" when unknown.
// Text types carry no charset parameter (bundle text is UTF-8 by convention).
std::string media_type_for(std::string_view path);

// Repository paths (manifest_target_path, index_object_path, patch_object_path): layout.h.
// Largest patch a manifest may declare for a content stream of `stream_size` bytes:
// stream_size + stream_size / 64 + 64 KiB (above what zstd produces for incompressible data;
// the publisher drops patches larger than the from-0 one, which a node would never choose).
std::uint64_t patch_length_limit(std::uint64_t stream_size);
// "zstd" / "sa"; and back (false for any other name).
const char* delta_engine_name(DeltaEngine engine);
bool parse_delta_engine(std::string_view name, DeltaEngine& out);

}  // namespace outpost::packaging
