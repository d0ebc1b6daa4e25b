// publish() through a fault-injecting FileSystem (tests/support/fault_fs.h): a full disk at
// many points of a publication, EIO on the snapshot and the timestamp, a power cut after any
// of its file system calls (unsynced data dropped or torn), a USB stick pulled mid-publish.
// Whatever happens, the repository a node reads is the old release or the complete new one,
// and publishing again afterwards works.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/base/fs.h"
#include "outpost/crypto/hash.h"
#include "outpost/crypto/keys.h"
#include "outpost/crypto/tuf.h"
#include "outpost/packaging/chunk_index.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/layout.h"
#include "outpost/packaging/pack.h"
#include "outpost/packaging/repository.h"
#include "outpost/packaging/update_file.h"
#include "support/crash_at.h"
#include "support/fake_clock.h"
#include "support/fault_fs.h"
#include "support/test_support.h"

namespace op = outpost::packaging;
namespace tuf = outpost::crypto::tuf;
namespace stdfs = std::filesystem;
using outpost::Bytes;
using outpost::ByteView;
using outpost::Code;
using outpost::FileSystem;
using outpost::Result;
using outpost::Status;
using outpost::crypto::SecretKey;
using outpost::test::CrashAt;
using outpost::test::FaultFileSystem;

namespace {

const std::string kBundle = "un/test/fault";

using FixedClock = outpost::test::FakeClock;

SecretKey new_key() {
  REQUIRE(outpost::crypto::init());
  auto k = SecretKey::generate();
  REQUIRE(k.ok());
  return std::move(k).value();
}

// Reads metadata files from a repository folder, as a TUF client would from a mirror.
class DirSource : public tuf::MetadataSource {
 public:
  explicit DirSource(std::string dir) : dir_(std::move(dir)) {}
  Result<Bytes> fetch(const std::string& filename, std::uint64_t max_length) override {
    const std::string p = dir_ + "/metadata/" + filename;
    if (!stdfs::exists(p)) return Status::NotFound(filename);
    Bytes b = outpost::test::read_all(p);
    if (b.size() > max_length) return Status::Corruption(filename + " longer than declared");
    return b;
  }

 private:
  std::string dir_;
};

// A repository with version 1 of a small bundle published (kept pristine in `v1`), the
// source of version 2 beside it, and fresh copies of the version-1 repository on demand.
struct World {
  outpost::test::TempDir tmp;
  std::string v1 = tmp / "v1";
  std::string src1 = tmp / "src1";
  std::string src2 = tmp / "src2";
  SecretKey root = new_key();
  SecretKey targets = new_key();
  SecretKey snapshot = new_key();
  SecretKey timestamp = new_key();
  SecretKey publisher = new_key();
  FixedClock clock{1795887780};
  Bytes v1_timestamp;
  Bytes v1_snapshot;  // metadata/N.snapshot.json named by v1_timestamp
  int copies = 0;

  World() {
    op::InitOptions o;
    o.root_keys = {&root};
    o.targets_key = &targets;
    o.snapshot_key = &snapshot;
    o.timestamp_key = &timestamp;
    o.clock = &clock;
    REQUIRE(op::init_repository(v1, o).ok());
    REQUIRE(
        op::delegate(v1, targets, snapshot, timestamp, publisher.public_key(), "un", clock).ok());
    outpost::test::make_dirs(src1 + "/d");
    Bytes big = outpost::test::random_bytes(120000, 7);
    outpost::test::write_all(src1 + "/a.bin", big);
    outpost::test::write_text(src1 + "/d/b.txt", "version one\n");
    outpost::test::make_dirs(src2 + "/d");
    for (std::size_t i = 60000; i < 64000; ++i) big[i] = static_cast<std::uint8_t>(big[i] ^ 0x5a);
    outpost::test::write_all(src2 + "/a.bin", big);
    outpost::test::write_text(src2 + "/d/b.txt", "version two\n");
    outpost::test::write_all(src2 + "/c.bin", outpost::test::random_bytes(20000, 8));

    auto r = op::publish(v1, options(src1));
    INFO(r.status().message());
    REQUIRE(r.ok());
    REQUIRE(r->version == 1);
    v1_timestamp = outpost::test::read_all(v1 + "/metadata/timestamp.json");
    auto st = op::load_repository(v1);
    REQUIRE(st.ok());
    v1_snapshot = outpost::test::read_all(
        v1 + "/" +
        op::metadata_path(op::versioned_metadata_name(st->snapshot.version, "snapshot")));
  }

