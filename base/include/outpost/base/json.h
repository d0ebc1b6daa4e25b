// A small JSON value, a parser with hard limits, and two writers: canonical JSON (the OLPC
// form TUF signs: sorted keys, no whitespace, only '"' and '\' escaped, integers only) and
// ordinary compact JSON for people and scripts.
//
// Parsing comes before signature checks in TUF, so the parser is strict and bounded: input
// size, nesting depth, total value count and string length are capped; duplicate object
// keys, floats, invalid UTF-8 and trailing bytes are rejected with kCorruption.
// Thread-safety: values; no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "outpost/base/status.h"

namespace outpost {

class Json {
 public:
  enum class Type { kNull, kBool, kInt, kString, kArray, kObject };
  using Array = std::vector<Json>;
  using Member = std::pair<std::string, Json>;
  using Object = std::vector<Member>;  // kept sorted by key (bytewise), keys unique

  Json() = default;
  Json(std::nullptr_t) {}                                                         // NOLINT
  Json(bool b) : type_(Type::kBool), b_(b) {}                                     // NOLINT
  Json(int v) : type_(Type::kInt), i_(v) {}                                       // NOLINT
  Json(std::int64_t v) : type_(Type::kInt), i_(v) {}                              // NOLINT
  Json(std::uint64_t v) : type_(Type::kInt), i_(static_cast<std::int64_t>(v)) {}  // NOLINT
  Json(const char* s) : type_(Type::kString), s_(s) {}                            // NOLINT
  Json(std::string s) : type_(Type::kString), s_(std::move(s)) {}                 // NOLINT
  Json(std::string_view s) : type_(Type::kString), s_(s) {}                       // NOLINT
  Json(Array a) : type_(Type::kArray), a_(std::move(a)) {}                        // NOLINT

  static Json object() {
    Json j;
    j.type_ = Type::kObject;
    return j;
  }
  static Json array() {
    Json j;
    j.type_ = Type::kArray;
    return j;
  }
  // An object from members in any order; sorts them. The caller guarantees unique keys.
  static Json object_from(Object members);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_int() const { return type_ == Type::kInt; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  // Unchecked accessors: the caller has checked the type (or uses the get_* helpers below).
  bool as_bool() const { return b_; }
  std::int64_t as_int() const { return i_; }
  const std::string& as_string() const { return s_; }
  const Array& as_array() const { return a_; }
  Array& as_array() { return a_; }
  const Object& as_object() const { return o_; }

  // Object access. find() returns nullptr when absent or when this is not an object.
  const Json* find(std::string_view key) const;
  // Inserts or replaces; turns a null into an object.
  Json& set(std::string_view key, Json value);
  bool erase(std::string_view key);
  // Array append; turns a null into an array.
  Json& push(Json value);
  std::size_t size() const;

  // Typed lookups with a clear message naming the field ("field 'version': expected integer").
  Result<std::int64_t> get_int(std::string_view key) const;
  Result<std::string> get_string(std::string_view key) const;
  Result<const Json*> get_object(std::string_view key) const;
  Result<const Json*> get_array(std::string_view key) const;

  // The OLPC canonical form that TUF signs.
  std::string canonical() const;
  // Ordinary JSON (control characters escaped); indent > 0 pretty-prints.
  std::string dump(int indent = 0) const;

  friend bool operator==(const Json& a, const Json& b);

 private:
  Type type_ = Type::kNull;
  bool b_ = false;
  std::int64_t i_ = 0;
  std::string s_;
  Array a_;
  Object o_;
};

struct JsonLimits {
  std::size_t max_bytes = 16u << 20;  // whole document
  int max_depth = 32;
  std::size_t max_values = 1u << 20;  // every value counts, containers included
  std::size_t max_string = 1u << 20;  // bytes in one string after unescaping
};

// Parses exactly one JSON document (surrounding whitespace allowed). Errors are kCorruption
// with the byte offset: "invalid JSON at byte 17: duplicate key \"version\"".
Result<Json> parse_json(std::string_view text, const JsonLimits& limits = {});

}  // namespace outpost
