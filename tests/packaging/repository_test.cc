#include "outpost/packaging/repository.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "outpost/base/clock.h"
#include "outpost/base/fs.h"
#include "outpost/crypto/hash.h"
#include "outpost/crypto/keys.h"
#include "outpost/crypto/tuf.h"
#include "outpost/packaging/bundle_source.h"
#include "outpost/packaging/chunk_index.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/pack.h"
#include "support/fake_clock.h"
#include "support/test_support.h"

namespace op = outpost::packaging;
namespace tuf = outpost::crypto::tuf;
namespace fs = std::filesystem;
using outpost::Bytes;
using outpost::ByteView;
using outpost::Code;
using outpost::Status;
using outpost::crypto::SecretKey;

namespace {

using FixedClock = outpost::test::FakeClock;

SecretKey new_key() {
  REQUIRE(outpost::crypto::init());
  auto k = SecretKey::generate();
  REQUIRE(k.ok());
  return std::move(k).value();
}

// Copies a sample folder and makes it writable (the samples are read-only).
void copy_sample(const std::string& from, const std::string& to) {
  outpost::test::copy_tree(from, to);
  for (const auto& e : fs::recursive_directory_iterator(to)) {
    fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  }
  fs::permissions(to, fs::perms::owner_write, fs::perm_options::add);
}

// A repository with every key, the "un" and "itu" prefixes delegated to `publisher`.
struct Repo {
  outpost::test::TempDir tmp;
  std::string dir = tmp / "repo";
  SecretKey root = new_key();
  SecretKey targets = new_key();
  SecretKey snapshot = new_key();
  SecretKey timestamp = new_key();
  SecretKey publisher = new_key();
  FixedClock clock{1795887780};

  Repo() {
    op::InitOptions o;
    o.root_keys = {&root};
    o.targets_key = &targets;
    o.snapshot_key = &snapshot;
    o.timestamp_key = &timestamp;
    o.clock = &clock;
    REQUIRE(op::init_repository(dir, o).ok());
    REQUIRE(
        op::delegate(dir, targets, snapshot, timestamp, publisher.public_key(), "un", clock).ok());
    REQUIRE(
        op::delegate(dir, targets, snapshot, timestamp, publisher.public_key(), "itu", clock).ok());
  }

  op::PublishOptions options(const std::string& src, const SecretKey* key = nullptr) {
    op::PublishOptions o;
    o.source_dir = src;
    o.publisher_key = key != nullptr ? key : &publisher;
    o.snapshot_key = &snapshot;
    o.timestamp_key = &timestamp;
    o.clock = &clock;
    return o;
  }

  op::PublishResult publish_ok(const std::string& src, std::optional<std::string> name = {}) {
    op::PublishOptions o = options(src);
    o.overrides.name = std::move(name);
    clock.advance(60);
    auto r = op::publish(dir, o);
    INFO(r.status().message());
    REQUIRE(r.ok());
    return std::move(r).value();
  }
};

// Reads metadata files from a repository folder, as a TUF client would from a mirror.
class DirSource : public tuf::MetadataSource {
 public:
  explicit DirSource(std::string dir) : dir_(std::move(dir)) {}
  outpost::Result<Bytes> fetch(const std::string& filename, std::uint64_t max_length) override {
    const std::string p = dir_ + "/metadata/" + filename;
    if (!fs::exists(p)) return Status::NotFound(filename);
    Bytes b = outpost::test::read_all(p);
    if (b.size() > max_length) return Status::Corruption(filename + " longer than declared");
    return b;
  }

