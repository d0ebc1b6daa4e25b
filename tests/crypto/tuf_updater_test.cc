// The TUF client workflow against an in-memory repository: what a node accepts, and every
// attack in the spec's threat model it must refuse.
#include <catch2/catch.hpp>
#include <string>

#include "crypto/tuf_test_repo.h"
#include "outpost/crypto/tuf.h"

using namespace outpost;
using namespace outpost::crypto;
using namespace outpost::crypto::tuf;
using namespace outpost::crypto::testing;

namespace {

const std::string kResolution = "un/ga/A-RES-75-202/manifest.json";
const std::string kIndicator = "itu/ict/mobile-broadband/manifest.json";

bool same(const TrustedMetadata& a, const TrustedMetadata& b) {
  return a.root == b.root && a.timestamp == b.timestamp && a.snapshot == b.snapshot &&
         a.targets == b.targets && a.delegated == b.delegated;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::int64_t version_of(const Bytes& file, const char* type) {
  return parse_metadata(file, type).value().find("signed")->get_int("version").value();
}

// Replaces root key `old_key` by `new_key` in the repository's next root version.
void rotate_root_key(TestRepo& repo, const SecretKey& old_key, const SecretKey& new_key) {
  const std::string old_id = old_key.public_key().keyid();
  auto& ids = repo.root.roles["root"].keyids;
  ids.erase(std::remove(ids.begin(), ids.end(), old_id), ids.end());
  repo.root.keys.erase(old_id);
  repo.add_root_key("root", new_key.public_key());
}

// Gives role `role` (timestamp, snapshot or targets) a new key in the next root version.
void rotate_role_key(TestRepo& repo, const std::string& role, const SecretKey& new_key) {
  for (const std::string& id : repo.root.roles[role].keyids) repo.root.keys.erase(id);
  repo.root.roles[role].keyids.clear();
  repo.add_root_key(role, new_key.public_key());
}

Status refresh_and_find(Updater& u, const std::string& path) {
  OUTPOST_RETURN_IF_ERROR(u.refresh());
  return u.find_target(path).status();
}

}  // namespace

// ---- The happy path --------------------------------------------------------------------

TEST_CASE("a node with only the root trusts a correctly signed repository and finds targets",
          "[crypto][tuf]") {
  TestRepo repo;
  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());
  CHECK_FALSE(u.unchanged());
  CHECK(u.root().version == 1);
  CHECK(u.trusted().root == repo.source.files.at("1.root.json"));
  CHECK(u.trusted().timestamp == repo.source.files.at("timestamp.json"));
  CHECK(u.trusted().snapshot == repo.source.files.at("1.snapshot.json"));
  CHECK(u.trusted().targets == repo.source.files.at("1.targets.json"));
  CHECK(u.trusted().delegated.empty());
  CHECK(repo.source.fetched == std::vector<std::string>{"timestamp.json", "2.root.json",
                                                        "1.snapshot.json", "1.targets.json"});

  auto res = u.find_target(kResolution);
  REQUIRE(res.ok());
  CHECK(*res == TestRepo::target_for("resolution 75/202 v1"));
  CHECK(res->custom.find("outpost")->get_int("version").value() == 1);
  auto ind = u.find_target(kIndicator);
  REQUIRE(ind.ok());
  CHECK(*ind == TestRepo::target_for("indicators v1"));
  CHECK(u.trusted().delegated.at("un.ga") == repo.source.files.at("1.un.ga.json"));
  CHECK(u.trusted().delegated.at("itu.ict") == repo.source.files.at("1.itu.ict.json"));

  auto missing = u.find_target("un/ga/A-RES-99-1/manifest.json");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code() == Code::kNotFound);
  CHECK(contains(missing.error().message(), "un/ga/A-RES-99-1/manifest.json"));
  auto outside = u.find_target("who/x/manifest.json");
  CHECK(outside.status().code() == Code::kNotFound);
}

TEST_CASE("when nothing changed a refresh reads only the timestamp", "[crypto][tuf]") {
  TestRepo repo;
  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());
  REQUIRE(u.find_target(kResolution).ok());
  const TrustedMetadata before = u.trusted();

  repo.source.fetched.clear();
  REQUIRE(u.refresh().ok());
  CHECK(u.unchanged());
  CHECK(repo.source.fetched == std::vector<std::string>{"timestamp.json"});
  CHECK(same(u.trusted(), before));

  SECTION("and a node restarted from what it persisted does the same") {
    Updater again(u.trusted(), repo.source, repo.options());
    repo.source.fetched.clear();
    REQUIRE(again.refresh().ok());
    CHECK(again.unchanged());
    REQUIRE(again.find_target(kResolution).ok());
    CHECK(repo.source.fetched == std::vector<std::string>{"timestamp.json"});
  }
  SECTION("and a lookup needs no refresh when the trusted metadata is complete") {
    Updater offline(u.trusted(), repo.source, repo.options());
    repo.source.fetched.clear();
    auto f = offline.find_target(kResolution);
    REQUIRE(f.ok());
    CHECK(repo.source.fetched.empty());
  }
}

TEST_CASE("a new release is picked up and superseded delegated metadata is replaced",
          "[crypto][tuf]") {
  TestRepo repo;
  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());
  REQUIRE(u.find_target(kResolution).ok());
  REQUIRE(u.find_target(kIndicator).ok());

  const std::string new_path = "un/ga/A-RES-76-1/manifest.json";
  repo.release("un.ga", new_path, "resolution 76/1");
  REQUIRE(u.refresh().ok());
  CHECK_FALSE(u.unchanged());
  CHECK(version_of(u.trusted().snapshot, "snapshot") == 2);
  // un.ga v1 is superseded; itu.ict v1 is still current and kept.
  CHECK(u.trusted().delegated.count("un.ga") == 0);
  CHECK(u.trusted().delegated.count("itu.ict") == 1);

  repo.source.fetched.clear();
  auto f = u.find_target(new_path);
  REQUIRE(f.ok());
  CHECK(*f == TestRepo::target_for("resolution 76/1"));
  CHECK(u.find_target(kIndicator).ok());
  CHECK(repo.source.fetched == std::vector<std::string>{"2.un.ga.json"});
  CHECK(version_of(u.trusted().delegated.at("un.ga"), "targets") == 2);
}

