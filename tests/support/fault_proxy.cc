// outpost-fault-proxy: a small HTTP/1.1 proxy that injects network faults between an outpost
// node and a mirror, for the integration tests (tests/support/nginx.h starts it).
//
//   outpost-fault-proxy --upstream HOST:PORT [--port N] --rules FILE [--stats FILE]
//
// It listens on 127.0.0.1:N (N = 0 picks a free port) and prints the port on its first line
// of stdout. One thread per client connection; client keep-alive is supported, and each
// client connection forwards its requests over its own keep-alive connection to the upstream.
// Responses are read whole from the upstream (test files are small), changed as the rules
// say, then sent on.
//
// Rules: a JSON array of objects, re-read before each request when FILE changed.
//   {"match": "substring of the request path" (optional),
//    "nth": N (optional: only the Nth matching request, counted from 1; else every one),
//    "<action>": value, ...}
// Every rule that matches a request applies; "nth" counts restart when the file changes.
// Actions:
//   "drop_after": K       close the connection after K response bytes (headers included)
//   "drop_every": K       over the proxy's lifetime, close the client connection each time
//                         another K bytes have been sent to clients
//   "truncate": K         headers unchanged, only K body bytes, then close
//   "flip": K             flip one bit (0x01) of the K-th body byte (from 1; the last byte if
//                         the body is shorter)
//   "status": CODE        answer CODE without forwarding; optional "retry_after": "SECONDS"
//                         and "body": "TEXT"
//   "ignore_range": true  strip Range and If-Range (the upstream answers 200, whole file)
//   "bad_content_range": true   a 206's Content-Range moved by one byte; in a multipart 206,
//                         the first part's Content-Range moved by one byte
//   "bad_boundary": true  the boundary corrupted everywhere in the body of a multipart 206
//   "endless": true       200 with no Content-Length and an endless body of 'x'
//   "oversized": true     200 with a body 10x the upstream's (the file repeated)
//   "drip": BYTES_PER_S   send this response at that rate
//   "html": true          200 text/html "<html>Please log in</html>" (a captive portal)
//   "delay_ms": D         wait D ms before forwarding each request (emulates RTT)
//   "rate": BYTES_PER_S   pace every response byte through one shared link of that rate
//
// --stats FILE holds "BYTES_TO_CLIENTS REQUESTS\n", rewritten atomically as the proxy sends:
// bytes are counted before they are handed to the kernel (and uncounted if the send fails),
// so once a client has what it asked for, the file already counts it.
//
// The proxy ends on SIGTERM and when its parent process goes away.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// ---- a minimal JSON reader: enough for an array of flat objects ----

struct JsonValue {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<JsonValue> array;   // an array's items, or an object's values
  std::vector<std::string> keys;  // an object's: keys[i] names array[i]
};

class JsonReader {
 public:
  explicit JsonReader(const std::string& text) : s_(text) {}
  bool parse(JsonValue& out) {
    if (!value(out)) return false;
    skip();
    return i_ == s_.size();
  }

 private:
  void skip() {
    while (i_ < s_.size() && std::strchr(" \t\r\n", s_[i_]) != nullptr) ++i_;
  }
  bool literal(const char* word) {
    const std::size_t n = std::strlen(word);
    if (s_.compare(i_, n, word) != 0) return false;
    i_ += n;
    return true;
  }
  bool str(std::string& out) {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    ++i_;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c == '\\' && i_ < s_.size()) {
        const char e = s_[i_++];
        c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
      }
      out.push_back(c);
    }
    if (i_ >= s_.size()) return false;
    ++i_;
    return true;
  }
  bool value(JsonValue& v) {
    skip();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '"') {
      v.kind = JsonValue::kString;
      return str(v.string);
    }
    if (c == '[') {
      v.kind = JsonValue::kArray;
      ++i_;
      skip();
      if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
      while (true) {
        JsonValue item;
        if (!value(item)) return false;
        v.array.push_back(std::move(item));
        skip();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
        return false;
      }
    }
    if (c == '{') {
      v.kind = JsonValue::kObject;
      ++i_;
      skip();
      if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
      while (true) {
        skip();
        std::string key;
        if (!str(key)) return false;
        skip();
        if (i_ >= s_.size() || s_[i_] != ':') return false;
        ++i_;
        JsonValue item;
        if (!value(item)) return false;
        v.keys.push_back(std::move(key));
        v.array.push_back(std::move(item));
        skip();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
        return false;
      }
    }
    if (literal("true")) {
      v.kind = JsonValue::kBool;
      v.boolean = true;
      return true;
    }
    if (literal("false")) {
      v.kind = JsonValue::kBool;
      return true;
    }
    if (literal("null")) return true;
    char* end = nullptr;
    v.number = std::strtod(s_.c_str() + i_, &end);
    if (end == s_.c_str() + i_) return false;
    v.kind = JsonValue::kNumber;
    i_ = static_cast<std::size_t>(end - s_.c_str());
    return true;
  }

  const std::string& s_;
  std::size_t i_ = 0;
};

