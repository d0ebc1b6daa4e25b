// Issue 7 bug 10: `status` showed the size of the LMDB file as "used", which never shrinks, so
// a gc that freed hundreds of megabytes changed nothing on screen. It now shows what the data
// holds ("in use", from the tables' page counts) and the file size apart.
#include <catch2/catch.hpp>
#include <regex>
#include <string>

#include "integration/fixture.h"
#include "outpost/base/json.h"

namespace outpost::test {
namespace {

std::uint64_t field(const RunResult& r, const std::string& name) {
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  auto j = parse_json(r.out);
  REQUIRE(j.ok());
  const Json* v = j->find(name);
  REQUIRE(v != nullptr);
  return static_cast<std::uint64_t>(v->as_int());
}

TEST_CASE("bug 10: status shows what the store holds, which drops after gc, and the file apart",
          "[node][status][bug10]") {
  Published p;
  REQUIRE(p.subscribe().exit_code == 0);
  // A big version of the resolution, synced, then replaced by a version without it.
  const std::string big = p.resolution_src() + "/annex.bin";
  write_all(big, random_bytes(4u << 20, 10));
  REQUIRE(p.publish_resolution().exit_code == 0);
  REQUIRE(p.node({"sync"}).exit_code == 0);
  const std::uint64_t in_use_big = field(p.node({"status", "--json"}), "in_use_bytes");
  const std::uint64_t file_big = field(p.node({"status", "--json"}), "file_bytes");
  CHECK(in_use_big >= (4u << 20));  // random bytes do not compress
  CHECK(file_big >= in_use_big);

  std::filesystem::remove(big);
  REQUIRE(p.publish_resolution().exit_code == 0);
  REQUIRE(p.node({"sync"}).exit_code == 0);
  RunResult gc = p.node({"gc", "--retain", "1"});
  INFO(gc.err);
  REQUIRE(gc.exit_code == 0);

  const std::uint64_t in_use = field(p.node({"status", "--json"}), "in_use_bytes");
  const std::uint64_t file = field(p.node({"status", "--json"}), "file_bytes");
  CHECK(in_use + (4u << 20) <= in_use_big + (256u << 10));  // the 4 MiB went
  CHECK(file >= file_big);                                  // the file never shrinks

  RunResult text = p.node({"status"});
  INFO(text.out);
  REQUIRE(text.exit_code == 0);
  CHECK(std::regex_search(text.out,
                          std::regex("store: +" + p.store() +
                                     R"( \([0-9.]+ [KMG]?i?B in use, file [0-9.]+ [KMG]?i?B\))")));
}

}  // namespace
}  // namespace outpost::test
