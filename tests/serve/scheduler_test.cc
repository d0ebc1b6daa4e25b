// The scheduler's decisions with an injected clock: windows by local time, budgets,
// priorities, backoff with jitter per retry class, and the clock jumping by days.
#include "outpost/serve/scheduler.h"

#include <catch2/catch.hpp>
#include <set>

#include "support/fake_clock.h"

using namespace outpost;
using namespace outpost::serve;

namespace {

// 2026-12-02T00:00:00Z
constexpr std::int64_t kMidnightUtc = 1796169600;
constexpr int kOffset = 3 * 3600;  // the node's local time is UTC+3

LinkConfig link_with(std::vector<Window> windows = {}) {
  LinkConfig l;
  l.windows = std::move(windows);
  l.backoff_min = 60;
  l.backoff_max = 3600;
  l.check_interval = 900;
  return l;
}

Scheduler make(test::FakeClock& clock, LinkConfig link = link_with()) {
  return Scheduler(link, clock, 42, [](std::int64_t) { return kOffset; });
}

}  // namespace

TEST_CASE("a sync window is local time of day and may wrap midnight", "[serve][scheduler]") {
  test::FakeClock clock(kMidnightUtc);
  Scheduler s = make(clock, link_with({Window{22 * 60, 6 * 60}}));  // 22:00-06:00 local
  // 00:00 UTC is 03:00 local: inside.
  CHECK(s.in_window(kMidnightUtc));
  // 04:00 UTC is 07:00 local: outside, and the window opens at 22:00 local = 19:00 UTC.
  CHECK_FALSE(s.in_window(kMidnightUtc + 4 * 3600));
  CHECK(s.window_opens(kMidnightUtc + 4 * 3600) == kMidnightUtc + 19 * 3600);
  s.set_repositories({{"r1", 100}});
  clock.set(kMidnightUtc + 4 * 3600);
  CHECK(s.due(UINT64_MAX).empty());
  CHECK(s.next_due() == kMidnightUtc + 19 * 3600);
  CHECK(s.due(UINT64_MAX, true) == std::vector<std::string>{"r1"});  // sync --now
  clock.set(kMidnightUtc + 19 * 3600);
  CHECK(s.due(UINT64_MAX) == std::vector<std::string>{"r1"});
}

TEST_CASE("nothing syncs once the data budget is used up", "[serve][scheduler]") {
  test::FakeClock clock(kMidnightUtc);
  Scheduler s = make(clock);
  s.set_repositories({{"r1", 100}});
  CHECK(s.due(0).empty());
  CHECK(s.due(1) == std::vector<std::string>{"r1"});
}

TEST_CASE("repositories sync by priority, lower first", "[serve][scheduler]") {
  test::FakeClock clock(kMidnightUtc);
  Scheduler s = make(clock);
  s.set_repositories({{"big", 200}, {"urgent", 1}, {"normal", 100}});
  CHECK(s.due(UINT64_MAX) == std::vector<std::string>{"urgent", "normal", "big"});
}

TEST_CASE("a transient failure backs off exponentially with jitter up to the maximum",
          "[serve][scheduler]") {
  test::FakeClock clock(kMidnightUtc);
  Scheduler s = make(clock);
  s.set_repositories({{"r1", 100}});
  std::int64_t expected = 60;
  for (int i = 1; i <= 8; ++i) {
    s.record("r1", Status::Unavailable("connection reset"));
    const std::int64_t wait = s.states().at("r1").next - clock.now();
    INFO("failure " << i);
    CHECK(wait >= expected / 2);
    CHECK(wait <= expected);
    CHECK(s.due(UINT64_MAX).empty());
    clock.advance(wait);
    CHECK(s.due(UINT64_MAX) == std::vector<std::string>{"r1"});
    expected = std::min<std::int64_t>(expected * 2, 3600);
  }
  // Jitter: the waits are not all the same draw.
  std::set<std::int64_t> waits;
  for (int i = 0; i < 5; ++i) {
    s.record("r1", Status::Unavailable("down"));
    waits.insert(s.states().at("r1").next - clock.now());
  }
  CHECK(waits.size() > 1);
  s.record("r1", Status::Ok());
  CHECK(s.states().at("r1").failures == 0);
  CHECK(s.states().at("r1").next == clock.now() + 900);
}

TEST_CASE("an untrusted certificate waits for an operator instead of retrying forever",
          "[serve][scheduler]") {
  test::FakeClock clock(kMidnightUtc);
  Scheduler s = make(clock);
  s.set_repositories({{"r1", 100}});
  s.record("r1", Status::FailedPrecondition("server certificate not trusted: pass a CA file"));
  CHECK(s.states().at("r1").next == kNever);
  clock.advance(30 * 86400);
  CHECK(s.due(UINT64_MAX).empty());
  s.force();  // outpost sync --now, or a reload
  CHECK(s.due(UINT64_MAX) == std::vector<std::string>{"r1"});
}

TEST_CASE("a bad signature waits the longest backoff and 'retry now' the shortest",
          "[serve][scheduler]") {
  test::FakeClock clock(kMidnightUtc);
  Scheduler s = make(clock);
  s.set_repositories({{"a", 1}, {"b", 2}});
  s.record("a", Status::VerificationFailed("bad signature"));
  s.record("b", Status::Corruption("damaged chunk"));
  CHECK(s.states().at("a").next - clock.now() >= 1800);
  CHECK(s.states().at("b").next - clock.now() <= 60);
  // A stop request is no failure: the repository stays due.
  s.record("a", Status::Cancelled("stopping"));
  CHECK(s.states().at("a").failures == 1);
}

TEST_CASE("bad input: the clock jumping days backwards or forwards keeps the waits",
          "[serve][scheduler]") {
  test::FakeClock clock(kMidnightUtc);
  Scheduler s = make(clock);
  s.set_repositories({{"r1", 100}});
  s.record("r1", Status::Ok());  // next check in 900 s
  clock.advance(-5 * 86400);     // an RTC-less Pi boots in the past
  CHECK(s.due(UINT64_MAX).empty());
  CHECK(s.states().at("r1").next - clock.now() <= 900);  // not 5 days
  clock.advance(900);
  CHECK(s.due(UINT64_MAX) == std::vector<std::string>{"r1"});
  s.record("r1", Status::Ok());
  clock.advance(10 * 86400);         // NTP corrects by ten days
  CHECK(s.due(UINT64_MAX).empty());  // the wait is kept, no storm
  clock.advance(900);
  CHECK(s.due(UINT64_MAX) == std::vector<std::string>{"r1"});
}

TEST_CASE("the link check finds a closed port down and an open path up", "[serve][scheduler]") {
  CHECK(check_link("http://127.0.0.1:1/repo", 2).code() == Code::kUnavailable);
  CHECK(check_link("/nonexistent/repo", 2).code() == Code::kUnavailable);
  CHECK(check_link("/", 2).code() == Code::kUnavailable);  // no metadata/ folder
}
