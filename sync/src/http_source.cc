#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>

#include "http_curl.h"
#include "http_ranges.h"
#include "outpost/sync/http.h"

namespace outpost::sync {

using http_internal::BodySink;
using http_internal::CurlTransfer;
using http_internal::Extent;
using http_internal::Failure;
using http_internal::Outcome;
using http_internal::Request;
using http_internal::ResponseHead;

// What one failed exchange means: its error, and whether to try again (after how long).
namespace http_internal {
struct Failure {
  Status status;
  bool retry = false;
  double retry_after_s = -1;
};
}  // namespace http_internal

namespace {

// Ranges closer than this are fetched as one: the gap costs less than another range in the
// request header plus another part header (~100 bytes) in the answer, and fewer requests.
constexpr std::uint64_t kCoalesceGap = 1024;
// Without multi-range, near spans still share one single-range request.
constexpr std::uint64_t kSingleMergeGap = 16 * 1024;
// Servers and proxies commonly cap a request header line at 4-8 KiB.
constexpr std::size_t kMaxRangeHeader = 4000;
// The Source API has no file size, so when a server ignores Range the ranges are taken out
// of the whole file as it streams by (stopping once all are in). This bounds that fallback:
// repository packs are far smaller, and a larger answer is not a repository file.
constexpr std::uint64_t kWholeFileFallbackMax = 256ull << 20;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string escape_path(const std::string& given) {
  static const char* kHex = "0123456789ABCDEF";
  // A query a peer node's request carries ("pieces?chunks=HEX,HEX"), kept as it is when it
  // holds only characters that need no escaping.
  std::string path = given;
  std::string query;
  if (std::size_t q = given.find('?'); q != std::string::npos) {
    const std::string rest = given.substr(q + 1);
    if (std::all_of(rest.begin(), rest.end(), [](unsigned char c) {
          return std::isalnum(c) || c == '=' || c == '&' || c == ',' || c == '-' || c == '.' ||
                 c == '_' || c == '%' || c == '/';
        })) {
      path = given.substr(0, q);
      query = "?" + rest;
    }
  }
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out + query;
}

// Repository files are JSON metadata, packs, patches and indexes: never HTML. An HTML page in
// their place comes from a captive portal or a proxy's login page.
Status check_not_html(const ResponseHead& h, const std::string& url, const std::string& path) {
  std::string type = h.content_type.substr(0, h.content_type.find(';'));
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!h.content_encoding.empty() && h.content_encoding != "identity") {
    // Never asked for (no Accept-Encoding is sent): the bytes are not the signed file, and
    // ranges of an encoded body are meaningless.
    return Status::FailedPrecondition(
        url + ": the server compressed " + path +
        " on the fly (Content-Encoding: " + h.content_encoding +
        ") although outpost did not ask for it: turn that off for the repository on the "
        "mirror (nginx: 'gzip off;' in its location) or use another mirror");
  }
  bool html = type.rfind("text/html", 0) == 0 || type.rfind("application/xhtml", 0) == 0;
  if (!html || ends_with(path, ".html") || ends_with(path, ".htm")) return Status::Ok();
  return Status::Unavailable(url + ": got an HTML page instead of " + path +
                             " — a captive portal or a proxy login page? Open a browser, log "
                             "in to the network, and retry");
}

Status too_long(const std::string& url, std::uint64_t bound) {
  return Status::Corruption(url + ": body longer than declared (more than " +
                            std::to_string(bound) +
                            " bytes, its signed length or size limit): damaged or tampered; try "
                            "another mirror");
}

// The validator If-Range may carry: a strong ETag, else Last-Modified, else none.
std::string if_range_validator(const ResponseHead& h) {
  if (!h.etag.empty() && h.etag.rfind("W/", 0) != 0) return h.etag;
  return h.last_modified;
}

// Seconds to wait from a Retry-After value (delta-seconds or an HTTP date); -1 when absent
// or unreadable.
double retry_after_seconds(const std::string& v) {
  if (v.empty()) return -1;
  if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return v.size() > 9 ? 1e9 : std::stod(v);
  }
  std::time_t when = curl_getdate(v.c_str(), nullptr);
  if (when < 0) return -1;
  return std::max(0.0, std::difftime(when, std::time(nullptr)));
}

