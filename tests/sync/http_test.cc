// The HTTP source against a real nginx on 127.0.0.1 and against a tiny scripted server that
// misbehaves in one way per test (range bugs, drops, drips, captive portals, 5xx). Real
// libcurl transfers over real sockets.
#include "outpost/sync/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "outpost/base/retry.h"
#include "outpost/base/unique_fd.h"
#include "outpost/sync/source.h"
#include "support/test_support.h"

namespace outpost::sync {
namespace {

using test::TempDir;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int free_port() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  REQUIRE(fd.valid());
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  return ntohs(addr.sin_port);
}

bool port_open(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

std::string str(const Bytes& b) { return std::string(b.begin(), b.end()); }

// Fast retries for tests; the real defaults are for 600 ms RTT links.
HttpOptions fast_options() {
  HttpOptions o;
  o.connect_timeout_s = 5;
  o.stall_timeout_s = 2;
  o.retries = 3;
  o.backoff_initial_s = 0.01;
  o.backoff_max_s = 0.05;
  return o;
}

std::unique_ptr<HttpSource> open_http(const std::string& url, HttpOptions o = fast_options()) {
  auto src = HttpSource::open(url, std::move(o));
  REQUIRE(src.ok());
  return std::move(src).value();
}

// ---- A real nginx (single process, no daemon) serving a directory on a free port. ----
class Nginx {
 public:
  struct Tls {
    std::string cert;
    std::string key;
  };
  explicit Nginx(const std::string& root, std::optional<Tls> tls = std::nullopt)
      : port_(free_port()), tls_(tls.has_value()) {
    const std::string p = dir_.path();
    std::string conf = "daemon off;\nmaster_process off;\nworker_processes 1;\n";
    if (::geteuid() == 0) conf += "user root;\n";
    conf += "pid " + p + "/nginx.pid;\nerror_log " + p + "/error.log;\n";
    conf += "events { worker_connections 64; }\nhttp {\n";
    conf += "  log_format conn '$connection $status $request';\n";
    conf += "  access_log " + p + "/access.log conn;\n";
    for (const char* t : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
      conf += std::string("  ") + t + "_temp_path " + p + "/" + t + ";\n";
    }
    conf += "  types { application/json json; text/html html; }\n";
    conf += "  default_type application/octet-stream;\n";
    conf +=
        "  server {\n    listen 127.0.0.1:" + std::to_string(port_) + (tls ? " ssl" : "") + ";\n";
    if (tls)
      conf += "    ssl_certificate " + tls->cert + ";\n    ssl_certificate_key " + tls->key + ";\n";
    conf += "    root " + root + ";\n    max_ranges 100;\n  }\n}\n";
    test::write_text(p + "/nginx.conf", conf);
    child_ = std::make_unique<test::Child>(std::vector<std::string>{
        "/usr/sbin/nginx", "-p", p, "-c", p + "/nginx.conf", "-e", p + "/error.log"});
    auto start = Clock::now();
    while (!port_open(port_) && seconds_since(start) < 10) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    REQUIRE(port_open(port_));
  }
  std::string url() const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
  }
  std::string access_log() const { return test::read_text(dir_ / "access.log"); }

 private:
  TempDir dir_;
  int port_;
  bool tls_;
  std::unique_ptr<test::Child> child_;
};

// ---- A scripted HTTP/1.1 server: one thread, one connection at a time. ----
struct Req {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // lowercase names
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class Conn {
 public:
  explicit Conn(int fd, const std::atomic<bool>* stop) : fd_(fd), stop_(stop) {}
  bool send(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  void close() { closed_ = true; }
  bool closed() const { return closed_; }
  // Sleeps in small steps; false when the server is stopping.
  bool nap(int ms) {
    for (int i = 0; i < ms / 10; ++i) {
      if (stop_->load()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return !stop_->load();
  }

 private:
  int fd_;
  const std::atomic<bool>* stop_;
  bool closed_ = false;
};

class ScriptedServer {
 public:
  // The handler gets each request and its number (0-based, across connections).
  using Handler = std::function<void(const Req&, int n, Conn&)>;
  explicit ScriptedServer(Handler handler) : handler_(std::move(handler)) {
    listen_ = UniqueFd(::socket(AF_INET, SOCK_STREAM, 0));
    int one = 1;
    ::setsockopt(listen_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    REQUIRE(::listen(listen_.get(), 8) == 0);
    thread_ = std::thread([this] { run(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Req> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  bool wait_readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    while (!stop_) {
      int r = ::poll(&p, 1, 20);
      if (r > 0) return true;
      if (r < 0) return false;
    }
    return false;
  }
  void run() {
    while (wait_readable(listen_.get())) {
      UniqueFd c(::accept(listen_.get(), nullptr, nullptr));
      if (!c.valid()) continue;
      serve(c.get());
    }
  }
  void serve(int fd) {
    std::string buf;
    Conn conn(fd, &stop_);
    while (!conn.closed()) {
      std::size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!wait_readable(fd)) return;
        char tmp[4096];
        ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0) return;
        buf.append(tmp, static_cast<std::size_t>(n));
      }
      std::string head = buf.substr(0, end);
      buf.erase(0, end + 4);
      Req req;
      std::size_t eol = head.find("\r\n");
      std::string line = head.substr(0, eol);
      std::size_t sp1 = line.find(' ');
      std::size_t sp2 = line.find(' ', sp1 + 1);
      req.method = line.substr(0, sp1);
      req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      while (eol != std::string::npos) {
        std::size_t next = head.find("\r\n", eol + 2);
        std::string h =
            head.substr(eol + 2, next == std::string::npos ? std::string::npos : next - eol - 2);
        eol = next;
        std::size_t colon = h.find(':');
        if (colon == std::string::npos) continue;
        std::string name = h.substr(0, colon);
        for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::size_t v = h.find_first_not_of(' ', colon + 1);
        req.headers[name] = v == std::string::npos ? "" : h.substr(v);
      }
      int n;
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(req);
        n = static_cast<int>(requests_.size()) - 1;
      }
      handler_(req, n, conn);
    }
  }

  Handler handler_;
  UniqueFd listen_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<Req> requests_;
  std::thread thread_;
};

std::string response(int status, const std::string& reason, const std::vector<std::string>& headers,
                     const std::string& body, bool content_length = true) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
  for (const std::string& h : headers) r += h + "\r\n";
  if (content_length) r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + body;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> parse_range_header(const std::string& v,
                                                                        std::uint64_t size) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;  // [first, last]
  if (v.rfind("bytes=", 0) != 0) return out;
  std::string rest = v.substr(6);
  while (!rest.empty()) {
    std::size_t comma = rest.find(',');
    std::string one = rest.substr(0, comma);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    std::size_t dash = one.find('-');
    std::uint64_t a = std::stoull(one.substr(0, dash));
    std::uint64_t b = dash + 1 < one.size() ? std::stoull(one.substr(dash + 1)) : size - 1;
    out.emplace_back(a, std::min(b, size - 1));
  }
  return out;
}

// How a scripted mirror gets ranges wrong.
enum class RangeFault {
  kNone,
  kIgnoreRange,        // always 200 with the whole file
  kWrongPartRange,     // multipart: the second part is for other bytes than asked
  kShortPart,          // multipart: a part one byte shorter than its Content-Range
  kNoClosingBoundary,  // multipart: the body ends without the closing boundary
  kSingleWrongRange,   // any range request: 206 for bytes shifted by one
  kMultiAsCovering,    // multi-range answered by one 206 covering first..last (legal)
};

// Serves `file` honouring Range (and If-Range against `etag`), except for `fault`.
void serve_file(const Req& req, Conn& conn, const std::string& file, const std::string& etag,
                RangeFault fault) {
  const std::vector<std::string> base = {"Content-Type: application/octet-stream", "ETag: " + etag};
  std::string range = req.header("range");
  std::string if_range = req.header("if-range");
  if (range.empty() || fault == RangeFault::kIgnoreRange ||
      (!if_range.empty() && if_range != etag)) {
    conn.send(response(200, "OK", base, file));
    return;
  }
  auto rs = parse_range_header(range, file.size());
  const std::string total = "/" + std::to_string(file.size());
  auto cr = [&](std::uint64_t a, std::uint64_t b) {
    return "bytes " + std::to_string(a) + "-" + std::to_string(b) + total;
  };
  if (fault == RangeFault::kSingleWrongRange) {
    auto [a, b] = rs.front();
    conn.send(response(206, "Partial Content", {"Content-Range: " + cr(a + 1, b + 1)},
                       file.substr(a + 1, b - a + 1)));
    return;
  }
  if (rs.size() == 1 || fault == RangeFault::kMultiAsCovering) {
    std::uint64_t a = rs.front().first;
    std::uint64_t b = rs.back().second;
    conn.send(response(206, "Partial Content", {"ETag: " + etag, "Content-Range: " + cr(a, b)},
                       file.substr(a, b - a + 1)));
    return;
  }
  const std::string boundary = "THIS_IS_A_BOUNDARY";
  std::string body;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    auto [a, b] = rs[i];
    if (fault == RangeFault::kWrongPartRange && i == 1) {
      a += 7;
      b += 7;
    }
    std::string data = file.substr(a, b - a + 1);
    if (fault == RangeFault::kShortPart && i == 1) data.pop_back();
    body += "\r\n--" + boundary + "\r\nContent-Type: application/octet-stream\r\n" +
            "Content-Range: " + cr(a, b) + "\r\n\r\n" + data;
  }
  if (fault != RangeFault::kNoClosingBoundary) body += "\r\n--" + boundary + "--\r\n";
  conn.send(response(206, "Partial Content",
                     {"Content-Type: multipart/byteranges; boundary=" + boundary}, body));
}

std::string pattern_file(std::size_t n, std::uint64_t seed) {
  Bytes b = test::random_bytes(n, seed);
  return std::string(b.begin(), b.end());
}

// Scattered ranges, some close together (coalesced), given out of order.
std::vector<ByteRange> scattered_ranges(std::size_t count, std::uint64_t file_size) {
  std::vector<ByteRange> rs;
  for (std::size_t i = 0; i < count; ++i) {
    std::uint64_t off = (i * 7919 * 131) % (file_size - 300);
    rs.push_back({off, 100 + (i % 5) * 37});
  }
  return rs;
}

void check_ranges(const std::vector<Bytes>& got, const std::vector<ByteRange>& asked,
                  const std::string& file) {
  REQUIRE(got.size() == asked.size());
  for (std::size_t i = 0; i < asked.size(); ++i) {
    INFO("range " << i << " at " << asked[i].offset);
    CHECK(str(got[i]) == file.substr(asked[i].offset, asked[i].length));
  }
}

// A repository-like folder for nginx.
struct NginxRepo {
  TempDir root;
  std::string pack = pattern_file(1 << 20, 7);
  NginxRepo() {
    test::make_dirs(root / "metadata");
    test::make_dirs(root / "packs");
    test::write_text(root / "metadata/timestamp.json", "{\"signed\":{\"version\":1}}");
    test::write_text(root / "packs/p1.pack", pack);
  }
};

// ============================ against nginx ============================

TEST_CASE("http: read_file from nginx over one kept-alive connection", "[http]") {
  NginxRepo repo;
  Nginx nginx(repo.root.path());
  auto src = open_http(nginx.url() + "/");
  CHECK(src->origin() == nginx.url());
  CHECK(src->describe() == "mirror at " + nginx.url());
  for (int i = 0; i < 3; ++i) {
    auto ts = src->read_file("metadata/timestamp.json", 1000);
    REQUIRE(ts.ok());
    CHECK(str(*ts) == "{\"signed\":{\"version\":1}}");
  }
  auto pack = src->read_file("packs/p1.pack", repo.pack.size());
  REQUIRE(pack.ok());
  CHECK(str(*pack) == repo.pack);
  CHECK(src->stats().requests == 4);
  CHECK(src->stats().body_bytes == 3 * 24 + repo.pack.size());
  CHECK(src->stats().wire_bytes_in > src->stats().body_bytes);  // headers count too
  CHECK(src->stats().wire_bytes_out > 0);
  // The access log names the connection serial of each request: all four used one.
  std::string log = nginx.access_log();
  std::string first_conn = log.substr(0, log.find(' '));
  std::size_t lines = 0;
  for (std::size_t at = 0; at < log.size(); at = log.find('\n', at) + 1) {
    CHECK(log.substr(at, log.find(' ', at) - at) == first_conn);
    ++lines;
  }
  CHECK(lines == 4);
}

TEST_CASE("http: nginx 404 is kNotFound, not retried", "[http]") {
  NginxRepo repo;
  Nginx nginx(repo.root.path());
  auto src = open_http(nginx.url());
  auto r = src->read_file("metadata/missing.json", 1000);
  REQUIRE(!r.ok());
  CHECK(r.error().code() == Code::kNotFound);
  CHECK(r.error().message() == nginx.url() + "/metadata/missing.json: not found (404)");
  CHECK(src->stats().requests == 1);
}

TEST_CASE("http: a file longer than max_length is refused before its body is read", "[http]") {
  NginxRepo repo;
  Nginx nginx(repo.root.path());
  auto src = open_http(nginx.url());
  auto r = src->read_file("packs/p1.pack", 1000);
  REQUIRE(!r.ok());
  CHECK(r.error().code() == Code::kCorruption);
  CHECK_THAT(r.error().message(), Catch::Contains("body longer than declared"));
  CHECK(src->stats().body_bytes == 0);
  CHECK(src->stats().requests == 1);
}

TEST_CASE("http: a no-change check is one conditional request under 1 KB", "[http]") {
  NginxRepo repo;
  Nginx nginx(repo.root.path());
  auto src = open_http(nginx.url());
  auto first = src->read_file_if_changed("metadata/timestamp.json", 1000);
  REQUIRE(first.ok());
  REQUIRE(first->has_value());
  const std::string etag = src->validator("metadata/timestamp.json");
  CHECK(!etag.empty());

  // A new source, as on the next run: the node restores the validator it saved.
  auto next = open_http(nginx.url());
  next->set_validator("metadata/timestamp.json", etag);
  auto same = next->read_file_if_changed("metadata/timestamp.json", 1000);
  REQUIRE(same.ok());
  CHECK(!same->has_value());
  const HttpStats s = next->stats();
  CHECK(s.requests == 1);
  CHECK(s.body_bytes == 0);
  std::printf("http: no-change check against nginx: %llu bytes out + %llu bytes in = %llu\n",
              static_cast<unsigned long long>(s.wire_bytes_out),
              static_cast<unsigned long long>(s.wire_bytes_in),
              static_cast<unsigned long long>(s.wire_bytes_out + s.wire_bytes_in));
  CHECK(s.wire_bytes_out + s.wire_bytes_in < 1024);

  // Changed: the new body and a new validator.
  test::write_text(repo.root / "metadata/timestamp.json", "{\"signed\":{\"version\":22}}");
  auto changed = next->read_file_if_changed("metadata/timestamp.json", 1000);
  REQUIRE(changed.ok());
  REQUIRE(changed->has_value());
  CHECK(str(**changed) == "{\"signed\":{\"version\":22}}");
  CHECK(next->validator("metadata/timestamp.json") != etag);
}

TEST_CASE("http: 50 scattered ranges come from nginx in one multi-range request", "[http]") {
  NginxRepo repo;
  Nginx nginx(repo.root.path());
  auto src = open_http(nginx.url());
  std::vector<ByteRange> asked = scattered_ranges(50, repo.pack.size());
  auto got = src->read_ranges("packs/p1.pack", asked);
  REQUIRE(got.ok());
  check_ranges(*got, asked, repo.pack);
  CHECK(src->stats().requests == 1);
  CHECK(!src->limits_changed());
  // Coalesced neighbours (gap under 1 KB) and an empty range, in the order asked.
  std::vector<ByteRange> near = {{5000, 10}, {1000, 10}, {1500, 20}, {0, 0}, {1200, 5}};
  auto got2 = src->read_ranges("packs/p1.pack", near);
  REQUIRE(got2.ok());
  check_ranges(*got2, near, repo.pack);
  CHECK(src->stats().requests == 2);
  // Asked past the end of the file: nginx answers 416.
  auto past = src->read_ranges("packs/p1.pack", {{repo.pack.size() + 10, 5}});
  REQUIRE(!past.ok());
  CHECK(past.error().code() == Code::kCorruption);
}

TEST_CASE("http: read_tail resumes from an offset with If-Range, restarts on a new file",
          "[http]") {
  NginxRepo repo;
  Nginx nginx(repo.root.path());
  auto src = open_http(nginx.url());
  auto head = src->read_ranges("packs/p1.pack", {{0, 1}});  // learn nothing; just a request
  REQUIRE(head.ok());

  std::string got;
  bool restarted = true;
  Status st = src->read_tail(
      "packs/p1.pack", 300000, repo.pack.size(),
      [&](ByteView piece) {
        got.append(as_chars(piece));
        return Status::Ok();
      },
      &restarted);
  REQUIRE(st.ok());
  CHECK(!restarted);
  CHECK(got == repo.pack.substr(300000));
  const std::string etag = src->validator("packs/p1.pack");
  CHECK(!etag.empty());

  // Same validator, same file: a range answer again.
  got.clear();
  REQUIRE(src->read_tail(
                 "packs/p1.pack", 1000000, repo.pack.size(),
                 [&](ByteView piece) {
                   got.append(as_chars(piece));
                   return Status::Ok();
                 },
                 &restarted)
              .ok());
  CHECK(!restarted);
  CHECK(got == repo.pack.substr(1000000));

  // The file changed under the same name: If-Range fails, nginx sends it all from byte 0.
  std::string newer = pattern_file(repo.pack.size(), 99);
  test::write_text(repo.root / "packs/p1.pack", newer);
  src->set_validator("packs/p1.pack", "\"stale-etag\"");
  got.clear();
  bool seen_in_piece = false;
  REQUIRE(src->read_tail(
                 "packs/p1.pack", 500000, newer.size(),
                 [&](ByteView piece) {
                   if (got.empty()) seen_in_piece = restarted;
                   got.append(as_chars(piece));
                   return Status::Ok();
                 },
                 &restarted)
              .ok());
  CHECK(restarted);
  CHECK(seen_in_piece);
  CHECK(got == newer);

  // Nothing left to read: no request.
  auto before = src->stats().requests;
  REQUIRE(src->read_tail("packs/p1.pack", newer.size(), newer.size(),
                         [](ByteView) { return Status::Ok(); })
              .ok());
  CHECK(src->stats().requests == before);
}

TEST_CASE("http: https with a self-signed certificate needs --ca-file", "[http]") {
  NginxRepo repo;
  TempDir certs;
  test::RunResult r = test::run_program(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
       "subjectAltName=IP:127.0.0.1", "-keyout", certs / "key.pem", "-out", certs / "cert.pem"});
  REQUIRE(r.exit_code == 0);
  Nginx nginx(repo.root.path(), Nginx::Tls{certs / "cert.pem", certs / "key.pem"});

  auto untrusted = open_http(nginx.url());
  auto bad = untrusted->read_file("metadata/timestamp.json", 1000);
  REQUIRE(!bad.ok());
  // An operator must act (a CA file or a fixed certificate): retrying changes nothing.
  CHECK(bad.error().code() == Code::kFailedPrecondition);
  CHECK(retry_class(bad.error()) == RetryClass::kOperator);
  CHECK_THAT(bad.error().message(), Catch::Contains("TLS certificate is not trusted"));
  CHECK_THAT(bad.error().message(), Catch::Contains("CA certificate"));
  CHECK(untrusted->stats().requests == 1);  // not retried

  HttpOptions o = fast_options();
  o.ca_file = certs / "cert.pem";
  auto trusted = open_http(nginx.url(), o);
  auto ok = trusted->read_file("metadata/timestamp.json", 1000);
  REQUIRE(ok.ok());
  CHECK(str(*ok) == "{\"signed\":{\"version\":1}}");
  CHECK(trusted->origin() == nginx.url());
}

TEST_CASE("http: open_source returns an HTTP source for http(s) URLs", "[http]") {
  NginxRepo repo;
  Nginx nginx(repo.root.path());
  auto src = open_source(nginx.url());
  REQUIRE(src.ok());
  CHECK((*src)->describe() == "mirror at " + nginx.url());
  auto ts = (*src)->fetch("timestamp.json", 1000);
  REQUIRE(ts.ok());
  CHECK(str(*ts) == "{\"signed\":{\"version\":1}}");
  CHECK(!HttpSource::open("ftp://example.org/repo", {}).ok());
  // Regression (a user typed ftp://): the scheme is named, not "no repository at".
  for (const char* url : {"ftp://example.org/repo", "garbage://x"}) {
    auto other = open_source(url);
    REQUIRE(!other.ok());
    CHECK(other.error().code() == Code::kInvalidArgument);
    CHECK_THAT(other.error().message(), Catch::Contains("is not supported"));
  }
  CHECK(!HttpSource::open("http:///repo", {}).ok());
  CHECK(!HttpSource::open("http://example.org:99999999/", {}).ok());
}

// ============================ scripted faults ============================

// Sets an environment variable for the scope of a test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

TEST_CASE("http: a server ignoring Range gives the right bytes and is remembered", "[http]") {
  const std::string file = pattern_file(200000, 3);
  ScriptedServer server([&](const Req& req, int, Conn& c) {
    serve_file(req, c, file, "\"e1\"", RangeFault::kIgnoreRange);
  });
  auto src = open_http(server.url());
  std::vector<ByteRange> asked = {{150000, 100}, {10, 20}, {90000, 5000}};
  auto got = src->read_ranges("packs/a.pack", asked);
  REQUIRE(got.ok());
  check_ranges(*got, asked, file);
  CHECK(src->stats().requests == 1);
  CHECK(!src->limits().ranges);
  CHECK(src->limits_changed());
  // The whole-file answer is cut off once every range is in.
  CHECK(src->stats().body_bytes < file.size());
  // Known now: no Range header is sent any more.
  auto again = src->read_ranges("packs/a.pack", {{5, 5}});
  REQUIRE(again.ok());
  CHECK(str((*again)[0]) == file.substr(5, 5));
  CHECK(server.requests().back().header("range").empty());
  ServerLimits saved = ServerLimits::from_json(src->limits().to_json());
  CHECK(!saved.ranges);
  CHECK(saved.multirange);
  CHECK(saved.max_ranges == 64);
}

TEST_CASE("http: a multipart part for bytes not asked is never returned", "[http]") {
  const std::string file = pattern_file(100000, 4);
  ScriptedServer server([&](const Req& req, int, Conn& c) {
    serve_file(req, c, file, "\"e1\"", RangeFault::kWrongPartRange);
  });
  auto src = open_http(server.url());
  std::vector<ByteRange> asked = {{80000, 300}, {100, 50}, {40000, 1000}};
  auto got = src->read_ranges("packs/a.pack", asked);
  REQUIRE(got.ok());
  check_ranges(*got, asked, file);
  CHECK(!src->limits().multirange);
  CHECK(src->limits().ranges);
  CHECK(src->limits_changed());
  CHECK(src->stats().requests == 1 + 3);  // the wrong answer, then one request per range
}

TEST_CASE("http: broken multipart answers fall back to single ranges", "[http]") {
  const std::string file = pattern_file(100000, 5);
  RangeFault fault = GENERATE(RangeFault::kShortPart, RangeFault::kNoClosingBoundary);
  ScriptedServer server(
      [&](const Req& req, int, Conn& c) { serve_file(req, c, file, "\"e\"", fault); });
  auto src = open_http(server.url());
  std::vector<ByteRange> asked = {{100, 50}, {40000, 1000}, {80000, 300}};
  auto got = src->read_ranges("packs/a.pack", asked);
  REQUIRE(got.ok());
  check_ranges(*got, asked, file);
  CHECK(!src->limits().multirange);
  CHECK(src->limits_changed());
  CHECK(src->stats().requests == 4);
}

TEST_CASE("http: a wrong Content-Range on a single range falls back to the whole file", "[http]") {
  const std::string file = pattern_file(50000, 6);
  ScriptedServer server([&](const Req& req, int, Conn& c) {
    serve_file(req, c, file, "\"e\"", RangeFault::kSingleWrongRange);
  });
  auto src = open_http(server.url());
  auto got = src->read_ranges("packs/a.pack", {{1000, 100}});
  REQUIRE(got.ok());
  CHECK(str((*got)[0]) == file.substr(1000, 100));
  CHECK(!src->limits().ranges);
  CHECK(src->stats().requests == 2);
}

TEST_CASE("http: one covering range for a multi-range request is accepted", "[http]") {
  const std::string file = pattern_file(50000, 8);
  ScriptedServer server([&](const Req& req, int, Conn& c) {
    serve_file(req, c, file, "\"e\"", RangeFault::kMultiAsCovering);
  });
  auto src = open_http(server.url());
  std::vector<ByteRange> asked = {{30000, 10}, {2000, 10}, {9000, 100}};
  auto got = src->read_ranges("packs/a.pack", asked);
  REQUIRE(got.ok());
  check_ranges(*got, asked, file);
  CHECK(src->stats().requests == 1);
  CHECK(!src->limits_changed());
  CHECK(server.requests()[0].header("range") == "bytes=2000-2009,9000-9099,30000-30009");
}

TEST_CASE("http: max_ranges splits a multi-range read into several requests", "[http]") {
  const std::string file = pattern_file(100000, 9);
  ScriptedServer server(
      [&](const Req& req, int, Conn& c) { serve_file(req, c, file, "\"e\"", RangeFault::kNone); });
  auto src = open_http(server.url());
  ServerLimits l;
  l.max_ranges = 4;
  src->set_limits(l);
  std::vector<ByteRange> asked;
  for (std::uint64_t i = 0; i < 10; ++i) asked.push_back({i * 9000, 10});
  auto got = src->read_ranges("packs/a.pack", asked);
  REQUIRE(got.ok());
  check_ranges(*got, asked, file);
  CHECK(src->stats().requests == 3);  // 4 + 4 + 2
  CHECK(!src->limits_changed());
}

TEST_CASE("http: a body cut mid-transfer resumes with Range and If-Range", "[http]") {
  const std::string file = pattern_file(60000, 10);
  ScriptedServer server([&](const Req& req, int n, Conn& c) {
    if (n == 0) {
      std::string r = response(200, "OK", {"ETag: \"v1\""}, file);
      c.send(r.substr(0, r.size() - file.size() / 2));
      c.close();
      return;
    }
    serve_file(req, c, file, "\"v1\"", RangeFault::kNone);
  });
  auto src = open_http(server.url());
  auto got = src->read_file("packs/a.pack", file.size());
  REQUIRE(got.ok());
  CHECK(str(*got) == file);
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[1].header("range") == "bytes=" + std::to_string(file.size() - file.size() / 2) + "-");
  CHECK(reqs[1].header("if-range") == "\"v1\"");
  CHECK(src->stats().requests == 2);

