// Priorities (docs/sync.md, "Priorities"): a subscription ranks bundles by name prefix or
// kind; under a data budget the highest ranked are fetched first, the rest are deferred and
// come with a later sync; `sync --dry-run` shows the order and changes nothing.
#include <filesystem>

#include "integration/http_common.h"

using namespace outpost::test;

namespace {

// One planned bundle of `sync --json`, with the fields ranking adds.
struct Ranked {
  std::string bundle, reason, pattern;
  std::int64_t order = 0, rank = 0, bytes = 0;
};

// plan and deferred of the only repository, merged and sorted by their order in the plan.
std::vector<Ranked> planned(const std::string& out) {
  auto doc = outpost::parse_json(out);
  INFO("sync --json printed: " << out);
  REQUIRE(doc.ok());
  REQUIRE(doc->is_array());
  REQUIRE(doc->as_array().size() == 1);
  const outpost::Json& repo = doc->as_array()[0];
  std::vector<Ranked> all;
  for (const char* list : {"plan", "deferred"}) {
    const outpost::Json* l = repo.find(list);
    REQUIRE(l != nullptr);
    REQUIRE(l->is_array());
    for (const outpost::Json& e : l->as_array()) {
      Ranked r;
      r.bundle = e.find("bundle")->as_string();
      if (const auto* v = e.find("reason"); v != nullptr) r.reason = v->as_string();
      if (const auto* v = e.find("rank_pattern"); v != nullptr) r.pattern = v->as_string();
      r.order = e.find("order")->as_int();
      r.rank = e.find("rank")->as_int();
      r.bytes = e.find("bytes")->as_int();
      all.push_back(r);
    }
  }
  std::sort(all.begin(), all.end(),
            [](const Ranked& a, const Ranked& b) { return a.order < b.order; });
  return all;
}

const Ranked& find(const std::vector<Ranked>& plan, const std::string& bundle) {
  auto it =
      std::find_if(plan.begin(), plan.end(), [&](const Ranked& r) { return r.bundle == bundle; });
  REQUIRE(it != plan.end());
  return *it;
}

// The indicator grows by 24 KiB of random bytes: its whole download then costs about twice
// the resolution's, so unranked (cheapest first) the resolution would come first.
void grow_indicator(HttpHeld& h) {
  HttpHeld::make_writable(h.indicator_src());
  write_all(h.indicator_src() + "/annex.bin", random_bytes(24 << 10, 2019));
  RunResult pub = h.publish_indicator();
  INFO(pub.err);
  REQUIRE(pub.exit_code == 0);
}

}  // namespace

TEST_CASE(
    "under a sync budget the ranked bundle comes first and the rest is deferred to the "
    "next sync",
    "[integration][http][priority]") {
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  grow_indicator(h);
  h.drop_update_files();  // no library file: every bundle by its own route
  RunResult sub = h.subscribe_url(h.nginx.url(), {}, {"--rank", "kind:indicator"});
  INFO(sub.err);
  REQUIRE(sub.exit_code == 0);

  // The plan: the indicator (rank 1) before the cheaper resolution (unranked).
  RunResult dry = h.sync({"--dry-run"});
  INFO(dry.err);
  REQUIRE(dry.exit_code == 0);
  const std::vector<Ranked> plan = planned(dry.out);
  REQUIRE(plan.size() == 2);
  CHECK(plan[0].bundle == kIndicator);
  CHECK(plan[0].rank == 1);
  CHECK(plan[0].pattern == "kind:indicator");
  CHECK(plan[1].bundle == kResolution);
  CHECK(plan[1].rank == 0);
  REQUIRE(plan[0].bytes > plan[1].bytes);  // so the order is the ranking's, not the price's

  // A budget for the metadata, the indicator and less than the resolution needs.
  const std::uint64_t metadata = static_cast<std::uint64_t>(only_repo(dry.out).bytes_read);
  const std::uint64_t budget = metadata + static_cast<std::uint64_t>(plan[0].bytes) + 400 + 3000;
  REQUIRE(static_cast<std::uint64_t>(plan[1].bytes) > 3000);
  RunResult s = h.sync({"--budget", std::to_string(budget)});
  INFO(s.out << s.err);
  REQUIRE(s.exit_code == 0);  // deferring is not a failure
  const SyncedRepo r = only_repo(s.out);
  REQUIRE(r.updated.size() == 1);
  CHECK(r.updated[0].bundle == kIndicator);
  REQUIRE(r.deferred.size() == 1);
  CHECK(r.deferred[0].bundle == kResolution);
  CHECK(contains(r.deferred[0].reason, "budget"));
  CHECK(static_cast<std::uint64_t>(r.bytes_read) <= budget);
  CHECK(h.node({"cat", kResolution, kResolutionText}).exit_code != 0);
  CHECK(h.node({"cat", kIndicator, "annex.bin"}).exit_code == 0);

  // The next sync (no budget of its own) takes the deferred bundle.
  RunResult next = h.sync();
  INFO(next.out << next.err);
  REQUIRE(next.exit_code == 0);
  const SyncedRepo n = only_repo(next.out);
  REQUIRE(n.updated.size() == 1);
  CHECK(n.updated[0].bundle == kResolution);
  CHECK(n.deferred.empty());
  RunResult cat = h.node({"cat", kResolution, kResolutionText});
  CHECK(cat.out == read_text(h.resolution_src() + "/" + kResolutionText));
  CHECK(h.node({"verify"}).exit_code == 0);
}

