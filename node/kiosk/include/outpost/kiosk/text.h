// Small text helpers of the kiosk: HTML escaping, UTF-8 repair, URL encoding. Pure functions,
// thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace outpost::kiosk {

// Escapes & < > " ' for HTML text and attribute values (quoted with ").
std::string escape_html(std::string_view text);
// The text with every invalid UTF-8 sequence (and NUL) replaced by U+FFFD.
std::string valid_utf8(std::string_view text);
// At most max_bytes of text, cut before a UTF-8 sequence that would not fit whole.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes);
// Percent-encodes everything but unreserved characters (RFC 3986), for query values and paths
// (keep_slash: '/' stays, for bundle names in paths).
std::string url_encode(std::string_view text, bool keep_slash = false);

}  // namespace outpost::kiosk