// ---- Tampering ------------------------------------------------------------------------

TEST_CASE("a flipped byte anywhere in a singly signed metadata file is refused", "[crypto][tuf]") {
  for (const std::string name :
       {"timestamp.json", "1.snapshot.json", "1.targets.json", "1.un.ga.json"}) {
    TestRepo repo;
    const Bytes original = repo.source.files.at(name);
    int refused = 0;
    for (std::size_t pos = 0; pos < original.size(); pos += 3) {
      Bytes bad = original;
      bad[pos] ^= 0x01;
      repo.source.files[name] = bad;
      Updater u(repo.first_contact(), repo.source, repo.options());
      Status s = refresh_and_find(u, kResolution);
      CAPTURE(name, pos, s.message());
      CHECK_FALSE(s.ok());
      CHECK((s.code() == Code::kCorruption || s.code() == Code::kVerificationFailed));
      refused += s.ok() ? 0 : 1;
    }
    CHECK(refused > 100);
  }
}

TEST_CASE("a flipped byte in the signed part of a root is refused", "[crypto][tuf]") {
  TestRepo repo;
  const Bytes original = repo.source.files.at("1.root.json");
  const std::string text(as_chars(original));
  const std::size_t start = text.find("\"signed\":");
  REQUIRE(start != std::string::npos);
  for (std::size_t pos = start; pos < original.size(); pos += 2) {
    TrustedMetadata t;
    t.root = original;
    t.root[pos] ^= 0x01;
    Updater u(t, repo.source, repo.options());
    Status s = u.refresh();
    CAPTURE(pos);
    CHECK_FALSE(s.ok());
    CHECK_FALSE(u.find_target(kResolution).ok());
  }
}

TEST_CASE(
    "one damaged signature on a root signed by all three keys still meets the 2 of 3 "
    "threshold",
    "[crypto][tuf]") {
  TestRepo repo;
  std::string text(as_chars(repo.source.files.at("1.root.json")));
  const std::size_t sig = text.find("\"sig\":\"") + 7;
  text[sig] = text[sig] == '0' ? '1' : '0';
  TrustedMetadata t;
  t.root = to_bytes(text);
  Updater u(t, repo.source, repo.options());
  CHECK(u.refresh().ok());
}

TEST_CASE("a root signed by fewer keys than its threshold is refused", "[crypto][tuf]") {
  TestRepo repo;
  SECTION("as the first trusted root") {
    repo.root_signers = {&repo.root_keys[0]};
    repo.write_root();
    Updater u(repo.first_contact(), repo.source, repo.options());
    Status s = u.refresh();
    CHECK(s.code() == Code::kVerificationFailed);
    CHECK(contains(s.message(), "trusted root metadata"));
    CHECK(contains(s.message(), "1 valid signature"));
    CHECK(u.find_target(kResolution).status().code() == Code::kVerificationFailed);
  }
  SECTION("as a new root version") {
    Updater u(repo.first_contact(), repo.source, repo.options());
    REQUIRE(u.refresh().ok());
    repo.root.version = 2;
    repo.root_signers = {&repo.root_keys[2]};
    repo.write_root();
    Status s = u.refresh();
    CHECK(s.code() == Code::kVerificationFailed);
    CHECK(contains(s.message(), "2.root.json"));
    CHECK(u.root().version == 1);
  }
  SECTION("counting signatures by unknown keys as nothing") {
    SecretKey x = test_key(90);
    SecretKey y = test_key(91);
    repo.root_signers = {&repo.root_keys[0], &x, &y};
    repo.write_root();
    Updater u(repo.first_contact(), repo.source, repo.options());
    CHECK(u.refresh().code() == Code::kVerificationFailed);
  }
}

TEST_CASE("metadata signed by a key the root does not name is refused", "[crypto][tuf]") {
  TestRepo repo;
  SecretKey stranger = test_key(77);
  SECTION("timestamp") {
    repo.timestamp_signer = &stranger;
    repo.write_timestamp();
    Updater u(repo.first_contact(), repo.source, repo.options());
    Status s = u.refresh();
    CHECK(s.code() == Code::kVerificationFailed);
    CHECK(contains(s.message(), "timestamp.json"));
  }
  SECTION("snapshot") {
    repo.source.files["1.snapshot.json"] = repo.sign(repo.snapshot.to_signed(), {&stranger});
    repo.write_timestamp();
    Updater u(repo.first_contact(), repo.source, repo.options());
    Status s = u.refresh();
    CHECK(s.code() == Code::kVerificationFailed);
    CHECK(contains(s.message(), "1.snapshot.json"));
  }
  SECTION("targets, even when signed by the snapshot key") {
    repo.source.files["1.targets.json"] = repo.sign(repo.targets.to_signed(), {&repo.snapshot_key});
    Updater u(repo.first_contact(), repo.source, repo.options());
    CHECK(u.refresh().code() == Code::kVerificationFailed);
  }
}

// ---- Root rotation --------------------------------------------------------------------

