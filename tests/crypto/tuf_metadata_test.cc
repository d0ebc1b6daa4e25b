#include <catch2/catch.hpp>
#include <string>

#include "crypto/tuf_test_repo.h"
#include "outpost/base/json.h"
#include "outpost/crypto/tuf.h"

using namespace outpost;
using namespace outpost::crypto;
using namespace outpost::crypto::tuf;
using outpost::crypto::testing::kDay;
using outpost::crypto::testing::kNow;
using outpost::crypto::testing::test_key;

namespace {

// The signed part of `file` with `key` set to `value` (or removed when value is null).
Json edited(const Json& signed_part, std::string_view key, Json value) {
  Json copy = signed_part;
  if (value.is_null()) {
    copy.erase(key);
  } else {
    copy.set(key, std::move(value));
  }
  return copy;
}

Root sample_root() {
  Root r;
  r.version = 3;
  r.expires = kNow + 365 * kDay;
  int seed = 1;
  for (const char* role : {"root", "targets", "snapshot", "timestamp"}) {
    PublicKey k = test_key(static_cast<std::uint8_t>(seed++)).public_key();
    r.keys[k.keyid()] = k;
    r.roles[role].keyids = {k.keyid()};
  }
  r.roles["root"].threshold = 1;
  return r;
}

Targets sample_targets() {
  Targets t;
  t.version = 4;
  t.expires = kNow + 10 * kDay;
  t.targets["un/ga/A-RES-75-202/manifest.json"] =
      outpost::crypto::testing::TestRepo::target_for("manifest bytes");
  TargetFile plain;
  plain.length = 0;
  plain.sha256 = hex(sha256(as_bytes("")));
  t.targets["empty"] = plain;
  Delegations d;
  PublicKey a = test_key(20).public_key();
  PublicKey b = test_key(21).public_key();
  d.keys[a.keyid()] = a;
  d.keys[b.keyid()] = b;
  DelegatedRole by_path;
  by_path.name = "un.ga";
  by_path.keyids = {a.keyid()};
  by_path.threshold = 1;
  by_path.terminating = true;
  by_path.paths = {"un/ga/*/*", "un/ga/*/*/*"};
  DelegatedRole bin;
  bin.name = "bin-0";
  bin.keyids = {a.keyid(), b.keyid()};
  bin.threshold = 2;
  bin.path_hash_prefixes = {"00", "01"};
  d.roles = {by_path, bin};
  t.delegations = d;
  return t;
}

}  // namespace

TEST_CASE("root metadata round-trips through its signed JSON", "[crypto][tuf]") {
  const Root r = sample_root();
  const Json s = r.to_signed();
  CHECK(s.get_string("_type").value() == "root");
  CHECK(s.get_string("spec_version").value() == kSpecVersion);
  CHECK(s.get_string("expires").value() == "2027-11-28T12:00:00Z");
  auto back = Root::from_signed(s);
  REQUIRE(back.ok());
  CHECK(back->version == 3);
  CHECK(back->expires == r.expires);
  CHECK(back->consistent_snapshot);
  CHECK(back->keys == r.keys);
  REQUIRE(back->roles.size() == 4);
  for (const auto& [name, role] : r.roles) {
    CHECK(back->roles.at(name).keyids == role.keyids);
    CHECK(back->roles.at(name).threshold == role.threshold);
  }
  CHECK(back->to_signed().canonical() == s.canonical());
}