  // read_tail: the caller sees every byte once, in order, across the drop.
  ScriptedServer tail_server([&](const Req& req, int n, Conn& c) {
    if (n == 0) {
      std::string r =
          response(206, "Partial Content",
                   {"ETag: \"v1\"", "Content-Range: bytes 1000-59999/60000"}, file.substr(1000));
      c.send(r.substr(0, r.size() - 30000));
      c.close();
      return;
    }
    serve_file(req, c, file, "\"v1\"", RangeFault::kNone);
  });
  auto tail = open_http(tail_server.url());
  std::string pieces;
  bool restarted = true;
  REQUIRE(tail->read_tail(
                  "packs/a.pack", 1000, file.size(),
                  [&](ByteView p) {
                    pieces.append(as_chars(p));
                    return Status::Ok();
                  },
                  &restarted)
              .ok());
  CHECK(!restarted);
  CHECK(pieces == file.substr(1000));
  CHECK(tail_server.requests().size() == 2);
  CHECK(tail_server.requests()[1].header("range") == "bytes=30000-");
}

TEST_CASE("http: a multi-range answer cut mid-part keeps what arrived and asks for the rest",
          "[http]") {
  const std::string file = pattern_file(100000, 13);
  ScriptedServer server([&](const Req& req, int n, Conn& c) {
    if (n == 0) {
      std::string b =
          "\r\n--B\r\nContent-Range: bytes 100-149/100000\r\n\r\n" + file.substr(100, 50) +
          "\r\n--B\r\nContent-Range: bytes 40000-40999/100000\r\n\r\n" + file.substr(40000, 500);
      c.send(
          "HTTP/1.1 206 Partial Content\r\nContent-Type: multipart/byteranges; "
          "boundary=B\r\nContent-Length: " +
          std::to_string(b.size() + 1000) + "\r\n\r\n" + b);
      c.close();
      return;
    }
    serve_file(req, c, file, "\"e\"", RangeFault::kNone);
  });
  auto src = open_http(server.url());
  std::vector<ByteRange> asked = {{80000, 300}, {100, 50}, {40000, 1000}};
  auto got = src->read_ranges("packs/a.pack", asked);
  REQUIRE(got.ok());
  check_ranges(*got, asked, file);
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].header("range") == "bytes=100-149,40000-40999,80000-80299");
  CHECK(reqs[1].header("range") == "bytes=40500-40999,80000-80299");
  CHECK(!src->limits_changed());
}