 private:
  std::string dir_;
};

// Rebuilds every file of the current version of `bundle` from the repository's packs and
// checks it against `src_dir`, and the content root against the manifest.
void check_rebuild(const std::string& repo, const std::string& bundle, const std::string& src_dir) {
  auto st = op::load_repository(repo);
  REQUIRE(st.ok());
  auto pm = op::load_current_manifest(repo, *st, bundle);
  REQUIRE(pm.ok());
  const op::Manifest& m = pm->manifest;
  const Bytes ibytes = outpost::test::read_all(repo + "/" + m.index.path);
  CHECK(outpost::crypto::blake2b(ibytes) == m.index.blake2b);
  auto idx = op::ChunkIndex::parse(ibytes, m.chunking.max);
  REQUIRE(idx.ok());
  REQUIRE(idx->check_against(m).ok());
  op::Decompressor d;
  op::ContentHasher h;
  std::size_t k = 0;
  for (std::size_t f = 0; f < m.files.size(); ++f) {
    REQUIRE(h.add_file(m.files[f].path, m.files[f].mode, m.files[f].size).ok());
    Bytes file;
    for (std::uint32_t n = 0; n < idx->file_chunks[f]; ++n, ++k) {
      const op::ChunkEntry& e = idx->chunks[k];
      auto raw = op::read_chunk(repo + "/" + op::pack_object_path(idx->packs[e.pack]), e, d);
      REQUIRE(raw.ok());
      file.insert(file.end(), raw->begin(), raw->end());
    }
    REQUIRE(h.update(file).ok());
    CHECK(file == outpost::test::read_all(src_dir + "/" + m.files[f].path));
  }
  auto root = h.finish();
  REQUIRE(root.ok());
  CHECK(*root == m.content_root);
}

std::set<outpost::crypto::Digest> chunk_ids_of_dir(const std::string& dir) {
  std::set<outpost::crypto::Digest> ids;
  auto src = op::read_bundle_dir(dir, {.name = "x/y"});
  REQUIRE(src.ok());
  for (const auto& f : src->files) {
    REQUIRE(op::chunk_file(src->full_path(f), {}, [&](ByteView c) {
              ids.insert(outpost::crypto::blake2b(c));
              return Status::Ok();
            }).ok());
  }
  return ids;
}

std::size_t count_files(const std::string& dir) {
  std::size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("publishing the samples makes a repository a TUF client can verify",
          "[packaging][repository]") {
  Repo repo;
  const std::string res = repo.tmp / "src/res";
  const std::string ind = repo.tmp / "src/ind";
  copy_sample(outpost::test::samples_dir() + "/resolutions/A-RES-75-202", res);
  copy_sample(outpost::test::samples_dir() + "/indicators/itu-ict-2019", ind);

  const auto r1 = repo.publish_ok(res);
  CHECK(r1.bundle == "un/ga/A-RES-75-202");
  CHECK(r1.version == 1);
  CHECK(!r1.unchanged);
  CHECK(r1.files == 2);
  CHECK(r1.bytes == 42027 + fs::file_size(res + "/bundle.json"));
  CHECK(r1.new_chunks >= 2);
  CHECK(r1.reused_chunks == 0);
  CHECK(r1.pack_bytes > 0);
  REQUIRE(r1.pack_id);
  CHECK(fs::exists(repo.dir + "/" + op::pack_object_path(*r1.pack_id)));
  const auto r2 = repo.publish_ok(ind);
  CHECK(r2.bundle == "itu/ict/digital-divide-2019");
  CHECK(r2.version == 1);

  check_rebuild(repo.dir, "un/ga/A-RES-75-202", res);
  check_rebuild(repo.dir, "itu/ict/digital-divide-2019", ind);

  auto st = op::load_repository(repo.dir);
  REQUIRE(st.ok());
  auto pm = op::load_current_manifest(repo.dir, *st, "un/ga/A-RES-75-202");
  REQUIRE(pm.ok());
  CHECK(pm->manifest.kind == "resolution");
  CHECK(pm->manifest.meta.find("symbol") != nullptr);
  CHECK(pm->manifest.meta.find("name") == nullptr);
  CHECK(pm->manifest.meta.find("files") == nullptr);
  CHECK(pm->manifest.files[0].type == "text/markdown");

  // An independent check of the metadata: the TUF client workflow from the first root.
  tuf::TrustedMetadata trusted;
  trusted.root = outpost::test::read_all(repo.dir + "/metadata/1.root.json");
  DirSource source(repo.dir);
  tuf::UpdaterOptions uo;
  uo.now = repo.clock.now();
  tuf::Updater updater(trusted, source, uo);
  Status s = updater.refresh();
  INFO(s.message());
  REQUIRE(s.ok());
  auto tf = updater.find_target("un/ga/A-RES-75-202/manifest.json");
  INFO(tf.status().message());
  REQUIRE(tf.ok());
  CHECK(tf->length == static_cast<std::int64_t>(pm->bytes.size()));
  CHECK(tf->sha256 == outpost::crypto::hex(outpost::crypto::sha256(pm->bytes)));
  const outpost::Json* custom = tf->custom.find("outpost");
  REQUIRE(custom != nullptr);
  CHECK(custom->find("version")->as_int() == 1);
  CHECK(custom->find("kind")->as_string() == "resolution");

  // No key material in the tree.
  for (const auto& e : fs::recursive_directory_iterator(repo.dir)) {
    if (!e.is_regular_file()) continue;
    const std::string text(outpost::as_chars(outpost::test::read_all(e.path().string())));
    CHECK(text.find("secret") == std::string::npos);
  }
}

TEST_CASE("a second version stores only the chunks that changed", "[packaging][repository]") {
  Repo repo;
  const std::string src = repo.tmp / "src";
  copy_sample(outpost::test::samples_dir() + "/resolutions/A-RES-75-202", src);
  // A larger file so the edit sits among many chunks.
  Bytes big = outpost::test::random_bytes(2u << 20, 77);
  outpost::test::write_all(src + "/annex.bin", big);
  const auto v1 = repo.publish_ok(src);
  const auto ids_v1 = chunk_ids_of_dir(src);
  CHECK(v1.new_chunks == ids_v1.size());

  big[1u << 20] ^= 0xFF;  // one byte in the middle
  outpost::test::write_all(src + "/annex.bin", big);
  const auto ids_v2 = chunk_ids_of_dir(src);
  std::size_t expected_new = 0;
  for (const auto& id : ids_v2) expected_new += ids_v1.count(id) == 0 ? 1 : 0;
  CHECK(expected_new >= 1);
  CHECK(expected_new <= 2);

  const auto v2 = repo.publish_ok(src);
  CHECK(v2.version == 2);
  CHECK(v2.new_chunks == expected_new);
  CHECK(v2.reused_chunks > 200);
  CHECK(v2.pack_bytes < 2 * 65536 + 1024);
  check_rebuild(repo.dir, "un/ga/A-RES-75-202", src);

  SECTION("publishing identical content again is unchanged") {
    auto ts_before = outpost::test::read_all(repo.dir + "/metadata/timestamp.json");
    const std::size_t files_before = count_files(repo.dir);
    const auto v3 = repo.publish_ok(src);
    CHECK(v3.unchanged);
    CHECK(v3.version == 2);
    CHECK(v3.new_chunks == 0);
    CHECK(outpost::test::read_all(repo.dir + "/metadata/timestamp.json") == ts_before);
    CHECK(count_files(repo.dir) == files_before);
  }
  SECTION("a changed title alone is a new version") {
    op::PublishOptions o = repo.options(src);
    o.overrides.title = "A new title";
    auto v3 = op::publish(repo.dir, o);
    REQUIRE(v3.ok());
    CHECK(!v3->unchanged);
    CHECK(v3->version == 3);
    CHECK(v3->new_chunks == 0);
    CHECK(!v3->pack_id);
  }
}

TEST_CASE("content shared between two bundles is stored once", "[packaging][repository]") {
  Repo repo;
  const std::string a = repo.tmp / "a";
  const std::string b = repo.tmp / "b";
  outpost::test::make_dirs(a);
  outpost::test::make_dirs(b + "/sub");
  const Bytes data = outpost::test::random_bytes(500000, 5);
  outpost::test::write_all(a + "/data.bin", data);
  outpost::test::write_all(b + "/sub/copy.bin", data);
  const auto ra = repo.publish_ok(a, "un/stats/one");
  CHECK(ra.new_chunks > 20);
  const auto rb = repo.publish_ok(b, "un/stats/two");
  CHECK(rb.version == 1);
  CHECK(rb.new_chunks == 0);
  CHECK(rb.reused_chunks == ra.new_chunks);
  CHECK(!rb.pack_id);
  std::size_t packs = 0;
  for (const auto& e : fs::directory_iterator(repo.dir + "/packs"))
    packs += e.path().extension() == ".pack";
  CHECK(packs == 1);
  check_rebuild(repo.dir, "un/stats/two", b);
}

TEST_CASE("a bundle name outside the publisher's delegation is refused",
          "[packaging][repository]") {
  Repo repo;
  const std::string src = repo.tmp / "src";
  outpost::test::make_dirs(src);
  outpost::test::write_text(src + "/a.txt", "hello");

  op::PublishOptions o = repo.options(src);
  o.overrides.name = "who/else/thing";
  auto r = op::publish(repo.dir, o);
  REQUIRE(!r.ok());
  CHECK(r.error().code() == Code::kFailedPrecondition);
  CHECK_THAT(r.error().message(),
             Catch::Contains("no delegation covers bundle name who/else/thing"));

  SecretKey other = new_key();
  op::PublishOptions o2 = repo.options(src, &other);
  o2.overrides.name = "un/ga/thing";
  auto r2 = op::publish(repo.dir, o2);
  REQUIRE(!r2.ok());
  CHECK(r2.error().code() == Code::kFailedPrecondition);
  CHECK_THAT(r2.error().message(), Catch::Contains("is not delegated bundle name un/ga/thing"));
  CHECK_THAT(r2.error().message(), Catch::Contains("outpost repo delegate"));

  // A more specific delegation to the other key takes "un/ga" away from the first publisher.
  REQUIRE(op::delegate(repo.dir, repo.targets, repo.snapshot, repo.timestamp, other.public_key(),
                       "un/ga", repo.clock)
              .ok());
  {
    auto r3 = op::publish(repo.dir, o2);
    INFO(r3.status().message());
    CHECK(r3.ok());
  }
  op::PublishOptions o3 = repo.options(src);
  o3.overrides.name = "un/ga/other";
  CHECK(op::publish(repo.dir, o3).status().code() == Code::kFailedPrecondition);
  o3.overrides.name = "un/sc/other";
  CHECK(op::publish(repo.dir, o3).ok());

  // The wrong snapshot key is caught before anything is written.
  op::PublishOptions o4 = repo.options(src);
  o4.overrides.name = "un/sc/third";
  o4.snapshot_key = &other;
  CHECK(op::publish(repo.dir, o4).status().code() == Code::kFailedPrecondition);
}

TEST_CASE("delegation prefixes that clash with TUF role names are refused",
          "[packaging][repository]") {
  Repo repo;
  for (const char* bad : {"targets", "root", "snapshot", "timestamp", "un/../x", "a b", ""}) {
    INFO(bad);
    CHECK(op::delegate(repo.dir, repo.targets, repo.snapshot, repo.timestamp,
                       repo.publisher.public_key(), bad, repo.clock)
              .code() == Code::kInvalidArgument);
  }
  REQUIRE(op::delegate(repo.dir, repo.targets, repo.snapshot, repo.timestamp,
                       repo.publisher.public_key(), "a.b", repo.clock)
              .ok());
  CHECK(op::delegate(repo.dir, repo.targets, repo.snapshot, repo.timestamp,
                     repo.publisher.public_key(), "a/b", repo.clock)
            .code() == Code::kInvalidArgument);
  CHECK(op::role_paths_for_prefix("un/ga") ==
        std::vector<std::string>{"un/ga/*", "un/ga/*/*", "un/ga/*/*/*", "un/ga/*/*/*/*",
                                 "un/ga/*/*/*/*/*"});
  CHECK(op::role_name_for_prefix("un/ga") == "un.ga");
  // The wrong targets key cannot delegate.
  CHECK(op::delegate(repo.dir, repo.publisher, repo.snapshot, repo.timestamp,
                     repo.publisher.public_key(), "x", repo.clock)
            .code() == Code::kFailedPrecondition);
}

TEST_CASE("source folders with links, odd files or bad names are refused",
          "[packaging][repository]") {
  outpost::test::TempDir tmp;
  const std::string src = tmp / "src";
  outpost::test::make_dirs(src + "/d");
  outpost::test::write_text(src + "/d/b.txt", "b");
  outpost::test::write_text(src + "/a.txt", "a");
  outpost::test::write_text(src + "/run.sh", "#!/bin/sh\n");
  ::chmod((src + "/run.sh").c_str(), 0700);
  auto ok = op::read_bundle_dir(src, {.name = "un/x"});
  REQUIRE(ok.ok());
  CHECK(ok->kind == "generic");
  REQUIRE(ok->files.size() == 3);
  CHECK(ok->files[0].path == "a.txt");
  CHECK(ok->files[1].path == "d/b.txt");
  CHECK(ok->files[2].path == "run.sh");
  CHECK(ok->files[2].mode == 0755);
  CHECK(ok->files[0].mode == 0644);

  CHECK(op::read_bundle_dir(src).status().code() == Code::kInvalidArgument);  // no name
  CHECK(op::read_bundle_dir(src, {.name = "bad"}).status().code() == Code::kInvalidArgument);
  CHECK(op::read_bundle_dir(src, {.name = "un/x", .kind = "novel"}).status().code() ==
        Code::kInvalidArgument);
  CHECK(op::read_bundle_dir(tmp / "missing", {.name = "un/x"}).status().code() == Code::kNotFound);

  SECTION("symlink") {
    REQUIRE(::symlink("/etc/passwd", (src + "/passwd").c_str()) == 0);
    auto r = op::read_bundle_dir(src, {.name = "un/x"});
    REQUIRE(!r.ok());
    CHECK(r.error().code() == Code::kInvalidArgument);
    CHECK_THAT(r.error().message(), Catch::Contains("symbolic link"));
  }
  SECTION("backslash in a name") {
    outpost::test::write_text(src + "/a\\b.txt", "x");
    CHECK(op::read_bundle_dir(src, {.name = "un/x"}).status().code() == Code::kInvalidArgument);
  }
  SECTION("control character in a name") {
    outpost::test::write_text(src + "/a\nb.txt", "x");
    CHECK(op::read_bundle_dir(src, {.name = "un/x"}).status().code() == Code::kInvalidArgument);
  }
  SECTION("FIFO") {
    REQUIRE(::mkfifo((src + "/pipe").c_str(), 0644) == 0);
    CHECK(op::read_bundle_dir(src, {.name = "un/x"}).status().code() == Code::kInvalidArgument);
  }
  SECTION("bundle.json names the bundle, overrides win") {
    outpost::test::write_text(
        src + "/bundle.json",
        R"({"name":"un/from-file","kind":"indicator","title":"T","files":{"a":"a.txt"}})");
    auto r = op::read_bundle_dir(src);
    REQUIRE(r.ok());
    CHECK(r->name == "un/from-file");
    CHECK(r->kind == "indicator");
    CHECK(r->meta.find("title")->as_string() == "T");
    CHECK(r->meta.find("files") == nullptr);
    CHECK(r->files.size() == 4);  // bundle.json is published too
    auto o = op::read_bundle_dir(src, {.name = "un/other", .title = "New"});
    REQUIRE(o.ok());
    CHECK(o->name == "un/other");
    CHECK(o->meta.find("title")->as_string() == "New");
    outpost::test::write_text(src + "/bundle.json", R"({"name":"un/x","files":{"a":"nope.txt"}})");
    CHECK(op::read_bundle_dir(src).status().code() == Code::kInvalidArgument);
    outpost::test::write_text(src + "/bundle.json", R"({"name":)");
    CHECK(op::read_bundle_dir(src).status().code() == Code::kCorruption);
  }
}

TEST_CASE("init refuses a non-empty folder, and refresh and rotate keep clients following",
          "[packaging][repository]") {
  Repo repo;
  SecretKey k = new_key();
  op::InitOptions o;
  o.root_keys = {&k};
  o.targets_key = &k;
  o.snapshot_key = &k;
  o.timestamp_key = &k;
  CHECK(op::init_repository(repo.dir, o).code() == Code::kFailedPrecondition);
  o.threshold = 2;
  CHECK(op::init_repository(repo.tmp / "new", o).code() == Code::kInvalidArgument);

  const std::string src = repo.tmp / "src";
  copy_sample(outpost::test::samples_dir() + "/resolutions/A-RES-75-202", src);
  repo.publish_ok(src);

  tuf::TrustedMetadata trusted;
  trusted.root = outpost::test::read_all(repo.dir + "/metadata/1.root.json");
  DirSource source(repo.dir);

  // Refresh: a new timestamp version, still valid for a client 6 days later only because of it.
  repo.clock.advance(6 * op::kSecondsPerDay);
  REQUIRE(op::refresh_timestamp(repo.dir, repo.timestamp, repo.clock).ok());
  CHECK(op::refresh_timestamp(repo.dir, repo.snapshot, repo.clock).code() ==
        Code::kFailedPrecondition);
  repo.clock.advance(3 * op::kSecondsPerDay);
  {
    tuf::UpdaterOptions uo;
    uo.now = repo.clock.now();
    tuf::Updater u(trusted, source, uo);
    Status s = u.refresh();
    INFO(s.message());
    CHECK(s.ok());
  }

  // Rotate: a new root key and a new timestamp key; the old root key is revoked.
  SecretKey root2 = new_key();
  SecretKey ts2 = new_key();
  op::RotateOptions ro;
  ro.old_root_keys = {&repo.root};
  ro.new_root_keys = {&root2};
  ro.targets_key = &repo.targets;
  ro.snapshot_key = &repo.snapshot;
  ro.timestamp_key = &ts2;
  ro.clock = &repo.clock;
  op::RotateOptions missing_old = ro;
  missing_old.old_root_keys = {&root2};
  CHECK(op::rotate_root(repo.dir, missing_old).code() == Code::kFailedPrecondition);
  REQUIRE(op::rotate_root(repo.dir, ro).ok());
  CHECK(fs::exists(repo.dir + "/metadata/2.root.json"));
  CHECK(outpost::test::read_all(repo.dir + "/metadata/root.json") ==
        outpost::test::read_all(repo.dir + "/metadata/2.root.json"));
  {
    tuf::UpdaterOptions uo;
    uo.now = repo.clock.now();
    tuf::Updater u(trusted, source, uo);
    Status s = u.refresh();
    INFO(s.message());
    REQUIRE(s.ok());
    CHECK(u.root().version == 2);
    CHECK(u.find_target("un/ga/A-RES-75-202/manifest.json").ok());
  }
  // The old timestamp key no longer works; the new one does.
  CHECK(op::refresh_timestamp(repo.dir, repo.timestamp, repo.clock).code() ==
        Code::kFailedPrecondition);
  CHECK(op::refresh_timestamp(repo.dir, ts2, repo.clock).ok());

  // A month without publications: the snapshot would expire under a fresh timestamp, so only
  // a refresh with the snapshot key keeps the repository valid.
  repo.clock.advance(25 * op::kSecondsPerDay);
  CHECK(op::refresh_timestamp(repo.dir, ts2, repo.clock).code() == Code::kFailedPrecondition);
  CHECK(op::refresh_snapshot(repo.dir, repo.snapshot, repo.timestamp, repo.clock).code() ==
        Code::kFailedPrecondition);
  REQUIRE(op::refresh_snapshot(repo.dir, repo.snapshot, ts2, repo.clock).ok());
  repo.clock.advance(5 * op::kSecondsPerDay);
  {
    tuf::UpdaterOptions uo;
    uo.now = repo.clock.now();
    tuf::Updater u(trusted, source, uo);
    Status s = u.refresh();
    INFO(s.message());
    CHECK(s.ok());
  }
}

// caniuse-lite-like data: 841 region files of statistics; ~560 change between releases.
namespace {

std::string region_name(int i) {
  const char* letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::string n;
  n += letters[i / 26 % 26];
  n += letters[i % 26];
  if (i >= 676) n += std::to_string(i / 676);
  return n;
}

struct Rng {
  std::uint64_t x;
  std::uint64_t next() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  }
};

std::string format_share(std::uint64_t v) {
  // Like caniuse-lite: shares with up to 6 significant decimals, trailing zeros dropped.
  std::string s = std::to_string(v / 1000000) + ".";
  std::string frac = std::to_string(1000000 + v % 1000000).substr(1);
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  if (frac.empty()) return std::to_string(v / 1000000);
  return s + frac;
}

void write_region(const std::string& path, std::uint64_t seed, int release) {
  Rng base{seed * 2654435761u + 1};
  Rng drift{seed * 97 + static_cast<std::uint64_t>(release) * 7919 + 3};
  std::string out = "module.exports={C:{";
  for (int browser = 0; browser < 18; ++browser) {
    if (browser > 0) out += "},";
    out += 'B';
    out += std::to_string(browser);
    out += ":{";
    for (int ver = 0; ver < 12; ++ver) {
      std::uint64_t v = base.next() % 3000000;
      if (v > 1000000) v = 0;  // many zero shares, as in the real data
      if (release > 0 && v != 0 && drift.next() % 4 == 0) v = v + drift.next() % 20000 - 10000;
      if (ver > 0) out += ",";
      out += '"';
      out += std::to_string(ver + 2);
      out += "\":";
      out += format_share(v);
    }
  }
  out += "}},B:" + std::to_string(base.next() % 100) + "};\n";
  outpost::test::write_text(path, out);
}

}  // namespace

TEST_CASE("signed metadata of a caniuse-like update compresses to under 2 KB",
          "[packaging][repository][bytes]") {
  Repo repo;
  const std::string src = repo.tmp / "caniuse";
  outpost::test::make_dirs(src + "/data/regions");
  for (int i = 0; i < 841; ++i) {
    write_region(src + "/data/regions/" + region_name(i) + ".js", static_cast<std::uint64_t>(i), 0);
  }
  const auto v1 = repo.publish_ok(src, "un/stats/caniuse-like");
  CHECK(v1.files == 841);
  auto st1 = op::load_repository(repo.dir);
  REQUIRE(st1.ok());
  auto m1 = op::load_current_manifest(repo.dir, *st1, "un/stats/caniuse-like");
  REQUIRE(m1.ok());
  const std::int64_t role_v1 = st1->snapshot.meta.at("un.json").version;

  int changed = 0;
  for (int i = 0; i < 841; ++i) {
    if (i % 3 == 2) continue;  // 2 of 3 files change: 561
    write_region(src + "/data/regions/" + region_name(i) + ".js", static_cast<std::uint64_t>(i), 1);
    ++changed;
  }
  const auto v2 = repo.publish_ok(src, "un/stats/caniuse-like");
  CHECK(v2.version == 2);
  auto st2 = op::load_repository(repo.dir);
  REQUIRE(st2.ok());
  auto m2 = op::load_current_manifest(repo.dir, *st2, "un/stats/caniuse-like");
  REQUIRE(m2.ok());
  std::size_t size_changes = 0;
  for (std::size_t i = 0; i < m2->manifest.files.size(); ++i) {
    size_changes += m1->manifest.files[i].size != m2->manifest.files[i].size ? 1 : 0;
  }
  const std::int64_t role_v2 = st2->snapshot.meta.at("un.json").version;
  CHECK(role_v2 == role_v1 + 1);
  const Bytes role1 =
      outpost::test::read_all(repo.dir + "/metadata/" + std::to_string(role_v1) + ".un.json");
  const Bytes role2 =
      outpost::test::read_all(repo.dir + "/metadata/" + std::to_string(role_v2) + ".un.json");

  op::Compressor c(19);
  auto manifest_delta = c.compress_with_prefix(m2->bytes, m1->bytes);
  auto role_delta = c.compress_with_prefix(role2, role1);
  REQUIRE(manifest_delta.ok());
  REQUIRE(role_delta.ok());
  const std::size_t total = manifest_delta->size() + role_delta->size();
  WARN("caniuse-like update: " << changed << " of 841 files changed (" << size_changes
                               << " sizes changed); manifest " << m2->bytes.size() << " B -> delta "
                               << manifest_delta->size() << " B; role metadata " << role2.size()
                               << " B -> delta " << role_delta->size() << " B; total " << total
                               << " B; new chunks " << v2.new_chunks << ", pack " << v2.pack_bytes
                               << " B");
  CHECK(changed == 561);
  CHECK(size_changes > 300);
  CHECK(total < 2048);
  // The deltas decode to the exact signed bytes.
  op::Decompressor d;
  auto back = d.decompress_with_prefix(*manifest_delta, m1->bytes, m2->bytes.size());
  REQUIRE(back.ok());
  CHECK(*back == m2->bytes);
}

#include <sys/resource.h>

TEST_CASE("publishing a 200 MB tree of 10000 files stays within bounded memory",
          "[.][bench][packaging]") {
  Repo repo;
  const std::string src = repo.tmp / "big";
  for (int d = 0; d < 100; ++d) outpost::test::make_dirs(src + "/d" + std::to_string(d));
  for (int i = 0; i < 10000; ++i) {
    // 20 KB of half-compressible data per file.
    Bytes b = outpost::test::random_bytes(20000, static_cast<std::uint64_t>(i) + 1);
    for (std::size_t k = 0; k < b.size(); k += 2) b[k] = 'a';
    outpost::test::write_all(
        src + "/d" + std::to_string(i % 100) + "/f" + std::to_string(i) + ".bin", b);
  }
  rusage before{};
  ::getrusage(RUSAGE_SELF, &before);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = repo.publish_ok(src, "un/big/tree");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage after{};
  ::getrusage(RUSAGE_SELF, &after);
  WARN("published " << r.files << " files, " << (r.bytes >> 20) << " MiB, " << r.new_chunks
                    << " chunks, pack " << (r.pack_bytes >> 20) << " MiB in " << s
                    << " s; peak RSS before " << before.ru_maxrss / 1024 << " MiB, after "
                    << after.ru_maxrss / 1024 << " MiB");
  CHECK(after.ru_maxrss / 1024 < 64);
}

// ---- patches and metadata update files ---------------------------------------------------------

#include "outpost/packaging/delta.h"
#include "outpost/packaging/release_patch.h"
#include "outpost/packaging/update_file.h"

namespace {

// The content stream of a published version, rebuilt from its index and packs.
Bytes stream_of(const std::string& repo, const op::Manifest& m) {
  const Bytes ibytes = outpost::test::read_all(repo + "/" + m.index.path);
  auto idx = op::ChunkIndex::parse(ibytes, m.chunking.max);
  REQUIRE(idx.ok());
  op::Decompressor d;
  Bytes out;
  std::size_t k = 0;
  Status s = op::write_content_stream(
      m,
      [&](std::size_t i, const op::FileEntry&, const op::ContentSink& sink) {
        for (std::uint32_t n = 0; n < idx->file_chunks[i]; ++n, ++k) {
          const op::ChunkEntry& e = idx->chunks[k];
          auto raw = op::read_chunk(repo + "/" + op::pack_object_path(idx->packs[e.pack]), e, d);
          REQUIRE(raw.ok());
          if (Status st = sink(*raw); !st.ok()) return st;
        }
        return Status::Ok();
      },
      [&](ByteView b) {
        out.insert(out.end(), b.begin(), b.end());
        return Status::Ok();
      });
  REQUIRE(s.ok());
  return out;
}

op::PublishedManifest current(const std::string& repo, const std::string& bundle) {
  auto st = op::load_repository(repo);
  REQUIRE(st.ok());
  auto pm = op::load_current_manifest(repo, *st, bundle);
  REQUIRE(pm.ok());
  return std::move(pm).value();
}

// Checks every patch of `pm` against the streams of the versions it lists: each file matches
// its path, length and hash, and applies to exactly the new stream, whose hash is the root.
void check_patches(const std::string& repo, const op::PublishedManifest& pm,
                   const std::map<std::int64_t, op::PublishedManifest>& versions) {
  const op::Manifest& m = pm.manifest;
  const Bytes expected = stream_of(repo, m);
  REQUIRE(expected.size() == op::content_stream_size(m));
  REQUIRE(outpost::crypto::blake2b(expected) == m.content_root);
  for (const op::PatchRef& p : m.patches) {
    INFO("patch from " << p.from);
    const Bytes patch = outpost::test::read_all(repo + "/" + p.path);
    CHECK(patch.size() == p.length);
    CHECK(outpost::crypto::blake2b(patch) == p.blake2b);
    Bytes from;
    if (p.from > 0) {
      const op::PublishedManifest& old = versions.at(p.from);
      CHECK(p.from_root == old.manifest.content_root);
      CHECK(p.from_manifest == outpost::crypto::sha256(old.bytes));
      CHECK(p.engine == op::DeltaEngine::kSuffix);
      from = stream_of(repo, old.manifest);
    } else {
      CHECK(p.engine == op::DeltaEngine::kZstd);
    }
    auto rebuilt = op::apply_delta(from, patch, expected.size());
    INFO(rebuilt.status().message());
    REQUIRE(rebuilt.ok());
    CHECK(outpost::crypto::blake2b(*rebuilt) == m.content_root);
    CHECK(*rebuilt == expected);
  }
}

std::set<std::int64_t> froms(const op::Manifest& m) {
  std::set<std::int64_t> out;
  for (const auto& p : m.patches) out.insert(p.from);
  return out;
}

// A folder whose content changes a little with each release.
void write_release(const std::string& src, int release) {
  Bytes big = outpost::test::random_bytes(300000, 11);
  for (int r = 1; r <= release; ++r) {
    for (int k = 0; k < 20; ++k)
      big[static_cast<std::size_t>(r * 7919 + k * 14011) % big.size()] ^= 0x5A;
  }
  outpost::test::make_dirs(src + "/data");
  outpost::test::write_all(src + "/data/annex.bin", big);
  outpost::test::write_text(src + "/notes.md", "Release " + std::to_string(release) + "\n");
}

}  // namespace

TEST_CASE("each version's manifest lists patches from 0 and from the ladder that rebuild it",
          "[packaging][repository][patches]") {
  Repo repo;
  const std::string src = repo.tmp / "src";
  const std::string name = "un/stats/release";
  std::map<std::int64_t, op::PublishedManifest> versions;

  write_release(src, 1);
  const auto r1 = repo.publish_ok(src, name);
  versions.emplace(1, current(repo.dir, name));
  CHECK(froms(versions.at(1).manifest) == std::set<std::int64_t>{0});
  REQUIRE(r1.patches.size() == 1);
  CHECK(r1.patches == versions.at(1).manifest.patches);
  check_patches(repo.dir, versions.at(1), versions);

  write_release(src, 2);
  const auto r2 = repo.publish_ok(src, name);
  const op::PublishedManifest v2 = current(repo.dir, name);
  versions.emplace(2, v2);
  CHECK(froms(v2.manifest) == std::set<std::int64_t>{0, 1});
  CHECK(r2.patches == v2.manifest.patches);
  check_patches(repo.dir, v2, versions);
  // The patch from 1 is far smaller than the full one.
  CHECK(v2.manifest.patches[1].length * 20 < v2.manifest.patches[0].length);
  CHECK(fs::exists(repo.dir + "/targets/" + name + "/.history.json"));

  // The rebuilt stream splits into exactly the source files.
  {
    const Bytes stream = stream_of(repo.dir, v2.manifest);
    std::map<std::string, Bytes> files;
    op::ContentSplitter split(v2.manifest,
                              [&](std::size_t, const op::FileEntry& f, std::uint64_t, ByteView b) {
                                files[f.path].insert(files[f.path].end(), b.begin(), b.end());
                                return Status::Ok();
                              });
    REQUIRE(split.update(stream).ok());
    REQUIRE(split.finish().ok());
    CHECK(files.at("data/annex.bin") == outpost::test::read_all(src + "/data/annex.bin"));
    CHECK(files.at("notes.md") == outpost::test::read_all(src + "/notes.md"));
  }

  // Versions 3..5 with the default ladder: version 5 gets patches from 4, 3 and 1.
  for (int v = 3; v <= 5; ++v) {
    write_release(src, v);
    repo.publish_ok(src, name);
    versions.emplace(v, current(repo.dir, name));
  }
  CHECK(froms(versions.at(5).manifest) == std::set<std::int64_t>{0, 1, 3, 4});
  check_patches(repo.dir, versions.at(5), versions);

  SECTION("a ladder given to publish replaces the repository's") {
    write_release(src, 6);
    op::PublishOptions o = repo.options(src);
    o.overrides.name = name;
    o.patch_ladder = std::vector<std::int64_t>{3};
    auto r = op::publish(repo.dir, o);
    REQUIRE(r.ok());
    const op::PublishedManifest v6 = current(repo.dir, name);
    CHECK(froms(v6.manifest) == std::set<std::int64_t>{0, 3});
    check_patches(repo.dir, v6, versions);
    write_release(src, 7);
    o.patch_ladder = std::vector<std::int64_t>{};
    REQUIRE(op::publish(repo.dir, o).ok());
    CHECK(froms(current(repo.dir, name).manifest) == std::set<std::int64_t>{0});
    o.patch_ladder = std::vector<std::int64_t>{0};
    CHECK(op::publish(repo.dir, o).status().code() == Code::kInvalidArgument);
  }
  SECTION("versions that cannot be rebuilt are skipped; the history is rebuilt by a scan") {
    fs::remove(repo.dir + "/targets/" + name + "/.history.json");
    fs::remove(repo.dir + "/" + versions.at(4).path);  // version 4's manifest is gone
    // Version 3's packs are gone: its chunks that no other version kept are lost.
    const Bytes i3 = outpost::test::read_all(repo.dir + "/" + versions.at(3).manifest.index.path);
    auto idx3 = op::ChunkIndex::parse(i3, 65536);
    REQUIRE(idx3.ok());
    fs::remove(repo.dir + "/" + op::pack_object_path(idx3->packs.back()));
    write_release(src, 6);
    repo.publish_ok(src, name);
    const op::PublishedManifest v6 = current(repo.dir, name);
    // Rungs 1, 2, 4: version 5 is there, 4 is gone, 2 is there (its packs are).
    std::set<std::int64_t> got = froms(v6.manifest);
    CHECK(got.count(0) == 1);
    CHECK(got.count(5) == 1);
    CHECK(got.count(4) == 0);
    CHECK(got.count(2) == 1);
    versions.erase(4);
    check_patches(repo.dir, v6, versions);
    CHECK(fs::exists(repo.dir + "/targets/" + name + "/.history.json"));
  }
}

TEST_CASE("a lower patch level writes more bytes that rebuild the same versions",
          "[packaging][repository][patches]") {
  // Text that compresses well: the level shows in the bytes.
  auto text = [](int release) {
    std::string t;
    for (int i = 0; i < 20000; ++i) {
      t += "SI_POV_DAY1,area " + std::to_string(i % 97) + "," + std::to_string(2000 + i % 24) +
           "," + std::to_string((i * 7919 + (i % 500 == 0 ? release : 0)) % 100003) + "\n";
    }
    return t;
  };
  std::map<int, std::vector<op::PatchRef>> patches;  // by level
  std::map<int, outpost::crypto::Digest> roots;
  for (int level : {1, op::kDefaultPatchLevel}) {
    Repo repo;
    const std::string src = repo.tmp / "src";
    outpost::test::make_dirs(src);
    std::map<std::int64_t, op::PublishedManifest> versions;
    for (int v = 1; v <= 2; ++v) {
      outpost::test::write_text(src + "/series.csv", text(v));
      op::PublishOptions o = repo.options(src);
      o.overrides.name = "un/stats/series";
      o.patch_level = level;
      repo.clock.advance(60);
      auto r = op::publish(repo.dir, o);
      INFO(r.status().message());
      REQUIRE(r.ok());
      versions.emplace(v, current(repo.dir, "un/stats/series"));
      check_patches(repo.dir, versions.at(v), versions);  // each rebuilds its version
    }
    patches[level] = versions.at(2).manifest.patches;
    roots[level] = versions.at(2).manifest.content_root;
    REQUIRE(patches[level].size() == 2);  // from 0 and from 1
  }
  const auto& fast = patches.at(1);
  const auto& best = patches.at(op::kDefaultPatchLevel);
  CHECK(fast[0].length > best[0].length * 11 / 10);        // the whole content
  CHECK(roots.at(1) == roots.at(op::kDefaultPatchLevel));  // the same content
}

namespace {

// Flips one byte in the middle of the first segment's payload of a patch from 0 (after the
// container header and the first segment head, well inside the zstd frame).
void damage_first_frame(const std::string& path) {
  Bytes patch = outpost::test::read_all(path);
  REQUIRE(patch.size() > 4096);
  patch[2048] ^= 0x40;
  fs::permissions(path, fs::perms::owner_write, fs::perm_options::add);
  outpost::test::write_all(path, patch);
}

}  // namespace

TEST_CASE(
    "a small edit to a big bundle recompresses only the segments of its patch from 0 "
    "around the edit",
    "[packaging][repository][patches]") {
  Repo repo;
  const std::string src = repo.tmp / "src";
  const std::string name = "un/stats/big";
  outpost::test::make_dirs(src);
  // 3 MiB of random bytes cut into segments of at most 256 KiB (the default, 8 MiB, behaves
  // the same on bundles 32 times larger): about sixteen segments, cut by content.
  Bytes data = outpost::test::random_bytes(3u << 20, 40);
  outpost::test::write_all(src + "/data.bin", data);
  op::PublishOptions o = repo.options(src);
  o.overrides.name = name;
  o.patch_ladder = std::vector<std::int64_t>{};  // only the patch from 0 matters here
  o.full_patch_segment = 256u << 10;
  auto publish = [&] {
    repo.clock.advance(60);
    auto r = op::publish(repo.dir, o);
    INFO(r.status().message());
    REQUIRE(r.ok());
    const op::PublishedManifest pm = current(repo.dir, name);
    check_patches(repo.dir, pm, {});
    return std::move(r).value();
  };

  const op::PublishResult r1 = publish();
  CHECK(r1.full_patch_segments >= 3);
  CHECK(r1.full_patch_reused == 0);

  // A few bytes changed in place: at most the segment around them and its neighbour change.
  data[3u << 19] ^= 1;
  data[(3u << 19) + 100] ^= 1;
  outpost::test::write_all(src + "/data.bin", data);
  const op::PublishResult r2 = publish();
  CHECK(r2.full_patch_reused + 2 >= r2.full_patch_segments);
  CHECK(r2.full_patch_reused > 0);

  // Bytes inserted near the start shift everything after them: the cuts follow the content.
  data.insert(data.begin() + 1000, 777, 0x21);
  outpost::test::write_all(src + "/data.bin", data);
  const op::PublishResult r3 = publish();
  CHECK(r3.full_patch_reused + 2 >= r3.full_patch_segments);
  CHECK(r3.full_patch_reused > 0);

  SECTION("the patch is the one compressing every segment would give") {
    Repo other;
    op::PublishOptions fresh = other.options(src);
    fresh.overrides.name = name;
    fresh.patch_ladder = std::vector<std::int64_t>{};
    fresh.full_patch_segment = o.full_patch_segment;
    auto r = op::publish(other.dir, fresh);
    REQUIRE(r.ok());
    CHECK(r->full_patch_reused == 0);
    REQUIRE(r->patches.size() == 1);
    REQUIRE(r3.patches.size() == 1);
    CHECK(r->patches[0].blake2b == r3.patches[0].blake2b);
  }
  SECTION("a damaged previous patch costs the reuse, never the result") {
    damage_first_frame(repo.dir + "/" + r3.patches.at(0).path);
    data[5u << 19] ^= 1;
    outpost::test::write_all(src + "/data.bin", data);
    const op::PublishResult r4 = publish();  // check_patches: the new patch rebuilds v4
    // Neither the damaged frame nor the edited segment is copied; the others are.
    CHECK(r4.full_patch_reused + 4 >= r4.full_patch_segments);
    CHECK(r4.full_patch_reused + 2 <= r4.full_patch_segments);
  }
}

TEST_CASE("ladders are configured in outpost-repository.json", "[packaging][repository]") {
  CHECK(*op::parse_ladder("8,1,2,2") == std::vector<std::int64_t>{1, 2, 8});
  CHECK(op::parse_ladder("")->empty());
  CHECK(op::parse_ladder("1,x").status().code() == Code::kInvalidArgument);
  CHECK(op::parse_ladder("1,,2").status().code() == Code::kInvalidArgument);
  CHECK(op::parse_ladder("0").status().code() == Code::kInvalidArgument);
  CHECK(op::parse_ladder("-1").status().code() == Code::kInvalidArgument);
  std::vector<std::int64_t> many;
  for (int i = 1; i <= 33; ++i) many.push_back(i);
  CHECK(op::normalize_ladder(many).status().code() == Code::kInvalidArgument);

  outpost::test::TempDir tmp;
  SecretKey k = new_key();
  op::InitOptions o;
  o.root_keys = {&k};
  o.targets_key = &k;
  o.snapshot_key = &k;
  o.timestamp_key = &k;
  o.patch_ladder = {3, 1};
  o.update_ladder = {1};
  REQUIRE(op::init_repository(tmp / "r", o).ok());
  auto c = op::load_repository_config(tmp / "r");
  REQUIRE(c.ok());
  CHECK(c->patch_ladder == std::vector<std::int64_t>{1, 3});
  CHECK(c->update_ladder == std::vector<std::int64_t>{1});
  o.patch_ladder = {0};
  CHECK(op::init_repository(tmp / "r2", o).code() == Code::kInvalidArgument);
  outpost::test::write_text(tmp / "r/outpost-repository.json",
                            R"({"_type":"outpost/repository","format":1,"patch_ladder":[1,"2"]})");
  CHECK(op::load_repository_config(tmp / "r").status().code() == Code::kCorruption);
  // Older repositories without the fields get the defaults.
  outpost::test::write_text(tmp / "r/outpost-repository.json",
                            R"({"_type":"outpost/repository","format":1})");
  c = op::load_repository_config(tmp / "r");
  REQUIRE(c.ok());
  CHECK(c->patch_ladder == op::kDefaultPatchLadder);
  CHECK(c->update_ladder == op::kDefaultUpdateLadder);
}

namespace {

// What a node holding snapshot `m` has: the snapshot, every metadata file it lists, and the
// manifests its roles list; by SHA-256.
std::map<outpost::crypto::Digest, Bytes> files_at_snapshot(const std::string& repo,
                                                           std::int64_t m) {
  std::map<outpost::crypto::Digest, Bytes> out;
  auto add = [&](const std::string& path) {
    Bytes b = outpost::test::read_all(path);
    out.emplace(outpost::crypto::sha256(b), std::move(b));
  };
  const std::string snap_path = repo + "/metadata/" + std::to_string(m) + ".snapshot.json";
  add(snap_path);
  auto env = tuf::parse_metadata(outpost::test::read_all(snap_path), "snapshot");
  REQUIRE(env.ok());
  auto snap = tuf::Snapshot::from_signed(*env->find("signed"));
  REQUIRE(snap.ok());
  for (const auto& [file, info] : snap->meta) {
    const std::string role = file.substr(0, file.size() - 5);
    const std::string path = repo + "/metadata/" + std::to_string(info.version) + "." + file;
    add(path);
    if (role == "targets") continue;
    auto renv = tuf::parse_metadata(outpost::test::read_all(path), "targets");
    REQUIRE(renv.ok());
    auto t = tuf::Targets::from_signed(*renv->find("signed"));
    REQUIRE(t.ok());
    for (const auto& [target, tf] : t->targets) {
      const std::string bundle = target.substr(0, target.size() - 14);
      add(repo + "/targets/" + bundle + "/" + tf.sha256 + ".manifest.json");
    }
  }
  return out;
}

// Parses N.from-M.upd and rebuilds every entry against the files of snapshot M; each equals
// the repository's file of that name. Returns the entry names.
std::set<std::string> check_update_file(const std::string& repo, std::int64_t n, std::int64_t m,
                                        std::uint32_t* latest_root = nullptr) {
  INFO("update file " << n << ".from-" << m);
  const std::string path = repo + "/metadata/updates/" + op::update_file_name(n, m);
  REQUIRE(fs::exists(path));
  auto f = op::parse_update_file(outpost::test::read_all(path), 100000);
  REQUIRE(f.ok());
  if (latest_root != nullptr) *latest_root = f->latest_root;
  const auto held = files_at_snapshot(repo, m);
  // Every entry's file, rebuilt.
  std::map<std::string, Bytes> rebuilt_files;
  for (std::size_t i = 0; i < f->entries.size(); ++i) {
    const op::UpdateEntry& e = f->entries[i];
    INFO(e.name);
    if (op::in_group(*f, i)) {  // its file is in its group's frame
      op::Decompressor dec;
      auto group = op::rebuild_group(*f, i, 64u << 20, dec);
      REQUIRE(group.ok());
      rebuilt_files[e.name] = group->files[i - group->first];
      continue;
    }
    ByteView base;
    if (e.encoding == op::UpdateEncoding::kZstdDelta) {
      auto it = std::find_if(held.begin(), held.end(),
                             [&](const auto& h) { return op::base_matches(e, h.first); });
      REQUIRE(it != held.end());
      base = it->second;
    }
    auto rebuilt = op::rebuild_entry(e, base, 64u << 20);
    REQUIRE(rebuilt.ok());
    rebuilt_files[e.name] = std::move(*rebuilt);
  }
  // The release patch, applied as a node holding snapshot M does: to each bundle's content
  // at M (its patch from 0 applied); each new content is its bundle's root at N.
  std::map<std::string, outpost::crypto::Digest> new_roots;
  if (auto r = rebuilt_files.find(op::kReleasePatchName); r != rebuilt_files.end()) {
    const std::vector<std::string> bundles = op::release_patch_bundles(*f);
    auto contents = op::apply_release_patch(
        r->second, bundles.size(), [&](std::size_t part, std::uint64_t size) {
          std::optional<Bytes> out;
          for (const auto& [sha, bytes] : held) {
            auto hm = op::Manifest::parse(bytes);
            if (!hm.ok() || hm->bundle != bundles[part]) continue;
            for (const auto& p : hm->patches) {
              if (p.from != 0) continue;
              auto c = op::apply_delta({}, outpost::test::read_all(repo + "/" + p.path),
                                       op::content_stream_size(*hm));
              REQUIRE(c.ok());
              if (c->size() == size) out = std::move(*c);
            }
          }
          return out;
        });
    REQUIRE(contents.ok());
    for (std::size_t i = 0; i < bundles.size(); ++i) {
      new_roots[bundles[i]] = outpost::crypto::blake2b((*contents)[i]);
    }
  }
  std::set<std::string> names;
  for (const op::UpdateEntry& e : f->entries) {
    INFO(e.name);
    names.insert(e.name);
    if (e.name == op::kReleasePatchName) continue;  // no file of the repository: above
    std::optional<Bytes> rebuilt = rebuilt_files.at(e.name);
    // A thin manifest, filled in as a node holding snapshot M does: from the bundle's manifest
    // at M and the patch from it carried beside.
    const std::string thin = op::thin_manifest_name("");
    if (e.name.rfind(thin, 0) == 0) {
      const std::string bundle = e.name.substr(thin.size());
      std::optional<op::HeldVersion> version;
      for (const auto& [sha, bytes] : held) {
        auto hm = op::Manifest::parse(bytes);
        if (hm.ok() && hm->bundle == bundle) version = op::HeldVersion{hm->content_root, sha};
      }
      REQUIRE(version);
      std::optional<outpost::crypto::Digest> patch;
      auto p = rebuilt_files.find(op::thin_patch_name(bundle));
      if (p != rebuilt_files.end()) patch = outpost::crypto::blake2b(p->second);
      std::optional<outpost::crypto::Digest> root;
      if (auto nr = new_roots.find(bundle); nr != new_roots.end()) root = nr->second;
      rebuilt = op::fill_thin_manifest(*rebuilt, *version, patch, root);
      REQUIRE(rebuilt);
    }
    const bool tree_path = e.name.rfind("targets/", 0) == 0 || e.name.rfind("objects/", 0) == 0;
    std::string file = tree_path ? repo + "/" + e.name : repo + "/metadata/" + e.name;
    // A bundle's current manifest is named by the bundle; the repository's file by its SHA-256.
    for (const std::string& by_bundle : {op::library_manifest_name(""), thin}) {
      if (e.name.rfind(by_bundle, 0) != 0) continue;
      file = repo + "/" +
             op::manifest_file_path(e.name.substr(by_bundle.size()),
                                    outpost::crypto::hex(outpost::crypto::sha256(*rebuilt)));
    }
    // A carried patch is named by the start of its BLAKE2b (or by its bundle, beside a thin
    // manifest); the repository's file by all of it.
    if (e.name.rfind(op::thin_patch_name(""), 0) == 0) {
      file = repo + "/" + op::patch_object_path(outpost::crypto::blake2b(*rebuilt));
    } else if (e.name.rfind("patch/", 0) == 0) {
      file = repo + "/" + op::patch_object_path(outpost::crypto::blake2b(*rebuilt));
      CHECK(op::carried_patch_name(op::patch_object_path(outpost::crypto::blake2b(*rebuilt))) ==
            e.name);
    }
    CHECK(*rebuilt == outpost::test::read_all(file));
  }
  return names;
}

// The entries that are carried patches ("patch/<16 hex>", "thin-patch/<bundle>"), and the
// others.
bool is_carried_patch(const std::string& name) {
  return name.rfind("patch/", 0) == 0 || name.rfind(op::thin_patch_name(""), 0) == 0;
}
std::set<std::string> carried_patches(const std::set<std::string>& names) {
  std::set<std::string> out;
  for (const auto& n : names) {
    if (is_carried_patch(n)) out.insert(n);
  }
  return out;
}
std::set<std::string> metadata_entries(const std::set<std::string>& names) {
  std::set<std::string> out;
  for (const auto& n : names) {
    if (!is_carried_patch(n)) out.insert(n);
  }
  return out;
}
// The entry name of the patch from `from`.
std::string patch_from(const op::Manifest& m, std::int64_t from) {
  for (const auto& p : m.patches) {
    if (p.from == from) return op::carried_patch_name(p.path).value_or("");
  }
  return "";
}

std::int64_t snapshot_version(const std::string& repo) {
  auto st = op::load_repository(repo);
  REQUIRE(st.ok());
  return st->snapshot.version;
}

// The bytes of the release patch in update file N.from-M; 0 when it carries none.
std::size_t release_patch_bytes(const std::string& repo, std::int64_t n, std::int64_t m) {
  auto f = op::parse_update_file(
      outpost::test::read_all(repo + "/metadata/updates/" + op::update_file_name(n, m)), 100);
  REQUIRE(f.ok());
  for (const op::UpdateEntry& e : f->entries) {
    if (e.name == op::kReleasePatchName) return e.data.size();
  }
  return 0;
}

// Version 1 of bundles un/stats/a and itu/stats/b (snapshots 4 and 5, after the Repo's 1 to
// 3), then a's source at version 2, not published; returns that source folder.
std::string publish_a1_b1(Repo& repo) {
  const std::string a = repo.tmp / "a";
  const std::string b = repo.tmp / "b";
  write_release(a, 1);
  write_release(b, 1);
  repo.publish_ok(a, "un/stats/a");   // snapshot 4
  repo.publish_ok(b, "itu/stats/b");  // 5
  write_release(a, 2);
  return a;
}

}  // namespace

TEST_CASE("a small bundle lists only its patch from 0, and its update comes as a release patch",
          "[packaging][repository][patches]") {
  Repo repo;
  const std::string src = repo.tmp / "src";
  const std::string name = "un/stats/small";
  std::map<std::int64_t, op::PublishedManifest> versions;
  // A data file of about 1.5 KB that gains a row each release: the patch from 0 is a few
  // hundred bytes, so no patch from an older version, N-1 included, can save the 1 KiB that
  // pays for its place in every reader's manifest.
  std::string table = "year,value\n";
  for (int i = 0; i < 80; ++i)
    table += std::to_string(1940 + i) + "," + std::to_string(i * 7) + "\n";
  outpost::test::make_dirs(src);
  for (int v = 1; v <= 5; ++v) {
    table += std::to_string(2020 + v) + "," + std::to_string(v * 13) + "\n";
    outpost::test::write_text(src + "/series.csv", table);
    repo.publish_ok(src, name);
    versions.emplace(v, current(repo.dir, name));
  }
  const op::Manifest& m5 = versions.at(5).manifest;
  CHECK(froms(m5) == std::set<std::int64_t>{0});
  check_patches(repo.dir, versions.at(5), versions);
  for (const auto& p : m5.patches) CHECK(p.length < op::kMinRungSaving);
  // A node holding version 4 still gets a delta, inside the update file from the snapshot
  // before: a release patch of the one bundle (check_update_file applies it and checks the
  // root it rebuilds), smaller than the patch from 0, which is not carried.
  const std::int64_t n = snapshot_version(repo.dir);
  const auto names = check_update_file(repo.dir, n, n - 1);
  CHECK(names.count(op::kReleasePatchName) == 1);
  CHECK(carried_patches(names).empty());
  CHECK(release_patch_bytes(repo.dir, n, n - 1) < m5.patches[0].length);
}

TEST_CASE("a publish with no patch ladder writes no release patch, only patches bundle by bundle",
          "[packaging][repository][update]") {
  Repo repo;  // snapshots 1 (init), 2 and 3 (two delegations)
  const std::string a = publish_a1_b1(repo);
  op::PublishOptions o = repo.options(a);
  o.overrides.name = "un/stats/a";
  o.patch_ladder = std::vector<std::int64_t>{};  // bundles whose versions share nothing
  repo.clock.advance(60);
  auto r = op::publish(repo.dir, o);  // 6
  INFO(r.status().message());
  REQUIRE(r.ok());
  REQUIRE(snapshot_version(repo.dir) == 6);
  // From 3 the same two new bundles as in the test below, which carries one release patch for
  // both: here only their roles and manifests. Their 300 KB patches from 0 are more than an
  // update file carries for one bundle, so a node fetches their chunks.
  const auto from3 = check_update_file(repo.dir, 6, 3);
  CHECK(from3.count(op::kReleasePatchName) == 0);
  CHECK(carried_patches(from3).empty());
  CHECK(from3.count(op::library_manifest_name("un/stats/a")) == 1);
  CHECK(from3.count(op::library_manifest_name("itu/stats/b")) == 1);
}

TEST_CASE("every new snapshot gets update files from the older snapshots of the ladder",
          "[packaging][repository][update]") {
  Repo repo;  // snapshots 1 (init), 2 and 3 (two delegations)
  const std::string a = publish_a1_b1(repo);
  repo.publish_ok(a, "un/stats/a");  // 6
  const std::int64_t n = snapshot_version(repo.dir);
  REQUIRE(n == 6);
  const op::PublishedManifest a2 = current(repo.dir, "un/stats/a");
  const op::PublishedManifest b1 = current(repo.dir, "itu/stats/b");
  auto st = op::load_repository(repo.dir);
  REQUIRE(st.ok());
  const std::string un_role = std::to_string(st->snapshot.meta.at("un.json").version) + ".un.json";
  const std::string itu_role =
      std::to_string(st->snapshot.meta.at("itu.json").version) + ".itu.json";

  // From 5: the snapshot, the un role and bundle a's manifest, thin (named by the bundle,
  // without the hashes a node holding version 1 knows); nothing about b. And the patch a node
  // holding version 1 of a takes (carried: no request of its own), whose BLAKE2b the thin
  // manifest leaves out.
  const std::string a_manifest = op::library_manifest_name("un/stats/a");
  const std::string b_manifest = op::library_manifest_name("itu/stats/b");
  const auto from5 = check_update_file(repo.dir, n, 5);
  CHECK(metadata_entries(from5) ==
        std::set<std::string>{"6.snapshot.json", un_role, op::thin_manifest_name("un/stats/a")});
  CHECK(carried_patches(from5) == std::set<std::string>{op::thin_patch_name("un/stats/a")});
  CHECK_FALSE(patch_from(a2.manifest, 1).empty());
  // From 3 (before any publication): both roles are new, both manifests too, and the
  // bundles' whole contents: their two contents are alike, so one release patch from nothing
  // carries both in fewer bytes than their patches from 0 (check_update_file applied it).
  const auto from3 = check_update_file(repo.dir, n, 3);
  CHECK(metadata_entries(from3) == std::set<std::string>{"6.snapshot.json", un_role, itu_role,
                                                         a_manifest, b_manifest,
                                                         op::kReleasePatchName});
  CHECK(carried_patches(from3).empty());
  {
    std::uint64_t from_zero = 0;
    for (const op::Manifest* m : {&a2.manifest, &b1.manifest}) {
      for (const auto& p : m->patches) from_zero += p.from == 0 ? p.length : 0;
    }
    CHECK(release_patch_bytes(repo.dir, n, 3) < from_zero);
  }
  {
    // Two new manifests with no base: one frame for both is smaller than two.
    auto f = op::parse_update_file(
        outpost::test::read_all(repo.dir + "/metadata/updates/" + op::update_file_name(n, 3)), 100);
    REQUIRE(f.ok());
    bool grouped = false;
    for (std::size_t i = 0; i < f->entries.size(); ++i) {
      grouped |= f->entries[i].name == b_manifest && op::in_group(*f, i);
    }
    CHECK(grouped);
  }
  // From 4 (a published, b not yet): b's manifest compressed against a's, which the entry
  // names as its base (a node holding a has it; check_update_file rebuilds it so).
  check_update_file(repo.dir, 5, 4);
  auto from4 = op::parse_update_file(
      outpost::test::read_all(repo.dir + "/metadata/updates/" + op::update_file_name(5, 4)), 100);
  REQUIRE(from4.ok());
  bool sibling_base = false;
  for (const op::UpdateEntry& e : from4->entries) {
    if (e.name != b_manifest) continue;
    sibling_base = e.encoding == op::UpdateEncoding::kZstdDelta && e.base_name == a_manifest;
  }
  CHECK(sibling_base);
  // From 1: targets.json changed too.
  std::uint32_t latest_root = 0;
  CHECK(check_update_file(repo.dir, n, 1, &latest_root).count("3.targets.json") == 1);
  CHECK(latest_root == 1);
  for (std::int64_t m = 1; m < n; ++m) {
    CHECK(fs::exists(repo.dir + "/metadata/updates/" + op::update_file_name(n, m)));
  }

  SECTION("refresh, delegate and rotate write them too") {
    REQUIRE(op::refresh_snapshot(repo.dir, repo.snapshot, repo.timestamp, repo.clock).ok());
    CHECK(check_update_file(repo.dir, 7, 6) == std::set<std::string>{"7.snapshot.json"});
    REQUIRE(op::delegate(repo.dir, repo.targets, repo.snapshot, repo.timestamp,
                         repo.publisher.public_key(), "org", repo.clock)
                .ok());
    CHECK(check_update_file(repo.dir, 8, 7) ==
          std::set<std::string>{"8.snapshot.json", "4.targets.json"});
    SecretKey root2 = new_key();
    op::RotateOptions ro;
    ro.old_root_keys = {&repo.root};
    ro.new_root_keys = {&root2};
    ro.targets_key = &repo.targets;
    ro.snapshot_key = &repo.snapshot;
    ro.timestamp_key = &repo.timestamp;
    ro.clock = &repo.clock;
    REQUIRE(op::rotate_root(repo.dir, ro).ok());
    CHECK(check_update_file(repo.dir, 9, 8, &latest_root) ==
          std::set<std::string>{"9.snapshot.json"});
    CHECK(latest_root == 2);
  }
  SECTION("publishing unchanged content writes no update file") {
    const std::size_t before = count_files(repo.dir);
    repo.publish_ok(a, "un/stats/a");
    CHECK(count_files(repo.dir) == before);
  }
}

// ---- Regressions from the first deployment (issue 7) -------------------------------------

namespace {

// Every path under `dir` (relative) -> its mode bits and, for files, its bytes.
std::map<std::string, std::pair<unsigned, Bytes>> tree_of(const std::string& dir) {
  std::map<std::string, std::pair<unsigned, Bytes>> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    struct stat st {};
    REQUIRE(::lstat(e.path().c_str(), &st) == 0);
    Bytes bytes;
    if (S_ISREG(st.st_mode)) bytes = outpost::test::read_all(e.path().string());
    out.emplace(fs::relative(e.path(), dir).string(),
                std::make_pair(static_cast<unsigned>(st.st_mode & 07777), std::move(bytes)));
  }
  return out;
}

// Sets the process umask for the lifetime of the object.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t old_;
};

}  // namespace