TEST_CASE("timestamp, snapshot and targets metadata round-trip", "[crypto][tuf]") {
  Timestamp ts;
  ts.version = 9;
  ts.expires = kNow + kDay;
  ts.snapshot = MetaFile{5, 1234, hex(sha256(as_bytes("snap")))};
  auto ts2 = Timestamp::from_signed(ts.to_signed());
  REQUIRE(ts2.ok());
  CHECK(ts2->version == 9);
  CHECK(ts2->expires == ts.expires);
  CHECK(ts2->snapshot.version == 5);
  CHECK(ts2->snapshot.length == 1234);
  CHECK(ts2->snapshot.sha256 == ts.snapshot.sha256);

  Snapshot sn;
  sn.version = 5;
  sn.expires = kNow + kDay;
  sn.meta["targets.json"] = MetaFile{2, std::nullopt, std::nullopt};
  sn.meta["un.ga.json"] = MetaFile{7, 99, std::nullopt};
  auto sn2 = Snapshot::from_signed(sn.to_signed());
  REQUIRE(sn2.ok());
  CHECK(sn2->meta.size() == 2);
  CHECK(sn2->meta.at("targets.json").version == 2);
  CHECK_FALSE(sn2->meta.at("targets.json").length.has_value());
  CHECK_FALSE(sn2->meta.at("targets.json").sha256.has_value());
  CHECK(sn2->meta.at("un.ga.json").length == 99);
  // Lengths and hashes left out are not written.
  CHECK(sn.to_signed().find("meta")->find("targets.json")->canonical() == "{\"version\":2}");

  const Targets t = sample_targets();
  auto t2 = Targets::from_signed(t.to_signed());
  REQUIRE(t2.ok());
  CHECK(t2->targets == t.targets);
  REQUIRE(t2->delegations.has_value());
  CHECK(t2->delegations->keys == t.delegations->keys);
  REQUIRE(t2->delegations->roles.size() == 2);
  const DelegatedRole& r0 = t2->delegations->roles[0];
  CHECK(r0.name == "un.ga");
  CHECK(r0.terminating);
  CHECK(r0.paths == std::vector<std::string>{"un/ga/*/*", "un/ga/*/*/*"});
  CHECK(r0.path_hash_prefixes.empty());
  const DelegatedRole& r1 = t2->delegations->roles[1];
  CHECK(r1.name == "bin-0");
  CHECK(r1.threshold == 2);
  CHECK(r1.keyids.size() == 2);
  CHECK(r1.paths.empty());
  CHECK(r1.path_hash_prefixes == std::vector<std::string>{"00", "01"});
  CHECK(t2->to_signed().canonical() == t.to_signed().canonical());
  // custom is written only when set.
  CHECK(t.to_signed().find("targets")->find("empty")->find("custom") == nullptr);
}

