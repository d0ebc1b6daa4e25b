// Ed25519 keys through libsodium, and the key file format:
//   {"keytype":"ed25519","role":ROLE,"public":HEX,"seed":HEX}   (mode 0600)
// Only the 32-byte seed is secret; the public key is stored to catch a damaged file.
#include "outpost/crypto/keys.h"

#include <sodium.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "outpost/base/fs.h"
#include "outpost/crypto/hash.h"

namespace outpost::crypto {

static_assert(crypto_sign_ed25519_PUBLICKEYBYTES == 32);
static_assert(crypto_sign_ed25519_SECRETKEYBYTES == 64);
static_assert(crypto_sign_ed25519_SEEDBYTES == 32);
static_assert(crypto_sign_ed25519_BYTES == 64);

namespace {

constexpr std::size_t kSeedBytes = crypto_sign_ed25519_SEEDBYTES;
constexpr std::size_t kSecretBytes = crypto_sign_ed25519_SECRETKEYBYTES;
// A key file is about 200 bytes; anything much larger is not one.
constexpr std::size_t kMaxKeyFileBytes = 4096;

// Wipes a buffer holding secret material when it goes out of scope.
class Wipe {
 public:
  Wipe(void* p, std::size_t n) : p_(p), n_(n) {}
  ~Wipe() { sodium_memzero(p_, n_); }
  Wipe(const Wipe&) = delete;
  Wipe& operator=(const Wipe&) = delete;

