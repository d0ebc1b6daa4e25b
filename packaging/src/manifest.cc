#include "outpost/packaging/manifest.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <utility>

#include "outpost/base/clock.h"
#include "outpost/packaging/content.h"

namespace outpost::packaging {
namespace {

bool segment_char_ok(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

Status check_name_segments(std::string_view name, std::size_t min_segments,
                           std::size_t max_segments, const char* what) {
  const std::string quoted = std::string(what) + " '" + std::string(name) + "'";
  if (name.empty()) return Status::InvalidArgument(std::string(what) + " is empty");
  if (name.size() > max_segments * 65) {
    return Status::InvalidArgument(quoted.substr(0, 200) + "...: too long");
  }
  std::size_t segments = 0;
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = name.find('/', start);
    const std::string_view seg = name.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    ++segments;
    if (seg.empty()) return Status::InvalidArgument(quoted + ": empty segment");
    if (seg.size() > 64) {
      return Status::InvalidArgument(quoted + ": a segment is longer than 64 characters");
    }
    if (seg.front() == '.') {
      // TUF path patterns are glob(7), where '*' never matches a leading '.', so other TUF
      // clients could not find such a bundle (and '.'/'..' would escape).
      return Status::InvalidArgument(quoted + ": a segment may not start with '.'");
    }
    for (char c : seg) {
      if (!segment_char_ok(c)) {
        return Status::InvalidArgument(
            quoted +
            ": only A-Z a-z 0-9 . _ - are allowed in a segment, with '/' between segments");
      }
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (segments < min_segments || segments > max_segments) {
    return Status::InvalidArgument(quoted + ": needs " + std::to_string(min_segments) + " to " +
                                   std::to_string(max_segments) + " segments separated by '/'");
  }
  return Status::Ok();
}

// Length of the UTF-8 sequence at s[i], or 0 when invalid (overlongs, surrogates, > U+10FFFF).
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::uint32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  std::size_t n;
  std::uint32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2;
    cp = b0 & 0x1Fu;
    min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3;
    cp = b0 & 0x0Fu;
    min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4;
    cp = b0 & 0x07u;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

std::string quote_path(std::string_view p) {
  std::string out;
  for (char c : p.substr(0, 120)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  if (p.size() > 120) out += "...";
  return "'" + out + "'";
}

// ---- manifest parsing helpers ---------------------------------------------------------------

class FieldError {
 public:
  explicit FieldError(std::string bundle) : bundle_(std::move(bundle)) {}
  void set_bundle(std::string b) { bundle_ = std::move(b); }
  Status operator()(const std::string& field, const std::string& problem) const {
    const std::string who = bundle_.empty() ? "manifest" : "manifest of " + bundle_;
    return Status::Corruption(who + ": " + field + ": " + problem);
  }

 private:
  std::string bundle_;
};

Status check_keys(const Json& obj, std::initializer_list<std::string_view> allowed,
                  const std::string& where, const FieldError& err) {
  for (const auto& [key, value] : obj.as_object()) {
    (void)value;
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return err(where.empty() ? key : where + "." + key, "unknown field");
    }
  }
  for (std::string_view key : allowed) {
    if (obj.find(key) == nullptr) {
      return err(where.empty() ? std::string(key) : where + "." + std::string(key), "missing");
    }
  }
  return Status::Ok();
}

Result<std::int64_t> int_field(const Json& obj, std::string_view key, const std::string& name,
                               std::int64_t lo, std::int64_t hi, const FieldError& err) {
  const Json* v = obj.find(key);
  if (v == nullptr) return err(name, "missing");
  if (!v->is_int()) return err(name, "expected an integer");
  if (v->as_int() < lo || v->as_int() > hi) {
    return err(name, "value " + std::to_string(v->as_int()) + " out of range [" +
                         std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return v->as_int();
}

Result<std::string> string_field(const Json& obj, std::string_view key, const std::string& name,
                                 const FieldError& err) {
  const Json* v = obj.find(key);
  if (v == nullptr) return err(name, "missing");
  if (!v->is_string()) return err(name, "expected a string");
  return v->as_string();
}

Result<const Json*> object_field(const Json& obj, std::string_view key, const std::string& name,
                                 const FieldError& err) {
  const Json* v = obj.find(key);
  if (v == nullptr) return err(name, "missing");
  if (!v->is_object()) return err(name, "expected an object");
  return v;
}

Result<const Json::Array*> array_field(const Json& obj, std::string_view key,
                                       const std::string& name, const FieldError& err) {
  const Json* v = obj.find(key);
  if (v == nullptr) return err(name, "missing");
  if (!v->is_array()) return err(name, "expected an array");
  return &v->as_array();
}

Result<crypto::Digest> digest_field(const Json& obj, std::string_view key, const std::string& name,
                                    const FieldError& err) {
  OUTPOST_ASSIGN_OR_RETURN(std::string text, string_field(obj, key, name, err));
  crypto::Digest d{};
  if (text.size() != 64 || !crypto::parse_digest(text, d) || crypto::hex(d) != text) {
    return err(name, "expected 64 lowercase hex digits");
  }
  return d;
}

bool media_type_ok(const std::string& t) {
  if (t.empty() || t.size() > 127 || t.find('/') == std::string::npos) return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7F && c != '"' && c != '\\';
  });
}

}  // namespace

Status validate_bundle_name(std::string_view name) {
  return check_name_segments(name, 2, 6, "bundle name");
}

Status validate_bundle_prefix(std::string_view prefix) {
  return check_name_segments(prefix, 1, 6, "bundle name prefix");
}

Status validate_file_path(std::string_view path) {
  if (path.empty()) return Status::InvalidArgument("file path is empty");
  if (path.size() > 1024) {
    return Status::InvalidArgument("file path " + quote_path(path) + " is longer than 1024 bytes");
  }
  if (path.front() == '/') {
    return Status::InvalidArgument("file path " + quote_path(path) +
                                   " is absolute: paths in a bundle are relative");
  }
  for (std::size_t i = 0; i < path.size();) {
    std::uint32_t cp = 0;
    const std::size_t n = utf8_sequence(path, i, cp);
    if (n == 0)
      return Status::InvalidArgument("file path " + quote_path(path) + " is not valid UTF-8");
    if (cp == 0) return Status::InvalidArgument("file path " + quote_path(path) + " contains NUL");
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F)) {
      return Status::InvalidArgument("file path " + quote_path(path) +
                                     " contains a control character");
    }
    if (cp == '\\') {
      return Status::InvalidArgument("file path " + quote_path(path) +
                                     " contains a backslash: use '/' between segments");
    }
    i += n;
  }
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = path.find('/', start);
    const std::string_view seg = path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (seg.empty()) {
      return Status::InvalidArgument("file path " + quote_path(path) + " has an empty segment");
    }
    if (seg == "." || seg == "..") {
      return Status::InvalidArgument("file path " + quote_path(path) + ": '" + std::string(seg) +
                                     "' segment not allowed");
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return Status::Ok();
}

Status validate_kind(std::string_view kind) {
  if (kind == "resolution" || kind == "indicator" || kind == "generic") return Status::Ok();
  return Status::InvalidArgument("bundle kind '" + std::string(kind.substr(0, 64)) +
                                 "' is not one of resolution, indicator, generic");
}

std::string media_type_for(std::string_view path) {
  static constexpr std::pair<std::string_view, std::string_view> kTypes[] = {
      {"md", "text/markdown"},
      {"markdown", "text/markdown"},
      {"txt", "text/plain"},
      {"csv", "text/csv"},
      {"tsv", "text/tab-separated-values"},
      {"json", "application/json"},
      {"geojson", "application/geo+json"},
      {"html", "text/html"},
      {"htm", "text/html"},
      {"css", "text/css"},
      {"js", "text/javascript"},
      {"mjs", "text/javascript"},
      {"xml", "application/xml"},
      {"pdf", "application/pdf"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"svg", "image/svg+xml"},
      {"ico", "image/vnd.microsoft.icon"},
      {"zip", "application/zip"},
      {"gz", "application/gzip"},
      {"zst", "application/zstd"},
      {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
      {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
      {"odt", "application/vnd.oasis.opendocument.text"},
      {"ods", "application/vnd.oasis.opendocument.spreadsheet"},
      {"epub", "application/epub+zip"},
      {"woff2", "font/woff2"},
      {"mp3", "audio/mpeg"},
      {"ogg", "audio/ogg"},
      {"mp4", "video/mp4"},
      {"webm", "video/webm"},
  };
  const std::size_t slash = path.rfind('/');
  const std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  const std::size_t dot = base.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return "application/octet-stream";
  std::string ext(base.substr(dot + 1));
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& [e, t] : kTypes) {
    if (e == ext) return std::string(t);
  }
  return "application/octet-stream";
}

std::uint64_t patch_length_limit(std::uint64_t stream_size) {
  return stream_size + stream_size / 64 + (64u << 10);
}

const char* delta_engine_name(DeltaEngine engine) {
  return engine == DeltaEngine::kZstd ? "zstd" : "sa";
}

bool parse_delta_engine(std::string_view name, DeltaEngine& out) {
  if (name == "zstd") {
    out = DeltaEngine::kZstd;
  } else if (name == "sa") {
    out = DeltaEngine::kSuffix;
  } else {
    return false;
  }
  return true;
}

std::string Manifest::target_path() const { return manifest_target_path(bundle); }

Bytes Manifest::encode() const {
  Json j = Json::object();
  j.set("_type", kManifestType);
  j.set("format", kManifestFormat);
  j.set("bundle", bundle);
  j.set("version", version);
  j.set("kind", kind);
  j.set("meta", meta.is_object() ? meta : Json::object());
  j.set("published", format_utc(published));
  Json chunk = Json::object();
  chunk.set("algorithm", kChunkAlgorithm);
  chunk.set("min", static_cast<std::int64_t>(chunking.min));
  chunk.set("avg", static_cast<std::int64_t>(chunking.avg));
  chunk.set("max", static_cast<std::int64_t>(chunking.max));
  j.set("chunking", std::move(chunk));
  Json content = Json::object();
  content.set("root", crypto::hex(content_root));
  content.set("size", content_size);
  content.set("files", static_cast<std::uint64_t>(files.size()));
  j.set("content", std::move(content));
  Json paths = Json::array();
  Json sizes = Json::array();
  Json modes = Json::array();
  Json types = Json::array();
  for (const FileEntry& f : files) {
    paths.push(f.path);
    sizes.push(f.size);
    modes.push(static_cast<std::int64_t>(f.mode));
    types.push(f.type);
  }
  Json table = Json::object();
  table.set("path", std::move(paths));
  table.set("size", std::move(sizes));
  table.set("mode", std::move(modes));
  table.set("type", std::move(types));
  j.set("files", std::move(table));
  Json idx = Json::object();
  idx.set("path", index.path);
  idx.set("length", index.length);
  idx.set("blake2b", crypto::hex(index.blake2b));
  j.set("index", std::move(idx));
  Json patch_list = Json::array();
  for (const PatchRef& p : patches) {
    Json e = Json::object();
    e.set("from", p.from);
    if (p.from > 0) {
      e.set("from_root", crypto::hex(p.from_root));
      e.set("from_manifest", crypto::hex(p.from_manifest));
    }
    e.set("engine", delta_engine_name(p.engine));
    e.set("path", p.path);
    e.set("length", p.length);
    e.set("blake2b", crypto::hex(p.blake2b));
    patch_list.push(std::move(e));
  }
  j.set("patches", std::move(patch_list));
  return to_bytes(j.canonical());
}

Result<Manifest> Manifest::parse(ByteView bytes) {
  FieldError err("");
  if (bytes.size() > kMaxManifestBytes) {
    return Status::Corruption("manifest is larger than " + std::to_string(kMaxManifestBytes) +
                              " bytes");
  }
  JsonLimits limits;
  limits.max_bytes = kMaxManifestBytes;
  limits.max_values = 4 * kMaxBundleFiles + 4096;
  auto parsed = parse_json(as_chars(bytes), limits);
  if (!parsed.ok()) return parsed.error().With("manifest");
  const Json& j = *parsed;
  if (!j.is_object()) return Status::Corruption("manifest: not a JSON object");

  Manifest m;
  // The bundle name first, so later messages can name it.
  OUTPOST_ASSIGN_OR_RETURN(m.bundle, string_field(j, "bundle", "bundle", err));
  if (Status s = validate_bundle_name(m.bundle); !s.ok()) return err("bundle", s.message());
  err.set_bundle(m.bundle);
  OUTPOST_RETURN_IF_ERROR(
      check_keys(j,
                 {"_type", "format", "bundle", "version", "kind", "meta", "published", "chunking",
                  "content", "files", "index", "patches"},
                 "", err));
  OUTPOST_ASSIGN_OR_RETURN(std::string type, string_field(j, "_type", "_type", err));
  if (type != kManifestType) return err("_type", "expected '" + std::string(kManifestType) + "'");
  OUTPOST_ASSIGN_OR_RETURN(
      std::int64_t format,
      int_field(j, "format", "format", 0, std::numeric_limits<std::int64_t>::max(), err));
  if (format != kManifestFormat) {
    return err("format", "version " + std::to_string(format) +
                             " is not supported (this outpost reads format " +
                             std::to_string(kManifestFormat) + "): upgrade outpost");
  }
  OUTPOST_ASSIGN_OR_RETURN(m.version, int_field(j, "version", "version", 1,
                                                std::numeric_limits<std::int64_t>::max(), err));
  OUTPOST_ASSIGN_OR_RETURN(m.kind, string_field(j, "kind", "kind", err));
  if (Status s = validate_kind(m.kind); !s.ok()) return err("kind", s.message());
  OUTPOST_ASSIGN_OR_RETURN(const Json* meta, object_field(j, "meta", "meta", err));
  m.meta = *meta;
  OUTPOST_ASSIGN_OR_RETURN(std::string published, string_field(j, "published", "published", err));
  const auto when = parse_utc(published);
  if (!when) return err("published", "expected a UTC time like 2026-11-28T17:43:00Z");
  m.published = *when;

  OUTPOST_ASSIGN_OR_RETURN(const Json* chunking, object_field(j, "chunking", "chunking", err));
  OUTPOST_RETURN_IF_ERROR(
      check_keys(*chunking, {"algorithm", "min", "avg", "max"}, "chunking", err));
  OUTPOST_ASSIGN_OR_RETURN(std::string algo,
                           string_field(*chunking, "algorithm", "chunking.algorithm", err));
  if (algo != kChunkAlgorithm) {
    return err("chunking.algorithm", "'" + algo.substr(0, 64) + "' is not supported");
  }
  constexpr std::int64_t kU32Max = std::numeric_limits<std::uint32_t>::max();
  OUTPOST_ASSIGN_OR_RETURN(std::int64_t cmin,
                           int_field(*chunking, "min", "chunking.min", 0, kU32Max, err));
  OUTPOST_ASSIGN_OR_RETURN(std::int64_t cavg,
                           int_field(*chunking, "avg", "chunking.avg", 0, kU32Max, err));
  OUTPOST_ASSIGN_OR_RETURN(std::int64_t cmax,
                           int_field(*chunking, "max", "chunking.max", 0, kU32Max, err));
  m.chunking = ChunkerParams{static_cast<std::uint32_t>(cmin), static_cast<std::uint32_t>(cavg),
                             static_cast<std::uint32_t>(cmax)};
  if (Status s = m.chunking.validate(); !s.ok()) return err("chunking", s.message());

  OUTPOST_ASSIGN_OR_RETURN(const Json* content, object_field(j, "content", "content", err));
  OUTPOST_RETURN_IF_ERROR(check_keys(*content, {"root", "size", "files"}, "content", err));
  OUTPOST_ASSIGN_OR_RETURN(m.content_root, digest_field(*content, "root", "content.root", err));
  OUTPOST_ASSIGN_OR_RETURN(std::int64_t csize,
                           int_field(*content, "size", "content.size", 0,
                                     std::numeric_limits<std::int64_t>::max(), err));
  m.content_size = static_cast<std::uint64_t>(csize);
  OUTPOST_ASSIGN_OR_RETURN(std::int64_t cfiles,
                           int_field(*content, "files", "content.files", 0,
                                     static_cast<std::int64_t>(kMaxBundleFiles), err));

  OUTPOST_ASSIGN_OR_RETURN(const Json* files, object_field(j, "files", "files", err));
  OUTPOST_RETURN_IF_ERROR(check_keys(*files, {"path", "size", "mode", "type"}, "files", err));
  OUTPOST_ASSIGN_OR_RETURN(const Json::Array* paths,
                           array_field(*files, "path", "files.path", err));
  OUTPOST_ASSIGN_OR_RETURN(const Json::Array* sizes,
                           array_field(*files, "size", "files.size", err));
  OUTPOST_ASSIGN_OR_RETURN(const Json::Array* modes,
                           array_field(*files, "mode", "files.mode", err));
  OUTPOST_ASSIGN_OR_RETURN(const Json::Array* types,
                           array_field(*files, "type", "files.type", err));
  const auto count = static_cast<std::size_t>(cfiles);
  for (const auto& [name, col] : {std::pair<const char*, const Json::Array*>{"files.path", paths},
                                  {"files.size", sizes},
                                  {"files.mode", modes},
                                  {"files.type", types}}) {
    if (col->size() != count) {
      return err(name, "has " + std::to_string(col->size()) + " entries, content.files says " +
                           std::to_string(count));
    }
  }
  m.files.reserve(count);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string at = "[" + std::to_string(i) + "]";
    FileEntry f;
    const Json& p = (*paths)[i];
    if (!p.is_string()) return err("files.path" + at, "expected a string");
    f.path = p.as_string();
    if (Status s = validate_file_path(f.path); !s.ok()) return err("files.path" + at, s.message());
    if (i > 0 && !(m.files.back().path < f.path)) {
      return err("files.path" + at, "paths are not in strictly increasing bytewise order");
    }
    const Json& sz = (*sizes)[i];
    if (!sz.is_int() || sz.as_int() < 0) return err("files.size" + at, "expected a size >= 0");
    f.size = static_cast<std::uint64_t>(sz.as_int());
    if (f.size > std::numeric_limits<std::uint64_t>::max() - total) {
      return err("files.size" + at, "sizes overflow");
    }
    total += f.size;
    const Json& md = (*modes)[i];
    if (!md.is_int() || (md.as_int() != kModeRegular && md.as_int() != kModeExecutable)) {
      return err("files.mode" + at, "expected 420 (0644) or 493 (0755)");
    }
    f.mode = static_cast<std::uint32_t>(md.as_int());
    const Json& ty = (*types)[i];
    if (!ty.is_string() || !media_type_ok(ty.as_string())) {
      return err("files.type" + at, "expected a media type like text/plain");
    }
    f.type = ty.as_string();
    m.files.push_back(std::move(f));
  }
  if (total != m.content_size) {
    return err("content.size", std::to_string(m.content_size) +
                                   " differs from the sum of file sizes " + std::to_string(total));
  }

  OUTPOST_ASSIGN_OR_RETURN(const Json* index, object_field(j, "index", "index", err));
  OUTPOST_RETURN_IF_ERROR(check_keys(*index, {"path", "length", "blake2b"}, "index", err));
  OUTPOST_ASSIGN_OR_RETURN(m.index.blake2b, digest_field(*index, "blake2b", "index.blake2b", err));
  OUTPOST_ASSIGN_OR_RETURN(m.index.path, string_field(*index, "path", "index.path", err));
  if (m.index.path != index_object_path(m.index.blake2b)) {
    return err("index.path", "expected " + index_object_path(m.index.blake2b));
  }
  OUTPOST_ASSIGN_OR_RETURN(std::int64_t ilen,
                           int_field(*index, "length", "index.length", 24,
                                     static_cast<std::int64_t>(kMaxIndexBytes), err));
  m.index.length = static_cast<std::uint64_t>(ilen);

  OUTPOST_ASSIGN_OR_RETURN(const Json::Array* patches, array_field(j, "patches", "patches", err));
  if (patches->size() > kMaxManifestPatches) {
    return err("patches", "has " + std::to_string(patches->size()) + " entries, at most " +
                              std::to_string(kMaxManifestPatches) + " allowed");
  }
  const std::uint64_t max_patch = patch_length_limit(content_stream_size(m));
  m.patches.reserve(patches->size());
  for (std::size_t i = 0; i < patches->size(); ++i) {
    const std::string at = "patches[" + std::to_string(i) + "]";
    const Json& e = (*patches)[i];
    if (!e.is_object()) return err(at, "expected an object");
    PatchRef p;
    OUTPOST_ASSIGN_OR_RETURN(p.from, int_field(e, "from", at + ".from", 0, m.version - 1, err));
    if (!m.patches.empty() && m.patches.back().from >= p.from) {
      return err(at + ".from", "patches are not in strictly increasing order of \"from\"");
    }
    if (p.from == 0) {
      OUTPOST_RETURN_IF_ERROR(
          check_keys(e, {"from", "engine", "path", "length", "blake2b"}, at, err));
    } else {
      OUTPOST_RETURN_IF_ERROR(check_keys(
          e, {"from", "from_root", "from_manifest", "engine", "path", "length", "blake2b"}, at,
          err));
      OUTPOST_ASSIGN_OR_RETURN(p.from_root, digest_field(e, "from_root", at + ".from_root", err));
      OUTPOST_ASSIGN_OR_RETURN(p.from_manifest,
                               digest_field(e, "from_manifest", at + ".from_manifest", err));
    }
    OUTPOST_ASSIGN_OR_RETURN(std::string engine, string_field(e, "engine", at + ".engine", err));
    if (!parse_delta_engine(engine, p.engine)) {
      return err(at + ".engine", "expected \"zstd\" or \"sa\"");
    }
    if (p.from == 0 && p.engine != DeltaEngine::kZstd) {
      return err(at + ".engine", "the patch from 0 must be \"zstd\"");
    }
    OUTPOST_ASSIGN_OR_RETURN(p.blake2b, digest_field(e, "blake2b", at + ".blake2b", err));
    OUTPOST_ASSIGN_OR_RETURN(p.path, string_field(e, "path", at + ".path", err));
    if (p.path != patch_object_path(p.blake2b)) {
      return err(at + ".path", "expected " + patch_object_path(p.blake2b));
    }
    OUTPOST_ASSIGN_OR_RETURN(
        std::int64_t plen,
        int_field(
            e, "length", at + ".length", 1,
            static_cast<std::int64_t>(std::min<std::uint64_t>(
                max_patch, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))),
            err));
    p.length = static_cast<std::uint64_t>(plen);
    m.patches.push_back(std::move(p));
  }
  return m;
}

}  // namespace outpost::packaging
