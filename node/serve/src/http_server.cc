// The only file that includes <microhttpd.h>.
#include "outpost/serve/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cstring>
#include <map>
#include <mutex>

#include "http_parse.h"
#include "outpost/base/unique_fd.h"

namespace outpost::serve {

namespace {

struct DaemonDeleter {
  void operator()(MHD_Daemon* d) const { MHD_stop_daemon(d); }
};
using DaemonPtr = std::unique_ptr<MHD_Daemon, DaemonDeleter>;

// Marks a request whose URL had a malformed escape or an encoded NUL (the unescaper cannot
// report an error; it rewrites the URL to this, and no valid path starts with it).
constexpr char kBadEscape = '\x01';

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

namespace internal {

std::size_t unescape_url(char* s) {
  char* out = s;
  for (const char* in = s; *in != '\0'; ++in) {
    if (*in != '%') {
      *out++ = *in;
      continue;
    }
    int hi = hex_digit(in[1]);
    int lo = hi < 0 ? -1 : hex_digit(in[2]);
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
      s[0] = kBadEscape;
      s[1] = '\0';
      return 1;
    }
    *out++ = static_cast<char>(hi * 16 + lo);
    in += 2;
  }
  *out = '\0';
  return static_cast<std::size_t>(out - s);
}

// Why a decoded path is refused (empty: fine).
std::pair<int, std::string> check_path(const std::string& path) {
  if (!path.empty() && path[0] == kBadEscape) {
    return {400, "malformed %-escape or encoded NUL in the URL"};
  }
  if (path.size() > kMaxPathBytes) return {414, "URL path longer than 1024 bytes"};
  if (path.empty() || path[0] != '/') return {400, "the path must start with /"};
  std::size_t at = 1;
  while (at <= path.size()) {
    std::size_t slash = path.find('/', at);
    if (slash == std::string::npos) slash = path.size();
    std::string_view seg(path.data() + at, slash - at);
    if (seg == "." || seg == "..") return {400, "'.' and '..' are not allowed in a path"};
    for (char c : seg) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '\\') {
        return {400, "control characters and backslashes are not allowed in a path"};
      }
    }
    at = slash + 1;
  }
  return {0, ""};
}

}  // namespace internal

namespace {

using internal::check_path;

size_t unescape(void*, MHD_Connection*, char* s) { return internal::unescape_url(s); }

bool split_host_port(const std::string& s, std::string* host, std::string* port) {
  std::size_t colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  *host = s.substr(0, colon);
  *port = s.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return !port->empty();
}

Result<UniqueFd> listen_on(const std::string& address, int* bound_port) {
  std::string host, port;
  if (!split_host_port(address, &host, &port)) {
    return Status::InvalidArgument("listen address '" + address +
                                   "' is not HOST:PORT: write e.g. \"127.0.0.1:8080\"");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return Status::InvalidArgument("listen address '" + address + "': " + ::gai_strerror(rc) +
                                   ": use an IP address of this host");
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);
  UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid())
    return Status::Unavailable("cannot open a socket: " + std::string(std::strerror(errno)));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (res->ai_family == AF_INET6)
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0) {
    int e = errno;
    if (e == EADDRINUSE) {
      return Status::Unavailable("cannot listen on " + address +
                                 ": address already in use: stop the other program on that port "
                                 "or change http.listen");
    }
    if (e == EACCES) {
      return Status::FailedPrecondition("cannot listen on " + address +
                                        ": permission denied: use a port above 1023 or run "
                                        "with CAP_NET_BIND_SERVICE");
    }
    return Status::Unavailable("cannot listen on " + address + ": " + std::strerror(e) +
                               ": check http.listen");
  }
  if (::listen(fd.get(), 256) != 0) {
    return Status::Unavailable("cannot listen on " + address + ": " + std::strerror(errno));
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  *bound_port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                         : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return fd;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

std::string HttpRequest::arg(std::string_view name) const {
  for (const auto& [k, v] : args) {
    if (k == name) return v;
  }
  return {};
}

HttpResponse HttpResponse::text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  if (!r.body.empty() && r.body.back() != '\n') r.body += '\n';
  return r;
}

