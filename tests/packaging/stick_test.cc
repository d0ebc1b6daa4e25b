// The stick format's pieces (packaging/stick.h, have_file.h): portable names, the index,
// volumes split under their size and written atomically, and have-files that refuse damage.
#include "outpost/packaging/stick.h"

#include <catch2/catch.hpp>
#include <filesystem>

#include "outpost/packaging/have_file.h"
#include "support/fault_fs.h"
#include "support/test_support.h"

namespace outpost::test {
namespace {

namespace fs = std::filesystem;
using packaging::validate_portable_name;

TEST_CASE("names a stick gets are portable to FAT32, exFAT and Windows", "[stick]") {
  CHECK(validate_portable_name("outpost-pack").ok());
  CHECK(validate_portable_name("README.txt").ok());
  CHECK(validate_portable_name("index-fda04fde9a8b2c0a.json").ok());
  CHECK(validate_portable_name(std::string(64, 'a') + ".pack").ok());
  for (const char* bad : {"a:b", "a\\b", "a/b", "a*", "a?", "a\"", "a<", "a>", "a|", "trail.",
                          "trail ", "CON", "con.txt", "NUL", "com1", "LPT9.pack", ""}) {
    INFO(bad);
    CHECK_FALSE(validate_portable_name(bad).ok());
  }
  CHECK_FALSE(validate_portable_name(std::string(256, 'a')).ok());
  CHECK_FALSE(validate_portable_name("caf\xc3\xa9").ok());
  CHECK(packaging::is_volume_name(packaging::volume_name(crypto::Digest{})));
  CHECK_FALSE(packaging::is_volume_name("../" + std::string(61, 'a') + ".pack"));
  CHECK_FALSE(packaging::is_stick_index_name("index-../x.json"));
}

TEST_CASE("a stick index round-trips and refuses duplicate or misnamed volumes", "[stick]") {
  packaging::StickIndex idx;
  idx.repo = "fda04fde9a8b2c0a";
  idx.created = 1700000000;
  idx.made_by = "hq";
  idx.made_for = "everything";
  crypto::Digest a{}, b{};
  b[0] = 1;
  idx.volumes = {{packaging::volume_name(a), 10, a}, {packaging::volume_name(b), 20, b}};
  idx.bundles = {{"un/ga/A-RES-75-202", 3, 2, 1000}};
  idx.left_out = {"itu/ict/x (5 bytes): does not fit"};
  Bytes enc = idx.encode();
  auto back = packaging::StickIndex::parse({enc.data(), enc.size()});
  REQUIRE(back.ok());
  CHECK(back->volumes.size() == 2);
  CHECK(back->bundles.at(0).from == 2);
  CHECK(back->left_out == idx.left_out);

  packaging::StickIndex dup = idx;
  dup.volumes[1] = dup.volumes[0];
  enc = dup.encode();
  auto r = packaging::StickIndex::parse({enc.data(), enc.size()});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("listed twice") != std::string::npos);

  packaging::StickIndex misnamed = idx;
  misnamed.volumes[0].name = packaging::volume_name(b);
  enc = misnamed.encode();
  CHECK_FALSE(packaging::StickIndex::parse({enc.data(), enc.size()}).ok());
  const std::string junk = "{\"_type\":\"outpost/stick-index\",\"format\":2}";
  CHECK(packaging::StickIndex::parse(as_bytes(junk)).error().IsCorruption());
}

TEST_CASE("a stick writer keeps every volume under its size, each a whole pack", "[stick]") {
  TempDir d;
  auto w = packaging::StickWriter::create(d.path(), real_fs(), 64 << 10);
  REQUIRE(w.ok());
  for (int i = 0; i < 20; ++i) {
    Bytes data = random_bytes(10 << 10, static_cast<std::uint64_t>(i) + 1);
    REQUIRE((*w)->add_file(packaging::RecordType::kPatch, "objects/p" + std::to_string(i),
                           {data.data(), data.size()})
                .ok());
  }
  auto vols = (*w)->finish();
  REQUIRE(vols.ok());
  CHECK(vols->size() >= 4);
  for (const auto& v : *vols) {
    CHECK(fs::file_size(d / v.name) == v.size);
    CHECK(v.size <= 64u << 10);
    auto reader = packaging::PackReader::open_file(d / v.name);
    REQUIRE(reader.ok());
    REQUIRE((*reader)->for_each([](const packaging::PackRecord&) { return Status::Ok(); }).ok());
    CHECK(crypto::digest_equal((*reader)->pack_id(), v.id));
  }
  CHECK_FALSE(packaging::StickWriter::create(d.path(), real_fs(), 1000).ok());
}

TEST_CASE("a stick writer on a full disk leaves no volume or temp file", "[stick]") {
  TempDir d;
  FaultFileSystem ffs;
  ffs.fail_writes_after(100 << 10);
  auto w = packaging::StickWriter::create(d.path(), ffs, 64 << 10);
  REQUIRE(w.ok());
  Status st;
  for (int i = 0; i < 20 && st.ok(); ++i) {
    Bytes data = random_bytes(10 << 10, static_cast<std::uint64_t>(i) + 1);
    st = (*w)->add_file(packaging::RecordType::kPatch, "objects/p" + std::to_string(i),
                        {data.data(), data.size()});
  }
  if (st.ok()) st = (*w)->finish().status();
  CHECK(st.IsResourceExhausted());
  w->reset();
  // Volumes completed before the disk filled are whole packs under their own names; nothing
  // else is left.
  for (const auto& e : fs::directory_iterator(d.path())) {
    CHECK(packaging::is_volume_name(e.path().filename().string()));
  }
}

TEST_CASE("a have-file refuses a flipped byte, truncation and trailing bytes", "[stick]") {
  packaging::HaveFile h;
  h.created = 5;
  packaging::HaveRepo r;
  r.id = "abc";
  r.root = 1;
  r.bundles["un/ga/A-RES-75-202"] = {1, 2};
  h.repos.push_back(r);
  Bytes b = h.encode();
  REQUIRE(packaging::HaveFile::parse({b.data(), b.size()}).ok());
  for (std::size_t i = 0; i < b.size(); ++i) {
    Bytes c = b;
    c[i] ^= 0x20;
    auto p = packaging::HaveFile::parse({c.data(), c.size()});
    INFO(i);
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().message().find("have-file is damaged") != std::string::npos);
  }
  for (std::size_t n = 0; n < b.size(); ++n) {
    CHECK_FALSE(packaging::HaveFile::parse({b.data(), n}).ok());
  }
  Bytes longer = b;
  longer.push_back(0);
  CHECK_FALSE(packaging::HaveFile::parse({longer.data(), longer.size()}).ok());
}

}  // namespace
}  // namespace outpost::test
