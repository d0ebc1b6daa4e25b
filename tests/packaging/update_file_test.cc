// Metadata update files (update_file.h): encoding, strict parsing and rebuilding entries.
#include "outpost/packaging/update_file.h"

#include <catch2/catch.hpp>
#include <optional>
#include <string>

#include "outpost/crypto/hash.h"
#include "outpost/packaging/manifest.h"
#include "support/test_support.h"

namespace op = outpost::packaging;
using outpost::Bytes;
using outpost::ByteView;
using outpost::Code;

namespace {

std::string role_file(int version, int changed) {
  std::string s = "{\"signed\":{\"_type\":\"targets\",\"version\":" + std::to_string(version) +
                  ",\"targets\":{";
  for (int i = 0; i < 300; ++i) {
    s += "\"un/ga/X" + std::to_string(i) +
         "/manifest.json\":{\"length\":" + std::to_string(700 + (i == changed ? version : 0)) +
         "},";
  }
  return s + "}}}";
}

struct Sample {
  Bytes base = outpost::to_bytes(role_file(4, 17));
  Bytes next = outpost::to_bytes(role_file(5, 17));
  Bytes fresh = outpost::to_bytes("{\"a new manifest\":1}");
  op::UpdateFile file;
  Bytes bytes;

  Sample() {
    REQUIRE(outpost::crypto::init());
    op::Compressor c(19);
    auto delta = op::make_update_entry("5.un.ga.json", next, ByteView(base), c);
    REQUIRE(delta.ok());
    auto alone = op::make_update_entry("targets/un/ga/Y/" + std::string(64, 'b') + ".manifest.json",
                                       fresh, std::nullopt, c);
    REQUIRE(alone.ok());
    file.latest_root = 2;
    file.entries = {*delta, *alone};
    auto enc = op::encode_update_file(file);
    REQUIRE(enc.ok());
    bytes = *enc;
  }
};

}  // namespace

TEST_CASE("an update file round-trips and its entries rebuild the exact files",
          "[packaging][update]") {
  Sample s;
  // The delta against the previous role version is far smaller than the file.
  CHECK(s.file.entries[0].encoding == op::UpdateEncoding::kZstdDelta);
  CHECK(s.file.entries[0].data.size() < 100);
  auto parsed = op::parse_update_file(s.bytes, 10);
  REQUIRE(parsed.ok());
  CHECK(*parsed == s.file);
  auto role = op::rebuild_entry(parsed->entries[0], s.base, 1 << 20);
  REQUIRE(role.ok());
  CHECK(*role == s.next);
  auto manifest = op::rebuild_entry(parsed->entries[1], ByteView(), 1 << 20);
  REQUIRE(manifest.ok());
  CHECK(*manifest == s.fresh);
  CHECK(op::update_file_name(12, 4) == "12.from-4.upd");
}