Failure transport_failure(const Outcome& o, const std::string& url) {
  const std::string curl = " (curl: " + o.curl_error + ")";
  switch (o.code) {
    case CURLE_COULDNT_RESOLVE_HOST:
      return {Status::Unavailable(url + ": cannot resolve the host name" + curl +
                                  ": check the mirror URL and the network's DNS; will retry"),
              true};
    case CURLE_COULDNT_RESOLVE_PROXY:
      return {Status::Unavailable(url + ": cannot resolve the proxy" + curl +
                                  ": check http_proxy/https_proxy; will retry"),
              true};
    case CURLE_COULDNT_CONNECT:
      return {Status::Unavailable(url + ": cannot connect" + curl +
                                  ": the server is down or the link is off; will retry later"),
              true};
    case CURLE_OPERATION_TIMEDOUT:
      return {Status::Unavailable(url + ": timed out, the link stalled or is too slow" + curl +
                                  "; will retry later"),
              true};
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      return {
          Status::FailedPrecondition(url + ": the server's TLS certificate is not trusted" + curl +
                                     ": give this node the CA certificate the mirror's "
                                     "certificate is signed with (a PEM file), or fix the "
                                     "mirror's certificate"),
          false};
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      return {Status::InvalidArgument(url + ": not a usable http(s) URL" + curl), false};
    case CURLE_TOO_MANY_REDIRECTS:
      return {Status::FailedPrecondition(url + ": too many redirects" + curl +
                                         ": the mirror is misconfigured; try another mirror"),
              false};
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
      return {Status::Unavailable(url + ": the connection dropped" + curl + "; will resume"), true};
    default:
      return {Status::Unavailable(url + ": transfer failed" + curl + "; will retry later"), true};
  }
}

// nullopt when the exchange gave a usable answer (2xx or 304).
std::optional<Failure> classify(const Outcome& o, const std::string& url) {
  if (!o.aborted.ok()) return Failure{o.aborted, false};
  bool transport_ok = o.code == CURLE_OK || (o.code == CURLE_WRITE_ERROR && o.stopped);
  if (!transport_ok) return transport_failure(o, url);
  const long s = o.head.status;
  const std::string code = std::to_string(s);
  if ((s >= 200 && s < 300) || s == 304) return std::nullopt;
  if (s == 404 || s == 410) return Failure{Status::NotFound(url + ": not found (" + code + ")")};
  if (s == 416) {
    return Failure{Status::Corruption(url + ": the file is shorter than the bytes asked (416): "
                                            "damaged or tampered; try another mirror")};
  }
  if (s == 511) {
    return Failure{Status::Unavailable(url + ": the network asks for a login (511) — a captive "
                                             "portal? Open a browser, log in to the network, and "
                                             "retry")};
  }
  if (s >= 500 || s == 429 || s == 408) {
    return Failure{Status::Unavailable(url + ": the server answered HTTP " + code +
                                       " (busy or failing); will retry later"),
                   true, retry_after_seconds(o.head.retry_after)};
  }
  // 401, 403 and the rest: nothing changes until someone fixes the URL or the server's rules.
  return Failure{Status::FailedPrecondition(url + ": the server answered HTTP " + code +
                                            ": check the mirror URL and its access rules (a web "
                                            "server must be able to read every file of the "
                                            "repository)")};
}

Status after_attempts(const Status& s, int attempts) {
  if (attempts <= 1) return s;
  return Status(s.code(),
                s.message() + " (gave up after " + std::to_string(attempts) + " attempts)");
}

Status check_path(const std::string& path, const std::string& where) {
  if (path.empty() || path.front() == '/' || path.find("..") != std::string::npos ||
      path.find('\\') != std::string::npos || path.find('\0') != std::string::npos) {
    return Status::Corruption("refusing repository path '" + path + "' from " + where);
  }
  return Status::Ok();
}