// ---- rules ----

// What applies to one request: every matching rule merged.
struct Actions {
  std::int64_t drop_after = -1;
  std::int64_t drop_every = -1;
  std::int64_t truncate = -1;
  std::int64_t flip = -1;
  int status = 0;
  std::string retry_after;
  std::optional<std::string> body;
  bool ignore_range = false;
  bool bad_content_range = false;
  bool bad_boundary = false;
  bool endless = false;
  bool oversized = false;
  bool html = false;
  double drip = 0;
  std::int64_t delay_ms = 0;
  double rate = 0;
};

struct Rule {
  std::string match;
  std::int64_t nth = 0;
  std::int64_t seen = 0;  // matching requests so far
  Actions actions;
};

std::int64_t as_int(const JsonValue& v) {
  if (v.kind == JsonValue::kString) return std::atoll(v.string.c_str());
  if (v.kind == JsonValue::kBool) return v.boolean ? 1 : 0;
  return static_cast<std::int64_t>(v.number);
}
double as_double(const JsonValue& v) {
  if (v.kind == JsonValue::kString) return std::atof(v.string.c_str());
  return v.number;
}
bool as_bool(const JsonValue& v) {
  return v.kind == JsonValue::kBool ? v.boolean : v.kind == JsonValue::kNumber && v.number != 0;
}
std::string as_string(const JsonValue& v) {
  if (v.kind == JsonValue::kString) return v.string;
  if (v.kind == JsonValue::kNumber) return std::to_string(static_cast<std::int64_t>(v.number));
  return "";
}

class Rules {
 public:
  explicit Rules(std::string path) : path_(std::move(path)) {}

  // Re-reads the file if it changed, then the merged actions of every rule that matches path.
  Actions for_request(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    reload();
    Actions a;
    for (Rule& r : rules_) {
      if (!r.match.empty() && path.find(r.match) == std::string::npos) continue;
      ++r.seen;
      if (r.nth > 0 && r.seen != r.nth) continue;
      merge(a, r.actions);
    }
    return a;
  }

 private:
  static void merge(Actions& a, const Actions& b) {
    if (b.drop_after >= 0) a.drop_after = b.drop_after;
    if (b.drop_every > 0) a.drop_every = b.drop_every;
    if (b.truncate >= 0) a.truncate = b.truncate;
    if (b.flip > 0) a.flip = b.flip;
    if (b.status != 0) {
      a.status = b.status;
      a.retry_after = b.retry_after;
      a.body = b.body;
    }
    a.ignore_range = a.ignore_range || b.ignore_range;
    a.bad_content_range = a.bad_content_range || b.bad_content_range;
    a.bad_boundary = a.bad_boundary || b.bad_boundary;
    a.endless = a.endless || b.endless;
    a.oversized = a.oversized || b.oversized;
    a.html = a.html || b.html;
    if (b.drip > 0) a.drip = b.drip;
    a.delay_ms += b.delay_ms;
    if (b.rate > 0) a.rate = b.rate;
  }