TEST_CASE("damaged update files and entries are refused as corrupt", "[packaging][update]") {
  Sample s;
  // Every truncation is refused.
  for (std::size_t n = 0; n < s.bytes.size(); ++n) {
    auto r = op::parse_update_file(ByteView(s.bytes).first(n), 10);
    REQUIRE(!r.ok());
    CHECK(r.error().code() == Code::kCorruption);
  }
  Bytes longer = s.bytes;
  longer.push_back(0);
  CHECK(op::parse_update_file(longer, 10).error().code() == Code::kCorruption);
  CHECK(op::parse_update_file(s.bytes, 1).error().code() == Code::kCorruption);  // max_entries
  Bytes magic = s.bytes;
  magic[0] = 'X';
  CHECK(op::parse_update_file(magic, 10).error().code() == Code::kCorruption);
  // An entry count the bytes cannot hold, without allocating for it.
  Bytes count = s.bytes;
  count[8] = 0xFF;
  count[9] = 0xFF;
  count[10] = 0xFF;
  count[11] = 0x7F;
  CHECK(op::parse_update_file(count, 1u << 31).error().code() == Code::kCorruption);
  // A data length past the end.
  Bytes data_len = s.bytes;
  const std::size_t first_data_len = 12 + 2 + 12 + 1 + 32 + 8 + 32;
  data_len[first_data_len + 7] = 0x40;
  CHECK(op::parse_update_file(data_len, 10).error().code() == Code::kCorruption);
  // An unknown encoding; a base hash on a file compressed alone; a bad name.
  Bytes enc = s.bytes;
  enc[12 + 2 + 12] = 7;
  CHECK(op::parse_update_file(enc, 10).error().code() == Code::kCorruption);
  Bytes base = s.bytes;
  const std::size_t second = first_data_len + 8 + s.file.entries[0].data.size();
  base[second + 2 + s.file.entries[1].name.size() + 1] = 1;
  CHECK(op::parse_update_file(base, 10).error().code() == Code::kCorruption);
  Bytes name = s.bytes;
  name[12 + 2] = '/';
  CHECK(op::parse_update_file(name, 10).error().code() == Code::kCorruption);

  // Entries that parse but do not rebuild what they claim.
  op::UpdateEntry flipped = s.file.entries[0];
  flipped.data[flipped.data.size() / 2] ^= 0x10;
  auto r1 = op::rebuild_entry(flipped, s.base, 1 << 20);
  REQUIRE(!r1.ok());
  CHECK(r1.error().code() == Code::kCorruption);
  op::UpdateEntry wrong_sha = s.file.entries[1];
  wrong_sha.result_sha256[0] ^= 1;
  CHECK(op::rebuild_entry(wrong_sha, ByteView(), 1 << 20).error().code() == Code::kCorruption);
  op::UpdateEntry wrong_len = s.file.entries[1];
  wrong_len.result_length += 1;
  CHECK(op::rebuild_entry(wrong_len, ByteView(), 1 << 20).error().code() == Code::kCorruption);
  // Over the caller's limit: refused before decompressing.
  CHECK(op::rebuild_entry(s.file.entries[1], ByteView(), 10).error().code() == Code::kCorruption);
  // Against another base than the one it was made for.
  Bytes other_base = s.base;
  other_base[5] ^= 1;
  CHECK(op::rebuild_entry(s.file.entries[0], other_base, 1 << 20).error().code() ==
        Code::kCorruption);
}