TEST_CASE("metadata with missing or malformed fields is refused as corrupt", "[crypto][tuf]") {
  const Json root = sample_root().to_signed();
  const Json targets = sample_targets().to_signed();

  struct Case {
    const char* what;
    Json signed_part;
    const char* message_part;
  };
  std::vector<Case> root_cases = {
      {"no version", edited(root, "version", nullptr), "version"},
      {"version zero", edited(root, "version", 0), "version"},
      {"version as string", edited(root, "version", "3"), "version"},
      {"no expires", edited(root, "expires", nullptr), "expires"},
      {"expires in another format", edited(root, "expires", "2027-11-28 12:00:00"), "expires"},
      {"no spec_version", edited(root, "spec_version", nullptr), "spec_version"},
      {"spec major version 2", edited(root, "spec_version", "2.0.0"), "spec_version 2.0.0"},
      {"spec_version not numeric", edited(root, "spec_version", "1.x.0"), "spec_version"},
      {"no keys", edited(root, "keys", nullptr), "keys"},
      {"no roles", edited(root, "roles", nullptr), "roles"},
      {"no consistent_snapshot", edited(root, "consistent_snapshot", nullptr),
       "consistent_snapshot"},
      {"wrong _type", edited(root, "_type", "targets"), "_type"},
  };
  for (const Case& c : root_cases) {
    CAPTURE(c.what);
    auto r = Root::from_signed(c.signed_part);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Code::kCorruption);
    CHECK(r.error().message().find(c.message_part) != std::string::npos);
  }

  SECTION("a role missing from root") {
    Json roles = *root.find("roles");
    roles.erase("timestamp");
    auto r = Root::from_signed(edited(root, "roles", roles));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message().find("timestamp") != std::string::npos);
  }
  SECTION("a role listing a key that root does not hold") {
    Json roles = *root.find("roles");
    Json snap = *roles.find("snapshot");
    snap.set("keyids", Json::Array{Json(std::string(64, 'a'))});
    roles.set("snapshot", snap);
    CHECK(Root::from_signed(edited(root, "roles", roles)).status().code() == Code::kCorruption);
  }
  SECTION("a threshold of zero") {
    Json roles = *root.find("roles");
    Json snap = *roles.find("snapshot");
    snap.set("threshold", 0);
    roles.set("snapshot", snap);
    CHECK(Root::from_signed(edited(root, "roles", roles)).status().code() == Code::kCorruption);
  }
  SECTION("a key listed under an id that is not its own") {
    Json keys = *root.find("keys");
    const auto& [id, key] = keys.as_object().front();
    Json copy = key;
    keys.erase(id);
    keys.set(std::string(64, 'b'), copy);
    auto r = Root::from_signed(edited(root, "keys", keys));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message().find("does not match") != std::string::npos);
  }
  SECTION("a target without a sha256") {
    Json ts = *targets.find("targets");
    Json entry = *ts.find("empty");
    Json hashes = Json::object();
    hashes.set("sha512", std::string(128, 'a'));
    entry.set("hashes", hashes);
    ts.set("empty", entry);
    auto r = Targets::from_signed(edited(targets, "targets", ts));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message().find("sha256") != std::string::npos);
  }
  SECTION("a delegation with both paths and path_hash_prefixes") {
    Json d = *targets.find("delegations");
    Json roles = *d.find("roles");
    roles.as_array()[0].set("path_hash_prefixes", Json::Array{Json("ab")});
    d.set("roles", roles);
    CHECK(Targets::from_signed(edited(targets, "delegations", d)).status().code() ==
          Code::kCorruption);
  }
  SECTION("a delegation with neither paths nor path_hash_prefixes") {
    Json d = *targets.find("delegations");
    Json roles = *d.find("roles");
    roles.as_array()[0].erase("paths");
    d.set("roles", roles);
    CHECK_FALSE(Targets::from_signed(edited(targets, "delegations", d)).ok());
  }
  SECTION("a delegated role name that would escape its file name") {
    for (const char* name : {"../evil", "un/ga", "", ".hidden", "targets", "root"}) {
      CAPTURE(name);
      Json d = *targets.find("delegations");
      Json roles = *d.find("roles");
      roles.as_array()[0].set("name", name);
      d.set("roles", roles);
      CHECK_FALSE(Targets::from_signed(edited(targets, "delegations", d)).ok());
    }
  }
  SECTION("the same role delegated twice") {
    Json d = *targets.find("delegations");
    Json roles = *d.find("roles");
    roles.as_array()[1].set("name", "un.ga");
    d.set("roles", roles);
    CHECK_FALSE(Targets::from_signed(edited(targets, "delegations", d)).ok());
  }
  SECTION("a delegation without terminating") {
    Json d = *targets.find("delegations");
    Json roles = *d.find("roles");
    roles.as_array()[0].erase("terminating");
    d.set("roles", roles);
    CHECK_FALSE(Targets::from_signed(edited(targets, "delegations", d)).ok());
  }
  SECTION("a snapshot without targets.json") {
    Snapshot sn;
    sn.meta["un.ga.json"].version = 1;
    CHECK_FALSE(Snapshot::from_signed(sn.to_signed()).ok());
  }
  SECTION("a timestamp without snapshot.json") {
    Timestamp t;
    t.snapshot.version = 1;
    Json s = t.to_signed();
    s.set("meta", Json::object());
    CHECK_FALSE(Timestamp::from_signed(s).ok());
  }
}

TEST_CASE("unknown fields are ignored", "[crypto][tuf]") {
  Json s = sample_root().to_signed();
  s.set("x-vendor-note", "hello");
  CHECK(Root::from_signed(s).ok());
  Json t = sample_targets().to_signed();
  t.set("future_field", Json::Array{Json(1), Json(2)});
  CHECK(Targets::from_signed(t).ok());
}

