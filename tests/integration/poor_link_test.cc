// A sync over a poor link, end to end: 64 kbit/s, 600 ms round trips and a connection drop
// every 100 KB, emulated by the fault proxy (tests/support/nginx.h) in front of a real nginx.
// The sync must complete, and resuming after each drop must cost almost nothing: the bytes
// the node received stay within 5% of an undisturbed sync of the same repository.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "fixture.h"
#include "http_common.h"

using namespace outpost::test;

namespace {

// ~400 KB of CSV: random measurements with few digits, so it compresses (about 2-3x) but not
// to nothing.
std::string generated_csv(std::size_t size, std::uint64_t seed) {
  std::string out = "country,year,indicator,value,lower,upper\n";
  std::uint64_t x = seed | 1;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  char line[160];
  while (out.size() < size) {
    const std::uint64_t r = next();
    const double value = static_cast<double>(r % 1000000) / 100.0;
    std::snprintf(line, sizeof line, "C%03u,%u,IT_%02u,%.2f,%.2f,%.2f\n",
                  static_cast<unsigned>(r % 193), 2000 + static_cast<unsigned>((r >> 10) % 25),
                  static_cast<unsigned>((r >> 20) % 40), value, value * 0.9, value * 1.1);
    out += line;
  }
  return out;
}

struct Synced {
  int exit_code = -1;
  std::string err;
  std::uint64_t bytes = 0;
  double seconds = 0;
};

// Subscribes a fresh store to the proxy's URL (with the proxy clean), sets the rules, syncs
// everything, and reports what the proxy sent to the node during the sync.
Synced sync_fresh_store(HttpHeld& h, FaultProxy& proxy, const std::string& store,
                        const std::string& rules) {
  proxy.set_rules("[]");
  RunResult sub =
      run_outpost({"subscribe", proxy.url(), "--root-pubkey", h.root_hex, "--store", store});
  INFO(sub.err);
  REQUIRE(sub.exit_code == 0);
  proxy.set_rules(rules);
  const std::uint64_t before = proxy.bytes_to_client();
  const auto start = std::chrono::steady_clock::now();
  RunResult sync = run_outpost({"sync", "--json", "--store", store, "--retries", "10", "--backoff",
                                "0.05", "--stall-timeout", "30"},
                               {});
  Synced s;
  s.exit_code = sync.exit_code;
  s.err = sync.err;
  s.seconds = seconds_since(start);
  s.bytes = proxy.bytes_to_client() - before;
  return s;
}

}  // namespace

TEST_CASE(
    "a sync over 64 kbit/s with 600 ms RTT and a drop every 100 KB completes and costs within "
    "5% of an undisturbed one (slow)",
    "[integration][http][slow]") {
  HttpHeld h;
  REQUIRE_RIG(h.nginx);
  HttpHeld::make_writable(h.indicator_src());
  const std::string csv = generated_csv(400 << 10, 2019);
  write_text(h.indicator_src() + "/generated.csv", csv);
  RunResult pub = h.publish_indicator();
  INFO(pub.err);
  REQUIRE(pub.exit_code == 0);

  FaultProxy proxy(h.nginx.host_port());
  INFO(proxy.why());
  REQUIRE(proxy.ok());

  TempDir stores;
  const Synced clean = sync_fresh_store(h, proxy, stores / "clean", "[]");
  INFO("undisturbed sync: " << clean.err);
  REQUIRE(clean.exit_code == 0);

  const Synced poor = sync_fresh_store(
      h, proxy, stores / "poor", R"([{"rate": 8000, "delay_ms": 300, "drop_every": 100000}])");
  std::cout << "poor link: " << poor.bytes << " B in " << poor.seconds
            << " s; undisturbed: " << clean.bytes << " B in " << clean.seconds << " s\n";
  INFO("poor-link sync: " << poor.err);
  REQUIRE(poor.exit_code == 0);
  // At least one drop really happened (the sync moved more than 100 KB through the proxy).
  CHECK(poor.bytes > 100000);
  CHECK(static_cast<double>(poor.bytes) <= 1.05 * static_cast<double>(clean.bytes));

  for (const std::string& store : {stores / "clean", stores / "poor"}) {
    RunResult cat =
        run_outpost({"cat", "itu/ict/digital-divide-2019", "generated.csv", "--store", store});
    CHECK(cat.exit_code == 0);
    CHECK(cat.out.size() == csv.size());
    const bool same = cat.out == csv;
    CHECK(same);
    RunResult verify = run_outpost({"verify", "--store", store});
    CHECK(verify.exit_code == 0);
  }
}
