// TUF metadata as typed values: parsing from and writing to the "signed" part, the signed
// envelope, threshold verification and delegated path matching.
#include <fnmatch.h>

#include <algorithm>
#include <climits>
#include <set>
#include <utility>

#include "outpost/base/clock.h"
#include "outpost/crypto/hash.h"
#include "outpost/crypto/tuf.h"

namespace outpost::crypto::tuf {
namespace {

const char* type_name(Json::Type t) {
  switch (t) {
    case Json::Type::kNull: return "null";
    case Json::Type::kBool: return "a boolean";
    case Json::Type::kInt: return "an integer";
    case Json::Type::kString: return "a string";
    case Json::Type::kArray: return "an array";
    case Json::Type::kObject: return "an object";
  }
  return "a value";
}

// Errors while reading metadata are kCorruption and name where they are: "targets metadata:
// delegations: role 'un.ga': missing field 'threshold'".
Status bad(const std::string& ctx, const std::string& what) {
  return Status::Corruption(ctx + ": " + what);
}

Result<const Json*> field(const Json& obj, std::string_view key, Json::Type type,
                          const std::string& ctx) {
  if (!obj.is_object()) return bad(ctx, "expected an object");
  const Json* f = obj.find(key);
  if (f == nullptr) return bad(ctx, "missing field '" + std::string(key) + "'");
  if (f->type() != type) {
    return bad(ctx, "field '" + std::string(key) + "': expected " + type_name(type) + ", found " +
                        type_name(f->type()));
  }
  return f;
}

Result<std::int64_t> int_field(const Json& obj, std::string_view key, std::int64_t min,
                               const std::string& ctx) {
  OUTPOST_ASSIGN_OR_RETURN(const Json* f, field(obj, key, Json::Type::kInt, ctx));
  if (f->as_int() < min) {
    return bad(ctx, "field '" + std::string(key) + "' is " + std::to_string(f->as_int()) +
                        ", must be at least " + std::to_string(min));
  }
  return f->as_int();
}

Result<std::string> string_field(const Json& obj, std::string_view key, const std::string& ctx) {
  OUTPOST_ASSIGN_OR_RETURN(const Json* f, field(obj, key, Json::Type::kString, ctx));
  return f->as_string();
}

Result<int> threshold_field(const Json& obj, const std::string& ctx) {
  OUTPOST_ASSIGN_OR_RETURN(std::int64_t t, int_field(obj, "threshold", 1, ctx));
  if (t > INT_MAX) return bad(ctx, "field 'threshold' is too large");
  return static_cast<int>(t);
}

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// Checks "_type", "spec_version", "version" and "expires", common to every role.
struct Common {
  std::int64_t version = 0;
  std::int64_t expires = 0;
};

Result<Common> parse_common(const Json& s, std::string_view type) {
  const std::string ctx = std::string(type) + " metadata";
  if (!s.is_object()) return bad(ctx, "'signed' must be an object");
  OUTPOST_ASSIGN_OR_RETURN(std::string t, string_field(s, "_type", ctx));
  if (t != type) return bad(ctx, "_type is '" + t + "', expected '" + std::string(type) + "'");
  OUTPOST_ASSIGN_OR_RETURN(std::string spec, string_field(s, "spec_version", ctx));
  // "MAJOR.MINOR.PATCH"; only major version 1 is understood.
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = spec.find('.', start);
    parts.push_back(spec.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  // The spec says semver; tuf-js and python-tuf also take "1.0", which older TUF tools wrote.
  bool well_formed =
      (parts.size() == 2 || parts.size() == 3) &&
      std::all_of(parts.begin(), parts.end(), [](auto& p) {
        return !p.empty() && p.size() < 9 &&
               std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
      });
  if (!well_formed) return bad(ctx, "spec_version '" + spec + "' is not MAJOR.MINOR.PATCH");
  if (parts[0] != "1") {
    return bad(ctx, "spec_version " + spec + " is not supported: outpost reads TUF 1.x; " +
                        "upgrade outpost to read this repository");
  }
  Common c;
  OUTPOST_ASSIGN_OR_RETURN(c.version, int_field(s, "version", 1, ctx));
  OUTPOST_ASSIGN_OR_RETURN(std::string expires, string_field(s, "expires", ctx));
  std::optional<std::int64_t> when = parse_utc(expires);
  if (!when) {
    return bad(
        ctx, "field 'expires' is '" + expires + "', expected a UTC time like 2030-01-31T00:00:00Z");
  }
  c.expires = *when;
  return c;
}

Json common_to_json(std::string_view type, std::int64_t version, std::int64_t expires) {
  Json s = Json::object();
  s.set("_type", std::string(type));
  s.set("spec_version", kSpecVersion);
  s.set("version", version);
  s.set("expires", format_utc(expires));
  return s;
}

// keys: {KEYID: KEY}. Each key id must be the one the spec derives from the key, so that one
// key cannot be counted twice under two ids.
Result<std::map<std::string, PublicKey>> parse_keys(const Json& keys, const std::string& ctx) {
  std::map<std::string, PublicKey> out;
  for (const auto& [keyid, obj] : keys.as_object()) {
    Result<PublicKey> key = PublicKey::from_tuf(obj);
    if (!key.ok()) return bad(ctx, "key " + keyid + ": " + key.error().message());
    // The spec hashes the key object as written, extra fields included (go-tuf and older
    // python-tuf add "keyid_hash_algorithms"), so the id is checked against those bytes.
    const std::string actual = hex(sha256(as_bytes(obj.canonical())));
    if (actual != keyid) {
      return bad(ctx,
                 "key id " + keyid + " does not match its key (the key's id is " + actual + ")");
    }
    for (const auto& [other_id, other] : out) {
      if (other == *key) {
        return bad(ctx, "keys " + other_id + " and " + keyid +
                            " are the same public key: a key must not count twice");
      }
    }
    out.emplace(keyid, *key);
  }
  return out;
}

Json keys_to_json(const std::map<std::string, PublicKey>& keys) {
  Json out = Json::object();
  for (const auto& [keyid, key] : keys) out.set(keyid, key.to_tuf());
  return out;
}

Result<std::vector<std::string>> parse_keyids(const Json& role,
                                              const std::map<std::string, PublicKey>& keys,
                                              const std::string& ctx) {
  OUTPOST_ASSIGN_OR_RETURN(const Json* arr, field(role, "keyids", Json::Type::kArray, ctx));
  std::vector<std::string> ids;
  std::set<std::string> seen;
  for (const Json& id : arr->as_array()) {
    if (!id.is_string()) return bad(ctx, "'keyids' must hold strings");
    if (!seen.insert(id.as_string()).second) {
      return bad(ctx, "key id " + id.as_string() + " is listed twice");
    }
    if (keys.find(id.as_string()) == keys.end()) {
      return bad(ctx, "key id " + id.as_string() + " is not in 'keys'");
    }
    ids.push_back(id.as_string());
  }
  return ids;
}

Json string_array(const std::vector<std::string>& v) {
  Json a = Json::array();
  for (const std::string& s : v) a.push(s);
  return a;
}

Result<MetaFile> parse_meta_file(const Json& obj, const std::string& ctx) {
  if (!obj.is_object()) return bad(ctx, "expected an object");
  MetaFile m;
  OUTPOST_ASSIGN_OR_RETURN(m.version, int_field(obj, "version", 1, ctx));
  if (obj.find("length") != nullptr) {
    OUTPOST_ASSIGN_OR_RETURN(std::int64_t length, int_field(obj, "length", 0, ctx));
    m.length = length;
  }
  if (obj.find("hashes") != nullptr) {
    OUTPOST_ASSIGN_OR_RETURN(const Json* hashes, field(obj, "hashes", Json::Type::kObject, ctx));
    // Other algorithms may be listed too; outpost checks SHA-256 only.
    if (hashes->find("sha256") != nullptr) {
      OUTPOST_ASSIGN_OR_RETURN(std::string h, string_field(*hashes, "sha256", ctx + ": hashes"));
      h = lower(std::move(h));
      if (h.size() != 64 || !is_lower_hex(h)) {
        return bad(ctx, "hashes.sha256 must be 64 hex characters");
      }
      m.sha256 = std::move(h);
    }
  }
  return m;
}

Json meta_file_to_json(const MetaFile& m) {
  Json o = Json::object();
  o.set("version", m.version);
  if (m.length) o.set("length", *m.length);
  if (m.sha256) {
    Json h = Json::object();
    h.set("sha256", *m.sha256);
    o.set("hashes", std::move(h));
  }
  return o;
}

bool is_top_level_role(std::string_view name) {
  return name == "root" || name == "targets" || name == "snapshot" || name == "timestamp";
}

// A delegated role's name becomes part of a file name ("N.<role>.json").
bool valid_role_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '.' || is_top_level_role(name)) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f && c != '/' && c != '\\';
  });
}

