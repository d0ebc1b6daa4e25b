// Wall-clock time as seconds since the Unix epoch, behind an interface so tests can move
// time past an expiry. Thread-safety: implementations must be safe to call from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace outpost {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t now() const = 0;  // seconds since 1970-01-01T00:00:00Z
};

// The system clock, and only that: no environment variable changes the time a node believes
// (it persists the latest time it saw as a floor). Tests pass their own Clock.
Clock& system_clock();

// "2026-11-28T17:43:00Z" <-> seconds. Only this exact UTC form (what TUF writes) is accepted.
std::string format_utc(std::int64_t seconds);
std::optional<std::int64_t> parse_utc(std::string_view text);

}  // namespace outpost
