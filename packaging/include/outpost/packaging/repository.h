// The publisher side of a repository (docs/format-repository.md; paths in layout.h): creating
// it, delegating bundle-name prefixes to publisher keys, publishing bundle versions,
// re-signing the timestamp and rotating root keys. Every file is written through temp + fsync +
// rename, in an order such that a reader fetching timestamp.json at any moment sees the old release
// or the complete new one (timestamp.json last).
//
// Keys are passed in by the caller and never written into the repository tree.
// Concurrency: the operations that change a repository take an exclusive lock (flock on
// REPO/metadata); a second concurrent writer gets kAborted ("try again"). Memory: publish()
// streams every file (chunk, hash, compress, append to the pack) and keeps only the file
// table, the chunk index and a chunk-id map of the repository in memory; the content streams
// it builds patches from are temp files mapped into memory (see PublishOptions).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/clock.h"
#include "outpost/base/fs.h"
#include "outpost/base/status.h"
#include "outpost/crypto/keys.h"
#include "outpost/crypto/tuf.h"
#include "outpost/packaging/bundle_source.h"
#include "outpost/packaging/chunker.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/manifest.h"

namespace outpost::packaging {

inline constexpr std::int64_t kSecondsPerDay = 86400;

// How long each role's metadata stays valid after it is signed (docs/format-repository.md).
struct Expiries {
  std::int64_t root = 365 * kSecondsPerDay;
  std::int64_t targets = 365 * kSecondsPerDay;
  std::int64_t delegated = 365 * kSecondsPerDay;
  std::int64_t snapshot = 30 * kSecondsPerDay;
  std::int64_t timestamp = 7 * kSecondsPerDay;
};

// Which older versions get a patch to each new bundle version (N-1, N-2, N-4, ...), and which
// older snapshots get a metadata update file to each new snapshot (N-1 .. N-8, N-16, N-32).
inline const std::vector<std::int64_t> kDefaultPatchLadder = {1, 2, 4, 8, 16, 32};
// A patch from an older version is written only when it is at least this much smaller than
// the patch from 0. Listing a patch costs every node that reads the manifest about 100 bytes
// (its BLAKE2b, the old version's content root and manifest SHA-256, none of which compress):
// in every first sync and long absence (the library file), and in every later update of the
// bundle. Only a node exactly that many versions behind uses it, so it must save ten times
// that. Small bundles (a data file whose patch from 0 is under 1 KiB) then list the patch from
// 0 alone; a node one or more versions behind gets their changes from the update file's
// release patch (release_patch.h), which needs no patch listed. (Until 2026-12-05 the rung
// N-1 was exempt: by caniuse-lite's sixth release as a library, its 825 manifests had grown
// from 110 KB to 202 KB in the library file.)
inline constexpr std::uint64_t kMinRungSaving = 1024;
inline const std::vector<std::int64_t> kDefaultUpdateLadder = {1, 2, 3, 4, 5, 6, 7, 8, 16, 32};
// Rungs are 1 .. kMaxLadderRung steps back; at most kMaxLadderRungs of them.
inline constexpr std::int64_t kMaxLadderRung = 1 << 20;
inline constexpr std::size_t kMaxLadderRungs = 32;
// Content streams above this size get only the from-0 patch (no ladder patches), by default:
// the suffix engine holds ~5 bytes of memory per byte of the old stream.
inline constexpr std::uint64_t kDefaultMaxLadderStream = 128ull << 20;
// Largest segment of a patch from 0 (docs/format-delta.md): 8 MiB keeps zstd level 19 under
// ~30 MiB of memory.
inline constexpr std::uint32_t kDefaultFullPatchSegment = 8u << 20;

// Sorted, unique; kInvalidArgument for a rung outside [1, kMaxLadderRung] or too many rungs.
Result<std::vector<std::int64_t>> normalize_ladder(std::vector<std::int64_t> rungs);
// "1,2,4,8" -> {1,2,4,8}; "" -> {} (no rungs). kInvalidArgument naming the bad item.
Result<std::vector<std::int64_t>> parse_ladder(std::string_view text);

// The unsigned description of a repository (outpost-repository.json).
struct RepositoryConfig {
  ChunkerParams chunking;
  std::vector<std::int64_t> patch_ladder = kDefaultPatchLadder;    // "patch_ladder"
  std::vector<std::int64_t> update_ladder = kDefaultUpdateLadder;  // "update_ladder"
};
// Reads REPO/outpost-repository.json; fields absent from older repositories take the
// defaults. kNotFound when the file is missing; kCorruption when it is malformed.
Result<RepositoryConfig> load_repository_config(const std::string& repo_dir);

struct InitOptions {
  std::vector<const crypto::SecretKey*> root_keys;  // >= threshold distinct keys; all sign
  int threshold = 1;
  const crypto::SecretKey* targets_key = nullptr;    // required
  const crypto::SecretKey* snapshot_key = nullptr;   // required
  const crypto::SecretKey* timestamp_key = nullptr;  // required
  Expiries expiry;
  ChunkerParams chunking;  // recorded in outpost-repository.json as the repository default
  // Recorded in outpost-repository.json (normalized; kInvalidArgument when invalid).
  std::vector<std::int64_t> patch_ladder = kDefaultPatchLadder;
  std::vector<std::int64_t> update_ladder = kDefaultUpdateLadder;
  Clock* clock = nullptr;  // nullptr: system_clock()
};

// Creates a repository in repo_dir (created if missing): metadata/1.root.json and root.json,
// 1.targets.json (no delegations), 1.snapshot.json, timestamp.json, the empty targets/,
// objects/, packs/ and metadata/updates/ folders, and outpost-repository.json.
// kInvalidArgument: a missing key, threshold < 1 or above the number of distinct root keys.
// kFailedPrecondition: repo_dir exists and is not empty. I/O errors per errno.
Status init_repository(const std::string& repo_dir, const InitOptions& options);

// Delegates bundle names under `prefix` (1-6 segments, e.g. "un/ga") to `publisher`: the role
// named like the prefix with '/' -> '.' ("un.ga"), paths "PREFIX/*" ... one pattern per depth,
// terminating, listed before less specific prefixes. When the role exists its key is replaced
// (the old publisher key is revoked for it; the new publisher's next publish re-signs the
// role's metadata). Writes a new targets version, snapshot, the metadata update files to it
// (write_update_files) and the timestamp.
// kInvalidArgument: bad prefix, or a prefix whose role name is a top-level role name or the
// name of another prefix's role ("a.b" vs "a/b"). kFailedPrecondition: a key is not the one
// the root lists for its role. kAborted: another writer holds the repository.
Status delegate(const std::string& repo_dir, const crypto::SecretKey& targets_key,
                const crypto::SecretKey& snapshot_key, const crypto::SecretKey& timestamp_key,
                const crypto::PublicKey& publisher, std::string prefix, Clock& clock,
                const Expiries& expiry = {});

struct PublishOptions {
  std::string source_dir;
  BundleOverrides overrides;                         // --bundle / --kind / --title
  const crypto::SecretKey* publisher_key = nullptr;  // required: the key delegated the name
  const crypto::SecretKey* snapshot_key = nullptr;   // required
  const crypto::SecretKey* timestamp_key = nullptr;  // required
  ChunkerParams chunking;
  int zstd_level = kDefaultChunkLevel;
  // zstd level of the patches, the patch from 0 and the library file (1..22).
  int patch_level = kDefaultPatchLevel;
  // Older versions to write patches from (steps back from the new version); nullopt: the
  // repository's "patch_ladder". Rungs whose version does not exist or cannot be rebuilt (its
  // manifest, index or packs are gone) are skipped. The from-0 patch is always written.
  std::optional<std::vector<std::int64_t>> patch_ladder;
  // Ladder patches are skipped (only the from-0 patch is written) when the old or the new
  // content stream is larger than this.
  std::uint64_t max_ladder_stream = kDefaultMaxLadderStream;
  // The patch from 0 is cut by content into segments of 3/8 of this to this many bytes
  // (64 KiB to 8 MiB); a republish recompresses only the segments that changed. Smaller
  // segments make small edits cheaper and compress a little worse.
  std::uint32_t full_patch_segment = kDefaultFullPatchSegment;
  Expiries expiry;
  Clock* clock = nullptr;  // nullptr: system_clock()
  // Every write of the repository tree (objects, packs, manifests, role metadata, snapshot,
  // update files, timestamp, folders) goes through it; nullptr: real_fs(). Reading the source
  // folder does not. Tests pass a fault-injecting one (tests/support/fault_fs.h).
  FileSystem* fs = nullptr;
  // For tests: called after each chunk of a source file is read, with the file's path in the
  // bundle and how many of its bytes have been read, so a test can change the file at a known
  // point of the read. Unset in normal use.
  std::function<void(const std::string& file, std::uint64_t bytes_read)> after_chunk_read;
};

struct PublishResult {
  std::string bundle;
  std::int64_t version = 0;  // the new version, or the current one when unchanged
  bool unchanged = false;    // content, file table, kind and meta equal the current version
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;          // content bytes
  std::uint64_t new_chunks = 0;     // chunk records written to the new pack
  std::uint64_t reused_chunks = 0;  // chunk references served by chunks already stored
  std::uint64_t pack_bytes = 0;     // size of the new pack (0 when none was needed)
  std::optional<crypto::Digest> pack_id;
  std::string manifest_path;      // repository-relative path of the manifest file
  std::vector<PatchRef> patches;  // as listed in the new manifest (empty when unchanged)
  // The patch from 0's segments, and how many of them were copied from the previous version's
  // instead of compressed again (what a small edit to a big bundle costs).
  std::uint64_t full_patch_segments = 0;
  std::uint64_t full_patch_reused = 0;
};

// Publishes the folder as the next version of its bundle: chunks every file, reuses chunks
// the repository already stores (those of the current version of every bundle), writes one
// new pack with the new chunks only, the chunk index, the patches (from 0 and from the
// ladder's older versions, built from the content streams rebuilt out of the packs), the
// manifest, targets/<bundle>/.history.json, the delegated role's metadata (signed by
// publisher_key), the snapshot, the metadata update files and the timestamp, in that order.
// Nothing is written when the content is unchanged (result.unchanged).
// kFailedPrecondition: no delegation covers the bundle name, or publisher_key is not the key
// delegated it ("key K is not delegated bundle name B: ask the repository owner to run
// 'outpost repo delegate'"), or a snapshot/timestamp key is not the one the root lists.
// kInvalidArgument: bad source folder (see read_bundle_dir), missing keys, bad chunking.
// kAborted: a source file changed while it was read (its size, modification or change time
// or inode differ before and after reading it, or a second read of a file modified as the
// read began finds other bytes; the message names the file; nothing is published: publish
// again), or another writer holds the repository. kCorruption: the repository's own files are
// damaged. Every file and folder it writes is world-readable (0644 / 0755) whatever the umask.
Result<PublishResult> publish(const std::string& repo_dir, const PublishOptions& options);

struct BatchPublishResult {
  std::vector<PublishResult> bundles;     // one per bundle folder, in folder name order
  std::int64_t snapshot_version = 0;      // the new release's snapshot; 0 when nothing changed
  bool catalog_reused = false;            // the saved chunk catalog spared a scan of every bundle
  bool library_file = false;              // metadata/updates/N.from-0.upd was written
  std::size_t library_frames = 0;         // its zstd frames (the metadata, then groups of bundles)
  std::size_t library_frames_copied = 0;  // ... copied from the previous release's, unchanged
};

// Publishes every bundle folder directly under options.source_dir (each with its bundle.json
// naming the bundle; hidden entries skipped) as one release: one new version of each touched
// delegated role, one snapshot, its update files, one timestamp. Unchanged bundles write
// nothing; when none changed there is no release. Every bundle is checked (name, delegation,
// key) before anything is written, and every file is read before any metadata is: a refused
// bundle or a crash leaves the previous release as it was, and the error names the bundle and
// its folder. The chunks the repository stores come from the publisher's saved catalog
// (objects/.chunk-catalog) when it matches the current snapshot, so the work grows with what
// changed; else from a scan of every bundle, as publish() does. overrides must be empty.
Result<BatchPublishResult> publish_batch(const std::string& repo_dir,
                                         const PublishOptions& options);

// Re-signs timestamp.json with a new version and expiry (same snapshot).
// kFailedPrecondition: the key is not the root's timestamp key, or the current snapshot
// expires before the new timestamp would (clients would then refuse the snapshot): use
// refresh_snapshot() instead.
Status refresh_timestamp(const std::string& repo_dir, const crypto::SecretKey& timestamp_key,
                         Clock& clock, const Expiries& expiry = {});

// Re-signs the snapshot (new version, same contents, new expiry), writes the metadata update
// files to it, and then the timestamp: what
// `outpost repo refresh` does when both online keys are at hand, so a repository without new
// publications stays valid. kFailedPrecondition: a key is not the one the root lists.
Status refresh_snapshot(const std::string& repo_dir, const crypto::SecretKey& snapshot_key,
                        const crypto::SecretKey& timestamp_key, Clock& clock,
                        const Expiries& expiry = {});

struct RotateOptions {
  // Current root keys; together they must meet the current root threshold. They all sign.
  std::vector<const crypto::SecretKey*> old_root_keys;
  // The new root role's keys (may repeat old ones; leaving one out revokes it). They all sign.
  std::vector<const crypto::SecretKey*> new_root_keys;
  int threshold = 1;  // of the new root role
  // The keys of the top-level roles in the new root: the current ones, or replacements. The
  // targets metadata is re-signed when its key changes; snapshot and timestamp always are.
  const crypto::SecretKey* targets_key = nullptr;
  const crypto::SecretKey* snapshot_key = nullptr;
  const crypto::SecretKey* timestamp_key = nullptr;
  Expiries expiry;
  Clock* clock = nullptr;
};

// Writes root version N+1 (metadata/N+1.root.json and root.json) signed by the old and the
// new root keys, then what the key changes require (targets), a new snapshot, the metadata
// update files to it (their latest_root tells nodes to fetch the new root) and the timestamp.
// kFailedPrecondition: the old keys do not meet the current threshold. kInvalidArgument:
// missing keys, threshold < 1 or above the number of distinct new root keys.
Status rotate_root(const std::string& repo_dir, const RotateOptions& options);

// ---- reading a repository on disk (publisher tools, tests, `outpost show` on a local repo) --

struct RepositoryState {
  crypto::tuf::Root root;
  crypto::tuf::Timestamp timestamp;
  crypto::tuf::Snapshot snapshot;
  crypto::tuf::Targets targets;
  std::map<std::string, crypto::tuf::Targets> roles;  // delegated roles listed in the snapshot
};

// Parses the current metadata (root.json, timestamp.json and the files it leads to). Does not
// verify signatures: this is the publisher reading its own tree. kNotFound when repo_dir is not
// a repository; kCorruption when a file is malformed.
Result<RepositoryState> load_repository(const std::string& repo_dir);

struct PublishedManifest {
  Manifest manifest;
  Bytes bytes;       // the file as published
  std::string path;  // repository-relative
};
// The current manifest of `bundle`, checked against its target entry (length, sha256).
// kNotFound when the bundle has no published version.
Result<PublishedManifest> load_current_manifest(const std::string& repo_dir,
                                                const RepositoryState& state,
                                                const std::string& bundle);

// Contents a publish encodes into release patches (release_patch.h) at most, all the update
// files of its ladder together, nearest rungs first: each rung's is encoded anew (a few seconds
// a MB at level 19), and ten rungs of a release touching most of a library would cost a
// minute. Further rungs carry patches bundle by bundle.
inline constexpr std::uint64_t kReleasePatchWork = 16u << 20;

// Writes metadata/updates/N.from-M.upd for N = snapshot_version (metadata/N.snapshot.json
// must be written already) and every M = N - rung of `ladder` whose snapshot file exists
// (docs/format-repository.md, "Metadata update files"). Each holds snapshot N (against snapshot M),
// targets.json and the delegated roles whose version differs from M's (against M's version of the
// same role, or alone when the role is new) and the manifest of every bundle whose target changed
// (against its manifest at M, or alone when it is new). The publisher calls it between the snapshot
// and the timestamp; exposed for tools and tests. Returns the names written. kCorruption / I/O
// errors when a file it needs is damaged or missing. Release patches encode at most
// release_patch_work bytes of contents (0: none; publish passes 0 when its patch ladder is
// empty, as for bundles whose versions share nothing).
// Written through fs.
Result<std::vector<std::string>> write_update_files(
    const std::string& repo_dir, std::int64_t snapshot_version,
    const std::vector<std::int64_t>& ladder, FileSystem& fs = real_fs(),
    std::uint64_t release_patch_work = kReleasePatchWork);

// "un/ga" -> "un.ga"; and the TUF path patterns of that delegation.
std::string role_name_for_prefix(std::string_view prefix);
std::vector<std::string> role_paths_for_prefix(std::string_view prefix);

}  // namespace outpost::packaging
