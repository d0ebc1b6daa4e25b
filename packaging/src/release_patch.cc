#include "outpost/packaging/release_patch.h"

#include <algorithm>
#include <string_view>

#include "outpost/packaging/delta.h"
#include "outpost/packaging/layout.h"

namespace outpost::packaging {

std::vector<std::string> release_patch_bundles(const UpdateFile& file) {
  const std::string whole = library_manifest_name("");
  const std::string thin = thin_manifest_name("");
  std::vector<std::string> bundles;
  for (const UpdateEntry& e : file.entries) {
    for (const std::string* prefix : {&whole, &thin}) {
      if (e.name.size() > prefix->size() && e.name.compare(0, prefix->size(), *prefix) == 0) {
        bundles.push_back(e.name.substr(prefix->size()));
      }
    }
  }
  return bundles;
}

Result<Bytes> encode_release_patch(const std::vector<ReleasePart>& parts, int level) {
  Bytes from;
  Bytes to;
  Bytes out(kReleasePatchMagic, kReleasePatchMagic + sizeof kReleasePatchMagic);
  put_varint(out, parts.size());
  for (const ReleasePart& p : parts) {
    if (from.size() + to.size() + p.old_content.size() + p.new_content.size() >
        kMaxReleasePatchContent) {
      return Status::InvalidArgument("release patch: more than " +
                                     std::to_string(kMaxReleasePatchContent) + " bytes of content");
    }
    put_varint(out, p.old_content.size());
    put_varint(out, p.new_content.size());
    from.insert(from.end(), p.old_content.begin(), p.old_content.end());
    to.insert(to.end(), p.new_content.begin(), p.new_content.end());
  }
  // The suffix engine, which keeps zstd's coding where that is smaller (delta.h).
  DeltaParams params;
  params.engine = DeltaEngine::kSuffix;
  params.level = level;
  OUTPOST_ASSIGN_OR_RETURN(Bytes patch, encode_delta(ByteView(from), ByteView(to), params));
  out.insert(out.end(), patch.begin(), patch.end());
  return out;
}

Result<std::vector<Bytes>> apply_release_patch(ByteView data, std::size_t parts,
                                               const ReleaseOldContent& old_content) {
  auto bad = [](const std::string& what) { return Status::Corruption("release patch: " + what); };
  if (data.size() < sizeof kReleasePatchMagic ||
      !std::equal(kReleasePatchMagic, kReleasePatchMagic + sizeof kReleasePatchMagic,
                  data.begin())) {
    return bad("wrong magic");
  }
  std::size_t pos = sizeof kReleasePatchMagic;
  const auto count = get_varint(data, &pos);
  if (!count || *count != parts) return bad("its parts are not the update file's manifests");
  std::vector<std::pair<std::uint64_t, std::uint64_t>> sizes;  // old, new
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < parts; ++i) {
    const auto old_size = get_varint(data, &pos);
    const auto new_size = get_varint(data, &pos);
    if (!old_size || !new_size || *old_size > kMaxReleasePatchContent ||
        *new_size > kMaxReleasePatchContent ||
        (total += *old_size + *new_size) > kMaxReleasePatchContent) {
      return bad("truncated, or more content than a node holds in memory");
    }
    sizes.emplace_back(*old_size, *new_size);
  }
  Bytes from;
  std::uint64_t to_size = 0;
  for (std::size_t i = 0; i < parts; ++i) {
    const auto [old_size, new_size] = sizes[i];
    to_size += new_size;
    std::optional<Bytes> held = old_size == 0 ? std::nullopt : old_content(i, old_size);
    if (held && held->size() == old_size) {
      from.insert(from.end(), held->begin(), held->end());
    } else {
      from.resize(from.size() + old_size, 0);
    }
  }
  OUTPOST_ASSIGN_OR_RETURN(Bytes to, apply_delta(ByteView(from), data.subspan(pos), to_size));
  Bytes().swap(from);  // the old contents are done with before the new ones are split
  std::vector<Bytes> out;
  out.reserve(parts);
  std::size_t at = 0;
  for (const auto& [old_size, new_size] : sizes) {
    (void)old_size;
    out.emplace_back(to.begin() + static_cast<std::ptrdiff_t>(at),
                     to.begin() + static_cast<std::ptrdiff_t>(at + new_size));
    at += new_size;
  }
  return out;
}

}  // namespace outpost::packaging
