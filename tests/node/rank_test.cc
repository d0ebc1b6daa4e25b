// Rank patterns (docs/sync.md, "Priorities"): what each form matches, and what is refused.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "outpost/node/node.h"

using outpost::node::bundle_rank;
using outpost::node::check_rank_pattern;

TEST_CASE("a rank pattern is a name prefix with /*, a name, or kind:KIND", "[node][rank]") {
  for (const char* ok : {"un/ga/*", "un/*", "un/ga", "un/ga/A-RES-75-202", "kind:resolution",
                         "kind:indicator", "kind:generic"}) {
    INFO(ok);
    CHECK(check_rank_pattern(ok).ok());
  }
  for (const char* bad :
       {"", "*", "un/*/x", "un/ga*", "un/ga/**", "un//ga", "/un/ga", "un/ga/", "../un/*", "un/g?",
        "kind:", "kind:spreadsheet", "Kind:indicator x", "un ga"}) {
    INFO("'" << bad << "'");
    const auto s = check_rank_pattern(bad);
    CHECK(s.code() == outpost::Code::kInvalidArgument);
    CHECK(s.message().find("kind:indicator") != std::string::npos);  // says what is accepted
  }
}

TEST_CASE("a bundle takes the rank of the first pattern that matches it, 0 when none does",
          "[node][rank]") {
  const std::vector<std::string> p = {"un/ga/*", "kind:indicator", "itu"};
  CHECK(bundle_rank(p, "un/ga/A-RES-75-202", "resolution") == 1);
  CHECK(bundle_rank(p, "un/ga/A-RES-75-202", "indicator") == 1);  // the first match wins
  CHECK(bundle_rank(p, "un/gab/x", "resolution") == 0);           // a prefix ends at a '/'
  CHECK(bundle_rank(p, "un/sc/x", "indicator") == 2);
  CHECK(bundle_rank(p, "itu/ict/mobile", "generic") == 3);
  CHECK(bundle_rank(p, "itux/ict", "generic") == 0);
  CHECK(bundle_rank({"un/ga/A-RES-75-202"}, "un/ga/A-RES-75-202", "resolution") == 1);
  CHECK(bundle_rank({"un/ga/A-RES-75-202/*"}, "un/ga/A-RES-75-202", "resolution") == 0);
  CHECK(bundle_rank({}, "un/ga/A-RES-75-202", "resolution") == 0);
}
