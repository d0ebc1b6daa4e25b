// The HTTP server on loopback, driven by raw sockets (so a test can send what no polite client
// would): routing, GET/HEAD only, hostile paths, Range and multi-range, a port in use, slow
// clients and 500 connections at once.
#include "outpost/serve/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

using namespace outpost;
using namespace outpost::serve;

namespace {

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends one request (Connection: close) and reads the whole answer.
std::string ask(int port, const std::string& request, int timeout_ms = 5000) {
  int fd = connect_to(port);
  if (fd < 0) return "";
  (void)!::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[65536];
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) != 1) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string get(int port, const std::string& target, const std::string& headers = "",
                const std::string& method = "GET") {
  return ask(port, method + " " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
                       headers + "\r\n");
}

int status_of(const std::string& answer) {
  if (answer.size() < 12) return 0;
  return std::stoi(answer.substr(9, 3));
}

std::string body_of(const std::string& answer) {
  std::size_t at = answer.find("\r\n\r\n");
  return at == std::string::npos ? "" : answer.substr(at + 4);
}

const std::string kData = [] {
  std::string s;
  for (int i = 0; s.size() < 10000; ++i) s += std::to_string(i) + ",";
  s.resize(10000);
  return s;
}();

HttpServerOptions loopback() {
  HttpServerOptions o;
  o.listen = {"127.0.0.1:0"};
  o.threads = 2;
  return o;
}

void add_routes(HttpServer& server) {
  server.route("/data", [](const HttpRequest& r) {
    return serve_bytes(r, kData.size(), false, "text/plain", "\"v1\"",
                       [](std::uint64_t at, std::uint64_t n) -> Result<std::string> {
                         return kData.substr(at, n);
                       });
  });
  server.route("/", [](const HttpRequest& r) { return HttpResponse::text(200, "root " + r.path); });
  server.route("/a/b", [](const HttpRequest&) { return HttpResponse::text(200, "deeper"); });
}

long rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

}  // namespace

