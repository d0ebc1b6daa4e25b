// Round trip at scale: a generated tree of 10,000 files and about 200 MB goes through publish,
// sync and checkout and comes back byte for byte; later releases with small edits move only
// a few chunks. "(large)" in the names keeps these out of the sanitizer build.
#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "fixture.h"
#include "outpost/base/json.h"

using namespace outpost::test;
namespace fs = std::filesystem;

namespace {

constexpr const char* kBundle = "un/ga/large-corpus";

struct Rng {
  std::uint64_t x;
  explicit Rng(std::uint64_t seed) : x(seed * 0x9E3779B97F4A7C15ull + 7) {}
  std::uint64_t next() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  }
  std::uint64_t below(std::uint64_t n) { return (next() >> 11) % n; }
};

// Text like an indicator export: CSV rows of codes, years and numbers. Compresses about 3:1
// and, unlike repeated text, gives content-defined chunking cut points everywhere.
std::string csv_text(std::size_t n, std::uint64_t seed) {
  static const char* const kSeries[] = {"SI_POV_DAY1", "IT_USE_ii99", "IT_MOB_4GNTWK",
                                        "SE_TOT_CPLR", "SH_STA_MORT", "EN_ATM_CO2"};
  static const char* const kAreas[] = {
      "World",           "Africa", "Asia", "Europe", "Oceania", "Latin America and the Caribbean",
      "Northern America"};
  Rng rng(seed);
  std::string out;
  out.reserve(n + 128);
  while (out.size() < n) {
    out += kSeries[rng.below(6)];
    out += ',';
    out += kAreas[rng.below(7)];
    out += ',';
    out += std::to_string(2000 + rng.below(24));
    out += ',';
    out += std::to_string(rng.below(100000));
    out += '.';
    out += std::to_string(rng.below(1000));
    out += ",PERCENT\n";
  }
  out.resize(n);
  return out;
}

void write_string(const std::string& path, const std::string& s) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
  REQUIRE(out);
}

// A big file: 1 MiB blocks, alternately incompressible random bytes and CSV text.
void write_big_file(const std::string& path, std::size_t size, std::uint64_t seed) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  constexpr std::size_t kBlock = 1u << 20;
  for (std::size_t at = 0, i = 0; at < size; at += kBlock, ++i) {
    const std::size_t n = std::min(kBlock, size - at);
    if (i % 2 == 0) {
      const outpost::Bytes b = random_bytes(n, seed * 1000 + i);
      out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(n));
    } else {
      const std::string t = csv_text(n, seed * 1000 + i);
      out.write(t.data(), static_cast<std::streamsize>(n));
    }
  }
  REQUIRE(out);
}

struct Tree {
  std::vector<std::string> paths;  // relative
  std::uint64_t bytes = 0;
};

// 9,950 small text files (100 B to 8 KB, many under the 2 KiB minimum chunk) in 50 folders,
// 48 files of 3 MiB and 2 of 10 MiB: 10,000 files, about 200 MB. Deterministic from seed.
Tree make_tree(const std::string& root, std::uint64_t seed) {
  Tree t;
  Rng rng(seed);
  for (int i = 0; i < 9950; ++i) {
    const std::string dir = "regions/r" + std::to_string(i % 50);
    if (i < 50) make_dirs(root + "/" + dir);
    const std::string rel = dir + "/series-" + std::to_string(i) + ".csv";
    const std::size_t size = 100 + rng.below(8000);
    write_string(root + "/" + rel, csv_text(size, seed + static_cast<std::uint64_t>(i)));
    t.paths.push_back(rel);
    t.bytes += size;
  }
  make_dirs(root + "/big");
  for (int i = 0; i < 50; ++i) {
    const std::string rel = "big/part-" + std::to_string(i) + ".bin";
    const std::size_t size = i < 2 ? (10u << 20) : (3u << 20);
    write_big_file(root + "/" + rel, size, seed + 100000 + static_cast<std::uint64_t>(i));
    t.paths.push_back(rel);
    t.bytes += size;
  }
  return t;
}

// Streams both files in 1 MiB blocks: equal size and bytes. The buffers are allocated once:
// a fresh pair per file costs a million page faults over 10,000 files.
bool same_file(const std::string& a, const std::string& b) {
  std::error_code ea, eb;
  if (fs::file_size(a, ea) != fs::file_size(b, eb) || ea || eb) return false;
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  static std::vector<char> ba(1u << 20), bb(1u << 20);
  while (fa && fb) {
    fa.read(ba.data(), static_cast<std::streamsize>(ba.size()));
    fb.read(bb.data(), static_cast<std::streamsize>(bb.size()));
    if (fa.gcount() != fb.gcount()) return false;
    if (!std::equal(ba.begin(), ba.begin() + fa.gcount(), bb.begin())) return false;
  }
  return fa.eof() && fb.eof();
}

std::size_t count_files(const std::string& dir) {
  std::size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

// Overwrites bytes at offset in place.
void patch_file(const std::string& path, std::uint64_t offset, const std::string& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f);
}

// Inserts bytes at offset, streaming through a temp file.
void insert_into_file(const std::string& path, std::uint64_t offset, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  {
    std::ifstream in(path, std::ios::binary);
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    std::vector<char> head(static_cast<std::size_t>(offset));
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    REQUIRE(in.gcount() == static_cast<std::streamsize>(offset));
    out.write(head.data(), static_cast<std::streamsize>(head.size()));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out << in.rdbuf();
    REQUIRE(out);
  }
  fs::rename(tmp, path);
}

