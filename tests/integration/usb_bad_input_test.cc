// The bad-input sweep of issue 9 through the `outpost` binary: one test each. Every case ends
// with one clear error (or a clear list of what is missing), nothing half-imported (each
// bundle is as before or whole at its new version, and verify finds nothing wrong), and the
// intact pack still imports afterwards.
//
// The sweeps have a short CI form; OUTPOST_USB_SWEEP=full runs the long one (500 offsets).
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "integration/usb_fixture.h"
#include "outpost/base/json.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/have_file.h"
#include "outpost/packaging/pack.h"
#include "outpost/packaging/stick.h"

namespace outpost::test {
namespace {

namespace fs = std::filesystem;
constexpr const char* kRes = "un/ga/A-RES-75-202";

bool full_sweep() {
  const char* v = std::getenv("OUTPOST_USB_SWEEP");
  return v != nullptr && std::string(v) == "full";
}

// Made once for the whole file (publishing and syncing is the slow part): HQ holding the
// resolution's newest version, an office holding the one before, and packs of both.
struct World : Sites {
  World() {
    must_at(hq(), {"export", "--to", stick("old")});
    must_at(office(), {"import", stick("old"), "--root-pubkey", root_hex});
    publish_v2();
    must_at(hq(), {"sync"});
    must_at(hq(), {"export", "--to", stick("new")});
    must_at(hq(), {"export", "--to", stick("multi"), "--volume-size", "100k"});
    office_listing = listing(office());
    hq_listing = listing(hq());
  }
  std::string office_listing, hq_listing;
};

World& world() {
  static World w;
  return w;
}

// One case: a copy of the office's store and of a pack, to damage at will.
struct Case {
  explicit Case(const std::string& pack = "new") {
    World& w = world();
    copy_tree(w.office(), store());
    copy_tree(w.pack_folder(pack), folder());
  }
  TempDir dir;
  std::string store() const { return dir / "store"; }
  std::string folder() const { return dir / "outpost-pack"; }
  std::string volume(std::size_t i = 0) const { return files_ending(folder(), ".pack").at(i); }
  std::string index() const { return files_ending(folder(), ".json").at(0); }
  RunResult run(std::vector<std::string> args) const {
    args.push_back("--store");
    args.push_back(store());
    return run_outpost(args);
  }
  RunResult import() const { return run({"import", folder()}); }
  // Each bundle is as the office had it or as HQ has it, and verify is clean.
  // (verify rehashes the store: the sweeps run it on every tenth case, to stay fast in CI.)
  void check_consistent(bool verify = true) const {
    auto bundles = [](const std::string& ls) {
      std::map<std::string, std::string> out;
      auto j = parse_json(ls);
      REQUIRE(j.ok());
      for (const Json& b : j->as_array()) out[b.find("name")->as_string()] = b.canonical();
      return out;
    };
    RunResult ls = run({"ls", "--json"});
    REQUIRE(ls.exit_code == 0);
    auto now = bundles(shown(ls.out));
    auto before = bundles(world().office_listing);
    auto after = bundles(world().hq_listing);
    for (const auto& [name, shown_now] : now) {
      INFO(name);
      CHECK((shown_now == before[name] || shown_now == after[name]));
    }
    if (verify) CHECK(run({"verify"}).out.find("all good") != std::string::npos);
  }
  bool unchanged() const { return shown(run({"ls", "--json"}).out) == world().office_listing; }
  // The intact pack imports whole afterwards.
  void check_recovers() const {
    RunResult r = run({"import", world().pack_folder("new")});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(shown(run({"ls", "--json"}).out) == world().hq_listing);
  }
};

std::uint64_t next_random(std::uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

// Rewrites a volume record by record through `edit` (which may change a record's name or
// stored bytes), and the index to name the new volume. The records are written by hand, as
// a hostile exporter would, so names PackWriter refuses get onto the stick too.
void rewrite_volume(const Case& c, const std::function<void(packaging::PackRecord&)>& edit) {
  const std::string old_path = c.volume();
  Bytes old = read_all(old_path);
  auto reader = packaging::PackReader::from_memory({old.data(), old.size()}, "volume");
  Bytes out(packaging::kPackMagic, packaging::kPackMagic + 8);
  auto le = [&](std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  };
  std::uint64_t count = 0;
  for (;;) {
    auto rec = reader->next();
    REQUIRE(rec.ok());
    if (!rec->has_value()) break;
    packaging::PackRecord r = std::move(**rec);
    edit(r);
    out.push_back(static_cast<std::uint8_t>(r.info.type));
    out.insert(out.end(), r.info.id.begin(), r.info.id.end());
    le(r.info.type == packaging::RecordType::kChunk ? r.info.raw_length : r.stored.size(), 8);
    le(r.stored.size(), 8);
    le(r.info.name.size(), 2);
    out.insert(out.end(), r.info.name.begin(), r.info.name.end());
    out.insert(out.end(), r.stored.begin(), r.stored.end());
    ++count;
  }
  crypto::Digest sum = crypto::blake2b({out.data(), out.size()});
  out.push_back(packaging::kTrailerType);
  out.insert(out.end(), sum.begin(), sum.end());
  le(count, 8);
  const crypto::Digest id = crypto::blake2b({out.data(), out.size()});
  fs::remove(old_path);
  write_all(c.folder() + "/" + packaging::volume_name(id), {out.data(), out.size()});
  Bytes ib = read_all(c.index());
  auto index = packaging::StickIndex::parse({ib.data(), ib.size()});
  REQUIRE(index.ok());
  REQUIRE(index->volumes.size() == 1);
  index->volumes[0] = {packaging::volume_name(id), out.size(), id};
  Bytes enc = index->encode();
  write_all(c.index(), {enc.data(), enc.size()});
}

TEST_CASE("a pack truncated at random offsets imports nothing half and says what is missing",
          "[usb][usb-bad-input]") {
  const std::size_t count = full_sweep() ? 500 : 50;
  const std::uint64_t size = fs::file_size(Case().volume());
  std::uint64_t seed = 0x9e3779b97f4a7c15ull;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t cut = 1 + next_random(seed) % (size - 1);
    INFO("truncated at " << cut << " of " << size);
    Case c;
    fs::resize_file(c.volume(), cut);
    RunResult r = c.import();
    CHECK(r.exit_code != 0);
    CHECK(r.err.find("outpost: ") == 0);
    CHECK(r.err.find("truncated") != std::string::npos);
    c.check_consistent(i % 10 == 0);
    if (i == 0) c.check_recovers();
  }
}

TEST_CASE("a flipped byte anywhere in a pack or its index never imports wrong content",
          "[usb][usb-bad-input]") {
  const std::size_t count = full_sweep() ? 400 : 25;
  const std::uint64_t size = fs::file_size(Case().volume());
  std::uint64_t seed = 12345;
  for (std::size_t i = 0; i < count; ++i) {
    Case c;
    const bool in_index = i % 5 == 4;
    const std::string file = in_index ? c.index() : c.volume();
    const std::uint64_t at = next_random(seed) % (in_index ? fs::file_size(file) : size);
    INFO((in_index ? "index" : "volume") << " byte " << at);
    flip_byte(file, at);
    RunResult r = c.import();
    // A flip in the index's free text is harmless; anything else is an error.
    if (r.exit_code == 0) {
      CHECK(in_index);
    } else {
      CHECK(r.err.find("outpost: ") == 0);
    }
    c.check_consistent(i % 5 == 0);
  }
}

TEST_CASE("a missing volume loses only what it held, and says which", "[usb][usb-bad-input]") {
  Case c("multi");
  const auto volumes = files_ending(c.folder(), ".pack");
  REQUIRE(volumes.size() >= 3);
  const std::string gone = volumes[1];
  const Bytes keep = read_all(gone);
  fs::remove(gone);
  RunResult r = c.import();
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("is missing") != std::string::npos);
  CHECK(r.err.find(fs::path(gone).filename().string()) != std::string::npos);
  c.check_consistent();
  write_all(gone, {keep.data(), keep.size()});
  RunResult again = c.import();
  INFO(again.err);
  CHECK(again.exit_code == 0);
  CHECK(shown(c.run({"ls", "--json"}).out) == world().hq_listing);
}

TEST_CASE("a volume listed twice is refused with one error and nothing changes",
          "[usb][usb-bad-input]") {
  Case c("multi");
  std::string text = read_text(c.index());
  const std::size_t a = text.find("{", text.find("\"volumes\""));
  const std::size_t b = text.find("}", a);
  text.insert(b + 1, "," + text.substr(a, b + 1 - a));
  write_text(c.index(), text);
  RunResult r = c.import();
  CHECK(r.exit_code != 0);
  CHECK(one_error_line(r));
  CHECK(r.err.find("listed twice") != std::string::npos);
  CHECK(c.unchanged());
}

TEST_CASE("volumes in another order, or swapped names, still import only verified content",
          "[usb][usb-bad-input]") {
  {
    Case c("multi");
    Bytes ib = read_all(c.index());
    auto index = packaging::StickIndex::parse({ib.data(), ib.size()});
    REQUIRE(index.ok());
    std::reverse(index->volumes.begin(), index->volumes.end());
    Bytes enc = index->encode();
    write_all(c.index(), {enc.data(), enc.size()});
    RunResult r = c.import();
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(shown(c.run({"ls", "--json"}).out) == world().hq_listing);
  }
  {
    Case c("multi");
    const auto volumes = files_ending(c.folder(), ".pack");
    fs::rename(volumes[0], c.folder() + "/x");
    fs::rename(volumes[1], volumes[0]);
    fs::rename(c.folder() + "/x", volumes[1]);
    RunResult r = c.import();
    CHECK(r.err.find("is not the volume its name says") != std::string::npos);
    c.check_consistent();
  }
}

TEST_CASE("a pack from another repository is refused with its root key to check",
          "[usb][usb-bad-input]") {
  Published other;
  RunResult sub = other.node({"subscribe", other.repo(), "--root-pubkey", other.root_hex});
  REQUIRE(sub.exit_code == 0);
  REQUIRE(other.node({"sync"}).exit_code == 0);
  TempDir stick;
  REQUIRE(other.node({"export", "--to", stick.path()}).exit_code == 0);
  Case c;
  const Bytes before = store_snapshot(c.store());
  RunResult r = c.run({"import", stick.path()});
  CHECK(r.exit_code != 0);
  CHECK(one_error_line(r));
  CHECK(r.err.find("does not trust") != std::string::npos);
  CHECK(r.err.find(other.root_hex) != std::string::npos);
  CHECK(store_snapshot(c.store()) == before);
}

TEST_CASE("an older pack (rollback) changes nothing and says so", "[usb][usb-bad-input]") {
  Case c;
  REQUIRE(c.import().exit_code == 0);
  const Bytes before = store_snapshot(c.store());
  RunResult r = c.run({"import", world().pack_folder("old")});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("older than what this node holds") != std::string::npos);
  CHECK(store_snapshot(c.store()) == before);
}

