// DNS-SD on the LAN (docs/daemon.md, "LAN discovery"): the daemon's HTTP service announced as
// service type "_outpost._tcp" with TXT "path=/repo/" (where peer serving lives) and
// "status=/status", and other outpost nodes found by browsing for the same type and resolving
// each to an IPv4 address, port and path. Through Avahi (libavahi-client, talking to
// avahi-daemon over D-Bus) when the build found it (OUTPOST_HAVE_AVAHI); otherwise start()
// says it is not built in. Avahi runs its own thread; a name collision takes Avahi's
// alternative name, and an avahi-daemon that is not running yet (or restarts) is waited for.
// What is found is only a hint: the daemon checks what a peer serves, and everything it sends
// is verified against the publisher's signatures as from any mirror.
// Thread-safety: start() and stop() from one thread; peers() from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "outpost/base/status.h"

namespace outpost::serve {

// Another node found on the LAN.
struct LanPeer {
  std::string name;  // its DNS-SD service name ("outpost on kiosk-2")
  std::string host;  // IPv4 address as text
  std::uint16_t port = 0;
  std::string path = "/repo/";  // TXT "path": where it serves repositories
  // "http://HOST:PORT/repo/"
  std::string url() const;
  friend bool operator==(const LanPeer&, const LanPeer&) = default;
};

class Announcer {
 public:
  // log: one line per event (announced, collision, found, gone, avahi-daemon gone).
  // changed: called (on Avahi's thread, without locks held) when peers() changed.
  explicit Announcer(std::function<void(const std::string&)> log,
                     std::function<void()> changed = nullptr);
  ~Announcer();
  Announcer(const Announcer&) = delete;
  Announcer& operator=(const Announcer&) = delete;

  // Whether this build can announce and browse at all.
  static bool built_in();
  // Announces `name` on `port` when announce, browses for other nodes when browse.
  // kFailedPrecondition when not built in or Avahi's client cannot be created.
  Status start(const std::string& name, std::uint16_t port, bool announce = true,
               bool browse = false);
  // Withdraws the announcement and stops browsing (also done by the destructor).
  void stop();
  // The other nodes resolved so far and not withdrawn since (never this one), by name.
  std::vector<LanPeer> peers() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::serve