TEST_CASE("published files unreadable by the web server", "[packaging][repository][regression]") {
  // The whole-content and patch objects were temp files renamed without a chmod (0600), and
  // everything else followed the umask: nginx's unprivileged workers answered 403.
  const mode_t mask = GENERATE(mode_t{077}, mode_t{022}, mode_t{027});
  INFO("umask " << std::oct << mask);
  ScopedUmask scoped(mask);
  Repo repo;
  const std::string src = repo.tmp / "src";
  const std::string name = "un/stats/release";
  write_release(src, 1);
  repo.publish_ok(src, name);
  write_release(src, 2);
  const auto r2 = repo.publish_ok(src, name);
  REQUIRE(r2.patches.size() == 2);  // from 0 (streamed to a temp file) and from 1
  REQUIRE(op::refresh_snapshot(repo.dir, repo.snapshot, repo.timestamp, repo.clock).ok());

  struct stat root {};
  REQUIRE(::stat(repo.dir.c_str(), &root) == 0);
  CHECK((root.st_mode & 07777) == 0755);
  std::size_t files = 0;
  for (const auto& [path, entry] : tree_of(repo.dir)) {
    INFO(path);
    const fs::path full = fs::path(repo.dir) / path;
    if (fs::is_directory(fs::symlink_status(full))) {
      CHECK(entry.first == 0755);
    } else {
      CHECK(fs::is_regular_file(fs::symlink_status(full)));
      CHECK(entry.first == 0644);
      ++files;
    }
  }
  CHECK(files > 10);
}

