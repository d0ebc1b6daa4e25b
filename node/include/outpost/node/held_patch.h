// A patch between two versions of a bundle this node holds, made on demand for a peer that
// names the version it has (docs/daemon.md, "Many pieces in one response"): the same delta
// engine and parameters a USB export uses (packaging/delta.h), from the content stream of one
// held version to another's. The requester verifies the result against the publisher's signed
// content root, as any patch; nothing here is trusted by anyone.
// Thread-safety: a pure function of the store's committed state; any thread.
#pragma once

#include <cstdint>
#include <string>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"

namespace outpost::storage {
class Store;
}

namespace outpost::node {

// Content streams larger than this are not patched on demand (memory and CPU bound).
inline constexpr std::uint64_t kMaxHeldPatchStream = 32u << 20;

// The patch from version `from` of `bundle` to version `to` (both held). kNotFound when either
// is not held, kResourceExhausted when a content stream exceeds max_stream (at most
// kMaxHeldPatchStream), kCorruption when a stored chunk is damaged.
Result<Bytes> make_held_patch(storage::Store& store, const std::string& bundle, std::uint64_t from,
                              std::uint64_t to, std::uint64_t max_stream = kMaxHeldPatchStream);

}  // namespace outpost::node
