// A library: many small bundles published as one release (publish --batch) and synced in a
// handful of requests (docs/sync.md, "A library in a few requests"), from a real nginx and
// from a path.
#include <zstd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "http_common.h"
#include "outpost/packaging/release_patch.h"
#include "outpost/packaging/update_file.h"
#include "outpost/storage/store.h"

namespace outpost::test {
namespace {

constexpr int kBundles = 12;

// Deterministic prose-like text: words from a small vocabulary, different per seed.
std::string library_text(std::size_t words, std::uint64_t seed) {
  static const char* vocab[] = {"assembly",    "resolution",  "member",  "states",
                                "development", "sustainable", "report",  "council",
                                "session",     "paragraph",   "decides", "requests",
                                "secretary",   "general",     "data",    "goal"};
  std::string out;
  std::uint64_t x = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (std::size_t i = 0; i < words; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    out += vocab[(x >> 33) % 16];
    out += (i % 12 == 11) ? ".\n" : " ";
  }
  return out;
}

// A publisher whose key is delegated the prefix "lib", and a batch folder of kBundles bundle
// folders lib/doc/bNN, each one text file.
struct Library {
  // update_ladder: `repo init --update-ladder` (empty: the default, 1-8, 16, 32).
  explicit Library(int bundles = kBundles, std::size_t words = 3000,
                   const std::string& update_ladder = "")
      : count(bundles) {
    make_dirs(keys());
    root_hex = keygen("root", keys() + "/root.key");
    keygen("targets", keys() + "/targets.key");
    keygen("snapshot", keys() + "/snapshot.key");
    keygen("timestamp", keys() + "/timestamp.key");
    const std::string pub = keygen("publisher", keys() + "/lib.key");
    std::vector<std::string> init{"repo", "init", repo(), "--keys", keys()};
    if (!update_ladder.empty()) init.insert(init.end(), {"--update-ladder", update_ladder});
    must(init);
    must({"repo", "delegate", repo(), "--keys", keys(), "--publisher-pubkey", pub, "--prefix",
          "lib"});
    for (int i = 0; i < count; ++i) {
      const std::string d = folder(i);
      make_dirs(d);
      write_text(d + "/bundle.json", "{\"name\": \"lib/doc/" + name(i) + "\"}");
      write_text(d + "/text.md", library_text(words, static_cast<std::uint64_t>(i)));
    }
  }

  static std::string name(int i) {
    if (i >= 100) return "b" + std::to_string(i);
    return std::string("b") + (i < 10 ? "0" : "") + std::to_string(i);
  }
  std::string keys() const { return dir.path() + "/keys"; }
  std::string repo() const { return dir.path() + "/repo"; }
  std::string store() const { return dir.path() + "/store"; }
  std::string batch() const { return dir.path() + "/batch"; }
  std::string folder(int i) const { return batch() + "/" + name(i); }

  RunResult publish_batch(const std::string& folder_of_bundles = "") {
    std::vector<std::string> args{
        "publish", repo(), "--key",   keys() + "/lib.key",
        "--keys",  keys(), "--batch", folder_of_bundles.empty() ? batch() : folder_of_bundles};
    if (!patch_level.empty()) args.insert(args.end(), {"--patch-level", patch_level});
    return run_outpost(args);
  }
  // n new bundles after the others (a session's new resolutions).
  void add_bundles(int n, std::size_t words) {
    for (int i = count; i < count + n; ++i) {
      const std::string d = folder(i);
      make_dirs(d);
      write_text(d + "/bundle.json", "{\"name\": \"lib/doc/" + name(i) + "\"}");
      write_text(d + "/text.md", library_text(words, static_cast<std::uint64_t>(i)));
    }
    count += n;
  }
  // Edits the first n bundles: a sentence inserted in the middle.
  void edit(int n, const std::string& sentence) {
    for (int i = 0; i < n; ++i) {
      const std::string path = folder(i) + "/text.md";
      std::string t = read_text(path);
      t.insert(t.find('\n', t.size() / 2) + 1, sentence + "\n");
      write_text(path, t);
    }
  }
  RunResult node(std::vector<std::string> args) {
    args.push_back("--store");
    args.push_back(store());
    return run_outpost(args);
  }
  // The node subscribed to `url` and holding the release published there now.
  void subscribe_and_sync(const std::string& url) {
    must({"subscribe", url, "--root-pubkey", root_hex, "--store", store()});
    must({"sync", "--store", store()});
  }
  void must(const std::vector<std::string>& args) {
    RunResult r = run_outpost(args);
    INFO("outpost " << args[0] << ": " << r.err);
    REQUIRE(r.exit_code == 0);
  }
  std::string keygen(const std::string& role, const std::string& out) {
    RunResult r = run_outpost({"keygen", "--role", role, "--out", out});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return r.out.substr(0, r.out.find('\n'));
  }
  void check_all_current() {
    for (int i = 0; i < count; ++i) {
      RunResult cat = node({"cat", "lib/doc/" + name(i), "text.md"});
      INFO("bundle " << name(i) << ": " << cat.err);
      CHECK(cat.out == read_text(folder(i) + "/text.md"));
    }
  }

