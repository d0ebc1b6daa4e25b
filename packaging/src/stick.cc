#include "outpost/packaging/stick.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "outpost/base/json.h"

namespace outpost::packaging {

namespace {

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Status bad_index(const std::string& what) {
  return Status::Corruption("the pack index is damaged: " + what +
                            ": export the pack again or import another copy");
}

}  // namespace

std::string stick_index_name(std::string_view repo) {
  return "index-" + std::string(repo) + ".json";
}

bool is_stick_index_name(std::string_view name) {
  constexpr std::string_view kPre = "index-", kSuf = ".json";
  if (name.size() <= kPre.size() + kSuf.size() || name.substr(0, kPre.size()) != kPre ||
      name.substr(name.size() - kSuf.size()) != kSuf) {
    return false;
  }
  std::string_view id = name.substr(kPre.size(), name.size() - kPre.size() - kSuf.size());
  return id.size() <= 64 && is_lower_hex(id);
}

std::string volume_name(const crypto::Digest& id) { return crypto::hex(id) + ".pack"; }

bool is_volume_name(std::string_view name) {
  return name.size() == 69 && name.substr(64) == ".pack" && is_lower_hex(name.substr(0, 64));
}

Status validate_portable_name(std::string_view name) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("the name '" + std::string(name) +
                                   "' is not portable to FAT32/exFAT/Windows: " + why);
  };
  if (name.empty() || name.size() > 255) return bad("length must be 1 to 255");
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7F) return bad("only printable ASCII");
    if (std::string_view("<>:\"/\\|?*").find(c) != std::string_view::npos) {
      return bad("character '" + std::string(1, c) + "' is not allowed");
    }
  }
  if (name.back() == '.' || name.back() == ' ') return bad("must not end in '.' or ' '");
  std::string stem(name.substr(0, name.find('.')));
  for (auto& c : stem) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::set<std::string> kDevices = {"CON", "PRN", "AUX", "NUL"};
  bool numbered = stem.size() == 4 && (stem.rfind("COM", 0) == 0 || stem.rfind("LPT", 0) == 0) &&
                  stem[3] >= '1' && stem[3] <= '9';
  if (kDevices.count(stem) || numbered) return bad("a DOS device name");
  return Status::Ok();
}

Bytes StickIndex::encode() const {
  Json j = Json::object();
  j.set("_type", "outpost/stick-index");
  j.set("format", kStickFormat);
  j.set("repository", repo);
  j.set("created", created);
  j.set("made_by", made_by);
  j.set("made_for", made_for);
  j.set("timestamp_version", timestamp_version);
  j.set("snapshot_version", snapshot_version);
  Json vols = Json::array();
  for (const auto& v : volumes) {
    Json e = Json::object();
    e.set("name", v.name);
    e.set("size", v.size);
    e.set("blake2b", crypto::hex(v.id));
    vols.push(std::move(e));
  }
  j.set("volumes", std::move(vols));
  Json bs = Json::array();
  for (const auto& b : bundles) {
    Json e = Json::object();
    e.set("name", b.name);
    e.set("version", b.version);
    e.set("from", b.from);
    e.set("bytes", b.bytes);
    bs.push(std::move(e));
  }
  j.set("bundles", std::move(bs));
  Json left = Json::array();
  for (const auto& l : left_out) left.push(l);
  j.set("left_out", std::move(left));
  std::string text = j.dump(1) + "\n";
  return Bytes(text.begin(), text.end());
}

