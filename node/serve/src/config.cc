// The only file that includes toml++ (header-only, and slow to compile).
#define TOML_EXCEPTIONS 0
#define TOML_HEADER_ONLY 1
#include "outpost/serve/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "outpost/base/size.h"

namespace outpost::serve {

namespace {

constexpr std::uint64_t kMaxConfigBytes = 1 << 20;

// What a key may hold, for messages and the unknown-key check.
const std::set<std::string> kTopKeys = {"store", "admin_socket", "retain",       "http",
                                        "link",  "discovery",    "subscription", "kiosk"};
const std::set<std::string> kKioskKeys = {"enabled", "index", "site_name", "stale_after_days"};
const std::set<std::string> kHttpKeys = {"listen",
                                         "peer_serving",
                                         "threads",
                                         "max_connections",
                                         "per_ip_connections",
                                         "connection_timeout",
                                         "max_inflight_bytes"};
const std::set<std::string> kLinkKeys = {"rate",        "daily_budget",   "monthly_budget",
                                         "windows",     "check_interval", "backoff_min",
                                         "backoff_max", "link_timeout"};
const std::set<std::string> kDiscoveryKeys = {"dns_sd", "browse"};
const std::set<std::string> kSubscriptionKeys = {"url",     "root_pubkey", "root",
                                                 "mirrors", "bundles",     "priority"};

std::size_t distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  Status error(const toml::node* at, const std::string& key, const std::string& what) const {
    std::string where = path_;
    if (at != nullptr && at->source().begin.line > 0) {
      where += ":" + std::to_string(at->source().begin.line);
    }
    return Status::InvalidArgument(where + ": " + key + ": " + what);
  }

  Status unknown_keys(const toml::table& t, const std::string& prefix,
                      const std::set<std::string>& known) const {
    for (const auto& [k, v] : t) {
      const std::string key(k.str());
      if (known.count(key)) continue;
      std::string best;
      std::size_t best_d = 3;
      for (const auto& c : known) {
        std::size_t d = distance(key, c);
        if (d < best_d) best_d = d, best = c;
      }
      const std::string full = prefix + key;
      return error(
          &v, full,
          "unknown key: " +
              (best.empty() ? std::string("remove it") : "did you mean '" + prefix + best + "'?") +
              " (docs/configuration.md lists every key)");
    }
    return Status::Ok();
  }

  Status string(const toml::table& t, const std::string& prefix, const char* key,
                std::string* out) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_string()) return error(n, prefix + key, "must be a string in double quotes");
    *out = **n->as_string();
    return Status::Ok();
  }

  Status boolean(const toml::table& t, const std::string& prefix, const char* key,
                 bool* out) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_boolean()) return error(n, prefix + key, "must be true or false");
    *out = **n->as_boolean();
    return Status::Ok();
  }

  template <typename T>
  Status integer(const toml::table& t, const std::string& prefix, const char* key, std::int64_t lo,
                 std::int64_t hi, T* out) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_integer()) {
      return error(n, prefix + key,
                   "must be a whole number from " + std::to_string(lo) + " to " +
                       std::to_string(hi) + " (no quotes)");
    }
    std::int64_t v = **n->as_integer();
    if (v < lo || v > hi) {
      return error(n, prefix + key,
                   std::to_string(v) + " is out of range: use " + std::to_string(lo) + " to " +
                       std::to_string(hi));
    }
    *out = static_cast<T>(v);
    return Status::Ok();
  }

  // A size: a string with a unit ("50M") or a plain integer of bytes.
  Status size(const toml::table& t, const std::string& prefix, const char* key,
              std::uint64_t* out) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Status::Ok();
    if (n->is_integer()) {
      std::int64_t v = **n->as_integer();
      if (v < 0) return error(n, prefix + key, "must not be negative (0: no limit)");
      *out = static_cast<std::uint64_t>(v);
      return Status::Ok();
    }
    if (!n->is_string()) {
      return error(n, prefix + key, "must be a size such as \"50M\", \"1G\" or 0");
    }
    auto v = parse_byte_size(**n->as_string());
    if (!v.ok()) return error(n, prefix + key, v.error().message());
    *out = *v;
    return Status::Ok();
  }

  Status strings(const toml::table& t, const std::string& prefix, const char* key,
                 std::vector<std::string>* out) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Status::Ok();
    const toml::array* a = n->as_array();
    if (a == nullptr) {
      return error(n, prefix + key, "must be a list of strings, e.g. [\"a\", \"b\"]");
    }
    out->clear();
    for (const auto& e : *a) {
      if (!e.is_string()) {
        return error(&e, prefix + key, "must be a list of strings, e.g. [\"a\", \"b\"]");
      }
      out->push_back(**e.as_string());
    }
    return Status::Ok();
  }

  const toml::table* table(const toml::table& t, const char* key, Status* st) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return nullptr;
    if (!n->is_table()) {
      *st = error(n, key, std::string("must be a table: write [") + key + "] on its own line");
      return nullptr;
    }
    return n->as_table();
  }

  std::string resolve(const std::string& p) const {
    if (p.empty() || p[0] == '/' || p.find("://") != std::string::npos) return p;
    std::filesystem::path base = std::filesystem::path(path_).parent_path();
    return (base / p).lexically_normal().string();
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

bool valid_listen(const std::string& s) {
  std::size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) return false;
  std::string port = s.substr(colon + 1);
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) return false;
  int p = std::stoi(port);
  return p >= 0 && p <= 65535;
}

