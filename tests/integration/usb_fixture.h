// Sites for the USB tests (docs/usb.md): a publisher's repository and the stores of HQ (which
// syncs from it), a field office, a courier and a remote site (which never see it), each run
// through the real `outpost` binary.
#pragma once

#include <cctype>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "integration/fixture.h"
#include "outpost/packaging/stick.h"

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

// Every file and folder under the stick obeys the FAT32/exFAT/Windows rules.
inline void check_fat_rules(const std::string& stick, std::uint64_t max_file) {
  std::set<std::string> top;
  for (const auto& e : std::filesystem::directory_iterator(stick))
    top.insert(e.path().filename().string());
  CHECK(top == std::set<std::string>{"outpost-pack"});
  std::set<std::string> lower;
  std::size_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(stick)) {
    const std::string name = e.path().filename().string();
    INFO(name);
    CHECK(packaging::validate_portable_name(name).ok());
    std::string l = name;
    for (auto& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    CHECK(lower.insert(l).second);  // no two names differ only in case
    CHECK_FALSE(e.is_symlink());
    if (e.is_regular_file()) {
      ++files;
      CHECK(e.file_size() <= max_file);
    }
  }
  CHECK(files <= 300);
  CHECK(std::filesystem::exists(stick + "/outpost-pack/README.txt"));
}

}  // namespace outpost::test