  op::PublishOptions options(const std::string& src, FileSystem* fs = nullptr) {
    op::PublishOptions o;
    o.source_dir = src;
    o.overrides.name = kBundle;
    o.publisher_key = &publisher;
    o.snapshot_key = &snapshot;
    o.timestamp_key = &timestamp;
    o.clock = &clock;
    o.fs = fs;
    clock.advance(60);
    return o;
  }

  // A new copy of the version-1 repository.
  std::string fresh() {
    const std::string dir = tmp / ("repo" + std::to_string(++copies));
    outpost::test::copy_tree(v1, dir);
    // The publisher moves a rewritten timestamp's mtime past the old one's when both fall in
    // the same second. Dating the old metadata an hour ahead makes that step happen on every
    // run, so a publication makes the same calls whatever the clock's second.
    const auto ahead = stdfs::file_time_type::clock::now() + std::chrono::hours(1);
    for (const auto& e : stdfs::directory_iterator(dir + "/metadata"))
      stdfs::last_write_time(e.path(), ahead);
    return dir;
  }

  // The node-side view is still version 1: timestamp.json and the snapshot it names are the
  // bytes they were, and the current manifest is version 1's.
  void check_still_v1(const std::string& dir) {
    CHECK(outpost::test::read_all(dir + "/metadata/timestamp.json") == v1_timestamp);
    auto st = op::load_repository(dir);
    REQUIRE(st.ok());
    CHECK(outpost::test::read_all(dir + "/" +
                                  op::metadata_path(op::versioned_metadata_name(
                                      st->snapshot.version, "snapshot"))) == v1_snapshot);
    auto pm = op::load_current_manifest(dir, *st, kBundle);
    REQUIRE(pm.ok());
    CHECK(pm->manifest.version == 1);
  }

  // Everything the current timestamp reaches is whole and is version 2: the TUF client
  // workflow from the first root verifies the metadata, every file of the bundle rebuilds
  // from the packs the index names and equals the source, every patch and the compressed
  // manifest hash right, and every metadata update file parses.
  void check_complete_v2(const std::string& dir) {
    tuf::TrustedMetadata trusted;
    trusted.root = outpost::test::read_all(dir + "/metadata/1.root.json");
    DirSource source(dir);
    tuf::UpdaterOptions uo;
    uo.now = clock.now();
    tuf::Updater updater(trusted, source, uo);
    Status s = updater.refresh();
    INFO(s.message());
    REQUIRE(s.ok());
    auto tf = updater.find_target(kBundle + "/manifest.json");
    INFO(tf.status().message());
    REQUIRE(tf.ok());

    auto st = op::load_repository(dir);
    REQUIRE(st.ok());
    auto pm = op::load_current_manifest(dir, *st, kBundle);
    INFO(pm.status().message());
    REQUIRE(pm.ok());
    const op::Manifest& m = pm->manifest;
    CHECK(m.version == 2);
    CHECK(tf->sha256 == outpost::crypto::hex(outpost::crypto::sha256(pm->bytes)));

    const Bytes ibytes = outpost::test::read_all(dir + "/" + m.index.path);
    REQUIRE(outpost::crypto::blake2b(ibytes) == m.index.blake2b);
    auto idx = op::ChunkIndex::parse(ibytes, m.chunking.max);
    REQUIRE(idx.ok());
    REQUIRE(idx->check_against(m).ok());
    op::Decompressor d;
    op::ContentHasher h;
    std::size_t k = 0;
    for (std::size_t f = 0; f < m.files.size(); ++f) {
      REQUIRE(h.add_file(m.files[f].path, m.files[f].mode, m.files[f].size).ok());
      Bytes file;
      for (std::uint32_t n = 0; n < idx->file_chunks[f]; ++n, ++k) {
        const op::ChunkEntry& e = idx->chunks[k];
        auto raw = op::read_chunk(dir + "/" + op::pack_object_path(idx->packs[e.pack]), e, d);
        INFO(raw.status().message());
        REQUIRE(raw.ok());
        file.insert(file.end(), raw->begin(), raw->end());
      }
      REQUIRE(h.update(file).ok());
      CHECK(file == outpost::test::read_all(src2 + "/" + m.files[f].path));
    }
    auto content_root = h.finish();
    REQUIRE(content_root.ok());
    CHECK(*content_root == m.content_root);

    REQUIRE(!m.patches.empty());
    for (const op::PatchRef& p : m.patches) {
      const Bytes patch = outpost::test::read_all(dir + "/" + p.path);
      CHECK(patch.size() == p.length);
      CHECK(outpost::crypto::blake2b(patch) == p.blake2b);
    }
    const std::string sha = outpost::crypto::hex(outpost::crypto::sha256(pm->bytes));
    const Bytes packed =
        outpost::test::read_all(dir + "/" + op::compressed_manifest_file_path(kBundle, sha));
    auto unpacked = d.decompress(packed, pm->bytes.size(), "compressed manifest");
    INFO(unpacked.status().message());
    REQUIRE(unpacked.ok());
    CHECK(*unpacked == pm->bytes);

    for (const auto& e : stdfs::directory_iterator(dir + "/metadata/updates")) {
      const std::string name = e.path().filename().string();
      if (name.empty() || name[0] == '.') continue;  // a temp file a crash left behind
      auto upd = op::parse_update_file(outpost::test::read_all(e.path().string()), 1000);
      INFO(name << ": " << upd.status().message());
      CHECK(upd.ok());
    }
  }