// The "updated" entry for kBundle in `sync --json` output.
struct Update {
  std::int64_t to = 0;
  std::int64_t chunks_fetched = -1;
  std::int64_t chunks_held = -1;
  std::int64_t bytes_read = -1;
  std::string route;
};

Update update_of(const std::string& sync_json) {
  auto j = outpost::parse_json(sync_json);
  REQUIRE(j.ok());
  Update u;
  for (const outpost::Json& repo : j->as_array()) {
    for (const outpost::Json& item : repo.find("updated")->as_array()) {
      if (item.find("bundle")->as_string() != kBundle) continue;
      u.to = item.find("to")->as_int();
      u.chunks_fetched = item.find("chunks_fetched")->as_int();
      u.chunks_held = item.find("chunks_held")->as_int();
      u.bytes_read = repo.find("bytes_read")->as_int();
      u.route = item.find("route")->as_string();
    }
  }
  return u;
}

}  // namespace

TEST_CASE(
    "10,000 files and 200 MB round-trip byte for byte, and small edits move few chunks "
    "(large)",
    "[integration][large]") {
  Published p;
  const std::string src = p.dir / "src/large";
  const Tree tree = make_tree(src, 20240601);
  REQUIRE(tree.paths.size() == 10000);
  REQUIRE(tree.bytes > 190'000'000);
  REQUIRE(tree.bytes < 215'000'000);

  auto publish = [&] {
    // The whole content at zstd level 6 (not 19) and the chunks at 3 (not 12): the first
    // publish takes 7 s instead of 69, and every step (chunks, segments, the patch from 0, the
    // route choice) is the same at any level.
    RunResult pub =
        p.outpost({"publish", p.repo(), "--key", p.keys() + "/un.key", "--keys", p.keys(),
                   "--bundle", kBundle, "--patch-level", "6", "--level", "3", src});
    INFO(pub.err);
    REQUIRE(pub.exit_code == 0);
  };
  auto sync = [&] {
    RunResult r = p.node({"sync", "--json"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return update_of(r.out);
  };
  auto checkout_matches = [&](const std::string& out) {
    RunResult co = p.node({"checkout", kBundle, out});
    INFO(co.err);
    REQUIRE(co.exit_code == 0);
    CHECK(count_files(out) == tree.paths.size());
    std::size_t different = 0;
    for (const auto& rel : tree.paths) {
      if (!same_file(src + "/" + rel, out + "/" + rel)) {
        ++different;
        UNSCOPED_INFO("differs after checkout: " << rel);
      }
    }
    CHECK(different == 0);
    fs::remove_all(out);
  };

  // Release 1: everything.
  publish();
  REQUIRE(p.subscribe().exit_code == 0);
  const Update first = sync();
  CHECK(first.to == 1);
  CHECK(first.route == "full");  // the whole content, compressed, in one download
  {
    // The download was kept in the store as it came, then its pages took the chunks: the
    // store's file is not the object plus the content (twice the packs on an SD card).
    RunResult st = p.node({"status", "--json"});
    INFO(st.err);
    REQUIRE(st.exit_code == 0);
    auto j = outpost::parse_json(st.out);
    REQUIRE(j.ok());
    const auto file = static_cast<double>(j->find("file_bytes")->as_int());
    const auto in_use = static_cast<double>(j->find("in_use_bytes")->as_int());
    INFO("store file " << file << " B, pages in use " << in_use << " B");
    CHECK(file <= 1.3 * in_use);
  }
  checkout_matches(p.dir / "out1");

  // Release 2: a few bytes changed in three small files and two big ones.
  patch_file(src + "/regions/r7/series-7.csv", 40, "12345.678");
  patch_file(src + "/regions/r8/series-1058.csv", 10, "99");
  patch_file(src + "/regions/r9/series-9909.csv", 0, "EN_ATM_CH4");
  patch_file(src + "/big/part-5.bin", 1'500'000, "a corrected value");
  patch_file(src + "/big/part-6.bin", 2'500'000, "another correction");
  publish();
  // Without patches (a mirror that lost them), the chunk route fetches at most two chunks per
  // edit. The publisher's own copy keeps them: they are set aside for this sync only.
  const fs::path aside = p.dir / "patches-aside";
  fs::create_directories(aside);
  std::vector<std::pair<fs::path, fs::path>> moved;
  for (const auto& f : files_ending(p.repo() + "/objects", ".patch")) {
    const fs::path to = aside / fs::path(f).filename();
    fs::rename(f, to);
    moved.emplace_back(to, f);
  }
  REQUIRE(!moved.empty());
  const Update second = sync();
  for (const auto& [from, to] : moved) fs::rename(from, to);
  CHECK(second.to == 2);
  CHECK(second.route == "chunks");
  CHECK(second.chunks_fetched >= 5);
  CHECK(second.chunks_fetched <= 10);  // at most two chunks per edit
  INFO("release 2 read " << second.bytes_read << " bytes");

  // Release 3: one byte inserted near the start of a 10 MB file.
  insert_into_file(src + "/big/part-0.bin", 1000, "!");
  publish();
  // 200 MB is above the publisher's limit for ladder patches (max_ladder_stream, 128 MiB):
  // only the whole content is offered besides the chunks, and the chunks win.
  const Update third = sync();
  CHECK(third.to == 3);
  CHECK(third.route == "chunks");
  CHECK(third.chunks_fetched >= 1);
  CHECK(third.chunks_fetched <= 3);
  checkout_matches(p.dir / "out3");

  RunResult verify = p.node({"verify"});
  INFO(verify.out << verify.err);
  CHECK(verify.exit_code == 0);
}
