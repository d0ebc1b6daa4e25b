// Packs (docs/format-repository.md, "Pack"): one self-describing, streamable file of records
// (chunks, metadata files, targets, indexes, patches) ending in a trailer with the BLAKE2b-256
// of everything before it. Repositories keep chunks in packs; a USB transfer is a pack too.
//
//   magic "outpack1"
//   record: u8 type, u8[32] id, u64 raw_length, u64 stored_length, u16 name_length, name,
//           stored bytes (chunk: one zstd frame; others: the raw bytes)
//   trailer: u8 0xFF, u8[32] BLAKE2b-256 of every byte before it, u64 record count
//
// A pack's id (its file name in a repository, and what chunk indexes refer to) is the
// BLAKE2b-256 of the whole file, trailer included.
//
// Thread-safety: PackWriter, PackFileWriter and PackReader are single-threaded objects.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "outpost/base/bytes.h"
#include "outpost/base/fs.h"
#include "outpost/base/status.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/chunk_index.h"
#include "outpost/packaging/chunker.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/layout.h"

namespace outpost::packaging {

enum class RecordType : std::uint8_t {
  kChunk = 1,     // id = BLAKE2b-256 of the raw bytes; stored = one zstd frame; no name
  kMetadata = 2,  // a TUF metadata file; name = file name ("3.snapshot.json")
  kTarget = 3,    // a target file (manifest); name = target path ("un/ga/X/manifest.json")
  kIndex = 4,     // a chunk index; name = its repository path ("objects/ab/....index")
  kPatch = 5,     // a patch; name = its repository path
};
const char* record_type_name(RecordType type);

inline constexpr char kPackMagic[8] = {'o', 'u', 't', 'p', 'a', 'c', 'k', '1'};
inline constexpr std::uint8_t kTrailerType = 0xFF;
inline constexpr std::size_t kRecordHeaderBytes = 1 + 32 + 8 + 8 + 2;
inline constexpr std::size_t kTrailerBytes = 1 + 32 + 8;
inline constexpr std::size_t kMaxRecordName = 1024;

// pack_object_path() ("packs/<hex id>.pack"): layout.h.

// Describes one record; `offset` is where its stored bytes start in the pack.
struct RecordInfo {
  RecordType type = RecordType::kChunk;
  crypto::Digest id{};
  std::uint64_t raw_length = 0;
  std::uint64_t stored_length = 0;
  std::string name;
  std::uint64_t offset = 0;
};

// Writes a pack to a sink (a file, a socket, a USB stick). Nothing is buffered here: each
// add_*() hands its bytes to the sink before returning.
class PackWriter {
 public:
  using Sink = std::function<Status(ByteView bytes)>;
  explicit PackWriter(Sink sink);

  // A chunk record; `frame` is its zstd frame (Compressor::compress of the raw bytes, whose
  // BLAKE2b-256 is `id`). Returns the offset of the frame in the pack. kInvalidArgument when
  // raw_length is 0 or frame is empty; sink errors as they come; kFailedPrecondition after
  // finish().
  Result<std::uint64_t> add_chunk(const crypto::Digest& id, std::uint64_t raw_length,
                                  ByteView frame);
  // A non-chunk record holding `bytes` as they are (id = BLAKE2b-256 of bytes). `name` must be
  // a valid file path (validate_file_path) for kMetadata/kTarget, and valid or empty for
  // kIndex/kPatch: kInvalidArgument otherwise. Returns the offset of the bytes in the pack.
  Result<std::uint64_t> add_file(RecordType type, std::string_view name, ByteView bytes);
  // Writes the trailer and returns the pack id. Further calls fail (kFailedPrecondition).
  Result<crypto::Digest> finish();

  std::uint64_t bytes_written() const { return offset_; }
  std::uint64_t record_count() const { return records_; }

 private:
  Status emit(ByteView bytes);
  Result<std::uint64_t> add_record(RecordType type, const crypto::Digest& id,
                                   std::uint64_t raw_length, std::string_view name,
                                   ByteView stored);
  Sink sink_;
  crypto::Blake2b hash_;
  std::uint64_t offset_ = 0;
  std::uint64_t records_ = 0;
  bool finished_ = false;
  bool failed_ = false;
};

struct PackFileInfo {
  crypto::Digest id{};
  std::string path;        // DIR/<hex id>.pack
  std::uint64_t size = 0;  // bytes
};

// A PackWriter into a file: a temp file in `dir` that becomes DIR/<hex id>.pack on commit(),
// written through a FileSystem (FileWriter: temp file, fsync, rename, fsync of DIR), so a
// full disk, an I/O error, a power cut or a pulled stick leaves either no pack under a pack
// name or a complete one, never part of one. The FileSystem must outlive the writer.
class PackFileWriter {
 public:
  // Creates the temp file DIR/.pending.pack.tmp-PID-N (DIR must exist). Errors as
  // errno_status() maps them: kNotFound (no DIR), kFailedPrecondition (permissions,
  // read-only), kResourceExhausted (disk full), kUnavailable (EIO, device removed).
  static Result<std::unique_ptr<PackFileWriter>> create(const std::string& dir,
                                                        FileSystem& fs = real_fs());
  ~PackFileWriter();  // removes the temp file unless committed
  PackFileWriter(const PackFileWriter&) = delete;
  PackFileWriter& operator=(const PackFileWriter&) = delete;