TEST_CASE(
    "a root rotation signed by the old and the new keys is accepted and revokes the "
    "old key",
    "[crypto][tuf]") {
  TestRepo repo;
  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());

  SecretKey k4 = test_key(4);
  rotate_root_key(repo, repo.root_keys[2], k4);
  repo.root.version = 2;
  repo.root_signers = {&repo.root_keys[0], &repo.root_keys[1], &k4};
  repo.write_root({&repo.root_keys[2]});
  REQUIRE(u.refresh().ok());
  CHECK(u.root().version == 2);
  CHECK(u.trusted().root == repo.source.files.at("2.root.json"));
  CHECK(u.root().keys.count(repo.root_keys[2].public_key().keyid()) == 0);

  // Version 3 signed by one remaining key and the revoked one: 1 of 2 needed.
  repo.root.version = 3;
  repo.root_signers = {&repo.root_keys[0], &repo.root_keys[2]};
  repo.write_root();
  Status s = u.refresh();
  CHECK(s.code() == Code::kVerificationFailed);
  CHECK(contains(s.message(), "3.root.json"));
  CHECK(u.root().version == 2);

  // Properly signed, version 3 is accepted.
  repo.root_signers = {&repo.root_keys[0], &k4};
  repo.write_root();
  REQUIRE(u.refresh().ok());
  CHECK(u.root().version == 3);
}

TEST_CASE("a node several root versions behind walks the whole chain", "[crypto][tuf]") {
  TestRepo repo;
  const TrustedMetadata first = repo.first_contact();
  for (int v = 2; v <= 5; ++v) {
    repo.root.version = v;
    repo.write_root();
  }
  Updater u(first, repo.source, repo.options());
  REQUIRE(u.refresh().ok());
  CHECK(u.root().version == 5);

  SECTION("but stops at max_root_rotations") {
    UpdaterOptions o = repo.options();
    o.max_root_rotations = 2;
    Updater limited(first, repo.source, o);
    REQUIRE(limited.refresh().ok());
    CHECK(limited.root().version == 3);
  }
}

TEST_CASE("a new root not signed by the old root keys is refused", "[crypto][tuf]") {
  TestRepo repo;
  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());
  SecretKey k4 = test_key(4);
  SecretKey k5 = test_key(5);
  rotate_root_key(repo, repo.root_keys[0], k4);
  rotate_root_key(repo, repo.root_keys[1], k5);
  repo.root.version = 2;
  repo.root_signers = {&k4, &k5};  // the new threshold only
  repo.write_root();
  Status s = u.refresh();
  CHECK(s.code() == Code::kVerificationFailed);
  CHECK(contains(s.message(), "root keys of trusted root version 1"));
  CHECK(u.root().version == 1);
}

TEST_CASE("a new root not signed by its own threshold is refused", "[crypto][tuf]") {
  TestRepo repo;
  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());
  SecretKey k4 = test_key(4);
  SecretKey k5 = test_key(5);
  rotate_root_key(repo, repo.root_keys[0], k4);
  rotate_root_key(repo, repo.root_keys[1], k5);
  repo.root.version = 2;
  repo.root_signers = {&repo.root_keys[0], &repo.root_keys[1], &k4};  // only 1 of the new
  repo.write_root();
  Status s = u.refresh();
  CHECK(s.code() == Code::kVerificationFailed);
  CHECK(contains(s.message(), "its own root keys"));
}

TEST_CASE("a root file whose version is not the one its name promises is refused",
          "[crypto][tuf]") {
  TestRepo repo;
  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());
  repo.root.version = 3;
  repo.source.files["2.root.json"] = repo.sign(repo.root.to_signed(), repo.root_signers);
  repo.refresh_timestamp();
  Status s = u.refresh();
  CHECK(s.code() == Code::kVerificationFailed);
  CHECK(contains(s.message(), "expected version 2"));
}

TEST_CASE("an expired root is refused after the chain, even when an older one was fine",
          "[crypto][tuf]") {
  TestRepo repo;
  SECTION("expired first root") {
    repo.root.expires = kNow - 1;
    repo.write_root();
    Updater u(repo.first_contact(), repo.source, repo.options());
    Status s = u.refresh();
    CHECK(s.code() == Code::kVerificationFailed);
    CHECK(contains(s.message(), "root metadata expired on " + format_utc(kNow - 1)));
  }
  SECTION("an expired intermediate root does not matter when the newest is current") {
    repo.root.expires = kNow - 100;
    repo.write_root();
    const TrustedMetadata first = repo.first_contact();
    repo.root.version = 2;
    repo.root.expires = kNow + kDay;
    repo.write_root();
    Updater u(first, repo.source, repo.options());
    REQUIRE(u.refresh().ok());
    CHECK(u.root().version == 2);
  }
}

TEST_CASE("a timestamp key revoked by a new root no longer signs timestamps", "[crypto][tuf]") {
  TestRepo repo;
  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());
  SecretKey new_ts = test_key(13);
  rotate_role_key(repo, "timestamp", new_ts);
  repo.root.version = 2;
  repo.write_root();
  repo.refresh_timestamp();  // still signed by the old key
  Status s = u.refresh();
  CHECK(s.code() == Code::kVerificationFailed);
  CHECK(contains(s.message(), "timestamp.json"));
  CHECK(u.root().version == 1);  // nothing of the failed refresh was kept

  repo.timestamp_signer = &new_ts;
  repo.write_timestamp();
  REQUIRE(u.refresh().ok());
  CHECK(u.root().version == 2);
}

// ---- Rollback, mix-and-match, freeze --------------------------------------------------

TEST_CASE("a timestamp older than the trusted one is refused as a rollback", "[crypto][tuf]") {
  TestRepo repo;
  const Bytes v1 = repo.source.files.at("timestamp.json");
  repo.refresh_timestamp();
  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());
  const TrustedMetadata before = u.trusted();

  repo.source.files["timestamp.json"] = v1;
  Status s = u.refresh();
  CHECK(s.code() == Code::kVerificationFailed);
  CHECK(contains(s.message(), "timestamp.json version 1 is older than version 2 already trusted"));
  CHECK(contains(s.message(), "rollback"));
  CHECK(same(u.trusted(), before));
}

