// Release patches (release_patch.h): one patch for the changed bundles of a release.
#include "outpost/packaging/release_patch.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "outpost/packaging/delta.h"
#include "outpost/packaging/layout.h"

namespace op = outpost::packaging;
using outpost::Bytes;
using outpost::ByteView;
using outpost::Code;

namespace {

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

// A data file like caniuse-lite's: a table of browser versions and support flags, one per
// bundle (`seed`), to which a release adds the same new version row.
Bytes data_file(int seed, bool with_new_version) {
  std::string s = "{\"feature\":\"f" + std::to_string(seed) + "\",\"stats\":{";
  std::uint64_t x = static_cast<std::uint64_t>(seed) * 2654435761u + 1;
  for (int v = 1; v <= 60; ++v) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    s += "\"" + std::to_string(v) + "\":\"" + ((x >> 33) % 3 == 0 ? "n" : "y") + "\",";
  }
  if (with_new_version) s += "\"61\":\"y #4 partial support since release 61\",";
  return text(s + "}}");
}

std::vector<op::ReleasePart> parts_of(const std::vector<Bytes>& olds,
                                      const std::vector<Bytes>& news) {
  std::vector<op::ReleasePart> parts;
  for (std::size_t i = 0; i < olds.size(); ++i) parts.push_back({olds[i], news[i]});
  return parts;
}

}  // namespace

TEST_CASE(
    "a release patch rebuilds every changed bundle from the versions held in fewer "
    "bytes than a patch per bundle",
    "[packaging][release_patch]") {
  std::vector<Bytes> olds;
  std::vector<Bytes> news;
  for (int i = 0; i < 200; ++i) {
    olds.push_back(data_file(i, false));
    news.push_back(data_file(i, true));
  }
  olds.push_back({});  // a bundle new in this release
  news.push_back(data_file(999, true));
  auto patch = op::encode_release_patch(parts_of(olds, news), op::kDefaultPatchLevel);
  REQUIRE(patch.ok());

  std::uint64_t one_by_one = 0;
  for (std::size_t i = 0; i < olds.size(); ++i) {
    auto p = op::encode_delta(olds[i], news[i]);
    REQUIRE(p.ok());
    one_by_one += p->size();
  }
  // The edit is coded once and copied for the other 199.
  CHECK(patch->size() * 4 < one_by_one);

  auto rebuilt = op::apply_release_patch(*patch, olds.size(), [&](std::size_t i, std::uint64_t) {
    return std::optional<Bytes>(olds[i]);
  });
  REQUIRE(rebuilt.ok());
  CHECK(*rebuilt == news);
}

TEST_CASE(
    "a bundle held at another version than the publisher joined spoils its own part and "
    "not the others",
    "[packaging][release_patch]") {
  // Contents that share nothing, so that each part copies from its own old content only (a
  // part that copied from bundle 3's would come out wrong too, and fall back the same way).
  std::vector<Bytes> olds;
  std::vector<Bytes> news;
  std::uint64_t x = 7;
  for (int i = 0; i < 8; ++i) {
    Bytes b(3000);
    for (auto& c : b) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      c = static_cast<std::uint8_t>(x >> 56);
    }
    olds.push_back(b);
    b.insert(b.begin() + 1000, {'n', 'e', 'w'});
    news.push_back(b);
  }
  auto patch = op::encode_release_patch(parts_of(olds, news), op::kDefaultPatchLevel);
  REQUIRE(patch.ok());

  // The node holds an older version of bundle 3 (shorter) and none of bundle 5.
  auto rebuilt = op::apply_release_patch(
      *patch, olds.size(), [&](std::size_t i, std::uint64_t size) -> std::optional<Bytes> {
        if (i == 5) return std::nullopt;
        Bytes held = i == 3 ? Bytes(olds[i].begin(), olds[i].end() - 9) : olds[i];
        if (held.size() != size) return std::nullopt;  // as a node does: only that size
        return held;
      });
  REQUIRE(rebuilt.ok());
  REQUIRE(rebuilt->size() == news.size());
  for (std::size_t i = 0; i < news.size(); ++i) {
    INFO("part " << i);
    CHECK(((*rebuilt)[i] == news[i]) == (i != 3 && i != 5));
    CHECK((*rebuilt)[i].size() == news[i].size());
  }
}

TEST_CASE("a malformed release patch is refused as corrupt whatever is wrong in it",
          "[packaging][release_patch]") {
  const std::vector<Bytes> olds = {data_file(1, false), data_file(2, false)};
  const std::vector<Bytes> news = {data_file(1, true), data_file(2, true)};
  auto patch = op::encode_release_patch(parts_of(olds, news), op::kDefaultPatchLevel);
  REQUIRE(patch.ok());
  auto held = [&](std::size_t i, std::uint64_t) { return std::optional<Bytes>(olds[i]); };
  auto refused = [&](const Bytes& bytes, std::size_t parts) {
    auto r = op::apply_release_patch(bytes, parts, held);
    return !r.ok() && r.error().code() == Code::kCorruption;
  };

  CHECK(refused(*patch, 3));  // the update file has three manifests, the patch two parts
  Bytes magic = *patch;
  magic[0] = 'X';
  CHECK(refused(magic, 2));
  for (std::size_t cut :
       {std::size_t{0}, std::size_t{4}, std::size_t{6}, patch->size() / 2, patch->size() - 1}) {
    INFO("cut at " << cut);
    CHECK(refused(Bytes(patch->begin(), patch->begin() + static_cast<std::ptrdiff_t>(cut)), 2));
  }
  // Sizes past what a node holds in memory: refused before anything is read or allocated.
  Bytes huge = text("OPRP");
  huge.push_back(2);
  for (int i = 0; i < 2; ++i) {
    outpost::put_varint(huge, 0);
    outpost::put_varint(huge, op::kMaxReleasePatchContent / 2 + 1);
  }
  CHECK(refused(huge, 2));
  // More content than that is never written either.
  const Bytes big(op::kMaxReleasePatchContent / 2 + 1, 'x');
  auto too_big = op::encode_release_patch({{big, big}}, 1);
  REQUIRE_FALSE(too_big.ok());
  CHECK(too_big.error().code() == Code::kInvalidArgument);
}

TEST_CASE("a release patch's parts are the update file's manifests in table order",
          "[packaging][release_patch]") {
  op::UpdateFile f;
  for (const std::string& name : std::vector<std::string>{
           "7.snapshot.json", "3.un.json", op::thin_manifest_name("un/ga/b"),
           op::library_manifest_name("un/ga/a"), "targets/un/ga/c/00.manifest.json",
           op::thin_patch_name("un/ga/b"), op::thin_manifest_name("un/ga/0"),
           std::string(op::kReleasePatchName)}) {
    op::UpdateEntry e;
    e.name = name;
    f.entries.push_back(e);
  }
  CHECK(op::release_patch_bundles(f) == std::vector<std::string>{"un/ga/b", "un/ga/a", "un/ga/0"});
}