TEST_CASE("a compact update file is smaller, rebuilds the same files and refuses damage",
          "[packaging][update]") {
  Sample s;
  op::Compressor c(19, /*checksum=*/true);
  // The same entries, the frames with zstd's checksum, and a stored (patch-like) entry.
  op::UpdateFile file;
  file.latest_root = 2;
  auto delta = op::make_update_entry("5.un.ga.json", s.next, ByteView(s.base), c);
  auto manifest = op::make_update_entry("manifest/un/ga/Y", s.fresh, std::nullopt, c);
  const Bytes patch = outpost::to_bytes("an already compressed patch");
  auto stored = op::make_stored_entry("objects/ab/" + std::string(64, 'a') + ".patch", patch);
  REQUIRE(delta.ok());
  REQUIRE(manifest.ok());
  REQUIRE(stored.ok());
  file.entries = {*delta, *manifest, *stored};
  auto full = op::encode_update_file(file);
  auto compact = op::encode_compact_update_file(file, c);
  REQUIRE(full.ok());
  REQUIRE(compact.ok());
  // No result hashes, 4 bytes of the base's, the table compressed: two thirds of the header
  // bytes go.
  const std::size_t data = delta->data.size() + manifest->data.size() + patch.size();
  CHECK(compact->size() - data < (full->size() - data) / 3);

  // A new bundle's manifest against another bundle's: the base named in the entry. Only the
  // compact layout holds base names.
  auto sibling = op::make_update_entry("manifest/un/ga/Z", s.fresh, ByteView(s.base), c);
  REQUIRE(sibling.ok());
  sibling->base_name = "manifest/un/ga/Y";
  file.entries.push_back(*sibling);
  CHECK(op::encode_update_file(file).error().code() == Code::kInvalidArgument);
  compact = op::encode_compact_update_file(file, c);
  REQUIRE(compact.ok());
  op::UpdateFile bad_base = file;
  bad_base.entries[3].base_name = "/abs";
  CHECK(op::encode_compact_update_file(bad_base, c).error().code() == Code::kInvalidArgument);
  bad_base.entries[3] = *stored;
  bad_base.entries[3].name = "stored";
  bad_base.entries[3].base_name = "manifest/un/ga/Y";  // a base on a file stored alone
  CHECK(op::encode_compact_update_file(bad_base, c).error().code() == Code::kInvalidArgument);

  auto parsed = op::parse_update_file(*compact, 10);
  REQUIRE(parsed.ok());
  REQUIRE(parsed->entries.size() == 4);
  CHECK(parsed->entries[3].base_name == "manifest/un/ga/Y");
  CHECK(parsed->entries[0].base_name.empty());
  auto z = op::rebuild_entry(parsed->entries[3], s.base, 1 << 20);
  REQUIRE(z.ok());
  CHECK(*z == s.fresh);
  CHECK(parsed->latest_root == 2);
  const op::UpdateEntry& e0 = parsed->entries[0];
  CHECK(e0.base_tag_only);
  CHECK(e0.result_sha256 == outpost::crypto::Digest{});
  CHECK(op::base_matches(e0, outpost::crypto::sha256(s.base)));
  CHECK(!op::base_matches(e0, outpost::crypto::sha256(s.next)));
  auto role = op::rebuild_entry(e0, s.base, 1 << 20);
  REQUIRE(role.ok());
  CHECK(*role == s.next);
  auto m = op::rebuild_entry(parsed->entries[1], ByteView(), 1 << 20);
  REQUIRE(m.ok());
  CHECK(*m == s.fresh);
  auto p = op::rebuild_entry(parsed->entries[2], ByteView(), 1 << 20);
  REQUIRE(p.ok());
  CHECK(*p == patch);
  // Encoding what was parsed gives the same file.
  auto again = op::encode_compact_update_file(*parsed, c);
  REQUIRE(again.ok());
  CHECK(*again == *compact);

  // Every truncation, a byte more, too many entries, a damaged table: refused.
  for (std::size_t n = 0; n < compact->size(); ++n) {
    auto r = op::parse_update_file(ByteView(*compact).first(n), 10);
    REQUIRE(!r.ok());
    CHECK(r.error().code() == Code::kCorruption);
  }
  Bytes longer = *compact;
  longer.push_back(0);
  CHECK(op::parse_update_file(longer, 10).error().code() == Code::kCorruption);
  CHECK(op::parse_update_file(*compact, 3).error().code() == Code::kCorruption);
  Bytes count = *compact;
  count[8] = 0xFF;  // more entries than the table holds
  CHECK(op::parse_update_file(count, 1000).error().code() == Code::kCorruption);
  Bytes table = *compact;
  table[16 + 12] ^= 0x40;  // inside the table frame
  CHECK(op::parse_update_file(table, 10).error().code() == Code::kCorruption);
  // A flipped byte in an entry's frame fails zstd's checksum, though no result hash is given.
  op::UpdateEntry flipped = parsed->entries[1];
  flipped.data[flipped.data.size() / 2] ^= 0x01;
  CHECK(op::rebuild_entry(flipped, ByteView(), 1 << 20).error().code() == Code::kCorruption);
  // Against another base than the one it was made for: refused by its tag.
  Bytes other_base = s.base;
  other_base[5] ^= 1;
  CHECK(op::rebuild_entry(e0, other_base, 1 << 20).error().code() == Code::kCorruption);
}