std::vector<std::string_view> split_path(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    std::size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

}  // namespace

// ---- Root ---------------------------------------------------------------------------------

Json Root::to_signed() const {
  Json s = common_to_json("root", version, expires);
  s.set("consistent_snapshot", consistent_snapshot);
  s.set("keys", keys_to_json(keys));
  Json r = Json::object();
  for (const auto& [name, role] : roles) {
    Json o = Json::object();
    o.set("keyids", string_array(role.keyids));
    o.set("threshold", role.threshold);
    r.set(name, std::move(o));
  }
  s.set("roles", std::move(r));
  return s;
}

Result<Root> Root::from_signed(const Json& signed_part) {
  const std::string ctx = "root metadata";
  OUTPOST_ASSIGN_OR_RETURN(Common c, parse_common(signed_part, "root"));
  Root root;
  root.version = c.version;
  root.expires = c.expires;
  OUTPOST_ASSIGN_OR_RETURN(const Json* cs,
                           field(signed_part, "consistent_snapshot", Json::Type::kBool, ctx));
  root.consistent_snapshot = cs->as_bool();
  OUTPOST_ASSIGN_OR_RETURN(const Json* keys, field(signed_part, "keys", Json::Type::kObject, ctx));
  OUTPOST_ASSIGN_OR_RETURN(root.keys, parse_keys(*keys, ctx));
  OUTPOST_ASSIGN_OR_RETURN(const Json* roles,
                           field(signed_part, "roles", Json::Type::kObject, ctx));
  for (const char* required : {"root", "targets", "snapshot", "timestamp"}) {
    if (roles->find(required) == nullptr) {
      return bad(ctx, "roles: missing role '" + std::string(required) + "'");
    }
  }
  for (const auto& [name, obj] : roles->as_object()) {
    // Only the four top-level roles mean anything in root; others are ignored.
    if (!is_top_level_role(name)) continue;
    const std::string rctx = ctx + ": roles: '" + name + "'";
    RoleKeys rk;
    OUTPOST_ASSIGN_OR_RETURN(rk.keyids, parse_keyids(obj, root.keys, rctx));
    OUTPOST_ASSIGN_OR_RETURN(rk.threshold, threshold_field(obj, rctx));
    std::sort(rk.keyids.begin(), rk.keyids.end());
    root.roles.emplace(name, std::move(rk));
  }
  return root;
}