TEST_CASE("sign_metadata writes the canonical envelope that parse_metadata reads back",
          "[crypto][tuf]") {
  SecretKey k1 = test_key(1);
  SecretKey k2 = test_key(2);
  const Json s = sample_root().to_signed();
  const Bytes file = sign_metadata(s, {&k1, &k2, &k1});
  auto env = parse_metadata(file, "root");
  REQUIRE(env.ok());
  CHECK(env->canonical() == std::string(as_chars(file)));
  CHECK(*env->find("signed") == s);
  const Json& sigs = *env->find("signatures");
  REQUIRE(sigs.size() == 2);  // the repeated key signs once
  CHECK(sigs.as_array()[0].get_string("keyid").value() == k1.public_key().keyid());
  CHECK(sigs.as_array()[0].get_string("sig").value().size() == 128);
  Signature sig{};
  Bytes raw = from_hex(sigs.as_array()[0].get_string("sig").value()).value();
  std::copy(raw.begin(), raw.end(), sig.begin());
  CHECK(verify_signature(k1.public_key(), as_bytes(s.canonical()), sig));
}

TEST_CASE("parse_metadata refuses the wrong or an unknown _type and malformed envelopes",
          "[crypto][tuf]") {
  SecretKey k = test_key(1);
  const Bytes root_file = sign_metadata(sample_root().to_signed(), {&k});
  auto wrong = parse_metadata(root_file, "timestamp");
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().code() == Code::kCorruption);
  CHECK(wrong.error().message().find("root") != std::string::npos);

  Json odd = sample_root().to_signed();
  odd.set("_type", "mirrors");
  auto unknown = parse_metadata(sign_metadata(odd, {&k}), "root");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().message().find("unknown _type 'mirrors'") != std::string::npos);

  for (const char* text :
       {"", "[]", "{\"signed\":{\"_type\":\"root\"}}", "{\"signatures\":[]}",
        "{\"signatures\":[],\"signed\":[]}",
        "{\"signatures\":[{\"keyid\":1,\"sig\":\"00\"}],"
        "\"signed\":{\"_type\":\"root\"}}",
        "{\"signatures\":[],\"signed\":{}}",
        "{\"signatures\":[],\"signed\":{\"_type\":\"root\"}} trailing",
        "{\"signatures\":[],\"signed\":{\"_type\":\"root\",\"_type\":\"root\"}}"}) {
    CAPTURE(text);
    auto r = parse_metadata(as_bytes(text), "root");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Code::kCorruption);
  }
}

