// Fuzz targets for outpost's parsers (docs/SECURITY.md, "Fuzzing").
//
// Each fuzz/targets/<name>.cc defines its entry point with OUTPOST_FUZZ_TARGET(name). Built for
// libFuzzer (fuzz/CMakeLists.txt, OUTPOST_FUZZ=ON, clang) the same source also defines
// LLVMFuzzerTestOneInput; built into the test suite (tests/fuzz/, any compiler) it defines only
// outpost::fuzz::<name>(), which the replay tests call over the seed corpus and its mutations.
//
// A target returns 0 and crashes (abort) on a broken property: a sanitizer report, a failed
// FUZZ_CHECK, an uncaught exception. Targets keep no state between inputs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"

namespace outpost::fuzz {

// Called before a failed property aborts (the replay tests save the input with it).
inline void (*failure_hook)() = nullptr;

// Aborts with a message naming the property and where; a fuzzer records the input.
[[noreturn]] inline void check_failed(const char* what, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: fuzz property failed: %s\n", file, line, what);
  if (failure_hook != nullptr) failure_hook();
  std::abort();
}

// A rejected input must say why with one of the codes its parser documents (not an empty
// message, not kInternal or kOk).
inline bool clear_rejection(const Status& s, Code expected) {
  return !s.ok() && s.code() == expected && !s.message().empty();
}

int json(const std::uint8_t* data, std::size_t size);
int tuf_metadata(const std::uint8_t* data, std::size_t size);
int manifest(const std::uint8_t* data, std::size_t size);
int chunk_index(const std::uint8_t* data, std::size_t size);
int pack(const std::uint8_t* data, std::size_t size);
int update_file(const std::uint8_t* data, std::size_t size);
int delta(const std::uint8_t* data, std::size_t size);
int have_file(const std::uint8_t* data, std::size_t size);
// A have-file whose body is `body` (fuzz/targets/have_file.cc: bodies as seeds).
Bytes seal_have_body(ByteView body);
int config(const std::uint8_t* data, std::size_t size);
int http_request(const std::uint8_t* data, std::size_t size);

}  // namespace outpost::fuzz

#define FUZZ_CHECK(cond) \
  ((cond) ? static_cast<void>(0) : ::outpost::fuzz::check_failed(#cond, __FILE__, __LINE__))

#ifdef OUTPOST_LIBFUZZER
#define OUTPOST_FUZZ_TARGET(name)                                                     \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    return ::outpost::fuzz::name(data, size);                                         \
  }                                                                                   \
  int outpost::fuzz::name(const std::uint8_t* data, std::size_t size)
#else
#define OUTPOST_FUZZ_TARGET(name) \
  int outpost::fuzz::name(const std::uint8_t* data, std::size_t size)
#endif
