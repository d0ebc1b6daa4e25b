// The pure pieces of request handling that take untrusted strings, exposed for the fuzz target
// fuzz/targets/http_request.cc (docs/SECURITY.md, "Fuzzing"); not an API. parse_range is
// public in outpost/serve/http_server.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "outpost/crypto/hash.h"

namespace outpost::serve::internal {

// Decodes %-escapes in place (libmicrohttpd's unescape callback); returns the new length. A
// malformed escape or an encoded NUL rewrites s to a marker that check_path refuses.
std::size_t unescape_url(char* s);
// Why a decoded URL path is refused: {400 or 414, reason}; {0, ""} when it is fine.
std::pair<int, std::string> check_path(const std::string& path);
// GET <id>/pieces: chunks= and patches= as comma-separated 64-hex digests; false on any
// malformed one.
bool parse_digests(const std::string& list, std::vector<crypto::Digest>* out);
// GET <id>/pieces?bundle=&from=&to=: a version number, 1 to 12 decimal digits, above 0.
bool parse_version_arg(const std::string& text, std::uint64_t* out);

}  // namespace outpost::serve::internal