TEST_CASE("traversal names, symlinks, devices and a folder of many files are refused",
          "[usb][usb-bad-input]") {
  SECTION("records named to leave the store or the stick are never used as paths") {
    Case c;
    rewrite_volume(c, [](packaging::PackRecord& r) {
      if (r.info.type == packaging::RecordType::kIndex) r.info.name = "../../../../tmp/evil.index";
    });
    RunResult r = c.import();
    CHECK(r.exit_code != 0);
    CHECK(r.err.find("'..' segment") != std::string::npos);
    CHECK_FALSE(fs::exists("/tmp/evil.index"));
    c.check_consistent();
  }
  SECTION("a volume that is a symlink is not read") {
    Case c;
    const std::string v = c.volume();
    const std::string real = c.dir / "elsewhere.pack";
    fs::rename(v, real);
    fs::create_symlink(real, v);
    RunResult r = c.import();
    CHECK(r.exit_code != 0);
    CHECK(r.err.find("not a regular file") != std::string::npos);
    c.check_consistent();
  }
  SECTION("an index that is a symlink is refused") {
    Case c;
    const std::string i = c.index();
    fs::rename(i, c.dir / "index.json");
    fs::create_symlink(c.dir / "index.json", i);
    RunResult r = c.import();
    CHECK(r.exit_code != 0);
    CHECK(one_error_line(r));
    CHECK(c.unchanged());
  }
  SECTION("a device (a FIFO) in place of a volume is not opened") {
    Case c;
    const std::string v = c.volume();
    fs::remove(v);
    REQUIRE(::mkfifo(v.c_str(), 0600) == 0);
    RunResult r = c.import();
    CHECK(r.exit_code != 0);
    CHECK(r.err.find("not a regular file") != std::string::npos);
    c.check_consistent();
  }
  SECTION("a pack folder of more files than any export writes is refused") {
    Case c;
    for (std::size_t i = 0; i <= packaging::kMaxStickFolderEntries; ++i) {
      write_text(c.folder() + "/f" + std::to_string(i), "");
    }
    RunResult r = c.import();
    CHECK(r.exit_code != 0);
    CHECK(one_error_line(r));
    CHECK(r.err.find("more than a pack folder ever has") != std::string::npos);
    CHECK(c.unchanged());
  }
}