  void reload() {
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) return;
    const auto key = std::make_tuple(st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    if (loaded_ && key == key_) return;
    std::ifstream in(path_, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    JsonValue doc;
    if (!JsonReader(text.str()).parse(doc) || doc.kind != JsonValue::kArray) {
      std::fprintf(stderr, "outpost-fault-proxy: %s: not a JSON array of rules; kept the old\n",
                   path_.c_str());
      return;
    }
    std::vector<Rule> rules;
    for (const JsonValue& obj : doc.array) {
      if (obj.kind != JsonValue::kObject) continue;
      Rule r;
      Actions& a = r.actions;
      for (std::size_t i = 0; i < obj.keys.size(); ++i) {
        const std::string& k = obj.keys[i];
        const JsonValue& v = obj.array[i];
        if (k == "match")
          r.match = as_string(v);
        else if (k == "nth")
          r.nth = as_int(v);
        else if (k == "drop_after")
          a.drop_after = as_int(v);
        else if (k == "drop_every")
          a.drop_every = as_int(v);
        else if (k == "truncate")
          a.truncate = as_int(v);
        else if (k == "flip")
          a.flip = as_int(v);
        else if (k == "status")
          a.status = static_cast<int>(as_int(v));
        else if (k == "retry_after")
          a.retry_after = as_string(v);
        else if (k == "body")
          a.body = as_string(v);
        else if (k == "ignore_range")
          a.ignore_range = as_bool(v);
        else if (k == "bad_content_range")
          a.bad_content_range = as_bool(v);
        else if (k == "bad_boundary")
          a.bad_boundary = as_bool(v);
        else if (k == "endless")
          a.endless = as_bool(v);
        else if (k == "oversized")
          a.oversized = as_bool(v);
        else if (k == "html")
          a.html = as_bool(v);
        else if (k == "drip")
          a.drip = as_double(v);
        else if (k == "delay_ms")
          a.delay_ms = as_int(v);
        else if (k == "rate")
          a.rate = as_double(v);
        else if (k == "action")
          apply_action_string(a, v);
        else
          std::fprintf(stderr, "outpost-fault-proxy: unknown rule key \"%s\"\n", k.c_str());
      }
      rules.push_back(std::move(r));
    }
    rules_ = std::move(rules);
    key_ = key;
    loaded_ = true;
  }

  // {"action": "ignore_range"} is accepted as well as {"ignore_range": true}.
  static void apply_action_string(Actions& a, const JsonValue& v) {
    const std::string s = as_string(v);
    if (s == "ignore_range") a.ignore_range = true;
    if (s == "bad_content_range") a.bad_content_range = true;
    if (s == "bad_boundary") a.bad_boundary = true;
    if (s == "endless") a.endless = true;
    if (s == "oversized") a.oversized = true;
    if (s == "html") a.html = true;
  }

  std::string path_;
  std::mutex mu_;
  std::vector<Rule> rules_;
  bool loaded_ = false;
  std::tuple<ino_t, off_t, time_t, long> key_{};
};

// ---- stats and the shared link ----

class Stats {
 public:
  explicit Stats(std::string path) : path_(std::move(path)) {}

  void count_request() {
    std::lock_guard<std::mutex> lock(mu_);
    ++requests_;
    write_locked(true);
  }

  // Reserves up to n bytes for sending: fewer when a drop_every boundary comes first (then
  // *cut is set: close the connection after sending them). Counted now, before the send.
  std::size_t reserve(std::size_t n, std::int64_t drop_every, bool last, bool* cut) {
    std::lock_guard<std::mutex> lock(mu_);
    *cut = false;
    if (drop_every > 0) {
      const auto every = static_cast<std::uint64_t>(drop_every);
      const std::uint64_t to_boundary = every - bytes_ % every;
      if (n >= to_boundary) {
        n = static_cast<std::size_t>(to_boundary);
        *cut = true;
      }
    }
    bytes_ += n;
    write_locked(last || *cut);
    return n;
  }

  // Bytes reserved but not sent (the client went away).
  void unsend(std::size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    bytes_ -= n;
    write_locked(true);
  }

  void flush() {
    std::lock_guard<std::mutex> lock(mu_);
    write_locked(true);
  }