TEST_CASE("verify_threshold counts distinct valid signatures from the role's keys only",
          "[crypto][tuf]") {
  SecretKey a = test_key(1);
  SecretKey b = test_key(2);
  SecretKey c = test_key(3);
  SecretKey stranger = test_key(99);
  std::map<std::string, PublicKey> keys;
  for (const SecretKey* k : {&a, &b, &c}) keys[k->public_key().keyid()] = k->public_key();
  RoleKeys role;
  role.keyids = {a.public_key().keyid(), b.public_key().keyid(), c.public_key().keyid()};
  std::sort(role.keyids.begin(), role.keyids.end());
  role.threshold = 2;
  const Json s = sample_root().to_signed();
  auto envelope = [&](std::vector<const SecretKey*> signers) {
    return parse_metadata(sign_metadata(s, signers), "root").value();
  };

  CHECK(verify_threshold(envelope({&a, &b}), keys, role, "root").ok());
  CHECK(verify_threshold(envelope({&a, &b, &c}), keys, role, "root").ok());
  Status one = verify_threshold(envelope({&a}), keys, role, "root.json");
  CHECK(one.code() == Code::kVerificationFailed);
  CHECK(one.message().find("root.json") != std::string::npos);
  CHECK(one.message().find("1 valid signature") != std::string::npos);
  // A key the root does not know counts for nothing.
  CHECK_FALSE(verify_threshold(envelope({&a, &stranger}), keys, role, "root").ok());

  SECTION("the same key signing twice counts once") {
    Json env = envelope({&a});
    Json sigs = *env.find("signatures");
    sigs.push(sigs.as_array()[0]);
    env.set("signatures", sigs);
    CHECK_FALSE(verify_threshold(env, keys, role, "root").ok());
  }
  SECTION("a key known to root but not listed for the role counts for nothing") {
    RoleKeys only_a{{a.public_key().keyid()}, 1};
    CHECK(verify_threshold(envelope({&a}), keys, only_a, "snapshot").ok());
    CHECK_FALSE(verify_threshold(envelope({&b}), keys, only_a, "snapshot").ok());
  }
  SECTION("a valid signature moved to another key id counts for nothing") {
    Json env = envelope({&a});
    Json sigs = *env.find("signatures");
    sigs.as_array()[0].set("keyid", b.public_key().keyid());
    sigs.push(sigs.as_array()[0]);  // b's id twice, a's signature both times
    env.set("signatures", sigs);
    RoleKeys one_of{role.keyids, 1};
    CHECK_FALSE(verify_threshold(env, keys, one_of, "root").ok());
  }
  SECTION("a signature over different signed bytes fails") {
    Json env = envelope({&a, &b});
    Json changed = *env.find("signed");
    changed.set("version", 4);
    env.set("signed", changed);
    CHECK_FALSE(verify_threshold(env, keys, role, "root").ok());
  }
  SECTION("malformed signature hex is ignored, not trusted") {
    Json env = envelope({&a, &b});
    Json sigs = *env.find("signatures");
    sigs.as_array()[1].set("sig", "zz");
    env.set("signatures", sigs);
    CHECK_FALSE(verify_threshold(env, keys, role, "root").ok());
  }
  SECTION("a threshold of zero is never satisfied") {
    RoleKeys zero{role.keyids, 0};
    CHECK_FALSE(verify_threshold(envelope({&a}), keys, zero, "root").ok());
  }
}

TEST_CASE("delegated path patterns match segment by segment", "[crypto][tuf]") {
  DelegatedRole r;
  r.name = "un.ga";
  r.paths = {"un/ga/*/*", "un/ga/*/*/*"};
  CHECK(r.matches("un/ga/A-RES-75-202/manifest.json"));
  CHECK(r.matches("un/ga/sub/A-RES-75-202/manifest.json"));
  CHECK_FALSE(r.matches("un/ga/manifest.json"));
  CHECK_FALSE(r.matches("un/gax/A/manifest.json"));
  CHECK_FALSE(r.matches("un/sc/A/manifest.json"));
  CHECK_FALSE(r.matches("itu/ict/x/manifest.json"));
  CHECK_FALSE(r.matches("un/ga/a/b/c/manifest.json"));

  DelegatedRole glob;
  glob.paths = {"itu/*-broadband/*.json"};
  CHECK(glob.matches("itu/mobile-broadband/manifest.json"));
  CHECK_FALSE(glob.matches("itu/mobile-narrowband/manifest.json"));
  CHECK_FALSE(glob.matches("itu/mobile-broadband/manifest.txt"));

  DelegatedRole star;
  star.paths = {"*"};
  CHECK(star.matches("anything"));
  CHECK_FALSE(star.matches("a/b"));  // '*' never crosses a '/'

  DelegatedRole none;
  CHECK_FALSE(none.matches("un/ga/x/y"));
}

TEST_CASE("hashed-bin delegations match by the prefix of the path's SHA-256", "[crypto][tuf]") {
  const std::string path = "un/ga/A-RES-75-202/manifest.json";
  const std::string h = hex(sha256(as_bytes(path)));
  DelegatedRole bin;
  bin.path_hash_prefixes = {h.substr(0, 1)};
  CHECK(bin.matches(path));
  bin.path_hash_prefixes = {h.substr(0, 2), "zz"};
  CHECK(bin.matches(path));
  bin.path_hash_prefixes = {h.substr(0, 6)};
  CHECK(bin.matches(path));
  std::string other = h.substr(0, 2);
  other[1] = other[1] == '0' ? '1' : '0';
  bin.path_hash_prefixes = {other};
  CHECK_FALSE(bin.matches(path));
}