// Sleeps before retry number `attempt` (0-based): full jitter over an exponential cap, or the
// server's Retry-After, both capped at backoff_max_s.
// Wakes early, with kCancelled, when a stop is requested.
Status backoff(const HttpOptions& o, int attempt, double retry_after_s, std::mt19937_64& rng) {
  double seconds;
  if (retry_after_s >= 0) {
    seconds = std::min(retry_after_s, o.backoff_max_s);
  } else {
    double cap =
        std::min(o.backoff_max_s, o.backoff_initial_s * std::pow(2.0, std::min(attempt, 30)));
    seconds = std::uniform_real_distribution<double>(0.0, std::max(cap, 0.0))(rng);
  }
  if (o.stop.stop_requested()) return Status::Cancelled("stopped on request");
  if (seconds <= 0) return Status::Ok();
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  cv.wait_for(lock, o.stop, std::chrono::duration<double>(seconds), [] { return false; });
  if (o.stop.stop_requested()) return Status::Cancelled("stopped on request");
  return Status::Ok();
}

std::mt19937_64& rng() {
  thread_local std::mt19937_64 r{std::random_device{}()};
  return r;
}

}  // namespace

Json ServerLimits::to_json() const {
  Json j = Json::object();
  j.set("multirange", multirange);
  j.set("ranges", ranges);
  j.set("max_ranges", static_cast<std::int64_t>(max_ranges));
  return j;
}

ServerLimits ServerLimits::from_json(const Json& json) {
  ServerLimits l;
  if (const Json* v = json.find("multirange"); v && v->is_bool()) l.multirange = v->as_bool();
  if (const Json* v = json.find("ranges"); v && v->is_bool()) l.ranges = v->as_bool();
  if (const Json* v = json.find("max_ranges"); v && v->is_int()) {
    l.max_ranges = static_cast<std::uint32_t>(std::clamp<std::int64_t>(v->as_int(), 1, 1024));
  }
  return l;
}

HttpSource::HttpSource(std::string base_url, std::string origin, HttpOptions options)
    : base_url_(std::move(base_url)), origin_(std::move(origin)), options_(std::move(options)) {}

HttpSource::~HttpSource() = default;

Result<std::unique_ptr<HttpSource>> HttpSource::open(const std::string& base_url,
                                                     HttpOptions options) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("cannot use '" + base_url + "' as a mirror: " + why);
  };
  std::string scheme;
  if (base_url.rfind("http://", 0) == 0) {
    scheme = "http";
  } else if (base_url.rfind("https://", 0) == 0) {
    scheme = "https";
  } else {
    return bad("only http:// and https:// URLs are supported");
  }
  for (char c : base_url) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '?' || c == '#' || c == 0x7f) {
      return bad("spaces, control characters, '?' and '#' are not allowed");
    }
  }
  std::string rest = base_url.substr(scheme.size() + 3);
  std::string authority = rest.substr(0, rest.find('/'));
  if (std::size_t at = authority.rfind('@'); at != std::string::npos) {
    authority = authority.substr(at + 1);
  }
  std::string host = authority;
  std::string port = scheme == "https" ? "443" : "80";
  std::size_t colon = authority.rfind(':');
  std::size_t bracket = authority.rfind(']');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return bad("bad port");
    }
  }
  if (host.empty()) return bad("no host name");
  std::string base = base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::unique_ptr<HttpSource> src(
      new HttpSource(base, scheme + "://" + host + ":" + port, std::move(options)));
  OUTPOST_ASSIGN_OR_RETURN(src->transfer_,
                           CurlTransfer::create(src->options_, &src->stats_, &src->guard_));
  return src;
}

std::string HttpSource::describe() const { return "mirror at " + base_url_; }

void HttpSource::set_validator(const std::string& path, std::string etag) {
  if (etag.empty()) {
    validators_.erase(path);
  } else {
    validators_[path] = std::move(etag);
  }
}

std::string HttpSource::validator(const std::string& path) const {
  auto it = validators_.find(path);
  return it == validators_.end() ? std::string() : it->second;
}

