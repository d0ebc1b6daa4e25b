// Patches (packaging/delta.h): read_delta_info and apply_delta, which a node runs on a patch
// whose hash the manifest declared (the publisher is trusted, a damaged mirror or stick is
// not). The old content is a deterministic pattern of the size the patch declares, produced on
// demand, so a patch may claim any size. Properties: a rejection is kCorruption with a
// message; the patch never makes apply read outside [0, from_size); a success delivers exactly
// to_size bytes; a wrong to_size is refused.
#include "outpost/packaging/delta.h"

#include <cstdint>

#include "fuzz/fuzz.h"
#include "outpost/base/bytes.h"

namespace {

namespace pk = outpost::packaging;

// Small bounds, so that the fuzzer meets them and each input stays cheap.
constexpr std::uint64_t kMaxWindow = 1u << 20;
constexpr std::uint64_t kMaxTo = 4u << 20;

outpost::Status apply(outpost::ByteView patch, std::uint64_t from_size, std::uint64_t to_size,
                      std::uint64_t& delivered) {
  const pk::DeltaReader from = [from_size](std::uint64_t offset, std::uint64_t length,
                                           outpost::Bytes& out) {
    FUZZ_CHECK(offset <= from_size && length <= from_size - offset);
    FUZZ_CHECK(length <= kMaxWindow);
    out.resize(static_cast<std::size_t>(length));
    for (std::size_t i = 0; i < out.size(); ++i) {
      const std::uint64_t at = offset + i;
      out[i] = static_cast<std::uint8_t>((at * 2654435761u) >> 13);
    }
    return outpost::Status::Ok();
  };
  delivered = 0;
  return pk::apply_delta(
      from, from_size, patch, to_size,
      [&](outpost::ByteView piece) {
        delivered += piece.size();
        FUZZ_CHECK(delivered <= to_size);
        return outpost::Status::Ok();
      },
      kMaxWindow);
}

}  // namespace

OUTPOST_FUZZ_TARGET(delta) {
  const outpost::ByteView patch(data, size);
  outpost::Result<pk::DeltaInfo> info = pk::read_delta_info(patch);
  if (!info.ok()) {
    FUZZ_CHECK(outpost::fuzz::clear_rejection(info.error(), outpost::Code::kCorruption));
    return 0;
  }
  const pk::DeltaInfo& i = info.value();
  if (i.to_size > kMaxTo) return 0;
  std::uint64_t delivered = 0;
  outpost::Status s = apply(patch, i.from_size, i.to_size, delivered);
  if (!s.ok()) {
    FUZZ_CHECK(outpost::fuzz::clear_rejection(s, outpost::Code::kCorruption));
    return 0;
  }
  FUZZ_CHECK(delivered == i.to_size);
  // The same patch asked for one byte more is refused.
  s = apply(patch, i.from_size, i.to_size + 1, delivered);
  FUZZ_CHECK(outpost::fuzz::clear_rejection(s, outpost::Code::kCorruption));
  return 0;
}
