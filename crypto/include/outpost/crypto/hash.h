// Content hashes: BLAKE2b-256 addresses chunks and content roots; SHA-256 is what TUF
// metadata lists for targets and metadata files. Streaming hashers are single-threaded
// objects; the free functions are thread-safe. crypto::init() must have run first.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "outpost/base/bytes.h"

namespace outpost::crypto {

// Initialises libsodium. Call once from main() before any thread starts; idempotent.
// Returns false when the library cannot be initialised (the process must not go on).
bool init();

using Digest = std::array<std::uint8_t, 32>;

class Blake2b {
 public:
  Blake2b();
  void update(ByteView data);
  Digest finish();  // the object must not be used after finish()

 private:
  alignas(64) unsigned char state_[384];
};

class Sha256 {
 public:
  Sha256();
  void update(ByteView data);
  Digest finish();

 private:
  alignas(16) unsigned char state_[128];
};

Digest blake2b(ByteView data);
Digest sha256(ByteView data);

// Constant-time comparison, for digests and MACs.
bool digest_equal(const Digest& a, const Digest& b);
std::string hex(const Digest& d);
// Parses 64 hex characters into a digest.
bool parse_digest(std::string_view hex, Digest& out);

}  // namespace outpost::crypto