TEST_CASE("a group of entries shares one frame, and a broken group is refused as corrupt",
          "[packaging][update]") {
  REQUIRE(outpost::crypto::init());
  op::Compressor c(19, /*checksum=*/true);
  const Bytes a = outpost::to_bytes(std::string(300, 'a') + "first manifest");
  const Bytes b = outpost::to_bytes(std::string(300, 'a') + "second manifest");
  const Bytes d = outpost::to_bytes(std::string(300, 'a') + "third");
  Bytes all = a;
  all.insert(all.end(), b.begin(), b.end());
  all.insert(all.end(), d.begin(), d.end());
  op::UpdateFile file;
  file.latest_root = 1;
  for (const auto& [name, bytes] : {std::pair{"manifest/x/a", &a}, std::pair{"manifest/x/b", &b},
                                    std::pair{"manifest/x/c", &d}}) {
    op::UpdateEntry e;
    e.name = name;
    e.encoding = file.entries.empty() ? op::UpdateEncoding::kZstd : op::UpdateEncoding::kFollows;
    e.result_length = bytes->size();
    file.entries.push_back(e);
  }
  auto frame = c.compress(all);
  REQUIRE(frame.ok());
  file.entries[0].data = *frame;
  auto encoded = op::encode_compact_update_file(file, c);
  REQUIRE(encoded.ok());
  CHECK(op::encode_update_file(file).error().code() == Code::kInvalidArgument);  // full layout
  auto parsed = op::parse_update_file(*encoded, 10);
  REQUIRE(parsed.ok());
  CHECK(*parsed == file);
  op::Decompressor dec;
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(op::in_group(*parsed, i));
    auto g = op::rebuild_group(*parsed, i, 1 << 20, dec);
    REQUIRE(g.ok());
    CHECK(g->first == 0);
    REQUIRE(g->files.size() == 3);
    CHECK(g->files[0] == a);
    CHECK(g->files[1] == b);
    CHECK(g->files[2] == d);
  }
  // A file of a group is not rebuilt alone; nor is the group's frame as its first file.
  CHECK(op::rebuild_entry(parsed->entries[1], {}, 1 << 20).error().code() == Code::kCorruption);
  CHECK(op::rebuild_entry(parsed->entries[0], {}, 1 << 20).error().code() == Code::kCorruption);
  // A length that does not add up, or above the limit: refused.
  op::UpdateFile longer = *parsed;
  longer.entries[2].result_length += 1;
  CHECK(op::rebuild_group(longer, 2, 1 << 20, dec).error().code() == Code::kCorruption);
  CHECK(op::rebuild_group(*parsed, 1, 100, dec).error().code() == Code::kCorruption);
  // A file of a group with no frame before it, or with data of its own: not encoded, not read.
  op::UpdateFile orphan = file;
  orphan.entries.erase(orphan.entries.begin());
  CHECK(op::encode_compact_update_file(orphan, c).error().code() == Code::kInvalidArgument);
  op::UpdateFile with_data = file;
  with_data.entries[1].data = {1};
  CHECK(op::encode_compact_update_file(with_data, c).error().code() == Code::kInvalidArgument);
  // The same file with the first entry's encoding made 2 (stored) in its table: the files
  // after it follow no frame, and reading refuses it.
  const Bytes& bytes = *encoded;
  const std::uint32_t table_len = outpost::get_u32le(bytes.data() + 12);
  const ByteView table_frame = ByteView(bytes).subspan(16, table_len);
  auto table = dec.decompress(table_frame, *op::zstd_frame_content_size(table_frame));
  REQUIRE(table.ok());
  auto with_first_encoding = [&](std::uint8_t encoding) {
    (*table)[2 + file.entries[0].name.size()] = encoding;
    auto table_z = c.compress(*table);
    REQUIRE(table_z.ok());
    Bytes out(bytes.begin(), bytes.begin() + 12);
    for (int k = 0; k < 4; ++k) {
      out.push_back(static_cast<std::uint8_t>(table_z->size() >> (8 * k)));
    }
    out.insert(out.end(), table_z->begin(), table_z->end());
    out.insert(out.end(), bytes.begin() + 16 + table_len, bytes.end());
    return out;
  };
  CHECK(op::parse_update_file(with_first_encoding(2), 10).error().code() == Code::kCorruption);
  CHECK(op::parse_update_file(with_first_encoding(0), 10).ok());  // the same surgery, unchanged
}

