#include "outpost/node/store_files.h"

#include <algorithm>
#include <cstring>

#include "outpost/packaging/compress.h"

namespace outpost::node {

namespace {

constexpr std::uint8_t kZstdMagic[4] = {0x28, 0xB5, 0x2F, 0xFD};
// Level 3: about what level 19 gives on these files, at a fraction of the time of a sync.
constexpr int kLevel = 3;
// The largest file a value may decompress to (a manifest or index of a very large bundle).
constexpr std::uint64_t kMaxFile = 256u << 20;

bool is_frame(ByteView value) {
  return value.size() >= 4 && std::memcmp(value.data(), kZstdMagic, 4) == 0;
}

}  // namespace

Bytes pack_file(ByteView file) {
  packaging::Compressor c(kLevel);
  auto frame = c.compress(file);
  if (!frame.ok() || frame->size() >= file.size()) return Bytes(file.begin(), file.end());
  return std::move(*frame);
}

Result<Bytes> unpack_file(ByteView value) {
  if (!is_frame(value)) return Bytes(value.begin(), value.end());
  auto size = packaging::zstd_frame_content_size(value);
  if (!size || *size > kMaxFile) {
    return Status::Corruption(
        "a stored manifest or chunk index is damaged (its frame declares no size or too large "
        "a one): run 'outpost verify --repair', then 'outpost sync'");
  }
  packaging::Decompressor dec;
  auto file = dec.decompress(value, static_cast<std::size_t>(*size), "stored manifest or index");
  if (!file.ok()) return file.error().With("run 'outpost verify --repair', then 'outpost sync'");
  return file;
}

Result<std::optional<Bytes>> get_file(const storage::ReadTxn& txn, storage::Table table,
                                      ByteView key) {
  OUTPOST_ASSIGN_OR_RETURN(auto value, txn.get(table, key));
  if (!value) return value;
  OUTPOST_ASSIGN_OR_RETURN(Bytes file, unpack_file(ByteView(*value)));
  return std::optional<Bytes>(std::move(file));
}

}  // namespace outpost::node
