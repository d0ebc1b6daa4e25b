// A repository served over http:// or https:// (nginx, a CDN, an object store, a peer node),
// read with libcurl and made for poor links: 64 kbit/s, 600 ms RTT, drops every few minutes,
// paid per megabyte.
//
// - One connection, reused (keep-alive) for every request of a source; minimal request
//   headers, so a "nothing changed" check is one request + a 304 answer of a few hundred bytes.
// - Transient failures (connection reset or refused, DNS, stalls, 5xx, 429, truncated
//   bodies) are retried with exponential backoff and full jitter; Retry-After is honoured up
//   to backoff_max_s. A body cut short resumes with a Range request (If-Range on its ETag)
//   from the last byte received. TLS trust errors, 404 and other 4xx are not retried.
// - Nothing reads more than the caller's bound: a longer body (or a Content-Length over it)
//   is kCorruption, an endless body stops at the bound.
// - Range reads coalesce near ranges and ask for them in few requests (multi-range), parse
//   multipart/byteranges strictly and fall back to single ranges, then to the whole file,
//   when a server gets them wrong; what was learned is kept in ServerLimits for the node to
//   persist.
// - Nothing is cached: a caller that found a bad hash may ask again and gets fresh bytes.
//
// Errors: kNotFound (404/410), kUnavailable (network, TLS trust, other HTTP errors, captive
// portals: one line naming the cause and what to do), kCorruption (longer than declared, a
// file shorter than the ranges asked), or whatever on_progress returned.
// Proxies: http_proxy / https_proxy / no_proxy from the environment are honoured (libcurl).
// Thread-safety: one thread at a time per source. libcurl's global init runs once, on first
// use (std::call_once).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "outpost/base/bytes.h"
#include "outpost/base/json.h"
#include "outpost/base/status.h"
#include "outpost/sync/source.h"

namespace outpost::sync {

namespace http_internal {
class CurlTransfer;
}

struct HttpOptions {
  std::string ca_file;               // extra CA bundle (PEM); empty: system CAs
  std::uint64_t max_recv_speed = 0;  // bytes/s cap, 0 = none (CURLOPT_MAX_RECV_SPEED_LARGE)
  long connect_timeout_s = 30;       // fits 600 ms RTT with retransmits
  long stall_timeout_s = 60;         // abort when < stall_min_speed B/s for this long (LOW_SPEED_*)
  long stall_min_speed = 16;         // bytes/s; a 1 byte/s drip is cut off
  int retries = 5;                   // per request, on resets/timeouts/5xx/truncation
  double backoff_initial_s = 1.0;    // exponential with full jitter, capped at backoff_max_s;
  double backoff_max_s = 60.0;       // a Retry-After (seconds or HTTP date) is honoured up to this
  std::string user_agent = "outpost/0.3";
  // Called with each received body piece (for progress and for budget accounting) with the
  // wire bytes received so far by this source (headers included); may return an error
  // Status to abort the transfer (e.g. budget exhausted): the call then returns that Status.
  std::function<Status(std::uint64_t wire_bytes_so_far)> on_progress;
};

// What a server is known to handle, remembered between runs by the node (it persists the
// Json form in its store, keyed by origin "scheme://host:port").
struct ServerLimits {
  bool multirange = true;         // multipart/byteranges answered correctly
  bool ranges = true;             // Range honoured at all
  std::uint32_t max_ranges = 64;  // ranges per request known to work
  // {"multirange":true,"ranges":true,"max_ranges":64}
  Json to_json() const;
  // Missing or ill-typed fields keep their defaults; max_ranges is clamped to 1..1024.
  static ServerLimits from_json(const Json& json);
};

struct HttpStats {
  std::uint64_t requests = 0;        // HTTP requests made, retries included
  std::uint64_t wire_bytes_in = 0;   // response headers + bodies
  std::uint64_t wire_bytes_out = 0;  // request lines + headers
  std::uint64_t body_bytes = 0;      // response bodies (error pages and discarded bytes too)
};

class HttpSource final : public Source {
 public:
  // base_url: "http://host[:port][/prefix]" or https. Repository paths are appended to it.
  // kInvalidArgument for another scheme or a malformed URL. No request is made here.
  static Result<std::unique_ptr<HttpSource>> open(const std::string& base_url, HttpOptions options);
  ~HttpSource() override;
  HttpSource(const HttpSource&) = delete;
  HttpSource& operator=(const HttpSource&) = delete;

  // Source. read_file: at most max_length bytes, a longer body is kCorruption.
  // read_ranges: in the order asked; a file shorter than a range is kCorruption.
  Result<Bytes> read_file(const std::string& path, std::uint64_t max_length) override;
  Result<std::vector<Bytes>> read_ranges(const std::string& path,
                                         const std::vector<ByteRange>& ranges) override;
  std::string describe() const override;  // "mirror at https://example.org/repo"
  std::uint64_t bytes_read() const override { return stats_.wire_bytes_in; }

  // Conditional GET: with a validator (ETag) known for `path` the request carries
  // If-None-Match. Returns nullopt on 304 Not Modified; otherwise the body (same bounds as
  // read_file). Records the response ETag as the path's new validator.
  Result<std::optional<Bytes>> read_file_if_changed(const std::string& path,
                                                    std::uint64_t max_length);
  void set_validator(const std::string& path, std::string etag);
  // "" when none is known. read_file_if_changed and read_tail record validators.
  std::string validator(const std::string& path) const;

  // Range read of one file from `offset` to its end (resume of a partial transfer: the
  // caller passes what it already has), calling `on_piece` with each piece as it arrives so
  // the caller can commit it; an error from on_piece aborts and is returned. Bounded by
  // max_total (the file length declared in signed metadata): more bytes is kCorruption.
  // Uses If-Range with the validator when known. When the server answers 200 (range ignored,
  // or the file changed) the read restarts from byte 0: *restarted is set to true BEFORE the
  // first piece of byte 0 is passed to on_piece, so on_piece can look at it. offset ==
  // max_total makes no request; offset > max_total is kInvalidArgument.
  Status read_tail(const std::string& path, std::uint64_t offset, std::uint64_t max_total,
                   const std::function<Status(ByteView piece)>& on_piece,
                   bool* restarted = nullptr);

  const ServerLimits& limits() const { return limits_; }
  void set_limits(ServerLimits limits);
  bool limits_changed() const { return limits_changed_; }  // the node should save limits()
  const HttpStats& stats() const { return stats_; }
  std::string origin() const { return origin_; }  // "http://127.0.0.1:8080"

 private:
  HttpSource(std::string base_url, std::string origin, HttpOptions options);
  Result<std::optional<Bytes>> get_whole(const std::string& path, std::uint64_t max_length,
                                         bool conditional);
  void learn(bool ranges, bool multirange);

  std::string base_url_;  // without a trailing '/'
  std::string origin_;
  HttpOptions options_;
  ServerLimits limits_;
  bool limits_changed_ = false;
  HttpStats stats_;
  std::map<std::string, std::string> validators_;
  std::unique_ptr<http_internal::CurlTransfer> transfer_;  // the reused CURL handle
};

}  // namespace outpost::sync