TEST_CASE("http: read_tail restarts from 0 when the server ignores Range", "[http]") {
  const std::string file = pattern_file(20000, 11);
  ScriptedServer server([&](const Req& req, int, Conn& c) {
    serve_file(req, c, file, "\"e\"", RangeFault::kIgnoreRange);
  });
  auto src = open_http(server.url());
  std::string got;
  bool restarted = false;
  REQUIRE(src->read_tail(
                 "packs/a.pack", 5000, file.size(),
                 [&](ByteView p) {
                   got.append(as_chars(p));
                   return Status::Ok();
                 },
                 &restarted)
              .ok());
  CHECK(restarted);
  CHECK(got == file);
  // More than max_total is corruption. (The scripted server serves one connection at a time.)
  src.reset();
  auto src2 = open_http(server.url());
  Status st =
      src2->read_tail("packs/a.pack", 0, file.size() - 1, [](ByteView) { return Status::Ok(); });
  INFO(st.message());
  CHECK(st.code() == Code::kCorruption);
  CHECK(src2->stats().body_bytes == 0);
}

TEST_CASE(
    "http: read_prefix asks for the start of a file and learns its size, also from a server "
    "that ignores Range",
    "[http]") {
  NginxRepo repo;
  Nginx nginx(repo.root.path());
  auto src = open_http(nginx.url());
  auto got = src->read_prefix("packs/p1.pack", 1000, 1u << 30);
  REQUIRE(got.ok());
  CHECK(str(got->bytes) == repo.pack.substr(0, 1000));
  CHECK(got->size == repo.pack.size());
  CHECK(src->stats().requests == 1);
  CHECK(src->stats().body_bytes == 1000);
  // Longer than the file: the whole file.
  auto all = src->read_prefix("packs/p1.pack", repo.pack.size() + 10, 1u << 30);
  REQUIRE(all.ok());
  CHECK(str(all->bytes) == repo.pack);
  CHECK(all->size == repo.pack.size());
  // A file longer than its bound, and one that does not exist.
  CHECK(src->read_prefix("packs/p1.pack", 1000, repo.pack.size() - 1).error().code() ==
        Code::kCorruption);
  CHECK(src->read_prefix("packs/none.pack", 1000, 1u << 30).error().code() == Code::kNotFound);

  const std::string file = pattern_file(20000, 12);
  ScriptedServer server([&](const Req& req, int, Conn& c) {
    serve_file(req, c, file, "\"e\"", RangeFault::kIgnoreRange);
  });
  auto ignoring = open_http(server.url());
  auto start = ignoring->read_prefix("packs/a.pack", 100, 1u << 20);
  REQUIRE(start.ok());
  CHECK(str(start->bytes) == file.substr(0, 100));
  CHECK(start->size == file.size());
  CHECK(ignoring->stats().requests == 1);
  // The whole-file answer is cut once the bytes asked are in.
  CHECK(ignoring->stats().body_bytes < file.size());
}

