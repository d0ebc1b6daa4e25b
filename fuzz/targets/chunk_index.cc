// Chunk indexes (packaging/chunk_index.h): ChunkIndex::parse, which a node runs on an index
// whose hash the manifest declared, and on indexes inside USB packs. Properties: a rejection is
// kCorruption with a message; the binary form has one encoding, so an accepted index encodes
// back to exactly the input bytes.
#include "outpost/packaging/chunk_index.h"

#include <algorithm>

#include "fuzz/fuzz.h"
#include "outpost/base/bytes.h"

OUTPOST_FUZZ_TARGET(chunk_index) {
  namespace pk = outpost::packaging;
  const outpost::ByteView input(data, size);
  // 16 MiB: the largest chunk a manifest may declare (ChunkerParams::validate).
  outpost::Result<pk::ChunkIndex> parsed = pk::ChunkIndex::parse(input, 16u << 20);
  if (!parsed.ok()) {
    FUZZ_CHECK(outpost::fuzz::clear_rejection(parsed.error(), outpost::Code::kCorruption));
    return 0;
  }
  const outpost::Bytes encoded = parsed.value().encode();
  FUZZ_CHECK(encoded.size() == size);
  FUZZ_CHECK(std::equal(encoded.begin(), encoded.end(), input.begin()));
  return 0;
}
