#include "outpost/crypto/keys.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>

#include "crypto/tuf_test_repo.h"
#include "outpost/base/json.h"
#include "outpost/crypto/hash.h"
#include "support/test_support.h"

using namespace outpost;
using namespace outpost::crypto;

namespace {

Bytes unhex(std::string_view h) { return from_hex(h).value(); }

Signature sig_from_hex(std::string_view h) {
  Signature s{};
  Bytes b = unhex(h);
  REQUIRE(b.size() == s.size());
  std::copy(b.begin(), b.end(), s.begin());
  return s;
}

unsigned file_mode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::string key_file_text(std::string_view seed_hex, std::string_view public_hex) {
  return "{\"keytype\":\"ed25519\",\"role\":\"publisher\",\"public\":\"" + std::string(public_hex) +
         "\",\"seed\":\"" + std::string(seed_hex) + "\"}";
}

void write_with_mode(const std::string& path, const std::string& text, mode_t mode) {
  test::write_text(path, text);
  REQUIRE(::chmod(path.c_str(), mode) == 0);
}

// RFC 8032, section 7.1, test 1 and test 2.
constexpr const char* kSeed1 = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr const char* kPub1 = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr const char* kSig1 =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
constexpr const char* kSeed2 = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
constexpr const char* kPub2 = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
constexpr const char* kSig2 =
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";

}  // namespace

TEST_CASE("Ed25519 signing matches the RFC 8032 vectors", "[crypto][keys]") {
  auto k1 = SecretKey::from_seed(unhex(kSeed1));
  REQUIRE(k1.ok());
  CHECK(k1->public_key().hex() == kPub1);
  CHECK(k1->sign({}) == sig_from_hex(kSig1));
  CHECK(verify_signature(k1->public_key(), {}, sig_from_hex(kSig1)));

  auto k2 = SecretKey::from_seed(unhex(kSeed2));
  REQUIRE(k2.ok());
  CHECK(k2->public_key().hex() == kPub2);
  const Bytes msg = {0x72};
  CHECK(k2->sign(msg) == sig_from_hex(kSig2));
  CHECK(verify_signature(k2->public_key(), msg, sig_from_hex(kSig2)));
}

TEST_CASE("from_seed refuses a seed that is not 32 bytes", "[crypto][keys]") {
  CHECK(SecretKey::from_seed(Bytes(31, 1)).status().code() == Code::kInvalidArgument);
  CHECK(SecretKey::from_seed(Bytes(33, 1)).status().code() == Code::kInvalidArgument);
}

TEST_CASE("a signature verifies only for the same message, key and signature", "[crypto][keys]") {
  auto key = SecretKey::generate();
  auto other = SecretKey::generate();
  REQUIRE(key.ok());
  REQUIRE(other.ok());
  CHECK_FALSE(key->public_key() == other->public_key());
  const Bytes msg = to_bytes("the signed part of timestamp.json");
  const Signature sig = key->sign(msg);
  CHECK(verify_signature(key->public_key(), msg, sig));

  Bytes tampered = msg;
  tampered[5] ^= 0x01;
  CHECK_FALSE(verify_signature(key->public_key(), tampered, sig));
  Bytes longer = msg;
  longer.push_back(' ');
  CHECK_FALSE(verify_signature(key->public_key(), longer, sig));
  Signature bad_sig = sig;
  bad_sig[0] ^= 0x80;
  CHECK_FALSE(verify_signature(key->public_key(), msg, bad_sig));
  CHECK_FALSE(verify_signature(other->public_key(), msg, sig));
}

TEST_CASE("a saved key loads back with the same key and a 0600 file", "[crypto][keys]") {
  test::TempDir dir;
  const std::string path = dir / "root.key";
  auto key = SecretKey::generate();
  REQUIRE(key.ok());
  REQUIRE(key->save(path, KeyRole::kRoot).ok());
  CHECK(file_mode(path) == 0600);

  auto loaded = SecretKey::load(path);
  REQUIRE(loaded.ok());
  CHECK(loaded->public_key() == key->public_key());
  const Bytes msg = to_bytes("hello");
  // Ed25519 is deterministic: the same secret gives the same signature.
  CHECK(loaded->sign(msg) == key->sign(msg));

  // The file is the documented JSON.
  auto doc = parse_json(test::read_text(path));
  REQUIRE(doc.ok());
  CHECK(doc->get_string("keytype").value() == "ed25519");
  CHECK(doc->get_string("role").value() == "root");
  CHECK(doc->get_string("public").value() == key->public_key().hex());
  CHECK(doc->get_string("seed").value().size() == 64);
}

