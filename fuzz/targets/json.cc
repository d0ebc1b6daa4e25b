// The strict JSON parser (base/json.h), which reads every TUF metadata file and manifest
// before any signature is checked. Properties: a rejected document is kCorruption with a
// message; an accepted one survives both writers: parse(canonical(v)) == v and
// parse(dump(v)) == v, and canonical() is a fixed point.
#include "outpost/base/json.h"

#include <string>
#include <string_view>

#include "fuzz/fuzz.h"

OUTPOST_FUZZ_TARGET(json) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  outpost::JsonLimits limits;
  limits.max_bytes = 1u << 20;
  outpost::Result<outpost::Json> parsed = outpost::parse_json(text, limits);
  if (!parsed.ok()) {
    FUZZ_CHECK(outpost::fuzz::clear_rejection(parsed.error(), outpost::Code::kCorruption));
    return 0;
  }
  const outpost::Json& value = parsed.value();
  const std::string canonical = value.canonical();
  outpost::Result<outpost::Json> again = outpost::parse_json(canonical, limits);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again.value() == value);
  FUZZ_CHECK(again.value().canonical() == canonical);
  outpost::Result<outpost::Json> dumped = outpost::parse_json(value.dump(), limits);
  FUZZ_CHECK(dumped.ok());
  FUZZ_CHECK(dumped.value() == value);
  outpost::Result<outpost::Json> pretty = outpost::parse_json(value.dump(2), limits);
  FUZZ_CHECK(pretty.ok());
  FUZZ_CHECK(pretty.value() == value);
  return 0;
}