TEST_CASE("a snapshot older than the trusted one is refused as a rollback", "[crypto][tuf]") {
  TestRepo repo;
  repo.release("un.ga", "un/ga/A-RES-76-1/manifest.json", "76/1");
  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());  // trusts snapshot 2, un.ga 2
  const TrustedMetadata before = u.trusted();

  SECTION("a new timestamp naming an older snapshot") {
    repo.timestamp.version = 3;
    repo.snapshot.version = 1;
    repo.write_timestamp();
    Status s = u.refresh();
    CHECK(s.code() == Code::kVerificationFailed);
    CHECK(contains(s.message(),
                   "snapshot.json version 1, which is older than version 2 "
                   "already trusted (rollback attack or stale mirror)"));
  }
  SECTION("a new snapshot naming an older delegated role") {
    repo.roles["un.ga"].version = 1;
    repo.snapshot.version = 3;
    repo.timestamp.version = 3;
    repo.write_snapshot();
    repo.write_timestamp();
    Status s = u.refresh();
    CHECK(s.code() == Code::kVerificationFailed);
    CHECK(contains(s.message(), "un.ga.json version 1, which is older than version 2"));
  }
  SECTION("a new snapshot leaving out a role the trusted one listed") {
    repo.snapshot.version = 3;
    repo.write_snapshot();
    repo.snapshot.meta.erase("itu.ict.json");
    repo.source.files["3.snapshot.json"] =
        repo.sign(repo.snapshot.to_signed(), {&repo.snapshot_key});
    repo.timestamp.version = 3;
    repo.write_timestamp();
    Status s = u.refresh();
    CHECK(s.code() == Code::kVerificationFailed);
    CHECK(contains(s.message(), "no longer lists itu.ict.json"));
  }
  CHECK(same(u.trusted(), before));
}

TEST_CASE("metadata that disagrees with the snapshot is refused as mix-and-match",
          "[crypto][tuf]") {
  TestRepo repo;
  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());
  REQUIRE(u.find_target(kResolution).ok());

  SECTION("targets: the old file served under the new version's name") {
    const Bytes old_targets = repo.source.files.at("1.targets.json");
    repo.targets.version = 2;
    repo.snapshot.version = 2;
    repo.timestamp.version = 2;
    repo.publish();
    repo.source.files["2.targets.json"] = old_targets;
    Status s = u.refresh();
    CHECK(s.code() == Code::kVerificationFailed);
    CHECK(contains(s.message(), "mix-and-match"));
    CHECK(version_of(u.trusted().snapshot, "snapshot") == 1);
  }
  SECTION("a delegated role: the old file served under the new version's name") {
    const Bytes old_role = repo.source.files.at("1.un.ga.json");
    repo.release("un.ga", "un/ga/A-RES-76-1/manifest.json", "76/1");
    repo.source.files["2.un.ga.json"] = old_role;
    REQUIRE(u.refresh().ok());
    auto f = u.find_target(kResolution);
    REQUIRE_FALSE(f.ok());
    CHECK(f.error().code() == Code::kVerificationFailed);
    CHECK(contains(f.error().message(), "mix-and-match"));
    CHECK(u.trusted().delegated.count("un.ga") == 0);
  }
  SECTION("snapshot: a file other than the one the timestamp hashes") {
    repo.release("un.ga", "un/ga/A-RES-76-1/manifest.json", "76/1");
    Bytes other = repo.source.files.at("2.snapshot.json");
    other.back() = ' ';  // same length, different bytes
    repo.source.files["2.snapshot.json"] = other;
    Status s = u.refresh();
    CHECK(s.code() == Code::kCorruption);
    CHECK(contains(s.message(), "sha256"));
  }
  SECTION("snapshot: an old file under a new name when the timestamp gives no hash") {
    const Bytes old_snapshot = repo.source.files.at("1.snapshot.json");
    repo.release("un.ga", "un/ga/A-RES-76-1/manifest.json", "76/1");
    repo.source.files["2.snapshot.json"] = old_snapshot;
    repo.timestamp.snapshot = MetaFile{2, std::nullopt, std::nullopt};
    repo.source.files["timestamp.json"] =
        repo.sign(repo.timestamp.to_signed(), {&repo.timestamp_key});
    Status s = u.refresh();
    CHECK(s.code() == Code::kVerificationFailed);
    CHECK(contains(s.message(), "timestamp.json names version 2"));
  }
}

TEST_CASE("a file longer than its signed length is refused", "[crypto][tuf]") {
  TestRepo repo;
  repo.source.files["1.snapshot.json"].push_back(' ');
  Updater u(repo.first_contact(), repo.source, repo.options());
  Status s = u.refresh();
  CHECK(s.code() == Code::kCorruption);
  CHECK(contains(s.message(), "1.snapshot.json"));

  SECTION("and a timestamp larger than the limit is not read") {
    UpdaterOptions o = repo.options();
    o.max_timestamp_bytes = 100;
    Updater small(repo.first_contact(), repo.source, o);
    CHECK(small.refresh().code() == Code::kCorruption);
  }
}

TEST_CASE("a missing timestamp is reported as not found with the file name", "[crypto][tuf]") {
  TestRepo repo;
  repo.source.files.erase("timestamp.json");
  Updater u(repo.first_contact(), repo.source, repo.options());
  Status s = u.refresh();
  CHECK(s.code() == Code::kNotFound);
  CHECK(contains(s.message(), "timestamp.json"));
}