  // Publishing version 2 with the real file system works (or finds it published already),
  // and leaves version 2 complete.
  void check_republish(const std::string& dir) {
    auto r = op::publish(dir, options(src2));
    INFO(r.status().message());
    REQUIRE(r.ok());
    CHECK(r->version == 2);
    check_complete_v2(dir);
  }
};

}  // namespace

TEST_CASE("a full disk at any point of a publication leaves the old release current",
          "[packaging][publish][fault]") {
  World w;
  // How many bytes publishing version 2 writes.
  std::uint64_t total = 0;
  {
    const std::string dir = w.fresh();
    FaultFileSystem f;
    auto r = op::publish(dir, w.options(w.src2, &f));
    INFO(r.status().message());
    REQUIRE(r.ok());
    REQUIRE(r->version == 2);
    total = f.bytes_appended();
    w.check_complete_v2(dir);
  }
  REQUIRE(total > 10000);
  for (std::uint64_t i = 0; i < 10; ++i) {
    const std::uint64_t limit = total * i / 10 + (i == 9 ? total / 10 - 1 : 0);
    CAPTURE(limit, total);
    const std::string dir = w.fresh();
    FaultFileSystem f;
    f.fail_writes_after(limit);
    auto r = op::publish(dir, w.options(w.src2, &f));
    REQUIRE(!r.ok());
    CHECK(r.error().code() == Code::kResourceExhausted);
    CHECK_THAT(r.error().message(), Catch::Contains(dir));
    CHECK_THAT(r.error().message(), Catch::Contains("the disk is full"));
    w.check_still_v1(dir);
    w.check_republish(dir);
  }
}

TEST_CASE("EIO writing the snapshot or the timestamp leaves the old release current",
          "[packaging][publish][fault]") {
  World w;
  struct Case {
    FaultFileSystem::Op op;
    const char* part;
  };
  const std::vector<Case> cases = {
      {FaultFileSystem::Op::kAppend, ".snapshot.json"},
      {FaultFileSystem::Op::kSync, ".snapshot.json"},
      {FaultFileSystem::Op::kAppend, "timestamp.json"},
      {FaultFileSystem::Op::kSync, "timestamp.json"},
      {FaultFileSystem::Op::kRename, "timestamp.json"},
  };
  for (const Case& c : cases) {
    CAPTURE(static_cast<int>(c.op), c.part);
    const std::string dir = w.fresh();
    FaultFileSystem f;
    f.fail(c.op, c.part, EIO);
    auto r = op::publish(dir, w.options(w.src2, &f));
    REQUIRE(!r.ok());
    CHECK(r.error().code() == Code::kUnavailable);
    CHECK_THAT(r.error().message(), Catch::Contains(dir));
    CHECK(f.calls(c.op) > 0);
    w.check_still_v1(dir);
    w.check_republish(dir);
  }
}

