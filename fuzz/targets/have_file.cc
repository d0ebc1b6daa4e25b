// Have-files (packaging/have_file.h): HaveFile::parse, which `outpost usb export --have FILE`
// runs on a file another office sent by e-mail or on paper. Properties: a rejection is
// kCorruption with a message; an accepted have-file encodes to one that parses to the same
// value (the zstd frame need not be byte-identical, the content must).
#include "outpost/packaging/have_file.h"

#include "fuzz/fuzz.h"
#include "outpost/base/bytes.h"

OUTPOST_FUZZ_TARGET(have_file) {
  namespace pk = outpost::packaging;
  outpost::Result<pk::HaveFile> parsed = pk::HaveFile::parse(outpost::ByteView(data, size));
  if (!parsed.ok()) {
    FUZZ_CHECK(outpost::fuzz::clear_rejection(parsed.error(), outpost::Code::kCorruption));
    return 0;
  }
  const outpost::Bytes encoded = parsed.value().encode();
  outpost::Result<pk::HaveFile> again = pk::HaveFile::parse(encoded);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again.value() == parsed.value());
  return 0;
}
