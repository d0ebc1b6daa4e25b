#include "http_curl.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <mutex>
#include <thread>

namespace outpost::sync::http_internal {

namespace {

constexpr std::uint64_t kMaxErrorBody = 64 * 1024;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

void ensure_curl_global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

Result<std::unique_ptr<CurlTransfer>> CurlTransfer::create(const HttpOptions& options,
                                                           HttpStats* stats,
                                                           const TransferGuard* guard) {
  ensure_curl_global_init();
  CurlEasy easy(curl_easy_init());
  if (!easy) return Status::Internal("libcurl could not create a transfer handle");
  std::unique_ptr<CurlTransfer> t(new CurlTransfer(std::move(easy), options, stats, guard));
  CURL* h = t->easy_.get();
  // Options fixed for the life of the handle; the connection it keeps open is reused by
  // every request (one TCP + TLS handshake at 600 ms RTT is worth saving).
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->error_);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &CurlTransfer::header_cb);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, t.get());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &CurlTransfer::write_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(h, CURLOPT_USERAGENT, options.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, options.connect_timeout_s);
  // No total timeout: a large pack at 64 kbit/s takes as long as it takes; a stalled link
  // is cut off by the low-speed limit instead.
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, options.stall_min_speed);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, options.stall_timeout_s);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 60L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 30L);
  if (options.max_recv_speed > 0) {
    // The cap itself is our token bucket (throttle), which holds across requests; a small
    // receive buffer keeps each burst small at low rates.
    long buffer = static_cast<long>(
        std::clamp<std::uint64_t>(options.max_recv_speed / 4, 1024, CURL_MAX_WRITE_SIZE));
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, buffer);
    t->tokens_ = static_cast<double>(options.max_recv_speed);
    t->refilled_ = std::chrono::steady_clock::now();
  }
  // Called about once a second, and at once when data moves: the place to notice a stop
  // request while the link is silent.
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &CurlTransfer::progress_cb);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, t.get());
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  if (!options.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options.ca_file.c_str());
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  // Proxies: CURLOPT_PROXY stays unset so libcurl reads http_proxy/https_proxy/no_proxy.
  return t;
}

Outcome CurlTransfer::perform(const Request& request, BodySink& sink) {
  Outcome out;
  CURL* h = easy_.get();
  CurlSlist headers;
  headers.append("Accept:");  // libcurl's default "Accept: */*" is bytes for nothing
  for (const std::string& line : request.headers) headers.append(line);
  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(h, CURLOPT_RANGE, request.range.empty() ? nullptr : request.range.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  error_[0] = '\0';
  sink_ = &sink;
  out_ = &out;
  head_ = ResponseHead{};
  has_location_ = false;
  live_header_bytes_ = 0;
  discarded_ = 0;
  ++stats_->requests;

  out.code = curl_easy_perform(h);

  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  sink_ = nullptr;
  out_ = nullptr;
  long header_size = 0;
  long request_size = 0;
  curl_easy_getinfo(h, CURLINFO_HEADER_SIZE, &header_size);
  curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &request_size);
  stats_->wire_bytes_in += static_cast<std::uint64_t>(std::max(header_size, 0L));
  stats_->wire_bytes_out += static_cast<std::uint64_t>(std::max(request_size, 0L));
  if (out.code != CURLE_OK) {
    out.curl_error = error_[0] != '\0' ? std::string(error_) : curl_easy_strerror(out.code);
    while (!out.curl_error.empty() && out.curl_error.back() == '\n') out.curl_error.pop_back();
  }
  if (!out.got_head && out.code == CURLE_OK) {
    // The connection closed before the blank line that ends the headers: curl (7.88) reports
    // success when the status line was complete, but nothing after it can be trusted. Count
    // it as a dropped connection, which is retried.
    out.code = CURLE_PARTIAL_FILE;
    out.curl_error = "the connection closed in the middle of the response headers";
  }
  return out;
}

size_t CurlTransfer::header_cb(char* data, size_t size, size_t n, void* self) {
  return static_cast<CurlTransfer*>(self)->on_header(std::string_view(data, size * n));
}

size_t CurlTransfer::write_cb(char* data, size_t size, size_t n, void* self) {
  return static_cast<CurlTransfer*>(self)->on_write(
      ByteView(reinterpret_cast<const std::uint8_t*>(data), size * n));
}