TEST_CASE("a zstd bomb in a chunk is refused without decompressing it", "[usb][usb-bad-input]") {
  Case c;
  packaging::Compressor comp(3);
  // Small enough to pass for the frame of a large chunk; it would inflate to 4 MB.
  Bytes zeros(4u << 20, 0);
  Bytes bomb = comp.compress({zeros.data(), zeros.size()}).value();
  zeros = Bytes();
  bool planted = false;
  rewrite_volume(c, [&](packaging::PackRecord& r) {
    if (r.info.type == packaging::RecordType::kChunk && r.info.raw_length >= 4096) {
      r.stored = bomb;
      planted = true;
    }
  });
  REQUIRE(planted);
  // A new node, which lacks every chunk.
  const std::string fresh = c.dir / "fresh";
  RunResult r =
      run_outpost({"import", c.folder(), "--root-pubkey", world().root_hex, "--store", fresh});
  INFO(r.err);
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("decompression bomb") != std::string::npos);
  RunResult ls = run_outpost({"ls", "--store", fresh});
  CHECK(ls.out.find(kRes) == std::string::npos);
  CHECK(run_outpost({"verify", "--store", fresh}).out.find("all good") != std::string::npos);
}

TEST_CASE("a have-file that is corrupt, from another repository or claims unknown versions",
          "[usb][usb-bad-input]") {
  World& w = world();
  TempDir d;
  const std::string have = d / "office.have";
  w.must_at(w.office(), {"have", "--out", have});
  SECTION("corrupt: refused, nothing written") {
    flip_byte(have, fs::file_size(have) / 2);
    RunResult r = w.at(w.hq(), {"export", "--to", d.path(), "--for", have});
    CHECK(r.exit_code != 0);
    CHECK(one_error_line(r));
    CHECK(r.err.find("have-file is damaged") != std::string::npos);
    CHECK_FALSE(fs::exists(d / "outpost-pack"));
  }
  SECTION("from another repository: refused, naming it") {
    Bytes b = read_all(have);
    auto h = packaging::HaveFile::parse({b.data(), b.size()});
    REQUIRE(h.ok());
    h->repos[0].id = "0123456789abcdef";
    Bytes enc = h->encode();
    write_all(have, {enc.data(), enc.size()});
    RunResult r = w.at(w.hq(), {"export", "--to", d.path(), "--for", have});
    CHECK(r.exit_code != 0);
    CHECK(one_error_line(r));
    CHECK(r.err.find("0123456789abcdef") != std::string::npos);
    CHECK_FALSE(fs::exists(d / "outpost-pack"));
  }
  SECTION("claiming a version that does not exist: that bundle is left out, with the reason") {
    Bytes b = read_all(have);
    auto h = packaging::HaveFile::parse({b.data(), b.size()});
    REQUIRE(h.ok());
    h->repos[0].bundles[kRes] = {99};
    Bytes enc = h->encode();
    write_all(have, {enc.data(), enc.size()});
    RunResult r = w.at(w.hq(), {"export", "--to", d.path(), "--for", have});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("claims version 99") != std::string::npos);
  }
  SECTION("not a have-file at all (too large)") {
    write_all(have, random_bytes(5u << 20, 3));
    RunResult r = w.at(w.hq(), {"export", "--to", d.path(), "--for", have});
    CHECK(r.exit_code != 0);
    CHECK(one_error_line(r));
  }
}

}  // namespace
}  // namespace outpost::test