bool is_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) != 0;
         });
}

}  // namespace

Result<Window> parse_window(std::string_view text) {
  const auto bad = [&] {
    return Status::InvalidArgument("'" + std::string(text) +
                                   "' is not a window of local time: write \"HH:MM-HH:MM\", "
                                   "e.g. \"22:00-06:00\"");
  };
  auto minutes = [](std::string_view s, int* out) {
    if (s.size() != 5 || s[2] != ':') return false;
    for (std::size_t k : {0u, 1u, 3u, 4u}) {
      if (!std::isdigit(static_cast<unsigned char>(s[k]))) return false;
    }
    int h = (s[0] - '0') * 10 + (s[1] - '0');
    int m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 24 || m > 59 || (h == 24 && m != 0)) return false;
    *out = h * 60 + m;
    return true;
  };
  std::size_t dash = text.find('-');
  if (dash == std::string_view::npos) return bad();
  Window w;
  if (!minutes(text.substr(0, dash), &w.start) || !minutes(text.substr(dash + 1), &w.end)) {
    return bad();
  }
  if (w.start == 1440) w.start = 0;
  if (w.end == 1440) w.end = 0;
  return w;
}

namespace {

// toml++ 3.3 (Debian 12) reaches __builtin_unreachable() in is_non_ascii_horizontal_whitespace
// for most non-ASCII characters where it expects whitespace (U+00A1 to U+0499 and others):
// undefined behaviour, found by the config fuzz target. So the text is first parsed with every
// byte above 0x7f replaced by '`', which TOML allows only in strings and comments, exactly
// where UTF-8 is allowed: when that copy parses, no non-ASCII byte of the text stands where
// toml++ would classify it.
std::string ascii_stand_in(std::string_view text) {
  std::string copy(text);
  for (char& c : copy) {
    if (static_cast<unsigned char>(c) > 0x7f) c = '`';
  }
  return copy;
}

}  // namespace

