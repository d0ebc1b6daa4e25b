// Metadata update files (docs/format-repository.md, "Metadata update files"):
// metadata/updates/N.from-M.upd carries, for a node holding snapshot M, every metadata file it
// needs to reach snapshot N (the snapshot, targets.json and delegated roles that changed, and
// the manifests of the bundles that changed), each zstd-compressed on its own or against the
// file the node already holds, and the patches of those bundles. One request after the
// timestamp instead of one per file.
//
// Two layouts. The compact one (OPU2) is what a publisher writes for N.from-M.upd:
//   magic "OPU2"
//   u32le latest_root_version        the newest N.root.json when the file was written
//   u32le entry_count
//   u32le table_length, table        one zstd frame (its size declared) holding entry_count
//                                    records: u16le name_length, name, u8 encoding (0-3,
//                                    3: in the group frame before it, see kFollows),
//                                    u8[4] base_tag (encoding 1: the first 4 bytes of the
//                                    base's SHA-256; else zero), u16le base_name_length,
//                                    base_name (encoding 1, may be empty: see UpdateEntry),
//                                    u64le result_length, u64le data_length
//   the entries' data, in table order
// The full one (OPU1) is the inside of a library file and of a USB pack's update file:
//   magic "OPU1", u32le latest_root_version, u32le entry_count, then per entry:
//     u16le name_length, name        "12.snapshot.json", "4.targets.json", "7.un.ga.json",
//                                    "targets/un/ga/X/<sha256>.manifest.json"
//     u8    encoding                 0: one zstd frame of the file; 1: one zstd frame made
//                                    with the base file as a raw prefix (patch-from);
//                                    2: the file itself
//     u8[32] base_sha256             encoding 1: SHA-256 of the base; else all zero
//     u64le result_length            bytes of the rebuilt file
//     u8[32] result_sha256           SHA-256 of the rebuilt file; all zero: not given
//     u64le data_length, data
//
// The file is not signed: every rebuilt file is verified by the node as if fetched alone
// (signatures, the timestamp's hash of the snapshot, the target hashes of manifests, the
// BLAKE2b of patches). The compact layout gives no result hash (the frames carry zstd's
// checksum) and 4 bytes of the base's: its headers were a third of a small update's bytes.
// Thread-safety: pure functions; the Compressor/Decompressor passed in are used by one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/layout.h"

namespace outpost::packaging {

inline constexpr char kUpdateMagic[4] = {'O', 'P', 'U', '1'};
inline constexpr char kCompactUpdateMagic[4] = {'O', 'P', 'U', '2'};
inline constexpr std::size_t kUpdateHeaderBytes = 4 + 4 + 4;
// Bytes of the base's SHA-256 that a compact update file gives.
inline constexpr std::size_t kBaseTagBytes = 4;
// The largest entry table a compact update file may declare (decompressed).
inline constexpr std::uint64_t kMaxUpdateTableBytes = 16u << 20;
// Fixed bytes of an entry besides its name and data.
inline constexpr std::size_t kUpdateEntryFixedBytes = 2 + 1 + 32 + 8 + 32 + 8;
inline constexpr std::size_t kMaxUpdateName = 1024;
// The largest update file (not library file) a node reads: it has no signed length, so this
// bounds what a hostile mirror can make a node read. The publisher writes none larger (a node
// would stop reading it at this length); a larger update is fetched file by file.
inline constexpr std::uint64_t kMaxUpdateFileBytes = 8u << 20;
// zstd level of update file entries: they are written once and fetched by every node.
inline constexpr int kUpdateLevel = 19;

// kStored (2): the data is the file itself: inside a library file (N.from-0.upd), which is
// compressed as a whole, and for the patches an update file carries (compressed already).
// kFollows (3, compact layout only): the file continues the zstd frame of the entries before
// it. An entry of encoding 0 followed by entries of encoding 3 (no data, no base of their own)
// is a group: its frame holds its own file and theirs, in order. Many small manifests
// compress together far better than each alone (rebuild_group).
enum class UpdateEncoding : std::uint8_t { kZstd = 0, kZstdDelta = 1, kStored = 2, kFollows = 3 };
// The most a group's frame may hold, all its files together.
inline constexpr std::uint64_t kMaxUpdateGroupBytes = 64u << 20;

struct UpdateEntry {
  std::string name;  // a metadata file name or a manifest's repository path
  UpdateEncoding encoding = UpdateEncoding::kZstd;
  // kZstdDelta: SHA-256 of the base file, or only its first kBaseTagBytes bytes (the rest
  // zero) when base_tag_only (read from a compact file); otherwise zero.
  crypto::Digest base_sha256{};
  bool base_tag_only = false;
  // kZstdDelta, compact layout only: the entry whose file at M is the base, when it is not
  // the file this entry's own name implies ("manifest/<other bundle>" for a new bundle's
  // manifest, compressed against a sibling's); empty otherwise.
  std::string base_name;
  std::uint64_t result_length = 0;
  crypto::Digest result_sha256{};  // all zero: not given
  Bytes data;                      // one zstd frame