// ---- Timestamp ----------------------------------------------------------------------------

Json Timestamp::to_signed() const {
  Json s = common_to_json("timestamp", version, expires);
  Json meta = Json::object();
  meta.set("snapshot.json", meta_file_to_json(snapshot));
  s.set("meta", std::move(meta));
  return s;
}

Result<Timestamp> Timestamp::from_signed(const Json& signed_part) {
  const std::string ctx = "timestamp metadata";
  OUTPOST_ASSIGN_OR_RETURN(Common c, parse_common(signed_part, "timestamp"));
  Timestamp t;
  t.version = c.version;
  t.expires = c.expires;
  OUTPOST_ASSIGN_OR_RETURN(const Json* meta, field(signed_part, "meta", Json::Type::kObject, ctx));
  const Json* snap = meta->find("snapshot.json");
  if (snap == nullptr) return bad(ctx, "meta: missing 'snapshot.json'");
  OUTPOST_ASSIGN_OR_RETURN(t.snapshot, parse_meta_file(*snap, ctx + ": meta: snapshot.json"));
  return t;
}

// ---- Snapshot -----------------------------------------------------------------------------

Json Snapshot::to_signed() const {
  Json s = common_to_json("snapshot", version, expires);
  Json m = Json::object();
  for (const auto& [name, file] : meta) m.set(name, meta_file_to_json(file));
  s.set("meta", std::move(m));
  return s;
}

