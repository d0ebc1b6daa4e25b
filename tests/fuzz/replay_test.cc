// The fuzz targets (fuzz/targets/) in the ordinary test build: each replays its committed seed
// corpus (fuzz/corpus/<target>/) and a few thousand deterministic mutations of it. A target
// aborts on a sanitizer report or a broken property (fuzz/fuzz.h), which fails the test
// executable; the seed, the mutation and where the failing input was saved are printed first. The
// long libFuzzer runs are fuzz/run.sh (docs/SECURITY.md, "Fuzzing").
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "catch2/catch.hpp"
#include "fuzz/fuzz.h"
#include "outpost/base/bytes.h"
#include "outpost/base/clock.h"
#include "outpost/base/json.h"
#include "outpost/crypto/hash.h"
#include "outpost/crypto/tuf.h"
#include "outpost/packaging/chunk_index.h"
#include "outpost/packaging/delta.h"
#include "outpost/packaging/have_file.h"
#include "outpost/packaging/manifest.h"
#include "outpost/packaging/pack.h"
#include "outpost/packaging/update_file.h"
#include "outpost/serve/config.h"
#include "outpost/serve/http_server.h"
#include "support/test_support.h"

// Under AddressSanitizer, a report runs this callback before the process dies.
#if defined(__SANITIZE_ADDRESS__)
#define OUTPOST_FUZZ_DEATH_CALLBACK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OUTPOST_FUZZ_DEATH_CALLBACK 1
#endif
#endif
#ifdef OUTPOST_FUZZ_DEATH_CALLBACK
#include <sanitizer/common_interface_defs.h>
#endif

namespace outpost::fuzz {
namespace {

namespace pk = packaging;
using Target = int (*)(const std::uint8_t*, std::size_t);

struct Seed {
  std::string name;
  Bytes bytes;
};

std::string corpus_dir(const std::string& target) {
  return std::string(OUTPOST_SOURCE_DIR) + "/fuzz/corpus/" + target;
}

// Every file of the target's corpus, by name (a stable order for the mutations).
std::vector<Seed> load_corpus(const std::string& target) {
  std::vector<Seed> seeds;
  for (const auto& e : std::filesystem::directory_iterator(corpus_dir(target))) {
    if (e.is_regular_file()) {
      seeds.push_back({e.path().filename().string(), test::read_all(e.path().string())});
    }
  }
  std::sort(seeds.begin(), seeds.end(),
            [](const Seed& a, const Seed& b) { return a.name < b.name; });
  return seeds;
}

bool is_regression(const Seed& s) { return s.name.rfind("regression-", 0) == 0; }

// libFuzzer-style mutations, from a fixed PRNG seed so that every run tries the same inputs.
class Mutator {
 public:
  explicit Mutator(std::uint64_t seed) : rng_(seed) {}

  Bytes mutate(const Bytes& in, const Bytes& other) {
    Bytes b = in;
    const int rounds = static_cast<int>(below(4)) + 1;
    for (int i = 0; i < rounds; ++i) once(b, other);
    return b;
  }

