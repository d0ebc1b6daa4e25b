// The daemon's HTTP request handling (node/serve): the pure functions that take what a client
// sends, before any handler runs. The input is four lines:
//   1. a raw URL path, as libmicrohttpd passes it to the unescape callback, then check_path;
//   2. a Range header value (parse_range, against several totals and an unknown total);
//   3. the chunks= / patches= value of GET <id>/pieces (parse_digests);
//   4. the from= / to= value of a patch on demand (parse_version_arg).
// Properties: a path check_path accepts starts with '/', holds no NUL, no control character,
// no backslash and no "." or ".." segment, and is at most kMaxPathBytes; a refusal is 400 or
// 414 with a reason. Ranges: every range lies in the resource (first <= last < total), there
// are at most kMaxRanges, and together they cover at most twice the total (64 MiB when it is
// unknown); every other outcome leaves none. Digests: accepted lists are exactly comma-separated
// 64-hex digests. Versions: 1 to 12 digits, above 0.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz.h"
#include "node/serve/src/http_parse.h"
#include "outpost/crypto/hash.h"
#include "outpost/serve/http_server.h"

namespace {

namespace sv = outpost::serve;

// The next line of the input (without its '\n'); the rest stays in `in`.
std::string_view next_line(std::string_view& in) {
  const std::size_t nl = in.find('\n');
  const std::string_view line = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  return line;
}

void check_url(std::string_view raw) {
  std::string s(raw);
  s.push_back('\0');  // libmicrohttpd passes a NUL-terminated string
  const std::size_t before = std::string_view(s.c_str()).size();
  const std::size_t n = sv::internal::unescape_url(s.data());
  FUZZ_CHECK(n <= before);
  const std::string path(s.c_str());
  FUZZ_CHECK(path.size() == n);
  const auto [code, why] = sv::internal::check_path(path);
  if (code != 0) {
    FUZZ_CHECK(code == 400 || code == 414);
    FUZZ_CHECK(!why.empty());
    return;
  }
  FUZZ_CHECK(!path.empty() && path[0] == '/' && path.size() <= sv::kMaxPathBytes);
  for (char c : path) {
    FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f && c != '\\');
  }
  const std::string wrapped = path + "/";
  FUZZ_CHECK(wrapped.find("/./") == std::string::npos);
  FUZZ_CHECK(wrapped.find("/../") == std::string::npos);
}

void check_range(std::string_view header, std::uint64_t total, bool unknown_total) {
  std::vector<sv::RangeSpec> ranges;
  const sv::RangeOutcome outcome = sv::parse_range(header, total, unknown_total, &ranges);
  if (outcome != sv::RangeOutcome::kRanges) {
    FUZZ_CHECK(outcome == sv::RangeOutcome::kUnsatisfiable || outcome == sv::RangeOutcome::kNone);
    FUZZ_CHECK(ranges.empty());
    return;
  }
  FUZZ_CHECK(!ranges.empty() && ranges.size() <= sv::kMaxRanges);
  const std::uint64_t cap =
      unknown_total ? (std::uint64_t{64} << 20) : (total > UINT64_MAX / 2 ? UINT64_MAX : total * 2);
  std::uint64_t sum = 0;  // checked against cap without overflowing
  for (const sv::RangeSpec& r : ranges) {
    FUZZ_CHECK(r.first <= r.last);
    if (!unknown_total) FUZZ_CHECK(r.last < total);
    FUZZ_CHECK(r.last - r.first < cap);
    const std::uint64_t length = r.last - r.first + 1;
    FUZZ_CHECK(sum <= cap - length);
    sum += length;
  }
}

void check_digests(std::string_view list) {
  std::vector<outpost::crypto::Digest> digests;
  if (!sv::internal::parse_digests(std::string(list), &digests)) return;
  // Accepted: exactly the comma-separated digests, each the 64 hex digits it was written as
  // (one trailing comma is tolerated: "HEX," names one digest).
  std::string rebuilt;
  for (const auto& d : digests) {
    if (!rebuilt.empty()) rebuilt += ',';
    rebuilt += outpost::crypto::hex(d);
  }
  std::string lowered(list);
  if (!lowered.empty() && lowered.back() == ',') lowered.pop_back();
  for (char& c : lowered) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  }
  FUZZ_CHECK(rebuilt == lowered);
}

void check_version(std::string_view text) {
  std::uint64_t v = 0;
  if (!sv::internal::parse_version_arg(std::string(text), &v)) return;
  FUZZ_CHECK(v > 0 && !text.empty() && text.size() <= 12);
  FUZZ_CHECK(std::to_string(v) == text.substr(text.find_first_not_of('0')));
}

}  // namespace

OUTPOST_FUZZ_TARGET(http_request) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  check_url(next_line(in));
  const std::string_view range = next_line(in);
  for (std::uint64_t total : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{4096},
                              std::uint64_t{1} << 40, UINT64_MAX}) {
    check_range(range, total, false);
  }
  check_range(range, 0, true);
  check_digests(next_line(in));
  check_version(next_line(in));
  return 0;
}
