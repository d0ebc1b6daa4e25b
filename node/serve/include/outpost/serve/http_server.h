// The daemon's HTTP server: libmicrohttpd (an internal epoll thread pool; idle keep-alive
// connections hold no thread) behind one class, with routes registered by path prefix. Peer
// serving (/repo/), status (/status, /metrics) and, later, the kiosk pages plug in here; no
// handler sees libmicrohttpd.
//
// What the server enforces before a handler runs: GET and HEAD only (405 otherwise); a path
// that decodes to NUL or holds a malformed %-escape, a segment "." or "..", or is longer
// than kMaxPathBytes is refused (400 / 414) and never reaches a handler; request headers are
// bounded by a per-connection memory limit; connections are capped in total and per address
// and closed after `connection_timeout` seconds without progress (slow clients); response
// bytes held at once are capped (max_inflight_bytes: beyond it, 503 with Retry-After), so
// memory stays bounded whatever the clients do.
//
// Thread-safety: route() before start(); handlers run on the pool's threads, several at once,
// and must be thread-safe. stats() from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "outpost/base/status.h"

namespace outpost::serve {

inline constexpr std::size_t kMaxPathBytes = 1024;

struct HttpRequest {
  std::string method;  // "GET" or "HEAD"
  std::string path;    // decoded; starts with '/', no "." or ".." segment, no NUL
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string remote;                                        // the client's address, for logs
  std::vector<std::pair<std::string, std::string>> args;     // query arguments, decoded
  // The first header of that name (lower case), "" when absent.
  std::string header(std::string_view lower_name) const;
  // The first query argument of that name, "" when absent.
  std::string arg(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // for HEAD, the server sends the headers only (Content-Length kept)

  static HttpResponse text(int status, std::string body);
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  std::vector<std::string> listen = {"127.0.0.1:8080"};  // "HOST:PORT"; port 0: any free
  unsigned threads = 4;
  unsigned max_connections = 1024;
  unsigned per_ip_connections = 0;   // 0: none
  unsigned connection_timeout = 15;  // seconds
  std::uint64_t max_inflight_bytes = 64ull << 20;
};

struct HttpServerStats {
  std::uint64_t requests = 0;     // answered, every status
  std::uint64_t bytes_sent = 0;   // response bodies queued
  std::uint64_t refused = 0;      // 4xx the server itself gave (bad path, method)
  std::uint64_t busy = 0;         // 503 for max_inflight_bytes
  std::uint64_t connections = 0;  // open now
  std::uint64_t connections_total = 0;
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Requests whose path starts with prefix go to handler; the longest prefix wins. "/" is the
  // fallback. Only before start().
  void route(std::string prefix, HttpHandler handler);

  // Binds every listen address and starts serving. kUnavailable naming the address when a
  // port is taken ("address already in use: stop the other program or change http.listen"),
  // kInvalidArgument for an address that does not parse, kFailedPrecondition for a port the
  // user may not bind. On error nothing is left listening.
  Status start();
  // Stops accepting, ends open connections, returns when no handler runs.
  void stop();
  // The ports bound, in the order of options.listen (useful with port 0).
  std::vector<int> ports() const;
  HttpServerStats stats() const;

  struct Impl;  // internal: libmicrohttpd's callbacks reach it

 private:
  std::unique_ptr<Impl> impl_;
};

// ---- Range (RFC 9110 section 14), shared by every handler that serves bytes ----

struct RangeSpec {
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // inclusive
};

enum class RangeOutcome {
  kNone,           // no Range header, or one to ignore (malformed, not "bytes="): serve whole
  kRanges,         // serve these
  kUnsatisfiable,  // 416
};

inline constexpr std::size_t kMaxRanges = 1024;

// Parses a Range header against a resource of `total` bytes (unknown_total: the length is
// not known; suffix and open ranges are then unsatisfiable). Out-of-file ranges are dropped;
// none left is kUnsatisfiable; more than kMaxRanges ranges, or ranges adding up to more than
// twice the total, are kUnsatisfiable (abuse: "bytes=0-,0-,0-,...").
RangeOutcome parse_range(std::string_view header, std::uint64_t total, bool unknown_total,
                         std::vector<RangeSpec>* out);

// A response for a resource of `total` bytes (unknown_total: "*") honouring the request's
// Range: 200 with the whole body (read(0, total)) when no range applies, 206 with one part or
// multipart/byteranges, 416 when unsatisfiable. read(offset, length) returns the bytes or an
// error Status (its message becomes a 404/500). A resource of unknown total without Range is
// 416 too (there is no whole to send).
HttpResponse serve_bytes(
    const HttpRequest& request, std::uint64_t total, bool unknown_total,
    const std::string& content_type, const std::string& etag,
    const std::function<Result<std::string>(std::uint64_t, std::uint64_t)>& read);

}  // namespace outpost::serve
