#include "outpost/packaging/manifest.h"

#include <catch2/catch.hpp>
#include <string>

#include "outpost/base/json.h"
#include "outpost/crypto/hash.h"
#include "outpost/packaging/content.h"

namespace op = outpost::packaging;
using outpost::Bytes;
using outpost::Code;
using outpost::Json;

namespace {

op::Manifest sample_manifest() {
  REQUIRE(outpost::crypto::init());
  op::Manifest m;
  m.bundle = "un/ga/A-RES-75-202";
  m.version = 3;
  m.kind = "resolution";
  m.meta = Json::object();
  m.meta.set("symbol", "A/RES/75/202");
  m.meta.set("session", 75);
  m.meta.set("languages", Json(Json::Array{Json("en"), Json("fr")}));
  m.published = 1795887780;  // 2026-11-28T17:43:00Z
  m.files = {{"A-RES-75-202.en.md", 42027, 0644, "text/markdown"},
             {"bundle.json", 456, 0644, "application/json"},
             {"tools/run.sh", 10, 0755, "application/octet-stream"}};
  m.content_size = 42027 + 456 + 10;
  m.content_root = outpost::crypto::blake2b(outpost::as_bytes("content"));
  m.index.blake2b = outpost::crypto::blake2b(outpost::as_bytes("index"));
  m.index.path = op::index_object_path(m.index.blake2b);
  m.index.length = 24 + 32 + 12 + 52 * 9;
  op::PatchRef full;
  full.from = 0;
  full.engine = op::DeltaEngine::kZstd;
  full.blake2b = outpost::crypto::blake2b(outpost::as_bytes("full patch"));
  full.path = op::patch_object_path(full.blake2b);
  full.length = 14000;
  op::PatchRef delta;
  delta.from = 2;
  delta.from_root = outpost::crypto::blake2b(outpost::as_bytes("content 2"));
  delta.from_manifest = outpost::crypto::sha256(outpost::as_bytes("manifest 2"));
  delta.engine = op::DeltaEngine::kSuffix;
  delta.blake2b = outpost::crypto::blake2b(outpost::as_bytes("patch from 2"));
  delta.path = op::patch_object_path(delta.blake2b);
  delta.length = 321;
  m.patches = {full, delta};
  return m;
}

// Parses `m` re-encoded after `edit` changed its JSON form.
outpost::Result<op::Manifest> parse_edited(const op::Manifest& m, void (*edit)(Json&)) {
  auto j = outpost::parse_json(outpost::as_chars(m.encode()));
  REQUIRE(j.ok());
  Json doc = *j;
  edit(doc);
  return op::Manifest::parse(outpost::to_bytes(doc.canonical()));
}

Json& files_of(Json& doc) { return const_cast<Json&>(*doc.find("files")); }
Json& column(Json& doc, const char* name) { return const_cast<Json&>(*files_of(doc).find(name)); }
Json& patch(Json& doc, std::size_t i) {
  return const_cast<Json&>(*doc.find("patches")).as_array()[i];
}

}  // namespace

TEST_CASE("a manifest round-trips through its canonical JSON", "[packaging][manifest]") {
  const op::Manifest m = sample_manifest();
  const Bytes bytes = m.encode();
  const std::string text(outpost::as_chars(bytes));
  CHECK(text.find("\"published\":\"2026-11-28T17:43:00Z\"") != std::string::npos);
  CHECK(text.find("\"_type\":\"outpost/manifest\"") != std::string::npos);
  CHECK(text.find("\"algorithm\":\"fastcdc2020\"") != std::string::npos);
  auto parsed = op::Manifest::parse(bytes);
  REQUIRE(parsed.ok());
  CHECK(*parsed == m);
  CHECK(parsed->encode() == bytes);
  CHECK(parsed->target_path() == "un/ga/A-RES-75-202/manifest.json");
}