TEST_CASE("path: read_prefix reads the start of a file, its size, and counts only that", "[http]") {
  NginxRepo repo;  // the same files, read from the folder
  auto src = open_source(repo.root.path());
  REQUIRE(src.ok());
  auto got = (*src)->read_prefix("packs/p1.pack", 1000, 1u << 30);
  REQUIRE(got.ok());
  CHECK(str(got->bytes) == repo.pack.substr(0, 1000));
  CHECK(got->size == repo.pack.size());
  CHECK((*src)->stats().body_bytes == 1000);
  auto all = (*src)->read_prefix("packs/p1.pack", repo.pack.size() * 2, 1u << 30);
  REQUIRE(all.ok());
  CHECK(str(all->bytes) == repo.pack);
  CHECK((*src)->read_prefix("packs/p1.pack", 10, repo.pack.size() - 1).error().code() ==
        Code::kCorruption);
  CHECK((*src)->read_prefix("packs/none.pack", 10, 1u << 30).error().code() == Code::kNotFound);
}

TEST_CASE("http: 503 with Retry-After is retried after the time asked", "[http]") {
  ScriptedServer server([&](const Req&, int n, Conn& c) {
    if (n == 0) {
      c.send(response(503, "Service Unavailable", {"Retry-After: 1"}, "busy"));
      return;
    }
    c.send(response(200, "OK", {}, "{}"));
  });
  HttpOptions o = fast_options();
  o.backoff_max_s = 5;
  auto src = open_http(server.url(), o);
  auto start = Clock::now();
  auto got = src->read_file("metadata/timestamp.json", 100);
  REQUIRE(got.ok());
  CHECK(str(*got) == "{}");
  CHECK(seconds_since(start) >= 0.9);
  CHECK(src->stats().requests == 2);
}

