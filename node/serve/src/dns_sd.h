// DNS-SD announcement of the daemon's HTTP service on the LAN (docs/daemon.md, "LAN
// discovery"): service type "_outpost._tcp", TXT "path=/repo/" (where peer serving lives) and
// "status=/status". Through Avahi (libavahi-client, talking to avahi-daemon over D-Bus) when
// the build found it (OUTPOST_HAVE_AVAHI); otherwise start() says it is not built in. Avahi
// runs its own thread; a name collision takes Avahi's alternative name, and an avahi-daemon
// that is not running yet (or restarts) is waited for.
// Thread-safety: start() and stop() from one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "outpost/base/status.h"

namespace outpost::serve {

class Announcer {
 public:
  // log: one line per event (announced, collision, avahi-daemon gone).
  explicit Announcer(std::function<void(const std::string&)> log);
  ~Announcer();
  Announcer(const Announcer&) = delete;
  Announcer& operator=(const Announcer&) = delete;

  // Whether this build can announce at all.
  static bool built_in();
  // Announces `name` on `port`. kFailedPrecondition when not built in or Avahi's client
  // cannot be created.
  Status start(const std::string& name, std::uint16_t port);
  // Withdraws the announcement (also done by the destructor).
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::serve
