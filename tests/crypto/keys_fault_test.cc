// Key files on a failing disk: a full disk, EIO, a power cut or a pulled stick at any step of
// save() leaves either no key file or the whole key with mode 0600, never half of one, and an
// existing key is never touched.
#include <catch2/catch.hpp>
#include <iostream>
#include <string>

#include "outpost/crypto/keys.h"
#include "support/crash_at.h"
#include "support/fault_fs.h"
#include "support/test_support.h"

using namespace outpost;
using namespace outpost::crypto;
using Catch::Matchers::Contains;
using test::FaultFileSystem;
using Op = FaultFileSystem::Op;
using Crash = FaultFileSystem::Crash;

namespace {

SecretKey new_key() {
  auto k = SecretKey::generate();
  REQUIRE(k.ok());
  return std::move(k).value();
}

// After a fault: nothing at path, or the whole key (same public key, mode 0600).
void check_whole_or_absent(const std::string& path, const SecretKey& key, bool must_exist) {
  if (!real_fs().exists(path)) {
    CHECK_FALSE(must_exist);
    return;
  }
  auto loaded = SecretKey::load(path);
  INFO((loaded.ok() ? std::string() : loaded.error().message()));
  REQUIRE(loaded.ok());
  CHECK(loaded->public_key() == key.public_key());
  CHECK(real_fs().stat(path)->mode == 0600);
}

// Entries of dir other than temp files left by a crash (which are 0600 too).
std::size_t visible_entries(const std::string& dir) {
  std::size_t n = 0;
  auto entries = real_fs().list_dir(dir);
  REQUIRE(entries.ok());
  for (const auto& e : *entries) n += e.name.rfind('.', 0) == 0 ? 0 : 1;
  return n;
}

}  // namespace

TEST_CASE("a disk that fills at any byte of a key file leaves no key file",
          "[crypto][keys][fault]") {
  test::TempDir dir;
  const SecretKey key = new_key();
  std::uint64_t size = 0;
  {
    FaultFileSystem probe;
    REQUIRE(key.save(dir / "probe.key", KeyRole::kRoot, probe).ok());
    size = probe.bytes_appended();
  }
  REQUIRE(size > 150);
  for (std::uint64_t n = 0; n < size; n += 7) {
    INFO("disk full after " << n << " of " << size << " bytes");
    FaultFileSystem fs;
    fs.fail_writes_after(n);
    Status s = key.save(dir / "k.key", KeyRole::kRoot, fs);
    CHECK(s.code() == Code::kResourceExhausted);
    CHECK_THAT(s.message(),
               Contains("writing key file " + dir / "k.key") && Contains("free some space"));
    CHECK_FALSE(real_fs().exists(dir / "k.key"));
    CHECK(real_fs().list_dir(dir.path())->size() == 1);  // probe.key only: no temp file
  }
}

TEST_CASE("EIO at any step of saving a key leaves no key file or the whole key",
          "[crypto][keys][fault]") {
  for (Op op : {Op::kCreate, Op::kAppend, Op::kSync, Op::kClose, Op::kRename, Op::kSyncDir}) {
    INFO("EIO in op " << static_cast<int>(op));
    test::TempDir dir;
    const SecretKey key = new_key();
    FaultFileSystem fs;
    fs.fail(op, "", EIO);
    Status s = key.save(dir / "k.key", KeyRole::kTargets, fs);
    CHECK(s.code() == Code::kUnavailable);
    CHECK_THAT(s.message(), Contains("was the device removed?"));
    // The rename happened before a failed directory sync: the key is whole, but the caller
    // was told it may not be durable. Every other step leaves nothing.
    check_whole_or_absent(dir / "k.key", key, false);
    CHECK(real_fs().exists(dir / "k.key") == (op == Op::kSyncDir));
    fs.clear_faults();
    fs.simulate_crash(Crash::kTearUnsynced);
    check_whole_or_absent(dir / "k.key", key, false);
  }
}