TEST_CASE(
    "an expired timestamp is refused unless accepting expired timestamps with a valid "
    "snapshot",
    "[crypto][tuf]") {
  TestRepo repo;
  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());
  const TrustedMetadata before = u.trusted();
  const std::string new_path = "un/ga/A-RES-76-1/manifest.json";

  SECTION("from an online mirror") {
    repo.timestamp.expires = kNow - 60;
    repo.release("un.ga", new_path, "76/1");
    Status s = u.refresh();
    CHECK(s.code() == Code::kVerificationFailed);
    CHECK(contains(s.message(), "timestamp.json expired on " + format_utc(kNow - 60)));
    CHECK(contains(s.message(), "freeze"));
    CHECK(same(u.trusted(), before));
  }
  SECTION("from a USB pack with a newer valid snapshot") {
    repo.timestamp.expires = kNow - 60;
    repo.release("un.ga", new_path, "76/1");
    UpdaterOptions o = repo.options();
    o.accept_expired_timestamp = true;
    Updater usb(before, repo.source, o);
    REQUIRE(usb.refresh().ok());
    CHECK(usb.find_target(new_path).ok());
  }
  SECTION("but not when the snapshot has expired too") {
    repo.timestamp.expires = kNow - 60;
    repo.snapshot.expires = kNow - 60;
    repo.release("un.ga", new_path, "76/1");
    UpdaterOptions o = repo.options();
    o.accept_expired_timestamp = true;
    Updater usb(before, repo.source, o);
    Status s = usb.refresh();
    CHECK(s.code() == Code::kVerificationFailed);
    CHECK(contains(s.message(), "snapshot.json expired"));
    CHECK(same(usb.trusted(), before));
  }
  SECTION("but not when the snapshot is badly signed") {
    repo.timestamp.expires = kNow - 60;
    repo.release("un.ga", new_path, "76/1");
    SecretKey stranger = test_key(66);
    repo.source.files["2.snapshot.json"] = repo.sign(repo.snapshot.to_signed(), {&stranger});
    repo.write_timestamp();
    UpdaterOptions o = repo.options();
    o.accept_expired_timestamp = true;
    Updater usb(before, repo.source, o);
    CHECK(usb.refresh().code() == Code::kVerificationFailed);
  }
  SECTION("and never when it moves backwards") {
    const Bytes old_ts = repo.source.files.at("timestamp.json");
    repo.release("un.ga", new_path, "76/1");
    REQUIRE(u.refresh().ok());
    repo.source.files["timestamp.json"] = old_ts;
    UpdaterOptions o = repo.options();
    o.now = kNow + 30 * kDay;  // the old timestamp has expired by then
    o.accept_expired_timestamp = true;
    Updater usb(u.trusted(), repo.source, o);
    Status s = usb.refresh();
    CHECK(s.code() == Code::kVerificationFailed);
    CHECK(contains(s.message(), "rollback"));
  }
}

TEST_CASE("expired snapshot, targets or delegated metadata is refused", "[crypto][tuf]") {
  TestRepo repo;
  SECTION("snapshot") {
    repo.snapshot.expires = kNow;
    repo.publish();
    Updater u(repo.first_contact(), repo.source, repo.options());
    CHECK(contains(u.refresh().message(), "snapshot.json expired on"));
  }
  SECTION("targets") {
    repo.targets.expires = kNow - 1;
    repo.publish();
    Updater u(repo.first_contact(), repo.source, repo.options());
    CHECK(contains(u.refresh().message(), "targets.json expired on"));
  }
  SECTION("delegated role") {
    repo.roles["un.ga"].expires = kNow - 1;
    repo.publish();
    Updater u(repo.first_contact(), repo.source, repo.options());
    REQUIRE(u.refresh().ok());
    auto f = u.find_target(kResolution);
    CHECK(f.status().code() == Code::kVerificationFailed);
    CHECK(contains(f.status().message(), "un.ga.json expired on"));
    CHECK(u.find_target(kIndicator).ok());
  }
  SECTION("metadata the node holds expires while it is offline") {
    Updater u(repo.first_contact(), repo.source, repo.options());
    REQUIRE(u.refresh().ok());
    UpdaterOptions later = repo.options();
    later.now = kNow + 400 * kDay;
    Updater stale(u.trusted(), repo.source, later);
    CHECK(stale.refresh().code() == Code::kVerificationFailed);
    CHECK(stale.find_target(kResolution).status().code() == Code::kVerificationFailed);
  }
}

// ---- Fast-forward recovery ------------------------------------------------------------

TEST_CASE("after a timestamp key rotation a node recovers from a fast-forwarded timestamp",
          "[crypto][tuf]") {
  TestRepo repo;
  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());

  // An attacker holding the timestamp key makes the node trust timestamp version 1000.
  repo.timestamp.version = 1000;
  repo.write_timestamp();
  REQUIRE(u.refresh().ok());
  CHECK(version_of(u.trusted().timestamp, "timestamp") == 1000);

  // The publisher's real timestamp version 2 is refused as a rollback...
  repo.timestamp.version = 2;
  repo.write_timestamp();
  CHECK(contains(u.refresh().message(), "rollback"));

  // ...until the root rotates the timestamp key: then the node forgets version 1000.
  SecretKey new_ts = test_key(13);
  rotate_role_key(repo, "timestamp", new_ts);
  repo.root.version = 2;
  repo.write_root();
  repo.timestamp_signer = &new_ts;
  repo.timestamp.version = 2;
  repo.write_timestamp();
  REQUIRE(u.refresh().ok());
  CHECK(version_of(u.trusted().timestamp, "timestamp") == 2);
  CHECK(u.find_target(kResolution).ok());
}

TEST_CASE("after a snapshot key rotation a node recovers from a fast-forwarded snapshot",
          "[crypto][tuf]") {
  TestRepo repo;
  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());

  // An attacker with the snapshot and timestamp keys pushes snapshot 1000 listing un.ga 1000.
  repo.roles["un.ga"].version = 1000;
  repo.snapshot.version = 1000;
  repo.timestamp.version = 1000;
  repo.publish();
  REQUIRE(u.refresh().ok());
  CHECK(version_of(u.trusted().snapshot, "snapshot") == 1000);

  // The publisher rotates the snapshot key and publishes snapshot 2 with un.ga 2.
  SecretKey new_snap = test_key(14);
  rotate_role_key(repo, "snapshot", new_snap);
  repo.root.version = 2;
  repo.write_root();
  repo.snapshot_key = std::move(new_snap);
  repo.roles["un.ga"].version = 2;
  repo.snapshot.version = 2;
  repo.timestamp.version = 2;
  repo.publish();
  REQUIRE(u.refresh().ok());
  CHECK(version_of(u.trusted().snapshot, "snapshot") == 2);
  CHECK(u.find_target(kResolution).ok());
}