TEST_CASE("a power cut at any call of a publication leaves the old release or the whole new one",
          "[packaging][publish][fault]") {
  World w;
  int total = 0;
  {
    const std::string dir = w.fresh();
    FaultFileSystem f;
    CrashAt counter(f, 0, FaultFileSystem::Crash::kDropUnsynced);
    auto r = op::publish(dir, w.options(w.src2, &counter));
    INFO(r.status().message());
    REQUIRE(r.ok());
    total = counter.calls();
  }
  REQUIRE(total > 20);
  // CI cuts at every call near the end (the metadata) and every step-th one before;
  // OUTPOST_POWER_CUTS=all (bench/reliability/power_cuts.sh) at every call.
  const int step = outpost::test::power_cut_step(total, 12);
  for (auto mode : {FaultFileSystem::Crash::kDropUnsynced, FaultFileSystem::Crash::kTearUnsynced}) {
    int at_v1 = 0;
    int at_v2 = 0;
    int acknowledged = 0;
    // The last cut comes after the publication returned: what it acknowledged must be there.
    for (int at = 1; at <= total + 1; ++at) {
      if (at % step != 0 && at < total - 12) continue;
      CAPTURE(static_cast<int>(mode), at, total);
      const std::string dir = w.fresh();
      FaultFileSystem f;
      CrashAt crash(f, at, mode);
      auto r = op::publish(dir, w.options(w.src2, &crash));
      REQUIRE(crash.crashed() == (at <= total));
      if (!crash.crashed()) f.simulate_crash(mode);
      f.reinsert_stick();
      // A cut after the timestamp is durable may only cost the mtime nudge (write_metadata):
      // the publication then succeeds, and what it acknowledged must be all there.
      if (r.ok()) {
        ++acknowledged;
        CHECK(r->version == 2);
        CHECK(outpost::test::read_all(dir + "/metadata/timestamp.json") != w.v1_timestamp);
      }
      if (outpost::test::read_all(dir + "/metadata/timestamp.json") == w.v1_timestamp) {
        ++at_v1;
        w.check_still_v1(dir);
      } else {
        ++at_v2;
        w.check_complete_v2(dir);
      }
      w.check_republish(dir);
      stdfs::remove_all(dir);
    }
    std::cout << "power cuts publish ("
              << (mode == FaultFileSystem::Crash::kDropUnsynced ? "unsynced dropped"
                                                                : "unsynced torn")
              << "): " << at_v1 + at_v2 << " cuts of " << total << " calls (and after), " << at_v1
              << " left the old release, " << at_v2 << " the whole new one, " << acknowledged
              << " acknowledged and kept\n";
    // Both outcomes happen: a cut once the timestamp's rename and its folder's fsync are done
    // is the new release, any earlier one the old.
    CHECK(at_v1 > 0);
    CHECK(at_v2 > 0);
    CHECK(acknowledged >= 1);
  }
}

TEST_CASE("a stick pulled mid-publish fails clearly and a rerun after reinsert publishes",
          "[packaging][publish][fault]") {
  World w;
  int total = 0;
  {
    const std::string dir = w.fresh();
    FaultFileSystem f;
    CrashAt counter(f, 0, FaultFileSystem::Crash::kDropUnsynced);
    REQUIRE(op::publish(dir, w.options(w.src2, &counter)).ok());
    total = counter.calls();
  }
  const std::string dir = w.fresh();
  FaultFileSystem f;
  CrashAt pull(f, total / 2, FaultFileSystem::Crash::kDropUnsynced);
  auto r = op::publish(dir, w.options(w.src2, &pull));
  REQUIRE(pull.crashed());
  REQUIRE(!r.ok());
  CHECK(r.error().code() == Code::kUnavailable);
  CHECK_THAT(r.error().message(), Catch::Contains(dir));
  CHECK_THAT(r.error().message(), Catch::Contains("was the device removed?"));
  // Still pulled: another try fails the same way and changes nothing.
  auto again = op::publish(dir, w.options(w.src2, &f));
  REQUIRE(!again.ok());
  CHECK(again.error().code() == Code::kUnavailable);
  w.check_still_v1(dir);

  f.reinsert_stick();
  auto rerun = op::publish(dir, w.options(w.src2, &f));
  INFO(rerun.status().message());
  REQUIRE(rerun.ok());
  CHECK(rerun->version == 2);
  w.check_complete_v2(dir);
}
