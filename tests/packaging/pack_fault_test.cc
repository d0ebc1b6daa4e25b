// Pack files on a failing disk or stick: a full disk, a power cut or a pulled stick while a
// pack is written leaves no pack under a pack name, or a complete one; never part of one.
#include <catch2/catch.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "outpost/crypto/hash.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/pack.h"
#include "support/crash_at.h"
#include "support/fault_fs.h"
#include "support/test_support.h"

namespace outpost::packaging {
namespace {

using Catch::Matchers::Contains;
using test::FaultFileSystem;
using Op = FaultFileSystem::Op;
using Crash = FaultFileSystem::Crash;

// Chunks large enough that a pack takes several buffer flushes (the writer buffers 256 KiB).
struct Chunk {
  crypto::Digest id;
  std::uint64_t raw_length;
  Bytes frame;
};
const std::vector<Chunk>& chunks() {
  static const std::vector<Chunk> all = [] {
    REQUIRE(crypto::init());
    Compressor c;
    std::vector<Chunk> out;
    for (std::uint64_t i = 0; i < 12; ++i) {
      Bytes raw = test::random_bytes(60000 + 1000 * i, i + 1);  // incompressible
      auto frame = c.compress(raw);
      REQUIRE(frame.ok());
      out.push_back({crypto::blake2b(raw), raw.size(), std::move(frame).value()});
    }
    return out;
  }();
  return all;
}

// Writes every chunk into a pack in dir through fs; the first error, or the pack.
// `between` runs before each chunk with the number written so far (to crash, pull the stick).
Result<PackFileInfo> write_pack(FileSystem& fs, const std::string& dir,
                                const std::function<void(std::size_t)>& between = {}) {
  OUTPOST_ASSIGN_OR_RETURN(auto w, PackFileWriter::create(dir, fs));
  std::size_t n = 0;
  for (const Chunk& c : chunks()) {
    if (between) between(n);
    ++n;
    auto at = w->writer().add_chunk(c.id, c.raw_length, c.frame);
    if (!at.ok()) return at.error();
  }
  OUTPOST_RETURN_IF_ERROR(
      w->writer()
          .add_file(RecordType::kMetadata, "1.root.json", as_bytes("{\"signed\":{}}"))
          .status());
  return w->commit();
}

// Every name in dir: "" when empty. After a fault there may be no pack, or complete ones
// (checked record by record); never a partial pack, and no temp file.
std::vector<std::string> packs_in(const std::string& dir) {
  auto entries = real_fs().list_dir(dir);
  REQUIRE(entries.ok());
  std::vector<std::string> names;
  for (const auto& e : *entries) {
    INFO("entry " << e.name);
    REQUIRE(e.name.size() > 5);
    REQUIRE(e.name.substr(e.name.size() - 5) == ".pack");
    auto reader = PackReader::open_file(join_path(dir, e.name));
    REQUIRE(reader.ok());
    Status s = (*reader)->for_each([](const PackRecord&) { return Status::Ok(); });
    INFO(s.message());
    CHECK(s.ok());
    CHECK((*reader)->record_count() == chunks().size() + 1);
    names.push_back(e.name);
  }
  return names;
}

std::uint64_t pack_size() {
  test::TempDir dir;
  FaultFileSystem fs;
  auto info = write_pack(fs, dir.path());
  REQUIRE(info.ok());
  CHECK(fs.bytes_appended() == info->size);
  return info->size;
}

TEST_CASE("a disk that fills mid-pack stops with 'disk full' and leaves no pack",
          "[packaging][pack][fault]") {
  const std::uint64_t size = pack_size();
  REQUIRE(size > 2 * (256u << 10));
  for (std::uint64_t n :
       {std::uint64_t{0}, std::uint64_t{7}, std::uint64_t{256u << 10}, size / 2, size - 1}) {
    INFO("disk full after " << n << " of " << size << " bytes");
    test::TempDir dir;
    FaultFileSystem fs;
    fs.fail_writes_after(n);
    auto info = write_pack(fs, dir.path());
    REQUIRE_FALSE(info.ok());
    CHECK(info.error().code() == Code::kResourceExhausted);
    CHECK_THAT(info.error().message(), Contains("free some space"));
    CHECK(packs_in(dir.path()).empty());
  }
}

TEST_CASE("a power cut while a pack is written leaves no pack or a complete one",
          "[packaging][pack][fault]") {
  for (Crash mode : {Crash::kDropUnsynced, Crash::kTearUnsynced}) {
    INFO("torn: " << (mode == Crash::kTearUnsynced));
    // Cut in the middle: nothing was committed, nothing is there. CI cuts before chunk 7;
    // OUTPOST_POWER_CUTS=all before each chunk.
    int cuts = 0;
    for (std::size_t at = 0; at < chunks().size(); ++at) {
      if (at != 7 && !test::power_cuts_all()) continue;
      INFO("cut before chunk " << at);
      test::TempDir dir;
      FaultFileSystem fs;
      auto info = write_pack(fs, dir.path(), [&](std::size_t n) {
        if (n == at) fs.simulate_crash(mode);
      });
      CHECK_FALSE(info.ok());  // the open file died with the power
      CHECK(packs_in(dir.path()).empty());
      ++cuts;
    }
    std::cout << "power cuts pack at chunk boundaries ("
              << (mode == Crash::kDropUnsynced ? "unsynced dropped" : "unsynced torn")
              << "): " << cuts << " cuts, " << cuts << " left no pack\n";
    // Cut after commit: the pack is whole.
    {
      test::TempDir dir;
      FaultFileSystem fs;
      auto info = write_pack(fs, dir.path());
      REQUIRE(info.ok());
      fs.simulate_crash(mode);
      CHECK(packs_in(dir.path()) == std::vector<std::string>{crypto::hex(info->id) + ".pack"});
    }
    // Cut between the rename and the directory's fsync (which failed): the rename is lost,
    // and with it the pack; what is left is never a partial pack.
    {
      test::TempDir dir;
      FaultFileSystem fs;
      fs.fail(Op::kSyncDir, "", EIO, 1);
      auto info = write_pack(fs, dir.path());
      CHECK(info.error().code() == Code::kUnavailable);
      fs.simulate_crash(mode);
      CHECK(packs_in(dir.path()).empty());
    }
    // Cut after the data was written but before it was synced (the fsync fails).
    {
      test::TempDir dir;
      FaultFileSystem fs;
      fs.fail(Op::kSync, "", EIO, 1);
      CHECK_FALSE(write_pack(fs, dir.path()).ok());
      fs.simulate_crash(mode);
      CHECK(packs_in(dir.path()).empty());
    }
  }
}

TEST_CASE(
    "a power cut at any file system call of a pack's writing leaves no pack or a "
    "complete one, and a pack acknowledged is complete",
    "[packaging][pack][fault]") {
  int total = 0;
  {
    test::TempDir dir;
    FaultFileSystem fs;
    test::CrashAt counter(fs, 0, Crash::kDropUnsynced);
    REQUIRE(write_pack(counter, dir.path()).ok());
    total = counter.calls();
  }
  REQUIRE(total > 5);
  // CI cuts at about 6 calls and the last 3; OUTPOST_POWER_CUTS=all at every call.
  const int step = test::power_cut_step(total, 6);
  for (Crash mode : {Crash::kDropUnsynced, Crash::kTearUnsynced}) {
    int none = 0;
    int whole = 0;
    int acknowledged = 0;
    for (int at = 1; at <= total + 1; ++at) {
      if (at % step != 0 && at < total - 2) continue;
      INFO("torn " << (mode == Crash::kTearUnsynced) << ", cut at call " << at << " of " << total);
      test::TempDir dir;
      FaultFileSystem fs;
      test::CrashAt crash(fs, at, mode);
      auto info = write_pack(crash, dir.path());
      if (!crash.crashed()) fs.simulate_crash(mode);  // at == total + 1: cut after commit
      fs.reinsert_stick();
      const std::vector<std::string> packs = packs_in(dir.path());
      CHECK(packs.size() <= 1);
      if (info.ok()) {
        ++acknowledged;
        CHECK(packs == std::vector<std::string>{crypto::hex(info->id) + ".pack"});
      }
      ++(packs.empty() ? none : whole);
    }
    std::cout << "power cuts pack at calls ("
              << (mode == Crash::kDropUnsynced ? "unsynced dropped" : "unsynced torn")
              << "): " << none + whole << " cuts of " << total << " calls (and after), " << none
              << " left no pack, " << whole << " a complete one, " << acknowledged
              << " acknowledged and kept\n";
    CHECK(acknowledged > 0);
    CHECK(none > 0);
  }
}

TEST_CASE("a stick pulled while a pack is written gives a clear error and leaves no pack",
          "[packaging][pack][fault]") {
  test::TempDir dir;
  FaultFileSystem fs;
  auto info = write_pack(fs, dir.path(), [&](std::size_t n) {
    if (n == 9) fs.remove_stick();
  });
  REQUIRE_FALSE(info.ok());
  CHECK(info.error().code() == Code::kUnavailable);
  CHECK_THAT(info.error().message(), Contains(dir.path()) && Contains("was the device removed?"));
  fs.reinsert_stick();
  CHECK(packs_in(dir.path()).empty());
  // Once the stick is back, the same export succeeds.
  auto again = write_pack(fs, dir.path());
  REQUIRE(again.ok());
  CHECK(packs_in(dir.path()).size() == 1);
}

TEST_CASE("reading a pack from a pulled stick or a failing disk is a clear error",
          "[packaging][pack][fault]") {
  test::TempDir dir;
  auto info = write_pack(real_fs(), dir.path());
  REQUIRE(info.ok());
  FaultFileSystem fs;
  PackReaderOptions options;
  options.fs = &fs;
  auto reader = PackReader::open_file(info->path, options);
  REQUIRE(reader.ok());
  REQUIRE((*reader)->next().ok());
  fs.remove_stick();
  // The first record may still be in the reader's buffer; the stick's loss shows by the end.
  Status s = (*reader)->for_each([](const PackRecord&) { return Status::Ok(); });
  CHECK(s.code() == Code::kUnavailable);
  CHECK_THAT(s.message(), Contains(info->path) && Contains("was the device removed?"));
  fs.reinsert_stick();

  fs.fail(Op::kRead, ".pack", EIO, 1);
  auto range = read_pack_range(info->path, 8, 100, fs);
  CHECK(range.error().code() == Code::kUnavailable);
  CHECK(read_pack_range(info->path, 8, 100, fs).ok());
  CHECK(read_pack_range(info->path, info->size - 10, 100, fs).error().code() == Code::kCorruption);
}

}  // namespace
}  // namespace outpost::packaging
