#include "outpost/packaging/layout.h"

namespace outpost::packaging {

namespace {

constexpr std::string_view kManifestSuffix = "/manifest.json";
constexpr std::string_view kManifestFileSuffix = ".manifest.json";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string object_path(const crypto::Digest& id, std::string_view extension) {
  const std::string h = crypto::hex(id);
  return std::string(kObjectsDir) + "/" + h.substr(0, 2) + "/" + h + std::string(extension);
}

}  // namespace

std::string versioned_metadata_name(std::int64_t version, std::string_view role) {
  return std::to_string(version) + "." + std::string(role) + ".json";
}

std::string metadata_path(std::string_view name) {
  return std::string(kMetadataDir) + "/" + std::string(name);
}

std::string update_file_name(std::int64_t to_snapshot, std::int64_t from_snapshot) {
  return std::to_string(to_snapshot) + ".from-" + std::to_string(from_snapshot) + ".upd";
}

std::string update_file_path(std::int64_t to_snapshot, std::int64_t from_snapshot) {
  return std::string(kUpdatesDir) + "/" + update_file_name(to_snapshot, from_snapshot);
}

std::string manifest_target_path(std::string_view bundle) {
  return std::string(bundle) + std::string(kManifestSuffix);
}

std::optional<std::string> bundle_of_target(std::string_view target_path) {
  if (target_path.size() <= kManifestSuffix.size() || !ends_with(target_path, kManifestSuffix)) {
    return std::nullopt;
  }
  return std::string(target_path.substr(0, target_path.size() - kManifestSuffix.size()));
}

std::string bundle_manifest_dir(std::string_view bundle) {
  return std::string(kTargetsDir) + "/" + std::string(bundle) + "/";
}

std::string manifest_file_path(std::string_view bundle, std::string_view sha256_hex) {
  return bundle_manifest_dir(bundle) + std::string(sha256_hex) + std::string(kManifestFileSuffix);
}

std::string compressed_manifest_file_path(std::string_view bundle, std::string_view sha256_hex) {
  return manifest_file_path(bundle, sha256_hex) + ".zst";
}

std::optional<std::string> bundle_of_targets_file(std::string_view path) {
  const std::string prefix = std::string(kTargetsDir) + "/";
  const std::size_t slash = path.rfind('/');
  if (path.rfind(prefix, 0) != 0 || slash == std::string_view::npos || slash <= prefix.size()) {
    return std::nullopt;
  }
  return std::string(path.substr(prefix.size(), slash - prefix.size()));
}

bool is_manifest_file_name(std::string_view name) {
  return name.size() == 64 + kManifestFileSuffix.size() && ends_with(name, kManifestFileSuffix);
}

std::string history_file_path(std::string_view bundle) {
  return bundle_manifest_dir(bundle) + ".history.json";
}

std::string index_object_path(const crypto::Digest& blake2b) {
  return object_path(blake2b, ".index");
}

std::string content_entry_name(const crypto::Digest& content_root) {
  return "content/" + crypto::hex(content_root);
}

std::string library_content_name(std::string_view bundle) {
  return "content-of/" + std::string(bundle);
}

std::string library_manifest_name(std::string_view bundle) {
  return "manifest/" + std::string(bundle);
}

std::string thin_manifest_name(std::string_view bundle) {
  return "thin-manifest/" + std::string(bundle);
}

std::string thin_patch_name(std::string_view bundle) { return "thin-patch/" + std::string(bundle); }

std::string patch_object_path(const crypto::Digest& blake2b) {
  return object_path(blake2b, ".patch");
}

std::optional<std::string> carried_patch_name(std::string_view patch_path) {
  // "objects/" + 2 hex + "/" + 64 hex + ".patch"
  constexpr std::string_view kDir = "objects/", kSuffix = ".patch";
  constexpr std::size_t kHexAt = kDir.size() + 3;
  if (patch_path.size() != kHexAt + 64 + kSuffix.size() ||
      patch_path.substr(0, kDir.size()) != kDir || !ends_with(patch_path, kSuffix) ||
      patch_path[kDir.size() + 2] != '/') {
    return std::nullopt;
  }
  return "patch/" + std::string(patch_path.substr(kHexAt, 16));
}

}  // namespace outpost::packaging