Result<Snapshot> Snapshot::from_signed(const Json& signed_part) {
  const std::string ctx = "snapshot metadata";
  OUTPOST_ASSIGN_OR_RETURN(Common c, parse_common(signed_part, "snapshot"));
  Snapshot s;
  s.version = c.version;
  s.expires = c.expires;
  OUTPOST_ASSIGN_OR_RETURN(const Json* meta, field(signed_part, "meta", Json::Type::kObject, ctx));
  for (const auto& [name, obj] : meta->as_object()) {
    OUTPOST_ASSIGN_OR_RETURN(MetaFile m, parse_meta_file(obj, ctx + ": meta: " + name));
    s.meta.emplace(name, std::move(m));
  }
  if (s.meta.find("targets.json") == s.meta.end()) {
    return bad(ctx, "meta: missing 'targets.json'");
  }
  return s;
}

// ---- Targets ------------------------------------------------------------------------------

bool DelegatedRole::matches(const std::string& path) const {
  if (!path_hash_prefixes.empty()) {
    const std::string h = hex(sha256(as_bytes(path)));
    for (const std::string& prefix : path_hash_prefixes) {
      if (h.compare(0, prefix.size(), prefix) == 0) return true;
    }
    return false;
  }
  const std::vector<std::string_view> segs = split_path(path);
  for (const std::string& pattern : paths) {
    const std::vector<std::string_view> pats = split_path(pattern);
    if (pats.size() != segs.size()) continue;
    bool all = true;
    for (std::size_t i = 0; i < pats.size() && all; ++i) {
      // fnmatch needs NUL-terminated strings. No FNM_PATHNAME: each side is one segment.
      const std::string p(pats[i]);
      const std::string s(segs[i]);
      // FNM_PERIOD: as in glob(7), a leading '.' is only matched by a literal '.'.
      all = ::fnmatch(p.c_str(), s.c_str(), FNM_PERIOD) == 0;
    }
    if (all) return true;
  }
  return false;
}

Json Targets::to_signed() const {
  Json s = common_to_json("targets", version, expires);
  Json t = Json::object();
  for (const auto& [path, file] : targets) {
    Json o = Json::object();
    o.set("length", file.length);
    Json h = Json::object();
    h.set("sha256", file.sha256);
    o.set("hashes", std::move(h));
    if (!file.custom.is_null()) o.set("custom", file.custom);
    t.set(path, std::move(o));
  }
  s.set("targets", std::move(t));
  if (delegations) {
    Json d = Json::object();
    d.set("keys", keys_to_json(delegations->keys));
    Json roles = Json::array();
    for (const DelegatedRole& r : delegations->roles) {
      Json o = Json::object();
      o.set("name", r.name);
      o.set("keyids", string_array(r.keyids));
      o.set("threshold", r.threshold);
      o.set("terminating", r.terminating);
      if (!r.path_hash_prefixes.empty()) {
        o.set("path_hash_prefixes", string_array(r.path_hash_prefixes));
      } else {
        o.set("paths", string_array(r.paths));
      }
      roles.push(std::move(o));
    }
    d.set("roles", std::move(roles));
    s.set("delegations", std::move(d));
  }
  return s;
}

