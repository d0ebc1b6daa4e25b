// Golden vectors: a small repository signed with fixed seeds at fixed times. Ed25519 and
// canonical JSON are deterministic, so generating it again must reproduce the files in
// tests/golden/tuf/ byte for byte. A difference means the signed format changed, which breaks
// every repository already published: change the files only on purpose, with
//   OUTPOST_UPDATE_GOLDEN=1 crypto_tests "[golden]"
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "crypto/tuf_test_repo.h"
#include "outpost/crypto/tuf.h"
#include "support/test_support.h"

using namespace outpost;
using namespace outpost::crypto;
using namespace outpost::crypto::tuf;
using namespace outpost::crypto::testing;

namespace {

const std::string kGoldenDir = std::string(OUTPOST_SOURCE_DIR) + "/tests/golden/tuf";

std::int64_t utc(const char* text) { return parse_utc(text).value(); }

// The golden repository: root 2 of 3 (seeds 0x01, 0x02, 0x03; signed by 0x01 and 0x02),
// targets 0x0a, snapshot 0x0b, timestamp 0x0c, publisher of un/ga 0x14.
std::map<std::string, Bytes> golden_repository() {
  SecretKey r1 = test_key(1), r2 = test_key(2), r3 = test_key(3);
  SecretKey tk = test_key(10), sk = test_key(11), tsk = test_key(12), pub = test_key(20);
  const std::int64_t expires = utc("2030-01-01T00:00:00Z");
  std::map<std::string, Bytes> files;

  Root root;
  root.version = 1;
  root.expires = expires;
  auto add = [&root](const std::string& role, const SecretKey& k) {
    root.keys[k.public_key().keyid()] = k.public_key();
    root.roles[role].keyids.push_back(k.public_key().keyid());
    std::sort(root.roles[role].keyids.begin(), root.roles[role].keyids.end());
  };
  for (const SecretKey* k : {&r1, &r2, &r3}) add("root", *k);
  root.roles["root"].threshold = 2;
  add("targets", tk);
  add("snapshot", sk);
  add("timestamp", tsk);
  files["1.root.json"] = sign_metadata(root.to_signed(), {&r1, &r2});

  Targets role;
  role.version = 1;
  role.expires = expires;
  TargetFile manifest;
  manifest.length = 1234;
  manifest.sha256 = hex(sha256(as_bytes("golden manifest")));
  manifest.custom = parse_json(R"({"outpost":{"kind":"resolution","version":1}})").value();
  role.targets["un/ga/A-RES-75-202/manifest.json"] = manifest;
  files["1.un.ga.json"] = sign_metadata(role.to_signed(), {&pub});

  Targets targets;
  targets.version = 1;
  targets.expires = expires;
  Delegations d;
  d.keys[pub.public_key().keyid()] = pub.public_key();
  DelegatedRole ga;
  ga.name = "un.ga";
  ga.keyids = {pub.public_key().keyid()};
  ga.paths = {"un/ga/*", "un/ga/*/*"};
  d.roles.push_back(ga);
  targets.delegations = d;
  files["1.targets.json"] = sign_metadata(targets.to_signed(), {&tk});

  Snapshot snapshot;
  snapshot.version = 1;
  snapshot.expires = expires;
  snapshot.meta["targets.json"].version = 1;
  snapshot.meta["un.ga.json"].version = 1;
  files["1.snapshot.json"] = sign_metadata(snapshot.to_signed(), {&sk});

  Timestamp timestamp;
  timestamp.version = 1;
  timestamp.expires = expires;
  timestamp.snapshot.version = 1;
  timestamp.snapshot.length = static_cast<std::int64_t>(files["1.snapshot.json"].size());
  timestamp.snapshot.sha256 = hex(sha256(files["1.snapshot.json"]));
  files["timestamp.json"] = sign_metadata(timestamp.to_signed(), {&tsk});
  return files;
}

}  // namespace

TEST_CASE("the golden TUF repository is reproduced byte for byte from its seeds",
          "[crypto][tuf][golden]") {
  const auto files = golden_repository();
  const char* update = std::getenv("OUTPOST_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    test::make_dirs(kGoldenDir);
    for (const auto& [name, bytes] : files) test::write_all(kGoldenDir + "/" + name, bytes);
  }
  for (const auto& [name, bytes] : files) {
    CAPTURE(name);
    const std::string path = kGoldenDir + "/" + name;
    REQUIRE(std::filesystem::exists(path));
    CHECK(std::string(as_chars(test::read_all(path))) == std::string(as_chars(bytes)));
  }
}

TEST_CASE("the golden seeds give the keys and key ids an independent implementation gives",
          "[crypto][tuf][golden]") {
  // Computed with Python's `cryptography` (Ed25519) and hashlib over
  // json.dumps(key, sort_keys=True, separators=(",", ":")).
  const PublicKey k = test_key(1).public_key();
  CHECK(k.hex() == "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c");
  CHECK(k.keyid() == "7ab6b86cb2c9684b0ddc10896153aa2595decf4d4327a5ff1a8ab7422c828b12");
}

TEST_CASE("a client reads the golden repository from disk", "[crypto][tuf][golden]") {
  MemorySource disk;
  for (const char* name :
       {"1.root.json", "1.targets.json", "1.un.ga.json", "1.snapshot.json", "timestamp.json"}) {
    disk.files[name] = test::read_all(kGoldenDir + "/" + name);
  }
  TrustedMetadata t;
  t.root = disk.files.at("1.root.json");
  UpdaterOptions o;
  o.now = utc("2029-06-01T00:00:00Z");
  Updater u(t, disk, o);
  REQUIRE(u.refresh().ok());
  auto f = u.find_target("un/ga/A-RES-75-202/manifest.json");
  REQUIRE(f.ok());
  CHECK(f->length == 1234);
  CHECK(f->custom.find("outpost")->get_string("kind").value() == "resolution");

  o.now = utc("2030-01-01T00:00:00Z");
  Updater expired(t, disk, o);
  CHECK(expired.refresh().code() == Code::kVerificationFailed);
}
