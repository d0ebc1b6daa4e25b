// The fault-injecting file system of the test support: each fault does what it promises,
// so tests built on it prove what they claim.
#include "support/fault_fs.h"

#include <catch2/catch.hpp>
#include <cerrno>
#include <string>

#include "support/test_support.h"

namespace outpost::test {
namespace {

using Catch::Matchers::Contains;
using Op = FaultFileSystem::Op;
using Crash = FaultFileSystem::Crash;

// A file created and appended to through fs, synced when `sync` is set; not renamed.
void append_file(FileSystem& fs, const std::string& path, std::string_view text, bool sync) {
  auto f = fs.create_file(path, 0644, true);
  REQUIRE(f.ok());
  REQUIRE((*f)->append(as_bytes(text)).ok());
  if (sync) REQUIRE((*f)->sync().ok());
  REQUIRE((*f)->close().ok());
}

TEST_CASE("fault fs: the disk fills after N bytes, mid-write, as a real disk does",
          "[base][fault_fs]") {
  TempDir tmp;
  FaultFileSystem fs;
  test::write_text(tmp / "f", "old");
  fs.fail_writes_after(10);
  Status s = fs.write_file_atomic(tmp / "f", as_bytes("0123456789ABCDEF"));
  CHECK(s.code() == Code::kResourceExhausted);
  CHECK_THAT(s.message(), Contains(tmp / ".f.tmp-") && Contains("free some space"));
  CHECK(fs.bytes_appended() == 10);
  CHECK(test::read_text(tmp / "f") == "old");
  CHECK(real_fs().list_dir(tmp.path())->size() == 1);  // the temp file was removed
  CHECK(*fs.free_space(tmp.path()) == 0);
  fs.clear_space_limit();
  REQUIRE(fs.write_file_atomic(tmp / "f", as_bytes("0123456789ABCDEF")).ok());
  CHECK(test::read_text(tmp / "f") == "0123456789ABCDEF");
}

TEST_CASE("fault fs: EIO hits only the chosen call on the chosen path, as often as asked",
          "[base][fault_fs]") {
  TempDir tmp;
  FaultFileSystem fs;
  fs.fail(Op::kSync, "a.txt", EIO, 1);
  Status s = fs.write_file_atomic(tmp / "a.txt", as_bytes("a"));
  CHECK(s.code() == Code::kUnavailable);
  CHECK_THAT(s.message(), Contains("was the device removed?"));
  CHECK(fs.write_file_atomic(tmp / "b.txt", as_bytes("b")).ok());
  CHECK(fs.write_file_atomic(tmp / "a.txt", as_bytes("a")).ok());  // once only
  fs.fail(Op::kRead, "b.txt", EACCES);
  CHECK(fs.read_file(tmp / "b.txt", 100).error().code() == Code::kFailedPrecondition);
  CHECK(fs.read_file(tmp / "b.txt", 100).error().code() == Code::kFailedPrecondition);
  CHECK(fs.read_file(tmp / "a.txt", 100).ok());
  fs.clear_faults();
  CHECK(fs.read_file(tmp / "b.txt", 100).ok());
  CHECK(fs.calls(Op::kRead) == 4);
}

TEST_CASE("fault fs: a crash drops data and names that were never synced", "[base][fault_fs]") {
  TempDir tmp;
  FaultFileSystem fs;
  // Synced data in a file whose directory entry was never synced: the file is gone.
  test::make_dirs(tmp / "sub");
  append_file(fs, tmp / "sub/unlisted", "data", true);
  // Synced data and a synced directory: it stays; later unsynced appends do not.
  {
    auto f = fs.create_file(tmp / "kept", 0644, true);
    REQUIRE(f.ok());
    REQUIRE((*f)->append(as_bytes("synced.")).ok());
    REQUIRE((*f)->sync().ok());
    REQUIRE(fs.fsync_dir(tmp.path()).ok());
    REQUIRE((*f)->append(as_bytes("lost tail")).ok());
    CHECK(fs.unsynced_files() == std::vector<std::string>{tmp / "kept"});
    fs.simulate_crash();
    // The open file died with the power.
    CHECK((*f)->append(as_bytes("more")).code() == Code::kUnavailable);
  }
  CHECK_FALSE(real_fs().exists(tmp / "sub/unlisted"));
  CHECK(test::read_text(tmp / "kept") == "synced.");
}

TEST_CASE("fault fs: a torn crash keeps a prefix of the unsynced bytes", "[base][fault_fs]") {
  TempDir tmp;
  FaultFileSystem fs;
  auto f = fs.create_file(tmp / "t", 0644, true);
  REQUIRE(f.ok());
  REQUIRE((*f)->append(as_bytes("0123")).ok());
  REQUIRE((*f)->sync().ok());
  REQUIRE(fs.fsync_dir(tmp.path()).ok());
  REQUIRE((*f)->append(as_bytes("456789")).ok());
  fs.simulate_crash(Crash::kTearUnsynced);
  CHECK(test::read_text(tmp / "t") == "0123456");
}

TEST_CASE("fault fs: a crash undoes a rename whose directory was not synced", "[base][fault_fs]") {
  TempDir tmp;
  FaultFileSystem fs;
  test::write_text(tmp / "target", "old whole");
  append_file(fs, tmp / "new", "new whole", true);
  REQUIRE(fs.rename(tmp / "new", tmp / "target").ok());
  CHECK(test::read_text(tmp / "target") == "new whole");
  fs.simulate_crash();
  CHECK(test::read_text(tmp / "target") == "old whole");

  // With the directory synced, the rename and the data hold.
  REQUIRE(fs.write_file_atomic(tmp / "target", as_bytes("newer")).ok());
  fs.simulate_crash(Crash::kTearUnsynced);
  CHECK(test::read_text(tmp / "target") == "newer");
}

TEST_CASE(
    "fault fs: a removed stick fails every call until it is back, and keeps only synced "
    "data",
    "[base][fault_fs]") {
  TempDir tmp;
  FaultFileSystem fs;
  REQUIRE(fs.write_file_atomic(tmp / "done", as_bytes("whole")).ok());
  auto w = FileWriter::open(fs, tmp / "busy");
  REQUIRE(w.ok());
  REQUIRE((*w)->write(as_bytes("half of it")).ok());
  fs.remove_stick();
  Status s = (*w)->write(as_bytes("more"));
  CHECK(s.code() == Code::kUnavailable);
  CHECK_THAT(s.message(), Contains("was the device removed?"));
  CHECK((*w)->commit().code() == Code::kUnavailable);
  CHECK_FALSE(fs.exists(tmp / "done"));
  CHECK(fs.read_file(tmp / "done", 100).error().code() == Code::kUnavailable);
  CHECK(fs.list_dir(tmp.path()).error().code() == Code::kUnavailable);
  CHECK(fs.make_dirs(tmp / "x").code() == Code::kUnavailable);
  w->reset();
  fs.reinsert_stick();
  CHECK(test::read_text(tmp / "done") == "whole");
  CHECK(real_fs().list_dir(tmp.path())->size() == 1);  // the half-written temp file is gone
}

TEST_CASE("a FileWriter without directory sync leaves the new name to its caller's fsync",
          "[base][fault_fs]") {
  TempDir tmp;
  FaultFileSystem fs;
  for (const char* name : {"a", "b"}) {
    auto w = FileWriter::open(fs, tmp / name, {.sync_dir = false});
    REQUIRE(w.ok());
    REQUIRE((*w)->write(as_bytes(name)).ok());
    REQUIRE((*w)->commit().ok());
  }
  CHECK(fs.calls(Op::kSyncDir) == 0);
  fs.simulate_crash();
  CHECK(real_fs().list_dir(tmp.path())->empty());  // names lost, no half files either

  auto w = FileWriter::open(fs, tmp / "c", {.sync_dir = false});
  REQUIRE(w.ok());
  REQUIRE((*w)->write(as_bytes("c")).ok());
  REQUIRE((*w)->commit().ok());
  REQUIRE(fs.fsync_dir(tmp.path()).ok());
  fs.simulate_crash();
  CHECK(test::read_text(tmp / "c") == "c");
}

}  // namespace
}  // namespace outpost::test