void HttpSource::set_limits(ServerLimits limits) {
  limits.max_ranges = std::clamp<std::uint32_t>(limits.max_ranges, 1, 1024);
  limits_ = limits;
}

void HttpSource::learn(bool ranges, bool multirange) {
  if (limits_.ranges != ranges || limits_.multirange != multirange) {
    limits_.ranges = ranges;
    limits_.multirange = multirange;
    limits_changed_ = true;
  }
}

// After one exchange of get_whole, read_tail or read_prefix: notes a peer's header, and says
// what failed (nullopt: a usable answer, 2xx or 304). `wrong`: the answer's ranges did not
// match what was asked; ranges are off for this server from now on and the request is retried.
std::optional<Failure> HttpSource::settle(const Outcome& o, bool wrong, const std::string& url) {
  if (o.got_head && !o.head.outpost_peer.empty()) peer_ = true;
  if (!wrong) return classify(o, url);
  learn(false, limits_.multirange);
  return Failure{o.aborted, true};
}

Result<Bytes> HttpSource::read_file(const std::string& path, std::uint64_t max_length) {
  Result<std::optional<Bytes>> body = get_whole(path, max_length, false);
  if (!body.ok()) return body.error();
  Bytes out;
  if (body->has_value()) out.swap(**body);  // always: no If-None-Match was sent
  return out;
}

Result<std::optional<Bytes>> HttpSource::read_file_if_changed(const std::string& path,
                                                              std::uint64_t max_length) {
  return get_whole(path, max_length, true);
}

Result<std::optional<Bytes>> HttpSource::get_whole(const std::string& path,
                                                   std::uint64_t max_length, bool conditional) {
  OUTPOST_RETURN_IF_ERROR(check_path(path, describe()));
  const std::string url = base_url_ + "/" + escape_path(path);
  Bytes body;
  std::string resume_with;  // If-Range validator of the response `body` holds the start of
  for (int attempt = 0;; ++attempt) {
    Request req{url, {}, {}};
    if (!body.empty() && !resume_with.empty() && limits_.ranges) {
      req.range = std::to_string(body.size()) + "-";
      req.headers.push_back("If-Range: " + resume_with);
    } else {
      body.clear();
      std::string v = conditional ? validator(path) : std::string();
      if (!v.empty()) req.headers.push_back("If-None-Match: " + v);
    }
    const bool resuming = !req.range.empty();
    bool wrong = false;
    BodySink sink;
    sink.on_head = [&](const ResponseHead& h) -> Status {
      if (h.status < 200 || h.status >= 300) return Status::Ok();
      OUTPOST_RETURN_IF_ERROR(check_not_html(h, url, path));
      std::uint64_t base = 0;
      if (h.status == 206) {
        auto cr = http_internal::parse_content_range(h.content_range);
        if (!resuming || !cr || cr->first != body.size() ||
            (cr->total && cr->last + 1 != *cr->total)) {
          wrong = true;
          return Status::Unavailable(url + ": wrong Content-Range '" + h.content_range +
                                     "' when resuming; starting over without ranges");
        }
        if (cr->total && *cr->total > max_length) return too_long(url, max_length);
        base = body.size();
      } else {
        body.clear();  // a full answer (If-Range did not match, or ranges ignored)
      }
      if (h.content_length && *h.content_length > max_length - base) {
        return too_long(url, max_length);
      }
      resume_with = if_range_validator(h);
      return Status::Ok();
    };
    sink.on_body = [&](ByteView d, bool*) -> Status {
      if (d.size() > max_length - body.size()) return too_long(url, max_length);
      body.insert(body.end(), d.begin(), d.end());
      return Status::Ok();
    };
    Outcome o = transfer_->perform(req, sink);
    std::optional<Failure> f = settle(o, wrong, url);
    if (wrong) {
      body.clear();
      resume_with.clear();
    }
    if (!f) {
      if (o.head.status == 304) {
        if (!conditional || validator(path).empty()) {
          return Status::Unavailable(url + ": unexpected 304 Not Modified; try another mirror");
        }
        if (!o.head.etag.empty()) validators_[path] = o.head.etag;
        return std::optional<Bytes>();
      }
      if (conditional) set_validator(path, o.head.etag);
      return std::optional<Bytes>(std::move(body));
    }
    if (!f->retry || attempt >= options_.retries) return after_attempts(f->status, attempt + 1);
    OUTPOST_RETURN_IF_ERROR(backoff(options_, attempt, f->retry_after_s, rng()));
  }
}

