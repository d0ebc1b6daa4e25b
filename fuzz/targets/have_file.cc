// Have-files (packaging/have_file.h): HaveFile::parse, which `outpost usb export --for FILE`
// runs on a file another office sent by e-mail or on paper. A have-file ends with a BLAKE2b
// checksum of the rest, so nearly every mutation of a whole file stops there; an input that
// does not start with the magic is therefore also taken as a body and sealed (magic, length,
// zstd frame, checksum: seal_have_body) so that the body decoder sees the fuzzed bytes.
// Properties: a rejection is kCorruption with a message; an accepted have-file encodes to one
// that parses to the same value (the zstd frame need not be byte-identical, the content must).
#include "outpost/packaging/have_file.h"

#include <cstring>

#include "fuzz/fuzz.h"
#include "outpost/base/bytes.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/compress.h"

namespace {

void check(outpost::ByteView input) {
  namespace pk = outpost::packaging;
  outpost::Result<pk::HaveFile> parsed = pk::HaveFile::parse(input);
  if (!parsed.ok()) {
    FUZZ_CHECK(outpost::fuzz::clear_rejection(parsed.error(), outpost::Code::kCorruption));
    return;
  }
  const outpost::Bytes encoded = parsed.value().encode();
  outpost::Result<pk::HaveFile> again = pk::HaveFile::parse(encoded);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again.value() == parsed.value());
}

}  // namespace

outpost::Bytes outpost::fuzz::seal_have_body(ByteView body) {
  static constexpr char kMagic[] = {'O', 'U', 'T', 'H', 'A', 'V', 'E', '1'};
  Bytes out(kMagic, kMagic + sizeof kMagic);
  const auto n = static_cast<std::uint32_t>(body.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  packaging::Compressor c(1);
  const Bytes frame = c.compress(body).value();
  out.insert(out.end(), frame.begin(), frame.end());
  const crypto::Digest sum = crypto::blake2b({out.data(), out.size()});
  out.insert(out.end(), sum.begin(), sum.end());
  return out;
}

OUTPOST_FUZZ_TARGET(have_file) {
  const outpost::ByteView input(data, size);
  check(input);
  if (size < 8 || std::memcmp(data, "OUTHAVE1", 8) != 0) {
    const outpost::Bytes sealed = outpost::fuzz::seal_have_body(input);
    check({sealed.data(), sealed.size()});
  }
  return 0;
}
