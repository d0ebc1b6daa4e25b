// Sites for the USB tests (docs/usb.md): a publisher's repository and the stores of HQ (which
// syncs from it), a field office, a courier and a remote site (which never see it), each run
// through the real `outpost` binary.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "integration/fixture.h"

namespace outpost::test {

struct Sites : Published {
  Sites() {
    // A larger file beside the resolution, so a thin pack visibly leaves out what is held.
    make_dirs(resolution_src() + "/annex");
    write_all(resolution_src() + "/annex/tables.bin", random_bytes(400 << 10, 7));
    RunResult pub = publish_resolution();
    INFO(pub.err);
    REQUIRE(pub.exit_code == 0);
    must_at(hq(), {"subscribe", repo(), "--root-pubkey", root_hex});
    must_at(hq(), {"sync"});
  }

  std::string hq() const { return dir / "hq"; }
  std::string office() const { return dir / "office"; }
  std::string courier() const { return dir / "courier"; }
  std::string site() const { return dir / "site"; }
  std::string stick(const std::string& name = "stick") const {
    std::string s = dir / name;
    make_dirs(s);
    return s;
  }
  std::string pack_folder(const std::string& name = "stick") const {
    return std::string(dir / name) + "/outpost-pack";
  }

  RunResult at(const std::string& store, std::vector<std::string> args) {
    args.push_back("--store");
    args.push_back(store);
    return run_outpost(args);
  }
  RunResult must_at(const std::string& store, const std::vector<std::string>& args) {
    RunResult r = at(store, args);
    INFO("outpost " << args[0] << " at " << store << ": " << r.err << r.out);
    REQUIRE(r.exit_code == 0);
    return r;
  }
  // A new version of the resolution: one small text change, the annex unchanged.
  void publish_v2() {
    write_text(resolution_src() + "/notes.txt", "Corrigendum: paragraph 3, read 2021.\n");
    RunResult pub = publish_resolution();
    INFO(pub.err);
    REQUIRE(pub.exit_code == 0);
  }
  // Bytes of every file under a folder.
  static std::uint64_t folder_bytes(const std::string& d) {
    std::uint64_t n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(d)) {
      if (e.is_regular_file()) n += e.file_size();
    }
    return n;
  }
  // `ls --json` of a store, without the confirmed times.
  std::string listing(const std::string& store) {
    return shown(must_at(store, {"ls", "--json"}).out);
  }
};

}  // namespace outpost::test
