// The manifest of one bundle version (docs/format-repository.md, "Manifest"): canonical JSON,
// a TUF target ("<bundle>/manifest.json"), carrying the file table by column, the content
// root and where the chunk index lives. Also the naming rules for bundles and file paths.
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

namespace outpost::packaging {

inline constexpr std::int64_t kManifestFormat = 1;
inline constexpr const char* kManifestType = "outpost/manifest";
// Hard limits applied by Manifest::parse (before anything else looks at the bytes).
inline constexpr std::size_t kMaxManifestBytes = 16u << 20;
inline constexpr std::size_t kMaxBundleFiles = 1u << 20;
inline constexpr std::uint64_t kMaxIndexBytes = 256u << 20;

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

  // Canonical JSON bytes (what is published and hashed into targets metadata). Assumes a
  // valid manifest (as parse() returns, or as the publisher builds it).
  Bytes encode() const;

  // Parses and fully validates a manifest. Every error is kCorruption naming the bundle (when
  // known) and the field: "manifest of un/ga/X: files.path[3]: '..' segment not allowed".
  // Checks: size limit, JSON limits, "_type", "format" == 1, no unknown fields, every field's
  // type, bundle name, kind, published time, chunking params, content root hex, columns of
  // equal length == content.files, valid and strictly increasing paths, modes 0644/0755,
  // sizes summing to content.size without overflow, media types, index path matching its hash.
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

// "<bundle>/manifest.json"
std::string manifest_target_path(std::string_view bundle);
// "objects/<first two hex digits>/<hex>.index"
std::string index_object_path(const crypto::Digest& blake2b);

}  // namespace outpost::packaging