Status HttpSource::read_tail(const std::string& path, std::uint64_t offset, std::uint64_t max_total,
                             const std::function<Status(ByteView piece)>& on_piece,
                             bool* restarted) {
  OUTPOST_RETURN_IF_ERROR(check_path(path, describe()));
  const std::string url = base_url_ + "/" + escape_path(path);
  if (restarted != nullptr) *restarted = false;
  if (offset > max_total) {
    return Status::InvalidArgument("read_tail of " + url + " from " + std::to_string(offset) +
                                   ", past its declared length " + std::to_string(max_total));
  }
  if (offset == max_total) return Status::Ok();
  std::uint64_t pos = offset;  // the next byte on_piece expects
  for (int attempt = 0;; ++attempt) {
    Request req{url, {}, {}};
    if (pos > 0 && limits_.ranges) {
      req.range = std::to_string(pos) + "-";
      std::string v = validator(path);
      if (!v.empty()) req.headers.push_back("If-Range: " + v);
    }
    const bool ranged = !req.range.empty();
    bool wrong = false;
    BodySink sink;
    sink.on_head = [&](const ResponseHead& h) -> Status {
      if (h.status < 200 || h.status >= 300) return Status::Ok();
      OUTPOST_RETURN_IF_ERROR(check_not_html(h, url, path));
      std::uint64_t base = 0;
      if (h.status == 206) {
        auto cr = http_internal::parse_content_range(h.content_range);
        if (!ranged || !cr || cr->first != pos || (cr->total && cr->last + 1 != *cr->total)) {
          wrong = true;
          return Status::Unavailable(url + ": wrong Content-Range '" + h.content_range +
                                     "'; starting over without ranges");
        }
        if (cr->total && *cr->total > max_total) return too_long(url, max_total);
        base = pos;
      } else if (pos != 0) {
        pos = 0;  // the server sent the whole file: the caller starts over
        if (restarted != nullptr) *restarted = true;
      }
      if (h.content_length && *h.content_length > max_total - base) {
        return too_long(url, max_total);
      }
      set_validator(path, if_range_validator(h));
      return Status::Ok();
    };
    sink.on_body = [&](ByteView d, bool*) -> Status {
      if (d.size() > max_total - pos) return too_long(url, max_total);
      OUTPOST_RETURN_IF_ERROR(on_piece(d));
      pos += d.size();
      return Status::Ok();
    };
    Outcome o = transfer_->perform(req, sink);
    std::optional<Failure> f = settle(o, wrong, url);
    if (!f) {
      if (o.head.status == 304) {
        return Status::Unavailable(url + ": unexpected 304 Not Modified; try another mirror");
      }
      return Status::Ok();
    }
    if (!f->retry || attempt >= options_.retries) return after_attempts(f->status, attempt + 1);
    OUTPOST_RETURN_IF_ERROR(backoff(options_, attempt, f->retry_after_s, rng()));
  }
}