TEST_CASE("a key file written for a known seed has exactly the documented form", "[crypto][keys]") {
  test::TempDir dir;
  auto key = SecretKey::from_seed(unhex(kSeed1));
  REQUIRE(key.ok());
  REQUIRE(key->save(dir / "k", KeyRole::kTimestamp).ok());
  CHECK(test::read_text(dir / "k") ==
        "{\n  \"keytype\": \"ed25519\",\n  \"role\": \"timestamp\",\n  \"public\": \"" +
            std::string(kPub1) + "\",\n  \"seed\": \"" + std::string(kSeed1) + "\"\n}\n");
}

TEST_CASE("save never overwrites an existing file", "[crypto][keys]") {
  test::TempDir dir;
  const std::string path = dir / "k";
  test::write_text(path, "precious");
  auto key = SecretKey::generate();
  REQUIRE(key.ok());
  Status s = key->save(path, KeyRole::kTargets);
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK(s.message().find(path) != std::string::npos);
  CHECK(test::read_text(path) == "precious");
}

TEST_CASE("save into a missing directory fails with kNotFound", "[crypto][keys]") {
  test::TempDir dir;
  auto key = SecretKey::generate();
  REQUIRE(key.ok());
  CHECK(key->save(dir / "no/such/dir/k", KeyRole::kRoot).code() == Code::kNotFound);
}

TEST_CASE("a key file readable by group or others is refused with the chmod to run",
          "[crypto][keys]") {
  test::TempDir dir;
  const std::string path = dir / "publisher.key";
  auto key = SecretKey::generate();
  REQUIRE(key.ok());
  REQUIRE(key->save(path, KeyRole::kPublisher).ok());

  for (mode_t mode : {0644, 0640, 0604, 0660, 0601}) {
    CAPTURE(mode);
    REQUIRE(::chmod(path.c_str(), mode) == 0);
    auto loaded = SecretKey::load(path);
    REQUIRE_FALSE(loaded.ok());
    CHECK(loaded.error().code() == Code::kFailedPrecondition);
    CHECK(loaded.error().message().find("chmod 600 " + path) != std::string::npos);
    CHECK(loaded.error().message().find("readable by group or others") != std::string::npos);
  }
  REQUIRE(::chmod(path.c_str(), 0644) == 0);
  CHECK(SecretKey::load(path).error().message().find("(mode 0644)") != std::string::npos);
  REQUIRE(::chmod(path.c_str(), 0400) == 0);
  CHECK(SecretKey::load(path).ok());
}

TEST_CASE("loading a missing key file is kNotFound", "[crypto][keys]") {
  test::TempDir dir;
  CHECK(SecretKey::load(dir / "absent.key").status().code() == Code::kNotFound);
}

