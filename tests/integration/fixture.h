// A publisher with keys and a repository holding the samples, and a node store: what most
// integration tests start from. Everything runs the real `outpost` binary.
#pragma once

#include <catch2/catch.hpp>

#include <string>
#include <vector>

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
    must({"repo", "delegate", repo(), "--keys", keys(), "--publisher-pubkey", itu_hex,
          "--prefix", "itu/ict"});
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

  RunResult publish_resolution() {
    return outpost({"publish", repo(), "--key", keys() + "/un.key", "--keys", keys(),
                    resolution_src()});
  }
  RunResult publish_indicator() {
    return outpost({"publish", repo(), "--key", keys() + "/itu.key", "--keys", keys(),
                    indicator_src()});
  }

  // Runs outpost with --store pointing at this fixture's node.
  RunResult node(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    args.push_back("--store");
    args.push_back(store());
    return run_outpost(args, env);
  }
  RunResult subscribe() { return node({"subscribe", repo(), "--root-pubkey", root_hex}); }

  RunResult outpost(const std::vector<std::string>& args) { return run_outpost(args); }
  void must(const std::vector<std::string>& args) {
    RunResult r = run_outpost(args);
    INFO("outpost " << args[0] << ": " << r.err);
    REQUIRE(r.exit_code == 0);
  }
  std::string keygen(const std::string& role, const std::string& out) {
    RunResult r = run_outpost({"keygen", "--role", role, "--out", out});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    std::string hex = r.out.substr(0, r.out.find('\n'));
    REQUIRE(hex.size() == 64);
    return hex;
  }

  TempDir dir;
  std::string root_hex, un_hex, itu_hex;
};

// The store's files, byte for byte, to show that a failed command changed nothing.
inline outpost::Bytes store_snapshot(const std::string& store) { return read_all(store + "/data.mdb"); }

// Exactly one line on stderr, starting "outpost: error: ".
inline bool one_error_line(const RunResult& r) {
  return r.err.rfind("outpost: error: ", 0) == 0 && r.err.find('\n') == r.err.size() - 1;
}

}  // namespace outpost::test
