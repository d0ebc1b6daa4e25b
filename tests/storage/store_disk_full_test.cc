// A full disk, for real: a 4 MiB tmpfs mounted for the test (needs root, as in CI), filled
// up with a file, then a commit that cannot fit. Skipped with a WARN where mounting is not
// permitted; fails instead when the CI environment variable is set, so CI cannot skip it.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "outpost/storage/store.h"
#include "storage/store_test_util.h"
#include "support/test_support.h"

namespace outpost::storage {
namespace {

using Catch::Matchers::Contains;
using test::SmallDisk;
using test::TempDir;
using testing::create_store;
using testing::open_or_die;

// Writes path until the file system refuses more, then gives `leave` bytes back; returns
// the bytes the file keeps.
std::uint64_t fill_disk(const std::string& path, std::uint64_t leave = 0) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  const Bytes block(4096, 0xAB);
  std::uint64_t written = 0;
  for (;;) {
    ssize_t n = ::write(fd, block.data(), block.size());
    if (n <= 0) break;
    written += static_cast<std::uint64_t>(n);
  }
  const int err = errno;
  CHECK(err == ENOSPC);
  REQUIRE(written > leave);
  written -= leave;
  REQUIRE(::ftruncate(fd, static_cast<off_t>(written)) == 0);
  ::close(fd);
  return written;
}

bool skip_without_disk(const SmallDisk& disk) {
  if (disk.mounted()) return false;
  if (std::getenv("CI") != nullptr) {
    FAIL("the disk-full test must run in CI (as root), but a tmpfs could not be mounted: "
         << disk.why());
  }
  WARN("SKIPPED disk-full test: cannot mount a 4 MiB tmpfs (" << disk.why()
                                                              << "); run as root to test it");
  return true;
}

void check_baseline(Store& store) {
  auto txn = store.read();
  REQUIRE(txn.ok());
  CHECK(*txn->count(Table::kChunks) == 20);
  for (int i = 0; i < 20; ++i) {
    auto v = txn->get(Table::kChunks, as_bytes("base" + std::to_string(i)));
    REQUIRE(v.ok());
    REQUIRE(v->has_value());
    CHECK(**v == test::random_bytes(8 << 10, static_cast<std::uint64_t>(i)));
  }
  CHECK_FALSE(txn->get(Table::kChunks, as_bytes("big"))->has_value());
  CHECK_FALSE(txn->get(Table::kBundles, as_bytes("after"))->has_value());
}

TEST_CASE("a commit on a full disk leaves the store as it was, and a later one succeeds",
          "[storage][root]") {
  TempDir tmp;
  const std::string mnt = tmp / "disk";
  SmallDisk disk(mnt, "4m");
  if (skip_without_disk(disk)) return;
  const std::string dir = mnt + "/store";
  const Bytes big = test::random_bytes(1 << 20, 77);
  auto put_big = [&](WriteTxn& w) {
    OUTPOST_RETURN_IF_ERROR(w.put(Table::kChunks, as_bytes("big"), big));
    return w.put(Table::kBundles, as_bytes("after"), as_bytes("yes"));
  };
  {
    // The map (64 MiB) is far larger than the disk: the disk fills first.
    auto store = create_store(dir);
    REQUIRE(store
                ->update([](WriteTxn& w) {
                  for (int i = 0; i < 20; ++i) {
                    OUTPOST_RETURN_IF_ERROR(
                        w.put(Table::kChunks, as_bytes("base" + std::to_string(i)),
                              test::random_bytes(8 << 10, static_cast<std::uint64_t>(i))));
                  }
                  return Status::Ok();
                })
                .ok());
    REQUIRE(fill_disk(mnt + "/filler") > 0);

    Status s = store->update(put_big);
    INFO(s.message());
    CHECK(s.code() == Code::kResourceExhausted);
    CHECK_THAT(s.message(), Contains("disk full") && Contains(dir) && Contains("free space"));
    check_baseline(*store);

    // A new store cannot be created there either: a clean error, not SIGBUS.
    auto other = Store::open({.dir = mnt + "/other", .create = true});
    REQUIRE_FALSE(other.ok());
    INFO(other.error().message());
    CHECK(other.error().code() == Code::kResourceExhausted);
  }
  {
    // As after a restart: what was committed before is intact, nothing of the failed one.
    auto store = open_or_die({.dir = dir});
    check_baseline(*store);
    // Space is back: the same update now succeeds.
    REQUIRE(::unlink((mnt + "/filler").c_str()) == 0);
    Status s = store->update(put_big);
    INFO(s.message());
    REQUIRE(s.ok());
    auto txn = store->read();
    REQUIRE(txn.ok());
    CHECK(**txn->get(Table::kChunks, as_bytes("big")) == big);
    CHECK(*txn->count(Table::kChunks) == 21);
  }
}

TEST_CASE("a disk that fills up in the middle of a commit is reported as full", "[storage][root]") {
  // LMDB 0.9 reports a write that the file system cut short as EIO; the store must still
  // say "disk full", not send the user to replace a healthy SD card.
  TempDir tmp;
  const std::string mnt = tmp / "disk";
  SmallDisk disk(mnt, "4m");
  if (skip_without_disk(disk)) return;
  const std::string dir = mnt + "/store";
  auto store = create_store(dir);
  REQUIRE(
      store->update([](WriteTxn& w) { return w.put(Table::kBundles, as_bytes("k"), {}); }).ok());
  REQUIRE(fill_disk(mnt + "/filler", 128 << 10) > 0);  // 128 KiB left: too little for 1 MiB
  const Bytes big = test::random_bytes(1 << 20, 78);
  Status s =
      store->update([&](WriteTxn& w) { return w.put(Table::kChunks, as_bytes("big"), big); });
  INFO(s.message());
  CHECK(s.code() == Code::kResourceExhausted);
  CHECK_THAT(s.message(), Contains("disk full"));
  CHECK(testing::get_now(*store, Table::kBundles, "k").has_value());
  CHECK_FALSE(testing::get_now(*store, Table::kChunks, "big").has_value());
  REQUIRE(::unlink((mnt + "/filler").c_str()) == 0);
  REQUIRE(
      store->update([&](WriteTxn& w) { return w.put(Table::kChunks, as_bytes("big"), big); }).ok());
  CHECK(*testing::get_now(*store, Table::kChunks, "big") == big);
}

}  // namespace
}  // namespace outpost::storage