TEST_CASE("bundle names follow the naming rules", "[packaging][manifest]") {
  for (const char* ok :
       {"un/ga", "un/ga/A-RES-75-202", "itu/ict/mobile-broadband", "a/b/c/d/e/f", "a.b/c_d/E-9"}) {
    INFO(ok);
    CHECK(op::validate_bundle_name(ok).ok());
  }
  for (const char* bad :
       {"", "un", "un/", "/un/ga", "un//ga", "un/ga/..", "../un/ga", "un/./ga", "un/ga/a b",
        "un\\ga", "un/ga/é", "a/b/c/d/e/f/g", "un/ga/x\n", "un/ga/.draft", "un/.hidden/x"}) {
    INFO(bad);
    CHECK(op::validate_bundle_name(bad).code() == Code::kInvalidArgument);
  }
  CHECK(op::validate_bundle_name("un/" + std::string(65, 'a')).code() == Code::kInvalidArgument);
  CHECK(op::validate_bundle_name("un/" + std::string(64, 'a')).ok());
  CHECK(op::validate_bundle_name(std::string("un/g\0a", 6)).code() == Code::kInvalidArgument);
  CHECK(op::validate_bundle_prefix("un").ok());
  CHECK(op::validate_bundle_prefix("un/ga").ok());
}

TEST_CASE("file paths that could escape the bundle folder are refused", "[packaging][manifest]") {
  for (const char* ok : {"a", "data/regions/AD.js", "A-RES-75-202.en.md", "résolution.md",
                         ".hidden", "a..b", "...", "x/y z/w"}) {
    INFO(ok);
    CHECK(op::validate_file_path(ok).ok());
  }
  for (const char* bad : {"", "..", "../etc/passwd", "a/../../b", "a/..", "/etc/passwd", "./a",
                          "a/./b", "a//b", "a/", "a\\b", "..\\..\\windows", "a\nb", "a\tb", "a\x7f",
                          "\xc2\x85x", "\xff\xfe", "\xc0\xaf", "\xed\xa0\x80"}) {
    INFO(bad);
    CHECK(op::validate_file_path(bad).code() == Code::kInvalidArgument);
  }
  CHECK(op::validate_file_path(std::string("a\0b", 3)).code() == Code::kInvalidArgument);
  CHECK(op::validate_file_path(std::string(1024, 'a')).ok());
  CHECK(op::validate_file_path(std::string(1025, 'a')).code() == Code::kInvalidArgument);
}

TEST_CASE("media types come from the extension", "[packaging][manifest]") {
  CHECK(op::media_type_for("A-RES-75-202.en.md") == "text/markdown");
  CHECK(op::media_type_for("data/data.CSV") == "text/csv");
  CHECK(op::media_type_for("bundle.json") == "application/json");
  CHECK(op::media_type_for("regions/AD.js") == "text/javascript");
  CHECK(op::media_type_for("README") == "application/octet-stream");
  CHECK(op::media_type_for(".bashrc") == "application/octet-stream");
}