 private:
  void* p_;
  std::size_t n_;
};

std::string octal_mode(std::uint32_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

Status already_exists(const std::string& path) {
  return Status::FailedPrecondition("key file " + path +
                                    " already exists: outpost never overwrites a key; "
                                    "choose another path or move the old file away");
}

}  // namespace

const char* key_role_name(KeyRole role) {
  switch (role) {
    case KeyRole::kRoot: return "root";
    case KeyRole::kTargets: return "targets";
    case KeyRole::kSnapshot: return "snapshot";
    case KeyRole::kTimestamp: return "timestamp";
    case KeyRole::kPublisher: return "publisher";
  }
  return "unknown";
}

Result<KeyRole> parse_key_role(std::string_view name) {
  for (KeyRole r : {KeyRole::kRoot, KeyRole::kTargets, KeyRole::kSnapshot, KeyRole::kTimestamp,
                    KeyRole::kPublisher}) {
    if (name == key_role_name(r)) return r;
  }
  return Status::InvalidArgument("unknown key role '" + std::string(name) +
                                 "': expected root, targets, snapshot, timestamp or publisher");
}

// ---- PublicKey ----------------------------------------------------------------------------

std::string PublicKey::hex() const { return to_hex(ByteView(bytes.data(), bytes.size())); }

Result<PublicKey> PublicKey::from_hex(std::string_view hex_text) {
  std::optional<Bytes> raw = outpost::from_hex(hex_text);
  if (!raw || raw->size() != 32) {
    return Status::InvalidArgument("not an ed25519 public key: expected 64 hex characters, got '" +
                                   std::string(hex_text.substr(0, 80)) + "'");
  }
  PublicKey key;
  std::memcpy(key.bytes.data(), raw->data(), key.bytes.size());
  return key;
}

Json PublicKey::to_tuf() const {
  Json keyval = Json::object();
  keyval.set("public", hex());
  Json key = Json::object();
  key.set("keytype", "ed25519");
  key.set("keyval", std::move(keyval));
  key.set("scheme", "ed25519");
  return key;
}

Result<PublicKey> PublicKey::from_tuf(const Json& key) {
  if (!key.is_object()) return Status::Corruption("TUF key: expected an object");
  OUTPOST_ASSIGN_OR_RETURN(std::string keytype, key.get_string("keytype"));
  OUTPOST_ASSIGN_OR_RETURN(std::string scheme, key.get_string("scheme"));
  if (keytype != "ed25519" || scheme != "ed25519") {
    return Status::Corruption("TUF key of type '" + keytype + "' and scheme '" + scheme +
                              "' is not supported: outpost uses ed25519 keys only");
  }
  OUTPOST_ASSIGN_OR_RETURN(const Json* keyval, key.get_object("keyval"));
  OUTPOST_ASSIGN_OR_RETURN(std::string pub, keyval->get_string("public"));
  Result<PublicKey> parsed = from_hex(pub);
  if (!parsed.ok()) return Status::Corruption("TUF key: " + parsed.error().message());
  return parsed;
}

std::string PublicKey::keyid() const { return crypto::hex(sha256(as_bytes(to_tuf().canonical()))); }

// ---- SecretKey ----------------------------------------------------------------------------

SecretKey::SecretKey() {
  // sodium_malloc needs sodium_init (page size); it is idempotent, so be defensive.
  if (sodium_init() < 0) std::abort();
  secret_ = static_cast<unsigned char*>(sodium_malloc(kSecretBytes));
  if (secret_ == nullptr) std::abort();  // out of (locked) memory: nothing sensible to do
}

SecretKey::SecretKey(SecretKey&& other) noexcept
    : public_(other.public_), secret_(std::exchange(other.secret_, nullptr)) {}

SecretKey& SecretKey::operator=(SecretKey&& other) noexcept {
  if (this != &other) {
    if (secret_ != nullptr) sodium_free(secret_);
    public_ = other.public_;
    secret_ = std::exchange(other.secret_, nullptr);
  }
  return *this;
}

SecretKey::~SecretKey() {
  if (secret_ != nullptr) sodium_free(secret_);  // sodium_free wipes the memory first
}

Result<SecretKey> SecretKey::generate() {
  SecretKey key;
  crypto_sign_ed25519_keypair(key.public_.bytes.data(), key.secret_);
  return key;
}

Result<SecretKey> SecretKey::from_seed(ByteView seed) {
  if (seed.size() != kSeedBytes) {
    return Status::InvalidArgument("an ed25519 seed is 32 bytes, got " +
                                   std::to_string(seed.size()));
  }
  SecretKey key;
  crypto_sign_ed25519_seed_keypair(key.public_.bytes.data(), key.secret_, seed.data());
  return key;
}

Status SecretKey::save(const std::string& path, KeyRole role) const {
  return save(path, role, real_fs());
}

Status SecretKey::save(const std::string& path, KeyRole role, FileSystem& fs) const {
  unsigned char seed[kSeedBytes];
  char seed_hex[2 * kSeedBytes + 1];
  Wipe wipe_seed(seed, sizeof seed);
  Wipe wipe_hex(seed_hex, sizeof seed_hex);
  crypto_sign_ed25519_sk_to_seed(seed, secret_);
  sodium_bin2hex(seed_hex, sizeof seed_hex, seed, sizeof seed);

  // Written by hand rather than through Json so that every copy of the seed can be wiped;
  // reserve first so the string never reallocates (and leaves an unwiped copy behind).
  std::string text;
  text.reserve(512);
  text += "{\n  \"keytype\": \"ed25519\",\n  \"role\": \"";
  text += key_role_name(role);
  text += "\",\n  \"public\": \"";
  text += public_.hex();
  text += "\",\n  \"seed\": \"";
  text.append(seed_hex, 2 * kSeedBytes);
  text += "\"\n}\n";
  Status status = [&]() -> Status {
    // Through a temp file and a rename that never replaces: after a crash, a full disk or a
    // pulled stick there is either no key file or the whole new one, never half of one, and
    // an existing key is never touched.
    if (fs.exists(path)) return already_exists(path);
    auto writer = FileWriter::open(fs, path, {.mode = 0600, .replace = false});
    if (!writer.ok()) {
      if (writer.error().IsNotFound()) {
        return Status::NotFound("cannot create key file " + path +
                                ": its directory does not exist");
      }
      return writer.error().With("creating key file " + path);
    }
    Status w = (*writer)->write(as_bytes(text));
    if (w.ok()) w = (*writer)->commit();
    if (w.code() == Code::kFailedPrecondition && fs.exists(path) &&
        w.message().find("already exists") != std::string::npos) {
      return already_exists(path);
    }
    return w.With("writing key file " + path);
  }();
  sodium_memzero(text.data(), text.size());
  return status;
}

Result<SecretKey> SecretKey::load(const std::string& path) { return load(path, real_fs()); }

Result<SecretKey> SecretKey::load(const std::string& path, FileSystem& fs) {
  // Looked at before opening, so a FIFO or device never blocks the open.
  auto st = fs.stat(path);
  if (!st.ok()) {
    if (st.error().IsNotFound()) return Status::NotFound("key file " + path + " does not exist");
    return st.error().With("key file " + path);
  }
  if (st->type != FileType::kRegular) {
    return Status::Corruption("key file " + path + " is not a regular file");
  }
  if ((st->mode & 077) != 0) {
    return Status::FailedPrecondition("key file " + path +
                                      " is readable by group or others (mode " +
                                      octal_mode(st->mode) + "): run 'chmod 600 " + path + "'");
  }
  if (st->size > kMaxKeyFileBytes) {
    return Status::Corruption("key file " + path + " is " + std::to_string(st->size) +
                              " bytes: too large to be an outpost key file");
  }
  auto reader = fs.open_reader(path);
  if (!reader.ok()) {
    if (reader.error().IsNotFound()) {
      return Status::NotFound("key file " + path + " does not exist");
    }
    return reader.error().With("key file " + path);
  }

  char buf[kMaxKeyFileBytes + 1];
  Wipe wipe_buf(buf, sizeof buf);
  std::size_t size = 0;
  while (size < sizeof buf) {
    auto n = (*reader)->read(
        std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(buf) + size, sizeof buf - size));
    if (!n.ok()) return n.error().With("reading key file " + path);
    if (*n == 0) break;
    size += *n;
  }
  if (size > kMaxKeyFileBytes) {
    return Status::Corruption("key file " + path + " is too large to be an outpost key file");
  }

