// Golden vectors for the repository formats (docs/format-repository.md): the manifest, the
// content root, the chunk index, the pack and the metadata update file. Each is built from fixed
// inputs and compared byte for byte with tests/golden/format/; a difference means the format
// changed, which would break every published repository and every node. To regenerate after a
// deliberate format change (and a new format number): OUTPOST_UPDATE_GOLDEN=1 packaging_tests
// "[golden]".
#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "outpost/base/json.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/chunk_index.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/manifest.h"
#include "outpost/packaging/pack.h"
#include "outpost/packaging/update_file.h"
#include "support/test_support.h"

namespace op = outpost::packaging;
using outpost::Bytes;
using outpost::ByteView;

namespace {

std::string golden_path(const std::string& name) {
  return std::string(OUTPOST_SOURCE_DIR) + "/tests/golden/format/" + name;
}

void check_golden(const std::string& name, const Bytes& actual) {
  const char* update = std::getenv("OUTPOST_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    outpost::test::write_all(golden_path(name), actual);
    WARN("rewrote " << golden_path(name));
  }
  const Bytes expected = outpost::test::read_all(golden_path(name));
  INFO("golden file " << name << " (" << expected.size() << " bytes, got " << actual.size() << ")");
  REQUIRE_FALSE(expected.empty());
  CHECK(expected == actual);
}

// Two files with fixed content, as a publisher would see them.
const std::string kText = "Recalling its resolution 74/197 of 19 December 2019\n";
const std::string kCsv = "Goal,Target,Value\n17,17.6,122\n17,17.6,75\n";

outpost::crypto::Digest content_root() {
  op::ContentHasher h;
  REQUIRE(h.add_file("A-RES-75-202.en.md", 0644, kText.size()).ok());
  REQUIRE(h.update(outpost::as_bytes(kText)).ok());
  REQUIRE(h.add_file("data/data.csv", 0755, kCsv.size()).ok());
  REQUIRE(h.update(outpost::as_bytes(kCsv)).ok());
  auto root = h.finish();
  REQUIRE(root.ok());
  return *root;
}

op::ChunkIndex chunk_index() {
  op::ChunkIndex index;
  index.packs = {outpost::crypto::blake2b(outpost::as_bytes("pack"))};
  index.file_chunks = {1, 1};
  index.chunks = {
      {outpost::crypto::blake2b(outpost::as_bytes(kText)), static_cast<std::uint32_t>(kText.size()),
       0, 8, 40},
      {outpost::crypto::blake2b(outpost::as_bytes(kCsv)), static_cast<std::uint32_t>(kCsv.size()),
       0, 131, 30},
  };
  return index;
}

}  // namespace

TEST_CASE("the content root of fixed files matches its golden value", "[packaging][golden]") {
  REQUIRE(outpost::crypto::init());
  const std::string hex = outpost::crypto::hex(content_root()) + "\n";
  check_golden("content-root.txt", Bytes(hex.begin(), hex.end()));
}

TEST_CASE("a chunk index encodes to its golden bytes and parses back", "[packaging][golden]") {
  REQUIRE(outpost::crypto::init());
  const op::ChunkIndex index = chunk_index();
  const Bytes bytes = index.encode();
  check_golden("chunks.index", bytes);
  auto parsed = op::ChunkIndex::parse(bytes, 65536);
  REQUIRE(parsed.ok());
  CHECK(parsed->chunks == index.chunks);
}

TEST_CASE("a manifest encodes to its golden canonical JSON and parses back",
          "[packaging][golden]") {
  REQUIRE(outpost::crypto::init());
  op::Manifest m;
  m.bundle = "un/ga/A-RES-75-202";
  m.version = 2;
  m.kind = "resolution";
  m.meta = outpost::Json::object();
  m.meta.set("symbol", "A/RES/75/202");
  m.meta.set("session", 75);
  m.meta.set("title", "Information and communications technologies for sustainable development");
  m.published = 1795887780;  // 2026-11-28T17:43:00Z
  m.files = {{"A-RES-75-202.en.md", kText.size(), 0644, op::media_type_for("x.md")},
             {"data/data.csv", kCsv.size(), 0755, op::media_type_for("x.csv")}};
  m.content_size = kText.size() + kCsv.size();
  m.content_root = content_root();
  const Bytes index = chunk_index().encode();
  m.index.blake2b = outpost::crypto::blake2b(index);
  m.index.path = op::index_object_path(m.index.blake2b);
  m.index.length = index.size();
  op::PatchRef full;
  full.from = 0;
  full.engine = op::DeltaEngine::kZstd;
  full.blake2b = outpost::crypto::blake2b(outpost::as_bytes("full patch"));
  full.path = op::patch_object_path(full.blake2b);
  full.length = 120;
  op::PatchRef delta;
  delta.from = 1;
  delta.from_root = outpost::crypto::blake2b(outpost::as_bytes("content of version 1"));
  delta.from_manifest = outpost::crypto::sha256(outpost::as_bytes("manifest of version 1"));
  delta.engine = op::DeltaEngine::kSuffix;
  delta.blake2b = outpost::crypto::blake2b(outpost::as_bytes("patch from 1"));
  delta.path = op::patch_object_path(delta.blake2b);
  delta.length = 37;
  m.patches = {full, delta};
  const Bytes bytes = m.encode();
  check_golden("manifest.json", bytes);
  auto parsed = op::Manifest::parse(bytes);
  REQUIRE(parsed.ok());
  CHECK(*parsed == m);
}

