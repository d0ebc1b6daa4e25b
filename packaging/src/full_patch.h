// The patch from 0 of a version (docs/format-delta.md): its content stream compressed at a
// high level, in segments. The costliest step of a publication; this file makes it cost what
// changed, not the size of the bundle.
#pragma once

#include <cstdint>
#include <string>

#include "outpost/base/fs.h"
#include "outpost/base/status.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/chunker.h"
#include "stream_file.h"

namespace outpost::packaging::publish_detail {

struct FullPatch {
  crypto::Digest blake2b{};  // of the patch file, stored as patch_object_path(blake2b)
  std::uint64_t length = 0;  // bytes of the patch file
  std::uint64_t segments = 0;
  std::uint64_t reused = 0;  // segments copied from `previous` instead of compressed
};

// Writes the patch from 0 of `stream` into the repository's objects/ (temp file, fsync,
// rename, mode 0644) with bounded memory: one segment in, one out, one zstd context.
//
// Segments are cut where the content says (content-defined, 3/8 of `max_segment` to all of
// it, the chunker's rule over the stream), so an edit or an insertion changes only the segments
// around it. Each segment of `previous` (an earlier patch from 0 of the same bundle,
// repository-relative; empty for none) that decompresses to exactly the bytes of a new segment is
// copied instead of compressed again. A previous patch that is missing, damaged or made by another
// rule only costs the reuse, never the result. `level`: zstd's, 1 to 22.
Result<FullPatch> write_full_patch(const std::string& repo, StreamFile& stream,
                                   const std::string& previous, std::uint32_t max_segment,
                                   int level, FileSystem& fs);

// The cut rule for segments of at most `max_segment` bytes; kInvalidArgument outside
// 64 KiB to 8 MiB.
Result<ChunkerParams> full_patch_cuts(std::uint32_t max_segment);

}  // namespace outpost::packaging::publish_detail
