// Release patches (docs/format-repository.md, "Release patches"): in an update file M -> N,
// one patch from the contents of every changed bundle at M, joined, to their contents at N,
// joined, in place of a patch per bundle. A release changes many small files in the same
// way (a browser version added to each of caniuse-lite's 584 feature files): one patch
// finds the edit once and copies it for the rest, where a patch per bundle codes it in each.
//
// The entry (named kReleasePatchName, stored as it is) holds:
//   magic "OPRP", varint part_count, per part: varint old_size, varint new_size,
//   then one patch (delta.h) from the old contents joined to the new contents joined.
// Part i is the bundle of the update file's i-th manifest entry (release_patch_bundles).
//
// Nothing in it is trusted: the node names each content it rebuilds by its own content root
// (content_entry_name), and a bundle takes one only when that root is the one its verified
// manifest signs. A wrong patch, or a node holding another version of a bundle than the one
// the publisher joined, costs that bundle its own route, never a wrong byte.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/packaging/update_file.h"

namespace outpost::packaging {

inline constexpr char kReleasePatchName[] = "release-patch";
inline constexpr char kReleasePatchMagic[4] = {'O', 'P', 'R', 'P'};
// The old and new contents of all the parts together, at most: what a node holds in memory
// to apply a release patch, and what the publisher encodes again for each rung of the update
// ladder at every release (a release patch pays for itself among many small bundles; large
// ones have patches of their own).
inline constexpr std::uint64_t kMaxReleasePatchContent = 8ull << 20;

// The bundles a release patch in `file` covers, in part order: those of its manifest entries
// ("manifest/<bundle>" and "thin-manifest/<bundle>"), in table order.
std::vector<std::string> release_patch_bundles(const UpdateFile& file);

struct ReleasePart {
  ByteView old_content;  // empty for a bundle new at N
  ByteView new_content;
};
// The entry's data, its patch made by the suffix engine at `level` (which keeps zstd's coding
// where that is smaller). kInvalidArgument when the
// contents are more than kMaxReleasePatchContent; kInternal when zstd fails.
Result<Bytes> encode_release_patch(const std::vector<ReleasePart>& parts, int level);

// The node's copy of part i's old content (its held version of that bundle), which the patch
// says is `size` bytes; nullopt when it holds none of that size.
using ReleaseOldContent = std::function<std::optional<Bytes>(std::size_t part, std::uint64_t size)>;
// The new contents, in part order. A held content whose size is not the one the patch names
// is replaced by as many zero bytes: the parts that copy from it come out wrong (and fail
// their content root), the others right. kCorruption when the header is malformed, names
// other than `parts` parts or more than kMaxReleasePatchContent bytes, or the patch does not
// rebuild exactly the sizes it names.
Result<std::vector<Bytes>> apply_release_patch(ByteView data, std::size_t parts,
                                               const ReleaseOldContent& old_content);

}  // namespace outpost::packaging
