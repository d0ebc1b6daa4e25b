// The library file of a release (docs/format-repository.md, "Library files"):
// metadata/updates/N.from-0.upd, everything a node holding nothing needs to reach snapshot N
// in one request after the timestamp: the snapshot, targets metadata and every delegated
// role, every bundle's current manifest and its whole content stream, stored as they are in
// one update file and compressed as a whole (zstd level 19, long-distance matching), so that
// the bundles compress against each other as a tar would.
// Internal to the publisher; one thread.
#pragma once

#include <cstdint>

#include "outpost/base/fs.h"
#include "outpost/base/status.h"
#include "outpost/packaging/repository.h"

namespace outpost::packaging::repo_detail {

// Not written when the content streams add up to more than this: a node holds the whole
// file in memory while it reads it.
inline constexpr std::uint64_t kLibraryMaxRaw = 64u << 20;
// What a node accepts: compressed and raw bytes of a library file.
inline constexpr std::uint64_t kLibraryMaxFileBytes = 64u << 20;
inline constexpr std::uint64_t kLibraryMaxRawBytes = 96u << 20;

struct LibraryWritten {
  bool written = false;    // false: the library is too large
  std::size_t frames = 0;  // zstd frames: the metadata, then one per group of bundles
  std::size_t copied = 0;  // frames copied from the previous library file, not compressed
};
// Writes the library file of snapshot st.snapshot.version (whose snapshot and roles are
// written); new frames are compressed at zstd `level`.
Result<LibraryWritten> write_library_file(const std::string& repo, const RepositoryState& st,
                                          int level, FileSystem& fs);

}  // namespace outpost::packaging::repo_detail
