#include "outpost/packaging/pack.h"

#include <catch2/catch.hpp>
#include <filesystem>

#include "outpost/crypto/hash.h"
#include "outpost/packaging/chunk_index.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/manifest.h"
#include "support/test_support.h"

namespace op = outpost::packaging;
using outpost::Bytes;
using outpost::ByteView;
using outpost::Code;
using outpost::Status;

namespace {

op::ChunkIndex sample_index() {
  REQUIRE(outpost::crypto::init());
  op::ChunkIndex idx;
  idx.packs = {outpost::crypto::blake2b(outpost::as_bytes("p0")),
               outpost::crypto::blake2b(outpost::as_bytes("p1"))};
  idx.file_chunks = {2, 0, 1};
  for (std::uint32_t i = 0; i < 3; ++i) {
    op::ChunkEntry e;
    e.id = outpost::crypto::blake2b(outpost::as_bytes(std::to_string(i)));
    e.raw_length = 1000 + i;
    e.pack = i % 2;
    e.offset = 100 + 2000 * i;
    e.stored_length = 500;
    idx.chunks.push_back(e);
  }
  return idx;
}

struct BuiltPack {
  Bytes bytes;
  outpost::crypto::Digest id{};
  std::vector<Bytes> raws;
  std::vector<std::uint64_t> offsets;
};

BuiltPack build_pack() {
  REQUIRE(outpost::crypto::init());
  BuiltPack p;
  op::PackWriter w([&p](ByteView b) {
    p.bytes.insert(p.bytes.end(), b.begin(), b.end());
    return Status::Ok();
  });
  op::Compressor c(3);
  for (int i = 0; i < 3; ++i) {
    Bytes raw = outpost::test::random_bytes(3000 + 500 * static_cast<std::size_t>(i),
                                            100 + static_cast<std::uint64_t>(i));
    for (std::size_t k = 0; k < raw.size(); k += 2) raw[k] = 'x';
    auto frame = c.compress(raw);
    REQUIRE(frame.ok());
    auto off = w.add_chunk(outpost::crypto::blake2b(raw), raw.size(), *frame);
    REQUIRE(off.ok());
    p.offsets.push_back(*off);
    p.raws.push_back(raw);
  }
  REQUIRE(
      w.add_file(op::RecordType::kTarget, "un/ga/X/manifest.json", outpost::as_bytes("{}")).ok());
  REQUIRE(
      w.add_file(op::RecordType::kMetadata, "1.root.json", outpost::as_bytes("{\"a\":1}")).ok());
  auto id = w.finish();
  REQUIRE(id.ok());
  p.id = *id;
  CHECK(w.record_count() == 5);
  CHECK(w.bytes_written() == p.bytes.size());
  return p;
}

outpost::Status read_whole(ByteView bytes, bool verify = true) {
  op::PackReaderOptions opts;
  opts.verify_chunks = verify;
  auto r = op::PackReader::from_memory(bytes, "P", opts);
  return r->for_each([](const op::PackRecord&) { return Status::Ok(); });
}

}  // namespace

TEST_CASE("a chunk index round-trips", "[packaging][index]") {
  const op::ChunkIndex idx = sample_index();
  const Bytes bytes = idx.encode();
  CHECK(bytes.size() == op::kIndexHeaderBytes + 2 * 32 + 3 * 4 + 3 * op::kIndexEntryBytes);
  auto back = op::ChunkIndex::parse(bytes, 65536);
  REQUIRE(back.ok());
  CHECK(back->packs == idx.packs);
  CHECK(back->file_chunks == idx.file_chunks);
  CHECK(back->chunks == idx.chunks);
  CHECK(back->encode() == bytes);
}

