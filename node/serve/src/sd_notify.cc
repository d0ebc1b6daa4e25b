#include "sd_notify.h"

#ifdef OUTPOST_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include <cstdint>

namespace outpost::serve::sd {

#ifdef OUTPOST_HAVE_SYSTEMD
void notify(const char* state) { (void)sd_notify(0, state); }
std::chrono::microseconds watchdog_interval() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0) return std::chrono::microseconds(0);
  return std::chrono::microseconds(static_cast<std::int64_t>(usec / 2));
}
#else
void notify(const char*) {}
std::chrono::microseconds watchdog_interval() { return std::chrono::microseconds(0); }
#endif

}  // namespace outpost::serve::sd
