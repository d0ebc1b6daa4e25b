// Bundle manifests (packaging/manifest.h): Manifest::parse, which a node runs on a target's
// bytes after checking their hash against signed metadata, and on every manifest in a USB
// pack. Properties: a rejection is kCorruption with a message; an accepted manifest encodes
// to bytes that parse to the same manifest and encode to the same bytes; its patch length
// limit does not overflow.
#include "outpost/packaging/manifest.h"

#include "fuzz/fuzz.h"
#include "outpost/base/bytes.h"

OUTPOST_FUZZ_TARGET(manifest) {
  namespace pk = outpost::packaging;
  outpost::Result<pk::Manifest> parsed = pk::Manifest::parse(outpost::ByteView(data, size));
  if (!parsed.ok()) {
    FUZZ_CHECK(outpost::fuzz::clear_rejection(parsed.error(), outpost::Code::kCorruption));
    return 0;
  }
  const pk::Manifest& m = parsed.value();
  const outpost::Bytes encoded = m.encode();
  outpost::Result<pk::Manifest> again = pk::Manifest::parse(encoded);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again.value() == m);
  FUZZ_CHECK(again.value().encode() == encoded);
  FUZZ_CHECK(!m.target_path().empty());
  return 0;
}
