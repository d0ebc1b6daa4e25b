#include "node_records.h"

namespace outpost::node::records {

Bytes chunk_value(std::uint32_t raw_length, ByteView frame) {
  Bytes v;
  v.reserve(5 + frame.size());
  v.push_back(kCodecZstd);
  put_u32le(v, raw_length);
  v.insert(v.end(), frame.begin(), frame.end());
  return v;
}

Result<StoredChunk> parse_chunk_value(ByteView value) {
  if (value.size() < 5 || value[0] != kCodecZstd) {
    return Status::Corruption("stored chunk record is malformed");
  }
  return StoredChunk{get_u32le(value.data() + 1), value.subspan(5)};
}

Bytes encode(const BundleRecord& r) {
  Json j = Json::object();
  j.set("repo", r.repo);
  j.set("current", r.current);
  Json versions = Json::array();
  for (auto v : r.versions) versions.push(Json(v));
  j.set("versions", std::move(versions));
  j.set("confirmed", r.confirmed);
  return to_bytes(j.canonical());
}

Result<BundleRecord> parse_bundle(ByteView value) {
  OUTPOST_ASSIGN_OR_RETURN(Json j, parse_json(as_chars(value)));
  BundleRecord r;
  OUTPOST_ASSIGN_OR_RETURN(r.repo, j.get_string("repo"));
  OUTPOST_ASSIGN_OR_RETURN(auto current, j.get_int("current"));
  OUTPOST_ASSIGN_OR_RETURN(r.confirmed, j.get_int("confirmed"));
  OUTPOST_ASSIGN_OR_RETURN(const Json* versions, j.get_array("versions"));
  r.current = static_cast<std::uint64_t>(current);
  for (const Json& v : versions->as_array()) {
    if (!v.is_int() || v.as_int() <= 0) return Status::Corruption("bundle record: bad version");
    r.versions.push_back(static_cast<std::uint64_t>(v.as_int()));
  }
  return r;
}

Bytes encode_subscription(const std::string& id, const std::string& location, std::int64_t added,
                          std::int64_t last_sync, const std::vector<std::string>& mirrors,
                          const std::vector<std::string>& ranks) {
  Json j = Json::object();
  j.set("id", id);
  j.set("location", location);
  Json m = Json::array();
  for (const auto& mirror : mirrors) m.push(mirror);
  j.set("mirrors", std::move(m));
  j.set("added", added);
  j.set("last_sync", last_sync);
  if (!ranks.empty()) {
    Json r = Json::array();
    for (const auto& pattern : ranks) r.push(pattern);
    j.set("ranks", std::move(r));
  }
  return to_bytes(j.canonical());
}

Bytes usage_key(std::string_view period) { return storage::text_key("used", period); }
Bytes limits_key(std::string_view origin) { return storage::text_key("limits", origin); }

Bytes accepted_version_key(std::string_view bundle) { return storage::text_key("version", bundle); }

Bytes metadata_key(std::string_view repo, std::string_view role) {
  return storage::text_key(repo, role);
}

std::optional<std::uint64_t> get_u64(const std::optional<Bytes>& v) {
  if (!v || v->size() != 8) return std::nullopt;
  return get_u64le(v->data());
}

Bytes u64_value(std::uint64_t v) {
  Bytes b;
  put_u64le(b, v);
  return b;
}

}  // namespace outpost::node::records
