// Manifests and chunk indexes in the node's store (tables manifests and indexes,
// docs/format-store.md): kept as one zstd frame when that is smaller (a manifest's file table
// compresses about sixfold: caniuse-lite's 50 KB manifest takes 8 KB), so that 20 versions of
// a bundle do not hold 20 raw copies; a reader gets the file exactly as signed. Values written
// before this (the file itself: JSON or "outidx01", never a zstd frame's magic) read as they
// are.
// Thread-safety: pure functions; get_file() on the transaction's thread.
#pragma once

#include <optional>
#include <string_view>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/storage/store.h"

namespace outpost::node {

// The value to store for `file`.
Bytes pack_file(ByteView file);
// The file a stored value holds; kCorruption when a compressed one does not decompress.
Result<Bytes> unpack_file(ByteView value);
// txn.get() of table/key, unpacked.
Result<std::optional<Bytes>> get_file(const storage::ReadTxn& txn, storage::Table table,
                                      ByteView key);

}  // namespace outpost::node