  // Bytes of `tar | zstd -19 --long` of the batch folder; 0 when zstd is missing (CI: fails).
  std::uint64_t tar_zstd_bytes() {
    const std::string zstd = find_program("zstd");
    const std::string tar = find_program("tar");
    if (zstd.empty() || tar.empty()) {
      if (running_in_ci()) FAIL("zstd or tar not installed: apt-get install zstd tar");
      WARN("SKIPPED the comparison with tar | zstd (CI runs it): zstd or tar not installed");
      return 0;
    }
    RunResult r = run_program(
        {"/bin/sh", "-c",
         "cd '" + batch() + "' && '" + tar + "' cf - . | '" + zstd + "' -19 --long -q -c | wc -c"});
    REQUIRE(r.exit_code == 0);
    return std::stoull(r.out);
  }

  int count;
  TempDir dir;
  std::string root_hex;
  std::string patch_level;  // publish --patch-level; empty: the default (19)
};

// The library file of the repository's only release.
std::string library_path(const Library& lib) {
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::directory_iterator(lib.repo() + "/metadata/updates")) {
    if (e.path().string().find(".from-0.upd") != std::string::npos) found.push_back(e.path());
  }
  REQUIRE(found.size() == 1);
  return found.front();
}

// A node subscribing and syncing for the first time: what it did for the repository.
SyncedRepo first_sync(Library& lib) {
  REQUIRE(lib.node({"subscribe", lib.repo(), "--root-pubkey", lib.root_hex}).exit_code == 0);
  RunResult s = lib.node({"sync", "--json"});
  INFO(s.err);
  REQUIRE(s.exit_code == 0);
  return only_repo(s.out);
}

// The most thin manifests (packaging::thin_manifest) in one update file of the repository.
int thin_manifests(const std::string& repo) {
  int most = 0;
  for (const auto& e : std::filesystem::directory_iterator(repo + "/metadata/updates")) {
    if (e.path().string().find(".from-0.upd") != std::string::npos) continue;
    auto f = packaging::parse_update_file(read_all(e.path().string()), 100000);
    REQUIRE(f.ok());
    int thin = 0;
    for (const auto& entry : f->entries) {
      thin += entry.name.rfind(packaging::thin_manifest_name(""), 0) == 0 ? 1 : 0;
    }
    most = std::max(most, thin);
  }
  return most;
}

// Whether an update file of the repository carries a release patch (packaging/release_patch.h).
bool has_release_patch(const std::string& repo) {
  bool found = false;
  for (const auto& e : std::filesystem::directory_iterator(repo + "/metadata/updates")) {
    if (e.path().string().find(".from-0.upd") != std::string::npos) continue;
    auto f = packaging::parse_update_file(read_all(e.path().string()), 100000);
    REQUIRE(f.ok());
    for (const auto& entry : f->entries) found |= entry.name == packaging::kReleasePatchName;
  }
  return found;
}

}  // namespace

