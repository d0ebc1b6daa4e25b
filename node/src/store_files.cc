#include "outpost/node/store_files.h"

#include <algorithm>
#include <cstring>
#include <string>

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

// A chunk index stored against a newer version's: "OPXD" | u64le newer version | one zstd frame
// (with its checksum) compressed with that version's index as prefix.
constexpr std::uint8_t kDeltaMagic[4] = {'O', 'P', 'X', 'D'};
constexpr std::size_t kDeltaHead = 4 + 8;
// Every version whose number is a multiple of this stays whole: reading any index decodes at
// most this many frames (verify and gc read every version held).
constexpr std::uint64_t kWholeEvery = 16;

std::optional<std::uint64_t> delta_base(ByteView value) {
  if (value.size() <= kDeltaHead || std::memcmp(value.data(), kDeltaMagic, 4) != 0) {
    return std::nullopt;
  }
  return get_u64le(value.data() + 4);
}

Status damaged_index(const std::string& why) {
  return Status::Corruption("a stored chunk index is damaged (" + why +
                            "): run 'outpost verify --repair', then 'outpost sync'");
}

// version_key(bundle, v) is the bundle's name, a 0 byte, then v as 8 bytes big-endian.
std::optional<std::uint64_t> key_version(ByteView key) {
  if (key.size() < 9 || key[key.size() - 9] != 0) return std::nullopt;
  std::uint64_t v = 0;
  for (std::size_t i = key.size() - 8; i < key.size(); ++i) v = (v << 8) | key[i];
  return v;
}

Bytes with_version(ByteView key, std::uint64_t v) {
  Bytes k(key.begin(), key.end() - 8);
  for (int shift = 56; shift >= 0; shift -= 8) k.push_back(static_cast<std::uint8_t>(v >> shift));
  return k;
}

Bytes delta_value(ByteView file, std::uint64_t base_version, ByteView base_file) {
  packaging::Compressor c(kLevel, /*checksum=*/true);
  auto frame = c.compress_with_prefix(file, base_file);
  if (!frame.ok()) return {};
  Bytes v(kDeltaMagic, kDeltaMagic + 4);
  put_u64le(v, base_version);
  v.insert(v.end(), frame->begin(), frame->end());
  return v;
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
  // An older version's index: the chain of newer versions it is stored against, up to one
  // stored whole (each link to a strictly newer version, so the chain ends).
  std::vector<Bytes> chain;
  Bytes at(key.begin(), key.end());
  while (auto base = delta_base(ByteView(*value))) {
    const auto version = key_version(ByteView(at));
    if (table != storage::Table::kIndexes || !version || *base <= *version) {
      return damaged_index("it names no newer version to read it against");
    }
    at = with_version(ByteView(at), *base);
    chain.push_back(std::move(*value));
    OUTPOST_ASSIGN_OR_RETURN(value, txn.get(table, ByteView(at)));
    if (!value) return damaged_index("the newer version it is stored against is gone");
  }
  OUTPOST_ASSIGN_OR_RETURN(Bytes file, unpack_file(ByteView(*value)));
  packaging::Decompressor dec;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    const ByteView frame = ByteView(*it).subspan(kDeltaHead);
    auto size = packaging::zstd_frame_content_size(frame);
    if (!size || *size > kMaxFile)
      return damaged_index("its frame declares no size or too large a one");
    auto older = dec.decompress_with_prefix(frame, ByteView(file), static_cast<std::size_t>(*size),
                                            "stored chunk index");
    if (!older.ok())
      return older.error().With("run 'outpost verify --repair', then 'outpost sync'");
    file = std::move(*older);
  }
  return std::optional<Bytes>(std::move(file));
}

Status put_index(storage::WriteTxn& txn, std::string_view bundle,
                 const std::vector<std::uint64_t>& held, std::uint64_t version, ByteView index) {
  using storage::Table;
  const Bytes key = storage::version_key(bundle, version);
  // Replacing this version's index with other bytes: the versions stored against it are
  // stored whole first. A damaged one is replaced all the same (what was stored against it
  // is unreadable already, and verify names it).
  auto old = get_file(txn, Table::kIndexes, ByteView(key));
  if (old.ok() && *old && !std::equal((*old)->begin(), (*old)->end(), index.begin(), index.end())) {
    OUTPOST_RETURN_IF_ERROR(store_whole_against(txn, bundle, held, version));
  }
  OUTPOST_RETURN_IF_ERROR(txn.put(Table::kIndexes, ByteView(key), ByteView(pack_file(index))));
  // The newest older version, stored whole until now, is stored against this one: consecutive
  // versions share most chunks, and caniuse-lite's older indexes take about half.
  std::optional<std::uint64_t> older;
  for (std::uint64_t v : held) {
    if (v < version && (!older || v > *older)) older = v;
  }
  if (!older || *older % kWholeEvery == 0) return Status::Ok();
  const Bytes older_key = storage::version_key(bundle, *older);
  OUTPOST_ASSIGN_OR_RETURN(auto stored, txn.get(Table::kIndexes, ByteView(older_key)));
  if (!stored || delta_base(ByteView(*stored))) return Status::Ok();
  auto file = unpack_file(ByteView(*stored));
  if (!file.ok()) return Status::Ok();  // damaged: verify names it, as before
  Bytes delta = delta_value(ByteView(*file), version, index);
  if (delta.empty() || delta.size() >= stored->size()) return Status::Ok();
  return txn.put(Table::kIndexes, ByteView(older_key), ByteView(delta));
}

Status store_whole_against(storage::WriteTxn& txn, std::string_view bundle,
                           const std::vector<std::uint64_t>& held, std::uint64_t version) {
  using storage::Table;
  for (std::uint64_t v : held) {
    if (v == version) continue;
    const Bytes key = storage::version_key(bundle, v);
    OUTPOST_ASSIGN_OR_RETURN(auto stored, txn.get(Table::kIndexes, ByteView(key)));
    if (!stored || delta_base(ByteView(*stored)) != version) continue;
    auto file = get_file(txn, Table::kIndexes, ByteView(key));
    if (!file.ok() || !*file) continue;  // already unreadable: verify names it
    OUTPOST_RETURN_IF_ERROR(
        txn.put(Table::kIndexes, ByteView(key), ByteView(pack_file(ByteView(**file)))));
  }
  return Status::Ok();
}

}  // namespace outpost::node
