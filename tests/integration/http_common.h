// Shared by the HTTP integration tests (http_sync_test, http_faults_test, poor_link_test): the
// rig guard, curl, reading `outpost sync --json`, and a node that holds version 1 of the
// fixture's samples, synced over HTTP from a real nginx.
#pragma once

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "fixture.h"
#include "outpost/base/json.h"
#include "support/nginx.h"

namespace outpost::test {

// The rig (nginx, openssl) is missing: CI must fail; elsewhere the test is skipped loudly.
#define REQUIRE_RIG(server)                                       \
  do {                                                            \
    if (!(server).ok()) {                                         \
      if (::outpost::test::running_in_ci()) FAIL((server).why()); \
      WARN("SKIPPED (CI runs this test): " << (server).why());    \
      return;                                                     \
    }                                                             \
  } while (false)

// curl is missing (the rig's own tests use it): as REQUIRE_RIG.
#define REQUIRE_CURL()                                                                        \
  do {                                                                                        \
    if (::outpost::test::curl().empty()) {                                                    \
      if (::outpost::test::running_in_ci()) FAIL("curl not installed: apt-get install curl"); \
      WARN("SKIPPED (CI runs this test): curl not installed: apt-get install curl");          \
      return;                                                                                 \
    }                                                                                         \
  } while (false)

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

inline const std::string& curl() {
  static const std::string path = ::access("/usr/bin/curl", X_OK) == 0 ? "/usr/bin/curl" : "";
  return path;
}

// Deterministic text of n bytes (lines of numbers), different at every offset.
inline std::string rig_text(std::size_t n) {
  std::string out;
  for (std::uint64_t i = 0; out.size() < n; ++i) {
    out += std::to_string(i * 2654435761u % 1000003) + (i % 7 == 6 ? "\n" : ",");
  }
  out.resize(n);
  return out;
}

// nginx's access log as one text, for INFO on failure.
inline std::string log_text(const Nginx& nginx) {
  std::string out;
  for (const auto& line : nginx.access_log()) out += line + "\n";
  return out;
}

// What `outpost sync --json` said about one repository.
struct SyncedRepo {
  std::string repository, location;
  bool unchanged = false;
  std::int64_t bytes_read = 0, requests = 0;
  struct Update {
    std::string bundle, route;
    std::int64_t from = 0, to = 0;
  };
  std::vector<Update> updated;
  struct Deferred {
    std::string bundle, reason;
    std::int64_t cost = 0;
  };
  std::vector<Deferred> deferred;
  // sync --dry-run --json: what it would fetch, per bundle.
  bool dry_run = false;
  struct Planned {
    std::string bundle;
    std::int64_t bytes = 0;
  };
  std::vector<Planned> plan;
};

inline std::vector<SyncedRepo> parse_sync(const std::string& out) {
  std::vector<SyncedRepo> repos;
  auto doc = outpost::parse_json(out);
  INFO("sync --json printed: " << out);
  REQUIRE(doc.ok());
  REQUIRE(doc->is_array());
  auto integer = [](const outpost::Json& j, const char* key) -> std::int64_t {
    const outpost::Json* v = j.find(key);
    return v != nullptr && v->is_int() ? v->as_int() : -1;
  };
  auto text = [](const outpost::Json& j, const char* key) -> std::string {
    const outpost::Json* v = j.find(key);
    return v != nullptr && v->is_string() ? v->as_string() : "";
  };
  for (const outpost::Json& r : doc->as_array()) {
    SyncedRepo s;
    s.repository = text(r, "repository");
    s.location = text(r, "location");
    const outpost::Json* unchanged = r.find("unchanged");
    s.unchanged = unchanged != nullptr && unchanged->is_bool() && unchanged->as_bool();
    s.bytes_read = integer(r, "bytes_read");
    s.requests = integer(r, "requests");
    if (const outpost::Json* u = r.find("updated"); u != nullptr && u->is_array()) {
      for (const outpost::Json& e : u->as_array()) {
        s.updated.push_back(
            {text(e, "bundle"), text(e, "route"), integer(e, "from"), integer(e, "to")});
      }
    }
    if (const outpost::Json* d = r.find("deferred"); d != nullptr && d->is_array()) {
      for (const outpost::Json& e : d->as_array()) {
        s.deferred.push_back({text(e, "bundle"), text(e, "reason"), integer(e, "cost")});
      }
    }
    const outpost::Json* dry = r.find("dry_run");
    s.dry_run = dry != nullptr && dry->is_bool() && dry->as_bool();
    if (const outpost::Json* p = r.find("plan"); p != nullptr && p->is_array()) {
      for (const outpost::Json& e : p->as_array()) {
        s.plan.push_back({text(e, "bundle"), integer(e, "bytes")});
      }
    }
    repos.push_back(std::move(s));
  }
  return repos;
}

inline SyncedRepo only_repo(const std::string& out) {
  auto repos = parse_sync(out);
  INFO("sync --json printed: " << out);
  REQUIRE(repos.size() == 1);
  return repos.front();
}

constexpr const char* kResolution = "un/ga/A-RES-75-202";
constexpr const char* kResolutionText = "A-RES-75-202.en.md";
constexpr const char* kIndicator = "itu/ict/digital-divide-2019";

// Retries kept short so failing cases end fast.
inline const std::vector<std::string> kFast = {"--retries", "2", "--backoff", "0.05"};

inline std::vector<std::string> with(std::vector<std::string> args,
                                     const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The fixture's repository served by nginx (also over https with tls), and a node that
// subscribes to it by URL. hold_v1() syncs version 1 of both samples and records what the
// node shows, as bad_input_test's Held does; node commands run with the clock frozen.
struct HttpHeld : Published {
  explicit HttpHeld(bool tls = false) : nginx(repo(), tls) {}

  bool rig_ok() const { return nginx.ok(); }

  RunResult subscribe_url(const std::string& url, const std::vector<std::string>& mirrors = {},
                          const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"subscribe", url, "--root-pubkey", root_hex};
    for (const auto& m : mirrors) {
      args.push_back("--mirror");
      args.push_back(m);
    }
    return frozen(with(args, extra));
  }

  // `outpost sync --json` with fast retries and any extra arguments (e.g. a URL).
  RunResult sync(const std::vector<std::string>& extra = {}) {
    return frozen(with(with({"sync", "--json"}, kFast), extra));
  }

  // Subscribes to url (nginx's by default) and syncs version 1 of both samples.
  void hold_v1(const std::string& url = "", const std::vector<std::string>& mirrors = {}) {
    RunResult sub = subscribe_url(url.empty() ? nginx.url() : url, mirrors);
    INFO("subscribe: " << sub.err);
    REQUIRE(sub.exit_code == 0);
    RunResult s = sync();
    INFO("sync: " << s.err);
    REQUIRE(s.exit_code == 0);
    text_v1 = read_text(resolution_src() + "/" + kResolutionText);
    csv_v1 = read_text(indicator_src() + "/data.csv");
    remember();
  }

  // What the node shows now becomes the baseline check_unchanged() compares with.
  void remember() {
    RunResult ls = frozen({"ls", "--json"});
    REQUIRE(ls.exit_code == 0);
    ls_held = ls.out;
    RunResult cat = frozen({"cat", kResolution, kResolutionText});
    REQUIRE(cat.exit_code == 0);
    text_held = cat.out;
    data_held = store_snapshot(store());
  }

  // A small edit of the resolution's text (one changed line and one added): a patch is the
  // cheapest way to it.
  void publish_small_edit() {
    make_writable(resolution_src());
    const std::string text = resolution_src() + "/" + kResolutionText;
    make_writable(text);
    std::string t = read_text(text);
    const std::size_t mid = t.find('\n', t.size() / 2);
    REQUIRE(mid != std::string::npos);
    t.insert(mid + 1, "Corrigendum: paragraph 3 now reads \"shall\" instead of \"may\".\n");
    write_text(text, t);
    publish_checked();
  }

  // The edit plus a new file of 256 KiB of random bytes: a release of many new chunks.
  void publish_v2() {
    make_writable(resolution_src());
    const std::string text = resolution_src() + "/" + kResolutionText;
    make_writable(text);
    write_text(text, read_text(text) + "\nCorrigendum: paragraph 3 now reads ...\n");
    write_all(resolution_src() + "/annex.bin", random_bytes(256 << 10, 75202));
    publish_checked();
  }

  // Sets the node up so that the cheapest way to the newest version is the chunks route with
  // two ranges of one pack and a gap between them (a multi-range request). Version 2 adds a
  // file of 384 KiB the node then syncs (so a whole-version download would cost far more than
  // the new chunks); version 3 adds four files of random bytes (e, f, g, h: one pack, in that
  // order) and version 4 drops f and h. Versions 3 and 4 are published without ladder patches
  // (only the from-0 patch, i.e. the whole version), so from version 2 the node needs e and g
  // out of version 3's pack: two ranges with f between them.
  void publish_for_chunks_route() {
    make_writable(resolution_src());
    write_all(resolution_src() + "/k.bin", random_bytes(384 << 10, 'k'));
    publish_checked();
    RunResult s = sync();
    INFO("syncing version 2: " << s.err);
    REQUIRE(s.exit_code == 0);
    remember();
    for (const char* name : {"e", "f", "g", "h"}) {
      write_all(resolution_src() + "/" + name + ".bin",
                random_bytes(128 << 10, static_cast<std::uint64_t>(name[0])));
    }
    publish_without_ladder();
    std::filesystem::remove(resolution_src() + "/f.bin");
    std::filesystem::remove(resolution_src() + "/h.bin");
    publish_without_ladder();
  }

  // Publishes the resolution with no ladder patches: only the from-0 patch.
  void publish_without_ladder() {
    RunResult pub = outpost({"publish", repo(), "--key", keys() + "/un.key", "--keys", keys(),
                             "--patch-ladder", "", resolution_src()});
    INFO(pub.err);
    REQUIRE(pub.exit_code == 0);
  }

  void publish_checked() {
    RunResult pub = publish_resolution();
    INFO(pub.err);
    REQUIRE(pub.exit_code == 0);
  }

  static void make_writable(const std::string& path) {
    std::filesystem::permissions(path, std::filesystem::perms::owner_write,
                                 std::filesystem::perm_options::add);
  }

  // The node shows exactly what it showed at the last remember(), reads it back byte for
  // byte and verify passes.
  void check_unchanged(const std::vector<std::string>& env = {}) {
    const std::vector<std::string>& e = env;
    RunResult ls = node({"ls", "--json"}, e);
    INFO(ls.err);
    CHECK(ls.exit_code == 0);
    CHECK(shown(ls.out) == shown(ls_held));
    RunResult cat = node({"cat", kResolution, kResolutionText}, e);
    CHECK(cat.exit_code == 0);
    CHECK(cat.out == text_held);
    RunResult csv = node({"cat", kIndicator, "data.csv"}, e);
    CHECK(csv.exit_code == 0);
    CHECK(csv.out == csv_v1);
    RunResult verify = node({"verify"}, e);
    INFO(verify.out << verify.err);
    CHECK(verify.exit_code == 0);
  }

  // A mirror that does not carry the optional metadata update files (metadata/updates/): the
  // node must fetch the snapshot, role files and manifests one by one.
  void drop_update_files() { std::filesystem::remove_all(repo() + "/metadata/updates"); }

  // Not one byte of the store's data file changed.
  void check_untouched() {
    INFO("the refused sync wrote to the store");
    const bool untouched = store_snapshot(store()) == data_held;
    CHECK(untouched);
  }

  // The node holds the resolution as published last (the source folder), and verify passes.
  void check_updated() {
    RunResult cat = frozen({"cat", kResolution, kResolutionText});
    INFO(cat.err);
    CHECK(cat.exit_code == 0);
    CHECK(cat.out == read_text(resolution_src() + "/" + kResolutionText));
    RunResult verify = frozen({"verify"});
    INFO(verify.out << verify.err);
    CHECK(verify.exit_code == 0);
  }

  // After a sync that may have failed cleanly or succeeded: never bad data, never half an
  // update. Either the node is exactly as before, or it holds the new version completely.
  void check_before_or_updated(const RunResult& sync) {
    INFO("sync exit " << sync.exit_code << ": " << sync.err);
    if (sync.exit_code == 0) {
      check_updated();
    } else {
      check_refused(sync);
      check_unchanged();
    }
  }

  Nginx nginx;
  std::string text_v1, csv_v1, text_held, ls_held;
  outpost::Bytes data_held;
};

}  // namespace outpost::test