  friend bool operator==(const UpdateEntry&, const UpdateEntry&) = default;
};

struct UpdateFile {
  std::uint32_t latest_root = 0;
  std::vector<UpdateEntry> entries;

  friend bool operator==(const UpdateFile&, const UpdateFile&) = default;
};

// update_file_name() ("N.from-M.upd") and update_file_path(): layout.h.

// An entry holding `file` as it is (encoding 2), for a library file. Its result_sha256 is all
// zero (not given: a library file is read by a node that checks every file it rebuilds
// against signed data, and 32 incompressible bytes per entry would cost more than the
// metadata), and rebuild_entry() checks only its length.
Result<UpdateEntry> make_stored_entry(std::string name, ByteView file);

// A thin manifest (docs/format-repository.md, "Thin manifests"): a changed bundle's manifest
// in an update file M -> N whose patch entry from the version the node held at M has its
// "from_root" and "from_manifest" (that version's content root and manifest SHA-256) and, when
// the update file carries that patch, its "blake2b" and "path" written as "". Those are about
// 100 bytes per changed bundle that do not compress, and the node knows them: it fills them
// in and checks the result against the SHA-256 its role signs, as for any manifest.
struct HeldVersion {
  crypto::Digest content_root{};
  crypto::Digest manifest_sha256{};
};
// When the file carries a release patch (release_patch.h), the node rebuilds the bundle's new
// content from it before it reads the manifest, and the manifest's own "root" (the content
// root at N) is left out too: `root`.
// The thin form of `manifest`; nullopt when the values do not appear exactly once each or
// filling the thin form in would not give `manifest` back (then it is sent whole).
std::optional<Bytes> thin_manifest(ByteView manifest, const HeldVersion& held,
                                   const std::optional<crypto::Digest>& patch,
                                   const std::optional<crypto::Digest>& root = std::nullopt);
// `thin` with the blanks filled in; nullopt unless each blank appears exactly once (with a
// patch: all four; without: "from_root" and "from_manifest" only; "root" too with a root).
std::optional<Bytes> fill_thin_manifest(ByteView thin, const HeldVersion& held,
                                        const std::optional<crypto::Digest>& patch,
                                        const std::optional<crypto::Digest>& root = std::nullopt);

// A rootless manifest: a bundle's manifest in a library file, with its content root written
// as "root":"". The library carries the bundle's whole content (library_content_name), whose
// BLAKE2b is that root: the node computes it and fills it in, then checks the manifest against
// the SHA-256 its role signs, as for any manifest. 32 bytes per bundle that do not compress
// (825 small bundles: 33 KB of a 370 KB library file). nullopt when "root" does not appear
// exactly once with that value, or filling in would not give `manifest` back.
std::optional<Bytes> rootless_manifest(ByteView manifest, const crypto::Digest& root);
// `rootless` with the root filled in; nullopt unless "root":"" appears exactly once.
std::optional<Bytes> fill_rootless_manifest(ByteView rootless, const crypto::Digest& root);

// Whether `sha256` is the SHA-256 of the base the entry names (kZstdDelta).
bool base_matches(const UpdateEntry& entry, const crypto::Digest& sha256);

// Bytes an entry takes at most in an encoded update file (either layout).
inline std::size_t update_entry_bytes(const UpdateEntry& e) {
  return kUpdateEntryFixedBytes + e.name.size() + e.data.size();
}

// A library file begins with its head, a zstd skippable frame (decoders pass over it) that
// says where its metadata frame ends, so that a node away longer than the update ladder can
// read the snapshot and roles alone first and the rest only if it takes the library
// (docs/format-repository.md, "Library files"):
//   u32le 0x184D2A5B   skippable frame magic     u32le 24   its payload size
//   "OPLH"             u32le 1 (head version)
//   u64le metadata_frame_bytes                    u64le file_bytes (the head included)
inline constexpr std::uint32_t kLibraryHeadMagic = 0x184D2A5B;
inline constexpr char kLibraryHeadTag[4] = {'O', 'P', 'L', 'H'};
inline constexpr std::size_t kLibraryHeadBytes = 32;
struct LibraryHead {
  std::uint64_t metadata_frame_bytes = 0;  // the zstd frame right after the head
  std::uint64_t file_bytes = 0;
};
Bytes encode_library_head(const LibraryHead& head);
// nullopt unless `bytes` begin with a head whose metadata frame fits in its file.
std::optional<LibraryHead> parse_library_head(ByteView bytes);

// A library file's zstd frames (skippable frames passed over) and the size each declares, checked
// (at most max_raw in all) before anything is decompressed; kCorruption otherwise.
struct LibraryFrame {
  ByteView frame;
  std::uint64_t raw_size = 0;
};
Result<std::vector<LibraryFrame>> library_frames(ByteView bytes, std::uint64_t max_raw);

// A library file (docs/format-repository.md, "Library files"): zstd frames (content size in
// each header) whose contents, joined, are an update file. Decompresses at most max_raw bytes
// and parses them; kCorruption on anything else.
Result<UpdateFile> parse_library_file(ByteView bytes, std::uint64_t max_raw,
                                      std::uint64_t max_entries);

// One entry holding `file` under `name`: compressed against `base` (encoding 1) when given,
// else alone (encoding 0). kInvalidArgument for a name that is not a valid file path
// (validate_file_path) or longer than kMaxUpdateName; kInternal when zstd fails.
Result<UpdateEntry> make_update_entry(std::string name, ByteView file, std::optional<ByteView> base,
                                      Compressor& compressor);

// The binary form, full layout (OPU1). kInvalidArgument when there are more than 2^32-1
// entries, a name is invalid or repeated, or an entry has a base_name.
Result<Bytes> encode_update_file(const UpdateFile& file);
// The compact layout (OPU2): result hashes left out, the base hash cut to its tag, the entry
// table compressed at `compressor`'s level. kInvalidArgument as encode_update_file (base names
// allowed on encoding 1, valid paths); kInternal when zstd fails.
Result<Bytes> encode_compact_update_file(const UpdateFile& file, Compressor& compressor);

// Parses and validates either layout, decompressing nothing but a compact file's entry table
// (declared size at most kMaxUpdateTableBytes): every length is checked against the bytes left
// before it is used. kCorruption ("update file: ...") on a wrong magic, more than max_entries
// entries, a truncated entry or table, an invalid or repeated name, an unknown encoding, a
// non-zero base for encodings 0 and 2, an empty data field, or bytes after the last entry.
Result<UpdateFile> parse_update_file(ByteView bytes, std::uint64_t max_entries);

// The start of a full-layout update file, as the metadata frame of a library file holds it:
// the header and the entries that `bytes` hold, which must end where an entry ends (the header
// counts the entries of the whole file). Errors as parse_update_file.
Result<UpdateFile> parse_update_file_head(ByteView bytes, std::uint64_t max_entries);

// Rebuilds the file of one entry: `base` is the node's copy of the base file (encoding 1;
// ignored otherwise). Never produces more than result_length bytes. kCorruption when
// result_length exceeds max_length, when the base's SHA-256 does not match (base_matches), when
// the data does not decompress to exactly result_length bytes (bombs and zstd checksums
// included), or when the result's SHA-256 differs from a given one.
// kCorruption for a kFollows entry: its file is in its group's frame (rebuild_group).
Result<Bytes> rebuild_entry(const UpdateEntry& entry, ByteView base, std::uint64_t max_length);
Result<Bytes> rebuild_entry(const UpdateEntry& entry, ByteView base, std::uint64_t max_length,
                            Decompressor& decompressor);

// Whether entry `at` belongs to a group: it is kFollows, or kZstd with a kFollows after it.
bool in_group(const UpdateFile& file, std::size_t at);
// The files of the group entry `at` belongs to, from its first entry (`first`) on, rebuilt from
// the first entry's frame. kCorruption when a file declares more than max_length bytes, the
// group more than kMaxUpdateGroupBytes, the group has no first entry of encoding 0, or the
// frame does not decompress to exactly their sum (checksum included).
struct UpdateGroup {
  std::size_t first = 0;
  std::vector<Bytes> files;
};
Result<UpdateGroup> rebuild_group(const UpdateFile& file, std::size_t at, std::uint64_t max_length,
                                  Decompressor& decompressor);

}  // namespace outpost::packaging
