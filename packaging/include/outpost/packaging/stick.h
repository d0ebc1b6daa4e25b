// A pack on a USB stick (docs/usb.md, "What is on the stick"): the
// layout of the folder an export writes, the small index written last, the rules for names
// that FAT32, exFAT and Windows accept, and a writer that splits a pack into volumes.
//
//   <stick>/outpost-pack/                one top-level folder, its name says what it is
//     README.txt                         plain words: what this is, for whom, how to import
//     index-<repository id>.json         written last: the volumes of one repository's pack
//     <blake2b hex>.pack                 volumes: each a complete pack (pack.h), < 4 GiB
//
// Every volume is a pack of its own (magic, records, trailer): a missing or damaged volume
// only loses the records it holds, and a volume's name is its BLAKE2b-256, so volumes can be
// neither mixed up nor reordered. The index is not signed and needs not be: whatever a pack
// holds is checked against the publisher's signatures on import.
//
// Thread-safety: values and pure functions; StickWriter is a single-threaded object.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/fs.h"
#include "outpost/base/status.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/pack.h"

namespace outpost::packaging {

inline constexpr std::string_view kStickFolder = "outpost-pack";
inline constexpr std::string_view kStickReadme = "README.txt";
inline constexpr std::int64_t kStickFormat = 1;
// FAT32's largest file: 4 GiB - 1.
inline constexpr std::uint64_t kFatMaxFileBytes = 4294967295u;
// Smallest volume a writer accepts (tests use small volumes to exercise splitting).
inline constexpr std::uint64_t kMinVolumeBytes = 64u << 10;
// Bounds of what an index may list (parse refuses more).
inline constexpr std::size_t kMaxStickVolumes = 4096;
inline constexpr std::size_t kMaxStickIndexBytes = 8u << 20;
// Import looks at no more entries than this in a pack folder (a folder of a million files is
// refused, not listed to the end).
inline constexpr std::size_t kMaxStickFolderEntries = 10000;

// "index-<repo>.json" and the test for it.
std::string stick_index_name(std::string_view repo);
bool is_stick_index_name(std::string_view name);
// "<64 lowercase hex>.pack".
std::string volume_name(const crypto::Digest& id);
bool is_volume_name(std::string_view name);
// A file or folder name every stick file system takes: 1-255 bytes of printable ASCII
// without < > : " / \ | ? *, not ending in '.' or ' ', not a DOS device name (CON, PRN, AUX,
// NUL, COM1-9, LPT1-9, with or without an extension). kInvalidArgument saying which rule.
Status validate_portable_name(std::string_view name);

struct StickVolume {
  std::string name;  // volume_name(id)
  std::uint64_t size = 0;
  crypto::Digest id{};
};

// A bundle version the pack carries (`from`: the version the export assumed the target holds,
// 0 for the whole content) and its bytes in the pack.
struct StickBundle {
  std::string name;
  std::uint64_t version = 0;
  std::uint64_t from = 0;
  std::uint64_t bytes = 0;
};

struct StickIndex {
  std::string repo;          // repository id (as subscriptions name it)
  std::int64_t created = 0;  // seconds since the epoch (the exporter's clock)
  std::string made_by;       // free text: the exporting node, for people
  std::string made_for;      // free text: "everything" or what the have-file said
  std::int64_t timestamp_version = 0;
  std::int64_t snapshot_version = 0;
  std::vector<StickVolume> volumes;
  std::vector<StickBundle> bundles;
  std::vector<std::string> left_out;  // one line each: what the export left out and why

  // Canonical JSON.
  Bytes encode() const;
  // kCorruption naming the field on anything malformed: size over kMaxStickIndexBytes, wrong
  // format, volume names not matching their id, duplicate volumes, more than kMaxStickVolumes.
  static Result<StickIndex> parse(ByteView bytes);
};

// Writes records into volumes of at most volume_bytes each (PackFileWriter: temp name,
// fsync, rename to <id>.pack), starting a new volume when the next record would not fit.
class StickWriter {
 public:
  // dir must exist. volume_bytes in [kMinVolumeBytes, kFatMaxFileBytes] (kInvalidArgument).
  static Result<std::unique_ptr<StickWriter>> create(const std::string& dir, FileSystem& fs,
                                                     std::uint64_t volume_bytes);
  Status add_file(RecordType type, std::string_view name, ByteView bytes);
  Status add_chunk(const crypto::Digest& id, std::uint64_t raw_length, ByteView frame);
  // Commits the last volume; the volumes in the order written.
  Result<std::vector<StickVolume>> finish();
  // Bytes written so far (every volume).
  std::uint64_t bytes_written() const {
    return done_ + (current_ ? current_->writer().bytes_written() : 0);
  }

  // The bytes one record takes in a pack.
  static std::uint64_t record_bytes(std::size_t name_length, std::uint64_t stored_length) {
    return kRecordHeaderBytes + name_length + stored_length;
  }

 private:
  StickWriter(std::string dir, FileSystem& fs, std::uint64_t volume_bytes)
      : dir_(std::move(dir)), fs_(fs), volume_bytes_(volume_bytes) {}
  Status make_room(std::uint64_t record);
  Status close_volume();
  std::string dir_;
  FileSystem& fs_;
  std::uint64_t volume_bytes_;
  std::unique_ptr<PackFileWriter> current_;
  std::vector<StickVolume> volumes_;
  std::uint64_t done_ = 0;
};

}  // namespace outpost::packaging
