// Verified bytes into a visible version (docs/sync.md, "Every byte verified before it
// counts"): a patch or patch chain applied to a held version (read back from its chunks), or
// the fetched chunks of the new version, rebuilt and checked against the signed content root;
// only then are its chunks stored (cut exactly as the publisher cut them) and, in one
// transaction, its manifest, chunk index and bundle record. Also the confirmation of a
// current bundle and the repair of one whose chunks went missing.
// Owns: the kManifests, kIndexes and kBundles records and the accepted version in kTrust.
#pragma once

#include <string>

#include "node_internal.h"
#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/crypto/hash.h"
#include "outpost/node/node.h"
#include "outpost/packaging/chunk_index.h"
#include "sync_context.h"

namespace outpost::node {

// The patch route (`route` a patch from a held version) or the full route: fetches the
// patch, rebuilds and verifies the new content, and commits the version. The transfer is
// dropped afterwards either way (a patch that does not rebuild the signed content is useless).
Status apply_patch(SyncContext& ctx, const Pending& p, const Route& route);
// The chain route: fetches every patch of p.chain and applies each in turn, each
// intermediate version checked against its manifest's root (held in memory: the planner only
// chains bundles up to kChainMaxStream).
Status apply_chain(SyncContext& ctx, const Pending& p);
// The chunk route, once every chunk of `index` is in the store: checks the content root and
// commits the version with the repository's index.
Status accept_from_chunks(SyncContext& ctx, const Pending& p, const packaging::ChunkIndex& index,
                          const Bytes& index_bytes);
// The chunk route when the caller hashed the content stream while the chunks went in (a USB
// import reads, checks and stores each chunk once): checks `root` against the signed content
// root (kCorruption when they differ) and commits the version with `index_bytes`.
Status accept_with_root(SyncContext& ctx, const Pending& p, const crypto::Digest& root,
                        const Bytes& index_bytes);
// A patch from held version `from` that no manifest lists (a USB pack's, made by the node that
// exported it): applied like apply_patch's and accepted only when the rebuilt content matches
// the signed content root.
Status accept_unlisted_patch(SyncContext& ctx, const Pending& p, std::uint64_t from,
                             const Bytes& patch);
// The whole content stream of a held version, read back from its chunks; kNotFound when it
// is not `size` bytes (nothing is read then).
Result<Bytes> read_held_content(storage::Store& store, const detail::HeldVersion& held,
                                std::uint64_t size);
// Marks a bundle confirmed current now.
Status confirm(SyncContext& ctx, const std::string& bundle);
// A held version whose chunks went missing: fetch them again.
Status repair(SyncContext& ctx, const detail::HeldVersion& held);

}  // namespace outpost::node