TEST_CASE("an update of many bundles from nginx takes at most 4 requests",
          "[integration][http][library]") {
  Library lib;
  {
    RunResult pub = lib.publish_batch();
    INFO(pub.err);
    REQUIRE(pub.exit_code == 0);
  }
  Nginx nginx(lib.repo());
  REQUIRE_RIG(nginx);
  REQUIRE(lib.node({"subscribe", nginx.url(), "--root-pubkey", lib.root_hex}).exit_code == 0);
  {
    RunResult s = lib.node({"sync", "--json"});
    INFO(s.err);
    REQUIRE(s.exit_code == 0);
  }
  lib.edit(9, "Corrigendum: paragraph 3 now reads shall instead of may.");
  {
    RunResult pub = lib.publish_batch();
    INFO(pub.err);
    REQUIRE(pub.exit_code == 0);
  }
  const std::size_t before = nginx.requests();
  RunResult s = lib.node({"sync", "--json"});
  INFO(s.err << log_text(nginx));
  REQUIRE(s.exit_code == 0);
  const SyncedRepo r = only_repo(s.out);
  CHECK(r.updated.size() == 9);
  // The nine edits are alike: one release patch for all of them (docs/format-repository.md,
  // "Release patches"), from which the node rebuilt each whole new content.
  CHECK(has_release_patch(lib.repo()));
  for (const auto& u : r.updated) CHECK(u.route == "full");
  CHECK(r.requests <= 4);
  CHECK(nginx.requests() - before <= 4);
  // Each changed manifest came thin (docs/format-repository.md, "Thin manifests"): the node
  // filled them in from what it holds and the contents it rebuilt, and asked for no manifest
  // or patch alone.
  CHECK(thin_manifests(lib.repo()) == 9);
  CHECK(r.requests == 2);
  lib.check_all_current();
  CHECK(lib.node({"verify"}).exit_code == 0);
}

TEST_CASE("thin manifests that fill in wrong cost requests, never a wrong byte",
          "[integration][library]") {
  Library lib;
  REQUIRE(lib.publish_batch().exit_code == 0);
  REQUIRE(lib.node({"subscribe", lib.repo(), "--root-pubkey", lib.root_hex}).exit_code == 0);
  REQUIRE(lib.node({"sync"}).exit_code == 0);
  lib.edit(4, "A new operative paragraph is added.");
  REQUIRE(lib.publish_batch().exit_code == 0);
  // A mirror that damaged what the update file carries for the content: the patches beside
  // the thin manifests, or the release patch in their place. Each thin manifest then fills in
  // (with the BLAKE2b of a wrong patch, or the root of a wrong content) to bytes whose SHA-256
  // is not the one the role signs.
  REQUIRE(has_release_patch(lib.repo()));
  int damaged = 0;
  for (const auto& e : std::filesystem::directory_iterator(lib.repo() + "/metadata/updates")) {
    if (e.path().string().find(".from-0.upd") != std::string::npos) continue;
    auto f = packaging::parse_update_file(read_all(e.path().string()), 100000);
    REQUIRE(f.ok());
    for (packaging::UpdateEntry& entry : f->entries) {
      if (entry.name.rfind(packaging::thin_patch_name(""), 0) != 0 &&
          entry.name != packaging::kReleasePatchName) {
        continue;
      }
      entry.data.back() ^= 0x01;
      ++damaged;
    }
    packaging::Compressor c(19, true);
    auto encoded = packaging::encode_compact_update_file(*f, c);
    REQUIRE(encoded.ok());
    write_all(e.path().string(), *encoded);
  }
  REQUIRE(damaged >= 1);
  RunResult s = lib.node({"sync", "--json"});
  INFO(s.err);
  REQUIRE(s.exit_code == 0);
  const SyncedRepo r = only_repo(s.out);
  CHECK(r.updated.size() == 4);
  // Each manifest and each patch fetched alone.
  CHECK(r.requests >= 2 + 2 * 4);
  lib.check_all_current();
  CHECK(lib.node({"verify"}).exit_code == 0);
}

