// TUF metadata (crypto/tuf.h): the envelope (parse_metadata), each role's signed part
// (Root/Timestamp/Snapshot/Targets::from_signed), signature counting (verify_threshold, a
// root against its own keys) and delegated path matching. The role is the one the file names
// in "_type", as the updater expects it. Properties: rejections are kCorruption (or
// kVerificationFailed for signatures) with a message; what from_signed accepts, to_signed
// writes back and from_signed accepts again, to the same canonical form.
#include <string>
#include <string_view>

#include "fuzz/fuzz.h"
#include "outpost/base/json.h"
#include "outpost/crypto/tuf.h"

namespace {

namespace tuf = outpost::crypto::tuf;
using outpost::Code;
using outpost::Json;
using outpost::fuzz::clear_rejection;

// from_signed, to_signed, from_signed again: the second form equals the first.
template <typename Role>
void round_trip(const Role& role) {
  const Json written = role.to_signed();
  outpost::Result<Role> again = Role::from_signed(written);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again.value().to_signed().canonical() == written.canonical());
}

template <typename Role>
const Role* parse_role(const Json& envelope, outpost::Result<Role>& out) {
  out = Role::from_signed(*envelope.find("signed"));
  if (!out.ok()) {
    FUZZ_CHECK(clear_rejection(out.error(), Code::kCorruption));
    return nullptr;
  }
  round_trip(out.value());
  return &out.value();
}

}  // namespace

OUTPOST_FUZZ_TARGET(tuf_metadata) {
  const outpost::ByteView file(data, size);
  // The role the file claims to be (delegated roles are "targets" too); else "targets", to
  // exercise the envelope checks on anything.
  std::string type = "targets";
  outpost::Result<Json> peek =
      outpost::parse_json(std::string_view(reinterpret_cast<const char*>(data), size));
  if (peek.ok()) {
    const Json* signed_part = peek.value().find("signed");
    const Json* t = signed_part != nullptr ? signed_part->find("_type") : nullptr;
    if (t != nullptr && t->is_string() &&
        (t->as_string() == "root" || t->as_string() == "timestamp" ||
         t->as_string() == "snapshot")) {
      type = t->as_string();
    }
  }
  outpost::Result<Json> envelope = tuf::parse_metadata(file, type);
  if (!envelope.ok()) {
    FUZZ_CHECK(clear_rejection(envelope.error(), Code::kCorruption));
    return 0;
  }
  const Json& env = envelope.value();
  if (type == "root") {
    outpost::Result<tuf::Root> root = outpost::Status::Internal("unset");
    if (const tuf::Root* r = parse_role(env, root)) {
      for (const auto& [name, role] : r->roles) {
        outpost::Status s = tuf::verify_threshold(env, r->keys, role, name);
        FUZZ_CHECK(s.ok() || clear_rejection(s, Code::kVerificationFailed));
      }
    }
  } else if (type == "timestamp") {
    outpost::Result<tuf::Timestamp> ts = outpost::Status::Internal("unset");
    parse_role(env, ts);
  } else if (type == "snapshot") {
    outpost::Result<tuf::Snapshot> snap = outpost::Status::Internal("unset");
    parse_role(env, snap);
  } else {
    outpost::Result<tuf::Targets> targets = outpost::Status::Internal("unset");
    if (const tuf::Targets* t = parse_role(env, targets); t != nullptr && t->delegations) {
      // Every role against every target path, and the role's own patterns as paths.
      for (const tuf::DelegatedRole& role : t->delegations->roles) {
        for (const auto& [path, info] : t->targets) (void)role.matches(path);
        for (const std::string& p : role.paths) (void)role.matches(p);
        (void)role.matches("un/ga/A-RES-75-202/manifest.json");
      }
    }
  }
  return 0;
}
