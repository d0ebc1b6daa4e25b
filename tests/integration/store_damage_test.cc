// Issue 7 bug 4, node side, through the binary: "a store copied while a sync wrote keeps 13
// 'record is malformed' entries that nothing repairs, while gc reports removing the same 13
// chunks on every run". Also a chunk whose bytes changed on disk, and a data.mdb truncated or
// emptied: every command says what is wrong in one line, never crashes, never "all good".
#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "fixture.h"
#include "outpost/base/json.h"
#include "outpost/storage/store.h"

namespace outpost::test {
namespace {

namespace fs = std::filesystem;
using storage::Table;

constexpr const char* kResolution = "un/ga/A-RES-75-202";
constexpr const char* kResolutionText = "A-RES-75-202.en.md";

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

struct Synced : Published {
  Synced() {
    RunResult sub = subscribe();
    INFO(sub.err);
    REQUIRE(sub.exit_code == 0);
    RunResult sync = node({"sync"});
    INFO(sync.err);
    REQUIRE(sync.exit_code == 0);
  }

  // Runs f in a write transaction on the store, in this process (no outpost running).
  void damage(const std::function<Status(storage::WriteTxn&)>& f) {
    auto db = storage::Store::open({.dir = store()});
    REQUIRE(db.ok());
    Status s = (*db)->update(f);
    INFO(s.message());
    REQUIRE(s.ok());
  }

  std::uint64_t json_field(const RunResult& r, const std::string& field) {
    INFO(r.out << r.err);
    auto j = parse_json(r.out);
    REQUIRE(j.ok());
    const Json* v = j->find(field);
    REQUIRE(v != nullptr);
    return static_cast<std::uint64_t>(v->as_int());
  }
};

// A command that failed cleanly: an exit code (not a signal), one error line.
void check_refused_cleanly(const RunResult& r) {
  INFO("exit " << r.exit_code << "\nstdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code != 0);
  CHECK(r.exit_code < 128);  // 128 + N: killed by signal N
  CHECK(one_error_line(r));
  CHECK_FALSE(contains(r.out, "all good"));
}

TEST_CASE("bug 4: 13 malformed chunk records are named by verify and removed by gc exactly once",
          "[integration][bug4]") {
  Synced p;
  p.damage([](storage::WriteTxn& w) -> Status {
    for (std::uint8_t i = 0; i < 13; ++i) {
      // Keys of the wrong length, and chunk ids whose value does not parse.
      Bytes key(i % 2 == 0 ? 32 : 7 + i, static_cast<std::uint8_t>(0xF0 + i));
      Bytes value{'n', 'o', 't', ' ', 'a', ' ', 'c', 'h', 'u', 'n', 'k', i};
      if (i % 3 == 0) value.resize(1);
      OUTPOST_RETURN_IF_ERROR(w.put(Table::kChunks, ByteView(key), ByteView(value)));
    }
    return Status::Ok();
  });

  RunResult v = p.node({"verify"});
  INFO(v.out << v.err);
  CHECK(v.exit_code == 4);
  CHECK(contains(v.out + v.err, "malformed"));
  CHECK(contains(v.out + v.err, "outpost verify --repair"));
  CHECK_FALSE(contains(v.out, "all good"));

  RunResult gc1 = p.node({"gc", "--json"});
  REQUIRE(gc1.exit_code == 0);
  CHECK(p.json_field(gc1, "chunks_removed") >= 13);
  CHECK(p.json_field(gc1, "malformed_removed") == 13);
  RunResult gc2 = p.node({"gc", "--json"});
  REQUIRE(gc2.exit_code == 0);
  CHECK(p.json_field(gc2, "chunks_removed") == 0);
  CHECK(p.json_field(gc2, "malformed_removed") == 0);

  RunResult after = p.node({"verify"});
  INFO(after.out << after.err);
  CHECK(after.exit_code == 0);
  CHECK(contains(after.out, "all good"));
}

TEST_CASE("bug 4: verify --repair drops a chunk whose bytes changed, and sync restores it",
          "[integration][bug4]") {
  Synced p;
  const std::string want = read_text(p.resolution_src() + "/" + kResolutionText);
  p.damage([](storage::WriteTxn& w) -> Status {
    // Flips a byte inside the stored value of the table's first chunk.
    Bytes key, value;
    OUTPOST_RETURN_IF_ERROR(w.scan(Table::kChunks, {}, [&](ByteView k, ByteView val) {
      key.assign(k.begin(), k.end());
      value.assign(val.begin(), val.end());
      return false;
    }));
    if (value.empty()) return Status::Internal("no chunk in the store");
    value[value.size() - 1 - value.size() / 4] ^= 0x5A;
    return w.put(Table::kChunks, ByteView(key), ByteView(value));
  });

  RunResult v = p.node({"verify"});
  CHECK(v.exit_code == 4);
  CHECK(contains(v.err, "outpost verify --repair"));

  RunResult repair = p.node({"verify", "--repair"});
  INFO(repair.out << repair.err);
  CHECK(contains(repair.out, "removed 1 damaged chunk record(s)"));
  CHECK(contains(repair.out, "outpost sync"));

  RunResult sync = p.node({"sync"});
  INFO(sync.err);
  REQUIRE(sync.exit_code == 0);
  RunResult ok = p.node({"verify"});
  INFO(ok.out << ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(contains(ok.out, "all good"));
  RunResult cat = p.node({"cat", kResolution, kResolutionText});
  REQUIRE(cat.exit_code == 0);
  CHECK(cat.out == want);
  RunResult cat2 = p.node({"cat", "itu/ict/digital-divide-2019", "data.csv"});
  REQUIRE(cat2.exit_code == 0);
  CHECK(cat2.out == read_text(p.indicator_src() + "/data.csv"));
}

TEST_CASE("bug 4: a truncated or empty data.mdb fails every command in one line, never a crash",
          "[integration][bug4]") {
  Synced p;
  const std::string data = p.store() + "/data.mdb";
  REQUIRE(fs::exists(p.store() + "/" + std::string(storage::kMarkerFile)));
  const auto full = fs::file_size(data);
  for (std::uintmax_t cut : {full / 2, std::uintmax_t{4096}, std::uintmax_t{0}}) {
    INFO("data.mdb cut to " << cut << " of " << full << " bytes");
    TempDir copy;
    const std::string store = copy / "store";
    copy_tree(p.store(), store);
    fs::resize_file(store + "/data.mdb", cut);
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"ls"}, {"verify"}, {"status"}, {"sync"}, {"cat", kResolution, kResolutionText}}) {
      std::vector<std::string> a = args;
      a.push_back("--store");
      a.push_back(store);
      RunResult r = run_outpost(a);
      INFO("outpost " << args[0]);
      check_refused_cleanly(r);
      CHECK(contains(r.err, "data.mdb"));
    }
    CHECK(fs::file_size(store + "/data.mdb") == cut);  // left as found, not re-initialised
  }
}

}  // namespace
}  // namespace outpost::test
