// A Clock a test sets by hand: how tests move a node or a publisher past an expiry. (No
// environment variable changes the time outpost believes; time is injected only this way.)
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

#include "outpost/base/clock.h"

namespace outpost::test {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(std::int64_t now = static_cast<std::int64_t>(std::time(nullptr)))
      : now_(now) {}
  std::int64_t now() const override { return now_.load(); }
  void set(std::int64_t t) { now_ = t; }
  void advance(std::int64_t seconds) { now_ += seconds; }

 private:
  std::atomic<std::int64_t> now_;
};

}  // namespace outpost::test