TEST_CASE("trusted metadata is unchanged after a failed refresh", "[crypto][tuf]") {
  TestRepo repo;
  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());
  REQUIRE(u.find_target(kResolution).ok());
  const TrustedMetadata before = u.trusted();

  // A valid new root and a new release, but a timestamp signed by the wrong key: the root
  // step succeeds and the timestamp step fails, and nothing of either may stick.
  SecretKey k4 = test_key(4);
  rotate_root_key(repo, repo.root_keys[2], k4);
  repo.root.version = 2;
  repo.root_signers = {&repo.root_keys[0], &repo.root_keys[1], &k4};
  repo.write_root();
  repo.release("un.ga", "un/ga/A-RES-76-1/manifest.json", "76/1");
  SecretKey stranger = test_key(55);
  repo.timestamp_signer = &stranger;
  repo.write_timestamp();

  Status s = u.refresh();
  REQUIRE_FALSE(s.ok());
  CHECK_FALSE(u.unchanged());
  CHECK(same(u.trusted(), before));
  CHECK(u.root().version == 1);
  CHECK(u.find_target(kResolution).ok());
  CHECK(u.find_target("un/ga/A-RES-76-1/manifest.json").status().code() == Code::kNotFound);

  SECTION("and a failure at the last step keeps nothing either") {
    repo.timestamp_signer = &repo.timestamp_key;
    repo.write_timestamp();
    repo.source.files.erase("2.targets.json");
    repo.targets.version = 2;
    repo.snapshot.version = 3;
    repo.timestamp.version = 3;
    repo.write_snapshot();
    repo.write_timestamp();
    CHECK(u.refresh().code() == Code::kNotFound);  // 2.targets.json is missing
    CHECK(same(u.trusted(), before));
  }
  SECTION("and the next good refresh moves forward") {
    repo.timestamp_signer = &repo.timestamp_key;
    repo.write_timestamp();
    REQUIRE(u.refresh().ok());
    CHECK(u.root().version == 2);
    CHECK(u.find_target("un/ga/A-RES-76-1/manifest.json").ok());
  }
}

TEST_CASE("damaged metadata in the node's own store", "[crypto][tuf]") {
  TestRepo repo;
  Updater first(repo.first_contact(), repo.source, repo.options());
  REQUIRE(first.refresh().ok());
  REQUIRE(first.find_target(kResolution).ok());
  TrustedMetadata stored = first.trusted();

  SECTION("a damaged trusted root makes the node refuse to work") {
    stored.root.back() = 'x';
    Updater u(stored, repo.source, repo.options());
    Status s = u.refresh();
    CHECK(s.code() == Code::kCorruption);
    CHECK(contains(s.message(), "trusted root metadata"));
    CHECK_FALSE(u.find_target(kResolution).ok());
  }
  SECTION("no root at all asks for a subscription") {
    Updater u(TrustedMetadata{}, repo.source, repo.options());
    CHECK(u.refresh().code() == Code::kFailedPrecondition);
  }
  SECTION("a damaged trusted timestamp, snapshot or delegation is dropped and fetched again") {
    stored.timestamp[stored.timestamp.size() / 2] ^= 1;
    stored.delegated["un.ga"][10] ^= 1;
    Updater u(stored, repo.source, repo.options());
    CHECK(u.trusted().timestamp.empty());
    CHECK(u.trusted().delegated.count("un.ga") == 0);
    REQUIRE(u.refresh().ok());
    CHECK_FALSE(u.unchanged());
    CHECK(u.find_target(kResolution).ok());
    CHECK(u.trusted().delegated.at("un.ga") == repo.source.files.at("1.un.ga.json"));
  }
  SECTION("a delegation stored for a role is checked against its delegation before use") {
    // Swap the stored un.ga metadata for itu.ict's: well-formed and validly signed, but by a
    // key not delegated un.ga. It must not be used (the mirror's copy is used instead).
    REQUIRE(first.find_target(kIndicator).ok());
    stored = first.trusted();
    stored.delegated["un.ga"] = stored.delegated.at("itu.ict");
    repo.source.fetched.clear();
    Updater u(stored, repo.source, repo.options());
    auto f = u.find_target(kResolution);
    REQUIRE(f.ok());
    CHECK(repo.source.fetched == std::vector<std::string>{"1.un.ga.json"});
  }
}

// ---- Delegations ----------------------------------------------------------------------

TEST_CASE("a target signed by a key not delegated its path is not trusted", "[crypto][tuf]") {
  TestRepo repo;
  SECTION("a publisher listing a target outside its delegated paths") {
    repo.add_target("un.ga", "itu/ict/fake-data/manifest.json", "fake");
    repo.add_target("un.ga", kIndicator, "hijacked");
    repo.publish();
    Updater u(repo.first_contact(), repo.source, repo.options());
    REQUIRE(u.refresh().ok());
    CHECK(u.find_target("itu/ict/fake-data/manifest.json").status().code() == Code::kNotFound);
    auto real = u.find_target(kIndicator);
    REQUIRE(real.ok());
    CHECK(*real == TestRepo::target_for("indicators v1"));
    auto all = u.all_targets();
    REQUIRE(all.ok());
    CHECK(all->count("itu/ict/fake-data/manifest.json") == 0);
    CHECK(all->at(kIndicator) == TestRepo::target_for("indicators v1"));
  }
  SECTION("a delegated role's metadata signed by another publisher's key") {
    repo.role_signers["itu.ict"] = {&repo.publisher_a};
    repo.publish();
    Updater u(repo.first_contact(), repo.source, repo.options());
    REQUIRE(u.refresh().ok());
    auto f = u.find_target(kIndicator);
    REQUIRE_FALSE(f.ok());
    CHECK(f.error().code() == Code::kVerificationFailed);
    CHECK(contains(f.error().message(), "itu.ict"));
    CHECK(u.find_target(kResolution).ok());
  }
  SECTION("top-level targets cannot list a target it delegates away to no one") {
    Updater u(repo.first_contact(), repo.source, repo.options());
    REQUIRE(u.refresh().ok());
    CHECK(u.find_target("un/sc/S-RES-1/manifest.json").status().code() == Code::kNotFound);
  }
}