  auto bad = [&path](const std::string& what) {
    return Status::Corruption("key file " + path + " is not an outpost key file: " + what);
  };
  Result<Json> parsed = parse_json(std::string_view(buf, size));
  if (!parsed.ok()) return bad(parsed.error().message());
  Json& doc = parsed.value();
  // The parsed value holds a heap copy of the seed's hex; wipe it before it is freed. The
  // object is ours and not const, so writing through the string is well defined.
  struct WipeSeedString {
    Json& doc;
    ~WipeSeedString() {
      if (const Json* s = doc.find("seed"); s != nullptr && s->is_string()) {
        auto& str = const_cast<std::string&>(s->as_string());
        sodium_memzero(str.data(), str.size());
      }
    }
  } wipe_json{doc};

  if (!doc.is_object()) return bad("expected a JSON object");
  const Json* keytype = doc.find("keytype");
  if (keytype == nullptr || !keytype->is_string() || keytype->as_string() != "ed25519") {
    return bad("'keytype' must be \"ed25519\"");
  }
  if (const Json* role = doc.find("role"); role != nullptr) {
    if (!role->is_string() || !parse_key_role(role->as_string()).ok()) {
      return bad("'role' must be one of root, targets, snapshot, timestamp, publisher");
    }
  }
  const Json* seed_hex = doc.find("seed");
  if (seed_hex == nullptr || !seed_hex->is_string() || seed_hex->as_string().size() != 64) {
    return bad("'seed' must be 64 hex characters");
  }
  unsigned char seed[kSeedBytes];
  Wipe wipe_seed(seed, sizeof seed);
  std::size_t seed_len = 0;
  const std::string& s = seed_hex->as_string();
  if (sodium_hex2bin(seed, sizeof seed, s.data(), s.size(), nullptr, &seed_len, nullptr) != 0 ||
      seed_len != kSeedBytes) {
    return bad("'seed' must be 64 hex characters");
  }
  OUTPOST_ASSIGN_OR_RETURN(SecretKey key, from_seed(ByteView(seed, sizeof seed)));
  if (const Json* pub = doc.find("public"); pub != nullptr) {
    if (!pub->is_string()) return bad("'public' must be a hex string");
    Result<PublicKey> stated = PublicKey::from_hex(pub->as_string());
    if (!stated.ok() || !(*stated == key.public_key())) {
      return bad("'public' does not match the key derived from 'seed' (damaged file?)");
    }
  }
  return key;
}

Signature SecretKey::sign(ByteView message) const {
  Signature sig{};
  crypto_sign_ed25519_detached(sig.data(), nullptr, message.data(), message.size(), secret_);
  return sig;
}

bool verify_signature(const PublicKey& key, ByteView message, const Signature& sig) {
  return crypto_sign_ed25519_verify_detached(sig.data(), message.data(), message.size(),
                                             key.bytes.data()) == 0;
}

}  // namespace outpost::crypto