TEST_CASE("http: Retry-After is capped at backoff_max_s, and 5xx and 429 give up after retries",
          "[http]") {
  int status = GENERATE(503, 429);
  ScriptedServer server([&](const Req&, int, Conn& c) {
    c.send(response(status, "Busy", {"Retry-After: 3600"}, "try later"));
  });
  HttpOptions o = fast_options();
  o.retries = 2;
  o.backoff_max_s = 0.1;
  auto src = open_http(server.url(), o);
  auto start = Clock::now();
  auto got = src->read_file("metadata/timestamp.json", 100);
  REQUIRE(!got.ok());
  CHECK(seconds_since(start) < 30);  // not an hour
  CHECK(got.error().code() == Code::kUnavailable);
  CHECK_THAT(got.error().message(), Catch::Contains("HTTP " + std::to_string(status)));
  CHECK_THAT(got.error().message(), Catch::Contains("after 3 attempts"));
  CHECK(src->stats().requests == 3);
}

TEST_CASE("http: 404 and 403 from a scripted server are not retried", "[http]") {
  ScriptedServer server([&](const Req& req, int, Conn& c) {
    if (req.target.find("gone") != std::string::npos) {
      c.send(response(410, "Gone", {}, "gone"));
    } else if (req.target.find("secret") != std::string::npos) {
      c.send(response(403, "Forbidden", {"Content-Type: text/html"}, "<html>no</html>"));
    } else {
      c.send(response(404, "Not Found", {"Content-Type: text/html"}, "<html>404</html>"));
    }
  });
  auto src = open_http(server.url());
  auto missing = src->read_file("metadata/1.root.json", 100);
  CHECK(missing.error().code() == Code::kNotFound);
  auto gone = src->read_file("metadata/gone.json", 100);
  CHECK(gone.error().code() == Code::kNotFound);
  auto forbidden = src->read_ranges("packs/secret.pack", {{0, 10}});
  // 403: the server's access rules (or file modes) must be fixed by a person.
  CHECK(forbidden.error().code() == Code::kFailedPrecondition);
  CHECK_THAT(forbidden.error().message(), Catch::Contains("HTTP 403"));
  CHECK(src->stats().requests == 3);
}