TEST_CASE("delegations are searched in order and a terminating role ends the search",
          "[crypto][tuf]") {
  TestRepo repo;
  const std::string path = "un/sc/S-RES-2720/manifest.json";
  SecretKey c = test_key(22);
  // un.any (before itu.ict, after un.ga) is delegated all of un/; it lists the path.
  repo.delegate("un.any", c, {"un/*/*/*"});
  repo.add_target("un.any", path, "from un.any");

  SECTION("non-terminating: a role that matches but lacks the target passes the search on") {
    repo.targets.delegations->roles[0].paths = {"un/*/*/*"};  // un.ga now matches too
    repo.publish();
    Updater u(repo.first_contact(), repo.source, repo.options());
    REQUIRE(u.refresh().ok());
    auto f = u.find_target(path);
    REQUIRE(f.ok());
    CHECK(*f == TestRepo::target_for("from un.any"));
  }
  SECTION("terminating: the search ends with the first matching role") {
    repo.targets.delegations->roles[0].paths = {"un/*/*/*"};
    repo.targets.delegations->roles[0].terminating = true;
    repo.publish();
    Updater u(repo.first_contact(), repo.source, repo.options());
    REQUIRE(u.refresh().ok());
    CHECK(u.find_target(path).status().code() == Code::kNotFound);
    CHECK(u.find_target(kResolution).ok());
  }
  SECTION("a terminating role deep in the tree also ends the search of roles above it") {
    // un.ga (matching un/*) delegates to un.ga.stop, terminating; un.any comes after un.ga
    // at the top level and lists the path, but must not be consulted.
    repo.targets.delegations->roles[0].paths = {"un/*/*/*"};
    SecretKey d = test_key(24);
    tuf::Targets& ga = repo.roles["un.ga"];
    ga.delegations = tuf::Delegations{};
    ga.delegations->keys[d.public_key().keyid()] = d.public_key();
    DelegatedRole stop;
    stop.name = "un.ga.stop";
    stop.keyids = {d.public_key().keyid()};
    stop.paths = {"un/sc/*/*"};
    stop.terminating = true;
    ga.delegations->roles.push_back(stop);
    repo.roles["un.ga.stop"].version = 1;
    repo.roles["un.ga.stop"].expires = kNow + kDay;
    repo.role_signers["un.ga.stop"] = {&d};
    repo.publish();
    Updater u(repo.first_contact(), repo.source, repo.options());
    REQUIRE(u.refresh().ok());
    CHECK(u.find_target(path).status().code() == Code::kNotFound);
    CHECK(u.find_target(kResolution).ok());
  }
  SECTION("the first role listing a path wins") {
    repo.targets.delegations->roles[0].paths = {"un/*/*/*"};
    repo.add_target("un.ga", path, "from un.ga");
    repo.publish();
    Updater u(repo.first_contact(), repo.source, repo.options());
    REQUIRE(u.refresh().ok());
    CHECK(*u.find_target(path) == TestRepo::target_for("from un.ga"));
    auto all = u.all_targets();
    REQUIRE(all.ok());
    CHECK(all->at(path) == TestRepo::target_for("from un.ga"));
  }
}

TEST_CASE("nested delegations are followed within max_delegations and cycles end",
          "[crypto][tuf]") {
  TestRepo repo;
  SecretKey c = test_key(23);
  const std::string special = "un/ga/special/manifest.json";
  // un.ga delegates un/ga/special/* to un.ga.special.
  tuf::Targets& ga = repo.roles["un.ga"];
  ga.delegations = tuf::Delegations{};
  ga.delegations->keys[c.public_key().keyid()] = c.public_key();
  DelegatedRole sub;
  sub.name = "un.ga.special";
  sub.keyids = {c.public_key().keyid()};
  sub.paths = {"un/ga/special/*"};
  ga.delegations->roles.push_back(sub);
  repo.roles["un.ga.special"].version = 1;
  repo.roles["un.ga.special"].expires = kNow + kDay;
  repo.role_signers["un.ga.special"] = {&c};
  repo.add_target("un.ga.special", special, "special");

  SECTION("found two levels down") {
    repo.publish();
    Updater u(repo.first_contact(), repo.source, repo.options());
    REQUIRE(u.refresh().ok());
    auto f = u.find_target(special);
    REQUIRE(f.ok());
    CHECK(*f == TestRepo::target_for("special"));
    auto all = u.all_targets();
    REQUIRE(all.ok());
    CHECK(all->size() == 3);
    CHECK(all->count(special) == 1);
  }
  SECTION("not searched beyond max_delegations") {
    repo.publish();
    UpdaterOptions o = repo.options();
    o.max_delegations = 1;
    Updater u(repo.first_contact(), repo.source, o);
    REQUIRE(u.refresh().ok());
    auto f = u.find_target(special);
    CHECK(f.status().code() == Code::kNotFound);
    CHECK(contains(f.status().message(), "within 1 delegated roles"));
    CHECK(u.find_target(kResolution).ok());
  }
  SECTION("a delegation cycle ends") {
    // un.ga.special delegates back to un.ga.
    tuf::Targets& sp = repo.roles["un.ga.special"];
    sp.delegations = tuf::Delegations{};
    sp.delegations->keys[repo.publisher_a.public_key().keyid()] = repo.publisher_a.public_key();
    DelegatedRole back;
    back.name = "un.ga";
    back.keyids = {repo.publisher_a.public_key().keyid()};
    back.paths = {"un/ga/*/*"};
    sp.delegations->roles.push_back(back);
    repo.publish();
    Updater u(repo.first_contact(), repo.source, repo.options());
    REQUIRE(u.refresh().ok());
    CHECK(u.find_target("un/ga/special/absent.json").status().code() == Code::kNotFound);
    CHECK(u.all_targets().ok());
  }
}

