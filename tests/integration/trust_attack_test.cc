// Trust attacks on a node's clock (issue 12, point 4; docs/SECURITY.md, "Trust attacks"):
// the real binary under libfaketime, as a Raspberry Pi without a real-time clock would run
// it. The attacks on the metadata itself are cases of the tuf-js differential test
// (tests/interop/run_interop.sh), so that both clients see each one; what is checked here is
// what tuf-js has no counterpart for: outpost's time floor, across runs.
#include <catch2/catch.hpp>
#include <cstdlib>

#include "fixture.h"
#include "support/nginx.h"

using namespace outpost::test;

namespace {

// Runs outpost with the clock at `when` ("2099-06-01 00:00:00", UTC) through libfaketime.
RunResult at_time(const std::string& when, std::vector<std::string> args) {
  const std::string faketime = find_program("faketime", {"/usr/bin"});
  args.insert(args.begin(), OUTPOST_BINARY);
  args.insert(args.begin(), {faketime, "-f", "@" + when});
  // AddressSanitizer wants its runtime first among the loaded libraries; libfaketime is
  // preloaded. And its allocator, when it decides whether to return memory to the system, reads
  // the clock with a lock held: libfaketime's clock_gettime then allocates, and the process
  // deadlocked (seen with the binary built under /tmp). Never returning memory to the system
  // takes the clock out of the allocator.
  const char* asan = std::getenv("ASAN_OPTIONS");
  return run_program(args, {"TZ=UTC", std::string("ASAN_OPTIONS=") + (asan ? asan : "") +
                                          ":verify_asan_link_order=0"
                                          ":allocator_release_to_os_interval_ms=-1"});
}

bool have_faketime() {
  if (!find_program("faketime", {"/usr/bin"}).empty()) return true;
  if (running_in_ci()) FAIL("faketime not installed: apt-get install faketime");
  WARN("SKIPPED (CI runs this test): faketime not installed: apt-get install faketime");
  return false;
}

std::string time_floor(Published& p) {
  RunResult st = p.node({"status", "--json"});
  REQUIRE(st.exit_code == 0);
  const std::size_t at = st.out.find("\"time_floor\": \"");
  REQUIRE(at != std::string::npos);
  return st.out.substr(at + 15, 20);
}

}  // namespace

TEST_CASE(
    "a clock set to 2099 is refused without moving the time floor, and once the clock is "
    "right the node syncs again (no lock-out)",
    "[integration][trust]") {
  if (!have_faketime()) return;
  Published p;
  REQUIRE(p.subscribe().exit_code == 0);
  REQUIRE(p.node({"sync"}).exit_code == 0);
  const std::string floor = time_floor(p);
  RunResult future = at_time("2099-06-01 00:00:00", {"sync", "--store", p.store()});
  check_refused(future, 4);
  CHECK(future.err.find("expired") != std::string::npos);
  CHECK(time_floor(p) == floor);
  // Held content stays readable whatever the clock says.
  RunResult cat = at_time("2099-06-01 00:00:00",
                          {"cat", "itu/ict/digital-divide-2019", "data.csv", "--store", p.store()});
  CHECK(cat.exit_code == 0);
  RunResult again = p.node({"sync"});
  INFO(again.err);
  CHECK(again.exit_code == 0);
  CHECK(time_floor(p).rfind("2099", 0) != 0);
}

TEST_CASE(
    "a clock set back to 1970 after a sync keeps the time floor: the node still syncs and "
    "nothing is rolled back",
    "[integration][trust]") {
  if (!have_faketime()) return;
  Published p;
  REQUIRE(p.subscribe().exit_code == 0);
  REQUIRE(p.node({"sync"}).exit_code == 0);
  const std::string floor = time_floor(p);
  RunResult past = at_time("1970-01-01 12:00:00", {"sync", "--store", p.store()});
  INFO(past.err);
  CHECK(past.exit_code == 0);
  CHECK(time_floor(p) == floor);
  RunResult verify = p.node({"verify"});
  CHECK(verify.exit_code == 0);
}
