// A have-file (docs/usb.md): what a node holds, small enough to send by e-mail or print as a
// QR code (under 4 KB for 1,000 bundles with names as publishers give them). The exporting
// node reads it to write onto a stick only what the node lacks.
//
//   "OUTHAVE1" | u32le body length | zstd frame of the body | BLAKE2b-256 of all before it
//   body: varint created, varint repositories, per repository: string id, varint root,
//         varint timestamp, varint snapshot, varint bundles, per bundle (sorted by name):
//         varint shared prefix with the previous name, string rest of the name, varint
//         versions, versions ascending as differences (the first from 0)
//   (string: varint length, bytes; varint: LEB128)
//
// Nothing in it is trusted: it only decides what an export leaves out. Thread-safety: values.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"

namespace outpost::packaging {

inline constexpr std::size_t kMaxHaveFileBytes = 4u << 20;
inline constexpr std::size_t kMaxHaveBodyBytes = 64u << 20;
inline constexpr std::size_t kMaxHaveVersions = 4096;

struct HaveRepo {
  std::string id;
  std::int64_t root = 0;       // version of the trusted root
  std::int64_t timestamp = 0;  // of the trusted timestamp (0: none)
  std::int64_t snapshot = 0;
  std::map<std::string, std::vector<std::uint64_t>> bundles;  // versions held, ascending

  friend bool operator==(const HaveRepo&, const HaveRepo&) = default;
};

struct HaveFile {
  std::int64_t created = 0;
  std::vector<HaveRepo> repos;

  Bytes encode() const;
  // kCorruption ("the have-file is damaged: ...; make a new one with 'outpost have'") on a
  // bad magic or checksum, a body that does not decode exactly, an invalid bundle name, or
  // versions not strictly ascending.
  static Result<HaveFile> parse(ByteView bytes);

  friend bool operator==(const HaveFile&, const HaveFile&) = default;
};

}  // namespace outpost::packaging