TEST_CASE(
    "a file that changes while it is published is signed as neither its old nor its new "
    "content",
    "[packaging][repository][regression]") {
  Repo repo;
  const std::string src = repo.tmp / "src";
  const std::string name = "un/stats/release";
  write_release(src, 1);
  // Big enough for many chunks (default chunking averages 64 KiB).
  outpost::test::write_all(src + "/data/big.bin", outpost::test::random_bytes(3u << 20, 5));
  repo.publish_ok(src, name);
  write_release(src, 2);  // a real new version: the failed publish would otherwise be one
  const auto before = tree_of(repo.dir);
  const std::string big = src + "/data/big.bin";

  op::PublishOptions o = repo.options(src);
  o.overrides.name = name;
  repo.clock.advance(60);
  int calls = 0;
  SECTION("edited in place at both ends, same size") {
    o.after_chunk_read = [&](const std::string& file, std::uint64_t) {
      if (file != "data/big.bin" || ++calls != 1) return;
      // The first chunk is read: change the start (already read) and the end (not yet).
      const int fd = ::open(big.c_str(), O_WRONLY);
      REQUIRE(fd >= 0);
      REQUIRE(::pwrite(fd, "EDIT", 4, 0) == 4);
      REQUIRE(::pwrite(fd, "EDIT", 4, static_cast<off_t>((3u << 20) - 4)) == 4);
      ::close(fd);
    };
  }
  SECTION("edited in place with its modification time put back") {
    o.after_chunk_read = [&](const std::string& file, std::uint64_t) {
      if (file != "data/big.bin" || ++calls != 1) return;
      struct stat st {};
      REQUIRE(::stat(big.c_str(), &st) == 0);
      const int fd = ::open(big.c_str(), O_WRONLY);
      REQUIRE(fd >= 0);
      REQUIRE(::pwrite(fd, "EDIT", 4, 0) == 4);
      const struct timespec times[2] = {st.st_atim, st.st_mtim};
      REQUIRE(::futimens(fd, times) == 0);
      ::close(fd);
    };
  }
  SECTION("replaced by a rename") {
    o.after_chunk_read = [&](const std::string& file, std::uint64_t) {
      if (file != "data/big.bin" || ++calls != 1) return;
      outpost::test::write_all(big + ".new", outpost::test::random_bytes(3u << 20, 6));
      fs::rename(big + ".new", big);
    };
  }
  SECTION("grown") {
    o.after_chunk_read = [&](const std::string& file, std::uint64_t) {
      if (file != "data/big.bin" || ++calls != 1) return;
      const int fd = ::open(big.c_str(), O_WRONLY | O_APPEND);
      REQUIRE(fd >= 0);
      REQUIRE(::write(fd, "MORE", 4) == 4);
      ::close(fd);
    };
  }
  auto r = op::publish(repo.dir, o);
  CHECK(calls >= 1);
  REQUIRE_FALSE(r.ok());
  INFO(r.status().message());
  CHECK(r.status().code() == Code::kAborted);
  CHECK(r.status().message().find(big) != std::string::npos);
  CHECK(r.status().message().find("changed while it was being published") != std::string::npos);
  // The repository is as it was: the previous release intact, no new file, no temp file.
  CHECK(tree_of(repo.dir) == before);
  auto st = op::load_repository(repo.dir);
  REQUIRE(st.ok());
  auto pm = op::load_current_manifest(repo.dir, *st, name);
  REQUIRE(pm.ok());
  CHECK(pm->manifest.version == 1);
}