TEST_CASE(
    "new bundles come with the update file, each manifest rebuilt against a bundle the node "
    "holds: 2 requests from nginx",
    "[integration][http][library]") {
  Library lib;
  REQUIRE(lib.publish_batch().exit_code == 0);
  Nginx nginx(lib.repo());
  REQUIRE_RIG(nginx);
  lib.subscribe_and_sync(nginx.url());
  lib.add_bundles(3, 400);
  lib.edit(1, "Corrigendum to the first document.");
  REQUIRE(lib.publish_batch().exit_code == 0);
  const std::size_t before = nginx.requests();
  RunResult s = lib.node({"sync", "--json"});
  INFO(s.err << log_text(nginx));
  REQUIRE(s.exit_code == 0);
  const SyncedRepo r = only_repo(s.out);
  CHECK(r.updated.size() == 4);
  // The timestamp and the update file: no manifest alone (a node that could not rebuild a new
  // bundle's manifest against its sibling's would fetch it), no patch alone.
  CHECK(r.requests <= 2);
  CHECK(nginx.requests() - before <= 2);
  lib.check_all_current();
  CHECK(lib.node({"verify"}).exit_code == 0);
}

TEST_CASE("an update of many bundles from a path reads at most 4 files", "[integration][library]") {
  Library lib;
  REQUIRE(lib.publish_batch().exit_code == 0);
  REQUIRE(lib.node({"subscribe", lib.repo(), "--root-pubkey", lib.root_hex}).exit_code == 0);
  REQUIRE(lib.node({"sync"}).exit_code == 0);
  lib.edit(kBundles, "A new operative paragraph is added.");
  REQUIRE(lib.publish_batch().exit_code == 0);
  // Every manifest changed: the update file holds them in one frame (a group), which the node
  // must rebuild to stay within its requests.
  bool grouped = false;
  for (const auto& e : std::filesystem::directory_iterator(lib.repo() + "/metadata/updates")) {
    if (e.path().string().find(".from-0.upd") != std::string::npos) continue;
    auto f = packaging::parse_update_file(read_all(e.path().string()), 100000);
    REQUIRE(f.ok());
    for (std::size_t i = 0; i < f->entries.size(); ++i) grouped |= packaging::in_group(*f, i);
  }
  CHECK(grouped);
  RunResult s = lib.node({"sync", "--json"});
  INFO(s.err);
  REQUIRE(s.exit_code == 0);
  const SyncedRepo r = only_repo(s.out);
  CHECK(r.updated.size() == static_cast<std::size_t>(kBundles));
  CHECK(r.requests <= 4);
  lib.check_all_current();
}

TEST_CASE(
    "a first sync of a library from nginx takes the library file: few requests, tar.zst bytes",
    "[integration][http][library]") {
  Library lib(60);
  {
    RunResult pub = lib.publish_batch();
    INFO(pub.err);
    REQUIRE(pub.exit_code == 0);
  }
  Nginx nginx(lib.repo());
  REQUIRE_RIG(nginx);
  REQUIRE(lib.node({"subscribe", nginx.url(), "--root-pubkey", lib.root_hex}).exit_code == 0);
  const std::size_t before = nginx.requests();
  RunResult s = lib.node({"sync", "--json"});
  INFO(s.err << log_text(nginx));
  REQUIRE(s.exit_code == 0);
  const SyncedRepo r = only_repo(s.out);
  CHECK(r.updated.size() == 60);
  CHECK(r.requests <= 10);
  CHECK(nginx.requests() - before <= 10);
  CHECK(contains(log_text(nginx), ".from-0.upd"));
  const std::uint64_t reference = lib.tar_zstd_bytes();
  INFO("sync read " << r.bytes_read << " B; tar | zstd -19 --long: " << reference << " B");
  if (reference > 0)
    CHECK(static_cast<double>(r.bytes_read) <= 1.1 * static_cast<double>(reference));
  lib.check_all_current();
  CHECK(lib.node({"verify"}).exit_code == 0);
}

// The requests nginx logged after the first `from` lines.
std::vector<std::string> log_since(const Nginx& nginx, std::size_t from) {
  std::vector<std::string> lines = nginx.access_log();
  lines.erase(lines.begin(), lines.begin() + static_cast<std::ptrdiff_t>(from));
  return lines;
}

