// Rank patterns of a subscription (docs/sync.md, "Priorities"): which bundles a sync plans
// first. Matching uses only the bundle's name and the kind its signed manifest declares.
#include <string>

#include "outpost/node/node.h"
#include "outpost/packaging/manifest.h"

namespace outpost::node {

namespace {

constexpr std::string_view kKindPrefix = "kind:";
constexpr std::string_view kUnderSuffix = "/*";

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// The name itself, or a name under it ("un/ga" holds "un/ga/x", not "un/gab").
bool at_or_under(std::string_view name, std::string_view prefix) {
  return name == prefix ||
         (name.size() > prefix.size() && starts_with(name, prefix) && name[prefix.size()] == '/');
}

bool matches(std::string_view pattern, std::string_view bundle, std::string_view kind) {
  if (starts_with(pattern, kKindPrefix)) return pattern.substr(kKindPrefix.size()) == kind;
  if (ends_with(pattern, kUnderSuffix)) {
    std::string_view prefix = pattern.substr(0, pattern.size() - kUnderSuffix.size());
    return bundle.size() > prefix.size() + 1 && at_or_under(bundle, prefix);
  }
  return at_or_under(bundle, pattern);
}

}  // namespace

Status check_rank_pattern(std::string_view pattern) {
  const std::string shown = "rank pattern '" + std::string(pattern.substr(0, 200)) + "'";
  const std::string accepted =
      ": use a bundle name prefix (un/ga/*), a bundle name (un/ga/A-RES-75-202) or a kind "
      "(kind:resolution, kind:indicator, kind:generic)";
  if (pattern.empty()) return Status::InvalidArgument("a rank pattern is empty" + accepted);
  if (starts_with(pattern, kKindPrefix)) {
    if (!packaging::validate_kind(pattern.substr(kKindPrefix.size())).ok()) {
      return Status::InvalidArgument(shown + ": unknown kind" + accepted);
    }
    return Status::Ok();
  }
  std::string_view prefix = pattern;
  if (ends_with(prefix, kUnderSuffix)) prefix.remove_suffix(kUnderSuffix.size());
  if (prefix.find('*') != std::string_view::npos || prefix.find('?') != std::string_view::npos ||
      prefix.find('[') != std::string_view::npos) {
    return Status::InvalidArgument(shown + ": a '*' may only end it, after a '/'" + accepted);
  }
  if (Status s = packaging::validate_bundle_prefix(prefix); !s.ok()) {
    return Status::InvalidArgument(shown + ": " + s.message() + accepted);
  }
  return Status::Ok();
}

std::uint32_t bundle_rank(const std::vector<std::string>& patterns, std::string_view bundle,
                          std::string_view kind) {
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    if (matches(patterns[i], bundle, kind)) return static_cast<std::uint32_t>(i + 1);
  }
  return 0;
}

}  // namespace outpost::node