 private:
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  void once(Bytes& b, const Bytes& other) {
    static constexpr std::array<std::uint64_t, 10> kInteresting = {0,
                                                                   1,
                                                                   0x7f,
                                                                   0x80,
                                                                   0xff,
                                                                   0xffff,
                                                                   0x7fffffff,
                                                                   0xffffffff,
                                                                   0x7fffffffffffffff,
                                                                   0xffffffffffffffff};
    static constexpr std::array<const char*, 12> kTokens = {
        "{", "}", "[", "]", "\"", ",", ":", "-", "0", "\\u0000", "9223372036854775808", "\\ud800"};
    switch (below(b.empty() ? 2 : 9)) {
      case 0: {  // insert random bytes
        const std::size_t at = below(b.size() + 1);
        const std::size_t n = below(8) + 1;
        for (std::size_t i = 0; i < n; ++i) {
          b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::uint8_t>(rng_()));
        }
        break;
      }
      case 1: {  // insert a JSON token
        const std::string t = kTokens[below(kTokens.size())];
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(below(b.size() + 1)), t.begin(), t.end());
        break;
      }
      case 2:  // flip a bit
        b[below(b.size())] ^= static_cast<std::uint8_t>(1u << below(8));
        break;
      case 3:  // a random byte
        b[below(b.size())] = static_cast<std::uint8_t>(rng_());
        break;
      case 4: {  // an interesting integer, little-endian, 1, 2, 4 or 8 bytes wide
        const std::size_t width = std::size_t{1} << below(4);
        if (b.size() < width) break;
        std::uint64_t v = kInteresting[below(kInteresting.size())];
        if (below(2) == 0) v = b.size() + below(3) - 1;  // a length near the input's own
        const std::size_t at = below(b.size() - width + 1);
        for (std::size_t i = 0; i < width; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
        break;
      }
      case 5: {  // erase a range
        const std::size_t at = below(b.size());
        const std::size_t n = std::min(b.size() - at, below(64) + 1);
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(at),
                b.begin() + static_cast<std::ptrdiff_t>(at + n));
        break;
      }
      case 6:  // truncate
        b.resize(below(b.size()));
        break;
      case 7: {  // duplicate a range in place
        const std::size_t at = below(b.size());
        const std::size_t n = std::min(b.size() - at, below(256) + 1);
        const Bytes piece(b.begin() + static_cast<std::ptrdiff_t>(at),
                          b.begin() + static_cast<std::ptrdiff_t>(at + n));
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(below(b.size() + 1)), piece.begin(),
                 piece.end());
        break;
      }
      default: {  // splice: this input's head, another seed's tail
        if (other.empty()) break;
        const std::size_t head = below(b.size() + 1);
        const std::size_t tail = below(other.size());
        b.resize(head);
        b.insert(b.end(), other.begin() + static_cast<std::ptrdiff_t>(tail), other.end());
        break;
      }
    }
  }

  std::mt19937_64 rng_;
};

// The input being run, saved to a file when it fails a property or a sanitizer stops the
// process (which kills it before Catch2 can report), to rerun with fuzz/run.sh --repro.
struct Current {
  std::string target;
  std::string seed;
  int mutation = -1;  // -1: the seed itself
  const Bytes* input = nullptr;
};
Current current;

void save_current() {
  if (current.input == nullptr) return;
  const std::string path = std::filesystem::temp_directory_path().string() + "/outpost-fuzz-" +
                           current.target + "-failed-input";
  if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(current.input->data(), 1, current.input->size(), f);
    std::fclose(f);
  }
  std::fprintf(stderr,
               "fuzz target %s failed on seed %s, mutation %d; input saved to %s (rerun: "
               "fuzz/run.sh --target %s --repro %s)\n",
               current.target.c_str(), current.seed.c_str(), current.mutation, path.c_str(),
               current.target.c_str(), path.c_str());
}

void run_one(Target target, const std::string& name, const Seed& seed, int mutation,
             const Bytes& input) {
  current = {name, seed.name, mutation, &input};
  target(input.data(), input.size());
  current.input = nullptr;
}

// Runs the target on every seed, then on `mutations` mutated seeds (round robin over the
// seeds).
void replay(const std::string& name, Target target, int mutations) {
  failure_hook = save_current;
#ifdef OUTPOST_FUZZ_DEATH_CALLBACK
  __sanitizer_set_death_callback(save_current);
#endif
  const std::vector<Seed> seeds = load_corpus(name);
  REQUIRE(!seeds.empty());
  for (const Seed& s : seeds) run_one(target, name, s, -1, s.bytes);
  Mutator mutator(0x6f7574706f7374u ^ std::hash<std::string>{}(name));
  for (int i = 0; i < mutations; ++i) {
    const Seed& s = seeds[static_cast<std::size_t>(i) % seeds.size()];
    const Seed& other = seeds[(static_cast<std::size_t>(i) * 7 + 3) % seeds.size()];
    run_one(target, name, s, i, mutator.mutate(s.bytes, other.bytes));
  }
  SUCCEED(seeds.size() << " seeds and " << mutations << " mutations of them ran clean");
}

// The target's input that a regression test names.
Bytes regression_input(const std::string& target, const std::string& bug) {
  return test::read_all(corpus_dir(target) + "/regression-" + bug);
}

// The real seeds (not regression inputs) are what the format accepts today: when a format
// changes, this fails until fuzz/make_corpus.sh has regenerated them, so that the fuzzers
// never start from inputs rejected at the first byte.
template <typename Parse>
void seeds_parse(const std::string& target, Parse parse) {
  int parsed = 0;
  for (const Seed& s : load_corpus(target)) {
    if (is_regression(s) || s.name.rfind("edge-", 0) == 0) continue;
    INFO(target << " seed " << s.name);
    const Status status = parse(s.bytes);
    CHECK(status.ok());
    if (status.ok()) ++parsed;
  }
  CHECK(parsed > 0);
}

