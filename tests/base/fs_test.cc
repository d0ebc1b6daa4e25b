// The real FileSystem: atomic streaming writes, names, listing, and the one errno mapping.
#include "outpost/base/fs.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <string>

#include "support/test_support.h"

namespace outpost {
namespace {

using Catch::Matchers::Contains;
using test::TempDir;

TEST_CASE("a FileWriter's file appears whole under its name only on commit", "[base][fs]") {
  TempDir tmp;
  FileSystem& fs = real_fs();
  const std::string path = tmp / "f.txt";
  test::write_text(path, "old");
  auto w = FileWriter::open(fs, path);
  REQUIRE(w.ok());
  REQUIRE((*w)->write(as_bytes("new ")).ok());
  REQUIRE((*w)->write(as_bytes("content")).ok());
  CHECK((*w)->bytes_written() == 11);
  CHECK(test::read_text(path) == "old");  // nothing visible before commit
  CHECK(fs.exists((*w)->temp_path()));
  REQUIRE((*w)->commit().ok());
  CHECK(test::read_text(path) == "new content");
  CHECK_FALSE(fs.exists((*w)->temp_path()));
  CHECK((*w)->write(as_bytes("x")).code() == Code::kInternal);
  auto names = fs.list_dir(tmp.path());
  REQUIRE(names.ok());
  CHECK(names->size() == 1);
}

TEST_CASE("an abandoned FileWriter leaves the old file and no temp file", "[base][fs]") {
  TempDir tmp;
  FileSystem& fs = real_fs();
  const std::string path = tmp / "f.txt";
  test::write_text(path, "old");
  {
    auto w = FileWriter::open(fs, path);
    REQUIRE(w.ok());
    REQUIRE((*w)->write(as_bytes("half")).ok());
  }
  {
    auto w = FileWriter::open(fs, path);
    REQUIRE(w.ok());
    (*w)->abort();
    CHECK((*w)->commit().code() == Code::kFailedPrecondition);
  }
  CHECK(test::read_text(path) == "old");
  CHECK(fs.list_dir(tmp.path())->size() == 1);
}

TEST_CASE("a FileWriter that must not replace refuses an existing file and keeps it",
          "[base][fs]") {
  TempDir tmp;
  FileSystem& fs = real_fs();
  const std::string path = tmp / "key";
  test::write_text(path, "first");
  auto w = FileWriter::open(fs, path, {.mode = 0600, .replace = false});
  REQUIRE(w.ok());
  REQUIRE((*w)->write(as_bytes("second")).ok());
  Status s = (*w)->commit();
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK_THAT(s.message(), Contains("already exists"));
  CHECK(test::read_text(path) == "first");
  CHECK(fs.list_dir(tmp.path())->size() == 1);
}

TEST_CASE("files get exactly the mode asked for, whatever the umask", "[base][fs]") {
  TempDir tmp;
  const mode_t old = ::umask(077);
  Status a = real_fs().write_file_atomic(tmp / "a", as_bytes("x"), 0644);
  Status b = real_fs().write_file_atomic(tmp / "b", as_bytes("x"), 0600);
  ::umask(old);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(real_fs().stat(tmp / "a")->mode == 0644);
  CHECK(real_fs().stat(tmp / "b")->mode == 0600);
}

TEST_CASE("stat, list_dir, rename, remove and free_space report what is there", "[base][fs]") {
  TempDir tmp;
  FileSystem& fs = real_fs();
  REQUIRE(fs.make_dirs(tmp / "d/e").ok());
  test::write_text(tmp / "d/b.txt", "12345");
  auto st = fs.stat(tmp / "d/b.txt");
  REQUIRE(st.ok());
  CHECK(st->type == FileType::kRegular);
  CHECK(st->size == 5);
  CHECK(st->mtime_ns > 1'600'000'000LL * 1'000'000'000LL);
  CHECK(fs.stat(tmp / "d")->type == FileType::kDirectory);
  CHECK(fs.stat(tmp / "none").error().code() == Code::kNotFound);

  auto list = fs.list_dir(tmp / "d");
  REQUIRE(list.ok());
  REQUIRE(list->size() == 2);
  CHECK((*list)[0] == DirEntry{"b.txt", FileType::kRegular});
  CHECK((*list)[1] == DirEntry{"e", FileType::kDirectory});
  CHECK(fs.list_dir(tmp / "none").error().code() == Code::kNotFound);

  REQUIRE(fs.rename(tmp / "d/b.txt", tmp / "d/c.txt").ok());
  CHECK(test::read_text(tmp / "d/c.txt") == "12345");
  test::write_text(tmp / "d/x", "x");
  CHECK(fs.rename_no_replace(tmp / "d/x", tmp / "d/c.txt").code() == Code::kFailedPrecondition);
  CHECK(test::read_text(tmp / "d/c.txt") == "12345");
  REQUIRE(fs.fsync_dir(tmp / "d").ok());

  REQUIRE(fs.remove(tmp / "d/c.txt").ok());
  REQUIRE(fs.remove(tmp / "d/e").ok());  // an empty directory
  CHECK(fs.remove(tmp / "d/c.txt").code() == Code::kNotFound);
  CHECK_FALSE(fs.exists(tmp / "d/e"));

  auto free = fs.free_space(tmp.path());
  REQUIRE(free.ok());
  CHECK(*free > 0);
}

TEST_CASE("a streaming reader reads in order and at offsets, and names a short file",
          "[base][fs]") {
  TempDir tmp;
  test::write_text(tmp / "f", "abcdefgh");
  auto r = real_fs().open_reader(tmp / "f");
  REQUIRE(r.ok());
  CHECK((*r)->size() == 8);
  std::uint8_t buf[5];
  CHECK(*(*r)->read(buf) == 5);
  CHECK(as_chars(ByteView(buf, 5)) == "abcde");
  REQUIRE((*r)->read_at(6, std::span<std::uint8_t>(buf, 2)).ok());
  CHECK(as_chars(ByteView(buf, 2)) == "gh");
  CHECK(*(*r)->read(buf) == 3);  // read_at did not move the position
  CHECK(*(*r)->read(buf) == 0);
  Status s = (*r)->read_at(6, buf);
  CHECK(s.code() == Code::kCorruption);
  CHECK_THAT(s.message(), Contains("is truncated"));
  CHECK(real_fs().open_reader(tmp / "none").error().code() == Code::kNotFound);
  CHECK(real_fs().read_range(tmp / "f", 4, 10).error().code() == Code::kCorruption);
}

TEST_CASE("one errno mapping gives each failure the code that says what to do", "[base][fs]") {
  struct Case {
    int err;
    Code code;
    const char* says;
  };
  for (const Case& c : {Case{ENOSPC, Code::kResourceExhausted, "free some space"},
                        Case{EDQUOT, Code::kResourceExhausted, "the disk is full"},
                        Case{ENOENT, Code::kNotFound, "No such file"},
                        Case{EACCES, Code::kFailedPrecondition, "check the permissions"},
                        Case{EPERM, Code::kFailedPrecondition, "check the permissions"},
                        Case{EROFS, Code::kFailedPrecondition, "read-only"},
                        Case{EIO, Code::kUnavailable, "was the device removed?"},
                        Case{ENODEV, Code::kUnavailable, "was the device removed?"},
                        Case{EISDIR, Code::kInvalidArgument, "directory"},
                        Case{EINVAL, Code::kInternal, "Invalid argument"}}) {
    Status s = errno_status(c.err, "writing", "/media/stick/x.pack");
    INFO(s.message());
    CHECK(s.code() == c.code);
    CHECK_THAT(s.message(), Contains("writing /media/stick/x.pack: ") && Contains(c.says));
  }
}

TEST_CASE("a directory lock is exclusive until released, and set_mtime moves the mtime",
          "[base][fs]") {
  TempDir tmp;
  FileSystem& fs = real_fs();
  {
    auto first = fs.try_lock(tmp.path());
    REQUIRE(first.ok());
    auto second = fs.try_lock(tmp.path());
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().code() == Code::kAborted);
  }
  CHECK(fs.try_lock(tmp.path()).ok());  // released with the first object

  test::write_text(tmp / "f", "x");
  const std::int64_t t = 1'900'000'000LL * 1'000'000'000LL + 5;
  REQUIRE(fs.set_mtime(tmp / "f", t).ok());
  CHECK(fs.stat(tmp / "f")->mtime_ns == t);
  CHECK(fs.set_mtime(tmp / "none", t).code() == Code::kNotFound);
}

}  // namespace
}  // namespace outpost