TEST_CASE("http: an endless body stops at the bound", "[http]") {
  ScriptedServer server([&](const Req&, int, Conn& c) {
    c.send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n");
    std::string chunk(16384, 'x');
    while (c.send(chunk) && c.nap(0)) {
    }
    c.close();
  });
  auto src = open_http(server.url());
  auto got = src->read_file("metadata/timestamp.json", 100000);
  REQUIRE(!got.ok());
  CHECK(got.error().code() == Code::kCorruption);
  CHECK_THAT(got.error().message(), Catch::Contains("body longer than declared"));
  CHECK(src->stats().body_bytes <= 100000 + 16384);
  CHECK(src->stats().requests == 1);
}

TEST_CASE("http: a 1 byte/s drip is cut off by the stall timeout", "[http]") {
  ScriptedServer server([&](const Req&, int, Conn& c) {
    c.send("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    while (c.send("x") && c.nap(1000)) {
    }
    c.close();
  });
  HttpOptions o = fast_options();
  o.retries = 0;
  o.stall_timeout_s = 2;
  o.stall_min_speed = 16;
  auto src = open_http(server.url(), o);
  auto start = Clock::now();
  auto got = src->read_file("packs/a.pack", 1000);
  REQUIRE(!got.ok());
  CHECK(got.error().code() == Code::kUnavailable);
  CHECK_THAT(got.error().message(), Catch::Contains("stalled"));
  CHECK(seconds_since(start) < 10);
}