Result<Targets> Targets::from_signed(const Json& signed_part) {
  const std::string ctx = "targets metadata";
  OUTPOST_ASSIGN_OR_RETURN(Common c, parse_common(signed_part, "targets"));
  Targets out;
  out.version = c.version;
  out.expires = c.expires;
  OUTPOST_ASSIGN_OR_RETURN(const Json* targets,
                           field(signed_part, "targets", Json::Type::kObject, ctx));
  for (const auto& [path, obj] : targets->as_object()) {
    const std::string tctx = ctx + ": target '" + path + "'";
    if (path.empty()) return bad(ctx, "a target has an empty path");
    TargetFile f;
    OUTPOST_ASSIGN_OR_RETURN(f.length, int_field(obj, "length", 0, tctx));
    OUTPOST_ASSIGN_OR_RETURN(const Json* hashes, field(obj, "hashes", Json::Type::kObject, tctx));
    if (hashes->find("sha256") == nullptr) {
      return bad(tctx, "no sha256 hash (outpost checks targets by SHA-256)");
    }
    OUTPOST_ASSIGN_OR_RETURN(std::string h, string_field(*hashes, "sha256", tctx + ": hashes"));
    f.sha256 = lower(std::move(h));
    if (f.sha256.size() != 64 || !is_lower_hex(f.sha256)) {
      return bad(tctx, "hashes.sha256 must be 64 hex characters");
    }
    if (const Json* custom = obj.find("custom"); custom != nullptr) f.custom = *custom;
    out.targets.emplace(path, std::move(f));
  }

  const Json* delegations = signed_part.find("delegations");
  if (delegations == nullptr) return out;
  const std::string dctx = ctx + ": delegations";
  Delegations d;
  OUTPOST_ASSIGN_OR_RETURN(const Json* keys,
                           field(*delegations, "keys", Json::Type::kObject, dctx));
  OUTPOST_ASSIGN_OR_RETURN(d.keys, parse_keys(*keys, dctx));
  OUTPOST_ASSIGN_OR_RETURN(const Json* roles,
                           field(*delegations, "roles", Json::Type::kArray, dctx));
  std::set<std::string> names;
  for (const Json& obj : roles->as_array()) {
    DelegatedRole r;
    OUTPOST_ASSIGN_OR_RETURN(r.name, string_field(obj, "name", dctx + ": role"));
    const std::string rctx = dctx + ": role '" + r.name + "'";
    if (!valid_role_name(r.name)) {
      return bad(rctx,
                 "not a usable role name (empty, a top-level role, or holding '/', '\\', "
                 "a leading '.', spaces or control characters)");
    }
    if (!names.insert(r.name).second) return bad(rctx, "the role is delegated twice");
    OUTPOST_ASSIGN_OR_RETURN(r.keyids, parse_keyids(obj, d.keys, rctx));
    OUTPOST_ASSIGN_OR_RETURN(r.threshold, threshold_field(obj, rctx));
    OUTPOST_ASSIGN_OR_RETURN(const Json* term, field(obj, "terminating", Json::Type::kBool, rctx));
    r.terminating = term->as_bool();
    const Json* paths = obj.find("paths");
    const Json* prefixes = obj.find("path_hash_prefixes");
    if ((paths == nullptr) == (prefixes == nullptr)) {
      return bad(rctx, "exactly one of 'paths' and 'path_hash_prefixes' must be given");
    }
    const Json& list = paths != nullptr ? *paths : *prefixes;
    if (!list.is_array()) return bad(rctx, "paths must be an array of strings");
    for (const Json& p : list.as_array()) {
      if (!p.is_string()) return bad(rctx, "paths must be an array of strings");
      if (paths != nullptr) {
        r.paths.push_back(p.as_string());
      } else {
        std::string prefix = lower(p.as_string());
        if (prefix.size() > 64 || !is_lower_hex(prefix)) {
          return bad(rctx, "path_hash_prefixes must be hex strings of at most 64 characters");
        }
        r.path_hash_prefixes.push_back(std::move(prefix));
      }
    }
    d.roles.push_back(std::move(r));
  }
  out.delegations = std::move(d);
  return out;
}

// ---- Envelope -----------------------------------------------------------------------------