TEST_CASE("a file that is not a valid key file is refused as corrupt", "[crypto][keys]") {
  test::TempDir dir;
  const std::string path = dir / "k";
  const std::string good_seed = kSeed1;
  const std::string good_pub = kPub1;
  auto expect_corrupt = [&] {
    auto k = SecretKey::load(path);
    REQUIRE_FALSE(k.ok());
    CHECK(k.error().code() == Code::kCorruption);
    CHECK(k.error().message().find(path) != std::string::npos);
  };

  SECTION("the valid form loads") {
    write_with_mode(path, key_file_text(good_seed, good_pub), 0600);
    auto k = SecretKey::load(path);
    REQUIRE(k.ok());
    CHECK(k->public_key().hex() == good_pub);
  }
  SECTION("not JSON") {
    write_with_mode(path, "ed25519 " + good_seed, 0600);
    expect_corrupt();
  }
  SECTION("wrong key type") {
    std::string t = key_file_text(good_seed, good_pub);
    t.replace(t.find("ed25519"), 7, "rsa2048");
    write_with_mode(path, t, 0600);
    expect_corrupt();
  }
  SECTION("short seed") {
    write_with_mode(path, key_file_text(good_seed.substr(2), good_pub), 0600);
    expect_corrupt();
  }
  SECTION("non-hex seed") {
    std::string seed = good_seed;
    seed[0] = 'z';
    write_with_mode(path, key_file_text(seed, good_pub), 0600);
    expect_corrupt();
  }
  SECTION("public key that does not match the seed") {
    write_with_mode(path, key_file_text(good_seed, kPub2), 0600);
    expect_corrupt();
  }
  SECTION("unknown role") {
    std::string t = key_file_text(good_seed, good_pub);
    t.replace(t.find("publisher"), 9, "superuser");
    write_with_mode(path, t, 0600);
    expect_corrupt();
  }
  SECTION("an oversized file") {
    write_with_mode(path, std::string(10000, ' '), 0600);
    expect_corrupt();
  }
  SECTION("a directory") {
    test::make_dirs(path);
    REQUIRE(::chmod(path.c_str(), 0700) == 0);
    expect_corrupt();
  }
}

TEST_CASE("a moved secret key still signs", "[crypto][keys]") {
  auto a = SecretKey::from_seed(unhex(kSeed1));
  REQUIRE(a.ok());
  SecretKey b = std::move(a).value();
  SecretKey c = std::move(SecretKey::from_seed(unhex(kSeed2))).value();
  c = std::move(b);
  CHECK(c.public_key().hex() == kPub1);
  CHECK(c.sign({}) == sig_from_hex(kSig1));
}

TEST_CASE("key role names round-trip and unknown names are refused", "[crypto][keys]") {
  for (KeyRole r : {KeyRole::kRoot, KeyRole::kTargets, KeyRole::kSnapshot, KeyRole::kTimestamp,
                    KeyRole::kPublisher}) {
    auto parsed = parse_key_role(key_role_name(r));
    REQUIRE(parsed.ok());
    CHECK(*parsed == r);
  }
  CHECK(std::string(key_role_name(KeyRole::kSnapshot)) == "snapshot");
  CHECK(parse_key_role("admin").status().code() == Code::kInvalidArgument);
  CHECK(parse_key_role("Root").status().code() == Code::kInvalidArgument);
}

TEST_CASE("public keys convert to and from hex and the TUF key object", "[crypto][keys]") {
  auto pk = PublicKey::from_hex(kPub1);
  REQUIRE(pk.ok());
  CHECK(pk->hex() == kPub1);
  CHECK(pk->to_tuf().canonical() ==
        std::string("{\"keytype\":\"ed25519\",\"keyval\":{\"public\":\"") + kPub1 +
            "\"},\"scheme\":\"ed25519\"}");
  auto back = PublicKey::from_tuf(pk->to_tuf());
  REQUIRE(back.ok());
  CHECK(*back == *pk);
  // The key id is the SHA-256 of that canonical form (computed independently with Python's
  // hashlib and json.dumps(sort_keys=True, separators=(",", ":"))).
  CHECK(pk->keyid() == hex(sha256(as_bytes(pk->to_tuf().canonical()))));
  CHECK(pk->keyid() == "74c181c7ad8a0855d4b55e44d2ba87aabdddb196832571f15f92fece332e4916");

  CHECK_FALSE(PublicKey::from_hex("abcd").ok());
  CHECK_FALSE(PublicKey::from_hex(std::string(64, 'x')).ok());

  Json rsa = pk->to_tuf();
  rsa.set("keytype", "rsa");
  rsa.set("scheme", "rsassa-pss-sha256");
  CHECK(PublicKey::from_tuf(rsa).status().code() == Code::kCorruption);
  Json no_keyval = Json::object();
  no_keyval.set("keytype", "ed25519");
  no_keyval.set("scheme", "ed25519");
  CHECK_FALSE(PublicKey::from_tuf(no_keyval).ok());
}
