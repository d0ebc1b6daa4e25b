// A pack on a stick as a Source (docs/usb.md): the repository files an export carried
// (metadata, manifests, chunk indexes, patches) under their repository paths, and its chunks
// served where the repository's chunk indexes say they live (packs/<id>.pack at an offset),
// so a node imports a stick with exactly the plan, transfers and checks of a sync. Bytes
// between the chunks a sync asks for are not carried and read as zeros; a sync never uses
// them (it checks every chunk it takes against its id).
//
// Opening reads the index and every volume once, checking each record against its
// BLAKE2b-256 and each volume against its trailer and name; a volume that is missing or
// damaged is listed in problems() and only the records it lost are missing. Reads go
// through a FileSystem (a pulled stick is kUnavailable). Nothing here is trusted: the
// importing node verifies everything against the publisher's signatures.
// Thread-safety: one thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "outpost/base/fs.h"
#include "outpost/packaging/pack.h"
#include "outpost/packaging/stick.h"
#include "outpost/sync/source.h"

namespace outpost::sync {

// The stick indexes at `location`: an index file itself, a folder holding index files (the
// outpost-pack folder), or a folder holding an outpost-pack folder (the stick). kNotFound
// ("no outpost pack at L ...") when there is none; kFailedPrecondition when the folder has
// more than kMaxStickFolderEntries entries or an index is not a regular file.
Result<std::vector<std::string>> find_stick_indexes(const std::string& location,
                                                    FileSystem& fs = real_fs());
// Whether `location` looks like a stick or pack folder (for open_source).
bool looks_like_stick(const std::string& location);

class PackSource final : public Source {
 public:
  // Opens the pack an index file describes and scans its volumes.
  static Result<std::unique_ptr<PackSource>> open(const std::string& index_path,
                                                  FileSystem& fs = real_fs());
  // The one pack at `location` (find_stick_indexes); kInvalidArgument naming the
  // repositories when there are several.
  static Result<std::unique_ptr<PackSource>> open_location(const std::string& location,
                                                           FileSystem& fs = real_fs());

  const packaging::StickIndex& index() const { return index_; }
  const std::string& index_path() const { return index_path_; }
  // One line each: a volume missing, damaged or not matching its name, and what was lost.
  const std::vector<std::string>& problems() const { return problems_; }
  bool has_file(const std::string& path) const { return files_.count(path) != 0; }
  std::uint64_t chunk_count() const { return chunks_.size(); }
  // The stored (zstd) bytes of a chunk the pack carries, unchecked (the caller checks them
  // against the id); kNotFound when it carries none.
  Result<Bytes> chunk_frame(const crypto::Digest& id);

  Result<Bytes> read_file(const std::string& path, std::uint64_t max_length) override;
  Result<std::vector<Bytes>> read_ranges(const std::string& path,
                                         const std::vector<ByteRange>& ranges) override;
  std::string describe() const override { return "pack at " + index_path_; }
  TransferStats stats() const override { return stats_; }
  bool metered() const override { return false; }
  void set_guard(TransferGuard guard) override { guard_ = std::move(guard); }

 private:
  struct Loc {
    std::size_t volume = 0;
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    crypto::Digest id{};
  };
  PackSource(FileSystem& fs, std::string index_path)
      : fs_(fs), index_path_(std::move(index_path)) {}
  Status scan();
  Status map_indexes();
  Result<Bytes> read_loc(const Loc& loc);
  Status count(std::uint64_t n);

  FileSystem& fs_;
  // One open reader per volume, opened on first use (not one open per chunk read); dropped
  // after a failed read, so the next read opens the volume again.
  std::vector<std::unique_ptr<FileReader>> readers_;
  std::string index_path_;
  std::string dir_;
  packaging::StickIndex index_;
  std::vector<std::string> volume_paths_;
  std::vector<std::string> problems_;
  std::map<std::string, Loc> files_;
  // Every chunk record, sorted by id, the first of equal ids kept (find_chunk): a 1 GB pack
  // carries ~65,000 chunks, and a map's nodes doubled what they cost.
  std::vector<Loc> chunks_;
  const Loc* find_chunk(const crypto::Digest& id) const;
  bool mapped_ = false;
  // (repository pack id, offset) -> (chunk id, stored length), from the chunk indexes carried.
  std::map<std::pair<crypto::Digest, std::uint64_t>, std::pair<crypto::Digest, std::uint64_t>>
      layout_;
  TransferStats stats_;
  TransferGuard guard_;
};

}  // namespace outpost::sync