TEST_CASE("stored entries of a library file round-trip, and a wrong length or a bomb is refused",
          "[packaging][update]") {
  const Bytes file = outpost::test::random_bytes(5000, 8);
  auto e = op::make_stored_entry("content/ab", file);
  REQUIRE(e.ok());
  CHECK(e->encoding == op::UpdateEncoding::kStored);
  CHECK(e->result_sha256 == outpost::crypto::Digest{});  // not given
  op::UpdateFile f;
  f.entries.push_back(*e);
  auto encoded = op::encode_update_file(f);
  REQUIRE(encoded.ok());
  auto parsed = op::parse_update_file(*encoded, 10);
  REQUIRE(parsed.ok());
  auto rebuilt = op::rebuild_entry(parsed->entries[0], {}, 1 << 20);
  REQUIRE(rebuilt.ok());
  CHECK(*rebuilt == file);
  // A length that is not the data's, or above the reader's limit.
  op::UpdateEntry wrong = *e;
  wrong.result_length += 1;
  CHECK(op::rebuild_entry(wrong, {}, 1 << 20).error().code() == Code::kCorruption);
  CHECK(op::rebuild_entry(*e, {}, 100).error().code() == Code::kCorruption);
  // A library file is zstd frames: their declared sizes are checked before decompressing.
  op::Compressor c(3);
  auto frame = c.compress(*encoded);
  REQUIRE(frame.ok());
  auto lib = op::parse_library_file(*frame, 1 << 20, 10);
  REQUIRE(lib.ok());
  CHECK(lib->entries == parsed->entries);
  CHECK(op::parse_library_file(*frame, 100, 10).error().code() == Code::kCorruption);
  CHECK(op::parse_library_file(*encoded, 1 << 20, 10).error().code() == Code::kCorruption);
  // The same bytes split anywhere into two frames read the same; the limit holds for the sum.
  const std::size_t cut = encoded->size() / 3;
  auto first = c.compress(ByteView(*encoded).first(cut));
  auto second = c.compress(ByteView(*encoded).subspan(cut));
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  Bytes two = *first;
  two.insert(two.end(), second->begin(), second->end());
  auto split = op::parse_library_file(two, 1 << 20, 10);
  REQUIRE(split.ok());
  CHECK(split->entries == parsed->entries);
  CHECK(op::parse_library_file(two, encoded->size() - 1, 10).error().code() == Code::kCorruption);
  // A frame cut short, or bytes after the last frame, are refused.
  CHECK(op::parse_library_file(ByteView(two).first(two.size() - 3), 1 << 20, 10).error().code() ==
        Code::kCorruption);
  Bytes trailing = two;
  trailing.push_back(0x42);
  CHECK(op::parse_library_file(trailing, 1 << 20, 10).error().code() == Code::kCorruption);
}

TEST_CASE(
    "a library file's head says where its metadata frame ends, and that frame alone parses as "
    "the start of the update file",
    "[packaging][update]") {
  REQUIRE(outpost::crypto::init());
  // Two metadata entries (the first frame), then a content entry (the second).
  op::UpdateFile f;
  for (const char* name : {"9.snapshot.json", "9.lib.json", "content/ab"}) {
    auto e = op::make_stored_entry(name, outpost::test::random_bytes(3000, name[0]));
    REQUIRE(e.ok());
    f.entries.push_back(*e);
  }
  auto encoded = op::encode_update_file(f);
  REQUIRE(encoded.ok());
  const std::size_t meta_end = op::kUpdateHeaderBytes + op::update_entry_bytes(f.entries[0]) +
                               op::update_entry_bytes(f.entries[1]);
  op::Compressor c(3);
  auto meta = c.compress(ByteView(*encoded).first(meta_end));
  auto rest = c.compress(ByteView(*encoded).subspan(meta_end));
  REQUIRE(meta.ok());
  REQUIRE(rest.ok());
  op::LibraryHead head{meta->size(), op::kLibraryHeadBytes + meta->size() + rest->size()};
  Bytes file = op::encode_library_head(head);
  REQUIRE(file.size() == op::kLibraryHeadBytes);
  file.insert(file.end(), meta->begin(), meta->end());
  file.insert(file.end(), rest->begin(), rest->end());

  // The head reads back; a zstd decoder and library_frames pass over it.
  auto back = op::parse_library_head(file);
  REQUIRE(back.has_value());
  CHECK(back->metadata_frame_bytes == meta->size());
  CHECK(back->file_bytes == file.size());
  auto whole = op::parse_library_file(file, 1 << 20, 10);
  REQUIRE(whole.ok());
  CHECK(whole->entries == f.entries);
  auto frames = op::library_frames(file, 1 << 20);
  REQUIRE(frames.ok());
  CHECK(frames->size() == 2);

  // The metadata frame alone: the header and the two entries it holds in full.
  auto start = op::parse_update_file_head(ByteView(*encoded).first(meta_end), 10);
  REQUIRE(start.ok());
  REQUIRE(start->entries.size() == 2);
  CHECK(start->entries[1] == f.entries[1]);
  // Cut inside an entry, or past the count's limit: refused.
  CHECK(op::parse_update_file_head(ByteView(*encoded).first(meta_end - 1), 10).error().code() ==
        Code::kCorruption);
  CHECK(op::parse_update_file_head(ByteView(*encoded).first(meta_end), 2).error().code() ==
        Code::kCorruption);
  // The whole file is also a valid start (every entry held).
  CHECK(op::parse_update_file_head(*encoded, 10)->entries == f.entries);

  // A head that is damaged, cut short, or whose metadata frame would end past the file.
  for (std::size_t at : {0u, 8u, 12u}) {
    Bytes bad = file;
    bad[at] ^= 1;
    CHECK_FALSE(op::parse_library_head(bad).has_value());
  }
  CHECK_FALSE(op::parse_library_head(ByteView(file).first(op::kLibraryHeadBytes - 1)).has_value());
  op::LibraryHead past{head.file_bytes, head.file_bytes};
  CHECK_FALSE(op::parse_library_head(op::encode_library_head(past)).has_value());
  op::LibraryHead empty{0, head.file_bytes};
  CHECK_FALSE(op::parse_library_head(op::encode_library_head(empty)).has_value());
}