TEST_CASE("http: an HTML page instead of a repository file is a captive portal", "[http]") {
  ScriptedServer server([&](const Req& req, int, Conn& c) {
    if (req.target == "/portal") {
      c.send(response(200, "OK", {"Content-Type: text/html; charset=utf-8"},
                      "<html><body>Please log in to the hotel Wi-Fi</body></html>"));
    } else {
      c.send(response(302, "Found", {"Location: /portal"}, ""));
    }
  });
  auto src = open_http(server.url());
  auto got = src->read_file("metadata/timestamp.json", 100000);
  REQUIRE(!got.ok());
  CHECK(got.error().code() == Code::kUnavailable);
  CHECK_THAT(got.error().message(),
             Catch::Contains("got an HTML page instead of metadata/timestamp.json") &&
                 Catch::Contains("captive portal") && Catch::Contains("log in to the network"));
  CHECK(src->stats().requests == 1);  // the redirect is followed within one request
  CHECK(src->stats().body_bytes == 0);
}

TEST_CASE("http: connection refused is kUnavailable after the retries", "[http]") {
  int port = free_port();  // nothing listens there
  HttpOptions o = fast_options();
  o.retries = 2;
  auto src = open_http("http://127.0.0.1:" + std::to_string(port), o);
  auto got = src->read_file("metadata/timestamp.json", 100);
  REQUIRE(!got.ok());
  CHECK(got.error().code() == Code::kUnavailable);
  CHECK_THAT(got.error().message(), Catch::Contains("cannot connect"));
  CHECK(src->stats().requests == 3);
}

TEST_CASE("http: an unknown host name is kUnavailable naming DNS", "[http]") {
  ScopedEnv p("http_proxy", nullptr);
  HttpOptions o = fast_options();
  o.retries = 0;
  auto src = open_http("http://outpost-mirror.invalid/repo", o);
  auto got = src->read_file("metadata/timestamp.json", 100);
  REQUIRE(!got.ok());
  CHECK(got.error().code() == Code::kUnavailable);
  CHECK_THAT(got.error().message(),
             Catch::Contains("cannot resolve the host name") && Catch::Contains("DNS"));
}

TEST_CASE("http: a metered source stops a transfer when the data budget is used up", "[http]") {
  const std::string file = pattern_file(300000, 12);
  ScriptedServer server(
      [&](const Req& req, int, Conn& c) { serve_file(req, c, file, "\"e\"", RangeFault::kNone); });
  auto src = open_http(server.url());
  MeteredSource metered(*src, 50000);
  std::uint64_t last = 0;
  metered.set_guard([&](const TransferStats& stats) -> Status {
    CHECK(stats.total() >= last);  // the caller's guard still sees every piece
    last = stats.total();
    return Status::Ok();
  });
  auto got = metered.read_file("packs/a.pack", file.size());
  REQUIRE(!got.ok());
  CHECK(got.error().code() == Code::kResourceExhausted);
  CHECK_THAT(got.error().message(), Catch::Contains("data budget"));
  CHECK(src->stats().requests == 1);
  CHECK(src->stats().body_bytes < 50000 + 16384 + 1);
  CHECK(last > 0);
  CHECK(metered.left() == 0);
  // Once used up, no further request starts.
  auto again = metered.read_file("packs/a.pack", file.size());
  CHECK(again.error().code() == Code::kResourceExhausted);
  CHECK(src->stats().requests == 1);
}

// Reads `path` from server with a stop requested after 300 ms; the outcome and its duration.
std::pair<Status, double> read_stopped(const ScriptedServer& server, HttpOptions o,
                                       const std::string& path, std::uint64_t max) {
  std::stop_source stop;
  o.stop = stop.get_token();
  auto src = open_http(server.url(), o);
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop.request_stop();
  });
  auto start = Clock::now();
  auto got = src->read_file(path, max);
  stopper.join();
  Status st = got.ok() ? Status::Ok() : got.error();
  CHECK(src->stats().requests == 1);
  return {st, seconds_since(start)};
}

