#include "outpost/base/json.h"

#include <catch2/catch.hpp>

using outpost::Json;
using outpost::parse_json;

TEST_CASE("canonical JSON sorts keys and escapes only quote and backslash", "[base][json]") {
  Json j = Json::object();
  j.set("b", 1);
  j.set("a", Json(Json::Array{Json("x\"y\\z\n"), Json(true), Json(nullptr)}));
  j.set("Z", -5);
  CHECK(j.canonical() == "{\"Z\":-5,\"a\":[\"x\\\"y\\\\z\n\",true,null],\"b\":1}");
  CHECK(j.dump() == "{\"Z\":-5,\"a\":[\"x\\\"y\\\\z\\n\",true,null],\"b\":1}");
}

TEST_CASE("parsing then writing canonical JSON gives the same bytes", "[base][json]") {
  std::string text =
      R"({"a":{"b":[1,2,{"c":"d"}]},"e":"\u00e9\ud83d\ude00","n":-9223372036854775808})";
  auto j = parse_json(text);
  REQUIRE(j.ok());
  auto again = parse_json(j->canonical());
  REQUIRE(again.ok());
  CHECK(*again == *j);
  CHECK(j->find("e")->as_string() == "\xC3\xA9\xF0\x9F\x98\x80");
  CHECK(j->find("n")->as_int() == INT64_MIN);
}

TEST_CASE("duplicate keys are refused", "[base][json]") {
  auto j = parse_json(R"({"version":1,"x":2,"version":2})");
  REQUIRE_FALSE(j.ok());
  CHECK(j.error().IsCorruption());
  CHECK(j.error().message().find("duplicate key \"version\"") != std::string::npos);
}

TEST_CASE("floats, trailing data, bad UTF-8 and overflow are refused", "[base][json]") {
  CHECK_FALSE(parse_json("1.5").ok());
  CHECK_FALSE(parse_json("1e3").ok());
  CHECK_FALSE(parse_json("{} x").ok());
  CHECK_FALSE(parse_json("\"\xff\"").ok());
  CHECK_FALSE(parse_json("\"\xC0\xAF\"").ok());  // overlong encoding
  CHECK_FALSE(parse_json("9223372036854775808").ok());
  CHECK_FALSE(parse_json("01").ok());
  CHECK_FALSE(parse_json("\"\\ud800\"").ok());
  CHECK_FALSE(parse_json("[1,]").ok());
  CHECK_FALSE(parse_json("").ok());
}

TEST_CASE("the parser's hard limits hold", "[base][json]") {
  outpost::JsonLimits limits;
  limits.max_depth = 4;
  CHECK(parse_json("[[[[1]]]]", limits).ok());
  CHECK_FALSE(parse_json("[[[[[1]]]]]", limits).ok());

  limits = {};
  limits.max_bytes = 10;
  CHECK_FALSE(parse_json("[1,2,3,4,5,6]", limits).ok());

  limits = {};
  limits.max_values = 3;
  CHECK(parse_json("[1,2]", limits).ok());
  CHECK_FALSE(parse_json("[1,2,3]", limits).ok());

  limits = {};
  limits.max_string = 4;
  CHECK_FALSE(parse_json("\"abcdefgh\"", limits).ok());

  // Deep nesting with default limits must fail cleanly, not overflow the stack.
  std::string deep(100000, '[');
  CHECK_FALSE(parse_json(deep).ok());
}

TEST_CASE("a large object parses in reasonable time and finds keys", "[base][json]") {
  std::string text = "{";
  for (int i = 0; i < 20000; ++i) {
    if (i) text += ",";
    text += "\"k" + std::to_string(20000 - i) + "\":" + std::to_string(i);
  }
  text += "}";
  auto j = parse_json(text);
  REQUIRE(j.ok());
  CHECK(j->size() == 20000);
  CHECK(j->find("k1")->as_int() == 19999);
}