TEST_CASE(
    "a node away longer than the update ladder reads the library's roles, then the rest of it "
    "for the full download's bytes, or only the one bundle that changed",
    "[integration][http][library]") {
  // Update files from 1 and 2 releases back only: a node 3 releases behind has none.
  Library lib(kBundles, 3000, "1,2");
  lib.patch_level = "6";
  REQUIRE(lib.publish_batch().exit_code == 0);
  Nginx nginx(lib.repo());
  REQUIRE_RIG(nginx);
  lib.subscribe_and_sync(nginx.url());
  for (int release = 1; release <= 3; ++release) {
    lib.edit(kBundles, "Release " + std::to_string(release) + " amends every document.");
    REQUIRE(lib.publish_batch().exit_code == 0);
  }
  std::size_t before = nginx.requests();
  RunResult s = lib.node({"sync", "--json"});
  INFO(s.err << log_text(nginx));
  REQUIRE(s.exit_code == 0);
  const SyncedRepo r = only_repo(s.out);
  CHECK(r.updated.size() == static_cast<std::size_t>(kBundles));
  for (const std::string& line : log_since(nginx, before)) {
    INFO(line);
    // No role file, snapshot or manifest one by one: the library file carried them.
    CHECK_FALSE(contains(line, ".lib.json"));
    CHECK_FALSE(contains(line, ".snapshot.json"));
    CHECK_FALSE(contains(line, "manifest"));
  }
  // The timestamp, the update file that does not exist, the head and metadata, the rest.
  CHECK(r.requests <= 5);
  lib.check_all_current();
  CHECK(lib.node({"verify"}).exit_code == 0);
  // What a node holding nothing reads for this release: the gap costs at most 2 KB more.
  TempDir fresh;
  const std::string fresh_store = fresh.path() + "/store";
  REQUIRE(
      run_outpost({"subscribe", nginx.url(), "--root-pubkey", lib.root_hex, "--store", fresh_store})
          .exit_code == 0);
  RunResult f = run_outpost({"sync", "--json", "--store", fresh_store});
  REQUIRE(f.exit_code == 0);
  const SyncedRepo full = only_repo(f.out);
  INFO("away 3 releases: " << r.bytes_read << " B in " << r.requests << " requests; full download: "
                           << full.bytes_read << " B in " << full.requests);
  CHECK(r.bytes_read <= full.bytes_read + 2048);

  // Three releases that change one bundle: the node reads the roles from the library file
  // and then that bundle alone, never the rest of the file.
  for (int release = 4; release <= 6; ++release) {
    lib.edit(1, "Release " + std::to_string(release) + " amends the first document.");
    REQUIRE(lib.publish_batch().exit_code == 0);
  }
  before = nginx.requests();
  s = lib.node({"sync", "--json"});
  INFO(s.err << log_text(nginx));
  REQUIRE(s.exit_code == 0);
  const SyncedRepo one = only_repo(s.out);
  REQUIRE(one.updated.size() == 1);
  CHECK(one.updated[0].bundle == "lib/doc/b00");
  std::size_t library_reads = 0;
  for (const std::string& line : log_since(nginx, before)) {
    INFO(line);
    if (!contains(line, ".from-0.upd")) continue;
    ++library_reads;
    CHECK(contains(line, "\"bytes=0-"));  // its start only
    CHECK_FALSE(contains(line, ".lib.json"));
  }
  CHECK(library_reads == 1);
  lib.check_all_current();
}

