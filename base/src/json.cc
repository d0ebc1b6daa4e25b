#include "outpost/base/json.h"

#include <algorithm>
#include <cstdio>
#include <limits>

namespace outpost {

namespace {

auto key_less = [](const Json::Member& m, std::string_view key) {
  return std::string_view(m.first) < key;
};

}  // namespace

Json Json::object_from(Object members) {
  std::sort(members.begin(), members.end(),
            [](const Member& a, const Member& b) { return a.first < b.first; });
  Json j;
  j.type_ = Type::kObject;
  j.o_ = std::move(members);
  return j;
}

const Json* Json::find(std::string_view key) const {
  if (type_ != Type::kObject) return nullptr;
  auto it = std::lower_bound(o_.begin(), o_.end(), key, key_less);
  if (it == o_.end() || it->first != key) return nullptr;
  return &it->second;
}

Json& Json::set(std::string_view key, Json value) {
  if (type_ == Type::kNull) type_ = Type::kObject;
  assert(type_ == Type::kObject);
  auto it = std::lower_bound(o_.begin(), o_.end(), key, key_less);
  if (it != o_.end() && it->first == key) {
    it->second = std::move(value);
    return it->second;
  }
  it = o_.insert(it, Member(std::string(key), std::move(value)));
  return it->second;
}

bool Json::erase(std::string_view key) {
  if (type_ != Type::kObject) return false;
  auto it = std::lower_bound(o_.begin(), o_.end(), key, key_less);
  if (it == o_.end() || it->first != key) return false;
  o_.erase(it);
  return true;
}

Json& Json::push(Json value) {
  if (type_ == Type::kNull) type_ = Type::kArray;
  assert(type_ == Type::kArray);
  a_.push_back(std::move(value));
  return a_.back();
}

std::size_t Json::size() const {
  if (type_ == Type::kArray) return a_.size();
  if (type_ == Type::kObject) return o_.size();
  return 0;
}

Result<std::int64_t> Json::get_int(std::string_view key) const {
  const Json* v = find(key);
  if (v == nullptr) return Status::Corruption("field '" + std::string(key) + "' is missing");
  if (!v->is_int()) {
    return Status::Corruption("field '" + std::string(key) + "': expected an integer");
  }
  return v->as_int();
}

Result<std::string> Json::get_string(std::string_view key) const {
  const Json* v = find(key);
  if (v == nullptr) return Status::Corruption("field '" + std::string(key) + "' is missing");
  if (!v->is_string()) {
    return Status::Corruption("field '" + std::string(key) + "': expected a string");
  }
  return v->as_string();
}

Result<const Json*> Json::get_object(std::string_view key) const {
  const Json* v = find(key);
  if (v == nullptr) return Status::Corruption("field '" + std::string(key) + "' is missing");
  if (!v->is_object()) {
    return Status::Corruption("field '" + std::string(key) + "': expected an object");
  }
  return v;
}

Result<const Json*> Json::get_array(std::string_view key) const {
  const Json* v = find(key);
  if (v == nullptr) return Status::Corruption("field '" + std::string(key) + "' is missing");
  if (!v->is_array()) {
    return Status::Corruption("field '" + std::string(key) + "': expected an array");
  }
  return v;
}

bool operator==(const Json& a, const Json& b) {
  if (a.type_ != b.type_) return false;
  switch (a.type_) {
    case Json::Type::kNull: return true;
    case Json::Type::kBool: return a.b_ == b.b_;
    case Json::Type::kInt: return a.i_ == b.i_;
    case Json::Type::kString: return a.s_ == b.s_;
    case Json::Type::kArray: return a.a_ == b.a_;
    case Json::Type::kObject: return a.o_ == b.o_;
  }
  return false;
}

// ---- writers ----

namespace {

void write_canonical_string(std::string& out, const std::string& s) {
  out.push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

void write_escaped_string(std::string& out, const std::string& s) {
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

void newline(std::string& out, int indent, int level) {
  if (indent <= 0) return;
  out.push_back('\n');
  out.append(static_cast<std::size_t>(indent * level), ' ');
}

void write(std::string& out, const Json& j, bool canonical, int indent, int level) {
  switch (j.type()) {
    case Json::Type::kNull: out += "null"; return;
    case Json::Type::kBool: out += j.as_bool() ? "true" : "false"; return;
    case Json::Type::kInt: out += std::to_string(j.as_int()); return;
    case Json::Type::kString:
      if (canonical) {
        write_canonical_string(out, j.as_string());
      } else {
        write_escaped_string(out, j.as_string());
      }
      return;
    case Json::Type::kArray: {
      out.push_back('[');
      bool first = true;
      for (const Json& v : j.as_array()) {
        if (!first) out.push_back(',');
        first = false;
        newline(out, indent, level + 1);
        write(out, v, canonical, indent, level + 1);
      }
      if (!j.as_array().empty()) newline(out, indent, level);
      out.push_back(']');
      return;
    }
    case Json::Type::kObject: {
      out.push_back('{');
      bool first = true;
      for (const auto& [k, v] : j.as_object()) {
        if (!first) out.push_back(',');
        first = false;
        newline(out, indent, level + 1);
        if (canonical) {
          write_canonical_string(out, k);
        } else {
          write_escaped_string(out, k);
        }
        out.push_back(':');
        if (indent > 0) out.push_back(' ');
        write(out, v, canonical, indent, level + 1);
      }
      if (!j.as_object().empty()) newline(out, indent, level);
      out.push_back('}');
      return;
    }
  }
}

}  // namespace

std::string Json::canonical() const {
  std::string out;
  write(out, *this, true, 0, 0);
  return out;
}

std::string Json::dump(int indent) const {
  std::string out;
  write(out, *this, false, indent, 0);
  return out;
}

// ---- parser ----

namespace {

class Parser {
 public:
  Parser(std::string_view text, const JsonLimits& limits) : t_(text), limits_(limits) {}

  Result<Json> parse_document() {
    if (t_.size() > limits_.max_bytes) {
      return Status::Corruption("JSON document of " + std::to_string(t_.size()) +
                                " bytes is larger than the limit of " +
                                std::to_string(limits_.max_bytes));
    }
    skip_ws();
    Json value;
    if (!parse_value(value, 0)) return error_status();
    skip_ws();
    if (p_ != t_.size()) {
      fail("unexpected data after the document");
      return error_status();
    }
    return value;
  }

 private:
  Status error_status() const {
    return Status::Corruption("invalid JSON at byte " + std::to_string(err_pos_) + ": " + err_);
  }
  bool fail(std::string msg) {
    if (err_.empty()) {
      err_ = std::move(msg);
      err_pos_ = p_;
    }
    return false;
  }
  void skip_ws() {
    while (p_ < t_.size() &&
           (t_[p_] == ' ' || t_[p_] == '\t' || t_[p_] == '\n' || t_[p_] == '\r')) {
      ++p_;
    }
  }
  bool literal(std::string_view word) {
    if (t_.substr(p_, word.size()) != word) return fail("invalid literal");
    p_ += word.size();
    return true;
  }

  bool parse_value(Json& out, int depth) {
    if (++values_ > limits_.max_values) return fail("too many values");
    if (p_ >= t_.size()) return fail("unexpected end of input");
    char c = t_[p_];
    switch (c) {
      case 'n':
        if (!literal("null")) return false;
        out = Json();
        return true;
      case 't':
        if (!literal("true")) return false;
        out = Json(true);
        return true;
      case 'f':
        if (!literal("false")) return false;
        out = Json(false);
        return true;
      case '"': {
        std::string s;
        if (!parse_string(s)) return false;
        out = Json(std::move(s));
        return true;
      }
      case '[': return parse_array(out, depth + 1);
      case '{': return parse_object(out, depth + 1);
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(out);
        return fail(std::string("unexpected character '") + c + "'");
    }
  }

  bool parse_number(Json& out) {
    std::size_t start = p_;
    bool negative = false;
    if (t_[p_] == '-') {
      negative = true;
      ++p_;
    }
    if (p_ >= t_.size() || t_[p_] < '0' || t_[p_] > '9') return fail("invalid number");
    if (t_[p_] == '0' && p_ + 1 < t_.size() && t_[p_ + 1] >= '0' && t_[p_ + 1] <= '9') {
      return fail("numbers must not have leading zeros");
    }
    // Accumulate as a negative value so INT64_MIN parses.
    std::int64_t v = 0;
    while (p_ < t_.size() && t_[p_] >= '0' && t_[p_] <= '9') {
      int d = t_[p_] - '0';
      if (v < (std::numeric_limits<std::int64_t>::min() + d) / 10) {
        return fail("integer out of range");
      }
      v = v * 10 - d;
      ++p_;
    }
    if (p_ < t_.size() && (t_[p_] == '.' || t_[p_] == 'e' || t_[p_] == 'E')) {
      p_ = start;
      return fail("numbers with fractions or exponents are not allowed (canonical JSON)");
    }
    if (!negative) {
      if (v == std::numeric_limits<std::int64_t>::min()) return fail("integer out of range");
      v = -v;
    }
    out = Json(v);
    return true;
  }

  bool parse_hex4(std::uint32_t& cp) {
    if (p_ + 4 > t_.size()) return fail("truncated \\u escape");
    cp = 0;
    for (int i = 0; i < 4; ++i) {
      char c = t_[p_++];
      cp <<= 4;
      if (c >= '0' && c <= '9')
        cp |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        cp |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        cp |= static_cast<std::uint32_t>(c - 'A' + 10);
      else
        return fail("invalid \\u escape");
    }
    return true;
  }

  static void append_utf8(std::string& s, std::uint32_t cp) {
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // Validates one UTF-8 sequence starting at p_ and appends it.
  bool take_utf8(std::string& s) {
    auto b0 = static_cast<unsigned char>(t_[p_]);
    int len;
    std::uint32_t cp;
    if (b0 < 0x80) {
      len = 1;
      cp = b0;
    } else if ((b0 & 0xE0) == 0xC0) {
      len = 2;
      cp = b0 & 0x1Fu;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3;
      cp = b0 & 0x0Fu;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4;
      cp = b0 & 0x07u;
    } else
      return fail("invalid UTF-8");
    if (p_ + static_cast<std::size_t>(len) > t_.size()) return fail("invalid UTF-8");
    for (int i = 1; i < len; ++i) {
      auto b = static_cast<unsigned char>(t_[p_ + static_cast<std::size_t>(i)]);
      if ((b & 0xC0) != 0x80) return fail("invalid UTF-8");
      cp = cp << 6 | (b & 0x3Fu);
    }
    static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return fail("invalid UTF-8");
    }
    s.append(t_.substr(p_, static_cast<std::size_t>(len)));
    p_ += static_cast<std::size_t>(len);
    return true;
  }

  bool parse_string(std::string& s) {
    ++p_;  // opening quote
    while (true) {
      if (p_ >= t_.size()) return fail("unterminated string");
      if (s.size() > limits_.max_string) return fail("string longer than the limit");
      char c = t_[p_];
      if (c == '"') {
        ++p_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) {
        // Canonical JSON (OLPC) writes control characters raw; accept them as-is.
        s.push_back(c);
        ++p_;
        continue;
      }
      if (c != '\\') {
        if (!take_utf8(s)) return false;
        continue;
      }
      ++p_;
      if (p_ >= t_.size()) return fail("unterminated string");
      char e = t_[p_++];
      switch (e) {
        case '"': s.push_back('"'); break;
        case '\\': s.push_back('\\'); break;
        case '/': s.push_back('/'); break;
        case 'b': s.push_back('\b'); break;
        case 'f': s.push_back('\f'); break;
        case 'n': s.push_back('\n'); break;
        case 'r': s.push_back('\r'); break;
        case 't': s.push_back('\t'); break;
        case 'u': {
          std::uint32_t cp;
          if (!parse_hex4(cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t lo;
            if (t_.substr(p_, 2) != "\\u") return fail("unpaired surrogate");
            p_ += 2;
            if (!parse_hex4(lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return fail("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail("unpaired surrogate");
          }
          append_utf8(s, cp);
          break;
        }
        default: return fail("invalid escape");
      }
    }
  }

  bool parse_array(Json& out, int depth) {
    if (depth > limits_.max_depth) return fail("nesting deeper than the limit");
    ++p_;
    out = Json::array();
    skip_ws();
    if (p_ < t_.size() && t_[p_] == ']') {
      ++p_;
      return true;
    }
    while (true) {
      skip_ws();
      Json v;
      if (!parse_value(v, depth)) return false;
      out.as_array().push_back(std::move(v));
      skip_ws();
      if (p_ >= t_.size()) return fail("unterminated array");
      if (t_[p_] == ',') {
        ++p_;
        continue;
      }
      if (t_[p_] == ']') {
        ++p_;
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

  bool parse_object(Json& out, int depth) {
    if (depth > limits_.max_depth) return fail("nesting deeper than the limit");
    std::size_t object_pos = p_;
    ++p_;
    Json::Object members;
    skip_ws();
    if (p_ < t_.size() && t_[p_] == '}') {
      ++p_;
      out = Json::object();
      return true;
    }
    while (true) {
      skip_ws();
      if (p_ >= t_.size() || t_[p_] != '"') return fail("expected a string key");
      std::string key;
      if (!parse_string(key)) return false;
      skip_ws();
      if (p_ >= t_.size() || t_[p_] != ':') return fail("expected ':'");
      ++p_;
      skip_ws();
      Json v;
      if (!parse_value(v, depth)) return false;
      members.emplace_back(std::move(key), std::move(v));
      skip_ws();
      if (p_ >= t_.size()) return fail("unterminated object");
      if (t_[p_] == ',') {
        ++p_;
        continue;
      }
      if (t_[p_] == '}') {
        ++p_;
        break;
      }
      return fail("expected ',' or '}'");
    }
    // Sorting once keeps large objects (a snapshot of 10,000 bundles) linearithmic.
    out = Json::object_from(std::move(members));
    const auto& sorted = out.as_object();
    for (std::size_t i = 1; i < sorted.size(); ++i) {
      if (sorted[i].first == sorted[i - 1].first) {
        p_ = object_pos;
        return fail("duplicate key \"" + sorted[i].first + "\" in object");
      }
    }
    return true;
  }

  std::string_view t_;
  const JsonLimits& limits_;
  std::size_t p_ = 0;
  std::size_t values_ = 0;
  std::string err_;
  std::size_t err_pos_ = 0;
};

}  // namespace

Result<Json> parse_json(std::string_view text, const JsonLimits& limits) {
  return Parser(text, limits).parse_document();
}

}  // namespace outpost
