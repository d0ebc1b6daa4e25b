#include "outpost/packaging/pack.h"

#include <zstd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "outpost/packaging/manifest.h"

namespace outpost::packaging {
namespace {

constexpr std::size_t kReadBuffer = 64u << 10;
constexpr std::size_t kWriteBuffer = 256u << 10;

bool known_type(std::uint8_t t) { return t >= 1 && t <= 5; }

Status check_record_name(RecordType type, std::string_view name) {
  if (name.size() > kMaxRecordName) return Status::InvalidArgument("record name is too long");
  switch (type) {
    case RecordType::kChunk:
      if (!name.empty()) return Status::InvalidArgument("chunk records have no name");
      return Status::Ok();
    case RecordType::kMetadata:
    case RecordType::kTarget: return validate_file_path(name);
    case RecordType::kIndex:
    case RecordType::kPatch: return name.empty() ? Status::Ok() : validate_file_path(name);
  }
  return Status::InvalidArgument("unknown record type");
}

}  // namespace

const char* record_type_name(RecordType type) {
  switch (type) {
    case RecordType::kChunk: return "chunk";
    case RecordType::kMetadata: return "metadata";
    case RecordType::kTarget: return "target";
    case RecordType::kIndex: return "index";
    case RecordType::kPatch: return "patch";
  }
  return "unknown";
}

std::string pack_object_path(const crypto::Digest& pack_id) {
  return "packs/" + crypto::hex(pack_id) + ".pack";
}

// ---- PackWriter ------------------------------------------------------------------------------

PackWriter::PackWriter(Sink sink) : sink_(std::move(sink)) {}

Status PackWriter::emit(ByteView bytes) {
  Status s = sink_(bytes);
  if (!s.ok()) {
    failed_ = true;
    return s;
  }
  hash_.update(bytes);
  offset_ += bytes.size();
  return Status::Ok();
}

Result<std::uint64_t> PackWriter::add_record(RecordType type, const crypto::Digest& id,
                                             std::uint64_t raw_length, std::string_view name,
                                             ByteView stored) {
  if (finished_ || failed_) {
    return Status::FailedPrecondition("pack writer used after finish() or a write error");
  }
  OUTPOST_RETURN_IF_ERROR(check_record_name(type, name));
  if (offset_ == 0) {
    OUTPOST_RETURN_IF_ERROR(
        emit(ByteView(reinterpret_cast<const std::uint8_t*>(kPackMagic), sizeof kPackMagic)));
  }
  Bytes head;
  head.reserve(kRecordHeaderBytes + name.size());
  head.push_back(static_cast<std::uint8_t>(type));
  head.insert(head.end(), id.begin(), id.end());
  put_u64le(head, raw_length);
  put_u64le(head, stored.size());
  head.push_back(static_cast<std::uint8_t>(name.size() & 0xFF));
  head.push_back(static_cast<std::uint8_t>(name.size() >> 8));
  head.insert(head.end(), name.begin(), name.end());
  OUTPOST_RETURN_IF_ERROR(emit(head));
  const std::uint64_t at = offset_;
  OUTPOST_RETURN_IF_ERROR(emit(stored));
  ++records_;
  return at;
}

Result<std::uint64_t> PackWriter::add_chunk(const crypto::Digest& id, std::uint64_t raw_length,
                                            ByteView frame) {
  if (raw_length == 0 || frame.empty()) {
    return Status::InvalidArgument("a chunk record needs a non-empty chunk");
  }
  return add_record(RecordType::kChunk, id, raw_length, {}, frame);
}

Result<std::uint64_t> PackWriter::add_file(RecordType type, std::string_view name, ByteView bytes) {
  if (type == RecordType::kChunk) return Status::InvalidArgument("use add_chunk for chunks");
  return add_record(type, crypto::blake2b(bytes), bytes.size(), name, bytes);
}

Result<crypto::Digest> PackWriter::finish() {
  if (finished_ || failed_) {
    return Status::FailedPrecondition("pack writer used after finish() or a write error");
  }
  if (offset_ == 0) {
    OUTPOST_RETURN_IF_ERROR(
        emit(ByteView(reinterpret_cast<const std::uint8_t*>(kPackMagic), sizeof kPackMagic)));
  }
  crypto::Blake2b before = hash_;
  const crypto::Digest body = before.finish();
  std::array<std::uint8_t, kTrailerBytes> trailer{};
  trailer[0] = kTrailerType;
  std::memcpy(trailer.data() + 1, body.data(), body.size());
  for (int i = 0; i < 8; ++i) trailer[33 + i] = static_cast<std::uint8_t>(records_ >> (8 * i));
  OUTPOST_RETURN_IF_ERROR(emit(trailer));
  finished_ = true;
  return hash_.finish();
}

// ---- PackFileWriter --------------------------------------------------------------------------

PackFileWriter::PackFileWriter(std::string dir, std::unique_ptr<FileWriter> file)
    : dir_(std::move(dir)),
      file_(std::move(file)),
      writer_([this](ByteView b) { return write_buffered(b); }) {
  buffer_.reserve(kWriteBuffer);
}

PackFileWriter::~PackFileWriter() = default;  // file_ drops the temp file unless committed

Result<std::unique_ptr<PackFileWriter>> PackFileWriter::create(const std::string& dir,
                                                               FileSystem& fs) {
  auto file = FileWriter::open(fs, join_path(dir, "pending.pack"), {.mode = 0644});
  if (!file.ok()) return file.error().With("creating a pack in " + dir);
  return std::unique_ptr<PackFileWriter>(new PackFileWriter(dir, std::move(file).value()));
}

Status PackFileWriter::write_buffered(ByteView bytes) {
  if (buffer_.size() + bytes.size() > kWriteBuffer) {
    OUTPOST_RETURN_IF_ERROR(flush());
    if (bytes.size() >= kWriteBuffer) return file_->write(bytes);
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  return Status::Ok();
}

Status PackFileWriter::flush() {
  Status s = file_->write(buffer_);
  buffer_.clear();
  return s;
}

Result<PackFileInfo> PackFileWriter::commit() {
  if (committed_) return Status::FailedPrecondition("pack already committed");
  auto id = writer_.finish();
  if (!id.ok()) {
    file_->abort();
    return id.error();
  }
  Status s = flush();
  PackFileInfo info;
  info.id = *id;
  info.size = writer_.bytes_written();
  info.path = join_path(dir_, crypto::hex(*id) + ".pack");
  if (s.ok()) s = file_->commit_as(info.path);
  if (!s.ok()) {
    file_->abort();
    return s.With("writing pack " + info.path);
  }
  committed_ = true;
  return info;
}

// ---- PackReader ------------------------------------------------------------------------------

PackReader::PackReader(ReadFn read, std::string pack_name, PackReaderOptions options)
    : read_(std::move(read)), name_(std::move(pack_name)), options_(options), buf_(kReadBuffer) {}

PackReader::~PackReader() = default;

PackReader::PackReader(PackReader&& o) noexcept
    : read_(std::move(o.read_)),
      name_(std::move(o.name_)),
      options_(o.options_),
      owned_file_(std::move(o.owned_file_)),
      buf_(std::move(o.buf_)),
      buf_pos_(o.buf_pos_),
      buf_len_(o.buf_len_),
      eof_(o.eof_),
      offset_(o.offset_),
      records_(o.records_),
      started_(o.started_),
      done_(o.done_),
      error_(std::move(o.error_)),
      hash_(o.hash_),
      pack_id_(o.pack_id_),
      decompressor_(std::move(o.decompressor_)) {}

Result<std::unique_ptr<PackReader>> PackReader::open_file(const std::string& path,
                                                          PackReaderOptions options) {
  FileSystem& fs = options.fs != nullptr ? *options.fs : real_fs();
  OUTPOST_ASSIGN_OR_RETURN(std::unique_ptr<FileReader> file, fs.open_reader(path));
  FileReader* raw = file.get();
  auto reader = std::make_unique<PackReader>(
      [raw](std::span<std::uint8_t> dst) { return raw->read(dst); }, path, options);
  reader->owned_file_ = std::move(file);  // the reader closes it
  return reader;
}

std::unique_ptr<PackReader> PackReader::from_memory(ByteView data, std::string pack_name,
                                                    PackReaderOptions options) {
  auto pos = std::make_shared<std::size_t>(0);
  return std::make_unique<PackReader>(
      [data, pos](std::span<std::uint8_t> dst) -> Result<std::size_t> {
        const std::size_t n = std::min(dst.size(), data.size() - *pos);
        if (n > 0) std::memcpy(dst.data(), data.data() + *pos, n);
        *pos += n;
        return n;
      },
      std::move(pack_name), options);
}

Status PackReader::truncated() const {
  return Status::Corruption("pack " + name_ + " is truncated at byte " + std::to_string(offset_));
}

Status PackReader::damaged(std::uint64_t at, const std::string& what) const {
  return Status::Corruption("pack " + name_ + " is damaged at byte " + std::to_string(at) + ": " +
                            what);
}

Status PackReader::fill(std::size_t need) {
  if (buf_pos_ > 0 && buf_len_ - buf_pos_ < need) {
    std::memmove(buf_.data(), buf_.data() + buf_pos_, buf_len_ - buf_pos_);
    buf_len_ -= buf_pos_;
    buf_pos_ = 0;
  }
  while (!eof_ && buf_len_ - buf_pos_ < need) {
    OUTPOST_ASSIGN_OR_RETURN(std::size_t n, read_(std::span<std::uint8_t>(buf_.data() + buf_len_,
                                                                          buf_.size() - buf_len_)));
    if (n == 0) eof_ = true;
    buf_len_ += n;
  }
  return Status::Ok();
}

Result<bool> PackReader::read_exact(std::uint8_t* dst, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    if (buf_pos_ == buf_len_) {
      buf_pos_ = buf_len_ = 0;
      if (eof_) break;
      if (n - got >= buf_.size()) {
        // Large stored bytes: read straight into the destination.
        OUTPOST_ASSIGN_OR_RETURN(std::size_t r, read_(std::span<std::uint8_t>(dst + got, n - got)));
        if (r == 0) eof_ = true;
        got += r;
        offset_ += r;
        continue;
      }
      OUTPOST_RETURN_IF_ERROR(fill(1));
      if (buf_pos_ == buf_len_) break;
    }
    const std::size_t take = std::min(n - got, buf_len_ - buf_pos_);
    std::memcpy(dst + got, buf_.data() + buf_pos_, take);
    buf_pos_ += take;
    got += take;
    offset_ += take;
  }
  if (got == n) return true;
  if (got == 0) return false;
  return truncated();
}

Result<std::optional<PackRecord>> PackReader::next() {
  if (!error_.ok()) return error_;
  if (done_) return std::optional<PackRecord>();
  auto r = read_next();
  if (!r.ok()) {
    error_ = r.error();
    return error_;
  }
  return r;
}

Result<std::optional<PackRecord>> PackReader::read_next() {
  if (!started_) {
    std::uint8_t magic[8];
    OUTPOST_ASSIGN_OR_RETURN(bool any, read_exact(magic, 8));
    if (!any) return truncated();
    if (std::memcmp(magic, kPackMagic, 8) != 0)
      return damaged(0, "not an outpost pack (bad magic)");
    hash_.update(ByteView(magic, 8));
    started_ = true;
  }
  const std::uint64_t record_at = offset_;
  std::uint8_t type = 0;
  OUTPOST_ASSIGN_OR_RETURN(bool any, read_exact(&type, 1));
  if (!any) {
    return Status::Corruption("pack " + name_ + " is truncated: no trailer after " +
                              std::to_string(records_) + " records");
  }
  if (type == kTrailerType) {
    std::uint8_t rest[kTrailerBytes - 1];
    OUTPOST_ASSIGN_OR_RETURN(bool full, read_exact(rest, sizeof rest));
    if (!full) return truncated();
    crypto::Blake2b before = hash_;
    const crypto::Digest expected = before.finish();
    crypto::Digest stated{};
    std::memcpy(stated.data(), rest, 32);
    if (!crypto::digest_equal(expected, stated)) {
      return damaged(record_at, "the trailer checksum does not match the " +
                                    std::to_string(record_at) + " bytes before it");
    }
    const std::uint64_t count = get_u64le(rest + 32);
    if (count != records_) {
      return damaged(record_at + 33, "the trailer counts " + std::to_string(count) +
                                         " records, the pack holds " + std::to_string(records_));
    }
    OUTPOST_RETURN_IF_ERROR(fill(1));
    if (buf_len_ > buf_pos_) return damaged(offset_, "bytes after the trailer");
    hash_.update(ByteView(&type, 1));
    hash_.update(ByteView(rest, sizeof rest));
    pack_id_ = hash_.finish();
    done_ = true;
    return std::optional<PackRecord>();
  }
  if (!known_type(type)) {
    return damaged(record_at, "unknown record type " + std::to_string(type));
  }
  std::uint8_t head[kRecordHeaderBytes - 1];
  OUTPOST_ASSIGN_OR_RETURN(bool full, read_exact(head, sizeof head));
  if (!full) return truncated();
  PackRecord rec;
  rec.info.type = static_cast<RecordType>(type);
  std::memcpy(rec.info.id.data(), head, 32);
  rec.info.raw_length = get_u64le(head + 32);
  rec.info.stored_length = get_u64le(head + 40);
  const std::size_t name_len =
      static_cast<std::size_t>(head[48]) | (static_cast<std::size_t>(head[49]) << 8);
  const bool is_chunk = rec.info.type == RecordType::kChunk;
  if (is_chunk) {
    if (rec.info.raw_length == 0 || rec.info.raw_length > options_.max_chunk) {
      return damaged(record_at,
                     "chunk raw length " + std::to_string(rec.info.raw_length) + " out of range");
    }
    if (rec.info.stored_length == 0 ||
        rec.info.stored_length > ZSTD_compressBound(rec.info.raw_length)) {
      return damaged(record_at, "chunk stored length " + std::to_string(rec.info.stored_length) +
                                    " impossible for " + std::to_string(rec.info.raw_length) +
                                    " raw bytes");
    }
  } else {
    if (rec.info.stored_length > options_.max_record_bytes) {
      return damaged(record_at, std::string(record_type_name(rec.info.type)) + " record of " +
                                    std::to_string(rec.info.stored_length) +
                                    " bytes exceeds the limit of " +
                                    std::to_string(options_.max_record_bytes));
    }
    if (rec.info.raw_length != rec.info.stored_length) {
      return damaged(record_at, "raw and stored lengths differ for a " +
                                    std::string(record_type_name(rec.info.type)) + " record");
    }
  }
  if (name_len > kMaxRecordName) return damaged(record_at + 49, "record name too long");
  rec.info.name.resize(name_len);
  if (name_len > 0) {
    OUTPOST_ASSIGN_OR_RETURN(
        bool ok_name, read_exact(reinterpret_cast<std::uint8_t*>(rec.info.name.data()), name_len));
    if (!ok_name) return truncated();
  }
  if (Status s = check_record_name(rec.info.type, rec.info.name); !s.ok()) {
    return damaged(record_at + kRecordHeaderBytes, s.message());
  }
  rec.info.offset = offset_;
  rec.stored.resize(rec.info.stored_length);
  if (!rec.stored.empty()) {
    OUTPOST_ASSIGN_OR_RETURN(bool ok_body, read_exact(rec.stored.data(), rec.stored.size()));
    if (!ok_body) return truncated();
  }
  if (is_chunk) {
    if (options_.verify_chunks) {
      auto raw = decompressor_.decompress(rec.stored, rec.info.raw_length,
                                          "chunk " + crypto::hex(rec.info.id));
      if (!raw.ok()) return damaged(rec.info.offset, raw.error().message());
      if (!crypto::digest_equal(crypto::blake2b(*raw), rec.info.id)) {
        return damaged(rec.info.offset,
                       "chunk " + crypto::hex(rec.info.id) + " does not match its id");
      }
      rec.raw = std::move(raw).value();
    }
  } else if (!crypto::digest_equal(crypto::blake2b(rec.stored), rec.info.id)) {
    return damaged(rec.info.offset, std::string(record_type_name(rec.info.type)) + " record '" +
                                        rec.info.name + "' does not match its id");
  }
  hash_.update(ByteView(&type, 1));
  hash_.update(ByteView(head, sizeof head));
  hash_.update(as_bytes(rec.info.name));
  hash_.update(rec.stored);
  ++records_;
  return std::optional<PackRecord>(std::move(rec));
}

Status PackReader::for_each(const std::function<Status(const PackRecord&)>& fn) {
  for (;;) {
    OUTPOST_ASSIGN_OR_RETURN(std::optional<PackRecord> rec, next());
    if (!rec) return Status::Ok();
    OUTPOST_RETURN_IF_ERROR(fn(*rec));
  }
}

// ---- random access ---------------------------------------------------------------------------

Result<Bytes> read_pack_range(const std::string& pack_path, std::uint64_t offset,
                              std::uint64_t length, FileSystem& fs) {
  if (length > (std::uint64_t{1} << 31)) {
    return Status::InvalidArgument("read of " + std::to_string(length) + " bytes from " +
                                   pack_path + " is too large");
  }
  auto out = fs.read_range(pack_path, offset, length);
  if (!out.ok() && out.error().IsCorruption()) {
    return Status::Corruption("pack " + pack_path + " is truncated: " + std::to_string(length) +
                              " bytes at offset " + std::to_string(offset) + " run past its end");
  }
  return out;
}

Result<Bytes> read_chunk(const std::string& pack_path, const ChunkEntry& entry,
                         Decompressor& decompressor, FileSystem& fs) {
  OUTPOST_ASSIGN_OR_RETURN(Bytes stored,
                           read_pack_range(pack_path, entry.offset, entry.stored_length, fs));
  const std::string what = "chunk " + crypto::hex(entry.id);
  auto raw = decompressor.decompress(stored, entry.raw_length, what);
  if (!raw.ok()) return raw.error().With("pack " + pack_path);
  if (!crypto::digest_equal(crypto::blake2b(*raw), entry.id)) {
    return Status::Corruption("pack " + pack_path + " is damaged at byte " +
                              std::to_string(entry.offset) + ": " + what +
                              " does not match its id");
  }
  return raw;
}

}  // namespace outpost::packaging
