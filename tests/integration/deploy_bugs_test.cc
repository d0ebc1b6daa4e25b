// Regressions from the first real deployment (issue 7), end to end through the `outpost`
// binary and a real nginx whose workers run unprivileged (tests/support/nginx.h), as on a
// Debian server.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "http_common.h"

using namespace outpost::test;
namespace fs = std::filesystem;

namespace {

// Sets the process umask (inherited by every outpost the test runs) for its lifetime.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t old_;
};

// Every file under dir is 0644 and every folder 0755 (dir itself included).
void check_world_readable(const std::string& dir) {
  struct stat st {};
  REQUIRE(::stat(dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    REQUIRE(::lstat(e.path().c_str(), &st) == 0);
    INFO(e.path().string());
    if (S_ISDIR(st.st_mode)) {
      CHECK((st.st_mode & 07777) == 0755);
    } else {
      CHECK(S_ISREG(st.st_mode));
      CHECK((st.st_mode & 07777) == 0644);
    }
  }
}

}  // namespace

TEST_CASE("published files unreadable by the web server", "[integration][http][regression]") {
  // A publisher whose umask is 077: before the fix the patch objects (and, under this umask,
  // every file) were 0600 and nginx's workers answered 403.
  ScopedUmask mask(077);
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  check_world_readable(h.repo());

  if (::geteuid() == 0) {
    // The rig's workers are unprivileged, as a real deployment's: a file only its owner can
    // read is refused, so a published file like that cannot go unnoticed.
    REQUIRE_CURL();
    write_text(h.repo() + "/private.txt", "owner only");
    ::chmod((h.repo() + "/private.txt").c_str(), 0600);
    RunResult r = run_program(
        {curl(), "-s", "-o", "/dev/null", "-w", "%{http_code}", h.nginx.url() + "/private.txt"});
    CHECK(r.out == "403");
    fs::remove(h.repo() + "/private.txt");
  }

  h.hold_v1();
  RunResult ls = h.frozen({"ls"});
  CHECK(contains(ls.out, kResolution));
  CHECK(contains(ls.out, kIndicator));

  // A second version travels as a patch: the objects that were written 0600.
  h.publish_small_edit();
  check_world_readable(h.repo());
  RunResult s = h.sync();
  INFO(s.err << log_text(h.nginx));
  REQUIRE(s.exit_code == 0);
  const SyncedRepo r = only_repo(s.out);
  REQUIRE(r.updated.size() == 1);
  CHECK(r.updated[0].route == "patch");
  CHECK(h.frozen({"verify"}).exit_code == 0);
  for (const auto& line : h.nginx.access_log()) {
    INFO(line);
    if (contains(line, "/private.txt")) continue;  // the probe above
    CHECK(line.rfind("403 ", 0) != 0);
  }
}

TEST_CASE("a delegation without a publish stops every node", "[integration][http][regression]") {
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  // A new publisher is delegated who/x and has not published yet: the snapshot does not list
  // its role, which has no metadata.
  const std::string who_hex = h.keygen("publisher", h.keys() + "/who.key");
  h.must({"repo", "delegate", h.repo(), "--keys", h.keys(), "--publisher-pubkey", who_hex,
          "--prefix", "who/x"});

  SECTION("over http") {
    h.hold_v1();
    RunResult ls = h.frozen({"ls"});
    CHECK(contains(ls.out, kResolution));
    CHECK(contains(ls.out, kIndicator));

    // Its first release then reaches the node.
    const std::string src = h.dir / "src/who";
    copy_tree(samples_dir() + "/resolutions/A-RES-75-202", src);
    RunResult pub = h.outpost({"publish", h.repo(), "--key", h.keys() + "/who.key", "--keys",
                               h.keys(), "--bundle", "who/x/report-2026", src});
    INFO(pub.err);
    REQUIRE(pub.exit_code == 0);
    RunResult s = h.sync();
    INFO(s.err);
    REQUIRE(s.exit_code == 0);
    CHECK(contains(h.frozen({"ls"}).out, "who/x/report-2026"));
  }
  SECTION("from a folder") {
    RunResult sub = h.subscribe();
    INFO(sub.err);
    REQUIRE(sub.exit_code == 0);
    RunResult s = h.node({"sync"});
    INFO(s.err);
    REQUIRE(s.exit_code == 0);
    CHECK(contains(h.node({"ls"}).out, kResolution));
  }
}
