// The plan over HTTP: the data budget, patch chains, and a transfer resumed by the next sync.
#include "integration/http_common.h"

using namespace outpost::test;

namespace {

std::uint64_t json_u64(const std::string& out, const std::string& key) {
  auto j = outpost::parse_json(out);
  REQUIRE(j.ok());
  auto v = j->get_int(key);
  REQUIRE(v.ok());
  return static_cast<std::uint64_t>(*v);
}

}  // namespace

TEST_CASE(
    "a data budget defers what does not fit and sync never exceeds it, and the rest follows later",
    "[integration][http]") {
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  RunResult sub = h.subscribe_url(h.nginx.url());
  REQUIRE(sub.exit_code == 0);
  // The indicator (about 1.2 KB with its request) fits in the metadata's bytes + 2,000; the
  // resolution (about 11 KB compressed) does not. A dry run (never charged) measures the
  // metadata, which depends on the repository (keys, dates), not on the node.
  RunResult dry = h.sync({"--dry-run"});
  REQUIRE(dry.exit_code == 0);
  const std::uint64_t limit = static_cast<std::uint64_t>(only_repo(dry.out).bytes_read) + 2000;
  REQUIRE(h.node({"budget", "--day", std::to_string(limit)}).exit_code == 0);
  RunResult s = h.sync();
  INFO(s.out << s.err);
  REQUIRE(s.exit_code == 0);
  const SyncedRepo r = only_repo(s.out);
  REQUIRE(r.deferred.size() == 1);
  CHECK(r.deferred[0].bundle == kResolution);
  CHECK(contains(r.deferred[0].reason, "budget"));
  REQUIRE(r.updated.size() == 1);
  CHECK(r.updated[0].bundle == kIndicator);
  RunResult budget = h.node({"budget", "--json"});
  REQUIRE(budget.exit_code == 0);
  const std::uint64_t used = json_u64(budget.out, "used_day");
  CHECK(used > 0);
  CHECK(used <= limit);
  CHECK(used == static_cast<std::uint64_t>(r.bytes_read));
  CHECK(h.node({"cat", kResolution, kResolutionText}).exit_code != 0);

  // More budget: the deferred bundle comes.
  REQUIRE(h.node({"budget", "--day", "1M"}).exit_code == 0);
  RunResult more = h.sync();
  INFO(more.err);
  REQUIRE(more.exit_code == 0);
  const SyncedRepo m = only_repo(more.out);
  REQUIRE(m.updated.size() == 1);
  CHECK(m.updated[0].bundle == kResolution);
  CHECK(m.deferred.empty());
  RunResult cat = h.node({"cat", kResolution, kResolutionText});
  CHECK(cat.out == read_text(h.resolution_src() + "/" + kResolutionText));
}

TEST_CASE("a node several versions behind takes a chain of patches through the ladder",
          "[integration][http]") {
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  h.hold_v1();
  // Versions 2..5 with a ladder of 1 and 2: version 5 has patches from 4 and 3 only, version
  // 3 from 2 and 1. A node at 1 goes 1 -> 3 -> 5.
  const std::string text = h.resolution_src() + "/" + kResolutionText;
  HttpHeld::make_writable(h.resolution_src());
  HttpHeld::make_writable(text);
  for (int v = 2; v <= 5; ++v) {
    write_text(text, read_text(text) + "\nCorrigendum " + std::to_string(v) + ".\n");
    RunResult pub = h.outpost({"publish", h.repo(), "--key", h.keys() + "/un.key", "--keys",
                               h.keys(), "--patch-ladder", "1,2", h.resolution_src()});
    INFO(pub.err);
    REQUIRE(pub.exit_code == 0);
  }
  RunResult plan = h.frozen({"sync", "--dry-run"});
  INFO(plan.out << plan.err);
  REQUIRE(plan.exit_code == 0);
  CHECK(contains(plan.out, "chain"));
  RunResult s = h.sync();
  INFO(s.err);
  REQUIRE(s.exit_code == 0);
  const SyncedRepo r = only_repo(s.out);
  REQUIRE(r.updated.size() == 1);
  CHECK(r.updated[0].route == "chain");
  CHECK(r.updated[0].from == 1);
  CHECK(r.updated[0].to == 5);
  CHECK(h.frozen({"cat", kResolution, kResolutionText}).out == read_text(text));
  CHECK(h.frozen({"verify"}).exit_code == 0);
}

TEST_CASE("a download cut off is resumed by the next sync from the last byte kept",
          "[integration][http]") {
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  FaultProxy proxy(h.nginx.host_port());
  REQUIRE(proxy.ok());
  // A version whose whole content is ~200 KB of random bytes: the full patch is that big.
  write_all(h.resolution_src() + "/annex.bin", random_bytes(200 << 10, 4242));
  RunResult pub = h.outpost({"publish", h.repo(), "--key", h.keys() + "/un.key", "--keys", h.keys(),
                             "--json", h.resolution_src()});
  REQUIRE(pub.exit_code == 0);
  std::smatch m;
  REQUIRE(std::regex_search(pub.out, m, std::regex("objects/[0-9a-f]{2}/[0-9a-f]{64}\\.patch")));
  const std::string full = m.str();
  RunResult sub = h.subscribe_url(proxy.url());
  REQUIRE(sub.exit_code == 0);
  // The patch's answer ends after 120,000 bytes of its body, and every resume inside this
  // sync is answered 503: the sync gives up, keeping what arrived.
  std::string rules = R"([{"match": ")" + full + R"(", "nth": 1, "truncate": 120000})";
  for (int nth = 2; nth <= 8; ++nth) {
    rules +=
        R"(, {"match": ")" + full + R"(", "nth": )" + std::to_string(nth) + R"(, "status": 503})";
  }
  proxy.set_rules(rules + "]");
  RunResult cut = h.frozen({"sync", "--json", "--retries", "0", "--backoff", "0.01"});
  INFO(cut.out << cut.err);
  CHECK(cut.exit_code == 6);
  proxy.set_rules("[]");
  RunResult s = h.sync();
  INFO(s.err);
  REQUIRE(s.exit_code == 0);
  // The resumed request asked for the rest only.
  // The last request for the patch (the second sync's) asked for the rest only.
  std::string last_patch_request;
  for (const auto& line : h.nginx.access_log()) {
    if (contains(line, full)) last_patch_request = line;
  }
  INFO(last_patch_request);
  CHECK(std::regex_search(last_patch_request, std::regex("bytes=[1-9][0-9]{4,}-")));
  CHECK(h.frozen({"cat", kResolution, "annex.bin"}).out.size() == (200u << 10));
  CHECK(h.frozen({"verify"}).exit_code == 0);
}
