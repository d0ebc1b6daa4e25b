#include "outpost/packaging/update_file.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include "outpost/packaging/manifest.h"

namespace outpost::packaging {

namespace {

bool is_zero(const crypto::Digest& d) {
  return std::all_of(d.begin(), d.end(), [](std::uint8_t b) { return b == 0; });
}

Status check_name(std::string_view name) {
  if (name.size() > kMaxUpdateName) {
    return Status::InvalidArgument("update entry name longer than " +
                                   std::to_string(kMaxUpdateName) + " bytes");
  }
  return validate_file_path(name);
}

// Writes v's n low bytes, least significant first (the file's integers).
void store_le(std::uint8_t* at, std::uint64_t v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) at[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

// Reads fixed-size fields from the front of a byte view, refusing to run past its end.
class Cursor {
 public:
  explicit Cursor(ByteView b) : b_(b) {}
  std::size_t left() const { return b_.size() - pos_; }
  std::size_t pos() const { return pos_; }
  bool take(std::size_t n, ByteView& out) {
    if (n > left()) return false;
    out = b_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool u8(std::uint8_t& v) {
    ByteView b;
    if (!take(1, b)) return false;
    v = b[0];
    return true;
  }
  bool u16(std::uint16_t& v) {
    ByteView b;
    if (!take(2, b)) return false;
    v = static_cast<std::uint16_t>(b[0] | (b[1] << 8));
    return true;
  }
  bool u32(std::uint32_t& v) {
    ByteView b;
    if (!take(4, b)) return false;
    v = get_u32le(b.data());
    return true;
  }
  bool u64(std::uint64_t& v) {
    ByteView b;
    if (!take(8, b)) return false;
    v = get_u64le(b.data());
    return true;
  }
  bool digest(crypto::Digest& d) {
    ByteView b;
    if (!take(32, b)) return false;
    std::memcpy(d.data(), b.data(), 32);
    return true;
  }

 private:
  ByteView b_;
  std::size_t pos_ = 0;
};

}  // namespace

Result<UpdateEntry> make_update_entry(std::string name, ByteView file, std::optional<ByteView> base,
                                      Compressor& compressor) {
  if (Status s = check_name(name); !s.ok()) return s.With("update entry");
  UpdateEntry e;
  e.name = std::move(name);
  e.result_length = file.size();
  e.result_sha256 = crypto::sha256(file);
  if (base) {
    e.encoding = UpdateEncoding::kZstdDelta;
    e.base_sha256 = crypto::sha256(*base);
    OUTPOST_ASSIGN_OR_RETURN(e.data, compressor.compress_with_prefix(file, *base));
  } else {
    e.encoding = UpdateEncoding::kZstd;
    OUTPOST_ASSIGN_OR_RETURN(e.data, compressor.compress(file));
  }
  return e;
}

Result<UpdateEntry> make_stored_entry(std::string name, ByteView file) {
  if (Status s = check_name(name); !s.ok()) return s.With("update entry");
  if (file.empty()) return Status::InvalidArgument("update entry " + name + ": empty file");
  UpdateEntry e;
  e.name = std::move(name);
  e.encoding = UpdateEncoding::kStored;
  e.result_length = file.size();
  e.data.assign(file.begin(), file.end());  // result_sha256 stays zero: not given
  return e;
}

namespace {

// Replaces `from` with `to` in `s` when `from` occurs exactly once.
bool replace_once(std::string& s, const std::string& from, const std::string& to) {
  const std::size_t at = s.find(from);
  if (at == std::string::npos || s.find(from, at + 1) != std::string::npos) return false;
  s.replace(at, from.size(), to);
  return true;
}

// The four fields of a thin manifest, in canonical JSON: the filled text, then the blank.
struct ThinField {
  std::string filled;
  std::string blank;
};
// No held version (a library file's manifest): no "from_" fields.
std::vector<ThinField> thin_fields(const HeldVersion* held,
                                   const std::optional<crypto::Digest>& patch,
                                   const std::optional<crypto::Digest>& root) {
  std::vector<ThinField> fields;
  if (held != nullptr) {
    fields.push_back({"\"from_manifest\":\"" + crypto::hex(held->manifest_sha256) + "\"",
                      "\"from_manifest\":\"\""});
    fields.push_back(
        {"\"from_root\":\"" + crypto::hex(held->content_root) + "\"", "\"from_root\":\"\""});
  }
  if (patch) {
    fields.push_back({"\"blake2b\":\"" + crypto::hex(*patch) + "\"", "\"blake2b\":\"\""});
    fields.push_back({"\"path\":\"" + patch_object_path(*patch) + "\"", "\"path\":\"\""});
  }
  if (root) fields.push_back({"\"root\":\"" + crypto::hex(*root) + "\"", "\"root\":\"\""});
  return fields;
}

// Each field of `bytes` turned filled -> blank (to_blank) or blank -> filled; nullopt unless
// each one is there exactly once.
std::optional<Bytes> swap_fields(ByteView bytes, const HeldVersion* held,
                                 const std::optional<crypto::Digest>& patch,
                                 const std::optional<crypto::Digest>& root, bool to_blank) {
  std::string s(bytes.begin(), bytes.end());
  for (const ThinField& f : thin_fields(held, patch, root)) {
    if (!replace_once(s, to_blank ? f.filled : f.blank, to_blank ? f.blank : f.filled)) {
      return std::nullopt;
    }
  }
  return Bytes(s.begin(), s.end());
}

// The blank form of `manifest`, checked to fill back in to it exactly.
std::optional<Bytes> blank_fields(ByteView manifest, const HeldVersion* held,
                                  const std::optional<crypto::Digest>& patch,
                                  const std::optional<crypto::Digest>& root) {
  std::optional<Bytes> thin = swap_fields(manifest, held, patch, root, /*to_blank=*/true);
  if (!thin) return std::nullopt;
  const std::optional<Bytes> back = swap_fields(*thin, held, patch, root, /*to_blank=*/false);
  if (!back || !std::equal(back->begin(), back->end(), manifest.begin(), manifest.end())) {
    return std::nullopt;
  }
  return thin;
}

}  // namespace

std::optional<Bytes> fill_thin_manifest(ByteView thin, const HeldVersion& held,
                                        const std::optional<crypto::Digest>& patch,
                                        const std::optional<crypto::Digest>& root) {
  return swap_fields(thin, &held, patch, root, /*to_blank=*/false);
}

std::optional<Bytes> thin_manifest(ByteView manifest, const HeldVersion& held,
                                   const std::optional<crypto::Digest>& patch,
                                   const std::optional<crypto::Digest>& root) {
  return blank_fields(manifest, &held, patch, root);
}

std::optional<Bytes> rootless_manifest(ByteView manifest, const crypto::Digest& root) {
  return blank_fields(manifest, nullptr, std::nullopt, root);
}

std::optional<Bytes> fill_rootless_manifest(ByteView rootless, const crypto::Digest& root) {
  return swap_fields(rootless, nullptr, std::nullopt, root, /*to_blank=*/false);
}

bool base_matches(const UpdateEntry& entry, const crypto::Digest& sha256) {
  if (!entry.base_tag_only) return crypto::digest_equal(sha256, entry.base_sha256);
  return std::equal(sha256.begin(), sha256.begin() + kBaseTagBytes, entry.base_sha256.begin());
}

Result<std::vector<LibraryFrame>> library_frames(ByteView bytes, std::uint64_t max_raw) {
  std::vector<LibraryFrame> frames;
  std::uint64_t total = 0;
  for (ByteView rest = bytes; !rest.empty();) {
    const std::size_t n = ZSTD_findFrameCompressedSize(rest.data(), rest.size());
    if (!ZSTD_isError(n) && n <= rest.size() && rest.size() >= 4 &&
        (get_u32le(rest.data()) & 0xFFFFFFF0u) == 0x184D2A50u) {
      rest = rest.subspan(n);  // a skippable frame (the head): no content
      continue;
    }
    auto size = zstd_frame_content_size(rest);
    if (ZSTD_isError(n) || n > rest.size() || !size || *size > max_raw - total) {
      return Status::Corruption("library file: not zstd frames that declare at most " +
                                std::to_string(max_raw) + " bytes in all");
    }
    total += *size;
    frames.push_back({rest.first(n), *size});
    rest = rest.subspan(n);
  }
  if (frames.empty()) return Status::Corruption("library file: empty");
  return frames;
}

Result<UpdateFile> parse_library_file(ByteView bytes, std::uint64_t max_raw,
                                      std::uint64_t max_entries) {
  OUTPOST_ASSIGN_OR_RETURN(std::vector<LibraryFrame> frames, library_frames(bytes, max_raw));
  Decompressor dec;
  Bytes raw;
  for (const LibraryFrame& f : frames) {
    OUTPOST_ASSIGN_OR_RETURN(
        Bytes part, dec.decompress(f.frame, static_cast<std::size_t>(f.raw_size), "library file"));
    raw.insert(raw.end(), part.begin(), part.end());
  }
  return parse_update_file(raw, max_entries);
}

Result<Bytes> encode_update_file(const UpdateFile& file) {
  if (file.entries.size() > std::numeric_limits<std::uint32_t>::max()) {
    return Status::InvalidArgument("update file with more than 2^32-1 entries");
  }
  std::size_t total = kUpdateHeaderBytes;
  std::set<std::string_view> names;
  for (const UpdateEntry& e : file.entries) {
    if (Status s = check_name(e.name); !s.ok()) return s.With("update entry");
    if (!names.insert(e.name).second) {
      return Status::InvalidArgument("update file lists '" + e.name + "' twice");
    }
    if (!e.base_name.empty() || e.encoding == UpdateEncoding::kFollows) {
      return Status::InvalidArgument("update entry " + e.name +
                                     ": a base name or a group, which only the compact layout "
                                     "holds");
    }
    total += update_entry_bytes(e);
  }
  // Written in place into a buffer of the final size (vector::insert of small arrays trips
  // g++ 12's -Wstringop-overflow false positives).
  Bytes out(total);
  std::size_t at = 0;
  auto put = [&](const void* src, std::size_t n) {
    if (n > 0) std::memcpy(out.data() + at, src, n);
    at += n;
  };
  auto put_int = [&](std::uint64_t v, std::size_t n) {
    store_le(out.data() + at, v, n);
    at += n;
  };
  put(kUpdateMagic, 4);
  put_int(file.latest_root, 4);
  put_int(file.entries.size(), 4);
  const crypto::Digest zero{};
  for (const UpdateEntry& e : file.entries) {
    put_int(e.name.size(), 2);
    put(e.name.data(), e.name.size());
    put_int(static_cast<std::uint8_t>(e.encoding), 1);
    put((e.encoding != UpdateEncoding::kZstdDelta ? zero : e.base_sha256).data(), 32);
    put_int(e.result_length, 8);
    put(e.result_sha256.data(), 32);
    put_int(e.data.size(), 8);
    put(e.data.data(), e.data.size());
  }
  return out;
}

Result<Bytes> encode_compact_update_file(const UpdateFile& file, Compressor& compressor) {
  if (file.entries.size() > std::numeric_limits<std::uint32_t>::max()) {
    return Status::InvalidArgument("update file with more than 2^32-1 entries");
  }
  Bytes table;
  std::uint64_t data_bytes = 0;
  std::set<std::string_view> names;
  auto put_int = [&](std::uint64_t v, std::size_t n) {
    table.resize(table.size() + n);
    store_le(table.data() + table.size() - n, v, n);
  };
  for (const UpdateEntry& e : file.entries) {
    if (Status s = check_name(e.name); !s.ok()) return s.With("update entry");
    if (!names.insert(e.name).second) {
      return Status::InvalidArgument("update file lists '" + e.name + "' twice");
    }
    put_int(e.name.size(), 2);
    table.insert(table.end(), e.name.begin(), e.name.end());
    put_int(static_cast<std::uint8_t>(e.encoding), 1);
    const bool delta = e.encoding == UpdateEncoding::kZstdDelta;
    if (e.encoding == UpdateEncoding::kFollows) {
      const std::size_t i = static_cast<std::size_t>(&e - file.entries.data());
      const UpdateEncoding before = i == 0 ? UpdateEncoding::kStored : file.entries[i - 1].encoding;
      if ((before != UpdateEncoding::kZstd && before != UpdateEncoding::kFollows) ||
          !e.data.empty() || !e.base_name.empty()) {
        return Status::InvalidArgument("update entry " + e.name +
                                       ": a file of a group must follow its frame, alone");
      }
    } else if (e.data.empty()) {
      return Status::InvalidArgument("update entry " + e.name + ": no data");
    }
    for (std::size_t i = 0; i < kBaseTagBytes; ++i) table.push_back(delta ? e.base_sha256[i] : 0);
    if (!e.base_name.empty()) {
      if (!delta) return Status::InvalidArgument("update entry " + e.name + ": a base name");
      if (Status s = check_name(e.base_name); !s.ok()) return s.With("update entry base");
    }
    put_int(e.base_name.size(), 2);
    table.insert(table.end(), e.base_name.begin(), e.base_name.end());
    put_int(e.result_length, 8);
    put_int(e.data.size(), 8);
    data_bytes += e.data.size();
  }
  if (table.size() > kMaxUpdateTableBytes) {
    return Status::InvalidArgument("update file: an entry table of " +
                                   std::to_string(table.size()) + " bytes, above the limit");
  }
  OUTPOST_ASSIGN_OR_RETURN(Bytes frame, compressor.compress(table));
  if (frame.size() > std::numeric_limits<std::uint32_t>::max()) {
    return Status::InvalidArgument("update file: entry table too large");
  }
  Bytes out;
  out.reserve(kUpdateHeaderBytes + 4 + frame.size() + data_bytes);
  out.insert(out.end(), kCompactUpdateMagic, kCompactUpdateMagic + 4);
  for (std::uint64_t v : {std::uint64_t{file.latest_root}, std::uint64_t{file.entries.size()},
                          std::uint64_t{frame.size()}}) {
    for (std::size_t i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  out.insert(out.end(), frame.begin(), frame.end());
  for (const UpdateEntry& e : file.entries) out.insert(out.end(), e.data.begin(), e.data.end());
  return out;
}

namespace {

// Parts of an entry both layouts read the same way; each returns what is wrong, if anything.
// Its name, a valid path not listed before.
std::optional<std::string> read_name(Cursor& c, std::set<std::string>& names, std::string& name) {
  std::uint16_t len = 0;
  ByteView bytes;
  if (!c.u16(len) || !c.take(len, bytes)) return "truncated name";
  name.assign(as_chars(bytes));
  if (Status s = check_name(name); !s.ok()) return s.message();
  if (!names.insert(name).second) return "'" + name + "' listed twice";
  return std::nullopt;
}
std::optional<std::string> read_encoding(std::uint8_t enc, UpdateEncoding& out,
                                         UpdateEncoding last = UpdateEncoding::kStored) {
  if (enc > static_cast<std::uint8_t>(last)) {
    return "unknown encoding " + std::to_string(enc);
  }
  out = static_cast<UpdateEncoding>(enc);
  return std::nullopt;
}
// Its data: `length` bytes, at least one.
std::optional<std::string> read_data(Cursor& c, std::uint64_t length, Bytes& out) {
  if (length == 0) return "empty data";
  ByteView data;
  if (length > c.left() || !c.take(static_cast<std::size_t>(length), data)) {
    return "truncated data (" + std::to_string(length) + " bytes declared)";
  }
  out.assign(data.begin(), data.end());
  return std::nullopt;
}

// head: `bytes` are the start of the file, the header and its first entries, ending at an
// entry boundary (the header counts entries beyond them).
Result<UpdateFile> parse_entries(ByteView bytes, std::uint64_t max_entries, bool head) {
  Cursor c(bytes);
  auto bad = [&](const std::string& what) {
    return Status::Corruption("update file: " + what + " (at byte " + std::to_string(c.pos()) +
                              " of " + std::to_string(bytes.size()) + ")");
  };
  ByteView magic;
  if (!c.take(4, magic) || std::memcmp(magic.data(), kUpdateMagic, 4) != 0) {
    return bad("wrong magic, not an outpost update file");
  }
  UpdateFile f;
  std::uint32_t count = 0;
  if (!c.u32(f.latest_root) || !c.u32(count)) return bad("truncated header");
  if (count > max_entries) {
    return bad(std::to_string(count) + " entries, more than the " + std::to_string(max_entries) +
               " allowed");
  }
  // Every entry takes at least its fixed bytes: refuse counts the bytes cannot hold before
  // reserving anything.
  if (head) {
    count = static_cast<std::uint32_t>(std::min<std::size_t>(count, c.left()));
  } else if (count > c.left() / kUpdateEntryFixedBytes) {
    return bad("truncated: too few bytes for entries");
  }
  f.entries.reserve(std::min<std::size_t>(count, c.left() / kUpdateEntryFixedBytes));
  std::set<std::string> names;
  for (std::uint32_t i = 0; i < count && !(head && c.left() == 0); ++i) {
    const std::string at = "entry " + std::to_string(i) + ": ";
    UpdateEntry e;
    if (auto wrong = read_name(c, names, e.name)) return bad(at + *wrong);
    std::uint8_t enc = 0;
    if (!c.u8(enc)) return bad(at + "truncated");
    if (auto wrong = read_encoding(enc, e.encoding)) return bad(at + *wrong);
    std::uint64_t data_len = 0;
    if (!c.digest(e.base_sha256) || !c.u64(e.result_length) || !c.digest(e.result_sha256) ||
        !c.u64(data_len)) {
      return bad(at + "truncated");
    }
    if (e.encoding != UpdateEncoding::kZstdDelta && !is_zero(e.base_sha256)) {
      return bad(at + "a base hash on a file compressed alone");
    }
    if (auto wrong = read_data(c, data_len, e.data)) return bad(at + *wrong);
    f.entries.push_back(std::move(e));
  }
  if (c.left() != 0) return bad(std::to_string(c.left()) + " bytes after the last entry");
  return f;
}

// The compact layout (OPU2): the header, the entry table frame, then the entries' data.
Result<UpdateFile> parse_compact(ByteView bytes, std::uint64_t max_entries) {
  Cursor c(bytes);
  auto bad = [&](const std::string& what) {
    return Status::Corruption("update file: " + what + " (at byte " + std::to_string(c.pos()) +
                              " of " + std::to_string(bytes.size()) + ")");
  };
  ByteView magic, frame;
  UpdateFile f;
  std::uint32_t count = 0, table_len = 0;
  if (!c.take(4, magic) || !c.u32(f.latest_root) || !c.u32(count) || !c.u32(table_len)) {
    return bad("truncated header");
  }
  if (count > max_entries) {
    return bad(std::to_string(count) + " entries, more than the " + std::to_string(max_entries) +
               " allowed");
  }
  // A record takes at least kRecordMin bytes.
  constexpr std::size_t kRecordMin = 2 + 1 + 1 + kBaseTagBytes + 2 + 8 + 8;
  if (!c.take(table_len, frame)) return bad("truncated entry table");
  const auto raw_size = zstd_frame_content_size(frame);
  if (!raw_size || *raw_size > kMaxUpdateTableBytes || *raw_size / kRecordMin < count) {
    return bad("an entry table that cannot hold " + std::to_string(count) + " entries");
  }
  Decompressor dec;
  auto table = dec.decompress(frame, static_cast<std::size_t>(*raw_size), "entry table");
  if (!table.ok()) return bad(table.error().message());
  Cursor t(ByteView(table->data(), table->size()));
  f.entries.reserve(count);
  std::set<std::string> names;
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string at = "entry " + std::to_string(i) + ": ";
    UpdateEntry e;
    ByteView tag;
    if (auto wrong = read_name(t, names, e.name)) return bad(at + *wrong);
    std::uint8_t enc = 0;
    std::uint64_t data_len = 0;
    std::uint16_t base_len = 0;
    ByteView base_name;
    if (!t.u8(enc) || !t.take(kBaseTagBytes, tag) || !t.u16(base_len) ||
        !t.take(base_len, base_name) || !t.u64(e.result_length) || !t.u64(data_len)) {
      return bad(at + "truncated");
    }
    e.base_name.assign(as_chars(base_name));
    if (!e.base_name.empty()) {
      if (Status s = check_name(e.base_name); !s.ok()) return bad(at + "base: " + s.message());
    }
    if (auto wrong = read_encoding(enc, e.encoding, UpdateEncoding::kFollows)) {
      return bad(at + *wrong);
    }
    std::memcpy(e.base_sha256.data(), tag.data(), kBaseTagBytes);
    e.base_tag_only = e.encoding == UpdateEncoding::kZstdDelta;
    if (!e.base_tag_only && (!is_zero(e.base_sha256) || !e.base_name.empty())) {
      return bad(at + "a base on a file compressed alone");
    }
    if (e.encoding == UpdateEncoding::kFollows) {
      const bool after_group =
          !f.entries.empty() && (f.entries.back().encoding == UpdateEncoding::kZstd ||
                                 f.entries.back().encoding == UpdateEncoding::kFollows);
      if (!after_group) return bad(at + "a file of a group with no frame before it");
      if (data_len != 0) return bad(at + "data in a file of a group");
    } else if (auto wrong = read_data(c, data_len, e.data)) {
      return bad(at + *wrong);
    }
    f.entries.push_back(std::move(e));
  }
  if (t.left() != 0) return bad(std::to_string(t.left()) + " bytes after the last table record");
  if (c.left() != 0) return bad(std::to_string(c.left()) + " bytes after the last entry");
  return f;
}

}  // namespace

Result<UpdateFile> parse_update_file(ByteView bytes, std::uint64_t max_entries) {
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), kCompactUpdateMagic, 4) == 0) {
    return parse_compact(bytes, max_entries);
  }
  return parse_entries(bytes, max_entries, false);
}

Result<UpdateFile> parse_update_file_head(ByteView bytes, std::uint64_t max_entries) {
  return parse_entries(bytes, max_entries, true);
}

Bytes encode_library_head(const LibraryHead& head) {
  Bytes out(kLibraryHeadBytes);
  auto put = [&](std::size_t at, std::uint64_t v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
  };
  put(0, kLibraryHeadMagic, 4);
  put(4, kLibraryHeadBytes - 8, 4);
  std::memcpy(out.data() + 8, kLibraryHeadTag, 4);
  put(12, 1, 4);
  put(16, head.metadata_frame_bytes, 8);
  put(24, head.file_bytes, 8);
  return out;
}

std::optional<LibraryHead> parse_library_head(ByteView bytes) {
  if (bytes.size() < kLibraryHeadBytes || get_u32le(bytes.data()) != kLibraryHeadMagic ||
      get_u32le(bytes.data() + 4) != kLibraryHeadBytes - 8 ||
      std::memcmp(bytes.data() + 8, kLibraryHeadTag, 4) != 0 || get_u32le(bytes.data() + 12) != 1) {
    return std::nullopt;
  }
  LibraryHead h{get_u64le(bytes.data() + 16), get_u64le(bytes.data() + 24)};
  if (h.metadata_frame_bytes == 0 || h.file_bytes < kLibraryHeadBytes ||
      h.metadata_frame_bytes > h.file_bytes - kLibraryHeadBytes) {
    return std::nullopt;
  }
  return h;
}

Result<Bytes> rebuild_entry(const UpdateEntry& entry, ByteView base, std::uint64_t max_length,
                            Decompressor& decompressor) {
  const std::string what = "update entry " + entry.name;
  if (entry.result_length > max_length) {
    return Status::Corruption(what + " declares " + std::to_string(entry.result_length) +
                              " bytes, above the limit of " + std::to_string(max_length));
  }
  Result<Bytes> out = Status::Internal("unset");
  if (entry.encoding == UpdateEncoding::kFollows) {
    return Status::Corruption(what + " is in its group's frame, not alone");
  }
  if (entry.encoding == UpdateEncoding::kZstdDelta) {
    if (!base_matches(entry, crypto::sha256(base))) {
      return Status::Corruption(what + ": the base file given does not match its base hash");
    }
    out = decompressor.decompress_with_prefix(entry.data, base,
                                              static_cast<std::size_t>(entry.result_length), what);
  } else if (entry.encoding == UpdateEncoding::kStored) {
    if (entry.data.size() != entry.result_length) {
      return Status::Corruption(what + " holds " + std::to_string(entry.data.size()) +
                                " bytes, not the " + std::to_string(entry.result_length) +
                                " it declares");
    }
    // A stored entry names no SHA-256: what it holds is checked against signed data only.
    return entry.data;
  } else {
    out = decompressor.decompress(entry.data, static_cast<std::size_t>(entry.result_length), what);
  }
  if (!out.ok()) return out;
  if (!is_zero(entry.result_sha256) &&
      !crypto::digest_equal(crypto::sha256(*out), entry.result_sha256)) {
    return Status::Corruption(what + " does not match its SHA-256");
  }
  return out;
}

Result<Bytes> rebuild_entry(const UpdateEntry& entry, ByteView base, std::uint64_t max_length) {
  Decompressor decompressor;
  return rebuild_entry(entry, base, max_length, decompressor);
}

bool in_group(const UpdateFile& file, std::size_t at) {
  const auto& e = file.entries;
  if (at >= e.size()) return false;
  return e[at].encoding == UpdateEncoding::kFollows ||
         (e[at].encoding == UpdateEncoding::kZstd && at + 1 < e.size() &&
          e[at + 1].encoding == UpdateEncoding::kFollows);
}

Result<UpdateGroup> rebuild_group(const UpdateFile& file, std::size_t at, std::uint64_t max_length,
                                  Decompressor& decompressor) {
  const auto& e = file.entries;
  if (at >= e.size()) return Status::InvalidArgument("no update entry " + std::to_string(at));
  UpdateGroup g;
  g.first = at;
  while (g.first > 0 && e[g.first].encoding == UpdateEncoding::kFollows) --g.first;
  const UpdateEntry& first = e[g.first];
  const std::string what = "update entry group of " + first.name;
  if (first.encoding != UpdateEncoding::kZstd) {
    return Status::Corruption(what + ": no frame before its files");
  }
  std::size_t end = g.first + 1;
  while (end < e.size() && e[end].encoding == UpdateEncoding::kFollows) ++end;
  std::uint64_t total = 0;
  for (std::size_t i = g.first; i < end; ++i) {
    const std::uint64_t n = e[i].result_length;
    if (n > max_length || n > kMaxUpdateGroupBytes - total) {
      return Status::Corruption(what + ": " + e[i].name + " declares " + std::to_string(n) +
                                " bytes, above the limit");
    }
    total += n;
  }
  OUTPOST_ASSIGN_OR_RETURN(
      Bytes all, decompressor.decompress(first.data, static_cast<std::size_t>(total), what));
  std::size_t pos = 0;
  for (std::size_t i = g.first; i < end; ++i) {
    const auto n = static_cast<std::size_t>(e[i].result_length);
    g.files.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(pos),
                         all.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  }
  return g;
}

}  // namespace outpost::packaging
