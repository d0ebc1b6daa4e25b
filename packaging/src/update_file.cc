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
    for (std::size_t i = 0; i < n; ++i) out[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
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

namespace {

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
    std::uint16_t name_len = 0;
    ByteView name;
    if (!c.u16(name_len) || !c.take(name_len, name)) return bad(at + "truncated name");
    e.name.assign(as_chars(name));
    if (Status s = check_name(e.name); !s.ok()) return bad(at + s.message());
    if (!names.insert(e.name).second) return bad(at + "'" + e.name + "' listed twice");
    std::uint8_t enc = 0;
    if (!c.u8(enc)) return bad(at + "truncated");
    if (enc > static_cast<std::uint8_t>(UpdateEncoding::kStored)) {
      return bad(at + "unknown encoding " + std::to_string(enc));
    }
    e.encoding = static_cast<UpdateEncoding>(enc);
    std::uint64_t data_len = 0;
    if (!c.digest(e.base_sha256) || !c.u64(e.result_length) || !c.digest(e.result_sha256) ||
        !c.u64(data_len)) {
      return bad(at + "truncated");
    }
    if (e.encoding != UpdateEncoding::kZstdDelta && !is_zero(e.base_sha256)) {
      return bad(at + "a base hash on a file compressed alone");
    }
    if (data_len == 0) return bad(at + "empty data");
    ByteView data;
    if (data_len > c.left() || !c.take(static_cast<std::size_t>(data_len), data)) {
      return bad(at + "truncated data (" + std::to_string(data_len) + " bytes declared)");
    }
    e.data.assign(data.begin(), data.end());
    f.entries.push_back(std::move(e));
  }
  if (c.left() != 0) return bad(std::to_string(c.left()) + " bytes after the last entry");
  return f;
}

}  // namespace

Result<UpdateFile> parse_update_file(ByteView bytes, std::uint64_t max_entries) {
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
  if (entry.encoding == UpdateEncoding::kZstdDelta) {
    if (!crypto::digest_equal(crypto::sha256(base), entry.base_sha256)) {
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
  if (!crypto::digest_equal(crypto::sha256(*out), entry.result_sha256)) {
    return Status::Corruption(what + " does not match its SHA-256");
  }
  return out;
}

Result<Bytes> rebuild_entry(const UpdateEntry& entry, ByteView base, std::uint64_t max_length) {
  Decompressor decompressor;
  return rebuild_entry(entry, base, max_length, decompressor);
}

}  // namespace outpost::packaging
