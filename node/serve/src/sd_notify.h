// systemd readiness and watchdog (Type=notify, WatchdogSec=), through libsystemd when the
// build found it (OUTPOST_HAVE_SYSTEMD); otherwise these do nothing. Outside systemd
// (no NOTIFY_SOCKET) they do nothing either.
#pragma once

#include <chrono>

namespace outpost::serve::sd {

// sd_notify(0, state): "READY=1", "RELOADING=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...".
void notify(const char* state);
// Half the watchdog timeout systemd set (ping at least this often); 0 when there is none.
std::chrono::microseconds watchdog_interval();

}  // namespace outpost::serve::sd