TEST_CASE("manifest parsing refuses anything off, naming bundle and field",
          "[packaging][manifest]") {
  const op::Manifest m = sample_manifest();
  struct Case {
    const char* name;
    void (*edit)(Json&);
    const char* message;
  };
  const Case cases[] = {
      {"escaping path", [](Json& d) { column(d, "path").as_array()[0] = Json("../../etc/passwd"); },
       "files.path[0]"},
      {"absolute path", [](Json& d) { column(d, "path").as_array()[0] = Json("/etc/passwd"); },
       "files.path[0]"},
      {"backslash path", [](Json& d) { column(d, "path").as_array()[1] = Json("c\\evil.json"); },
       "files.path[1]"},
      {"NUL in path",
       [](Json& d) { column(d, "path").as_array()[1] = Json(std::string("b\0c", 3)); },
       "files.path[1]"},
      {"unsorted paths",
       [](Json& d) { std::swap(column(d, "path").as_array()[0], column(d, "path").as_array()[1]); },
       "strictly increasing"},
      {"duplicate path",
       [](Json& d) { column(d, "path").as_array()[1] = Json("A-RES-75-202.en.md"); },
       "strictly increasing"},
      {"short column", [](Json& d) { column(d, "size").as_array().pop_back(); }, "files.size"},
      {"sizes not summing", [](Json& d) { column(d, "size").as_array()[0] = Json(1); },
       "content.size"},
      {"mode 0777", [](Json& d) { column(d, "mode").as_array()[0] = Json(511); }, "files.mode[0]"},
      {"negative size", [](Json& d) { column(d, "size").as_array()[0] = Json(-1); },
       "files.size[0]"},
      {"string size", [](Json& d) { column(d, "size").as_array()[0] = Json("42027"); },
       "files.size[0]"},
      {"bad bundle", [](Json& d) { d.set("bundle", "un/../ga"); }, "bundle"},
      {"bad kind", [](Json& d) { d.set("kind", "novel"); }, "kind"},
      {"unknown field", [](Json& d) { d.set("extra", 1); }, "extra: unknown field"},
      {"missing field", [](Json& d) { d.erase("content"); }, "content: missing"},
      {"version 0", [](Json& d) { d.set("version", 0); }, "version"},
      {"format 1", [](Json& d) { d.set("format", 1); }, "format"},
      {"format 3", [](Json& d) { d.set("format", 3); }, "format"},
      {"no patches", [](Json& d) { d.erase("patches"); }, "patches: missing"},
      {"patches not array", [](Json& d) { d.set("patches", Json::object()); }, "patches"},
      {"patch not object", [](Json& d) { patch(d, 0) = Json(1); }, "patches[0]"},
      {"unsorted patches",
       [](Json& d) {
         auto& a = const_cast<Json&>(*d.find("patches")).as_array();
         std::swap(a[0], a[1]);
       },
       "strictly increasing"},
      {"duplicate from",
       [](Json& d) {
         auto& a = const_cast<Json&>(*d.find("patches")).as_array();
         a.push_back(a[1]);
       },
       "strictly increasing"},
      {"from = version", [](Json& d) { patch(d, 1).set("from", 3); }, "patches[1].from"},
      {"negative from", [](Json& d) { patch(d, 0).set("from", -1); }, "patches[0].from"},
      {"from 0 with a root", [](Json& d) { patch(d, 0).set("from_root", std::string(64, 'a')); },
       "patches[0].from_root: unknown field"},
      {"missing from_root", [](Json& d) { patch(d, 1).erase("from_root"); },
       "patches[1].from_root: missing"},
      {"missing from_manifest", [](Json& d) { patch(d, 1).erase("from_manifest"); },
       "patches[1].from_manifest: missing"},
      {"bad from_manifest", [](Json& d) { patch(d, 1).set("from_manifest", "ABC"); },
       "patches[1].from_manifest"},
      {"unknown engine", [](Json& d) { patch(d, 1).set("engine", "bsdiff"); }, "patches[1].engine"},
      {"from 0 not zstd", [](Json& d) { patch(d, 0).set("engine", "sa"); }, "patches[0].engine"},
      {"patch path", [](Json& d) { patch(d, 1).set("path", "../../etc/passwd"); },
       "patches[1].path"},
      {"patch path of another hash",
       [](Json& d) { patch(d, 1).set("blake2b", std::string(64, '0')); }, "patches[1].path"},
      {"empty patch", [](Json& d) { patch(d, 1).set("length", 0); }, "patches[1].length"},
      {"patch far larger than the content",
       [](Json& d) { patch(d, 0).set("length", std::int64_t{1} << 40); }, "patches[0].length"},
      {"patch extra field", [](Json& d) { patch(d, 1).set("size", 1); },
       "patches[1].size: unknown field"},
      {"too many patches",
       [](Json& d) {
         auto& a = const_cast<Json&>(*d.find("patches")).as_array();
         while (a.size() <= op::kMaxManifestPatches) a.push_back(a[1]);
       },
       "at most 64"},
      {"wrong type", [](Json& d) { d.set("_type", "outpost/other"); }, "_type"},
      {"bad root", [](Json& d) { const_cast<Json&>(*d.find("content")).set("root", "abc"); },
       "content.root"},
      {"file count", [](Json& d) { const_cast<Json&>(*d.find("content")).set("files", 2); },
       "content.files"},
      {"index path",
       [](Json& d) { const_cast<Json&>(*d.find("index")).set("path", "../../x.index"); },
       "index.path"},
      {"published", [](Json& d) { d.set("published", "yesterday"); }, "published"},
      {"meta not object", [](Json& d) { d.set("meta", 1); }, "meta"},
      {"chunking", [](Json& d) { const_cast<Json&>(*d.find("chunking")).set("max", 100); },
       "chunking"},
      {"bad media type", [](Json& d) { column(d, "type").as_array()[0] = Json("text"); },
       "files.type[0]"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    auto r = parse_edited(m, c.edit);
    REQUIRE(!r.ok());
    CHECK(r.error().code() == Code::kCorruption);
    CHECK_THAT(r.error().message(), Catch::Contains(c.message));
    if (std::string(c.name) != "bad bundle") {
      CHECK_THAT(r.error().message(), Catch::Contains("manifest of un/ga/A-RES-75-202"));
    }
  }
  CHECK(op::Manifest::parse(outpost::as_bytes("[]")).error().code() == Code::kCorruption);
  CHECK(op::Manifest::parse(outpost::as_bytes("{")).error().code() == Code::kCorruption);
}

TEST_CASE("the content root covers paths, modes, sizes and bytes", "[packaging][content]") {
  REQUIRE(outpost::crypto::init());
  auto root_of = [](const char* path, std::uint32_t mode, const std::string& body) {
    op::ContentHasher h;
    REQUIRE(h.add_file(path, mode, body.size()).ok());
    REQUIRE(h.update(outpost::as_bytes(body.substr(0, 2))).ok());
    REQUIRE(h.update(outpost::as_bytes(body.substr(2))).ok());
    auto r = h.finish();
    REQUIRE(r.ok());
    return *r;
  };
  const auto base = root_of("a.txt", 0644, "hello");
  CHECK(base == root_of("a.txt", 0644, "hello"));
  CHECK(base != root_of("b.txt", 0644, "hello"));
  CHECK(base != root_of("a.txt", 0755, "hello"));
  CHECK(base != root_of("a.txt", 0644, "hellO"));

  // The documented stream, spelled out.
  Bytes stream = outpost::to_bytes("outpost-content-v1\n");
  outpost::put_u64le(stream, 5);
  for (char ch : std::string("a.txt")) stream.push_back(static_cast<std::uint8_t>(ch));
  outpost::put_u32le(stream, 0644);
  outpost::put_u64le(stream, 5);
  for (char ch : std::string("hello")) stream.push_back(static_cast<std::uint8_t>(ch));
  CHECK(base == outpost::crypto::blake2b(stream));

  op::ContentHasher more;
  REQUIRE(more.add_file("a", 0644, 3).ok());
  CHECK(more.update(outpost::as_bytes("abcd")).code() == Code::kCorruption);
  op::ContentHasher fewer;
  REQUIRE(fewer.add_file("a", 0644, 3).ok());
  REQUIRE(fewer.update(outpost::as_bytes("ab")).ok());
  CHECK(fewer.add_file("b", 0644, 0).code() == Code::kCorruption);
  op::ContentHasher fewer_last;
  REQUIRE(fewer_last.add_file("a", 0644, 3).ok());
  CHECK(!fewer_last.finish().ok());
}