Result<Config> parse_config(std::string_view text, const std::string& path) {
  const std::string stand_in = ascii_stand_in(text);
  toml::parse_result parsed = toml::parse(stand_in, path);
  if (parsed && stand_in != text) parsed = toml::parse(text, path);
  if (!parsed) {
    const toml::parse_error& e = parsed.error();
    // At a stand-in: name what the file holds there, not '`'.
    const std::string what = stand_in.find('`') != std::string::npos &&
                                     std::string(e.description()).find('`') != std::string::npos
                                 ? "a non-ASCII character outside a quoted string or a comment"
                                 : std::string(e.description());
    return Status::InvalidArgument(path + ":" + std::to_string(e.source().begin.line) +
                                   ": not valid TOML: " + what +
                                   " (fix the syntax; docs/configuration.md has an example)");
  }
  const toml::table& root = parsed.table();
  Reader r(path);
  Config c;
  c.path = path;
  OUTPOST_RETURN_IF_ERROR(r.unknown_keys(root, "", kTopKeys));
  OUTPOST_RETURN_IF_ERROR(r.string(root, "", "store", &c.store));
  if (c.store.empty()) {
    return Status::InvalidArgument(path +
                                   ": store: missing: add store = \"/var/lib/outpost\" "
                                   "(the node's store directory)");
  }
  c.store = r.resolve(c.store);
  OUTPOST_RETURN_IF_ERROR(r.string(root, "", "admin_socket", &c.admin_socket));
  c.admin_socket = c.admin_socket.empty() ? c.store + "/serve.sock" : r.resolve(c.admin_socket);
  OUTPOST_RETURN_IF_ERROR(r.integer(root, "", "retain", 0, 1000, &c.retain));

  Status st;
  if (const toml::table* h = r.table(root, "http", &st)) {
    OUTPOST_RETURN_IF_ERROR(r.unknown_keys(*h, "http.", kHttpKeys));
    OUTPOST_RETURN_IF_ERROR(r.strings(*h, "http.", "listen", &c.http.listen));
    for (const auto& l : c.http.listen) {
      if (!valid_listen(l)) {
        return r.error(h->get("listen"), "http.listen",
                       "'" + l +
                           "' is not an address: write \"HOST:PORT\", e.g. "
                           "\"0.0.0.0:8080\" or \"[::]:8080\"");
      }
    }
    OUTPOST_RETURN_IF_ERROR(r.boolean(*h, "http.", "peer_serving", &c.http.peer_serving));
    OUTPOST_RETURN_IF_ERROR(r.integer(*h, "http.", "threads", 1, 64, &c.http.threads));
    OUTPOST_RETURN_IF_ERROR(
        r.integer(*h, "http.", "max_connections", 1, 65536, &c.http.max_connections));
    OUTPOST_RETURN_IF_ERROR(
        r.integer(*h, "http.", "per_ip_connections", 0, 65536, &c.http.per_ip_connections));
    OUTPOST_RETURN_IF_ERROR(
        r.integer(*h, "http.", "connection_timeout", 1, 3600, &c.http.connection_timeout));
    OUTPOST_RETURN_IF_ERROR(r.size(*h, "http.", "max_inflight_bytes", &c.http.max_inflight_bytes));
    if (c.http.max_inflight_bytes < (1u << 20)) {
      return r.error(h->get("max_inflight_bytes"), "http.max_inflight_bytes",
                     "too small: use at least \"1M\"");
    }
  }
  OUTPOST_RETURN_IF_ERROR(st);
  if (const toml::table* l = r.table(root, "link", &st)) {
    OUTPOST_RETURN_IF_ERROR(r.unknown_keys(*l, "link.", kLinkKeys));
    OUTPOST_RETURN_IF_ERROR(r.size(*l, "link.", "rate", &c.link.rate));
    OUTPOST_RETURN_IF_ERROR(r.size(*l, "link.", "daily_budget", &c.link.daily_budget));
    OUTPOST_RETURN_IF_ERROR(r.size(*l, "link.", "monthly_budget", &c.link.monthly_budget));
    std::vector<std::string> windows;
    OUTPOST_RETURN_IF_ERROR(r.strings(*l, "link.", "windows", &windows));
    for (const auto& w : windows) {
      auto parsed_window = parse_window(w);
      if (!parsed_window.ok()) {
        return r.error(l->get("windows"), "link.windows", parsed_window.error().message());
      }
      c.link.windows.push_back(*parsed_window);
    }
    OUTPOST_RETURN_IF_ERROR(
        r.integer(*l, "link.", "check_interval", 10, 86400 * 31, &c.link.check_interval));
    OUTPOST_RETURN_IF_ERROR(r.integer(*l, "link.", "backoff_min", 1, 86400, &c.link.backoff_min));
    OUTPOST_RETURN_IF_ERROR(
        r.integer(*l, "link.", "backoff_max", 1, 86400 * 7, &c.link.backoff_max));
    OUTPOST_RETURN_IF_ERROR(r.integer(*l, "link.", "link_timeout", 1, 120, &c.link.link_timeout));
    if (c.link.backoff_max < c.link.backoff_min) {
      return r.error(l->get("backoff_max"), "link.backoff_max",
                     "is smaller than link.backoff_min: raise it or lower backoff_min");
    }
  }
  OUTPOST_RETURN_IF_ERROR(st);
  if (const toml::table* d = r.table(root, "discovery", &st)) {
    OUTPOST_RETURN_IF_ERROR(r.unknown_keys(*d, "discovery.", kDiscoveryKeys));
    OUTPOST_RETURN_IF_ERROR(r.boolean(*d, "discovery.", "dns_sd", &c.dns_sd));
    OUTPOST_RETURN_IF_ERROR(r.boolean(*d, "discovery.", "browse", &c.browse));
  }
  OUTPOST_RETURN_IF_ERROR(st);
  if (const toml::table* k = r.table(root, "kiosk", &st)) {
    OUTPOST_RETURN_IF_ERROR(r.unknown_keys(*k, "kiosk.", kKioskKeys));
    OUTPOST_RETURN_IF_ERROR(r.boolean(*k, "kiosk.", "enabled", &c.kiosk.enabled));
    OUTPOST_RETURN_IF_ERROR(r.string(*k, "kiosk.", "index", &c.kiosk.index));
    if (!c.kiosk.index.empty()) c.kiosk.index = r.resolve(c.kiosk.index);
    OUTPOST_RETURN_IF_ERROR(r.string(*k, "kiosk.", "site_name", &c.kiosk.site_name));
    if (c.kiosk.site_name.find_first_not_of(" \t") == std::string::npos) {
      return r.error(k->get("site_name"), "kiosk.site_name",
                     "is empty: give the name visitors see at the top of every page");
    }
    OUTPOST_RETURN_IF_ERROR(
        r.integer(*k, "kiosk.", "stale_after_days", 1, 3650, &c.kiosk.stale_after_days));
  }
  OUTPOST_RETURN_IF_ERROR(st);
  if (const toml::node* subs = root.get("subscription")) {
    const toml::array* a = subs->as_array();
    if (a == nullptr) {
      return r.error(subs, "subscription",
                     "must be a list of tables: write [[subscription]] above each one");
    }
    for (const auto& e : *a) {
      const toml::table* t = e.as_table();
      if (t == nullptr) {
        return r.error(&e, "subscription", "must be a table: write [[subscription]] above it");
      }
      SubscriptionConfig s;
      OUTPOST_RETURN_IF_ERROR(r.unknown_keys(*t, "subscription.", kSubscriptionKeys));
      OUTPOST_RETURN_IF_ERROR(r.string(*t, "subscription.", "url", &s.url));
      OUTPOST_RETURN_IF_ERROR(r.string(*t, "subscription.", "root_pubkey", &s.root_pubkey));
      OUTPOST_RETURN_IF_ERROR(r.string(*t, "subscription.", "root", &s.root_json));
      OUTPOST_RETURN_IF_ERROR(r.strings(*t, "subscription.", "mirrors", &s.mirrors));
      OUTPOST_RETURN_IF_ERROR(r.strings(*t, "subscription.", "bundles", &s.bundles));
      OUTPOST_RETURN_IF_ERROR(r.integer(*t, "subscription.", "priority", 0, 1000000, &s.priority));
      if (s.url.empty()) {
        return r.error(t, "subscription.url",
                       "missing: each [[subscription]] needs url = \"https://...\" or a path");
      }
      s.url = r.resolve(s.url);
      for (auto& m : s.mirrors) m = r.resolve(m);
      if (s.root_pubkey.empty() == s.root_json.empty()) {
        return r.error(t, "subscription.root_pubkey",
                       "give exactly one of root_pubkey = \"HEX\" or root = \"ROOT_JSON\"");
      }
      if (!s.root_pubkey.empty() && !is_hex64(s.root_pubkey)) {
        return r.error(t->get("root_pubkey"), "subscription.root_pubkey",
                       "must be 64 hex digits (what 'outpost keygen --role root' printed)");
      }
      s.root_json = r.resolve(s.root_json);
      c.subscriptions.push_back(std::move(s));
    }
  }
  return c;
}

Result<Config> load_config(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return Status::NotFound("no configuration file at " + path +
                            ": create it (dist/outpost.toml is an example) or pass --config FILE");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::FailedPrecondition("cannot read the configuration file " + path +
                                      ": check its permissions");
  }
  std::string text;
  text.resize(kMaxConfigBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxConfigBytes) {
    return Status::InvalidArgument(path + ": larger than 1 MiB: is this the right file?");
  }
  std::error_code abs_ec;
  const std::string absolute = std::filesystem::absolute(path, abs_ec).lexically_normal().string();
  return parse_config(text, abs_ec ? path : absolute);
}

}  // namespace outpost::serve