TEST_CASE("fuzz json: seeds and mutations run clean", "[fuzz]") { replay("json", json, 20000); }

TEST_CASE("fuzz tuf_metadata: seeds and mutations run clean", "[fuzz]") {
  replay("tuf_metadata", tuf_metadata, 20000);
}

TEST_CASE("fuzz manifest: seeds and mutations run clean", "[fuzz]") {
  replay("manifest", manifest, 15000);
}

TEST_CASE("fuzz chunk_index: seeds and mutations run clean", "[fuzz]") {
  replay("chunk_index", chunk_index, 30000);
}

TEST_CASE("fuzz pack: seeds and mutations run clean", "[fuzz]") { replay("pack", pack, 5000); }

TEST_CASE("fuzz update_file: seeds and mutations run clean", "[fuzz]") {
  replay("update_file", update_file, 20000);
}

TEST_CASE("fuzz delta: seeds and mutations run clean", "[fuzz]") { replay("delta", delta, 20000); }

TEST_CASE("fuzz have_file: seeds and mutations run clean", "[fuzz]") {
  replay("have_file", have_file, 20000);
}

TEST_CASE("fuzz config: seeds and mutations run clean", "[fuzz]") {
  replay("config", config, 10000);
}

TEST_CASE("fuzz http_request: seeds and mutations run clean", "[fuzz]") {
  replay("http_request", http_request, 20000);
}

TEST_CASE("fuzz seeds are files the parsers accept today", "[fuzz]") {
  REQUIRE(crypto::init());
  seeds_parse("json", [](const Bytes& b) { return parse_json(as_chars(b)).status(); });
  seeds_parse("tuf_metadata", [](const Bytes& b) {
    Result<Json> j = parse_json(as_chars(b));
    if (!j.ok()) return j.status();
    const std::string type = j.value().find("signed")->find("_type")->as_string();
    return crypto::tuf::parse_metadata(b, type).status();
  });
  seeds_parse("manifest", [](const Bytes& b) { return pk::Manifest::parse(b).status(); });
  seeds_parse("chunk_index",
              [](const Bytes& b) { return pk::ChunkIndex::parse(b, 16u << 20).status(); });
  seeds_parse("pack", [](const Bytes& b) {
    return pk::PackReader::from_memory(b, "seed")->for_each(
        [](const pk::PackRecord&) { return Status::Ok(); });
  });
  seeds_parse("update_file",
              [](const Bytes& b) { return pk::parse_update_file(b, 4096).status(); });
  seeds_parse("delta", [](const Bytes& b) { return pk::read_delta_info(b).status(); });
  seeds_parse("have_file", [](const Bytes& b) {
    // body-*: a have-file's decompressed body, sealed by the target.
    const bool body = b.size() < 8 || std::string(as_chars(b).substr(0, 8)) != "OUTHAVE1";
    return pk::HaveFile::parse(body ? seal_have_body(b) : b).status();
  });
  seeds_parse("config", [](const Bytes& b) {
    return serve::parse_config(as_chars(b), "/etc/outpost/outpost.toml").status();
  });
}

// ---- Regression tests: one per defect the fuzzers found (docs/SECURITY.md, "Findings") ----

TEST_CASE("manifest published before the year 1000 encodes to a manifest that parses again",
          "[fuzz][regression]") {
  // format_utc wrote the year 26 as "26" (strftime's %Y): parse accepted "0026-12-02T..."
  // but encode() wrote a manifest parse refused.
  const Bytes input = regression_input("manifest", "published-year-before-1000");
  Result<pk::Manifest> m = pk::Manifest::parse(input);
  REQUIRE(m.ok());
  Result<pk::Manifest> again = pk::Manifest::parse(m.value().encode());
  REQUIRE(again.ok());
  CHECK(again.value() == m.value());
  CHECK(format_utc(*parse_utc("0026-12-02T20:23:19Z")) == "0026-12-02T20:23:19Z");
  CHECK(format_utc(*parse_utc("0000-01-01T00:00:00Z")) == "0000-01-01T00:00:00Z");
  CHECK(format_utc(0) == "1970-01-01T00:00:00Z");
  manifest(input.data(), input.size());
}