struct HttpServer::Impl {
  HttpServerOptions options;
  std::map<std::string, HttpHandler> routes;
  std::vector<DaemonPtr> daemons;
  std::vector<int> ports;
  std::atomic<std::uint64_t> inflight{0};
  std::atomic<std::uint64_t> requests{0}, bytes_sent{0}, refused{0}, busy{0};
  std::atomic<std::uint64_t> connections{0}, connections_total{0};

  struct Body {
    std::string bytes;
    Impl* impl;
  };

  static void free_body(void* cls) {
    auto* b = static_cast<Body*>(cls);
    b->impl->inflight -= b->bytes.size();
    delete b;
  }

  static void on_connection(void* cls, MHD_Connection*, void**,
                            MHD_ConnectionNotificationCode code) {
    auto* self = static_cast<Impl*>(cls);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      ++self->connections;
      ++self->connections_total;
    } else {
      --self->connections;
    }
  }

  static MHD_Result collect_header(void* cls, MHD_ValueKind, const char* key, const char* value) {
    auto* req = static_cast<HttpRequest*>(cls);
    if (req->headers.size() < 100 && key != nullptr) {
      req->headers.emplace_back(lower(key), value == nullptr ? "" : value);
    }
    return MHD_YES;
  }

  static MHD_Result collect_arg(void* cls, MHD_ValueKind, const char* key, const char* value) {
    auto* req = static_cast<HttpRequest*>(cls);
    if (req->args.size() < 32 && key != nullptr) {
      req->args.emplace_back(key, value == nullptr ? "" : value);
    }
    return MHD_YES;
  }

  MHD_Result queue(MHD_Connection* c, HttpResponse r) {
    if (inflight.load() + r.body.size() > options.max_inflight_bytes) {
      ++busy;
      r = HttpResponse::text(503, "busy: too many bytes in flight; try again shortly");
      r.headers.emplace_back("Retry-After", "2");
    }
    auto* body = new Body{std::move(r.body), this};
    inflight += body->bytes.size();
    MHD_Response* resp = MHD_create_response_from_buffer_with_free_callback_cls(
        body->bytes.size(), body->bytes.data(), &Impl::free_body, body);
    if (resp == nullptr) {
      free_body(body);
      return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type.c_str());
    for (const auto& [k, v] : r.headers) MHD_add_response_header(resp, k.c_str(), v.c_str());
    ++requests;
    bytes_sent += body->bytes.size();
    MHD_Result ret = MHD_queue_response(c, static_cast<unsigned>(r.status), resp);
    MHD_destroy_response(resp);
    return ret;
  }

  static MHD_Result on_request(void* cls, MHD_Connection* c, const char* url, const char* method,
                               const char*, const char*, size_t* upload_size, void** req_cls) {
    static int marker;
    auto* self = static_cast<Impl*>(cls);
    if (*req_cls == nullptr) {  // first call: headers only (answering now would close)
      *req_cls = &marker;
      return MHD_YES;
    }
    if (*upload_size != 0) {  // a body nobody asked for: discard it
      *upload_size = 0;
      return MHD_YES;
    }
    const std::string m = method == nullptr ? "" : method;
    if (m != "GET" && m != "HEAD") {
      ++self->refused;
      HttpResponse r = HttpResponse::text(405, "only GET and HEAD are served");
      r.headers.emplace_back("Allow", "GET, HEAD");
      return self->queue(c, std::move(r));
    }
    HttpRequest req;
    req.method = m;
    req.path = url == nullptr ? "" : url;
    auto [code, why] = check_path(req.path);
    if (code != 0) {
      ++self->refused;
      return self->queue(c, HttpResponse::text(code, why));
    }
    MHD_get_connection_values(c, MHD_HEADER_KIND, &Impl::collect_header, &req);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, &Impl::collect_arg, &req);
    if (const MHD_ConnectionInfo* info =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        info != nullptr && info->client_addr != nullptr) {
      char buf[INET6_ADDRSTRLEN] = {};
      const sockaddr* sa = info->client_addr;
      if (sa->sa_family == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
      } else if (sa->sa_family == AF_INET6) {
        ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf,
                    sizeof buf);
      }
      req.remote = buf;
    }
    const HttpHandler* handler = nullptr;
    std::size_t best = 0;
    for (const auto& [prefix, h] : self->routes) {
      if (req.path.compare(0, prefix.size(), prefix) == 0 && prefix.size() >= best) {
        best = prefix.size();
        handler = &h;
      }
    }
    if (handler == nullptr) return self->queue(c, HttpResponse::text(404, "not found"));
    HttpResponse r;
    try {
      r = (*handler)(req);
    } catch (const std::exception& e) {
      r = HttpResponse::text(500, std::string("internal error: ") + e.what());
    }
    return self->queue(c, std::move(r));
  }
};

