// When the daemon syncs what: the decisions, apart from the doing, so they are tested with an
// injected clock (tests/serve/scheduler_test.cc). The daemon's loop asks due(), runs the syncs
// it names in that order, and reports each outcome with record().
//
// - Windows: local time of day (LinkConfig::windows; none: always). utc_offset(t) gives the
//   local offset at t in seconds (the real one from localtime_r by default; tests fix it).
// - Budget: due() returns nothing when the data budget left is 0 (the node itself defers
//   bundles that do not fit what is left).
// - Priorities: lower SubscriptionConfig::priority first, then id.
// - Backoff after a failure, by the Status's retry class (base/retry.h), with jitter (a
//   uniform draw in [d/2, d]): "retry now" waits backoff_min (doubling up to 8x);
//   "retry later" doubles from backoff_min up to backoff_max; "needs an operator" waits for
//   one (force(): `outpost sync --now`, or a reload) instead of retrying forever; "give up"
//   waits backoff_max (new signed metadata may fix it, the same bytes never will); a stop
//   request changes nothing. Success waits check_interval.
// - The clock jumping (a Pi without RTC getting NTP time, an operator's date -s): waits are
//   kept relative, so a jump of days either way neither stalls the schedule nor storms.
// Thread-safety: none; the daemon's scheduler thread owns it.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/base/retry.h"
#include "outpost/base/status.h"
#include "outpost/serve/config.h"

namespace outpost::serve {

inline constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

struct RepoPlan {
  std::string id;  // repository id, or the configured URL before its first subscribe
  int priority = 100;
};

struct RepoState {
  int priority = 100;
  std::int64_t next = 0;  // earliest next attempt (kNever: waits for an operator)
  int failures = 0;       // in a row
  std::int64_t last_attempt = 0;
  std::int64_t last_success = 0;
  RetryClass last_class = RetryClass::kNone;
  std::string last_error;  // "" after a success
};

// The local offset from UTC at t, in seconds (localtime_r's tm_gmtoff).
int system_utc_offset(std::int64_t t);

class Scheduler {
 public:
  Scheduler(LinkConfig link, Clock& clock, std::uint64_t seed = std::random_device{}(),
            std::function<int(std::int64_t)> utc_offset = system_utc_offset);

  void set_link(LinkConfig link) { link_ = std::move(link); }
  const LinkConfig& link() const { return link_; }
  // The repositories to schedule; states of ids already known are kept, others dropped.
  void set_repositories(const std::vector<RepoPlan>& repos);

  bool in_window(std::int64_t t) const;
  // The first moment at or after t inside a window (t itself when inside).
  std::int64_t window_opens(std::int64_t t) const;

  // Ids to sync now, in order. Empty outside the windows (unless ignore_windows: a forced
  // round) or with no budget left.
  std::vector<std::string> due(std::uint64_t budget_left, bool ignore_windows = false);
  // The outcome of one sync of id at clock.now().
  void record(const std::string& id, const Status& outcome);
  // Everything due now, waiting for an operator or not (`outpost sync --now`, a reload).
  void force();
  // id due now unless it waits for an operator (a new source of it appeared on the LAN).
  void make_due(const std::string& id);
  // When something may next be due (for the loop's sleep); kNever when nothing is scheduled.
  std::int64_t next_due() const;

  const std::map<std::string, RepoState>& states() const { return states_; }

 private:
  std::int64_t backoff(RetryClass c, int failures);
  void follow_clock();

  LinkConfig link_;
  Clock& clock_;
  std::mt19937_64 rng_;
  std::function<int(std::int64_t)> utc_offset_;
  std::map<std::string, RepoState> states_;
  std::int64_t last_seen_ = 0;
};

// Whether a repository's location answers at all, cheaply: a TCP connect to an http(s) URL's
// host and port (no request, no bytes counted), or the metadata/ folder of a path. The
// daemon checks before a sync so that a dead link costs nothing and backs off.
// kUnavailable "link down: ..." otherwise.
Status check_link(const std::string& location, int timeout_s);

}  // namespace outpost::serve