TEST_CASE("a malformed chunk index is corruption", "[packaging][index]") {
  const op::ChunkIndex good = sample_index();
  auto expect_bad = [](const Bytes& b, const char* what) {
    INFO(what);
    auto r = op::ChunkIndex::parse(b, 65536);
    REQUIRE(!r.ok());
    CHECK(r.error().code() == Code::kCorruption);
  };
  Bytes bytes = good.encode();
  expect_bad(Bytes(bytes.begin(), bytes.end() - 1), "truncated");
  Bytes longer = bytes;
  longer.push_back(0);
  expect_bad(longer, "trailing byte");
  Bytes magic = bytes;
  magic[0] = 'X';
  expect_bad(magic, "magic");
  Bytes huge = bytes;
  huge[16] = 0xFF;
  huge[23] = 0x7F;  // chunk_count ~ 2^63: must not allocate or overflow
  expect_bad(huge, "chunk count overflow");
  {
    op::ChunkIndex i = good;
    i.chunks[0].pack = 2;
    expect_bad(i.encode(), "pack out of range");
  }
  {
    op::ChunkIndex i = good;
    i.chunks[1].raw_length = 65537;
    expect_bad(i.encode(), "raw length above max");
  }
  {
    op::ChunkIndex i = good;
    i.chunks[1].raw_length = 0;
    expect_bad(i.encode(), "raw length 0");
  }
  {
    op::ChunkIndex i = good;
    i.chunks[2].stored_length = 60000;
    expect_bad(i.encode(), "stored length impossible");
  }
  {
    op::ChunkIndex i = good;
    i.chunks[2].offset = ~std::uint64_t{0} - 10;
    expect_bad(i.encode(), "offset overflow");
  }
  {
    op::ChunkIndex i = good;
    i.file_chunks[1] = 1;
    i.chunks.push_back(i.chunks[0]);
    i.file_chunks[2] = 2;
    expect_bad(i.encode(), "counts do not sum");
  }
}

TEST_CASE("an index is checked against its manifest", "[packaging][index]") {
  op::ChunkIndex idx = sample_index();
  op::Manifest m;
  m.bundle = "un/ga/x";
  m.files = {{"a", 2001, 0644, "text/plain"},
             {"b", 0, 0644, "text/plain"},
             {"c", 1002, 0644, "text/plain"}};
  CHECK(idx.check_against(m).ok());
  m.files[0].size = 2000;
  CHECK(idx.check_against(m).code() == Code::kCorruption);
  m.files[0].size = 2001;
  m.files.pop_back();
  CHECK(idx.check_against(m).code() == Code::kCorruption);
}

TEST_CASE("a pack round-trips record by record", "[packaging][pack]") {
  const BuiltPack p = build_pack();
  CHECK(p.id == outpost::crypto::blake2b(p.bytes));
  auto reader = op::PackReader::from_memory(p.bytes, "P");
  std::vector<op::PackRecord> recs;
  REQUIRE(reader
              ->for_each([&](const op::PackRecord& r) {
                recs.push_back(r);
                return Status::Ok();
              })
              .ok());
  REQUIRE(recs.size() == 5);
  for (int i = 0; i < 3; ++i) {
    CHECK(recs[static_cast<std::size_t>(i)].info.type == op::RecordType::kChunk);
    CHECK(recs[static_cast<std::size_t>(i)].raw == p.raws[static_cast<std::size_t>(i)]);
    CHECK(recs[static_cast<std::size_t>(i)].info.offset == p.offsets[static_cast<std::size_t>(i)]);
  }
  CHECK(recs[3].info.type == op::RecordType::kTarget);
  CHECK(recs[3].info.name == "un/ga/X/manifest.json");
  CHECK(recs[3].stored == outpost::to_bytes("{}"));
  CHECK(recs[4].info.name == "1.root.json");
  CHECK(reader->pack_id() == p.id);
  CHECK(reader->record_count() == 5);
  // After the end, next() keeps saying so.
  auto again = reader->next();
  REQUIRE(again.ok());
  CHECK(!again->has_value());
}

TEST_CASE("a truncated pack is corruption at every cut", "[packaging][pack]") {
  const BuiltPack p = build_pack();
  for (std::size_t n = 0; n < p.bytes.size(); ++n) {
    Status s = read_whole(ByteView(p.bytes).first(n));
    INFO("cut at " << n);
    REQUIRE(!s.ok());
    CHECK(s.code() == Code::kCorruption);
    CHECK_THAT(s.message(),
               Catch::Contains("pack P is truncated") || Catch::Contains("pack P is damaged"));
  }
  // Cut exactly before the trailer: "no trailer".
  Status s = read_whole(ByteView(p.bytes).first(p.bytes.size() - op::kTrailerBytes));
  CHECK_THAT(s.message(), Catch::Contains("truncated: no trailer after 5 records"));
  Bytes longer = p.bytes;
  longer.push_back(0);
  CHECK(read_whole(longer).code() == Code::kCorruption);
}