TEST_CASE("a pack writes its golden bytes and reads back", "[packaging][golden]") {
  REQUIRE(outpost::crypto::init());
  // The stored frame is fixed bytes (a raw zstd frame written by hand) so the golden pack
  // does not depend on the zstd version's compressor output.
  // zstd raw block frame: magic, FHD (single segment, 1-byte content size), size, block hdr.
  const std::string raw = "golden chunk";
  Bytes frame = {0x28, 0xb5, 0x2f, 0xfd, 0x20, static_cast<std::uint8_t>(raw.size())};
  const std::uint32_t block_header = 1u | (static_cast<std::uint32_t>(raw.size()) << 3);
  frame.push_back(static_cast<std::uint8_t>(block_header));
  frame.push_back(static_cast<std::uint8_t>(block_header >> 8));
  frame.push_back(static_cast<std::uint8_t>(block_header >> 16));
  frame.insert(frame.end(), raw.begin(), raw.end());

  Bytes out;
  op::PackWriter writer([&](ByteView b) {
    out.insert(out.end(), b.begin(), b.end());
    return outpost::Status::Ok();
  });
  auto offset =
      writer.add_chunk(outpost::crypto::blake2b(outpost::as_bytes(raw)), raw.size(), frame);
  REQUIRE(offset.ok());
  const std::string meta = "{\"signed\":{}}";
  REQUIRE(
      writer.add_file(op::RecordType::kMetadata, "3.snapshot.json", outpost::as_bytes(meta)).ok());
  auto id = writer.finish();
  REQUIRE(id.ok());
  check_golden("golden.pack", out);
  CHECK(outpost::crypto::digest_equal(*id, outpost::crypto::blake2b(out)));

  auto reader = op::PackReader::from_memory(out, "golden.pack");
  int records = 0;
  REQUIRE(reader
              ->for_each([&](const op::PackRecord& r) {
                ++records;
                if (r.info.type == op::RecordType::kChunk) {
                  CHECK(std::string(outpost::as_chars(r.raw)) == raw);
                }
                return outpost::Status::Ok();
              })
              .ok());
  CHECK(records == 2);
}

TEST_CASE("a metadata update file encodes to its golden bytes and parses back",
          "[packaging][golden]") {
  REQUIRE(outpost::crypto::init());
  // Fixed data bytes instead of compressor output, so the vector pins the container only.
  op::UpdateFile f;
  f.latest_root = 3;
  op::UpdateEntry snap;
  snap.name = "12.snapshot.json";
  snap.encoding = op::UpdateEncoding::kZstdDelta;
  snap.base_sha256 = outpost::crypto::sha256(outpost::as_bytes("11.snapshot.json"));
  snap.result_length = 321;
  snap.result_sha256 = outpost::crypto::sha256(outpost::as_bytes("12.snapshot.json"));
  snap.data = outpost::to_bytes("delta bytes");
  op::UpdateEntry manifest;
  manifest.name = "targets/un/ga/X/" + std::string(64, 'a') + ".manifest.json";
  manifest.encoding = op::UpdateEncoding::kZstd;
  manifest.result_length = 700;
  manifest.result_sha256 = outpost::crypto::sha256(outpost::as_bytes("manifest"));
  manifest.data = outpost::to_bytes("frame");
  f.entries = {snap, manifest};
  auto bytes = op::encode_update_file(f);
  REQUIRE(bytes.ok());
  check_golden("update.upd", *bytes);
  auto parsed = op::parse_update_file(*bytes, 16);
  REQUIRE(parsed.ok());
  CHECK(*parsed == f);
}
