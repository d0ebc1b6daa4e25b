// The network test rig: a real nginx serving a directory on loopback, and the project's
// fault-injecting HTTP proxy (tests/support/fault_proxy.cc) in front of it. Both run as child
// processes that die with the test process (PR_SET_PDEATHSIG) and are stopped by pid in their
// destructors. Not thread-safe: one test thread owns each object.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace outpost::test {

// A TCP port on 127.0.0.1 that nothing listens on, for a server the test starts or as a
// "connection refused" address for dead-mirror tests: outside the kernel's ephemeral range,
// and no other test process is given it while this one runs (a lock file per port).
int unused_port();

// A real nginx serving `root` on 127.0.0.1 (a free port), started as a child (`daemon off;`,
// its own prefix/config/logs under a TempDir, pid file), stopped by pid in the destructor.
// Run as root (as CI runs), its master process serves through a worker running as the
// unprivileged user nobody, as a real deployment's does (www-data on Debian): `root` and the
// folders above it must be traversable by others, and a file only its owner can read answers
// 403. Run as another user, it runs as that user in one process (`master_process off;`).
// Static files answer Range and multi-range (max_ranges unset), with ETag, keep-alive on and
// gzip off. With tls, it also serves https on a second port with a fresh self-signed
// certificate for 127.0.0.1 made with the openssl CLI; ca_file() is that certificate.
class Nginx {
 public:
  // max_ranges > 0: nginx's `max_ranges` (a request asking more ranges gets the whole file).
  explicit Nginx(const std::string& root, bool tls = false, int max_ranges = 0);
  ~Nginx();
  Nginx(const Nginx&) = delete;
  Nginx& operator=(const Nginx&) = delete;

  // False when nginx (or openssl, with tls) is missing or did not start; why() says what to
  // do, e.g. "nginx not installed: apt-get install nginx-light".
  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }
  std::string url() const;        // "http://127.0.0.1:PORT"
  std::string https_url() const;  // "https://127.0.0.1:PORT2" when tls, else ""
  std::string ca_file() const;    // the self-signed certificate (PEM) when tls, else ""
  int port() const { return port_; }
  int https_port() const { return https_port_; }
  std::string host_port() const;  // "127.0.0.1:PORT", for FaultProxy

  // The access log lines so far, one per request, in the format
  //   STATUS BYTES_SENT REQUEST_LENGTH "REQUEST_LINE" "RANGE_HEADER"
  // (BYTES_SENT counts headers and body). Waits until nginx has logged every request it has
  // finished (the log stops growing), so a test can read it right after a client exits.
  std::vector<std::string> access_log() const;
  std::uint64_t bytes_sent() const;      // sum of BYTES_SENT over the log
  std::uint64_t bytes_received() const;  // sum of REQUEST_LENGTH (request line, headers, body)
  std::size_t requests() const;          // number of log lines
  // Log lines whose Range header holds a comma (a multi-range request).
  std::size_t multi_range_requests() const;

 private:
  bool start(const std::string& root, bool tls);
  int max_ranges_ = 0;

  TempDir dir_;
  bool ok_ = false;
  std::string why_;
  int port_ = 0;
  int https_port_ = 0;
  bool tls_ = false;
  pid_t pid_ = -1;
};

// The project's fault-injecting HTTP proxy (tests/support/fault_proxy.cc) in front of an
// upstream (usually Nginx::host_port()), started as a child and stopped by pid. Rules are a
// JSON array (see fault_proxy.cc) and can be changed while it runs.
class FaultProxy {
 public:
  explicit FaultProxy(const std::string& upstream_host_port, const std::string& rules_json = "[]");
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }
  std::string url() const;  // "http://127.0.0.1:PORT"
  int port() const { return port_; }
  // Replaces the rules; takes effect for the next request the proxy reads.
  void set_rules(const std::string& rules_json);
  // What clients received (headers and bodies) and how many requests the proxy read, over its
  // lifetime, from the stats file it rewrites as it sends.
  std::uint64_t bytes_to_client() const;
  std::size_t requests() const;
  // The proxy's own log: one line per request ("GET /path HTTP/1.1 -> 200 OK, N bytes[,
  // closed]"), for INFO when a test fails.
  std::string log() const;

 private:
  std::pair<std::uint64_t, std::uint64_t> stats() const;

  TempDir dir_;
  bool ok_ = false;
  std::string why_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// True when the environment variable CI is set to "true": rig-dependent tests must fail
// there, and skip with a loud warning elsewhere.
bool running_in_ci();

}  // namespace outpost::test