TEST_CASE("patch whose control seeks by INT64_MIN is refused without signed overflow",
          "[fuzz][regression]") {
  // apply_suffix_segment checked a backward seek with `oldpos < -seek`: a seek of INT64_MIN
  // (the zigzag varint 2^64-1) overflowed the negation (UBSan: undefined behaviour).
  const Bytes patch = regression_input("delta", "seek-int64-min");
  const Bytes from(16, 'a');
  Result<Bytes> out = pk::apply_delta(from, patch, 1);
  REQUIRE(!out.ok());
  CHECK(out.error().code() == Code::kCorruption);
  CHECK_THAT(out.error().message(), Catch::Contains("seeks outside the old slice"));
  delta(patch.data(), patch.size());
}

TEST_CASE("Range whose lengths add up past 2^64 is unsatisfiable, not a wrapped small sum",
          "[fuzz][regression]") {
  // parse_range summed the range lengths in a uint64_t: for a pack (unknown length, at most
  // 64 MiB in all) two ranges of 10^19 and 2^64 - 10^19 + 100 bytes added up to 100 and were
  // accepted; for a total above 2^63, "twice the total" wrapped as well.
  std::vector<serve::RangeSpec> ranges;
  CHECK(serve::parse_range("bytes=0-9999999999999999999,0-8446744073709551715", 0, true, &ranges) ==
        serve::RangeOutcome::kUnsatisfiable);
  CHECK(ranges.empty());
  CHECK(serve::parse_range("bytes=0-,0-,0-", UINT64_MAX, false, &ranges) ==
        serve::RangeOutcome::kUnsatisfiable);
  CHECK(ranges.empty());
  // What the cap allows still passes.
  REQUIRE(serve::parse_range("bytes=0-,0-", 4096, false, &ranges) == serve::RangeOutcome::kRanges);
  CHECK(ranges.size() == 2);
  const Bytes input = regression_input("http_request", "range-sum-wraps");
  http_request(input.data(), input.size());
}

TEST_CASE("Range refused for too many ranges or a malformed one returns no ranges",
          "[fuzz][regression]") {
  // parse_range returned kUnsatisfiable at the 1,025th range, and kNone at a malformed range,
  // with the ranges before it still in the list (serve_bytes did not read them then; the
  // contract is that only kRanges fills it).
  std::vector<serve::RangeSpec> ranges;
  std::string many = "bytes=0-0";
  for (int i = 0; i < 1024; ++i) many += ",0-0";
  CHECK(serve::parse_range(many, 4096, false, &ranges) == serve::RangeOutcome::kUnsatisfiable);
  CHECK(ranges.empty());
  CHECK(serve::parse_range("bytes=0-1,2-3,x", 4096, false, &ranges) == serve::RangeOutcome::kNone);
  CHECK(ranges.empty());
  CHECK(serve::parse_range("bytes=0-1,9-3", 4096, false, &ranges) == serve::RangeOutcome::kNone);
  CHECK(ranges.empty());
  const Bytes input = regression_input("http_request", "range-count-leaves-ranges");
  http_request(input.data(), input.size());
}

TEST_CASE("configuration with a non-ASCII character outside a string is refused before toml++",
          "[fuzz][regression]") {
  // toml++ 3.3 reached __builtin_unreachable() (undefined behaviour) classifying U+00E8 after
  // a value as whitespace; parse_config now parses an ASCII stand-in first and refuses such a
  // character itself, with the line. The second input had one after three quotes that toml++
  // does not read as a string there.
  const Bytes input = regression_input("config", "non-ascii-outside-string");
  Result<serve::Config> c = serve::parse_config(as_chars(input), "/etc/outpost/outpost.toml");
  REQUIRE(!c.ok());
  CHECK(c.error().code() == Code::kInvalidArgument);
  CHECK_THAT(c.error().message(), Catch::Contains("outpost.toml:2: not valid TOML: a non-ASCII"));
  // In strings and comments UTF-8 stays accepted.
  CHECK(serve::parse_config("# Bibliothèque\nstore = \"/srv/é\"\n[kiosk]\nsite_name = '''é\n'''\n",
                            "/etc/outpost/outpost.toml")
            .ok());
  config(input.data(), input.size());
  const Bytes second = regression_input("config", "non-ascii-after-bad-value");
  Result<serve::Config> c2 = serve::parse_config(as_chars(second), "/etc/outpost/outpost.toml");
  REQUIRE(!c2.ok());
  CHECK(c2.error().code() == Code::kInvalidArgument);
  config(second.data(), second.size());
}

}  // namespace
}  // namespace outpost::fuzz