 private:
  void write_locked(bool force) {
    if (path_.empty()) return;
    const auto now = Clock::now();
    if (!force && now - last_write_ < std::chrono::milliseconds(50)) return;
    last_write_ = now;
    const std::string tmp = path_ + ".tmp";
    if (FILE* f = std::fopen(tmp.c_str(), "w")) {
      std::fprintf(f, "%llu %llu\n", static_cast<unsigned long long>(bytes_),
                   static_cast<unsigned long long>(requests_));
      std::fclose(f);
      std::rename(tmp.c_str(), path_.c_str());
    }
  }

  std::string path_;
  std::mutex mu_;
  std::uint64_t bytes_ = 0;
  std::uint64_t requests_ = 0;
  Clock::time_point last_write_{};
};

// A link of a given rate shared by every connection: each send waits for its turn.
class Link {
 public:
  Clock::time_point book(std::size_t n, double rate) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = Clock::now();
    if (free_at_ < now) free_at_ = now;
    free_at_ += std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(static_cast<double>(n) / rate));
    return free_at_;
  }

 private:
  std::mutex mu_;
  Clock::time_point free_at_{};
};

std::string g_upstream_host;
std::string g_upstream_port;
std::unique_ptr<Rules> g_rules;
std::unique_ptr<Stats> g_stats;
Link g_link;

// ---- sockets ----

bool send_all(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Reads more bytes into buf; false on EOF or error.
bool read_more(int fd, std::string& buf) {
  char tmp[65536];
  while (true) {
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf.append(tmp, static_cast<std::size_t>(n));
    return true;
  }
}

int connect_upstream() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(g_upstream_host.c_str(), g_upstream_port.c_str(), &hints, &res) != 0) {
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd >= 0) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

// ---- HTTP messages ----

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct Message {
  std::string start;  // request or status line, without CRLF
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::string header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (lower(k) == lower(name)) return v;
    }
    return "";
  }
  bool has(const std::string& name) const {
    for (const auto& h : headers) {
      if (lower(h.first) == lower(name)) return true;
    }
    return false;
  }
  void remove(const std::string& name) {
    headers.erase(std::remove_if(headers.begin(), headers.end(),
                                 [&](const auto& h) { return lower(h.first) == lower(name); }),
                  headers.end());
  }
  void set(const std::string& name, const std::string& value) {
    remove(name);
    headers.emplace_back(name, value);
  }
  std::string head() const {
    std::string out = start + "\r\n";
    for (const auto& [k, v] : headers) out += k + ": " + v + "\r\n";
    return out + "\r\n";
  }
};

// Reads a start line and headers from fd (buf holds bytes already read and keeps what follows).
bool read_head(int fd, std::string& buf, Message& m) {
  std::size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (buf.size() > (1 << 20) || !read_more(fd, buf)) return false;
  }
  std::istringstream in(buf.substr(0, end));
  std::getline(in, m.start);
  if (!m.start.empty() && m.start.back() == '\r') m.start.pop_back();
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    m.headers.emplace_back(line.substr(0, colon), value);
  }
  buf.erase(0, end + 4);
  return true;
}

bool read_exact(int fd, std::string& buf, std::size_t n, std::string& out) {
  while (buf.size() < n) {
    if (!read_more(fd, buf)) return false;
  }
  out = buf.substr(0, n);
  buf.erase(0, n);
  return true;
}

bool read_line(int fd, std::string& buf, std::string& line) {
  std::size_t end;
  while ((end = buf.find("\r\n")) == std::string::npos) {
    if (!read_more(fd, buf)) return false;
  }
  line = buf.substr(0, end);
  buf.erase(0, end + 2);
  return true;
}

// The body that follows m's head (Content-Length, chunked, or until the peer closes).
bool read_body(int fd, std::string& buf, Message& m, bool until_close_allowed, bool* closed) {
  *closed = false;
  if (lower(m.header("Transfer-Encoding")).find("chunked") != std::string::npos) {
    while (true) {
      std::string line;
      if (!read_line(fd, buf, line)) return false;
      const std::size_t size = std::strtoull(line.c_str(), nullptr, 16);
      if (size == 0) {
        while (read_line(fd, buf, line) && !line.empty()) {
        }
        return true;
      }
      std::string part;
      if (!read_exact(fd, buf, size, part) || !read_line(fd, buf, line)) return false;
      m.body += part;
    }
  }
  if (m.has("Content-Length")) {
    return read_exact(fd, buf, std::strtoull(m.header("Content-Length").c_str(), nullptr, 10),
                      m.body);
  }
  if (!until_close_allowed) return true;
  while (read_more(fd, buf)) {
  }
  m.body = std::move(buf);
  buf.clear();
  *closed = true;
  return true;
}