TEST_CASE("without a ranking the cheapest bundle takes the budget first",
          "[integration][http][priority]") {
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  grow_indicator(h);
  h.drop_update_files();
  RunResult sub = h.subscribe_url(h.nginx.url());
  REQUIRE(sub.exit_code == 0);
  RunResult dry = h.sync({"--dry-run"});
  REQUIRE(dry.exit_code == 0);
  const std::vector<Ranked> plan = planned(dry.out);
  REQUIRE(plan.size() == 2);
  CHECK(plan[0].bundle == kResolution);
  CHECK(plan[0].rank == 0);
  CHECK(plan[1].bundle == kIndicator);
  // The same budget as above now goes to the resolution.
  const std::uint64_t budget = static_cast<std::uint64_t>(only_repo(dry.out).bytes_read) +
                               static_cast<std::uint64_t>(find(plan, kIndicator).bytes) + 400 +
                               3000;
  RunResult s = h.sync({"--budget", std::to_string(budget)});
  INFO(s.out << s.err);
  REQUIRE(s.exit_code == 0);
  const SyncedRepo r = only_repo(s.out);
  REQUIRE(r.updated.size() == 1);
  CHECK(r.updated[0].bundle == kResolution);
  REQUIRE(r.deferred.size() == 1);
  CHECK(r.deferred[0].bundle == kIndicator);
}

TEST_CASE(
    "sync --dry-run prints the ranked order and what the budget would defer, and changes "
    "nothing in the store",
    "[integration][http][priority]") {
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  grow_indicator(h);
  h.drop_update_files();
  RunResult sub =
      h.subscribe_url(h.nginx.url(), {}, {"--rank", "kind:indicator", "--rank", "un/ga/*"});
  INFO(sub.err);
  REQUIRE(sub.exit_code == 0);
  const outpost::Bytes before = store_snapshot(h.store());

  // A budget that covers the metadata and not the indicator: both would wait.
  RunResult plan = h.node({"sync", "--dry-run", "--budget", "22k"});
  INFO(plan.out << plan.err);
  REQUIRE(plan.exit_code == 0);
  const std::size_t first =
      plan.out.find("1. " + std::string(kIndicator) + " (rank 1: kind:indicator)");
  const std::size_t second = plan.out.find("2. " + std::string(kResolution) + " (rank 2: un/ga/*)");
  REQUIRE(first != std::string::npos);
  REQUIRE(second != std::string::npos);
  CHECK(first < second);
  // Route and bytes on each line; the indicator would be deferred, the resolution fits.
  const std::string line1 = plan.out.substr(first, plan.out.find('\n', first) - first);
  const std::string line2 = plan.out.substr(second, plan.out.find('\n', second) - second);
  CHECK(contains(line1, "by full: "));
  CHECK(contains(line1, "deferred (data budget"));
  CHECK(contains(line2, "by full: "));
  CHECK(!contains(line2, "deferred"));
  CHECK(contains(plan.out, "1 deferred under the"));
  INFO("the plan printed:\n" << plan.out);

  // Nothing changed: not a byte of the store, no bundle, no content fetched.
  CHECK(store_snapshot(h.store()) == before);
  RunResult ls = h.node({"ls", "--json"});
  REQUIRE(ls.exit_code == 0);
  CHECK(!contains(ls.out, kResolution));
  for (const auto& line : h.nginx.access_log()) {
    CHECK(!contains(line, ".pack"));
    CHECK(!contains(line, "/content/"));
  }
  RunResult budget = h.node({"budget", "--json"});
  CHECK(contains(budget.out, "\"used_day\": 0"));
}

