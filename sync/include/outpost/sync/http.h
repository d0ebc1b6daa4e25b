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
#include <stop_token>
#include <string>

#include "outpost/base/bytes.h"
#include "outpost/base/json.h"
#include "outpost/base/status.h"
#include "outpost/sync/source.h"

namespace outpost::sync {

namespace http_internal {
class CurlTransfer;
struct Outcome;
struct Failure;
}  // namespace http_internal

struct HttpOptions {
  std::string ca_file;  // extra CA bundle (PEM); empty: system CAs
  // Bytes/s cap on response bodies over this source's life, 0 = none. Held by a token bucket
  // with one second of burst, so it holds within a few per cent over any 10 s, whatever
  // the number of requests.
  std::uint64_t max_recv_speed = 0;
  long connect_timeout_s = 30;     // fits 600 ms RTT with retransmits
  long stall_timeout_s = 60;       // abort when < stall_min_speed B/s for this long (LOW_SPEED_*)
  long stall_min_speed = 16;       // bytes/s; a 1 byte/s drip is cut off
  int retries = 5;                 // per request, on resets/timeouts/5xx/truncation
  double backoff_initial_s = 1.0;  // exponential with full jitter, capped at backoff_max_s;
  double backoff_max_s = 60.0;     // a Retry-After (seconds or HTTP date) is honoured up to this
  std::string user_agent = "outpost/0.3";
  // Cancellation: once stop is requested, a transfer under way is aborted and a backoff
  // sleep ends within about 100 ms; the call returns kCancelled.
  std::stop_token stop;
};

using HttpStats = TransferStats;

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
  TransferStats stats() const override { return stats_; }
  bool metered() const override { return true; }
  void set_guard(TransferGuard guard) override { guard_ = std::move(guard); }

  // Conditional GET: with a validator (ETag) known for `path` the request carries
  // If-None-Match. Returns nullopt on 304 Not Modified; otherwise the body (same bounds as
  // read_file). Records the response ETag as the path's new validator.
  Result<std::optional<Bytes>> read_file_if_changed(const std::string& path,
                                                    std::uint64_t max_length) override;
  void set_validator(const std::string& path, std::string etag) override;
  // "" when none is known. read_file_if_changed and read_tail record validators.
  std::string validator(const std::string& path) const override;

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
                   bool* restarted = nullptr) override;

  // One request for bytes 0..length-1 (Range). From a server that ignores Range, the first
  // `length` bytes of its whole-file answer (cut there) and its Content-Length as the size;
  // kUnavailable when it gives none.
  Result<Prefix> read_prefix(const std::string& path, std::uint64_t length,
                             std::uint64_t max_size) override;

  ServerLimits limits() const override { return limits_; }
  void set_limits(ServerLimits limits) override;
  bool limits_changed() const override { return limits_changed_; }
  std::string origin() const override { return origin_; }  // "http://127.0.0.1:8080"
  bool peer() const override { return peer_; }

 private:
  HttpSource(std::string base_url, std::string origin, HttpOptions options);
  Result<std::optional<Bytes>> get_whole(const std::string& path, std::uint64_t max_length,
                                         bool conditional);
  void learn(bool ranges, bool multirange);
  std::optional<http_internal::Failure> settle(const http_internal::Outcome& o, bool wrong,
                                               const std::string& url);

  std::string base_url_;  // without a trailing '/'
  std::string origin_;
  HttpOptions options_;
  ServerLimits limits_;
  bool limits_changed_ = false;
  bool peer_ = false;  // a response carried X-Outpost-Peer
  HttpStats stats_;
  TransferGuard guard_;
  std::map<std::string, std::string> validators_;
  std::unique_ptr<http_internal::CurlTransfer> transfer_;  // the reused CURL handle
};

}  // namespace outpost::sync
