#include "outpost/crypto/hash.h"

#include <catch2/catch.hpp>
#include <string>

#include "crypto/tuf_test_repo.h"
#include "support/test_support.h"

using namespace outpost;
using namespace outpost::crypto;

TEST_CASE("crypto::init succeeds and is idempotent", "[crypto][hash]") {
  REQUIRE(crypto::init());
  REQUIRE(crypto::init());
}

TEST_CASE("BLAKE2b-256 matches the reference vectors", "[crypto][hash]") {
  CHECK(hex(blake2b(as_bytes(""))) ==
        "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
  CHECK(hex(blake2b(as_bytes("abc"))) ==
        "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
  CHECK(hex(blake2b(as_bytes("The quick brown fox jumps over the lazy dog"))) ==
        "01718cec35cd3d796dd00020e0bfecb473ad23457d063b75eff29c0ffa2e58a9");
}

TEST_CASE("SHA-256 matches the NIST vectors", "[crypto][hash]") {
  CHECK(hex(sha256(as_bytes(""))) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hex(sha256(as_bytes("abc"))) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex(sha256(as_bytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  CHECK(hex(sha256(as_bytes(million))) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("streaming hashes equal one-shot hashes however the input is split", "[crypto][hash]") {
  const Bytes data = test::random_bytes(100000, 42);
  const Digest b2 = blake2b(data);
  const Digest s2 = sha256(data);
  for (std::size_t split :
       {std::size_t{0}, std::size_t{1}, std::size_t{63}, std::size_t{64}, std::size_t{65},
        std::size_t{4096}, std::size_t{99999}, std::size_t{100000}}) {
    CAPTURE(split);
    Blake2b b;
    Sha256 s;
    const ByteView all(data);
    b.update(all.subspan(0, split));
    s.update(all.subspan(0, split));
    b.update(all.subspan(split));
    s.update(all.subspan(split));
    CHECK(b.finish() == b2);
    CHECK(s.finish() == s2);
  }
  // Many tiny updates.
  Blake2b b;
  Sha256 s;
  for (std::size_t i = 0; i < data.size(); i += 7) {
    const ByteView piece = ByteView(data).subspan(i, std::min<std::size_t>(7, data.size() - i));
    b.update(piece);
    s.update(piece);
  }
  CHECK(b.finish() == b2);
  CHECK(s.finish() == s2);
}

TEST_CASE("different inputs give different digests and digest_equal tells them apart",
          "[crypto][hash]") {
  const Digest a = blake2b(as_bytes("chunk a"));
  const Digest b = blake2b(as_bytes("chunk b"));
  CHECK_FALSE(a == b);
  CHECK(digest_equal(a, a));
  CHECK_FALSE(digest_equal(a, b));
  Digest c = a;
  c[31] ^= 1;
  CHECK_FALSE(digest_equal(a, c));
  // BLAKE2b and SHA-256 of the same bytes differ (they are not interchangeable).
  CHECK_FALSE(blake2b(as_bytes("x")) == sha256(as_bytes("x")));
}

TEST_CASE("hex and parse_digest round-trip and reject malformed digests", "[crypto][hash]") {
  const Digest d = sha256(as_bytes("abc"));
  Digest out{};
  REQUIRE(parse_digest(hex(d), out));
  CHECK(out == d);
  // Uppercase is accepted.
  std::string upper = hex(d);
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  Digest out2{};
  REQUIRE(parse_digest(upper, out2));
  CHECK(out2 == d);

  Digest untouched{};
  CHECK_FALSE(parse_digest("", untouched));
  CHECK_FALSE(parse_digest(hex(d).substr(2), untouched));
  CHECK_FALSE(parse_digest(hex(d) + "00", untouched));
  std::string bad = hex(d);
  bad[10] = 'g';
  CHECK_FALSE(parse_digest(bad, untouched));
}