TEST_CASE("a flipped byte anywhere in a pack is detected", "[packaging][pack]") {
  const BuiltPack p = build_pack();
  for (bool verify : {true, false}) {
    for (std::size_t i = 0; i < p.bytes.size(); ++i) {
      Bytes bad = p.bytes;
      bad[i] ^= 0x10;
      Status s = read_whole(bad, verify);
      INFO("flipped byte " << i << " verify " << verify);
      REQUIRE(!s.ok());
      CHECK(s.code() == Code::kCorruption);
    }
  }
  // Damage inside a chunk's frame is located at that chunk when chunks are verified.
  Bytes bad = p.bytes;
  bad[p.offsets[1] + 20] ^= 0x01;
  Status s = read_whole(bad, true);
  CHECK_THAT(s.message(),
             Catch::Contains("pack P is damaged at byte " + std::to_string(p.offsets[1])));
}

TEST_CASE("a pack file is written atomically under its id and read by range", "[packaging][pack]") {
  REQUIRE(outpost::crypto::init());
  outpost::test::TempDir dir;
  op::Compressor c;
  op::Decompressor d;
  const Bytes raw = outpost::test::random_bytes(5000, 1);
  const auto id = outpost::crypto::blake2b(raw);
  op::PackFileInfo info;
  std::uint64_t off = 0;
  std::size_t stored = 0;
  {
    auto w = op::PackFileWriter::create(dir.path());
    REQUIRE(w.ok());
    auto frame = c.compress(raw);
    REQUIRE(frame.ok());
    stored = frame->size();
    auto o = (*w)->writer().add_chunk(id, raw.size(), *frame);
    REQUIRE(o.ok());
    off = *o;
    auto committed = (*w)->commit();
    REQUIRE(committed.ok());
    info = *committed;
  }
  CHECK(info.path == dir.path() + "/" + outpost::crypto::hex(info.id) + ".pack");
  const Bytes file = outpost::test::read_all(info.path);
  CHECK(file.size() == info.size);
  CHECK(outpost::crypto::blake2b(file) == info.id);
  std::size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);  // no temp file left behind

  op::ChunkEntry entry{id, static_cast<std::uint32_t>(raw.size()), 0, off,
                       static_cast<std::uint32_t>(stored)};
  auto back = op::read_chunk(info.path, entry, d);
  REQUIRE(back.ok());
  CHECK(*back == raw);
  entry.raw_length -= 1;
  CHECK(op::read_chunk(info.path, entry, d).error().code() == Code::kCorruption);
  entry.raw_length += 1;
  entry.offset = info.size - 2;
  CHECK(op::read_chunk(info.path, entry, d).error().code() == Code::kCorruption);

  auto reader = op::PackReader::open_file(info.path);
  REQUIRE(reader.ok());
  REQUIRE((*reader)->for_each([](const op::PackRecord&) { return Status::Ok(); }).ok());
  CHECK((*reader)->pack_id() == info.id);

  // An abandoned writer leaves nothing behind.
  {
    auto w = op::PackFileWriter::create(dir.path());
    REQUIRE(w.ok());
    REQUIRE((*w)->writer().add_file(op::RecordType::kIndex, "", raw).ok());
  }
  entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);
}

TEST_CASE("pack writers refuse invalid record names", "[packaging][pack]") {
  op::PackWriter w([](ByteView) { return Status::Ok(); });
  CHECK(w.add_file(op::RecordType::kTarget, "../escape", outpost::as_bytes("x")).status().code() ==
        Code::kInvalidArgument);
  CHECK(w.add_file(op::RecordType::kMetadata, "", outpost::as_bytes("x")).status().code() ==
        Code::kInvalidArgument);
  CHECK(w.add_chunk({}, 0, outpost::as_bytes("x")).status().code() == Code::kInvalidArgument);
}
