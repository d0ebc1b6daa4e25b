// Metadata update files (packaging/update_file.h): parse_update_file, then rebuild_entry on
// every entry, which decompresses attacker-chosen zstd frames (alone, or against a base file)
// under a declared length, in either layout (OPU1 full, OPU2 compact with a compressed entry
// table and groups of entries sharing one frame). Properties: rejections are kCorruption with a
// message; an accepted full file encodes back to exactly its bytes, an accepted compact file to one
// that parses to the same entries; a rebuilt entry is exactly result_length bytes with the declared
// SHA-256 (when one is given), never more than the limit given.
//
// A base's SHA-256 must match before its frame is decompressed, and a mutated input cannot
// keep it matching: so each delta entry is also rebuilt against a fixed 4 KiB base with its
// base_sha256 set to that base's, which runs the decoder on the fuzzed frame. Every rebuilt
// file is also filled in as a thin manifest (fill_thin_manifest) and as a library file's
// rootless one (fill_rootless_manifest), and every stored entry is applied as a release patch
// (release_patch.h) to held contents of the sizes it names: as many parts as the file has
// manifests, and as many as it declares itself.
#include "outpost/packaging/update_file.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "fuzz/fuzz.h"
#include "outpost/base/bytes.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/release_patch.h"

namespace {

namespace pk = outpost::packaging;

constexpr std::uint64_t kMaxResult = 1u << 20;

void rebuild(const pk::UpdateEntry& entry, outpost::ByteView base, pk::Decompressor& d) {
  outpost::Result<outpost::Bytes> out = pk::rebuild_entry(entry, base, kMaxResult, d);
  if (!out.ok()) {
    FUZZ_CHECK(outpost::fuzz::clear_rejection(out.error(), outpost::Code::kCorruption));
    return;
  }
  FUZZ_CHECK(out.value().size() == entry.result_length);
  if (entry.result_sha256 != outpost::crypto::Digest{}) {
    FUZZ_CHECK(outpost::crypto::sha256(out.value()) == entry.result_sha256);
  }
  // Any rebuilt file may be a thin manifest: filling it in adds exactly the values left out
  // (two 64-hex-digit values; with a patch, its 64 hex digits twice and the path around them).
  static const pk::HeldVersion held{outpost::crypto::blake2b(outpost::Bytes{1}),
                                    outpost::crypto::sha256(outpost::Bytes{2})};
  static const outpost::crypto::Digest patch = outpost::crypto::blake2b(outpost::Bytes{3});
  if (auto filled = pk::fill_thin_manifest(out.value(), held, std::nullopt)) {
    FUZZ_CHECK(filled->size() == out.value().size() + 2 * 64);
  }
  if (auto filled = pk::fill_thin_manifest(out.value(), held, patch)) {
    FUZZ_CHECK(filled->size() == out.value().size() + 4 * 64 + 17);
  }
  if (auto filled = pk::fill_thin_manifest(out.value(), held, patch, held.content_root)) {
    FUZZ_CHECK(filled->size() == out.value().size() + 5 * 64 + 17);
  }
  // Or a library file's rootless manifest: its root filled in, one 64-hex-digit value.
  if (auto filled = pk::fill_rootless_manifest(out.value(), held.content_root)) {
    FUZZ_CHECK(filled->size() == out.value().size() + 64);
  }
}

// A stored entry as a release patch: the node's held content of part i is a fixed pattern of
// the size the patch names (none above 64 KiB, as a node holding another version).
void apply_release(const pk::UpdateEntry& entry, std::size_t parts) {
  outpost::Result<std::vector<outpost::Bytes>> out = pk::apply_release_patch(
      entry.data, parts, [](std::size_t part, std::uint64_t size) -> std::optional<outpost::Bytes> {
        if (size > (64u << 10)) return std::nullopt;
        outpost::Bytes b(static_cast<std::size_t>(size));
        for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(i * 31 + part);
        return b;
      });
  if (!out.ok()) {
    FUZZ_CHECK(outpost::fuzz::clear_rejection(out.error(), outpost::Code::kCorruption));
    return;
  }
  FUZZ_CHECK(out.value().size() == parts);
  std::uint64_t total = 0;
  for (const auto& c : out.value()) total += c.size();
  FUZZ_CHECK(total <= pk::kMaxReleasePatchContent);
}

}  // namespace

OUTPOST_FUZZ_TARGET(update_file) {
  static const bool crypto_ready = outpost::crypto::init();
  FUZZ_CHECK(crypto_ready);
  static const outpost::Bytes fixed_base = [] {
    outpost::Bytes b(4096);
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(i * 131 + 7);
    return b;
  }();
  const outpost::ByteView input(data, size);
  outpost::Result<pk::UpdateFile> parsed = pk::parse_update_file(input, 4096);
  if (!parsed.ok()) {
    FUZZ_CHECK(outpost::fuzz::clear_rejection(parsed.error(), outpost::Code::kCorruption));
    return 0;
  }
  if (size >= 4 && std::memcmp(data, pk::kCompactUpdateMagic, 4) == 0) {
    // The table frame is the fuzzer's: encoding again compresses it another way.
    pk::Compressor compressor(1, true);
    outpost::Result<outpost::Bytes> encoded =
        pk::encode_compact_update_file(parsed.value(), compressor);
    FUZZ_CHECK(encoded.ok());
    outpost::Result<pk::UpdateFile> again = pk::parse_update_file(encoded.value(), 4096);
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(again.value() == parsed.value());
  } else {
    outpost::Result<outpost::Bytes> encoded = pk::encode_update_file(parsed.value());
    FUZZ_CHECK(encoded.ok());
    FUZZ_CHECK(encoded.value().size() == size);
    FUZZ_CHECK(std::equal(encoded.value().begin(), encoded.value().end(), input.begin()));
  }

  pk::Decompressor decompressor;
  const pk::UpdateFile& file = parsed.value();
  for (std::size_t i = 0; i < file.entries.size(); ++i) {
    const pk::UpdateEntry& entry = file.entries[i];
    if (pk::in_group(file, i)) {  // a group: its files from the first entry's frame
      if (entry.encoding != pk::UpdateEncoding::kZstd) continue;
      outpost::Result<pk::UpdateGroup> g = pk::rebuild_group(file, i, kMaxResult, decompressor);
      if (!g.ok()) {
        FUZZ_CHECK(outpost::fuzz::clear_rejection(g.error(), outpost::Code::kCorruption));
        continue;
      }
      FUZZ_CHECK(g.value().first == i);
      for (std::size_t k = 0; k < g.value().files.size(); ++k) {
        FUZZ_CHECK(g.value().files[k].size() == file.entries[i + k].result_length);
      }
      continue;
    }
    rebuild(entry, fixed_base, decompressor);
    if (entry.encoding == pk::UpdateEncoding::kStored) {
      apply_release(entry, pk::release_patch_bundles(file).size());
      std::size_t pos = sizeof pk::kReleasePatchMagic;
      const auto declared = outpost::get_varint(entry.data, &pos);
      if (declared && *declared <= 4096) apply_release(entry, static_cast<std::size_t>(*declared));
    }
    if (entry.encoding == pk::UpdateEncoding::kZstdDelta) {
      pk::UpdateEntry forced = entry;
      forced.base_sha256 = outpost::crypto::sha256(fixed_base);
      rebuild(forced, fixed_base, decompressor);
    }
  }
  return 0;
}