  // Records go through this writer, buffered (256 KiB) on their way to the file. A write
  // error fails the writer for good (and removes the temp file): later add_*() and commit()
  // return kFailedPrecondition or the error.
  PackWriter& writer() { return writer_; }
  // Trailer, flush, fsync, rename to DIR/<hex id>.pack, fsync DIR. If a pack with that id is
  // already there it is replaced by the same bytes (same id, same content by construction).
  // kResourceExhausted on ENOSPC, kUnavailable on EIO; the temp file is removed on any error
  // (except a failed fsync of DIR after the rename: the pack is then in place, whole, but may
  // not survive a power cut, and the error is returned all the same).
  Result<PackFileInfo> commit();

 private:
  PackFileWriter(std::string dir, std::unique_ptr<FileWriter> file);
  Status write_buffered(ByteView bytes);
  Status flush();
  std::string dir_;
  std::unique_ptr<FileWriter> file_;
  Bytes buffer_;
  PackWriter writer_;
  bool committed_ = false;
};

struct PackReaderOptions {
  // Upper bound on the stored bytes of one non-chunk record (memory bound).
  std::uint64_t max_record_bytes = 64u << 20;
  // Upper bound on a chunk's raw_length.
  std::uint32_t max_chunk = 16u << 20;
  // Decompress each chunk (bounded by its raw_length) and check its BLAKE2b-256 id; the raw
  // bytes are then returned in PackRecord::raw. Non-chunk records are always checked.
  bool verify_chunks = true;
  // Where open_file() reads from; must outlive the reader.
  FileSystem* fs = &real_fs();
};

struct PackRecord {
  RecordInfo info;
  Bytes stored;  // the stored bytes (chunk: the zstd frame)
  Bytes raw;     // chunk records with verify_chunks: the decompressed bytes; else empty
};

// Reads a pack record by record from a stream, with bounded memory, validating each record
// as it goes and the trailer at the end. Every problem is kCorruption and names the pack:
//   "pack P is truncated at byte N" / "pack P is truncated: no trailer after K records"
//   "pack P is damaged at byte N: <what>"  (bad magic, unknown type, oversized or invalid
//   record, chunk not matching its id, bytes after the trailer, trailer checksum mismatch)
// Read errors of the stream are passed through.
class PackReader {
 public:
  PackReader(ReadFn read, std::string pack_name, PackReaderOptions options = {});
  ~PackReader();
  PackReader(PackReader&&) noexcept;
  PackReader& operator=(PackReader&&) = delete;
  PackReader(const PackReader&) = delete;
  PackReader& operator=(const PackReader&) = delete;

  // A reader over a file it owns, opened through options.fs. kNotFound when missing; read
  // errors as errno_status() maps them (kUnavailable for EIO or a removed stick).
  static Result<std::unique_ptr<PackReader>> open_file(const std::string& path,
                                                       PackReaderOptions options = {});
  // A reader over a memory buffer; `data` must outlive the reader.
  static std::unique_ptr<PackReader> from_memory(ByteView data, std::string pack_name,
                                                 PackReaderOptions options = {});

  // The next record, or nullopt once a valid trailer has ended the pack. After an error or
  // nullopt, further calls return the same outcome.
  Result<std::optional<PackRecord>> next();
  // Calls fn for every record until the end (or fn's first error, returned as is).
  Status for_each(const std::function<Status(const PackRecord&)>& fn);

  // BLAKE2b-256 of the whole pack; valid once next() has returned nullopt.
  const crypto::Digest& pack_id() const { return pack_id_; }
  std::uint64_t record_count() const { return records_; }

 private:
  Status fill(std::size_t need);
  Result<bool> read_exact(std::uint8_t* dst, std::size_t n);  // false: clean EOF before byte 1
  Status truncated() const;
  Status damaged(std::uint64_t at, const std::string& what) const;
  Result<std::optional<PackRecord>> read_next();

  ReadFn read_;
  std::string name_;
  PackReaderOptions options_;
  std::unique_ptr<FileReader> owned_file_;
  Bytes buf_;
  std::size_t buf_pos_ = 0;
  std::size_t buf_len_ = 0;
  bool eof_ = false;
  std::uint64_t offset_ = 0;  // bytes consumed from the pack
  std::uint64_t records_ = 0;
  bool started_ = false;
  bool done_ = false;
  Status error_;
  crypto::Blake2b hash_;
  crypto::Digest pack_id_{};
  Decompressor decompressor_;
};

// Reads [offset, offset + length) of a pack file (the stored bytes of one record) through fs.
// kNotFound when the file is missing; kCorruption when it is shorter; kInvalidArgument for
// a length over 2 GiB.
Result<Bytes> read_pack_range(const std::string& pack_path, std::uint64_t offset,
                              std::uint64_t length, FileSystem& fs = real_fs());

// Reads one chunk described by an index entry from the pack file at pack_path, decompresses it
// (never past entry.raw_length) and checks its id. kCorruption when it does not match.
Result<Bytes> read_chunk(const std::string& pack_path, const ChunkEntry& entry,
                         Decompressor& decompressor, FileSystem& fs = real_fs());

}  // namespace outpost::packaging
