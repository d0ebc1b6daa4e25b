// USB sneakernet through the `outpost` binary (issue 9, docs/usb.md): have-file, export (whole,
// thin, by bundle, by size, in volumes), import with full verification, the office/HQ/courier
// round trip with separate stores, subscribing from a pack alone, and the FAT rules.
#include <sys/mount.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "integration/usb_fixture.h"
#include "outpost/base/json.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/have_file.h"
#include "outpost/packaging/layout.h"
#include "outpost/packaging/pack.h"
#include "outpost/packaging/stick.h"
#include "outpost/packaging/update_file.h"

namespace outpost::test {
namespace {

namespace fs = std::filesystem;
constexpr const char* kRes = "un/ga/A-RES-75-202";
constexpr const char* kInd = "itu/ict/digital-divide-2019";

TEST_CASE(
    "an office with no link gets HQ's bundles by stick, verified, and a second import changes "
    "nothing",
    "[usb]") {
  Sites s;
  // The office trusts the repository from the pack alone, given the root key.
  s.must_at(s.hq(), {"export", "--to", s.stick()});
  check_fat_rules(s.stick(), packaging::kFatMaxFileBytes);
  std::string readme = read_text(s.pack_folder() + "/README.txt");
  CHECK(readme.find("outpost import") != std::string::npos);
  CHECK(readme.find(kRes) != std::string::npos);
  RunResult no_trust = s.at(s.office(), {"import", s.stick(), "--root-pubkey", s.root_hex});
  INFO(no_trust.err);
  REQUIRE(no_trust.exit_code == 0);
  CHECK(no_trust.out.find("new, version 1") != std::string::npos);
  CHECK(no_trust.out.find("confirmed current as of") != std::string::npos);
  CHECK(s.listing(s.office()) == s.listing(s.hq()));
  RunResult cat = s.must_at(s.office(), {"cat", kRes, "annex/tables.bin"});
  CHECK(cat.out.size() == 400u << 10);
  RunResult verify = s.must_at(s.office(), {"verify"});
  CHECK(verify.out.find("all good") != std::string::npos);

  const Bytes before = store_snapshot(s.office());
  RunResult again = s.must_at(s.office(), {"import", s.stick()});
  CHECK(again.out.find("already up to date") != std::string::npos);
  CHECK(s.listing(s.office()) == s.listing(s.hq()));
  (void)before;
}

TEST_CASE("a thin pack for an office's have-file carries only what it lacks and brings it current",
          "[usb]") {
  Sites s;
  s.must_at(s.hq(), {"export", "--to", s.stick("first")});
  s.must_at(s.office(), {"import", s.stick("first"), "--root-pubkey", s.root_hex});
  s.publish_v2();
  s.must_at(s.hq(), {"sync"});

  // Office -> stick -> HQ: the have-file.
  const std::string have = s.dir / "office.have";
  RunResult h = s.must_at(s.office(), {"have", "--out", have});
  CHECK(fs::file_size(have) < 4096);
  // HQ -> stick: only what the office lacks; and the whole for comparison.
  RunResult thin = s.must_at(s.hq(), {"export", "--to", s.stick("thin"), "--for", have, "--json"});
  s.must_at(s.hq(), {"export", "--to", s.stick("full")});
  const std::uint64_t thin_bytes = Sites::folder_bytes(s.pack_folder("thin"));
  const std::uint64_t full_bytes = Sites::folder_bytes(s.pack_folder("full"));
  INFO("thin " << thin_bytes << " full " << full_bytes);
  CHECK(thin_bytes * 10 < full_bytes);
  auto j = parse_json(thin.out);
  REQUIRE(j.ok());
  const Json& repo0 = j->find("repositories")->as_array().at(0);
  REQUIRE(repo0.find("bundles")->as_array().size() == 1);  // the indicator is current there
  CHECK(repo0.find("bundles")->as_array()[0].find("bundle")->as_string() == kRes);
  // From the version the office holds (the fixture published the resolution twice).
  CHECK(repo0.find("bundles")->as_array()[0].find("from")->as_int() == 2);
  // Its metadata in one update file whose every entry (snapshot, targets, delegated role,
  // manifest) is a delta against what the office holds: HQ kept the roles it held before.
  std::size_t update_files = 0;
  for (const auto& volume : files_ending(s.pack_folder("thin"), ".pack")) {
    auto reader = packaging::PackReader::open_file(volume);
    REQUIRE(reader.ok());
    for (;;) {
      auto rec = (*reader)->next();
      REQUIRE(rec.ok());
      if (!rec->has_value()) break;
      const packaging::PackRecord& r = **rec;
      if (r.info.name.rfind(std::string(packaging::kUpdatesDir), 0) != 0) continue;
      ++update_files;
      auto file = packaging::parse_update_file({r.stored.data(), r.stored.size()}, 1000);
      REQUIRE(file.ok());
      CHECK(file->entries.size() >= 4);
      for (const auto& e : file->entries) {
        INFO(e.name);
        CHECK(e.encoding == packaging::UpdateEncoding::kZstdDelta);
      }
    }
  }
  CHECK(update_files == 1);

  // Stick -> office.
  RunResult imp = s.must_at(s.office(), {"import", s.pack_folder("thin"), "--json"});
  auto ij = parse_json(imp.out);
  REQUIRE(ij.ok());
  CHECK(ij->as_array().at(0).find("complete")->as_bool());
  CHECK(s.listing(s.office()) == s.listing(s.hq()));
  CHECK(s.must_at(s.office(), {"cat", kRes, "notes.txt"}).out ==
        "Corrigendum: paragraph 3, read 2021.\n");
  CHECK(s.must_at(s.office(), {"verify"}).out.find("all good") != std::string::npos);
  // The office is current: a new have-file makes an export that writes nothing.
  s.must_at(s.office(), {"have", "--out", have});
  RunResult none = s.must_at(s.hq(), {"export", "--to", s.stick("none"), "--for", have});
  CHECK(none.out.find("up to date") != std::string::npos);
}

TEST_CASE("a courier relays HQ's pack to a remote site: signatures travel unchanged", "[usb]") {
  Sites s;
  s.must_at(s.hq(), {"export", "--to", s.stick("old")});
  s.must_at(s.site(), {"import", s.stick("old"), "--root-pubkey", s.root_hex});
  s.publish_v2();
  s.must_at(s.hq(), {"sync"});
  // HQ -> courier's laptop (a store of its own, never linked to the repository).
  s.must_at(s.hq(), {"export", "--to", s.stick("to-courier")});
  s.must_at(s.courier(), {"import", s.stick("to-courier"), "--root-pubkey", s.root_hex});
  // The site's have-file reaches the courier; the courier writes the site's stick.
  const std::string have = s.dir / "site.have";
  s.must_at(s.site(), {"have", "--out", have});
  s.must_at(s.courier(), {"export", "--to", s.stick("to-site"), "--for", have});
  RunResult imp = s.must_at(s.site(), {"import", s.stick("to-site")});
  CHECK(imp.out.find("version 2 -> version 3") != std::string::npos);
  CHECK(s.listing(s.site()) == s.listing(s.hq()));
  CHECK(s.must_at(s.site(), {"verify"}).out.find("all good") != std::string::npos);
  // The metadata the site now trusts is the publisher's: status shows the same timestamp.
  auto timestamp_version = [&](const std::string& store) {
    const std::string out = s.must_at(store, {"status", "--json"}).out;
    const auto at = out.find("\"timestamp_version\": ");
    return at == std::string::npos ? std::string("none")
                                   : out.substr(at, out.find_first_of(",\n}", at) - at);
  };
  CHECK(timestamp_version(s.site()) != "none");
  CHECK(timestamp_version(s.site()) == timestamp_version(s.hq()));
}

TEST_CASE("an office that missed two root rotations is brought current by a stick", "[usb]") {
  Sites s;
  s.must_at(s.hq(), {"export", "--to", s.stick("first")});
  s.must_at(s.office(), {"import", s.stick("first"), "--root-pubkey", s.root_hex});
  // The publisher rotates its root key twice (1 -> 2 -> 3), then publishes; HQ follows by link.
  s.keygen("root", s.keys() + "/root2.key");
  s.keygen("root", s.keys() + "/root3.key");
  s.must({"repo", "rotate", s.repo(), "--keys", s.keys(), "--old-root-key", s.keys() + "/root.key",
          "--root-key", s.keys() + "/root2.key"});
  s.must_at(s.hq(), {"sync"});
  s.must({"repo", "rotate", s.repo(), "--keys", s.keys(), "--old-root-key", s.keys() + "/root2.key",
          "--root-key", s.keys() + "/root3.key"});
  s.publish_v2();
  s.must_at(s.hq(), {"sync"});
  const std::string have = s.dir / "office.have";
  s.must_at(s.office(), {"have", "--out", have});
  RunResult exp = s.must_at(s.hq(), {"export", "--to", s.stick("second"), "--for", have});
  CHECK(exp.out.find("left out") == std::string::npos);
  CHECK(fs::exists(s.pack_folder("second")));
  RunResult imp = s.must_at(s.office(), {"import", s.stick("second")});
  CHECK(s.listing(s.office()) == s.listing(s.hq()));
  s.must_at(s.office(), {"have", "--out", have});
  const Bytes have_bytes = read_all(have);
  auto after = packaging::HaveFile::parse({have_bytes.data(), have_bytes.size()});
  REQUIRE(after.ok());
  REQUIRE(after->repos.size() == 1);
  CHECK(after->repos[0].root == 3);
  // A site that trusts only the first root key takes HQ's whole pack the same way.
  s.must_at(s.hq(), {"export", "--to", s.stick("whole")});
  s.must_at(s.site(), {"import", s.stick("whole"), "--root-pubkey", s.root_hex});
  CHECK(s.listing(s.site()) == s.listing(s.hq()));
}

TEST_CASE("sync from a stick says that a stick's content comes in with import", "[usb]") {
  Sites s;
  s.must_at(s.hq(), {"export", "--to", s.stick()});
  s.must_at(s.office(), {"subscribe", s.stick(), "--root-pubkey", s.root_hex});
  RunResult r = s.at(s.office(), {"sync"});
  INFO(r.err << r.out);
  CHECK(r.exit_code != 0);
  CHECK(one_error_line(r));
  CHECK(r.err.find("outpost import") != std::string::npos);
  // The import then brings it all.
  s.must_at(s.office(), {"import", s.stick()});
  CHECK(s.listing(s.office()) == s.listing(s.hq()));
}

TEST_CASE("subscribe accepts a stick as the repository's location, given the root key", "[usb]") {
  Sites s;
  s.must_at(s.hq(), {"export", "--to", s.stick()});
  s.must_at(s.office(), {"subscribe", s.stick(), "--root-pubkey", s.root_hex});
  s.must_at(s.office(), {"import", s.stick()});
  CHECK(s.listing(s.office()) == s.listing(s.hq()));
  // A wrong key is refused, and nothing is trusted.
  RunResult bad = s.at(s.courier(), {"import", s.stick(), "--root-pubkey", s.un_hex});
  CHECK(bad.exit_code != 0);
  CHECK(one_error_line(bad));
  CHECK(bad.err.find("not signed by the root key") != std::string::npos);
}

TEST_CASE("a pack split into small volumes keeps every file under the volume size and imports",
          "[usb]") {
  Sites s;
  s.must_at(s.hq(), {"export", "--to", s.stick(), "--volume-size", "100k"});
  check_fat_rules(s.stick(), 100u << 10);
  std::size_t volumes = files_ending(s.pack_folder(), ".pack").size();
  CHECK(volumes >= 4);
  s.must_at(s.office(), {"import", s.stick(), "--root-pubkey", s.root_hex});
  CHECK(s.listing(s.office()) == s.listing(s.hq()));
}

TEST_CASE(
    "export with --bundle and --max-bytes writes what fits by priority and says what was left out",
    "[usb]") {
  Sites s;
  RunResult one = s.must_at(s.hq(), {"export", "--to", s.stick("one"), "--bundle", kInd});
  CHECK(one.out.find(kInd) != std::string::npos);
  CHECK(one.out.find(kRes) == std::string::npos);
  RunResult small = s.must_at(s.hq(), {"export", "--to", s.stick("small"), "--max-bytes", "60k"});
  CHECK(small.out.find("left out: " + std::string(kRes)) != std::string::npos);
  CHECK(Sites::folder_bytes(s.pack_folder("small")) <= 60u << 10);
  // The office imports what came, and is told exactly what did not.
  RunResult imp = s.at(s.office(), {"import", s.stick("small"), "--root-pubkey", s.root_hex});
  CHECK(imp.exit_code != 0);
  CHECK(imp.err.find(std::string(kRes) + " version 2 is not in the pack") != std::string::npos);
  CHECK(s.must_at(s.office(), {"ls"}).out.find(kInd) != std::string::npos);
  CHECK(s.must_at(s.office(), {"ls"}).out.find(kRes) == std::string::npos);
  // Too small for even the signed metadata: refused before anything is written.
  RunResult tiny = s.at(s.hq(), {"export", "--to", s.stick("tiny"), "--max-bytes", "1k"});
  CHECK(tiny.exit_code != 0);
  CHECK(one_error_line(tiny));
  CHECK_FALSE(fs::exists(s.pack_folder("tiny")));
  RunResult unknown = s.at(s.hq(), {"export", "--to", s.stick("u"), "--bundle", "un/ga/NOPE"});
  CHECK(unknown.exit_code == 2);
  CHECK(one_error_line(unknown));
}

TEST_CASE("an export that does not fit a small stick says so from its plan and writes nothing",
          "[usb]") {
  Sites s;
  const std::string stick = s.stick("small-disk");
  SmallDisk disk(stick, "200k");
  if (!disk.mounted()) {
    if (std::getenv("CI") != nullptr) FAIL("tmpfs: " << disk.why());
    WARN("skipped: " << disk.why());
    return;
  }
  RunResult r = s.at(s.hq(), {"export", "--to", stick});
  INFO(r.err);
  CHECK(r.exit_code != 0);
  CHECK(one_error_line(r));
  CHECK(r.err.find("free") != std::string::npos);
  CHECK(r.err.find("--max-bytes") != std::string::npos);
  CHECK_FALSE(fs::exists(stick + "/outpost-pack"));
  // With --max-bytes of what is free, what fits is written.
  RunResult fit = s.at(s.hq(), {"export", "--to", stick, "--max-bytes", "150k"});
  INFO(fit.err);
  CHECK(fit.exit_code == 0);
}

TEST_CASE("a stick mounted read-only imports", "[usb]") {
  Sites s;
  const std::string stick = s.stick("ro");
  SmallDisk disk(stick, "4m");
  if (!disk.mounted()) {
    if (std::getenv("CI") != nullptr) FAIL("tmpfs: " << disk.why());
    WARN("skipped: " << disk.why());
    return;
  }
  s.must_at(s.hq(), {"export", "--to", stick});
  REQUIRE(::mount("tmpfs", stick.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, "size=4m") == 0);
  RunResult r = s.at(s.office(), {"import", stick, "--root-pubkey", s.root_hex});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(s.listing(s.office()) == s.listing(s.hq()));
  (void)::mount("tmpfs", stick.c_str(), "tmpfs", MS_REMOUNT, "size=4m");
}

// For the tests of a large import: megabytes of random bytes are what they import, not what
// the publisher makes of them. No patch from the previous version (the delta search over 6 MB
// that matches nothing: 30 s of the suite under the sanitizers) and the whole content at
// level 6.
const std::vector<std::string> kQuickPublish{"--patch-ladder", "", "--patch-level", "6"};

TEST_CASE(
    "a chunk tampered deep in a pack larger than the import's hashing queue stops the import "
    "before anything is visible, and the intact pack then imports",
    "[usb]") {
  Sites s;
  // 6 MB of random bytes: several hundred chunks, more than the hashing thread's queue holds.
  write_all(s.resolution_src() + "/annex/big.bin", random_bytes(6 << 20, 11));
  RunResult pub = s.publish_resolution(kQuickPublish);
  INFO(pub.err);
  REQUIRE(pub.exit_code == 0);
  s.must_at(s.hq(), {"sync"});
  s.must_at(s.hq(), {"export", "--to", s.stick("good")});
  s.must_at(s.hq(), {"export", "--to", s.stick("bad")});
  const auto volumes = files_ending(s.pack_folder("bad"), ".pack");
  REQUIRE(volumes.size() == 1);
  // The chunk three quarters of the way in: one byte in the middle of its stored bytes.
  std::vector<packaging::RecordInfo> chunks;
  {
    packaging::PackReaderOptions opt;
    opt.verify_chunks = false;
    auto reader = packaging::PackReader::open_file(volumes[0], opt);
    REQUIRE(reader.ok());
    for (;;) {
      auto rec = (*reader)->next();
      REQUIRE(rec.ok());
      if (!rec->has_value()) break;
      if ((**rec).info.type == packaging::RecordType::kChunk) chunks.push_back((**rec).info);
    }
  }
  REQUIRE(chunks.size() > 200);
  const auto& victim = chunks[chunks.size() * 3 / 4];
  flip_byte(volumes[0], victim.offset + victim.stored_length / 2);

  RunResult bad = s.at(s.office(), {"import", s.stick("bad"), "--root-pubkey", s.root_hex});
  CHECK(bad.exit_code != 0);
  INFO(bad.err);
  CHECK((bad.err.find("does not match its hash") != std::string::npos ||
         bad.err.find("chunk " + crypto::hex(victim.id)) != std::string::npos));
  CHECK(s.must_at(s.office(), {"ls", "--json"}).out.find(kRes) == std::string::npos);
  s.must_at(s.office(), {"import", s.stick("good")});
  CHECK(s.listing(s.office()) == s.listing(s.hq()));
  CHECK(s.must_at(s.office(), {"verify"}).out.find("all good") != std::string::npos);
}

// The import commits a batch on a thread of its own while it reads the next (ChunkBatch's
// background writes): a commit that fails on a full disk still stops the import in one line
// with nothing visible, and a file that repeats chunks taken a batch or two earlier is
// rebuilt from the store only once they are written.
TEST_CASE(
    "an import onto a disk that fills up stops cleanly and completes once there is room, and "
    "repeated content across its batches is rebuilt from what was written",
    "[usb]") {
  Sites s;
  // 6 MB of random bytes, and the same bytes again: the copy's chunks are the first file's.
  const Bytes big = random_bytes(6 << 20, 21);
  write_all(s.resolution_src() + "/annex/big.bin", big);
  write_all(s.resolution_src() + "/annex/copy.bin", big);
  RunResult pub = s.publish_resolution(kQuickPublish);
  INFO(pub.err);
  REQUIRE(pub.exit_code == 0);
  s.must_at(s.hq(), {"sync"});
  s.must_at(s.hq(), {"export", "--to", s.stick()});

  const std::string disk_dir = s.dir / "office-disk";
  SmallDisk disk(disk_dir, "3m");
  if (!disk.mounted()) {
    if (std::getenv("CI") != nullptr) FAIL("tmpfs: " << disk.why());
    WARN("skipped: " << disk.why());
    return;
  }
  const std::string office = disk_dir + "/store";
  RunResult full = s.at(office, {"import", s.stick(), "--root-pubkey", s.root_hex});
  INFO(full.err);
  CHECK(full.exit_code != 0);
  CHECK(full.exit_code < 128);
  CHECK(one_error_line(full));
  CHECK(full.err.find("full") != std::string::npos);
  CHECK(s.at(office, {"ls", "--json"}).out.find(kRes) == std::string::npos);

  REQUIRE(disk.resize("64m"));
  s.must_at(office, {"import", s.stick()});
  CHECK(s.listing(office) == s.listing(s.hq()));
  CHECK(s.must_at(office, {"verify"}).out.find("all good") != std::string::npos);
  RunResult copy = s.must_at(office, {"cat", kRes, "annex/copy.bin"});
  CHECK(copy.out == std::string(big.begin(), big.end()));
}

TEST_CASE("export --lang writes README.txt in the office's languages after the English", "[usb]") {
  Sites s;
  s.must_at(s.hq(), {"export", "--to", s.stick("plain")});
  const std::string plain = read_text(s.stick("plain") + "/outpost-pack/README.txt");
  CHECK(plain.rfind("OUTPOST PACK", 0) == 0);  // English only: no byte order mark
  CHECK(plain.find("Branchez") == std::string::npos);

  s.must_at(s.hq(), {"export", "--to", s.stick("fr-ar"), "--lang", "fr,ar", "--note", "Tel. 123"});
  const std::string readme = read_text(s.stick("fr-ar") + "/outpost-pack/README.txt");
  CHECK(readme.rfind("\xEF\xBB\xBFOUTPOST PACK", 0) == 0);  // UTF-8, marked for Notepad
  const std::size_t en = readme.find("outpost import <where the stick is>/outpost-pack");
  const std::size_t fr = readme.find("Branchez cette cl\u00e9.");
  // "outpost verifies every signature before it shows anything", in Arabic.
  const std::size_t ar = readme.find(
      "\u064a\u062a\u062d\u0642\u0642 outpost \u0645\u0646 \u0643\u0644 "
      "\u062a\u0648\u0642\u064a\u0639");
  CHECK(en != std::string::npos);
  CHECK(fr != std::string::npos);
  CHECK(ar != std::string::npos);
  CHECK((en < fr && fr < ar));
  CHECK(readme.find("Tel. 123") > ar);
  CHECK(readme.find("{date}") == std::string::npos);
  CHECK(readme.find("{for}") == std::string::npos);
  // The README is not part of what is verified: the pack imports as before.
  s.must_at(s.office(), {"import", s.stick("fr-ar"), "--root-pubkey", s.root_hex});
  CHECK(s.listing(s.office()) == s.listing(s.hq()));

  // A language outpost has no text for is refused before anything is written.
  RunResult bad = s.at(s.hq(), {"export", "--to", s.stick("xx"), "--lang", "fr,xx"});
  CHECK(bad.exit_code != 0);
  CHECK(bad.err.find("no README.txt text in language 'xx'") != std::string::npos);
  CHECK(!fs::exists(s.stick("xx") + "/outpost-pack/README.txt"));
}

TEST_CASE("a have-file of 1,000 bundles is under 4 KB and round-trips", "[usb]") {
  packaging::HaveFile h;
  h.created = 1700000000;
  packaging::HaveRepo r;
  r.id = "fda04fde9a8b2c0a";
  r.root = 3;
  r.timestamp = 812;
  r.snapshot = 640;
  for (int i = 0; i < 700; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "un/ga/A-RES-%d-%d", 70 + i / 300, 1 + i % 300);
    r.bundles[name] = {static_cast<std::uint64_t>(1 + i % 3),
                       static_cast<std::uint64_t>(2 + i % 3)};
  }
  for (int i = 0; i < 300; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "itu/ict/indicator-%03d", i);
    r.bundles[name] = {static_cast<std::uint64_t>(10 + i % 7)};
  }
  h.repos.push_back(r);
  Bytes b = h.encode();
  INFO(b.size());
  CHECK(b.size() < 4096);
  auto back = packaging::HaveFile::parse({b.data(), b.size()});
  REQUIRE(back.ok());
  CHECK(*back == h);
}

}  // namespace
}  // namespace outpost::test