TEST_CASE("http: a stop request wakes a backoff sleep at once", "[http]") {
  ScriptedServer server([&](const Req&, int, Conn& c) {
    c.send(response(503, "Service Unavailable", {"Retry-After: 30"}, "busy"));
  });
  HttpOptions o = fast_options();
  o.backoff_max_s = 60;
  auto [st, took] = read_stopped(server, o, "metadata/timestamp.json", 100);
  CHECK(st.code() == Code::kCancelled);
  CHECK(took < 1.5);
}

TEST_CASE("http: a stop request ends a transfer on a silent link within a second", "[http]") {
  ScriptedServer server([&](const Req&, int, Conn& c) {
    c.send("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc");
    c.nap(10000);  // then silence
  });
  HttpOptions o = fast_options();
  o.stall_timeout_s = 30;
  auto [st, took] = read_stopped(server, o, "packs/a.pack", 1000);
  CHECK(st.code() == Code::kCancelled);
  CHECK(took < 1.5);
}

TEST_CASE("http: an unsolicited Content-Encoding is named, not parsed as the file", "[http]") {
  ScriptedServer server([&](const Req& req, int, Conn& c) {
    CHECK(req.header("accept-encoding").empty());
    c.send(response(200, "OK", {"Content-Encoding: gzip"}, std::string("\x1f\x8b\x08\0junk")));
  });
  auto src = open_http(server.url());
  auto got = src->read_file("metadata/timestamp.json", 1000);
  REQUIRE(!got.ok());
  CHECK(got.error().code() == Code::kFailedPrecondition);
  CHECK_THAT(got.error().message(), Catch::Contains("Content-Encoding: gzip"));
  CHECK_THAT(got.error().message(), Catch::Contains("gzip off"));
  CHECK(src->stats().requests == 1);  // not retried: an operator must change the mirror
}

TEST_CASE("http: the rate cap holds within 10 % over every 10 s window (slow)", "[http]") {
  // 1.4 MB at 100 KB/s over several requests (each a range of the file): 14 s.
  const std::string file = pattern_file(1400000, 7);
  ScriptedServer server(
      [&](const Req& req, int, Conn& c) { serve_file(req, c, file, "\"e\"", RangeFault::kNone); });
  HttpOptions o = fast_options();
  const double rate = 100000;
  o.max_recv_speed = static_cast<std::uint64_t>(rate);
  auto src = open_http(server.url(), o);
  std::vector<std::pair<double, std::uint64_t>> samples;  // (seconds, body bytes)
  auto start = Clock::now();
  src->set_guard([&](const TransferStats& s) {
    samples.emplace_back(seconds_since(start), s.body_bytes);
    return Status::Ok();
  });
  const std::uint64_t part = file.size() / 4;
  for (std::uint64_t i = 0; i < 4; ++i) {
    auto got = src->read_ranges("packs/a.pack", {{i * part, part}});
    REQUIRE(got.ok());
  }
  const double total = seconds_since(start);
  REQUIRE(total >= 12);
  // Every 10 s window that fits in the transfer, sampled each 0.5 s.
  auto bytes_at = [&](double t) {
    std::uint64_t b = 0;
    for (const auto& [when, n] : samples) {
      if (when <= t) b = n;
    }
    return static_cast<double>(b);
  };
  for (double t0 = 0; t0 + 10 <= total; t0 += 0.5) {
    double moved = bytes_at(t0 + 10) - bytes_at(t0);
    INFO("window from " << t0 << " s moved " << moved << " bytes");
    CHECK(moved <= rate * 10 * 1.10);
    CHECK(moved >= rate * 10 * 0.90);
  }
}

TEST_CASE("http: http_proxy from the environment is used", "[http]") {
  ScriptedServer proxy([&](const Req&, int, Conn& c) {
    c.send(response(200, "OK", {"Content-Type: application/json"}, "{\"via\":\"proxy\"}"));
  });
  ScopedEnv p("http_proxy", proxy.url().c_str());
  ScopedEnv np("no_proxy", nullptr);
  ScopedEnv np2("NO_PROXY", nullptr);
  auto src = open_http("http://mirror.example.invalid/repo/");
  auto got = src->read_file("metadata/timestamp.json", 100);
  REQUIRE(got.ok());
  CHECK(str(*got) == "{\"via\":\"proxy\"}");
  auto reqs = proxy.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].target == "http://mirror.example.invalid/repo/metadata/timestamp.json");
  CHECK(src->origin() == "http://mirror.example.invalid:80");
}

TEST_CASE("http: requests carry only the headers needed", "[http]") {
  ScriptedServer server([&](const Req&, int, Conn& c) { c.send(response(200, "OK", {}, "{}")); });
  auto src = open_http(server.url());
  src->set_validator("metadata/timestamp.json", "\"abc\"");
  REQUIRE(src->read_file_if_changed("metadata/timestamp.json", 100).ok());
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].header("if-none-match") == "\"abc\"");
  CHECK(reqs[0].header("user-agent") == "outpost/0.3");
  CHECK(reqs[0].headers.count("accept") == 0);
  CHECK(reqs[0].headers.size() == 3);  // Host, User-Agent, If-None-Match
  // A 200 without an ETag forgets the old validator.
  CHECK(src->validator("metadata/timestamp.json").empty());
  // Paths that could leave the repository are refused without a request.
  CHECK(src->read_file("../etc/passwd", 100).error().code() == Code::kCorruption);
  CHECK(src->stats().requests == 1);
}

TEST_CASE("http: ServerLimits round-trips through Json and ignores junk", "[http]") {
  ServerLimits l;
  l.multirange = false;
  l.max_ranges = 16;
  ServerLimits back = ServerLimits::from_json(l.to_json());
  CHECK(!back.multirange);
  CHECK(back.ranges);
  CHECK(back.max_ranges == 16);
  Json junk = Json::object();
  junk.set("max_ranges", Json(std::int64_t{0}));
  junk.set("ranges", Json("yes"));
  ServerLimits j = ServerLimits::from_json(junk);
  CHECK(j.max_ranges == 1);
  CHECK(j.ranges);
}

}  // namespace
}  // namespace outpost::sync
