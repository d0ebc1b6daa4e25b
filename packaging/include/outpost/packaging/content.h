// The content stream of a bundle version (docs/format-repository.md, section "Content
// stream and content root"):
//   "outpost-content-v1\n"
//   for each file in table order: u64le(len(path)) path u32le(mode) u64le(size) <bytes>
// Its BLAKE2b-256 is the content root, the one hash the publisher signs over the content; a
// node accepts a rebuilt version only when its own root matches. Patches go from one version's
// content stream to another's, so a node rebuilds the new stream, hashes it, and splits it
// into files (ContentSplitter).
// Thread-safety: one thread per object; the free functions are pure.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/manifest.h"

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

inline constexpr std::string_view kContentStreamMagic = "outpost-content-v1\n";

// Bytes of the content stream of `manifest`'s files (magic, headers and file bytes). Assumes
// a valid manifest (sizes that do not overflow, as Manifest::parse checks).
std::uint64_t content_stream_size(const Manifest& manifest);

// The header that precedes file `file` in the stream: u64le(len(path)) path u32le(mode)
// u64le(size).
Bytes content_file_header(const FileEntry& file);

// Writes the content stream of `manifest` to `sink` in pieces: the magic, then for each file
// of the table its header and the bytes `read_file` hands to its own sink (in pieces of any
// size). kCorruption when read_file gives more or fewer bytes than the table declares for
// the file; read_file's and sink's errors are returned as they are.
using ContentSink = std::function<Status(ByteView bytes)>;
using ContentFileReader =
    std::function<Status(std::size_t index, const FileEntry& file, const ContentSink& sink)>;
Status write_content_stream(const Manifest& manifest, const ContentFileReader& read_file,
                            const ContentSink& sink);

// Turns a content stream back into files: feed it the stream of `manifest` in pieces of any
// size; it checks every byte of the magic and of each file header against the manifest's
// table and hands the file bytes to `on_bytes` in order. `on_bytes` is called once with empty
// bytes at offset 0 when a file's header is complete (so empty files are seen too), then
// with the file's bytes at increasing offsets. The manifest must outlive the splitter.
// Errors: kCorruption "content stream of B: ..." when a header byte differs from the
// manifest (wrong path, mode or size), when bytes come after the last file, or (finish())
// when the stream ended early; on_bytes' errors are returned as they are. After an error
// every call returns it again.
class ContentSplitter {
 public:
  using OnBytes = std::function<Status(std::size_t index, const FileEntry& file,
                                       std::uint64_t offset, ByteView bytes)>;
  ContentSplitter(const Manifest& manifest, OnBytes on_bytes);

  Status update(ByteView bytes);
  // kCorruption when fewer bytes than content_stream_size(manifest) were given.
  Status finish();

  std::uint64_t consumed() const { return consumed_; }

 private:
  Status fail(Status s);
  Status start_header();
  const Manifest& manifest_;
  OnBytes on_bytes_;
  Bytes header_;                   // expected bytes of the current header (or the magic)
  std::size_t header_pos_ = 0;     // bytes of header_ already matched
  bool in_header_ = true;          // matching header_ (else passing file bytes)
  std::size_t file_ = 0;           // index of the current file (once the magic matched)
  bool magic_ = true;              // still matching the magic
  std::uint64_t file_offset_ = 0;  // bytes of the current file passed on
  std::uint64_t consumed_ = 0;
  bool done_ = false;  // every file complete
  Status error_;
};

}  // namespace outpost::packaging
