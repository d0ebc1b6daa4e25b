// A publisher with keys and a repository holding the samples, and a node store: what most
// integration tests start from. Everything runs the real `outpost` binary.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "outpost/crypto/keys.h"
#include "support/test_support.h"

namespace outpost::test {

class Published {
 public:
  Published() {
    make_dirs(keys());
    root_hex = keygen("root", keys() + "/root.key");
    keygen("targets", keys() + "/targets.key");
    keygen("snapshot", keys() + "/snapshot.key");
    keygen("timestamp", keys() + "/timestamp.key");
    un_hex = keygen("publisher", keys() + "/un.key");
    itu_hex = keygen("publisher", keys() + "/itu.key");
    must({"repo", "init", repo(), "--keys", keys()});
    must({"repo", "delegate", repo(), "--keys", keys(), "--publisher-pubkey", un_hex, "--prefix",
          "un/ga"});
    must({"repo", "delegate", repo(), "--keys", keys(), "--publisher-pubkey", itu_hex, "--prefix",
          "itu/ict"});
    copy_tree(samples_dir() + "/resolutions/A-RES-75-202", resolution_src());
    copy_tree(samples_dir() + "/indicators/itu-ict-2019", indicator_src());
    publish_resolution();
    publish_indicator();
  }

  std::string keys() const { return dir / "keys"; }
  std::string repo() const { return dir / "repo"; }
  std::string store() const { return dir / "store"; }
  std::string resolution_src() const { return dir / "src/resolution"; }
  std::string indicator_src() const { return dir / "src/indicator"; }

  // `options`: more publish options, before the folder.
  RunResult publish_resolution(const std::vector<std::string>& options = {}) {
    std::vector<std::string> args{"publish", repo(), "--key", keys() + "/un.key", "--keys", keys()};
    args.insert(args.end(), options.begin(), options.end());
    args.push_back(resolution_src());
    return outpost(args);
  }
  RunResult publish_indicator() {
    return outpost(
        {"publish", repo(), "--key", keys() + "/itu.key", "--keys", keys(), indicator_src()});
  }

  // Runs outpost with --store pointing at this fixture's node.
  RunResult node(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    args.push_back("--store");
    args.push_back(store());
    return run_outpost(args, env);
  }
  RunResult subscribe() { return node({"subscribe", repo(), "--root-pubkey", root_hex}); }
  // As node(). (It once froze the node's clock through an environment variable; no variable
  // changes a node's time any more, and a refused sync must not touch "confirmed" anyway.)
  RunResult frozen(const std::vector<std::string>& args) { return node(args); }

  RunResult outpost(const std::vector<std::string>& args) { return run_outpost(args); }
  void must(const std::vector<std::string>& args) {
    RunResult r = run_outpost(args);
    INFO("outpost " << args[0] << ": " << r.err);
    REQUIRE(r.exit_code == 0);
  }
  // The fixture's keys are made in this process, by the calls `outpost keygen` makes (key
  // file, mode and format the same): six runs of the sanitizer build's binary per fixture were
  // 18 CPU-seconds of the suite. `outpost keygen` itself runs in cli_test.cc and the tour.
  std::string keygen(const std::string& role, const std::string& out) {
    auto parsed = crypto::parse_key_role(role);
    REQUIRE(parsed.ok());
    auto key = crypto::SecretKey::generate();
    REQUIRE(key.ok());
    const Status saved = key->save(out, *parsed);
    INFO(saved.message());
    REQUIRE(saved.ok());
    return key->public_key().hex();
  }

