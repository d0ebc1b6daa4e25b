// BLAKE2b-256 and SHA-256 through libsodium.
#include "outpost/crypto/hash.h"

#include <sodium.h>

#include <cstring>

namespace outpost::crypto {

// The state buffers in hash.h stand in for the sodium types so the public header stays free
// of <sodium.h>; they must be large and aligned enough for the real states.
static_assert(sizeof(crypto_generichash_state) <= 384, "grow Blake2b::state_ in hash.h");
static_assert(alignof(crypto_generichash_state) <= 64, "raise Blake2b::state_ alignment");
static_assert(sizeof(crypto_hash_sha256_state) <= 128, "grow Sha256::state_ in hash.h");
static_assert(alignof(crypto_hash_sha256_state) <= 16, "raise Sha256::state_ alignment");
static_assert(crypto_generichash_BYTES == 32 && crypto_hash_sha256_BYTES == 32);
static_assert(sizeof(Digest) == 32);

namespace {

crypto_generichash_state* b2_state(unsigned char* s) {
  return reinterpret_cast<crypto_generichash_state*>(s);
}
crypto_hash_sha256_state* sha_state(unsigned char* s) {
  return reinterpret_cast<crypto_hash_sha256_state*>(s);
}

}  // namespace

bool init() { return sodium_init() >= 0; }

Blake2b::Blake2b() {
  // Cannot fail for an unkeyed 32-byte hash.
  crypto_generichash_init(b2_state(state_), nullptr, 0, crypto_generichash_BYTES);
}

void Blake2b::update(ByteView data) {
  crypto_generichash_update(b2_state(state_), data.data(), data.size());
}

Digest Blake2b::finish() {
  Digest d{};
  crypto_generichash_final(b2_state(state_), d.data(), d.size());
  return d;
}

Sha256::Sha256() { crypto_hash_sha256_init(sha_state(state_)); }

void Sha256::update(ByteView data) {
  crypto_hash_sha256_update(sha_state(state_), data.data(), data.size());
}

Digest Sha256::finish() {
  Digest d{};
  crypto_hash_sha256_final(sha_state(state_), d.data());
  return d;
}

Digest blake2b(ByteView data) {
  Digest d{};
  crypto_generichash(d.data(), d.size(), data.data(), data.size(), nullptr, 0);
  return d;
}

Digest sha256(ByteView data) {
  Digest d{};
  crypto_hash_sha256(d.data(), data.data(), data.size());
  return d;
}

bool digest_equal(const Digest& a, const Digest& b) {
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hex(const Digest& d) { return to_hex(ByteView(d.data(), d.size())); }

bool parse_digest(std::string_view hex_text, Digest& out) {
  if (hex_text.size() != 2 * out.size()) return false;
  std::optional<Bytes> bytes = from_hex(hex_text);
  if (!bytes || bytes->size() != out.size()) return false;
  std::memcpy(out.data(), bytes->data(), out.size());
  return true;
}

}  // namespace outpost::crypto
