#include "outpost/packaging/compress.h"

#include <catch2/catch.hpp>

#include "support/test_support.h"

namespace op = outpost::packaging;
using outpost::Bytes;
using outpost::Code;

TEST_CASE("compressed chunks round-trip through a reused context", "[packaging][compress]") {
  op::Compressor c;
  op::Decompressor d;
  CHECK(c.level() == op::kDefaultChunkLevel);
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{2048}, std::size_t{65536}}) {
    Bytes raw = outpost::test::random_bytes(n, n + 1);
    for (std::size_t i = 0; i < raw.size(); i += 3) raw[i] = 'a';  // some redundancy
    auto frame = c.compress(raw);
    REQUIRE(frame.ok());
    auto back = d.decompress(*frame, raw.size());
    REQUIRE(back.ok());
    CHECK(*back == raw);
  }
}

TEST_CASE("decompression never goes past the declared size", "[packaging][compress]") {
  op::Compressor c(3);
  op::Decompressor d;
  const Bytes zeros(1u << 20, 0);  // 1 MiB compresses to a few bytes: a bomb
  auto frame = c.compress(zeros);
  REQUIRE(frame.ok());
  CHECK(frame->size() < 200);

  auto bomb = d.decompress(*frame, 4096, "chunk abc");
  REQUIRE(!bomb.ok());
  CHECK(bomb.error().code() == Code::kCorruption);
  CHECK_THAT(
      bomb.error().message(),
      Catch::Contains("decompression bomb: chunk abc decompresses past its declared 4096 bytes"));

  auto shorter = d.decompress(*frame, zeros.size() + 1, "chunk abc");
  REQUIRE(!shorter.ok());
  CHECK(shorter.error().code() == Code::kCorruption);
  CHECK_THAT(shorter.error().message(), Catch::Contains("decompresses to 1048576 bytes"));

  // The context still works after errors.
  auto ok = d.decompress(*frame, zeros.size());
  REQUIRE(ok.ok());
  CHECK(*ok == zeros);
}

TEST_CASE("malformed frames are corruption", "[packaging][compress]") {
  op::Compressor c;
  op::Decompressor d;
  const Bytes raw = outpost::test::random_bytes(10000, 3);
  auto frame = c.compress(raw);
  REQUIRE(frame.ok());
  SECTION("truncated") {
    Bytes cut(frame->begin(), frame->end() - 10);
    auto r = d.decompress(cut, raw.size());
    REQUIRE(!r.ok());
    CHECK(r.error().code() == Code::kCorruption);
  }
  SECTION("trailing bytes") {
    Bytes more = *frame;
    more.push_back(0);
    auto r = d.decompress(more, raw.size());
    REQUIRE(!r.ok());
    CHECK(r.error().code() == Code::kCorruption);
    CHECK_THAT(r.error().message(), Catch::Contains("trailing"));
  }
  SECTION("garbage") {
    auto r = d.decompress(outpost::test::random_bytes(100, 1), 100);
    REQUIRE(!r.ok());
    CHECK(r.error().code() == Code::kCorruption);
  }
  SECTION("empty input") {
    auto r = d.decompress({}, 10);
    REQUIRE(!r.ok());
    CHECK(r.error().code() == Code::kCorruption);
  }
}

TEST_CASE("patch-from compression uses the previous version as a prefix", "[packaging][compress]") {
  Bytes v1 = outpost::test::random_bytes(200000, 8);
  Bytes v2 = v1;
  v2[1000] ^= 1;
  v2[150000] ^= 1;
  op::Compressor c(19);
  op::Decompressor d;
  auto patch = c.compress_with_prefix(v2, v1);
  REQUIRE(patch.ok());
  CHECK(patch->size() < 200);
  auto back = d.decompress_with_prefix(*patch, v1, v2.size());
  REQUIRE(back.ok());
  CHECK(*back == v2);
  // Without the prefix it cannot be rebuilt.
  CHECK(!d.decompress(*patch, v2.size()).ok());
}
