#include "outpost/base/bytes.h"

#include <catch2/catch.hpp>
#include <cstdint>

using outpost::Bytes;
using outpost::ByteView;

TEST_CASE("a varint round-trips every width and refuses what runs short or past 64 bits",
          "[base][bytes]") {
  for (std::uint64_t v : {0ull, 1ull, 127ull, 128ull, 300ull, 16383ull, 16384ull, 65535ull,
                          (1ull << 32) - 1, (1ull << 63), ~0ull}) {
    Bytes b;
    outpost::put_varint(b, v);
    b.push_back(0xAA);  // what follows is left alone
    std::size_t pos = 0;
    auto back = outpost::get_varint(ByteView(b), &pos);
    REQUIRE(back);
    CHECK(*back == v);
    CHECK(pos == b.size() - 1);
  }
  Bytes one;
  outpost::put_varint(one, 127);
  CHECK(one.size() == 1);
  Bytes two;
  outpost::put_varint(two, 128);
  CHECK(two.size() == 2);

  std::size_t pos = 0;
  const Bytes cut = {0x80, 0x80};  // continues past the end
  CHECK_FALSE(outpost::get_varint(ByteView(cut), &pos));
  pos = 0;
  const Bytes wide = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02};  // 2^64 and up
  CHECK_FALSE(outpost::get_varint(ByteView(wide), &pos));
  pos = 0;
  const Bytes endless(11, 0x80);
  CHECK_FALSE(outpost::get_varint(ByteView(endless), &pos));
}