TEST_CASE("routes go to the longest matching prefix, and only GET and HEAD are served",
          "[serve][http]") {
  HttpServer server(loopback());
  add_routes(server);
  REQUIRE(server.start().ok());
  const int port = server.ports().at(0);
  CHECK(body_of(get(port, "/a/b/c")) == "deeper\n");
  CHECK(body_of(get(port, "/a/x")) == "root /a/x\n");
  const std::string post = ask(port,
                               "POST /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                               "Content-Length: 3\r\n\r\nabc");
  CHECK(status_of(post) == 405);
  CHECK(post.find("Allow: GET, HEAD") != std::string::npos);
  CHECK(status_of(get(port, "/a", "", "DELETE")) == 405);
  const std::string head = get(port, "/data", "", "HEAD");
  CHECK(status_of(head) == 200);
  CHECK(head.find("Content-Length: 10000") != std::string::npos);
  CHECK(body_of(head).empty());
}

TEST_CASE("bad input: encoded '..', NUL and overlong paths never reach a handler",
          "[serve][http]") {
  HttpServer server(loopback());
  add_routes(server);
  REQUIRE(server.start().ok());
  const int port = server.ports().at(0);
  CHECK(status_of(get(port, "/repo/../../etc/passwd")) == 400);
  CHECK(status_of(get(port, "/repo/%2e%2e/%2E%2E/etc/passwd")) == 400);
  CHECK(status_of(get(port, "/repo/x%00y")) == 400);
  CHECK(status_of(get(port, "/repo/x%zz")) == 400);
  CHECK(status_of(get(port, "/repo/x%5cy")) == 400);  // an encoded backslash
  CHECK(status_of(get(port, "/" + std::string(2000, 'a'))) == 414);
  // Too long for the connection's memory: refused by the server library, and it stays up.
  const int huge = status_of(get(port, "/" + std::string(40000, 'a')));
  CHECK(huge >= 400);
  CHECK(status_of(get(port, "/fine")) == 200);
  CHECK(server.stats().refused >= 6);
}

TEST_CASE("Range, multi-range and If-None-Match are honoured", "[serve][http]") {
  HttpServer server(loopback());
  add_routes(server);
  REQUIRE(server.start().ok());
  const int port = server.ports().at(0);
  const std::string one = get(port, "/data", "Range: bytes=100-199\r\n");
  CHECK(status_of(one) == 206);
  CHECK(one.find("Content-Range: bytes 100-199/10000") != std::string::npos);
  CHECK(body_of(one) == kData.substr(100, 100));
  const std::string multi = get(port, "/data", "Range: bytes=0-4, 9990-\r\n");
  CHECK(status_of(multi) == 206);
  CHECK(multi.find("multipart/byteranges; boundary=") != std::string::npos);
  CHECK(multi.find("Content-Range: bytes 9990-9999/10000\r\n\r\n" + kData.substr(9990)) !=
        std::string::npos);
  CHECK(multi.find("Content-Range: bytes 0-4/10000\r\n\r\n" + kData.substr(0, 5)) !=
        std::string::npos);
  const std::string suffix = get(port, "/data", "Range: bytes=-10\r\n");
  CHECK(body_of(suffix) == kData.substr(9990));
  CHECK(status_of(get(port, "/data", "If-None-Match: \"v1\"\r\n")) == 304);
}

TEST_CASE("bad input: malformed Range headers are ignored, impossible ones are 416",
          "[serve][http]") {
  HttpServer server(loopback());
  add_routes(server);
  REQUIRE(server.start().ok());
  const int port = server.ports().at(0);
  for (const char* ignored :
       {"Range: lines=1-2\r\n", "Range: bytes=abc\r\n", "Range: bytes=5-2\r\n",
        "Range: bytes=1-2-3\r\n", "Range: bytes=99999999999999999999999-\r\n"}) {
    INFO(ignored);
    const std::string r = get(port, "/data", ignored);
    CHECK(status_of(r) == 200);
    CHECK(body_of(r).size() == kData.size());
  }
  CHECK(status_of(get(port, "/data", "Range: bytes=20000-30000\r\n")) == 416);
  std::string many = "Range: bytes=";
  for (int i = 0; i < 1100; ++i) many += "0-0,";
  CHECK(status_of(get(port, "/data", many + "\r\n")) == 416);  // more than kMaxRanges
  // A header too large for the connection's memory: the server library refuses it.
  std::string huge = "Range: bytes=";
  for (int i = 0; i < 3000; ++i) huge += std::to_string(i) + "-" + std::to_string(i) + ",";
  CHECK(status_of(get(port, "/data", huge + "\r\n")) == 431);
  std::string overlapping = "Range: bytes=";
  for (int i = 0; i < 50; ++i) overlapping += "0-,";
  CHECK(status_of(get(port, "/data", overlapping + "\r\n")) == 416);  // 50x the file
  std::vector<RangeSpec> ranges;
  CHECK(parse_range("bytes=0-10", 0, true, &ranges) == RangeOutcome::kRanges);
  CHECK(parse_range("bytes=-10", 0, true, &ranges) == RangeOutcome::kUnsatisfiable);
}

TEST_CASE("bad input: a port already in use is refused naming the address", "[serve][http]") {
  HttpServer first(loopback());
  REQUIRE(first.start().ok());
  HttpServerOptions o = loopback();
  o.listen = {"127.0.0.1:" + std::to_string(first.ports().at(0))};
  HttpServer second(o);
  Status st = second.start();
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == Code::kUnavailable);
  CHECK(st.message().find(o.listen[0] + ": address already in use") != std::string::npos);
}

TEST_CASE(
    "bad input: 500 slow clients hold connections, others are still answered and "
    "memory stays bounded",
    "[serve][http]") {
  HttpServerOptions o = loopback();
  o.connection_timeout = 3;
  HttpServer server(o);
  add_routes(server);
  REQUIRE(server.start().ok());
  const int port = server.ports().at(0);
  CHECK(status_of(get(port, "/warm")) == 200);
  const long before = rss_kb();
  std::vector<int> slow;
  for (int i = 0; i < 500; ++i) {
    int fd = connect_to(port);
    REQUIRE(fd >= 0);
    // Half a request line and a header that never ends (slowloris).
    const std::string part = "GET /data HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    (void)!::send(fd, part.data(), part.size(), MSG_NOSIGNAL);
    slow.push_back(fd);
  }
  const auto start = std::chrono::steady_clock::now();
  const std::string answer = get(port, "/data", "Range: bytes=0-9\r\n");
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(status_of(answer) == 206);
  CHECK(took < std::chrono::seconds(2));
  CHECK(server.stats().connections >= 400);
  const long grown = rss_kb() - before;
  INFO("RSS grew by " << grown << " KB for 500 connections");
  CHECK(grown < 48 * 1024);
  // The server drops them after connection_timeout.
  bool closed = false;
  for (int i = 0; i < 80 && !closed; ++i) {
    ::usleep(100 * 1000);
    closed = server.stats().connections < 10;
  }
  CHECK(closed);
  for (int fd : slow) ::close(fd);
}
