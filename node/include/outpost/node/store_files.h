// Manifests and chunk indexes in the node's store (tables manifests and indexes,
// docs/format-store.md): kept as one zstd frame when that is smaller (a manifest's file table
// compresses about sixfold: caniuse-lite's 50 KB manifest takes 8 KB), so that 20 versions of
// a bundle do not hold 20 raw copies; a reader gets the file exactly as signed. Values written
// before this (the file itself: JSON or "outidx01", never a zstd frame's magic) read as they
// are.
// Thread-safety: pure functions; get_file() on the transaction's thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/storage/store.h"

namespace outpost::node {

// The value to store for `file`.
Bytes pack_file(ByteView file);
// The file a stored value holds; kCorruption when a compressed one does not decompress.
Result<Bytes> unpack_file(ByteView value);
// txn.get() of table/key, unpacked (an index stored against a newer version's read through
// that one).
Result<std::optional<Bytes>> get_file(const storage::ReadTxn& txn, storage::Table table,
                                      ByteView key);

// Chunk indexes (table indexes, key storage::version_key): the newest version's is stored as a
// file above; when a newer version comes, the index of the version before it is stored
// against the new one (one zstd frame with the newer index as prefix: "OPXD" | u64le newer
// version | frame with checksum), so 20 versions of a bundle do not hold 20 copies of the ids
// they share. `held`: the bundle's versions already held.
//
// Stores version `version`'s index; the newest held version older than it, if stored whole,
// is then stored against it when that is smaller (except every 16th version number, which
// stays whole: a read decodes at most 16 frames).
Status put_index(storage::WriteTxn& txn, std::string_view bundle,
                 const std::vector<std::uint64_t>& held, std::uint64_t version, ByteView index);
// Stores whole every held version's index that is stored against `version`: call before
// deleting or replacing that version's index.
Status store_whole_against(storage::WriteTxn& txn, std::string_view bundle,
                           const std::vector<std::uint64_t>& held, std::uint64_t version);

}  // namespace outpost::node
