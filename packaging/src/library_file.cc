#include "library_file.h"

#include <zstd.h>

#include <map>
#include <memory>
#include <set>

#include "outpost/crypto/hash.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/delta.h"
#include "outpost/packaging/layout.h"
#include "outpost/packaging/manifest.h"
#include "outpost/packaging/update_file.h"
#include "repo_files.h"

namespace outpost::packaging::repo_detail {

namespace {

constexpr int kLibraryLevel = 19;
constexpr int kLibraryWindowLog = 27;  // what a node's decompressor accepts by default

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

Result<Bytes> compress_long(ByteView raw) {
  std::unique_ptr<ZSTD_CCtx, CCtxFree> c(ZSTD_createCCtx());
  if (!c) return Status::Internal("zstd: out of memory");
  std::size_t r = ZSTD_CCtx_setParameter(c.get(), ZSTD_c_compressionLevel, kLibraryLevel);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c.get(), ZSTD_c_enableLongDistanceMatching, 1);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c.get(), ZSTD_c_windowLog, kLibraryWindowLog);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c.get(), ZSTD_c_contentSizeFlag, 1);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setPledgedSrcSize(c.get(), raw.size());
  if (ZSTD_isError(r)) return Status::Internal(std::string("zstd: ") + ZSTD_getErrorName(r));
  Bytes out(ZSTD_compressBound(raw.size()));
  r = ZSTD_compress2(c.get(), out.data(), out.size(), raw.data(), raw.size());
  if (ZSTD_isError(r)) return Status::Internal(std::string("zstd: ") + ZSTD_getErrorName(r));
  out.resize(r);
  return out;
}

}  // namespace

Result<bool> write_library_file(const std::string& repo, const RepositoryState& st,
                                FileSystem& fs) {
  UpdateFile lib;
  std::int64_t latest_root = st.root.version;
  while (real_fs().exists(repo_metadata(repo, versioned_metadata_name(latest_root + 1, "root"))))
    ++latest_root;
  lib.latest_root = static_cast<std::uint32_t>(latest_root);
  auto add_file = [&](const std::string& name, const std::string& relative) -> Status {
    OUTPOST_ASSIGN_OR_RETURN(Bytes b, read_repo_file(in_repo(repo, relative), kMaxMetadataBytes));
    OUTPOST_ASSIGN_OR_RETURN(UpdateEntry e, make_stored_entry(name, b));
    lib.entries.push_back(std::move(e));
    return Status::Ok();
  };
  const std::string snap = versioned_metadata_name(st.snapshot.version, "snapshot");
  OUTPOST_RETURN_IF_ERROR(add_file(snap, metadata_path(snap)));
  for (const auto& [meta_file, info] : st.snapshot.meta) {
    const std::string name =
        versioned_metadata_name(info.version, meta_file.substr(0, meta_file.size() - 5));
    OUTPOST_RETURN_IF_ERROR(add_file(name, metadata_path(name)));
  }
  // Every bundle, in name order: its manifest and its content stream (the patch from 0
  // applied), named by the content root.
  std::map<std::string, const crypto::tuf::TargetFile*> bundles;
  for (const auto& [role, t] : st.roles) {
    (void)role;
    for (const auto& [path, tf] : t.targets) {
      if (auto b = bundle_of_target(path)) bundles.emplace(*b, &tf);
    }
  }
  std::uint64_t raw_total = 0;
  std::set<std::string> streams;  // identical contents are carried once
  std::vector<UpdateEntry> contents;
  for (const auto& [bundle, tf] : bundles) {
    const std::string mpath = manifest_file_path(bundle, tf->sha256);
    OUTPOST_ASSIGN_OR_RETURN(Bytes mbytes, read_repo_file(in_repo(repo, mpath), kMaxManifestBytes));
    OUTPOST_ASSIGN_OR_RETURN(Manifest m, Manifest::parse(mbytes));
    const std::uint64_t size = content_stream_size(m);
    raw_total += size + mbytes.size();
    if (raw_total > kLibraryMaxRaw) return false;
    const PatchRef* full = nullptr;
    for (const auto& p : m.patches) {
      if (p.from == 0) full = &p;
    }
    if (full == nullptr) return false;
    OUTPOST_ASSIGN_OR_RETURN(Bytes patch, read_repo_file(in_repo(repo, full->path), full->length));
    OUTPOST_ASSIGN_OR_RETURN(Bytes stream, apply_delta(ByteView(), patch, size));
    OUTPOST_ASSIGN_OR_RETURN(UpdateEntry me, make_stored_entry(mpath, mbytes));
    lib.entries.push_back(std::move(me));
    OUTPOST_ASSIGN_OR_RETURN(UpdateEntry ce,
                             make_stored_entry(content_entry_name(m.content_root), stream));
    if (streams.insert(ce.name).second) contents.push_back(std::move(ce));
  }
  // Manifests together, then contents together: like with like compresses better.
  for (UpdateEntry& e : contents) lib.entries.push_back(std::move(e));
  OUTPOST_ASSIGN_OR_RETURN(Bytes encoded, encode_update_file(lib));
  OUTPOST_ASSIGN_OR_RETURN(Bytes packed, compress_long(encoded));
  OUTPOST_RETURN_IF_ERROR(
      write_repo_file(repo, update_file_path(st.snapshot.version, 0), packed, fs));
  return true;
}

}  // namespace outpost::packaging::repo_detail