int status_code(const Message& response) {
  const std::size_t sp = response.start.find(' ');
  return sp == std::string::npos ? 0 : std::atoi(response.start.c_str() + sp + 1);
}

const char* reason(int code) {
  switch (code) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

Message make_response(int code, const std::string& type, const std::string& body) {
  Message m;
  m.start = "HTTP/1.1 " + std::to_string(code) + " " + reason(code);
  m.headers.emplace_back("Content-Type", type);
  m.headers.emplace_back("Content-Length", std::to_string(body.size()));
  m.body = body;
  return m;
}

// "bytes A-B/N" moved by one byte: "bytes A+1-B+1/N".
std::string shifted_range(const std::string& value) {
  unsigned long long a = 0, b = 0;
  char total[64] = "*";
  if (std::sscanf(value.c_str(), "bytes %llu-%llu/%63s", &a, &b, total) < 2) return value;
  return "bytes " + std::to_string(a + 1) + "-" + std::to_string(b + 1) + "/" + total;
}

std::string boundary_of(const Message& m) {
  const std::string type = m.header("Content-Type");
  const std::size_t at = type.find("boundary=");
  if (at == std::string::npos) return "";
  std::string b = type.substr(at + 9);
  if (!b.empty() && b.front() == '"') b = b.substr(1, b.find('"', 1) - 1);
  return b;
}

void corrupt_content_range(Message& m) {
  if (status_code(m) != 206) return;
  if (m.has("Content-Range")) {
    m.set("Content-Range", shifted_range(m.header("Content-Range")));
    return;
  }
  const std::size_t at = lower(m.body).find("content-range:");
  if (at == std::string::npos) return;
  const std::size_t value = m.body.find_first_not_of(' ', at + 14);
  const std::size_t eol = m.body.find("\r\n", value);
  if (value == std::string::npos || eol == std::string::npos) return;
  m.body.replace(value, eol - value, shifted_range(m.body.substr(value, eol - value)));
}

void corrupt_boundary(Message& m) {
  const std::string b = boundary_of(m);
  if (status_code(m) != 206 || b.empty()) return;
  std::string bad = b;
  bad.back() = bad.back() == 'Z' ? 'Y' : 'Z';
  const std::string from = "--" + b, to = "--" + bad;
  for (std::size_t at = m.body.find(from); at != std::string::npos;
       at = m.body.find(from, at + to.size())) {
    m.body.replace(at, from.size(), to);
  }
}

// ---- sending ----

struct Pacing {
  double drip = 0;               // this response's rate, bytes per second (0: none)
  double rate = 0;               // the shared link's rate (0: none)
  std::int64_t drop_after = -1;  // bytes of this response after which to close
  std::int64_t drop_every = -1;
  std::uint64_t sent = 0;  // bytes of this response sent so far
};

// Sends data under the pacing and drop rules. Returns false when the connection must close
// (a drop, or the client went away); last says whether this ends a response.
bool send_paced(int fd, const std::string& data, Pacing& p, bool last) {
  std::size_t pos = 0;
  while (pos < data.size()) {
    std::size_t slice = std::min<std::size_t>(data.size() - pos, 16384);
    double pace = 0;
    if (p.drip > 0) pace = p.drip;
    if (p.rate > 0 && (pace == 0 || p.rate < pace)) pace = p.rate;
    if (pace > 0)
      slice = std::min(slice, std::max<std::size_t>(1, static_cast<std::size_t>(pace / 20)));
    bool cut = false;
    if (p.drop_after >= 0) {
      const auto left = static_cast<std::uint64_t>(p.drop_after) -
                        std::min<std::uint64_t>(p.sent, static_cast<std::uint64_t>(p.drop_after));
      if (left == 0) return false;
      if (slice >= left) {
        slice = static_cast<std::size_t>(left);
        cut = true;
      }
    }
    bool every_cut = false;
    slice = g_stats->reserve(slice, p.drop_every, last && pos + slice == data.size() && !cut,
                             &every_cut);
    cut = cut || every_cut;
    Clock::time_point until = Clock::now();
    if (p.drip > 0) {
      until += std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(static_cast<double>(slice) / p.drip));
    }
    if (p.rate > 0) until = std::max(until, g_link.book(slice, p.rate));
    std::this_thread::sleep_until(until);
    if (!send_all(fd, data.data() + pos, slice)) {
      g_stats->unsend(slice);
      return false;
    }
    pos += slice;
    p.sent += slice;
    if (cut) {
      g_stats->flush();
      return false;
    }
  }
  return true;
}

