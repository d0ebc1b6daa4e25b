#include "outpost/kiosk/catalog.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "po_data.h"

namespace outpost::kiosk {

namespace {

// One quoted PO string starting at s[0] == '"'; appends its unescaped value to out.
bool unquote(std::string_view s, std::string* out) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (std::size_t i = 1; i + 1 < s.size(); ++i) {
    char c = s[i];
    if (c == '\\' && i + 2 < s.size()) {
      char e = s[++i];
      switch (e) {
        case 'n': *out += '\n'; break;
        case 't': *out += '\t'; break;
        case '"': *out += '"'; break;
        case '\\': *out += '\\'; break;
        default: return false;
      }
    } else {
      *out += c;
    }
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<Catalog> parse_po(std::string_view text, const std::string& language) {
  Catalog c;
  c.language = language;
  struct Entry {
    std::string id, id_plural;
    std::vector<std::string> strs;
    bool fuzzy = false;
    bool any = false;
  } e;
  std::string* current = nullptr;
  std::size_t line_no = 0;
  auto flush = [&] {
    if (e.any) {
      if (e.id.empty()) {  // the header
        std::string header = e.strs.empty() ? "" : e.strs[0];
        std::size_t at = header.find("Language-Name:");
        if (at != std::string::npos) {
          std::size_t end = header.find('\n', at);
          c.name = std::string(trim(header.substr(at + 14, end - at - 14)));
        }
        c.rtl = header.find("Text-Direction: rtl") != std::string::npos;
      } else if (!e.fuzzy) {
        bool all = !e.strs.empty() && std::all_of(e.strs.begin(), e.strs.end(),
                                                  [](const std::string& s) { return !s.empty(); });
        if (all) c.messages[e.id] = e.strs;
      }
    }
    e = Entry{};
    current = nullptr;
  };
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = trim(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++line_no;
    auto bad = [&](const std::string& what) {
      return Status::InvalidArgument(language + ".po:" + std::to_string(line_no) + ": " + what +
                                     ": fix the catalog (msgfmt --check shows the same)");
    };
    if (line.empty()) {
      current = nullptr;
      continue;
    }
    if (line[0] == '#') {
      if (line.rfind("#,", 0) == 0 && line.find("fuzzy") != std::string_view::npos) {
        if (e.any) flush();
        e.fuzzy = true;
      }
      continue;
    }
    if (line[0] == '"') {
      if (current == nullptr || !unquote(line, current)) return bad("a string out of place");
      continue;
    }
    std::size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return bad("expected a keyword and a string");
    std::string_view key = line.substr(0, sp);
    std::string_view value = trim(line.substr(sp + 1));
    if (key == "msgctxt") {
      if (e.any) flush();
      e.any = true;
      current = nullptr;  // contexts are not used by the kiosk
      continue;
    }
    if (key == "msgid") {
      if (e.any && (!e.strs.empty() || !e.id.empty())) flush();
      e.any = true;
      current = &e.id;
    } else if (key == "msgid_plural") {
      current = &e.id_plural;
    } else if (key == "msgstr") {
      e.strs.emplace_back();
      current = &e.strs.back();
    } else if (key.rfind("msgstr[", 0) == 0 && key.back() == ']') {
      std::size_t n = std::strtoul(std::string(key.substr(7)).c_str(), nullptr, 10);
      if (n != e.strs.size() || n > 8) return bad("plural forms out of order");
      e.strs.emplace_back();
      current = &e.strs.back();
    } else {
      return bad("unknown keyword '" + std::string(key) + "'");
    }
    if (!unquote(value, current)) return bad("a malformed string");
  }
  flush();
  return c;
}

const std::vector<std::string>& languages() {
  static const std::vector<std::string> kLanguages = {"en", "fr", "ar"};
  return kLanguages;
}

const Catalog& catalog(std::string_view language) {
  static const std::vector<Catalog> kCatalogs = [] {
    std::vector<Catalog> out;
    const std::string_view texts[] = {kPoEn, kPoFr, kPoAr};
    for (std::size_t i = 0; i < languages().size(); ++i) {
      auto c = parse_po(texts[i], languages()[i]);
      // The catalogs are checked by the tests; a broken one falls back to the msgids.
      out.push_back(c.ok() ? std::move(c).value() : Catalog{languages()[i], false, "", {}});
    }
    return out;
  }();
  for (const auto& c : kCatalogs) {
    if (c.language == language) return c;
  }
  return kCatalogs[0];
}

std::string negotiate(std::string_view header) {
  std::string best = "en";
  double best_q = -1;
  std::size_t pos = 0;
  while (pos < header.size()) {
    std::size_t comma = header.find(',', pos);
    if (comma == std::string_view::npos) comma = header.size();
    std::string_view item = trim(header.substr(pos, comma - pos));
    pos = comma + 1;
    double q = 1.0;
    std::size_t semi = item.find(';');
    std::string_view tag = trim(item.substr(0, semi));
    if (semi != std::string_view::npos) {
      std::string_view params = item.substr(semi + 1);
      std::size_t qa = params.find("q=");
      if (qa != std::string_view::npos) {
        q = std::strtod(std::string(params.substr(qa + 2)).c_str(), nullptr);
      }
    }
    std::string primary;
    for (char ch : tag.substr(0, tag.find('-'))) {
      primary += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    if (q <= 0) continue;
    for (const auto& l : languages()) {
      if (l == primary && q > best_q) best = l, best_q = q;
    }
  }
  return best;
}

std::size_t plural_index(std::string_view language, std::uint64_t n) {
  if (language == "fr") return n > 1 ? 1 : 0;
  if (language == "ar") {
    // Plural-Forms: nplurals=6; plural=n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : n%100>=3 &&
    // n%100<=10 ? 3 : n%100>=11 ? 4 : 5;
    if (n == 0) return 0;
    if (n == 1) return 1;
    if (n == 2) return 2;
    if (n % 100 >= 3 && n % 100 <= 10) return 3;
    if (n % 100 >= 11) return 4;
    return 5;
  }
  return n == 1 ? 0 : 1;
}

std::string Messages::operator()(std::string_view msgid) const {
  auto it = c_->messages.find(msgid);
  if (it == c_->messages.end() || it->second.empty()) return std::string(msgid);
  return it->second[0];
}

std::string Messages::plural(std::string_view msgid, std::string_view msgid_plural,
                             std::uint64_t n) const {
  std::string form;
  auto it = c_->messages.find(msgid);
  const std::size_t k = plural_index(c_->language, n);
  if (it != c_->messages.end() && k < it->second.size()) {
    form = it->second[k];
  } else {
    form = std::string(plural_index("en", n) == 0 ? msgid : msgid_plural);
  }
  return fill(form, {{"count", std::to_string(n)}});
}

std::string fill(std::string s, const std::vector<std::pair<std::string, std::string>>& values) {
  for (const auto& [name, value] : values) {
    const std::string key = "{" + name + "}";
    std::size_t at = 0;
    while ((at = s.find(key, at)) != std::string::npos) {
      s.replace(at, key.size(), value);
      at += value.size();
    }
  }
  return s;
}

}  // namespace outpost::kiosk