Result<StickIndex> StickIndex::parse(ByteView bytes) {
  if (bytes.size() > kMaxStickIndexBytes) return bad_index("larger than 8 MB");
  auto j = parse_json(as_chars(bytes));
  if (!j.ok()) return bad_index(j.error().message());
  if (!j->is_object()) return bad_index("not a JSON object");
  auto type = j->get_string("_type");
  auto format = j->get_int("format");
  if (!type.ok() || *type != "outpost/stick-index" || !format.ok() || *format != kStickFormat) {
    return bad_index("not an outpost stick index of format 1");
  }
  StickIndex out;
  auto str = [&](const char* key, std::string& dst) -> Status {
    auto v = j->get_string(key);
    if (!v.ok()) return bad_index(std::string("field ") + key);
    dst = *v;
    return Status::Ok();
  };
  auto num = [&](const Json& o, const char* key, auto& dst) -> Status {
    auto v = o.get_int(key);
    if (!v.ok() || *v < 0) return bad_index(std::string("field ") + key);
    dst = static_cast<std::remove_reference_t<decltype(dst)>>(*v);
    return Status::Ok();
  };
  OUTPOST_RETURN_IF_ERROR(str("repository", out.repo));
  if (!is_stick_index_name(stick_index_name(out.repo))) return bad_index("repository id");
  OUTPOST_RETURN_IF_ERROR(str("made_by", out.made_by));
  OUTPOST_RETURN_IF_ERROR(str("made_for", out.made_for));
  OUTPOST_RETURN_IF_ERROR(num(*j, "created", out.created));
  OUTPOST_RETURN_IF_ERROR(num(*j, "timestamp_version", out.timestamp_version));
  OUTPOST_RETURN_IF_ERROR(num(*j, "snapshot_version", out.snapshot_version));
  auto vols = j->get_array("volumes");
  if (!vols.ok() || (*vols)->size() > kMaxStickVolumes) return bad_index("field volumes");
  std::set<std::string> seen;
  for (const Json& e : (*vols)->as_array()) {
    if (!e.is_object()) return bad_index("volumes");
    StickVolume v;
    auto name = e.get_string("name");
    auto hexid = e.get_string("blake2b");
    if (!name.ok() || !hexid.ok() || !crypto::parse_digest(*hexid, v.id) ||
        *name != volume_name(v.id)) {
      return bad_index("a volume's name does not match its blake2b");
    }
    v.name = *name;
    OUTPOST_RETURN_IF_ERROR(num(e, "size", v.size));
    if (!seen.insert(v.name).second) return bad_index("volume " + v.name + " is listed twice");
    out.volumes.push_back(std::move(v));
  }
  auto bs = j->get_array("bundles");
  if (!bs.ok()) return bad_index("field bundles");
  for (const Json& e : (*bs)->as_array()) {
    if (!e.is_object()) return bad_index("bundles");
    StickBundle b;
    auto name = e.get_string("name");
    if (!name.ok()) return bad_index("bundles.name");
    b.name = *name;
    OUTPOST_RETURN_IF_ERROR(num(e, "version", b.version));
    OUTPOST_RETURN_IF_ERROR(num(e, "from", b.from));
    OUTPOST_RETURN_IF_ERROR(num(e, "bytes", b.bytes));
    out.bundles.push_back(std::move(b));
  }
  auto left = j->get_array("left_out");
  if (!left.ok()) return bad_index("field left_out");
  for (const Json& e : (*left)->as_array()) {
    if (!e.is_string()) return bad_index("left_out");
    out.left_out.push_back(e.as_string());
  }
  return out;
}

Result<std::unique_ptr<StickWriter>> StickWriter::create(const std::string& dir, FileSystem& fs,
                                                         std::uint64_t volume_bytes) {
  if (volume_bytes < kMinVolumeBytes || volume_bytes > kFatMaxFileBytes) {
    return Status::InvalidArgument("a volume size must be between 64 KiB and 4 GiB - 1 bytes");
  }
  return std::unique_ptr<StickWriter>(new StickWriter(dir, fs, volume_bytes));
}

Status StickWriter::make_room(std::uint64_t record) {
  const std::uint64_t fixed = sizeof kPackMagic + kTrailerBytes;
  if (record + fixed > volume_bytes_) {
    return Status::InvalidArgument("a record of " + std::to_string(record) +
                                   " bytes does not fit in a volume of " +
                                   std::to_string(volume_bytes_) + " bytes: use larger volumes");
  }
  if (current_ && current_->writer().record_count() > 0 &&
      current_->writer().bytes_written() + record + kTrailerBytes > volume_bytes_) {
    OUTPOST_RETURN_IF_ERROR(close_volume());
  }
  if (!current_) {
    OUTPOST_ASSIGN_OR_RETURN(current_, PackFileWriter::create(dir_, fs_));
  }
  return Status::Ok();
}

Status StickWriter::close_volume() {
  if (!current_) return Status::Ok();
  auto info = current_->commit();
  std::unique_ptr<PackFileWriter> gone = std::move(current_);
  if (!info.ok()) return info.error();
  volumes_.push_back(StickVolume{volume_name(info->id), info->size, info->id});
  done_ += info->size;
  return Status::Ok();
}

Status StickWriter::add_file(RecordType type, std::string_view name, ByteView bytes) {
  OUTPOST_RETURN_IF_ERROR(make_room(record_bytes(name.size(), bytes.size())));
  return current_->writer().add_file(type, name, bytes).status();
}

Status StickWriter::add_chunk(const crypto::Digest& id, std::uint64_t raw_length, ByteView frame) {
  OUTPOST_RETURN_IF_ERROR(make_room(record_bytes(0, frame.size())));
  return current_->writer().add_chunk(id, raw_length, frame).status();
}

Result<std::vector<StickVolume>> StickWriter::finish() {
  if (!current_ && volumes_.empty()) OUTPOST_RETURN_IF_ERROR(make_room(0));
  OUTPOST_RETURN_IF_ERROR(close_volume());
  return volumes_;
}

}  // namespace outpost::packaging