HttpServer::HttpServer(HttpServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::route(std::string prefix, HttpHandler handler) {
  impl_->routes[std::move(prefix)] = std::move(handler);
}

Status HttpServer::start() {
  const HttpServerOptions& o = impl_->options;
  std::vector<DaemonPtr> daemons;
  std::vector<int> ports;
  for (const auto& address : o.listen) {
    int port = 0;
    OUTPOST_ASSIGN_OR_RETURN(UniqueFd fd, listen_on(address, &port));
    unsigned threads = std::max(1u, o.threads);
    // The connection limit is split across the pool's threads by libmicrohttpd.
    unsigned max_conn = std::max(o.max_connections, threads);
    MHD_Daemon* d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC, 0, nullptr, nullptr,
        &Impl::on_request, impl_.get(), MHD_OPTION_LISTEN_SOCKET, fd.get(),
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT, max_conn,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, o.per_ip_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        o.connection_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(16 * 1024),
        MHD_OPTION_NOTIFY_CONNECTION, &Impl::on_connection, impl_.get(),
        MHD_OPTION_UNESCAPE_CALLBACK, &unescape, nullptr, MHD_OPTION_END);
    if (d == nullptr) {
      return Status::Unavailable("cannot start the HTTP server on " + address +
                                 ": libmicrohttpd refused (too many threads or connections?): "
                                 "lower http.threads or http.max_connections");
    }
    (void)fd.release();  // the daemon owns and closes it
    daemons.emplace_back(d);
    ports.push_back(port);
  }
  impl_->daemons = std::move(daemons);
  impl_->ports = std::move(ports);
  return Status::Ok();
}

void HttpServer::stop() {
  if (!impl_) return;
  impl_->daemons.clear();
}

std::vector<int> HttpServer::ports() const { return impl_->ports; }

HttpServerStats HttpServer::stats() const {
  HttpServerStats s;
  s.requests = impl_->requests;
  s.bytes_sent = impl_->bytes_sent;
  s.refused = impl_->refused;
  s.busy = impl_->busy;
  s.connections = impl_->connections;
  s.connections_total = impl_->connections_total;
  return s;
}

// ---- Range ----

