// Ed25519 keys for TUF roles. Secret keys live in libsodium guarded memory and are wiped on
// destruction; a secret key file is written with mode 0600 and refused when group or others
// can read it. Thread-safety: a SecretKey may be used for signing from one thread at a time.
#pragma once

#include <array>
#include <memory>
#include <string>

#include "outpost/base/bytes.h"
#include "outpost/base/fs.h"
#include "outpost/base/json.h"
#include "outpost/base/status.h"

namespace outpost::crypto {

enum class KeyRole { kRoot, kTargets, kSnapshot, kTimestamp, kPublisher };
const char* key_role_name(KeyRole role);
Result<KeyRole> parse_key_role(std::string_view name);

struct PublicKey {
  std::array<std::uint8_t, 32> bytes{};

  std::string hex() const;
  static Result<PublicKey> from_hex(std::string_view hex);
  // The TUF key object: {"keytype":"ed25519","keyval":{"public":HEX},"scheme":"ed25519"}.
  Json to_tuf() const;
  static Result<PublicKey> from_tuf(const Json& key);
  // TUF key id: hex SHA-256 of the canonical JSON of to_tuf().
  std::string keyid() const;

  friend bool operator==(const PublicKey&, const PublicKey&) = default;
};

using Signature = std::array<std::uint8_t, 64>;

class SecretKey {
 public:
  SecretKey(SecretKey&&) noexcept;
  SecretKey& operator=(SecretKey&&) noexcept;
  ~SecretKey();

  static Result<SecretKey> generate();
  // The key for a 32-byte Ed25519 seed (what a key file stores). Ed25519 is deterministic, so
  // the same seed always signs the same bytes the same way: for golden test vectors.
  // kInvalidArgument when seed is not 32 bytes.
  static Result<SecretKey> from_seed(ByteView seed);
  // Loads a key file written by save(), through `fs` (the real file system by default).
  // kFailedPrecondition when the file mode lets group or others read it; kCorruption when it
  // is not a key file (or not a regular file); kNotFound when missing; read errors as
  // errno_status() maps them (kUnavailable for EIO or a removed device).
  static Result<SecretKey> load(const std::string& path);
  static Result<SecretKey> load(const std::string& path, FileSystem& fs);
  // Writes a new key file with mode 0600 through `fs`: a temp file, fsync, a rename that
  // never replaces, fsync of the directory. Never overwrites: kFailedPrecondition if path
  // exists. kNotFound when its directory is missing; kResourceExhausted when the disk is
  // full; kUnavailable on EIO. On any error, or a crash at any point, there is either no
  // file at path or the whole new key, never part of one (a stray temp file
  // ".NAME.tmp-..." may remain after a crash; it holds the seed and has mode 0600).
  Status save(const std::string& path, KeyRole role) const;
  Status save(const std::string& path, KeyRole role, FileSystem& fs) const;

  const PublicKey& public_key() const { return public_; }
  Signature sign(ByteView message) const;

 private:
  SecretKey();
  PublicKey public_;
  unsigned char* secret_ = nullptr;  // 64 bytes in sodium_malloc memory
};

// True only when sig is a valid Ed25519 signature of message by key.
[[nodiscard]] bool verify_signature(const PublicKey& key, ByteView message, const Signature& sig);

}  // namespace outpost::crypto
