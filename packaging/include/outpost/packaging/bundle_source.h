// A publisher's source folder for one bundle: DIR/bundle.json (optional) and the files.
//
// bundle.json (see samples/*/bundle.json) names the bundle ("name"), its kind ("kind":
// resolution, indicator or generic) and carries the metadata that goes into the manifest's
// "meta" (everything except "name", "kind" and "files"). "files", when present, maps roles to
// paths (e.g. {"en": "A-RES-75-202.en.md"}); each must be a file of the folder.
// bundle.json is itself published as a file of the bundle: it is content people read.
//
// The walk lists regular files only, recursively, sorted bytewise by their relative path
// (the manifest's table order). Hidden files are included (what is in the folder is
// published). A symbolic link, device, FIFO or socket is refused (kInvalidArgument naming
// it), as is any path that validate_file_path() rejects. Only names and sizes are read here;
// file contents are streamed later by the publisher.
//
// Thread-safety: pure function over the file system.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "outpost/base/json.h"
#include "outpost/base/status.h"

namespace outpost::packaging {

inline constexpr const char* kBundleJson = "bundle.json";
inline constexpr std::size_t kMaxBundleJsonBytes = 1u << 20;

struct SourceFile {
  std::string path;           // relative, '/'-separated, valid per validate_file_path()
  std::uint64_t size = 0;     // at the time of the walk
  std::uint32_t mode = 0644;  // 0755 when any execute bit is set, else 0644
};

struct BundleSource {
  std::string dir;   // the folder as given
  std::string name;  // bundle name (valid)
  std::string kind;  // resolution | indicator | generic
  Json meta = Json::object();
  std::vector<SourceFile> files;  // bytewise order of path
  std::uint64_t total_size = 0;

  // DIR/<file.path>
  std::string full_path(const SourceFile& file) const;
};

// What the command line may set over bundle.json (--bundle, --kind, --title): an override
// wins over the file's value.
struct BundleOverrides {
  std::optional<std::string> name = std::nullopt;
  std::optional<std::string> kind = std::nullopt;
  std::optional<std::string> title = std::nullopt;  // sets meta["title"]
};

// Reads a source folder. Errors:
//  kNotFound: DIR missing;
//  kInvalidArgument: no name (no bundle.json "name" and no override), invalid name or kind,
//    bundle.json not a JSON object or with a non-string name/kind/title, a "files" entry that
//    is not a file of the folder, a symlink or special file, an invalid path, more than
//    kMaxBundleFiles files;
//  kCorruption: bundle.json is not valid JSON (the message has the byte offset);
//  I/O errors per errno. Without bundle.json the kind is "generic".
Result<BundleSource> read_bundle_dir(const std::string& dir, const BundleOverrides& overrides = {});

}  // namespace outpost::packaging