namespace {

outpost::crypto::Digest digest_of(const std::string& s) {
  return outpost::crypto::blake2b(outpost::to_bytes(s));
}

// Version 3 of a one-file bundle with patches from 0 and from 2, encoded as published.
op::Manifest manifest_v3() {
  op::Manifest m;
  m.bundle = "un/ga/X";
  m.version = 3;
  m.published = 1'790'000'000;
  m.content_root = digest_of("content 3");
  m.files = {{"x.csv", 1000, op::kModeRegular, "text/csv"}};
  m.content_size = 1000;
  m.index = {op::index_object_path(digest_of("index")), 120, digest_of("index")};
  op::PatchRef full;
  full.engine = op::DeltaEngine::kZstd;
  full.blake2b = digest_of("full");
  full.path = op::patch_object_path(full.blake2b);
  full.length = 400;
  op::PatchRef from2;
  from2.from = 2;
  from2.from_root = digest_of("content 2");
  from2.from_manifest = outpost::crypto::sha256(outpost::to_bytes("manifest 2"));
  from2.blake2b = digest_of("patch 2-3");
  from2.path = op::patch_object_path(from2.blake2b);
  from2.length = 60;
  m.patches = {full, from2};
  return m;
}

}  // namespace

TEST_CASE("a thin manifest leaves out what the node holds and fills in to the signed bytes",
          "[packaging][update]") {
  REQUIRE(outpost::crypto::init());
  const op::Manifest m = manifest_v3();
  const Bytes signed_bytes = m.encode();
  REQUIRE(op::Manifest::parse(signed_bytes).ok());
  const op::HeldVersion held{m.patches[1].from_root, m.patches[1].from_manifest};
  const std::optional<outpost::crypto::Digest> patch = m.patches[1].blake2b;

  for (const bool with_patch : {false, true}) {
    INFO("with the patch's BLAKE2b left out: " << with_patch);
    const auto p = with_patch ? patch : std::nullopt;
    const auto thin = op::thin_manifest(signed_bytes, held, p);
    REQUIRE(thin);
    // Two 64-hex-digit values left out, and with the patch its 64 hex digits twice (the
    // BLAKE2b and the path "objects/<hh>/<hex>.patch").
    CHECK(signed_bytes.size() - thin->size() == (with_patch ? 4 * 64 + 17 : 2 * 64));
    // Not a manifest a node would take, and nothing of what was left out is in it.
    CHECK_FALSE(op::Manifest::parse(*thin).ok());
    const std::string text(thin->begin(), thin->end());
    CHECK(text.find(outpost::crypto::hex(held.content_root)) == std::string::npos);
    CHECK(text.find(outpost::crypto::hex(held.manifest_sha256)) == std::string::npos);
    CHECK((text.find(outpost::crypto::hex(*patch)) == std::string::npos) == with_patch);
    // The patch from 0 and the index keep theirs.
    CHECK(text.find(outpost::crypto::hex(m.patches[0].blake2b)) != std::string::npos);
    CHECK(text.find(outpost::crypto::hex(m.index.blake2b)) != std::string::npos);

    const auto filled = op::fill_thin_manifest(*thin, held, p);
    REQUIRE(filled);
    CHECK(*filled == signed_bytes);

    // Filled from another held version: other bytes, which the role's SHA-256 then refuses.
    const op::HeldVersion other{digest_of("content 1"), held.manifest_sha256};
    const auto wrong = op::fill_thin_manifest(*thin, other, p);
    REQUIRE(wrong);
    CHECK(outpost::crypto::sha256(*wrong) != outpost::crypto::sha256(signed_bytes));
  }
  // Without the blanks (a manifest sent whole) there is nothing to fill in.
  CHECK_FALSE(op::fill_thin_manifest(signed_bytes, held, std::nullopt));
  // A held version the manifest has no patch from: no thin form, the manifest goes whole.
  CHECK_FALSE(op::thin_manifest(signed_bytes, {digest_of("content 1"), held.manifest_sha256},
                                std::nullopt));
  // A patch it does not list: the same.
  CHECK_FALSE(op::thin_manifest(signed_bytes, held, digest_of("another patch")));
  // A thin form whose patch was left out needs the patch to fill in.
  const auto thin = op::thin_manifest(signed_bytes, held, patch);
  REQUIRE(thin);
  const auto without = op::fill_thin_manifest(*thin, held, std::nullopt);
  CHECK((!without || *without != signed_bytes));
}