TEST_CASE(
    "a store that lost the content of most bundles gets it back from the library file in a "
    "few requests",
    "[integration][http][library]") {
  Library lib;
  lib.patch_level = "6";
  REQUIRE(lib.publish_batch().exit_code == 0);
  Nginx nginx(lib.repo());
  REQUIRE_RIG(nginx);
  lib.subscribe_and_sync(nginx.url());
  // Every stored chunk damaged (a failing SD card): a byte flipped in each block and in each
  // chunk kept in a record of its own. verify --repair then drops them all.
  {
    storage::StoreOptions o;
    o.dir = lib.store();
    auto store = storage::Store::open(o);
    REQUIRE(store.ok());
    REQUIRE((*store)
                ->update([](storage::WriteTxn& w) -> Status {
                  for (auto table : {storage::Table::kChunkBlocks, storage::Table::kChunks}) {
                    std::vector<std::pair<Bytes, Bytes>> damaged;
                    OUTPOST_RETURN_IF_ERROR(w.scan(table, {}, [&](ByteView k, ByteView v) {
                      if (table == storage::Table::kChunks && v.size() == 17) return true;
                      Bytes value(v.begin(), v.end());
                      value[value.size() / 2] ^= 0x5A;
                      damaged.emplace_back(Bytes(k.begin(), k.end()), std::move(value));
                      return true;
                    }));
                    for (const auto& [k, v] : damaged) {
                      OUTPOST_RETURN_IF_ERROR(w.put(table, ByteView(k), ByteView(v)));
                    }
                  }
                  return Status::Ok();
                })
                .ok());
  }
  RunResult repair = lib.node({"verify", "--repair"});
  INFO(repair.out << repair.err);
  CHECK(contains(repair.out, "damaged chunk record(s)"));
  const std::size_t before = nginx.requests();
  RunResult s = lib.node({"sync", "--json"});
  INFO(s.err << log_text(nginx));
  REQUIRE(s.exit_code == 0);
  const SyncedRepo r = only_repo(s.out);
  CHECK(r.requests <= 4);
  CHECK(nginx.requests() - before <= 4);
  bool library = false;
  for (const std::string& line : log_since(nginx, before)) library |= contains(line, ".from-0.upd");
  CHECK(library);
  lib.check_all_current();
  RunResult v = lib.node({"verify"});
  INFO(v.out << v.err);
  CHECK(v.exit_code == 0);
}

TEST_CASE(
    "from an nginx that answers at most 4 ranges a request, a library's first sync, update and "
    "long absence stay within twice their requests, every bundle right",
    "[integration][http][library]") {
  Library lib(kBundles, 3000, "1");  // update files from the release before only
  lib.patch_level = "6";
  REQUIRE(lib.publish_batch().exit_code == 0);
  Nginx nginx(lib.repo(), false, 4);
  REQUIRE_RIG(nginx);
  REQUIRE(lib.node({"subscribe", nginx.url(), "--root-pubkey", lib.root_hex}).exit_code == 0);
  auto sync_within = [&](std::int64_t target) {
    RunResult s = lib.node({"sync", "--json"});
    INFO(s.err << log_text(nginx));
    REQUIRE(s.exit_code == 0);
    CHECK(only_repo(s.out).requests <= 2 * target);
    lib.check_all_current();
  };
  sync_within(10);  // the first sync: the library file
  lib.edit(kBundles, "A first amendment to every document.");
  REQUIRE(lib.publish_batch().exit_code == 0);
  sync_within(4);  // an update: the update file carries the patches
  for (int release = 1; release <= 2; ++release) {
    lib.edit(kBundles, "Amendment " + std::to_string(release) + " while the node is away.");
    REQUIRE(lib.publish_batch().exit_code == 0);
  }
  sync_within(4);  // away longer than the ladder: the library's head and metadata, its rest
  RunResult v = lib.node({"verify"});
  INFO(v.out << v.err);
  CHECK(v.exit_code == 0);
}

TEST_CASE("a damaged library file costs only its request: the bundles come one by one",
          "[integration][library]") {
  Library lib(6);
  REQUIRE(lib.publish_batch().exit_code == 0);
  const std::string library = library_path(lib);
  flip_byte(library, std::filesystem::file_size(library) / 2);
  CHECK(first_sync(lib).updated.size() == 6);
  lib.check_all_current();
}

packaging::UpdateFile read_library(const std::string& path) {
  auto file = packaging::parse_library_file(read_all(path), 64 << 20, 100000);
  REQUIRE(file.ok());
  return std::move(*file);
}

