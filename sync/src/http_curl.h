// The only file that includes <curl/curl.h> for the HTTP source: RAII handles for CURL* and
// curl_slist, and one HTTP exchange (request, response head, body) on a reused handle.
// Thread-safety: a CurlTransfer is used by one thread at a time.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/sync/http.h"

namespace outpost::sync::http_internal {

struct CurlEasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;

// A header list; curl_slist_append's failure (out of memory) leaves the list as it was.
class CurlSlist {
 public:
  void append(const std::string& line) {
    curl_slist* l = curl_slist_append(list_.get(), line.c_str());
    if (l != nullptr) {
      (void)list_.release();
      list_.reset(l);
    }
  }
  curl_slist* get() const { return list_.get(); }

 private:
  std::unique_ptr<curl_slist, CurlSlistDeleter> list_;
};

// curl_global_init, once per process.
void ensure_curl_global_init();

// What the final response (after redirects, without 1xx) said.
struct ResponseHead {
  long status = 0;
  std::string content_type;  // as sent (a multipart boundary is case-sensitive)
  std::string content_range;
  std::string etag;
  std::string last_modified;
  std::string retry_after;
  std::string content_encoding;  // lowercase; "" or "identity" when the body is as stored
  std::string outpost_peer;      // X-Outpost-Peer: the server is an outpost node (peer.h)
  std::optional<std::uint64_t> content_length;
};

struct Request {
  std::string url;
  std::string range;                 // CURLOPT_RANGE ("0-99,200-" ); empty: none
  std::vector<std::string> headers;  // extra lines, "If-Range: \"abc\""
};

// How a body is consumed. on_head runs once at the end of the final response's headers (an
// error aborts before any body byte is read); on_body gets 2xx bodies only (error pages are
// discarded, at most 64 KiB) and may set *stop to end the transfer early as a success.
struct BodySink {
  std::function<Status(const ResponseHead&)> on_head;
  std::function<Status(ByteView, bool* stop)> on_body;
};

struct Outcome {
  CURLcode code = CURLE_OK;
  std::string curl_error;  // curl's error buffer (or curl_easy_strerror)
  bool got_head = false;
  ResponseHead head;
  Status aborted;  // an error from the sink or from on_progress
  bool stopped = false;
};

class CurlTransfer {
 public:
  // kInternal when libcurl cannot make a handle.
  // stats and guard belong to the source and outlive the transfer; guard may be empty.
  static Result<std::unique_ptr<CurlTransfer>> create(const HttpOptions& options, HttpStats* stats,
                                                      const TransferGuard* guard);
  // One request (counted in stats, with its wire bytes). Never throws.
  Outcome perform(const Request& request, BodySink& sink);

 private:
  CurlTransfer(CurlEasy easy, const HttpOptions& options, HttpStats* stats,
               const TransferGuard* guard)
      : easy_(std::move(easy)), options_(options), stats_(stats), guard_(guard) {}
  static int progress_cb(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t);
  // Waits until the rate cap allows n more body bytes; kCancelled when stopped meanwhile.
  Status throttle(std::uint64_t n);
  static size_t header_cb(char* data, size_t size, size_t n, void* self);
  static size_t write_cb(char* data, size_t size, size_t n, void* self);
  size_t on_header(std::string_view line);
  size_t on_write(ByteView data);

  CurlEasy easy_;
  const HttpOptions& options_;
  HttpStats* stats_;
  const TransferGuard* guard_;
  // Token bucket of the rate cap: bytes allowed now, refilled at max_recv_speed per second up
  // to one second's worth.
  double tokens_ = 0;
  std::chrono::steady_clock::time_point refilled_{};
  char error_[CURL_ERROR_SIZE] = {};
  // State of the transfer in progress.
  BodySink* sink_ = nullptr;
  Outcome* out_ = nullptr;
  ResponseHead head_;  // the response whose headers are arriving
  bool has_location_ = false;
  std::uint64_t live_header_bytes_ = 0;
  std::uint64_t discarded_ = 0;
};

}  // namespace outpost::sync::http_internal
