// Packs (packaging/pack.h): PackReader, which reads repository packs and whole USB transfers
// record by record, decompressing and checking every chunk. Properties: it ends with a valid
// trailer or a kCorruption naming the pack; and reading is independent of how the stream
// arrives: the same bytes handed over in short pieces (sizes drawn from the input) give the
// same records and the same outcome.
#include "outpost/packaging/pack.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz/fuzz.h"
#include "outpost/base/bytes.h"
#include "outpost/crypto/hash.h"

namespace {

namespace pk = outpost::packaging;

struct Outcome {
  std::vector<pk::RecordInfo> records;
  outpost::Status status;  // Ok: a valid trailer ended the pack
  outpost::crypto::Digest id{};
};

Outcome read_all(pk::PackReader& reader) {
  Outcome out;
  for (;;) {
    outpost::Result<std::optional<pk::PackRecord>> r = reader.next();
    if (!r.ok()) {
      out.status = r.error();
      // A failed reader keeps failing the same way.
      outpost::Result<std::optional<pk::PackRecord>> again = reader.next();
      FUZZ_CHECK(!again.ok() && again.error().message() == out.status.message());
      return out;
    }
    if (!r.value()) {
      out.id = reader.pack_id();
      FUZZ_CHECK(reader.record_count() == out.records.size());
      return out;
    }
    const pk::PackRecord& rec = *r.value();
    FUZZ_CHECK(rec.stored.size() == rec.info.stored_length);
    if (rec.info.type == pk::RecordType::kChunk) {
      FUZZ_CHECK(rec.raw.size() == rec.info.raw_length);
    }
    out.records.push_back(rec.info);
  }
}

bool same_info(const pk::RecordInfo& a, const pk::RecordInfo& b) {
  return a.type == b.type && a.id == b.id && a.raw_length == b.raw_length &&
         a.stored_length == b.stored_length && a.name == b.name && a.offset == b.offset;
}

}  // namespace

OUTPOST_FUZZ_TARGET(pack) {
  static const bool crypto_ready = outpost::crypto::init();
  FUZZ_CHECK(crypto_ready);
  const outpost::ByteView input(data, size);
  pk::PackReaderOptions options;
  options.max_record_bytes = 1u << 20;  // small bounds, so that the fuzzer meets them
  options.max_chunk = 1u << 20;
  auto whole = pk::PackReader::from_memory(input, "fuzz", options);
  const Outcome a = read_all(*whole);
  if (a.status.ok()) {
    FUZZ_CHECK(a.id == outpost::crypto::blake2b(input));
  } else {
    FUZZ_CHECK(outpost::fuzz::clear_rejection(a.status, outpost::Code::kCorruption));
  }

  // The same bytes in pieces of 1 to 64 bytes, the sizes taken from the input's own bytes.
  std::size_t pos = 0;
  std::size_t turn = 0;
  pk::PackReader pieces(
      [&](std::span<std::uint8_t> dst) -> outpost::Result<std::size_t> {
        const std::size_t want = size == 0 ? 1 : data[turn++ % size] % 64 + 1;
        const std::size_t n = std::min({dst.size(), size - pos, want});
        if (n > 0) std::memcpy(dst.data(), data + pos, n);
        pos += n;
        return n;
      },
      "fuzz", options);
  const Outcome b = read_all(pieces);
  FUZZ_CHECK(a.records.size() == b.records.size());
  for (std::size_t i = 0; i < a.records.size(); ++i) {
    FUZZ_CHECK(same_info(a.records[i], b.records[i]));
  }
  FUZZ_CHECK(a.status.code() == b.status.code());
  FUZZ_CHECK(a.status.message() == b.status.message());
  FUZZ_CHECK(a.id == b.id);
  return 0;
}
