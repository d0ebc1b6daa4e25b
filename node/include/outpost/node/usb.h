// USB sneakernet (docs/usb.md): what a node holds as a have-file, a pack of what another node
// lacks written onto a stick, and a stick imported with the checks of a sync.
//
// export writes only through options.fs: volumes under a temporary name, fsynced, renamed to
// their BLAKE2b name, then README.txt, then the index last (atomic replace). A pack already on
// the stick stays whole until the new index replaces its own; only then are volumes no index
// names removed. import reads the stick as one more sync::Source (sync/pack_source.h): every
// signature and hash is checked before anything becomes visible, each complete bundle version
// is committed, and what is missing is listed.
// Thread-safety: as Node (one thread).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "outpost/base/fs.h"
#include "outpost/base/status.h"
#include "outpost/crypto/keys.h"
#include "outpost/node/node.h"
#include "outpost/packaging/have_file.h"
#include "outpost/packaging/stick.h"

namespace outpost::node {

// What the node holds, per subscribed repository.
Result<packaging::HaveFile> make_have(Node& node);

struct ExportProgress {
  std::uint64_t done = 0;   // bytes written to the stick
  std::uint64_t total = 0;  // bytes the plan writes
  std::uint64_t files = 0;  // volumes completed
};

struct ExportOptions {
  std::string to;         // the stick (its root folder); the pack goes into to/outpost-pack/
  std::string have_file;  // "" : everything the node holds
  std::vector<std::string> bundles;  // only these (empty: all)
  std::uint64_t max_bytes = 0;       // 0: no limit but the stick's free space
  std::uint64_t volume_bytes = packaging::kFatMaxFileBytes;
  std::string readme_extra;  // more text for README.txt (the office's languages)
  // README.txt in these languages too, after the English ("fr", "ar"; "en" is always there).
  std::vector<std::string> readme_languages;
  FileSystem* fs = nullptr;  // nullptr: real_fs()
  std::function<void(const ExportProgress&)> progress;
};

struct ExportedRepo {
  std::string repo;
  std::string index_path;  // "" when nothing was written for it
  std::vector<packaging::StickBundle> bundles;
  std::vector<std::string> left_out;
  std::uint64_t bytes = 0;
  std::size_t volumes = 0;
  bool up_to_date = false;  // the have-file showed nothing to send
};

struct ExportReport {
  std::string folder;
  std::vector<ExportedRepo> repos;
  std::uint64_t bytes = 0;
};

// Errors: kInvalidArgument (a have-file for no repository this node holds, an unknown
// --bundle, a README language outpost has no text for), kCorruption (a damaged have-file),
// kResourceExhausted before anything is written when the plan does not fit the stick ("needs N
// bytes, the stick has M free"), and file-system errors as errno_status() maps them; the older pack
// stays intact on any error.
Result<ExportReport> export_pack(Node& node, const ExportOptions& options);

struct ImportOptions {
  FileSystem* fs = nullptr;  // nullptr: real_fs()
  std::function<void(const SyncProgress&)> progress;
  std::stop_token stop;
  // Trust the pack's repository when the node does not yet: its first root must be signed by
  // this key (as `subscribe --root-pubkey`).
  std::optional<crypto::PublicKey> root_pubkey;
};

struct ImportedRepo {
  std::string repo;
  std::string index_path;
  SyncReport sync;
  std::vector<std::string> problems;  // volumes missing or damaged
  std::string note;                   // "older than what this node holds: nothing changed"
  bool expired_timestamp = false;     // accepted because its snapshot is newer
  std::int64_t confirmed_as_of = 0;   // the pack's date, for what it brought
  bool complete() const { return problems.empty() && !sync.partial(); }
};

struct ImportReport {
  std::vector<ImportedRepo> repos;
  bool complete() const {
    for (const auto& r : repos) {
      if (!r.complete()) return false;
    }
    return true;
  }
};

// Errors: kFailedPrecondition for a repository the node does not trust (naming its root key
// fingerprints), kVerificationFailed when a signature or hash does not verify, kCorruption for
// a pack that cannot be read at all, kUnavailable when the stick goes away (the store is as
// before but for verified chunks kept; the next import completes).
Result<ImportReport> import_pack(Node& node, const std::string& location,
                                 const ImportOptions& options);

}  // namespace outpost::node