TEST_CASE("a power cut after a key is saved keeps it whole, and one before keeps none",
          "[crypto][keys][fault]") {
  for (Crash mode : {Crash::kDropUnsynced, Crash::kTearUnsynced}) {
    test::TempDir dir;
    const SecretKey key = new_key();
    {
      FaultFileSystem fs;
      REQUIRE(key.save(dir / "saved.key", KeyRole::kRoot, fs).ok());
      fs.simulate_crash(mode);
      check_whole_or_absent(dir / "saved.key", key, true);
    }
    {
      // The crash comes while the data is written but not synced (sync fails, as a power
      // cut would stop it): after the cut, nothing under the key's name.
      FaultFileSystem fs;
      fs.fail(Op::kSync, "", EIO, 1);
      CHECK_FALSE(key.save(dir / "cut.key", KeyRole::kRoot, fs).ok());
      fs.simulate_crash(mode);
      check_whole_or_absent(dir / "cut.key", key, false);
    }
    CHECK(visible_entries(dir.path()) == 1);
  }
}

TEST_CASE(
    "a power cut at any file system call of saving a key leaves no key file or the whole "
    "key, and a key acknowledged is whole",
    "[crypto][keys][fault]") {
  const SecretKey key = new_key();
  int total = 0;
  {
    test::TempDir dir;
    FaultFileSystem fs;
    test::CrashAt counter(fs, 0, Crash::kDropUnsynced);
    REQUIRE(key.save(dir / "k.key", KeyRole::kRoot, counter).ok());
    total = counter.calls();
  }
  REQUIRE(total >= 5);
  // A save makes few calls: every run cuts at each of them, and once after it returned.
  for (Crash mode : {Crash::kDropUnsynced, Crash::kTearUnsynced}) {
    int absent = 0;
    int whole = 0;
    int acknowledged = 0;
    for (int at = 1; at <= total + 1; ++at) {
      INFO("torn " << (mode == Crash::kTearUnsynced) << ", cut at call " << at << " of " << total);
      test::TempDir dir;
      FaultFileSystem fs;
      test::CrashAt crash(fs, at, mode);
      Status s = key.save(dir / "k.key", KeyRole::kRoot, crash);
      REQUIRE(crash.crashed() == (at <= total));
      if (!crash.crashed()) fs.simulate_crash(mode);
      fs.reinsert_stick();
      check_whole_or_absent(dir / "k.key", key, s.ok());
      acknowledged += s.ok() ? 1 : 0;
      ++(real_fs().exists(dir / "k.key") ? whole : absent);
    }
    std::cout << "power cuts key save ("
              << (mode == Crash::kDropUnsynced ? "unsynced dropped" : "unsynced torn")
              << "): " << absent + whole << " cuts of " << total << " calls (and after), " << absent
              << " left no key file, " << whole << " the whole key, " << acknowledged
              << " acknowledged and kept\n";
    CHECK(acknowledged == 1);
  }
}

TEST_CASE("saving over an existing key on a failing disk leaves the old key whole",
          "[crypto][keys][fault]") {
  test::TempDir dir;
  const SecretKey old_key = new_key();
  REQUIRE(old_key.save(dir / "k.key", KeyRole::kSnapshot).ok());
  const SecretKey other = new_key();
  FaultFileSystem fs;
  fs.fail_writes_after(50);
  Status s = other.save(dir / "k.key", KeyRole::kSnapshot, fs);
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK_THAT(s.message(), Contains("already exists"));
  fs.simulate_crash(Crash::kTearUnsynced);
  check_whole_or_absent(dir / "k.key", old_key, true);
}

TEST_CASE("a key on a pulled stick fails with a clear error and is whole once it is back",
          "[crypto][keys][fault]") {
  test::TempDir dir;
  const SecretKey key = new_key();
  FaultFileSystem fs;
  REQUIRE(key.save(dir / "k.key", KeyRole::kTimestamp, fs).ok());
  fs.remove_stick();
  auto loaded = SecretKey::load(dir / "k.key", fs);
  REQUIRE_FALSE(loaded.ok());
  CHECK(loaded.error().code() == Code::kUnavailable);
  CHECK_THAT(loaded.error().message(),
             Contains("key file " + dir / "k.key") && Contains("was the device removed?"));
  Status s = key.save(dir / "other.key", KeyRole::kTimestamp, fs);
  CHECK(s.code() == Code::kUnavailable);
  fs.reinsert_stick();
  auto back = SecretKey::load(dir / "k.key", fs);
  REQUIRE(back.ok());
  CHECK(back->public_key() == key.public_key());
  CHECK_FALSE(real_fs().exists(dir / "other.key"));
}
