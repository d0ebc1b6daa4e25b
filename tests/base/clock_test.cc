#include "outpost/base/clock.h"

#include <catch2/catch.hpp>

#include "outpost/base/bytes.h"

TEST_CASE("UTC times round-trip in the form TUF writes", "[base][clock]") {
  CHECK(outpost::format_utc(0) == "1970-01-01T00:00:00Z");
  CHECK(outpost::parse_utc("2030-01-01T00:00:00Z").value() == 1893456000);
  CHECK(outpost::format_utc(1893456000) == "2030-01-01T00:00:00Z");
  CHECK(outpost::parse_utc("2024-02-29T12:34:56Z").value() == 1709210096);
  CHECK_FALSE(outpost::parse_utc("2030-01-01 00:00:00").has_value());
  CHECK_FALSE(outpost::parse_utc("2030-13-01T00:00:00Z").has_value());
}

TEST_CASE("hex round-trips and rejects bad input", "[base]") {
  outpost::Bytes b{0x00, 0xab, 0xff};
  CHECK(outpost::to_hex(b) == "00abff");
  CHECK(outpost::from_hex("00ABff").value() == b);
  CHECK_FALSE(outpost::from_hex("abc").has_value());
  CHECK_FALSE(outpost::from_hex("zz").has_value());
}
