#include "outpost/packaging/layout.h"

#include <catch2/catch.hpp>

namespace op = outpost::packaging;

TEST_CASE("the repository's paths are the ones docs/format-repository.md lists",
          "[packaging][layout]") {
  outpost::crypto::Digest id{};
  for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<std::uint8_t>(0xa0 + i % 16);
  const std::string hex = outpost::crypto::hex(id);
  const std::string sha(64, 'c');

  CHECK(op::versioned_metadata_name(3, "un.ga") == "3.un.ga.json");
  CHECK(op::metadata_path("timestamp.json") == "metadata/timestamp.json");
  CHECK(op::update_file_name(12, 4) == "12.from-4.upd");
  CHECK(op::update_file_path(12, 4) == "metadata/updates/12.from-4.upd");
  CHECK(op::manifest_target_path("un/ga/A-RES-75-202") == "un/ga/A-RES-75-202/manifest.json");
  CHECK(op::manifest_file_path("un/ga/X", sha) == "targets/un/ga/X/" + sha + ".manifest.json");
  CHECK(op::compressed_manifest_file_path("un/ga/X", sha) ==
        "targets/un/ga/X/" + sha + ".manifest.json.zst");
  CHECK(op::history_file_path("un/ga/X") == "targets/un/ga/X/.history.json");
  CHECK(op::index_object_path(id) == "objects/a0/" + hex + ".index");
  CHECK(op::patch_object_path(id) == "objects/a0/" + hex + ".patch");
  CHECK(op::pack_object_path(id) == "packs/" + hex + ".pack");
}

TEST_CASE("a target path names a bundle only when it is a manifest's", "[packaging][layout]") {
  CHECK(op::bundle_of_target("un/ga/X/manifest.json") == "un/ga/X");
  CHECK_FALSE(op::bundle_of_target("/manifest.json"));
  CHECK_FALSE(op::bundle_of_target("manifest.json"));
  CHECK_FALSE(op::bundle_of_target("un/ga/X/data.csv"));
  CHECK(op::is_manifest_file_name(std::string(64, 'c') + ".manifest.json"));
  CHECK_FALSE(op::is_manifest_file_name(std::string(63, 'c') + ".manifest.json"));
  CHECK_FALSE(op::is_manifest_file_name(".history.json"));
}

TEST_CASE("a manifest's repository path names its bundle by its folder", "[packaging][layout]") {
  const std::string sha(64, 'c');
  CHECK(op::bundle_of_targets_file(op::manifest_file_path("un/ga/X", sha)) == "un/ga/X");
  CHECK(op::bundle_of_targets_file(op::compressed_manifest_file_path("un/ga/X", sha)) == "un/ga/X");
  CHECK_FALSE(op::bundle_of_targets_file("targets/" + sha + ".manifest.json"));
  CHECK_FALSE(op::bundle_of_targets_file("targets//x.manifest.json"));
  CHECK_FALSE(op::bundle_of_targets_file("objects/a0/" + sha + ".patch"));
  CHECK_FALSE(op::bundle_of_targets_file("manifest/un/ga/X"));
}