  TempDir dir;
  std::string root_hex, un_hex, itu_hex;
};

// The store's files, byte for byte, to show that a failed command changed nothing.
inline outpost::Bytes store_snapshot(const std::string& store) {
  return read_all(store + "/data.mdb");
}

// Exactly one line on stderr, starting "outpost: error: ".
inline bool one_error_line(const RunResult& r) {
  return r.err.rfind("outpost: error: ", 0) == 0 && r.err.find('\n') == r.err.size() - 1;
}

// `ls --json` without its "confirmed" times: what a node shows of its bundles. A sync whose
// signed metadata verified confirms the bundles it left unchanged as current, even when it
// then failed on another bundle's content; that moves "confirmed" and nothing else.
inline std::string shown(const std::string& ls_json) {
  static const std::regex confirmed("\"confirmed\": \"[^\"]*\"");
  return std::regex_replace(ls_json, confirmed, "\"confirmed\": \"...\"");
}

// Regular files under dir (recursively) whose path ends with suffix, sorted.
inline std::vector<std::string> files_ending(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    const std::string path = e.path().string();
    if (e.is_regular_file() && path.size() >= suffix.size() &&
        path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(path);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Paths in after that are not in before.
inline std::vector<std::string> added(const std::vector<std::string>& before,
                                      const std::vector<std::string>& after) {
  std::vector<std::string> out;
  for (const auto& a : after) {
    if (std::find(before.begin(), before.end(), a) == before.end()) out.push_back(a);
  }
  return out;
}

// The consistent-snapshot file "N.<name>" with the highest N in repo/metadata
// (name "snapshot.json", "targets.json", "un.ga.json"), and that N.
inline std::pair<std::string, int> newest_metadata(const std::string& repo,
                                                   const std::string& name) {
  const std::regex pattern("([0-9]+)\\." + std::regex_replace(name, std::regex("\\."), "\\.") +
                           "$");
  std::pair<std::string, int> best{"", 0};
  for (const auto& e : std::filesystem::directory_iterator(repo + "/metadata")) {
    std::smatch m;
    const std::string file = e.path().filename().string();
    if (std::regex_match(file, m, pattern) && std::stoi(m[1]) > best.second) {
      best = {e.path().string(), std::stoi(m[1])};
    }
  }
  REQUIRE(best.second > 0);
  return best;
}

// Changes the last digit of the seconds of the first "FIELD":"YYYY-MM-DDTHH:MM:SSZ" in a JSON
// file, in place: the file still parses and the time stays valid (a few seconds later or
// earlier), so only a signature or hash check can tell.
inline void change_time_digit(const std::string& path, const std::string& field = "expires") {
  std::string text = read_text(path);
  const std::string key = "\"" + field + "\":\"";
  const std::size_t at = text.find(key);
  REQUIRE(at != std::string::npos);
  const std::size_t digit = at + key.size() + 18;  // YYYY-MM-DDTHH:MM:S[S]Z
  REQUIRE(digit + 1 < text.size());
  REQUIRE(text[digit + 1] == 'Z');
  REQUIRE(text[digit] >= '0');
  REQUIRE(text[digit] <= '9');
  text[digit] = text[digit] == '9' ? '8' : static_cast<char>(text[digit] + 1);
  write_text(path, text);
}

// Flips one byte of a file in place (xor 0x5A).
inline void flip_byte(const std::string& path, std::uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  REQUIRE(f.get(c));
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5A));
  REQUIRE(f);
}

// The offset of a byte in the middle of the stored bytes (the zstd frame) of the chunk record
// that holds the middle of a pack (docs/format-repository.md, Pack).
inline std::uint64_t middle_of_a_chunk(const std::string& pack_path) {
  const outpost::Bytes pack = read_all(pack_path);
  auto le = [&](std::size_t at, int n) {
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | pack.at(at + static_cast<std::size_t>(i));
    return v;
  };
  REQUIRE(pack.size() > 8);
  REQUIRE(std::memcmp(pack.data(), "outpack1", 8) == 0);
  std::size_t at = 8;
  while (at < pack.size()) {
    const std::uint8_t type = pack.at(at);
    REQUIRE(type != 0xFF);  // the trailer: no chunk record reached the middle
    const std::uint64_t stored = le(at + 1 + 32 + 8, 8);
    const std::uint64_t name_length = le(at + 1 + 32 + 16, 2);
    const std::size_t data = at + 1 + 32 + 16 + 2 + static_cast<std::size_t>(name_length);
    const std::size_t next = data + static_cast<std::size_t>(stored);
    if (type == 1 && next >= pack.size() / 2 && stored >= 16) return data + stored / 2;
    at = next;
  }
  FAIL("no chunk record in " << pack_path);
  return 0;
}

// Asserts the house standard for a refused command: exactly one "outpost: error: " line,
// a non-zero exit code that is not a crash (a signal), and the expected exit code if given.
inline void check_refused(const RunResult& r, int expected_exit = 0) {
  INFO("exit " << r.exit_code << ", stderr: " << r.err << "stdout: " << r.out);
  CHECK(one_error_line(r));
  CHECK(r.exit_code != 0);
  CHECK(r.exit_code < 128);
  if (expected_exit != 0) CHECK(r.exit_code == expected_exit);
}

}  // namespace outpost::test