// Writes `file` as the library file at `path` as a publisher lays one out: its head, the
// metadata (the entries before the first manifest) in one frame, the bundles in another.
void write_library(const std::string& path, const packaging::UpdateFile& file) {
  auto encoded = packaging::encode_update_file(file);
  REQUIRE(encoded.ok());
  std::size_t metadata_end = packaging::kUpdateHeaderBytes;
  for (const packaging::UpdateEntry& e : file.entries) {
    if (e.name.rfind(packaging::library_manifest_name(""), 0) == 0) break;
    metadata_end += packaging::update_entry_bytes(e);
  }
  Bytes out(packaging::kLibraryHeadBytes);
  auto add_frame = [&](ByteView part) {
    Bytes frame(ZSTD_compressBound(part.size()));
    const std::size_t n = ZSTD_compress(frame.data(), frame.size(), part.data(), part.size(), 3);
    REQUIRE_FALSE(ZSTD_isError(n));
    out.insert(out.end(), frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
  };
  add_frame(ByteView(*encoded).first(metadata_end));
  const std::uint64_t metadata_frame = out.size() - packaging::kLibraryHeadBytes;
  add_frame(ByteView(*encoded).subspan(metadata_end));
  const Bytes head = packaging::encode_library_head({metadata_frame, out.size()});
  std::copy(head.begin(), head.end(), out.begin());
  write_all(path, out);
}

TEST_CASE(
    "a library file with one bundle's content damaged: the others come from it, that one on "
    "its own, never a wrong byte",
    "[integration][library]") {
  Library lib(6);
  REQUIRE(lib.publish_batch().exit_code == 0);
  const std::string path = library_path(lib);
  packaging::UpdateFile file = read_library(path);
  // Every manifest is rootless: the node computes each root from the content beside it.
  int rootless = 0;
  bool damaged = false;
  for (packaging::UpdateEntry& e : file.entries) {
    const std::string text(e.data.begin(), e.data.end());
    if (e.name.rfind(packaging::library_manifest_name(""), 0) == 0) {
      rootless += text.find("\"root\":\"\"") != std::string::npos ? 1 : 0;
    }
    if (e.name == packaging::library_content_name("lib/doc/b02")) {
      e.data[e.data.size() / 2] ^= 0x20;  // a letter's case: the same length, another root
      damaged = true;
    }
  }
  CHECK(rootless == 6);
  REQUIRE(damaged);
  write_library(path, file);

  const SyncedRepo r = first_sync(lib);
  CHECK(r.updated.size() == 6);
  // The timestamp and the library file, then the damaged bundle's manifest and its patch
  // from 0: the five others took nothing more.
  CHECK(r.requests == 2 + 2);
  lib.check_all_current();
  CHECK(lib.node({"verify"}).exit_code == 0);
}

TEST_CASE(
    "a library file of the earlier layout, whole manifests and contents named by root, is "
    "still read in 2 requests",
    "[integration][library]") {
  Library lib(6);
  REQUIRE(lib.publish_batch().exit_code == 0);
  const std::string path = library_path(lib);
  packaging::UpdateFile file = read_library(path);
  const std::string by_bundle = packaging::library_content_name("");
  std::map<std::string, crypto::Digest> roots;
  for (packaging::UpdateEntry& e : file.entries) {
    if (e.name.rfind(by_bundle, 0) != 0) continue;
    const crypto::Digest root = crypto::blake2b(ByteView(e.data));
    roots.emplace(e.name.substr(by_bundle.size()), root);
    e.name = packaging::content_entry_name(root);
  }
  REQUIRE(roots.size() == 6);
  for (packaging::UpdateEntry& e : file.entries) {
    const std::string manifest = packaging::library_manifest_name("");
    if (e.name.rfind(manifest, 0) != 0) continue;
    auto whole = packaging::fill_rootless_manifest(ByteView(e.data),
                                                   roots.at(e.name.substr(manifest.size())));
    REQUIRE(whole);
    e.data = std::move(*whole);
    e.result_length = e.data.size();
  }
  write_library(path, file);

  const SyncedRepo r = first_sync(lib);
  CHECK(r.updated.size() == 6);
  CHECK(r.requests == 2);
  lib.check_all_current();
}

// The library file of release N, split into its zstd frames (the metadata, then one frame per
// group of bundles), after its head (a skippable frame).
std::vector<Bytes> library_frames(const std::string& repo, std::int64_t version) {
  const Bytes file =
      read_all(repo + "/metadata/updates/" + std::to_string(version) + ".from-0.upd");
  REQUIRE(file.size() > 32);
  REQUIRE(get_u32le(file.data()) == 0x184D2A5Bu);
  REQUIRE(get_u64le(file.data() + 24) == file.size());
  std::vector<Bytes> frames;
  for (std::size_t at = 32; at < file.size();) {
    const std::size_t n = ZSTD_findFrameCompressedSize(file.data() + at, file.size() - at);
    REQUIRE_FALSE(ZSTD_isError(n));
    if (frames.empty()) REQUIRE(get_u64le(file.data() + 16) == n);  // the head says its size
    frames.emplace_back(file.begin() + static_cast<std::ptrdiff_t>(at),
                        file.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
  }
  return frames;
}

std::int64_t snapshot_version(const std::string& repo) {
  std::int64_t newest = 0;
  for (const auto& e : std::filesystem::directory_iterator(repo + "/metadata/updates")) {
    const std::string name = e.path().filename();
    if (name.size() > 11 && name.compare(name.size() - 11, 11, ".from-0.upd") == 0)
      newest = std::max<std::int64_t>(newest, std::stoll(name));
  }
  return newest;
}

TEST_CASE(
    "a release changing one bundle of a large library compresses only that bundle's group of "
    "its library file again, and a node syncs from the file",
    "[integration][library]") {
  Library lib(50, 18000);  // about 7 MB of text: the metadata and two groups of bundles
  lib.patch_level = "6";   // what is compressed again is the point, not how small
  REQUIRE(lib.publish_batch().exit_code == 0);
  const std::int64_t first = snapshot_version(lib.repo());
  const std::vector<Bytes> before = library_frames(lib.repo(), first);
  REQUIRE(before.size() >= 3);
  lib.edit(1, "A new operative paragraph is added.");
  RunResult pub =
      run_outpost({"publish", lib.repo(), "--key", lib.keys() + "/lib.key", "--keys", lib.keys(),
                   "--batch", lib.batch(), "--patch-level", lib.patch_level, "--json"});
  INFO(pub.err);
  REQUIRE(pub.exit_code == 0);
  auto j = parse_json(pub.out);
  REQUIRE(j.ok());
  const Json* written = j->find("library_file");
  REQUIRE(written != nullptr);
  const std::int64_t second = snapshot_version(lib.repo());
  REQUIRE(second > first);
  const std::vector<Bytes> after = library_frames(lib.repo(), second);
  REQUIRE(after.size() == before.size());
  // (Compared as bools: Catch would print megabytes of frames.)
  CHECK_FALSE(bool(after.front() == before.front()));  // the snapshot and the roles
  CHECK_FALSE(bool(after[1] == before[1]));            // the group of lib/doc/b00
  for (std::size_t i = 2; i < after.size(); ++i) {
    INFO("frame " << i);
    CHECK(bool(after[i] == before[i]));
  }
  // Those were copied from the previous file, not compressed again.
  CHECK(written->find("frames")->as_int() == static_cast<std::int64_t>(after.size()));
  CHECK(written->find("copied")->as_int() == static_cast<std::int64_t>(after.size() - 2));
  // The file with copied frames is whole: a node holding nothing syncs every bundle from it.
  const SyncedRepo r = first_sync(lib);
  CHECK(r.updated.size() == 50);
  CHECK(r.requests <= 3);
  lib.check_all_current();
}

TEST_CASE("a batch with one undelegated bundle publishes nothing and names it",
          "[integration][library]") {
  Library lib;
  REQUIRE(lib.publish_batch().exit_code == 0);
  const Bytes timestamp = read_all(lib.repo() + "/metadata/timestamp.json");
  lib.edit(3, "An edit that must not be published.");
  make_dirs(lib.batch() + "/zz-stray");
  write_text(lib.batch() + "/zz-stray/bundle.json", "{\"name\": \"other/doc/stray\"}");
  write_text(lib.batch() + "/zz-stray/a.md", "text");
  RunResult pub = lib.publish_batch();
  CHECK(pub.exit_code != 0);
  CHECK(contains(pub.err, "other/doc/stray"));
  CHECK(contains(pub.err, "nothing was published"));
  CHECK(read_all(lib.repo() + "/metadata/timestamp.json") == timestamp);
  // A bad name is refused the same way, naming its folder.
  write_text(lib.batch() + "/zz-stray/bundle.json", "{\"name\": \"lib/../x\"}");
  pub = lib.publish_batch();
  CHECK(pub.exit_code != 0);
  CHECK(contains(pub.err, "zz-stray"));
  CHECK(read_all(lib.repo() + "/metadata/timestamp.json") == timestamp);
}

}  // namespace outpost::test
