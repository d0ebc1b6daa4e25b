// The content stream (content.h): what the content root hashes, what patches go between, and
// how a node splits a rebuilt stream back into files.
#include "outpost/packaging/content.h"

#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "outpost/crypto/hash.h"
#include "support/test_support.h"

namespace op = outpost::packaging;
using outpost::Bytes;
using outpost::ByteView;
using outpost::Code;
using outpost::Status;

namespace {

struct Files {
  op::Manifest manifest;
  std::map<std::string, Bytes> bytes;
};

Files sample() {
  REQUIRE(outpost::crypto::init());
  Files f;
  f.manifest.bundle = "un/ga/X";
  f.bytes["a.md"] = outpost::to_bytes("Recalling its resolution 74/197\n");
  f.bytes["b/empty.txt"] = {};
  f.bytes["c.bin"] = outpost::test::random_bytes(100000, 7);
  for (const auto& [path, b] : f.bytes) {
    const std::uint32_t mode = path == "c.bin" ? op::kModeExecutable : op::kModeRegular;
    f.manifest.files.push_back({path, b.size(), mode, op::media_type_for(path)});
    f.manifest.content_size += b.size();
  }
  return f;
}

Bytes stream_of(const Files& f) {
  Bytes out;
  Status s = op::write_content_stream(
      f.manifest,
      [&](std::size_t, const op::FileEntry& e, const op::ContentSink& sink) {
        const Bytes& b = f.bytes.at(e.path);
        // In two pieces, to exercise piecewise readers.
        const std::size_t half = b.size() / 2;
        if (Status s1 = sink(ByteView(b).first(half)); !s1.ok()) return s1;
        return sink(ByteView(b).subspan(half));
      },
      [&](ByteView b) {
        out.insert(out.end(), b.begin(), b.end());
        return Status::Ok();
      });
  REQUIRE(s.ok());
  return out;
}

// Splits `stream` fed in pieces of `piece` bytes; returns the status and the files seen.
Status split(const op::Manifest& m, ByteView stream, std::size_t piece,
             std::map<std::string, Bytes>& files) {
  op::ContentSplitter splitter(
      m, [&](std::size_t, const op::FileEntry& e, std::uint64_t offset, ByteView bytes) {
        Bytes& out = files[e.path];
        if (offset != out.size()) return Status::Internal("offset out of order");
        out.insert(out.end(), bytes.begin(), bytes.end());
        return Status::Ok();
      });
  for (std::size_t at = 0; at < stream.size(); at += piece) {
    Status s = splitter.update(stream.subspan(at, std::min(piece, stream.size() - at)));
    if (!s.ok()) return s;
  }
  return splitter.finish();
}

}  // namespace

TEST_CASE("the content stream is what the content root hashes", "[packaging][content]") {
  const Files f = sample();
  const Bytes stream = stream_of(f);
  CHECK(stream.size() == op::content_stream_size(f.manifest));
  op::ContentHasher h;
  for (const auto& e : f.manifest.files) {
    REQUIRE(h.add_file(e.path, e.mode, e.size).ok());
    REQUIRE(h.update(f.bytes.at(e.path)).ok());
  }
  auto root = h.finish();
  REQUIRE(root.ok());
  CHECK(outpost::crypto::blake2b(stream) == *root);
  CHECK(std::string(outpost::as_chars(ByteView(stream).first(19))) == "outpost-content-v1\n");
}

TEST_CASE("a content stream splits back into its files in pieces of any size",
          "[packaging][content]") {
  const Files f = sample();
  const Bytes stream = stream_of(f);
  for (std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{4096}, stream.size()}) {
    INFO("piece " << piece);
    std::map<std::string, Bytes> files;
    REQUIRE(split(f.manifest, stream, piece, files).ok());
    CHECK(files == f.bytes);  // the empty file is seen too
  }
}

TEST_CASE("a content stream that disagrees with the manifest is corrupt", "[packaging][content]") {
  const Files f = sample();
  const Bytes stream = stream_of(f);
  auto expect_corrupt = [&](const op::Manifest& m, ByteView s, const char* what) {
    INFO(what);
    std::map<std::string, Bytes> files;
    Status st = split(m, s, 13, files);
    CHECK(st.code() == Code::kCorruption);
  };
  op::Manifest renamed = f.manifest;
  renamed.files[0].path = "a.mx";
  expect_corrupt(renamed, stream, "another path");
  op::Manifest mode = f.manifest;
  mode.files[2].mode = op::kModeRegular;
  expect_corrupt(mode, stream, "another mode");
  op::Manifest shorter = f.manifest;
  shorter.files[2].size -= 1;
  expect_corrupt(shorter, stream, "another size");
  expect_corrupt(f.manifest, ByteView(stream).first(stream.size() - 1), "truncated");
  Bytes longer = stream;
  longer.push_back(0);
  expect_corrupt(f.manifest, longer, "a byte after the last file");
  Bytes magic = stream;
  magic[3] ^= 1;
  expect_corrupt(f.manifest, magic, "wrong magic");
  op::Manifest fewer = f.manifest;
  fewer.files.pop_back();
  expect_corrupt(fewer, stream, "a file the manifest does not list");

  // A reader giving the wrong number of bytes is caught while writing.
  for (int delta : {-1, 1}) {
    Status s = op::write_content_stream(
        f.manifest,
        [&](std::size_t, const op::FileEntry& e, const op::ContentSink& sink) {
          Bytes b = f.bytes.at(e.path);
          if (e.path == "a.md") {
            if (delta < 0) {
              b.pop_back();
            } else {
              b.push_back(0);
            }
          }
          return sink(b);
        },
        [](ByteView) { return Status::Ok(); });
    CHECK(s.code() == Code::kCorruption);
  }
}