Result<Source::Prefix> HttpSource::read_prefix(const std::string& path, std::uint64_t length,
                                               std::uint64_t max_size) {
  OUTPOST_RETURN_IF_ERROR(check_path(path, describe()));
  const std::string url = base_url_ + "/" + escape_path(path);
  length = std::max<std::uint64_t>(length, 1);
  for (int attempt = 0;; ++attempt) {
    Request req{url, {}, {}};
    if (limits_.ranges) req.range = "0-" + std::to_string(length - 1);
    Prefix out;
    std::uint64_t expect = length;  // body bytes kept: the range asked
    std::optional<std::uint64_t> size;
    bool wrong = false;
    BodySink sink;
    sink.on_head = [&](const ResponseHead& h) -> Status {
      if (h.status < 200 || h.status >= 300) return Status::Ok();
      OUTPOST_RETURN_IF_ERROR(check_not_html(h, url, path));
      out.bytes.clear();
      size.reset();
      expect = length;
      // A whole-file answer (Range ignored) is cut once the bytes asked are in; its
      // Content-Length says the size (none: nothing says it, the read fails).
      if (h.status != 206 && h.content_length) {
        if (*h.content_length > max_size) return too_long(url, max_size);
        size = *h.content_length;
        expect = std::min(length, *h.content_length);
      }
      if (h.status == 206) {
        auto cr = http_internal::parse_content_range(h.content_range);
        if (req.range.empty() || !cr || cr->first != 0 || !cr->total || cr->last >= *cr->total ||
            cr->last >= length) {
          wrong = true;
          return Status::Unavailable(url + ": wrong Content-Range '" + h.content_range +
                                     "'; asking again without ranges");
        }
        if (*cr->total > max_size) return too_long(url, max_size);
        size = *cr->total;
        expect = cr->last + 1;
      }
      if (h.status == 206 && h.content_length && *h.content_length > expect) {
        return too_long(url, expect);
      }
      return Status::Ok();
    };
    sink.on_body = [&](ByteView d, bool* stop) -> Status {
      const std::uint64_t take = std::min<std::uint64_t>(d.size(), expect - out.bytes.size());
      out.bytes.insert(out.bytes.end(), d.begin(), d.begin() + static_cast<std::ptrdiff_t>(take));
      if (out.bytes.size() == expect) *stop = true;
      return Status::Ok();
    };
    Outcome o = transfer_->perform(req, sink);
    std::optional<Failure> f = settle(o, wrong, url);
    if (!f) {
      if (o.head.status == 304) {
        return Status::Unavailable(url + ": unexpected 304 Not Modified; try another mirror");
      }
      if (!size) {
        return Status::Unavailable(url + ": the server ignores Range and does not say the " +
                                   "file's length; try another mirror");
      }
      if (out.bytes.size() != expect) {
        return Status::Unavailable(url + ": the answer ended early; will retry later");
      }
      out.size = *size;
      return out;
    }
    if (!f->retry || attempt >= options_.retries) return after_attempts(f->status, attempt + 1);
    OUTPOST_RETURN_IF_ERROR(backoff(options_, attempt, f->retry_after_s, rng()));
  }
}

