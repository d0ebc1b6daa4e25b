#include "outpost/base/size.h"

#include <catch2/catch.hpp>

using outpost::parse_byte_size;

TEST_CASE("sizes read as an operator writes them: powers of 1000, KiB-style powers of 1024",
          "[base][size]") {
  CHECK(parse_byte_size("0").value() == 0);
  CHECK(parse_byte_size("1500").value() == 1500);
  CHECK(parse_byte_size("64k").value() == 64'000);
  CHECK(parse_byte_size("64KB").value() == 64'000);
  CHECK(parse_byte_size("1.5M").value() == 1'500'000);
  CHECK(parse_byte_size("2G").value() == 2'000'000'000);
  CHECK(parse_byte_size("3t").value() == 3'000'000'000'000);
  CHECK(parse_byte_size("100MiB").value() == 100ull << 20);
  CHECK(parse_byte_size("1.5KiB").value() == 1536);
  CHECK(parse_byte_size("12b").value() == 12);
  // Only nine decimals count.
  CHECK(parse_byte_size("1.0000000019G").value() == 1'000'000'001);
  CHECK(parse_byte_size("18446744073709551615").value() == UINT64_MAX);
}

TEST_CASE("a size that is not one, or past 2^64 bytes, is refused with how to write one",
          "[base][size]") {
  for (const char* bad :
       {"", "-1", "k", ".5M", "1.", "1.M", "5 M", "5MM", "5Q", "5bb", "5kib2",
        "18446744073709551616", "99999999999999999999G", "18446744073.8G", "1.999999999T00"}) {
    INFO(bad);
    auto r = parse_byte_size(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == outpost::Code::kInvalidArgument);
    CHECK(r.error().message().find("is not a number of bytes: write e.g.") != std::string::npos);
  }
  // A fraction large enough to wrap 64 bits if multiplied there is still exact.
  CHECK(parse_byte_size("1.999999999T").value() == 1'999'999'999'000ull);
  CHECK(parse_byte_size("18446744.073709551T").value() == 18'446'744'073'709'551'000ull);
}
