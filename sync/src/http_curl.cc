#include "http_curl.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <mutex>

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
                                                           HttpStats* stats) {
  ensure_curl_global_init();
  CurlEasy easy(curl_easy_init());
  if (!easy) return Status::Internal("libcurl could not create a transfer handle");
  std::unique_ptr<CurlTransfer> t(new CurlTransfer(std::move(easy), options, stats));
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
    curl_easy_setopt(h, CURLOPT_MAX_RECV_SPEED_LARGE,
                     static_cast<curl_off_t>(options.max_recv_speed));
  }
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
  } else if (name == "etag") {
    head_.etag = std::string(value);
  } else if (name == "last-modified") {
    head_.last_modified = std::string(value);
  } else if (name == "retry-after") {
    head_.retry_after = std::string(value);
  } else if (name == "location") {
    has_location_ = true;
  } else if (name == "content-length") {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec == std::errc() && p == value.data() + value.size()) head_.content_length = v;
  }
  return line.size();
}

size_t CurlTransfer::on_write(ByteView data) {
  stats_->wire_bytes_in += data.size();
  stats_->body_bytes += data.size();
  if (options_.on_progress) {
    Status st = options_.on_progress(stats_->wire_bytes_in + live_header_bytes_);
    if (!st.ok()) {
      out_->aborted = std::move(st);
      return 0;
    }
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