Bytes sign_metadata(const Json& signed_part, const std::vector<const SecretKey*>& keys) {
  const std::string canonical = signed_part.canonical();
  Json signatures = Json::array();
  std::set<std::string> done;
  for (const SecretKey* key : keys) {
    if (key == nullptr) continue;
    std::string keyid = key->public_key().keyid();
    if (!done.insert(keyid).second) continue;
    const Signature sig = key->sign(as_bytes(canonical));
    Json entry = Json::object();
    entry.set("keyid", std::move(keyid));
    entry.set("sig", to_hex(ByteView(sig.data(), sig.size())));
    signatures.push(std::move(entry));
  }
  Json envelope = Json::object();
  envelope.set("signatures", std::move(signatures));
  envelope.set("signed", signed_part);
  return to_bytes(envelope.canonical());
}

Result<Json> parse_metadata(ByteView file, std::string_view expected_type) {
  const std::string ctx = std::string(expected_type) + " metadata";
  JsonLimits limits;
  // The fetch already bounded the size (by the signed length or the updater's cap); the
  // value, depth and string limits still bound memory.
  limits.max_bytes = std::max<std::size_t>(limits.max_bytes, 64u << 20);
  Result<Json> parsed = parse_json(as_chars(file), limits);
  if (!parsed.ok()) return Status::Corruption(ctx + ": " + parsed.error().message());
  Json& doc = parsed.value();
  if (!doc.is_object()) return bad(ctx, "expected a JSON object with 'signed' and 'signatures'");
  OUTPOST_RETURN_IF_ERROR(field(doc, "signed", Json::Type::kObject, ctx).status());
  OUTPOST_ASSIGN_OR_RETURN(const Json* sigs, field(doc, "signatures", Json::Type::kArray, ctx));
  for (const Json& sig : sigs->as_array()) {
    OUTPOST_RETURN_IF_ERROR(string_field(sig, "keyid", ctx + ": signatures").status());
    OUTPOST_RETURN_IF_ERROR(string_field(sig, "sig", ctx + ": signatures").status());
  }
  const Json* type = doc.find("signed")->find("_type");
  if (type == nullptr || !type->is_string()) return bad(ctx, "'signed' has no '_type'");
  const std::string& t = type->as_string();
  if (t != expected_type) {
    if (!is_top_level_role(t)) return bad(ctx, "unknown _type '" + t + "'");
    return bad(ctx, "the file holds " + t + " metadata (_type '" + t + "')");
  }
  return parsed;
}

Status verify_threshold(const Json& envelope, const std::map<std::string, PublicKey>& keys,
                        const RoleKeys& role, std::string_view role_name) {
  const Json* signed_part = envelope.find("signed");
  const Json* sigs = envelope.find("signatures");
  if (signed_part == nullptr || sigs == nullptr || !sigs->is_array()) {
    return Status::Corruption(std::string(role_name) + ": not a signed metadata envelope");
  }
  if (role.threshold < 1) {
    return Status::VerificationFailed(std::string(role_name) +
                                      ": threshold below 1 cannot be trusted");
  }
  const std::string canonical = signed_part->canonical();
  std::set<std::string> valid;
  for (const Json& entry : sigs->as_array()) {
    const Json* keyid = entry.find("keyid");
    const Json* sig_hex = entry.find("sig");
    if (keyid == nullptr || !keyid->is_string() || sig_hex == nullptr || !sig_hex->is_string()) {
      continue;
    }
    const std::string& id = keyid->as_string();
    if (valid.count(id) != 0) continue;  // a key counts once however often it signed
    if (std::find(role.keyids.begin(), role.keyids.end(), id) == role.keyids.end()) continue;
    auto key = keys.find(id);
    if (key == keys.end()) continue;
    std::optional<Bytes> raw = from_hex(sig_hex->as_string());
    Signature sig{};
    if (!raw || raw->size() != sig.size()) continue;
    std::copy(raw->begin(), raw->end(), sig.begin());
    if (verify_signature(key->second, as_bytes(canonical), sig)) valid.insert(id);
  }
  if (valid.size() >= static_cast<std::size_t>(role.threshold)) return Status::Ok();
  return Status::VerificationFailed(
      std::string(role_name) + " has " + std::to_string(valid.size()) +
      " valid signature(s) from trusted keys, " + std::to_string(role.threshold) +
      " required: the file was tampered with or not signed by enough trusted keys; try "
      "another mirror, or ask the publisher to sign it with the right keys");
}

}  // namespace outpost::crypto::tuf
