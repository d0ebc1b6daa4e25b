// The kiosk's interface words, from gettext-style catalogs (node/kiosk/po/*.po, compiled into
// the binary; translators edit them with any PO editor). Parsed by our own small loader: no
// dependency on gettext's global locale, so one process serves every language at once.
// Placeholders are named ("{count}", python-brace-format); plural forms follow each
// language's rule, built in (en, fr: two forms; ar: six).
// Thread-safety: catalogs are immutable after first use; every function is thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "outpost/base/status.h"

namespace outpost::kiosk {

struct Catalog {
  std::string language;  // "en"
  bool rtl = false;
  std::string name;  // the language's own name ("Français"), from the header "Language-Name"
  // msgid -> msgstr forms ([0] only without a plural). Fuzzy and empty entries are left out.
  std::map<std::string, std::vector<std::string>, std::less<>> messages;
};

// Parses PO text. kInvalidArgument naming the line for what does not parse.
Result<Catalog> parse_po(std::string_view text, const std::string& language);

// Languages with a built-in catalog, English first.
const std::vector<std::string>& languages();
// The built-in catalog of a language (English for an unknown one).
const Catalog& catalog(std::string_view language);
// The best built-in language for an Accept-Language header (q-values honoured, "fr-CA"
// matches "fr"); "en" when nothing matches.
std::string negotiate(std::string_view accept_language);
// Index of the plural form for n in a language (0 for the singular in English).
std::size_t plural_index(std::string_view language, std::uint64_t n);

// A catalog bound to its language, for one page.
class Messages {
 public:
  explicit Messages(const Catalog& c) : c_(&c) {}
  const std::string& lang() const { return c_->language; }
  bool rtl() const { return c_->rtl; }
  // The translation of msgid, or msgid itself.
  std::string operator()(std::string_view msgid) const;
  // The form for n, with "{count}" replaced by n.
  std::string plural(std::string_view msgid, std::string_view msgid_plural, std::uint64_t n) const;

 private:
  const Catalog* c_;
};

// s with each "{name}" replaced by its value (values are inserted as given: escape first).
std::string fill(std::string s, const std::vector<std::pair<std::string, std::string>>& values);

}  // namespace outpost::kiosk