TEST_CASE(
    "beside a release patch a thin manifest leaves out its own content root too and "
    "fills in only from the right content",
    "[packaging][update][release_patch]") {
  REQUIRE(outpost::crypto::init());
  const op::Manifest m = manifest_v3();
  const Bytes signed_bytes = m.encode();
  const op::HeldVersion held{m.patches[1].from_root, m.patches[1].from_manifest};
  const auto thin = op::thin_manifest(signed_bytes, held, std::nullopt, m.content_root);
  REQUIRE(thin);
  // Three 64-hex-digit values left out: the held version's two and the new content root.
  CHECK(signed_bytes.size() - thin->size() == 3 * 64);
  const std::string text(thin->begin(), thin->end());
  CHECK(text.find(outpost::crypto::hex(m.content_root)) == std::string::npos);
  CHECK(text.find("\"root\":\"\"") != std::string::npos);

  const auto filled = op::fill_thin_manifest(*thin, held, std::nullopt, m.content_root);
  REQUIRE(filled);
  CHECK(*filled == signed_bytes);
  // The root of a content the release patch rebuilt wrong: bytes the role's SHA-256 refuses.
  const auto wrong = op::fill_thin_manifest(*thin, held, std::nullopt, digest_of("other"));
  REQUIRE(wrong);
  CHECK(outpost::crypto::sha256(*wrong) != outpost::crypto::sha256(signed_bytes));
  // No content rebuilt (the release patch failed): the blank stays, and so does the refusal.
  const auto unfilled = op::fill_thin_manifest(*thin, held, std::nullopt);
  CHECK((!unfilled || *unfilled != signed_bytes));
}

TEST_CASE(
    "a library file's rootless manifest leaves out only its content root and fills in only "
    "from the right content",
    "[packaging][update][library]") {
  REQUIRE(outpost::crypto::init());
  const op::Manifest m = manifest_v3();
  const Bytes signed_bytes = m.encode();
  const auto rootless = op::rootless_manifest(signed_bytes, m.content_root);
  REQUIRE(rootless);
  // One 64-hex-digit value left out; the patches' "from_root" and the rest keep theirs.
  CHECK(signed_bytes.size() - rootless->size() == 64);
  const std::string text(rootless->begin(), rootless->end());
  CHECK(text.find(outpost::crypto::hex(m.content_root)) == std::string::npos);
  CHECK(text.find(outpost::crypto::hex(m.patches[1].from_root)) != std::string::npos);
  CHECK(text.find(outpost::crypto::hex(m.index.blake2b)) != std::string::npos);
  CHECK_FALSE(op::Manifest::parse(*rootless).ok());

  const auto filled = op::fill_rootless_manifest(*rootless, m.content_root);
  REQUIRE(filled);
  CHECK(*filled == signed_bytes);
  // The root of a damaged content: bytes the role's SHA-256 refuses.
  const auto wrong = op::fill_rootless_manifest(*rootless, digest_of("damaged"));
  REQUIRE(wrong);
  CHECK(outpost::crypto::sha256(*wrong) != outpost::crypto::sha256(signed_bytes));
  // A root the manifest does not have: no rootless form (the manifest goes whole), and a
  // whole manifest has no blank to fill.
  CHECK_FALSE(op::rootless_manifest(signed_bytes, digest_of("another content")));
  CHECK_FALSE(op::fill_rootless_manifest(signed_bytes, m.content_root));
}
