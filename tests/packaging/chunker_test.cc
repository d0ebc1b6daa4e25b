#include "outpost/packaging/chunker.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <set>

#include "outpost/crypto/hash.h"
#include "support/test_support.h"

// Cross-checked against an independent port of fastcdc-rs v2020 (level 2) over the same data.
#define GOLDEN_CUTS 9264, 10835, 11874, 5005, 5259, 10061

namespace op = outpost::packaging;
using outpost::Bytes;
using outpost::ByteView;
using outpost::Result;
using outpost::Status;

namespace {

// Chunks an in-memory buffer, handing it to the chunker in reads of the given sizes (cycled).
std::vector<std::size_t> chunk_lengths(ByteView data, const op::ChunkerParams& params,
                                       std::vector<std::size_t> read_sizes = {1u << 20}) {
  std::vector<std::size_t> lengths;
  std::size_t pos = 0;
  std::size_t k = 0;
  auto read = [&](std::span<std::uint8_t> dst) -> Result<std::size_t> {
    const std::size_t want =
        std::min({dst.size(), read_sizes[k++ % read_sizes.size()], data.size() - pos});
    if (want > 0) std::memcpy(dst.data(), data.data() + pos, want);
    pos += want;
    return want;
  };
  Status s = op::chunk_stream(read, params, [&](ByteView c) {
    lengths.push_back(c.size());
    return Status::Ok();
  });
  REQUIRE(s.ok());
  return lengths;
}

std::vector<outpost::crypto::Digest> chunk_ids(ByteView data) {
  std::vector<outpost::crypto::Digest> ids;
  std::size_t pos = 0;
  for (std::size_t len : chunk_lengths(data, {})) {
    ids.push_back(outpost::crypto::blake2b(data.subspan(pos, len)));
    pos += len;
  }
  return ids;
}

}  // namespace

TEST_CASE("FastCDC cut points are deterministic whatever the read sizes", "[packaging][chunker]") {
  const Bytes data = outpost::test::random_bytes(3u << 20, 7);
  const auto whole = chunk_lengths(data, {});
  const auto tiny_reads = chunk_lengths(data, {}, {1, 7, 4096, 65535, 3, 100000});
  CHECK(whole == tiny_reads);
  CHECK(chunk_lengths(data, {}) == whole);  // and again
  std::size_t total = 0;
  for (auto n : whole) total += n;
  CHECK(total == data.size());

  // Chunker::next_cut over the whole buffer at once gives the same cuts.
  op::Chunker chunker;
  std::vector<std::size_t> direct;
  for (std::size_t pos = 0; pos < data.size();) {
    const std::size_t cut = chunker.next_cut(ByteView(data).subspan(pos), true);
    REQUIRE(cut > 0);
    direct.push_back(cut);
    pos += cut;
  }
  CHECK(direct == whole);

  // Golden values: the cut points are part of the repository format and must never change.
  // (xorshift data from test_support::random_bytes(3 MiB, seed 7); fastcdc2020 level 2,
  // 2048/8192/65536.)
  const std::vector<std::size_t> first(whole.begin(), whole.begin() + 6);
  INFO("first cut points: " << first[0] << " " << first[1] << " " << first[2] << " " << first[3]
                            << " " << first[4] << " " << first[5]);
  CHECK(first == std::vector<std::size_t>{GOLDEN_CUTS});
}

TEST_CASE("FastCDC honours min and max, and averages near avg", "[packaging][chunker]") {
  const op::ChunkerParams params;
  SECTION("random data") {
    const Bytes data = outpost::test::random_bytes(4u << 20, 11);
    const auto lengths = chunk_lengths(data, params);
    for (std::size_t i = 0; i + 1 < lengths.size(); ++i) {
      CHECK(lengths[i] >= params.min);
      CHECK(lengths[i] <= params.max);
    }
    CHECK(lengths.back() <= params.max);
    const double avg = static_cast<double>(data.size()) / static_cast<double>(lengths.size());
    INFO("average chunk " << avg);
    CHECK(avg > 6000);
    CHECK(avg < 14000);
  }
  SECTION("zeros cut at max") {
    const Bytes data(200000, 0);
    const auto lengths = chunk_lengths(data, params);
    REQUIRE(lengths.size() == 4);
    CHECK(lengths[0] == params.max);
    CHECK(lengths[1] == params.max);
    CHECK(lengths[2] == params.max);
    CHECK(lengths[3] == 200000 - 3 * params.max);
  }
  SECTION("small and empty inputs") {
    CHECK(chunk_lengths(Bytes(100, 1), params) == std::vector<std::size_t>{100});
    CHECK(chunk_lengths(Bytes(params.min, 1), params) == std::vector<std::size_t>{params.min});
    CHECK(chunk_lengths(Bytes(), params).empty());
  }
  SECTION("next_cut asks for more bytes before max unless at the end") {
    op::Chunker c(params);
    const Bytes data = outpost::test::random_bytes(params.max - 1, 3);
    CHECK(c.next_cut(data, false) == 0);
    CHECK(c.next_cut(data, true) > 0);
  }
  SECTION("invalid parameters are refused") {
    CHECK(op::ChunkerParams{4096, 2048, 65536}.validate().code() ==
          outpost::Code::kInvalidArgument);
    CHECK(op::ChunkerParams{16, 8192, 65536}.validate().code() == outpost::Code::kInvalidArgument);
    CHECK(op::ChunkerParams{2048, 8192, 32u << 20}.validate().code() ==
          outpost::Code::kInvalidArgument);
    auto read = [](std::span<std::uint8_t>) -> Result<std::size_t> { return std::size_t{0}; };
    CHECK(op::chunk_stream(read, {4096, 2048, 65536}, [](ByteView) {
            return Status::Ok();
          }).code() == outpost::Code::kInvalidArgument);
  }
}

TEST_CASE("inserting one byte near the start changes at most 3 chunks", "[packaging][chunker]") {
  const Bytes before = outpost::test::random_bytes(10u << 20, 42);
  Bytes after = before;
  after.insert(after.begin() + 5000, std::uint8_t{0x5A});
  const auto a = chunk_ids(before);
  const auto b = chunk_ids(after);
  const std::set<outpost::crypto::Digest> old_ids(a.begin(), a.end());
  std::size_t changed = 0;
  for (const auto& id : b) changed += old_ids.count(id) == 0 ? 1 : 0;
  INFO("chunks before " << a.size() << ", after " << b.size() << ", new " << changed);
  CHECK(a.size() > 1000);
  CHECK(changed >= 1);
  CHECK(changed <= 3);
}

TEST_CASE("chunk_file streams a file and reports a missing one", "[packaging][chunker]") {
  outpost::test::TempDir dir;
  const Bytes data = outpost::test::random_bytes(300000, 5);
  outpost::test::write_all(dir / "f.bin", data);
  Bytes joined;
  REQUIRE(op::chunk_file(dir / "f.bin", {}, [&](ByteView c) {
            joined.insert(joined.end(), c.begin(), c.end());
            return Status::Ok();
          }).ok());
  CHECK(joined == data);
  CHECK(op::chunk_file(dir / "missing", {}, [](ByteView) { return Status::Ok(); }).code() ==
        outpost::Code::kNotFound);
  // An error from the callback stops chunking and comes back as is.
  int calls = 0;
  Status s = op::chunk_file(dir / "f.bin", {}, [&](ByteView) {
    ++calls;
    return Status::Aborted("stop");
  });
  CHECK(s.code() == outpost::Code::kAborted);
  CHECK(calls == 1);
}
