// Shared by the reliability suites (issue 12, docs/RELIABILITY.md): how many runs a sweep
// makes (a short CI form, a long form through the environment), random kill points chosen by
// time or by bytes a process has moved, and the check that a node holds each bundle in a
// version that is whole.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fixture.h"
#include "outpost/base/json.h"

namespace outpost::test {

// The number of runs of a sweep: `short_form` in CI, or the value of the environment variable
// `name` (the long forms in bench/reliability/ set it).
inline int sweep_runs(const char* name, int short_form) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return short_form;
  const int n = std::atoi(v);
  return n > 0 ? n : short_form;
}

// The seed of a sweep's random choices: OUTPOST_SEED when set (to replay a failure the test
// printed), else a fixed one per sweep, so CI runs the same points each time.
inline std::uint64_t sweep_seed(std::uint64_t fixed) {
  const char* v = std::getenv("OUTPOST_SEED");
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fixed;
}

// Bytes a live process has read and written through system calls (rchar + wchar of
// /proc/PID/io: files and sockets alike), or -1 once it has exited (a zombie or gone).
inline std::int64_t moved_bytes(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return -1;
  const std::size_t paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] == 'Z') return -1;
  std::ifstream io("/proc/" + std::to_string(pid) + "/io");
  std::int64_t total = 0;
  std::string key;
  std::int64_t value = 0;
  while (io >> key >> value) {
    if (key == "rchar:" || key == "wchar:") total += value;
  }
  return total;
}

// A point at which to kill a process: after `at` microseconds, or once it has moved `at`
// bytes.
struct KillPoint {
  bool by_bytes = false;
  std::uint64_t at = 0;
};

inline std::string describe(const KillPoint& k) {
  return k.by_bytes ? "after " + std::to_string(k.at) + " bytes moved"
                    : "after " + std::to_string(k.at / 1000) + " ms";
}

// What an uncut run of a command costs: its wall time (µs) and the bytes it moved.
struct RunCost {
  std::uint64_t micros = 0;
  std::uint64_t bytes = 0;
  int exit_code = -1;
};

// Runs argv to its end, polling what it moves.
inline RunCost measure(const std::vector<std::string>& argv) {
  const auto start = std::chrono::steady_clock::now();
  Child child(argv);
  RunCost c;
  for (std::int64_t b = 0; (b = moved_bytes(child.pid())) >= 0;) {
    c.bytes = static_cast<std::uint64_t>(b);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  c.exit_code = child.wait();
  c.micros = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                            std::chrono::steady_clock::now() - start)
                                            .count());
  return c;
}

// Half the points by time, half by bytes, uniform over a little more than an uncut run (so
// that some kills land after the end: the sweep must also cope with a finished run).
inline KillPoint random_point(std::mt19937_64& rng, const RunCost& cost, int i) {
  KillPoint k;
  k.by_bytes = i % 2 == 1;
  const std::uint64_t span = k.by_bytes ? cost.bytes + cost.bytes / 10 : cost.micros * 11 / 10;
  k.at = span == 0 ? 0 : rng() % span;
  return k;
}

// Starts argv and sends SIGKILL at the point; returns its exit code (128 + 9 when the kill
// cut it, its own code when it finished first).
inline int run_killed(const std::vector<std::string>& argv, const KillPoint& point) {
  const auto start = std::chrono::steady_clock::now();
  Child child(argv);
  const auto deadline = start + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::int64_t b = moved_bytes(child.pid());
    if (b < 0) break;  // finished first
    if (point.by_bytes && static_cast<std::uint64_t>(b) >= point.at) break;
    if (!point.by_bytes &&
        std::chrono::steady_clock::now() - start >= std::chrono::microseconds(point.at)) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  child.signal(SIGKILL);
  return child.wait();
}

inline std::vector<std::string> outpost_args(std::vector<std::string> args) {
  args.insert(args.begin(), OUTPOST_BINARY);
  return args;
}

// Regular files under dir (recursively), relative path -> bytes.
inline std::map<std::string, std::string> tree_files(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    out[std::filesystem::relative(e.path(), dir).string()] = read_text(e.path().string());
  }
  return out;
}

// The versions of the bundles a store shows (`ls --json`): name -> version.
inline std::map<std::string, std::int64_t> held_versions(const std::string& store) {
  RunResult ls = run_outpost({"ls", "--json", "--store", store});
  INFO("ls: " << ls.err);
  REQUIRE(ls.exit_code == 0);
  auto doc = outpost::parse_json(ls.out);
  REQUIRE(doc.ok());
  REQUIRE(doc->is_array());
  std::map<std::string, std::int64_t> out;
  for (const outpost::Json& b : doc->as_array()) {
    auto name = b.get_string("name");
    auto version = b.get_int("version");
    REQUIRE(name.ok());
    REQUIRE(version.ok());
    out[*name] = *version;
  }
  return out;
}

// The store opens and `verify` passes; returns what it shows.
inline std::map<std::string, std::int64_t> check_store_sound(const std::string& store) {
  auto held = held_versions(store);
  RunResult verify = run_outpost({"verify", "--store", store});
  INFO("verify: " << verify.out << verify.err);
  CHECK(verify.exit_code == 0);
  return held;
}

// The bundle's current files, checked out, equal one of the expected versions' trees
// exactly; returns the version the store shows.
inline std::int64_t check_bundle_whole(
    const std::string& store, const std::string& bundle,
    const std::map<std::int64_t, std::map<std::string, std::string>>& versions) {
  auto held = held_versions(store);
  REQUIRE(held.count(bundle) == 1);
  const std::int64_t v = held[bundle];
  INFO(bundle << " shows version " << v);
  REQUIRE(versions.count(v) == 1);
  TempDir out;
  RunResult co = run_outpost({"checkout", bundle, out / "tree", "--store", store});
  INFO("checkout: " << co.err);
  REQUIRE(co.exit_code == 0);
  const bool whole = tree_files(out / "tree") == versions.at(v);
  CHECK(whole);
  return v;
}

}  // namespace outpost::test