// One line per request on stderr (FaultProxy::log()): what was asked, what was answered, how
// many bytes went to the client, and whether the connection was closed after it.
void log_request(const std::string& request_line, const std::string& status, std::uint64_t bytes,
                 bool closed) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "%s -> %s, %llu bytes%s\n", request_line.c_str(), status.c_str(),
               static_cast<unsigned long long>(bytes), closed ? ", closed" : "");
  std::fflush(stderr);
}

// ---- one client connection ----

void serve(int client) {
  const int one = 1;
  ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::string cbuf, ubuf;
  int upstream = -1;
  auto close_upstream = [&] {
    if (upstream >= 0) ::close(upstream);
    upstream = -1;
    ubuf.clear();
  };
  while (true) {
    Message req;
    if (!read_head(client, cbuf, req)) break;
    bool closed = false;
    if (!read_body(client, cbuf, req, false, &closed)) break;
    g_stats->count_request();
    std::istringstream line(req.start);
    std::string method, target, version;
    line >> method >> target >> version;
    bool close_after = lower(req.header("Connection")) == "close" ||
                       (version == "HTTP/1.0" && lower(req.header("Connection")) != "keep-alive");
    const Actions a = g_rules->for_request(target);
    if (a.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(a.delay_ms));
    Pacing pacing;
    pacing.drip = a.drip;
    pacing.rate = a.rate;
    pacing.drop_after = a.drop_after;
    pacing.drop_every = a.drop_every;

    if (a.endless) {
      // A small send buffer, so what is counted as sent is close to what the client read
      // before it gave up (not megabytes queued in the kernel).
      const int small = 32 << 10;
      ::setsockopt(client, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
      Message m;
      m.start = "HTTP/1.1 200 OK";
      m.headers.emplace_back("Content-Type", "application/octet-stream");
      m.headers.emplace_back("Connection", "close");
      if (!send_paced(client, m.head(), pacing, false)) break;
      const std::string xs(16384, 'x');
      while (send_paced(client, xs, pacing, false)) {
      }
      log_request(req.start, "200 endless", pacing.sent, false);
      break;
    }

    Message resp;
    bool no_body = method == "HEAD";
    if (a.status != 0) {
      resp = make_response(
          a.status, "text/plain",
          a.body ? *a.body : std::to_string(a.status) + " " + reason(a.status) + "\n");
      if (!a.retry_after.empty()) resp.headers.emplace_back("Retry-After", a.retry_after);
    } else if (a.html) {
      resp = make_response(200, "text/html", "<html>Please log in</html>");
    } else {
      if (a.ignore_range || a.oversized) {
        req.remove("Range");
        req.remove("If-Range");
      }
      req.remove("Connection");
      req.remove("Keep-Alive");
      req.remove("Proxy-Connection");
      req.set("Connection", "keep-alive");
      req.set("Content-Length", std::to_string(req.body.size()));
      if (req.body.empty() && (method == "GET" || method == "HEAD")) req.remove("Content-Length");
      const std::string forward = req.head() + req.body;
      bool got = false;
      for (int attempt = 0; attempt < 2 && !got; ++attempt) {
        const bool reused = upstream >= 0;
        if (upstream < 0) upstream = connect_upstream();
        if (upstream < 0) break;
        resp = Message{};
        if (!send_all(upstream, forward.data(), forward.size()) ||
            !read_head(upstream, ubuf, resp)) {
          close_upstream();
          if (reused) continue;  // the upstream closed an idle keep-alive connection
          break;
        }
        const int code = status_code(resp);
        const bool bodiless = no_body || code == 204 || code == 304 || (code >= 100 && code < 200);
        bool upstream_closed = false;
        if (!bodiless && !read_body(upstream, ubuf, resp, true, &upstream_closed)) {
          close_upstream();
          break;
        }
        if (upstream_closed || lower(resp.header("Connection")) == "close") close_upstream();
        got = true;
      }
      if (!got) {
        resp = make_response(502, "text/plain", "upstream unreachable\n");
        close_after = true;
      } else {
        const int code = status_code(resp);
        const bool bodiless = no_body || code == 204 || code == 304;
        if (!bodiless) {
          if (a.oversized) {
            std::string big;
            for (int i = 0; i < 10; ++i) big += resp.body;
            resp.body = std::move(big);
            resp.start = "HTTP/1.1 200 OK";
            resp.remove("Content-Range");
          }
          if (a.bad_content_range) corrupt_content_range(resp);
          if (a.bad_boundary) corrupt_boundary(resp);
          if (a.flip > 0 && !resp.body.empty()) {
            const std::size_t at = std::min(static_cast<std::size_t>(a.flip), resp.body.size()) - 1;
            resp.body[at] = static_cast<char>(resp.body[at] ^ 0x01);
          }
          resp.remove("Transfer-Encoding");
          resp.set("Content-Length", std::to_string(resp.body.size()));
        }
      }
    }
    if (no_body) resp.body.clear();
    resp.remove("Connection");
    resp.remove("Keep-Alive");
    if (a.truncate >= 0) close_after = true;
    resp.headers.emplace_back("Connection", close_after ? "close" : "keep-alive");
    std::string body = resp.body;
    if (a.truncate >= 0 && body.size() > static_cast<std::size_t>(a.truncate)) {
      body.resize(static_cast<std::size_t>(a.truncate));
    }
    const bool sent = send_paced(client, resp.head() + body, pacing, true);
    log_request(req.start, resp.start.substr(std::min<std::size_t>(9, resp.start.size())),
                pacing.sent, !sent || close_after);
    if (!sent) break;
    if (close_after) break;
  }
  close_upstream();
  g_stats->flush();
  ::shutdown(client, SHUT_RDWR);
  ::close(client);
}

int usage() {
  std::fprintf(stderr,
               "usage: outpost-fault-proxy --upstream HOST:PORT [--port N] --rules FILE "
               "[--stats FILE]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string upstream, rules, stats;
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string value = argv[++i];
    if (arg == "--upstream")
      upstream = value;
    else if (arg == "--port")
      port = std::atoi(value.c_str());
    else if (arg == "--rules")
      rules = value;
    else if (arg == "--stats")
      stats = value;
    else
      return usage();
  }
  const std::size_t colon = upstream.rfind(':');
  if (colon == std::string::npos || rules.empty()) return usage();
  g_upstream_host = upstream.substr(0, colon);
  g_upstream_port = upstream.substr(colon + 1);
  g_rules = std::make_unique<Rules>(rules);
  g_stats = std::make_unique<Stats>(stats);
  ::signal(SIGPIPE, SIG_IGN);

  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 64) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::fprintf(stderr, "outpost-fault-proxy: cannot listen on 127.0.0.1:%d: %s\n", port,
                 std::strerror(errno));
    return 1;
  }
  g_stats->flush();
  std::printf("%d\n", ntohs(addr.sin_port));
  std::fflush(stdout);

  // Ends with its parent even without PR_SET_PDEATHSIG (e.g. started by hand from a shell).
  const pid_t parent = ::getppid();
  std::thread([parent] {
    while (::getppid() == parent) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::_Exit(0);
  }).detach();

  while (true) {
    const int client = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      std::fprintf(stderr, "outpost-fault-proxy: accept: %s\n", std::strerror(errno));
      return 1;
    }
    std::thread(serve, client).detach();
  }
}