Result<std::vector<Bytes>> HttpSource::read_ranges(const std::string& path,
                                                   const std::vector<ByteRange>& ranges) {
  OUTPOST_RETURN_IF_ERROR(check_path(path, describe()));
  const std::string url = base_url_ + "/" + escape_path(path);
  for (const ByteRange& r : ranges) {
    if (r.offset + r.length < r.offset) {
      return Status::InvalidArgument("range past the end of any file asked from " + url);
    }
  }
  struct Span {
    Extent e;
    Bytes data;  // e.begin .. e.begin + data.size() received so far
  };
  std::vector<Span> spans;
  std::uint64_t missing = 0;
  for (const Extent& e : http_internal::coalesce(ranges, kCoalesceGap)) {
    spans.push_back({e, {}});
    missing += e.size();
  }
  // Appends whatever of [off, off + d.size()) continues a span; anything else is ignored.
  auto deliver = [&](std::uint64_t off, ByteView d) {
    auto it = std::upper_bound(spans.begin(), spans.end(), off,
                               [](std::uint64_t o, const Span& s) { return o < s.e.end; });
    for (; it != spans.end() && it->e.begin < off + d.size(); ++it) {
      std::uint64_t w = it->e.begin + it->data.size();
      if (w < off || w >= off + d.size() || w >= it->e.end) continue;
      std::uint64_t take = std::min<std::uint64_t>(off + d.size(), it->e.end) - w;
      auto piece = d.subspan(static_cast<std::size_t>(w - off), static_cast<std::size_t>(take));
      it->data.insert(it->data.end(), piece.begin(), piece.end());
      missing -= take;
    }
  };
  enum class Mode { kWhole, kSingle, kMulti };
  int failures = 0;
  const std::size_t max_iterations =
      spans.size() + 2 * static_cast<std::size_t>(std::max(options_.retries, 0)) + 8;
  for (std::size_t iteration = 0; missing > 0; ++iteration) {
    if (iteration >= max_iterations) {
      return Status::Unavailable(url +
                                 ": the server keeps answering only part of the ranges asked; "
                                 "try another mirror");
    }
    std::vector<std::size_t> pending;
    for (std::size_t i = 0; i < spans.size(); ++i) {
      if (spans[i].data.size() < spans[i].e.size()) pending.push_back(i);
    }
    auto rest_of = [&](std::size_t i) {
      return Extent{spans[i].e.begin + spans[i].data.size(), spans[i].e.end};
    };
    // What to ask for in this request.
    Mode mode = Mode::kWhole;
    std::vector<Extent> ask;
    std::string range;
    if (limits_.ranges && limits_.multirange && pending.size() > 1) {
      mode = Mode::kMulti;
      for (std::size_t i : pending) {
        Extent x = rest_of(i);
        std::string part = std::to_string(x.begin) + "-" + std::to_string(x.end - 1);
        if (!ask.empty() && (ask.size() >= limits_.max_ranges ||
                             range.size() + 1 + part.size() > kMaxRangeHeader)) {
          break;
        }
        range += (range.empty() ? "" : ",") + part;
        ask.push_back(x);
      }
      if (ask.size() == 1) mode = Mode::kSingle;
    } else if (limits_.ranges) {
      mode = Mode::kSingle;
      Extent x = rest_of(pending.front());
      for (std::size_t k = 1; k < pending.size(); ++k) {
        const Extent& next = spans[pending[k]].e;
        if (next.begin - x.end > kSingleMergeGap) break;
        x.end = next.end;
      }
      ask.push_back(x);
      range = std::to_string(x.begin) + "-" + std::to_string(x.end - 1);
    }
    std::vector<std::size_t> before(spans.size());
    for (std::size_t i = 0; i < spans.size(); ++i) before[i] = spans[i].data.size();
    const std::uint64_t missing_before = missing;

    Mode answer = mode;
    std::optional<http_internal::MultipartParser> parser;
    std::uint64_t pos = 0;
    std::uint64_t end_pos = 0;
    bool wrong = false;
    BodySink sink;
    sink.on_head = [&](const ResponseHead& h) -> Status {
      if (h.status < 200 || h.status >= 300) return Status::Ok();
      OUTPOST_RETURN_IF_ERROR(check_not_html(h, url, path));
      if (h.status == 200) {
        answer = Mode::kWhole;
        if (h.content_length && *h.content_length > kWholeFileFallbackMax) {
          return Status::Unavailable(url + ": the server ignores Range requests and the file is " +
                                     std::to_string(*h.content_length) +
                                     " bytes, more than outpost reads whole to take ranges "
                                     "out of it; try another mirror");
        }
        if (h.content_length && *h.content_length < spans.back().e.end) {
          return Status::Corruption(url + ": the file is " + std::to_string(*h.content_length) +
                                    " bytes, shorter than the ranges asked: damaged or "
                                    "tampered; try another mirror");
        }
        return Status::Ok();
      }
      if (h.status != 206 || mode == Mode::kWhole) {
        wrong = true;
        return Status::Unavailable(url + ": unexpected HTTP " + std::to_string(h.status) +
                                   " to a range request");
      }
      if (auto boundary = http_internal::multipart_boundary(h.content_type)) {
        answer = Mode::kMulti;
        parser.emplace(*boundary, ask, deliver);
        return Status::Ok();
      }
      // One range for what was asked (the server may merge a multi-range request into one
      // covering range): accepted only when it covers exactly the first to the last byte.
      auto cr = http_internal::parse_content_range(h.content_range);
      if (!cr || cr->first != ask.front().begin || cr->last + 1 != ask.back().end) {
        wrong = true;
        return Status::Unavailable(url + ": wrong Content-Range '" + h.content_range +
                                   "' for bytes " + range);
      }
      answer = Mode::kSingle;
      pos = cr->first;
      end_pos = cr->last + 1;
      return Status::Ok();
    };
    sink.on_body = [&](ByteView d, bool* stop) -> Status {
      if (answer == Mode::kMulti) {
        Status st = parser->feed(d);
        if (!st.ok()) wrong = true;
        return st.With(url);
      }
      const std::uint64_t bound = answer == Mode::kSingle ? end_pos : kWholeFileFallbackMax;
      if (d.size() > bound - pos) {
        if (answer == Mode::kSingle) {
          wrong = true;
          return Status::Unavailable(url + ": a body longer than its Content-Range");
        }
        return Status::Unavailable(url +
                                   ": the server ignores Range requests and the file is "
                                   "larger than outpost reads whole to take ranges out "
                                   "of it; try another mirror");
      }
      deliver(pos, d);
      pos += d.size();
      if (missing == 0) *stop = true;  // every range is in: the rest of the file is waste
      return Status::Ok();
    };
    Outcome o = transfer_->perform(Request{url, range, {}}, sink);
    if (o.got_head && !o.head.outpost_peer.empty()) peer_ = true;
    if (mode != Mode::kWhole && o.got_head && o.head.status == 200) {
      learn(false, limits_.multirange);  // Range ignored
    }
    std::optional<Failure> f;
    if (!wrong && !o.aborted.ok()) {
      f = Failure{o.aborted, false};
    } else if (!wrong) {
      f = classify(o, url);
      if (!f && o.head.status == 304) {
        f = Failure{Status::Unavailable(url + ": unexpected 304 Not Modified to a range request")};
      }
      if (!f && answer == Mode::kMulti && !parser->finished()) {
        wrong = true;  // ended before the closing boundary although the transfer completed
      }
      if (!f && answer == Mode::kSingle && pos != end_pos) wrong = true;
      if (!f && answer == Mode::kWhole && missing > 0 && !o.stopped) {
        return Status::Corruption(url + ": the file ends at byte " + std::to_string(pos) +
                                  ", before the ranges asked: damaged or tampered; try "
                                  "another mirror");
      }
    }
    if (wrong) {
      // Never keep a byte from a wrong answer; ask again more simply.
      for (std::size_t i = 0; i < spans.size(); ++i) spans[i].data.resize(before[i]);
      missing = missing_before;
      if (mode == Mode::kMulti) {
        learn(limits_.ranges, false);
      } else {
        learn(false, limits_.multirange);
      }
      if (++failures > options_.retries + 2) {
        return Status::Unavailable(url + ": wrong answers to range requests; try another mirror");
      }
      continue;
    }
    if (f) {
      if (!f->retry || failures >= options_.retries) {
        return after_attempts(f->status, failures + 1);
      }
      OUTPOST_RETURN_IF_ERROR(backoff(options_, failures, f->retry_after_s, rng()));
      ++failures;
      continue;
    }
    if (missing == missing_before && ++failures > options_.retries) {
      return Status::Unavailable(url +
                                 ": the server sent none of the ranges asked; try "
                                 "another mirror");
    }
  }
  std::vector<Bytes> out;
  out.reserve(ranges.size());
  for (const ByteRange& r : ranges) {
    if (r.length == 0) {
      out.emplace_back();
      continue;
    }
    auto it = std::upper_bound(spans.begin(), spans.end(), r.offset,
                               [](std::uint64_t o, const Span& s) { return o < s.e.end; });
    const std::size_t at = static_cast<std::size_t>(r.offset - it->e.begin);
    out.emplace_back(it->data.begin() + static_cast<std::ptrdiff_t>(at),
                     it->data.begin() + static_cast<std::ptrdiff_t>(at + r.length));
  }
  return out;
}

}  // namespace outpost::sync