namespace {

bool parse_u64(std::string_view s, std::uint64_t* v) {
  if (s.empty() || s.size() > 19) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

RangeOutcome parse_range(std::string_view header, std::uint64_t total, bool unknown_total,
                         std::vector<RangeSpec>* out) {
  out->clear();
  // Every outcome but kRanges leaves `out` empty.
  const auto none = [out](RangeOutcome o) {
    out->clear();
    return o;
  };
  header = trim(header);
  if (header.empty()) return RangeOutcome::kNone;
  if (header.size() < 6 || lower(std::string(header.substr(0, 6))) != "bytes=") {
    return RangeOutcome::kNone;
  }
  header.remove_prefix(6);
  std::size_t count = 0;
  // The most the ranges may add up to; the sum is kept without overflowing (a wrapped sum let
  // "bytes=0-9999999999999999999,0-8446744073709551715" through as 100 bytes).
  const std::uint64_t cap = unknown_total            ? (64ull << 20)
                            : total > UINT64_MAX / 2 ? UINT64_MAX
                                                     : std::max<std::uint64_t>(total * 2, 1);
  std::uint64_t sum = 0;
  bool over = false;
  bool any = false;
  while (!header.empty()) {
    std::size_t comma = header.find(',');
    std::string_view part = trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    if (part.empty()) continue;
    if (++count > kMaxRanges) return none(RangeOutcome::kUnsatisfiable);
    std::size_t dash = part.find('-');
    if (dash == std::string_view::npos) return none(RangeOutcome::kNone);  // malformed: ignore
    std::string_view a = trim(part.substr(0, dash)), b = trim(part.substr(dash + 1));
    std::uint64_t first = 0, last = 0;
    if (a.empty()) {  // suffix: the last b bytes
      std::uint64_t n = 0;
      if (!parse_u64(b, &n)) return none(RangeOutcome::kNone);
      if (unknown_total || n == 0 || total == 0) continue;
      first = n >= total ? 0 : total - n;
      last = total - 1;
    } else {
      if (!parse_u64(a, &first)) return none(RangeOutcome::kNone);
      if (b.empty()) {
        if (unknown_total || first >= total) continue;
        last = total - 1;
      } else {
        if (!parse_u64(b, &last) || last < first) return none(RangeOutcome::kNone);
        if (!unknown_total) {
          if (first >= total) continue;
          last = std::min(last, total - 1);
        }
      }
    }
    any = true;
    const std::uint64_t length = last - first + 1;  // last < UINT64_MAX: no wrap
    if (length > cap - sum) {
      over = true;
    } else {
      sum += length;
    }
    out->push_back({first, last});
  }
  if (!any) return count == 0 ? RangeOutcome::kNone : RangeOutcome::kUnsatisfiable;
  if (over) return none(RangeOutcome::kUnsatisfiable);
  return RangeOutcome::kRanges;
}

HttpResponse serve_bytes(
    const HttpRequest& request, std::uint64_t total, bool unknown_total,
    const std::string& content_type, const std::string& etag,
    const std::function<Result<std::string>(std::uint64_t, std::uint64_t)>& read) {
  const std::string total_text = unknown_total ? "*" : std::to_string(total);
  HttpResponse r;
  r.content_type = content_type;
  r.headers.emplace_back("Accept-Ranges", "bytes");
  if (!etag.empty()) r.headers.emplace_back("ETag", etag);
  auto failed = [](const Status& s) {
    return HttpResponse::text(s.IsNotFound() ? 404 : 500, s.message());
  };
  if (!etag.empty() && request.header("if-none-match") == etag) {
    r.status = 304;
    return r;
  }
  std::vector<RangeSpec> ranges;
  RangeOutcome outcome = parse_range(request.header("range"), total, unknown_total, &ranges);
  // If-Range with another validator: the client's copy is stale, send the whole.
  if (outcome == RangeOutcome::kRanges && !request.header("if-range").empty() &&
      request.header("if-range") != etag && !unknown_total) {
    outcome = RangeOutcome::kNone;
  }
  if (outcome == RangeOutcome::kNone && unknown_total) outcome = RangeOutcome::kUnsatisfiable;
  if (outcome == RangeOutcome::kUnsatisfiable) {
    HttpResponse u = HttpResponse::text(416, "range not satisfiable");
    u.headers.emplace_back("Content-Range", "bytes */" + total_text);
    return u;
  }
  if (outcome == RangeOutcome::kNone) {
    auto body = read(0, total);
    if (!body.ok()) return failed(body.error());
    r.body = std::move(*body);
    return r;
  }
  r.status = 206;
  if (ranges.size() == 1) {
    auto body = read(ranges[0].first, ranges[0].last - ranges[0].first + 1);
    if (!body.ok()) return failed(body.error());
    r.body = std::move(*body);
    r.headers.emplace_back("Content-Range", "bytes " + std::to_string(ranges[0].first) + "-" +
                                                std::to_string(ranges[0].last) + "/" + total_text);
    return r;
  }
  static std::atomic<std::uint64_t> counter{0};
  const std::string boundary = "outpost" + std::to_string(++counter) + "x" +
                               std::to_string(reinterpret_cast<std::uintptr_t>(&r) % 100000);
  for (const RangeSpec& s : ranges) {
    auto part = read(s.first, s.last - s.first + 1);
    if (!part.ok()) return failed(part.error());
    r.body += "\r\n--" + boundary + "\r\nContent-Type: " + content_type +
              "\r\nContent-Range: bytes " + std::to_string(s.first) + "-" + std::to_string(s.last) +
              "/" + total_text + "\r\n\r\n";
    r.body += *part;
  }
  r.body += "\r\n--" + boundary + "--\r\n";
  r.content_type = "multipart/byteranges; boundary=" + boundary;
  return r;
}

}  // namespace outpost::serve
