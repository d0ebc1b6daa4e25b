// The content root of a bundle version (docs/format-repository.md, "Content root"):
// BLAKE2b-256 over
//   "outpost-content-v1\n"
//   for each file in table order: u64le(len(path)) path u32le(mode) u64le(size) <bytes>
// It is the one hash the publisher signs over the content; a node accepts a rebuilt version
// only when its own root matches. Thread-safety: one thread per object.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/crypto/hash.h"

namespace outpost::packaging {

class ContentHasher {
 public:
  ContentHasher();

  // Starts the next file. Files must come in table order (bytewise increasing paths; not
  // checked here, Manifest::parse checks the table). kCorruption when the previous file got
  // fewer bytes than declared; kFailedPrecondition after finish().
  Status add_file(std::string_view path, std::uint32_t mode, std::uint64_t size);
  // Bytes of the current file, in order, in pieces of any size. kCorruption when they exceed
  // the current file's declared size (or no file was started).
  Status update(ByteView bytes);
  // The root. kCorruption when the last file got fewer bytes than declared. The object must
  // not be used afterwards (kFailedPrecondition).
  Result<crypto::Digest> finish();

  std::uint64_t files() const { return files_; }
  std::uint64_t total_size() const { return total_; }

 private:
  Status check_complete() const;
  crypto::Blake2b hasher_;
  std::string path_;
  std::uint64_t declared_ = 0;
  std::uint64_t received_ = 0;
  std::uint64_t files_ = 0;
  std::uint64_t total_ = 0;
  bool in_file_ = false;
  bool finished_ = false;
};

}  // namespace outpost::packaging