size_t CurlTransfer::on_header(std::string_view line) {
  live_header_bytes_ += line.size();
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (1xx, a redirect, or the final one)
    head_ = ResponseHead{};
    has_location_ = false;
    std::size_t sp = line.find(' ');
    if (sp != std::string_view::npos) {
      std::string_view code = line.substr(sp + 1, 3);
      std::from_chars(code.data(), code.data() + code.size(), head_.status);
    }
    return line.size();
  }
  std::string_view t = trim(line);
  if (t.empty()) {  // end of this response's headers
    bool interim = head_.status >= 100 && head_.status < 200;
    bool followed =
        head_.status >= 300 && head_.status < 400 && has_location_ && head_.status != 304;
    if (interim || followed || out_->got_head) return line.size();
    out_->got_head = true;
    out_->head = head_;
    Status st = sink_->on_head(head_);
    if (!st.ok()) {
      out_->aborted = std::move(st);
      return 0;  // CURLE_WRITE_ERROR: nothing of the body is read
    }
    return line.size();
  }
  std::size_t colon = t.find(':');
  if (colon == std::string_view::npos) return line.size();
  std::string name = lower(trim(t.substr(0, colon)));
  std::string_view value = trim(t.substr(colon + 1));
  if (name == "content-type") {
    head_.content_type = std::string(value);
  } else if (name == "content-range") {
    head_.content_range = std::string(value);
  } else if (name == "x-outpost-peer") {
    head_.outpost_peer = std::string(value);
  } else if (name == "etag") {
    head_.etag = std::string(value);
  } else if (name == "last-modified") {
    head_.last_modified = std::string(value);
  } else if (name == "retry-after") {
    head_.retry_after = std::string(value);
  } else if (name == "location") {
    has_location_ = true;
  } else if (name == "content-encoding") {
    head_.content_encoding = lower(value);
  } else if (name == "content-length") {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec == std::errc() && p == value.data() + value.size()) head_.content_length = v;
  }
  return line.size();
}

int CurlTransfer::progress_cb(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<CurlTransfer*>(self);
  if (t->options_.stop.stop_requested()) {
    if (t->out_ != nullptr && t->out_->aborted.ok()) {
      t->out_->aborted = Status::Cancelled("stopped on request");
    }
    return 1;  // CURLE_ABORTED_BY_CALLBACK
  }
  return 0;
}

Status CurlTransfer::throttle(std::uint64_t n) {
  const double rate = static_cast<double>(options_.max_recv_speed);
  if (rate <= 0) return Status::Ok();
  using Clock = std::chrono::steady_clock;
  tokens_ -= static_cast<double>(n);
  while (true) {
    Clock::time_point now = Clock::now();
    tokens_ =
        std::min(rate, tokens_ + rate * std::chrono::duration<double>(now - refilled_).count());
    refilled_ = now;
    if (tokens_ >= 0) return Status::Ok();
    if (options_.stop.stop_requested()) return Status::Cancelled("stopped on request");
    // Sleep for what the debt takes to repay, in slices short enough to notice a stop.
    double wait = std::min(-tokens_ / rate, 0.1);
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
  }
}

size_t CurlTransfer::on_write(ByteView data) {
  stats_->wire_bytes_in += data.size();
  stats_->body_bytes += data.size();
  Status allowed = throttle(data.size());
  if (allowed.ok() && options_.stop.stop_requested()) {
    allowed = Status::Cancelled("stopped on request");
  }
  if (allowed.ok() && guard_ != nullptr && *guard_) {
    HttpStats live = *stats_;
    live.wire_bytes_in += live_header_bytes_;  // this response's headers count already
    allowed = (*guard_)(live);
  }
  if (!allowed.ok()) {
    out_->aborted = std::move(allowed);
    return 0;
  }
  long status = out_->got_head ? out_->head.status : head_.status;
  if (!out_->got_head) {
    // A body without a blank line seen first cannot happen with HTTP/1.x or 2; be safe.
    out_->got_head = true;
    out_->head = head_;
    Status st = sink_->on_head(head_);
    if (!st.ok()) {
      out_->aborted = std::move(st);
      return 0;
    }
  }
  if (status < 200 || status >= 300) {
    discarded_ += data.size();
    if (discarded_ > kMaxErrorBody) {
      out_->stopped = true;
      return 0;
    }
    return data.size();
  }
  bool stop = false;
  Status st = sink_->on_body(data, &stop);
  if (!st.ok()) {
    out_->aborted = std::move(st);
    return 0;
  }
  if (stop) {
    out_->stopped = true;
    return 0;
  }
  return data.size();
}

}  // namespace outpost::sync::http_internal