TEST_CASE(
    "an update file larger than the budget is not read: the bundles come by their own "
    "routes in rank order",
    "[integration][http][priority]") {
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  h.hold_v1();
  // Version 2 of both: the indicator's 160 KiB of random bytes make the update file (which
  // carries every small patch) far larger than the budget; the resolution's edit is small.
  HttpHeld::make_writable(h.indicator_src());
  write_all(h.indicator_src() + "/annex.bin", random_bytes(160 << 10, 2020));
  REQUIRE(h.publish_indicator().exit_code == 0);
  h.publish_small_edit();
  const auto updates = files_ending(h.repo() + "/metadata/updates", ".upd");
  std::uintmax_t largest = 0;
  for (const auto& u : updates) largest = std::max(largest, std::filesystem::file_size(u));
  REQUIRE(largest > (150u << 10));
  RunResult sub = h.subscribe_url(h.nginx.url(), {}, {"--rank", "un/ga"});
  REQUIRE(sub.exit_code == 0);

  RunResult s = h.sync({"--budget", "60k"});
  INFO(s.out << s.err << log_text(h.nginx));
  REQUIRE(s.exit_code == 0);
  const SyncedRepo r = only_repo(s.out);
  REQUIRE(r.updated.size() == 1);
  CHECK(r.updated[0].bundle == kResolution);
  REQUIRE(r.deferred.size() == 1);
  CHECK(r.deferred[0].bundle == kIndicator);
  CHECK(r.bytes_read <= 60000);
  CHECK(h.node({"cat", kResolution, kResolutionText}).out ==
        read_text(h.resolution_src() + "/" + kResolutionText));

  // The next sync fetches the deferred indicator.
  RunResult next = h.sync();
  INFO(next.out << next.err);
  REQUIRE(next.exit_code == 0);
  const SyncedRepo n = only_repo(next.out);
  REQUIRE(n.updated.size() == 1);
  CHECK(n.updated[0].bundle == kIndicator);
  CHECK(h.node({"verify"}).exit_code == 0);
}

TEST_CASE("a bad rank pattern is refused with one clear error before the store is touched",
          "[integration][priority]") {
  Published p;
  for (const std::string bad : {"un/*/x", "kind:spreadsheet", "", "un//ga", "*", "../x/*"}) {
    RunResult r = p.node({"subscribe", p.repo(), "--root-pubkey", p.root_hex, "--rank", bad});
    INFO("--rank '" << bad << "': " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.rfind("outpost: error: ", 0) == 0);
    CHECK(contains(r.err, "rank pattern"));
    CHECK(contains(r.err, "kind:indicator"));  // says what is accepted
    CHECK(!std::filesystem::exists(p.store()));
  }
  RunResult both = p.node(
      {"subscribe", p.repo(), "--root-pubkey", p.root_hex, "--rank", "un/ga/*", "--no-rank"});
  CHECK(both.exit_code == 2);
  CHECK(contains(both.err, "--no-rank"));
  CHECK(!std::filesystem::exists(p.store()));
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"sync", "--budget", "2 MB"},
        std::vector<std::string>{"sync", "--budget", "-1"},
        std::vector<std::string>{"sync", "--now", "--budget", "2M"},
        std::vector<std::string>{"sync", "--now", "--dry-run"}}) {
    RunResult r = p.node(bad);
    INFO(bad.back() << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.rfind("outpost: error: ", 0) == 0);
    CHECK(!std::filesystem::exists(p.store()));
  }
}

TEST_CASE("a ranking is kept by the subscription until replaced or dropped",
          "[integration][priority]") {
  Published p;
  auto ranks = [&]() {
    RunResult st = p.node({"status", "--json"});
    REQUIRE(st.exit_code == 0);
    auto j = outpost::parse_json(st.out);
    REQUIRE(j.ok());
    std::vector<std::string> out;
    for (const auto& e : j->find("repositories")->as_array()[0].find("ranks")->as_array()) {
      out.push_back(e.as_string());
    }
    return out;
  };
  REQUIRE(p.node({"subscribe", p.repo(), "--root-pubkey", p.root_hex, "--rank", "un/ga/*", "--rank",
                  "kind:indicator"})
              .exit_code == 0);
  CHECK(ranks() == std::vector<std::string>{"un/ga/*", "kind:indicator"});
  REQUIRE(p.subscribe().exit_code == 0);  // again, without --rank: kept
  CHECK(ranks() == std::vector<std::string>{"un/ga/*", "kind:indicator"});
  REQUIRE(p.node({"subscribe", p.repo(), "--root-pubkey", p.root_hex, "--rank", kResolution})
              .exit_code == 0);
  CHECK(ranks() == std::vector<std::string>{kResolution});
  // From a path (free, never deferred) the ranked bundle still comes first, before the
  // cheaper indicator.
  RunResult s = p.node({"sync", "--json"});
  INFO(s.err);
  REQUIRE(s.exit_code == 0);
  const SyncedRepo r = only_repo(s.out);
  REQUIRE(r.updated.size() == 2);
  CHECK(r.updated[0].bundle == kResolution);
  CHECK(r.updated[1].bundle == kIndicator);
  REQUIRE(p.node({"subscribe", p.repo(), "--root-pubkey", p.root_hex, "--no-rank"}).exit_code == 0);
  CHECK(ranks().empty());
}