TEST_CASE("hashed-bin delegations route each target to the bin of its hash prefix",
          "[crypto][tuf]") {
  TestRepo repo;
  SecretKey bins_key = test_key(30);
  repo.targets.delegations = tuf::Delegations{};
  repo.roles.clear();
  repo.targets.delegations->keys[bins_key.public_key().keyid()] = bins_key.public_key();
  const std::string digits = "0123456789abcdef";
  for (char d : digits) {
    const std::string name = std::string("bin-") + d;
    DelegatedRole bin;
    bin.name = name;
    bin.keyids = {bins_key.public_key().keyid()};
    bin.path_hash_prefixes = {std::string(1, d)};
    repo.targets.delegations->roles.push_back(bin);
    repo.roles[name].version = 1;
    repo.roles[name].expires = kNow + kDay;
    repo.role_signers[name] = {&bins_key};
  }
  std::vector<std::string> paths;
  for (int i = 0; i < 40; ++i) {
    const std::string p = "org/set/bundle-" + std::to_string(i) + "/manifest.json";
    paths.push_back(p);
    const char bin = hex(sha256(as_bytes(p)))[0];
    repo.add_target(std::string("bin-") + bin, p, "content " + p);
  }
  // One target placed in the wrong bin.
  const std::string misplaced = "org/set/misplaced/manifest.json";
  const char right = hex(sha256(as_bytes(misplaced)))[0];
  const char wrong = right == '0' ? '1' : '0';
  repo.add_target(std::string("bin-") + wrong, misplaced, "misplaced");
  repo.publish();

  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());
  for (const std::string& p : paths) {
    CAPTURE(p);
    auto f = u.find_target(p);
    REQUIRE(f.ok());
    CHECK(*f == TestRepo::target_for("content " + p));
  }
  CHECK(u.find_target(misplaced).status().code() == Code::kNotFound);
  auto all = u.all_targets();
  REQUIRE(all.ok());
  CHECK(all->size() == paths.size());
  CHECK(all->count(misplaced) == 0);
}

TEST_CASE("lookups before any refresh ask for a sync", "[crypto][tuf]") {
  TestRepo repo;
  Updater u(repo.first_contact(), repo.source, repo.options());
  CHECK(u.find_target(kResolution).status().code() == Code::kFailedPrecondition);
  CHECK(u.all_targets().status().code() == Code::kFailedPrecondition);
  CHECK(repo.source.fetched.empty());
}

// ---- Regression: a delegation without a publish stopped every node (issue 7) ------------

TEST_CASE("a delegation without a publish stops every node", "[crypto][tuf][regression]") {
  // `repo delegate` for a new publisher (who/...) before its first release: targets.json
  // delegates role who.x, and the snapshot does not list who.x.json, since it has no
  // metadata yet.
  TestRepo repo;
  const SecretKey publisher_c = test_key(22);
  repo.delegate("who.x", publisher_c, {"who/x/*"}, /*terminating=*/true);
  repo.roles.erase("who.x");  // delegated, not published
  repo.targets.version += 1;
  repo.snapshot.version += 1;
  repo.timestamp.version += 1;
  repo.publish();
  REQUIRE(repo.source.files.count("1.who.x.json") == 0);
  const std::string who = "who/x/manifest.json";

  Updater u(repo.first_contact(), repo.source, repo.options());
  REQUIRE(u.refresh().ok());
  SECTION("the other publishers' targets are found") {
    CHECK(u.find_target(kResolution).ok());
    CHECK(u.find_target(kIndicator).ok());
    auto all = u.all_targets();
    REQUIRE(all.ok());
    CHECK(all->size() == 2);
  }
  SECTION("the unpublished role's names are simply not found") {
    auto missing = u.find_target(who);
    CHECK(missing.status().code() == Code::kNotFound);
    CHECK(u.trusted().delegated.count("who.x") == 0);
  }
  SECTION("its first release is then picked up") {
    repo.roles["who.x"].version = 0;
    repo.roles["who.x"].expires = kNow + 365 * kDay;
    repo.release("who.x", who, "who v1");
    REQUIRE(u.refresh().ok());
    auto f = u.find_target(who);
    REQUIRE(f.ok());
    CHECK(*f == TestRepo::target_for("who v1"));

    SECTION("and a snapshot leaving it out again is refused as a rollback") {
      const TrustedMetadata before = u.trusted();
      repo.snapshot.version += 1;
      repo.write_snapshot();
      repo.snapshot.meta.erase("who.x.json");
      repo.source.files[repo.snapshot_name()] =
          repo.sign(repo.snapshot.to_signed(), {&repo.snapshot_key});
      repo.timestamp.version += 1;
      repo.write_timestamp();
      Status s = u.refresh();
      CHECK(s.code() == Code::kVerificationFailed);
      CHECK(contains(s.message(), "no longer lists who.x.json"));
      CHECK(same(u.trusted(), before));
      SECTION("also for a node restarted from what it persisted") {
        Updater again(before, repo.source, repo.options());
        CHECK(again.refresh().code() == Code::kVerificationFailed);
      }
    }
  }
}
