#include "outpost/packaging/delta.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace op = outpost::packaging;
using outpost::Bytes;
using outpost::ByteView;
using outpost::Code;
using outpost::Status;

namespace {

constexpr std::uint64_t kSmallWindow = 64 << 10;

// Text that looks like the statistics files deltas are made for: numbers in JSON-ish lines.
Bytes stats_text(std::size_t n, std::uint32_t seed) {
  std::string s;
  std::uint32_t x = seed * 2654435761u + 1;
  while (s.size() < n) {
    x = x * 1103515245u + 12345u;
    s += "\"r" + std::to_string((x >> 8) % 97) + "\":0." + std::to_string((x >> 4) % 10000) + ",";
    if ((x >> 20) % 8 == 0) s += "\n";
  }
  s.resize(n);
  return outpost::to_bytes(s);
}

// Changes a digit every ~`every` bytes, and inserts/deletes a few bytes here and there.
Bytes drift(const Bytes& in, std::size_t every, std::uint32_t seed) {
  Bytes out;
  std::uint32_t x = seed;
  for (std::size_t i = 0; i < in.size(); ++i) {
    x = x * 1103515245u + 12345u;
    const std::uint8_t b = in[i];
    if (b >= '0' && b <= '9' && (x >> 8) % every == 0) {
      out.push_back(static_cast<std::uint8_t>('0' + (b - '0' + 1 + (x >> 16) % 8) % 10));
    } else if ((x >> 8) % (every * 40) == 1) {
      out.insert(out.end(), {'9', '9'});  // insertion
      out.push_back(b);
    } else if ((x >> 8) % (every * 40) == 2) {
      // deletion: skip b
    } else {
      out.push_back(b);
    }
  }
  return out;
}

op::DeltaParams params(op::DeltaEngine engine, std::uint64_t window = op::kMaxDeltaWindow) {
  op::DeltaParams p;
  p.engine = engine;
  p.level = 3;  // fast: tests check correctness, bench/delta measures sizes
  p.window = window;
  return p;
}

void round_trip(const Bytes& from, const Bytes& to, const op::DeltaParams& p) {
  auto patch = op::encode_delta(from, to, p);
  REQUIRE(patch.ok());
  auto back = op::apply_delta(from, *patch, to.size());
  REQUIRE(back.ok());
  CHECK(*back == to);
}

const op::DeltaEngine kEngines[] = {op::DeltaEngine::kZstd, op::DeltaEngine::kSuffix};

}  // namespace

TEST_CASE("delta round-trips edge cases with both engines", "[packaging][delta]") {
  const Bytes text = stats_text(20000, 1);
  const Bytes rnd = outpost::test::random_bytes(5000, 7);
  const Bytes one = {'x'};
  for (op::DeltaEngine e : kEngines) {
    CAPTURE(static_cast<int>(e));
    round_trip({}, {}, params(e));
    round_trip({}, text, params(e));    // empty from
    round_trip(text, {}, params(e));    // empty to
    round_trip(text, text, params(e));  // identical
    round_trip(one, one, params(e));
    round_trip(rnd, outpost::test::random_bytes(5000, 8), params(e));  // unrelated
    round_trip(text, drift(text, 50, 3), params(e));                   // small edits
    Bytes moved(text.begin() + 10000, text.end());                     // moved blocks
    moved.insert(moved.end(), text.begin(), text.begin() + 10000);
    round_trip(text, moved, params(e));
    Bytes zeros(300000, 0);  // long runs: bsdiff's worst case, kept linear by capped matches
    Bytes zeros2 = zeros;
    zeros2.insert(zeros2.begin() + 150000, {'a', 'b', 'c'});
    round_trip(zeros, zeros2, params(e));
  }
}

TEST_CASE("suffix engine codes drifting statistics smaller than zstd", "[packaging][delta]") {
  const Bytes from = stats_text(200000, 2);
  const Bytes to = drift(from, 40, 5);
  auto z = op::encode_delta(from, to, params(op::DeltaEngine::kZstd));
  auto s = op::encode_delta(from, to, params(op::DeltaEngine::kSuffix));
  REQUIRE(z.ok());
  REQUIRE(s.ok());
  CHECK(s->size() < z->size());
  auto info = op::read_delta_info(*s);
  REQUIRE(info.ok());
  CHECK(info->engine == op::DeltaEngine::kSuffix);
  CHECK(info->from_size == from.size());
  CHECK(info->to_size == to.size());
  CHECK(info->segments == 1);
}

TEST_CASE("the suffix engine finds old text between long stretches of new random bytes",
          "[packaging][delta]") {
  // Its search steps further through bytes that match nothing: the drifted statistics after
  // 200 KB of them must still be found whole, and cost what they cost alone.
  const Bytes from = stats_text(100000, 4);
  const Bytes edited = drift(from, 40, 6);
  Bytes to = outpost::test::random_bytes(200000, 11);
  to.insert(to.end(), edited.begin(), edited.end());
  const Bytes tail = outpost::test::random_bytes(200000, 12);
  to.insert(to.end(), tail.begin(), tail.end());
  auto alone = op::encode_delta(from, edited, params(op::DeltaEngine::kSuffix));
  auto mixed = op::encode_delta(from, to, params(op::DeltaEngine::kSuffix));
  auto zstd = op::encode_delta(from, to, params(op::DeltaEngine::kZstd));
  REQUIRE(alone.ok());
  REQUIRE(mixed.ok());
  REQUIRE(zstd.ok());
  CHECK(mixed->size() < 400000 + alone->size() + 1000);
  CHECK(mixed->size() < zstd->size());
  auto back = op::apply_delta(from, *mixed, to.size());
  REQUIRE(back.ok());
  CHECK(*back == to);
}

TEST_CASE("inputs larger than the window are patched in segments", "[packaging][delta]") {
  const Bytes from = stats_text(300000, 3);
  Bytes to = drift(from, 30, 9);
  to.insert(to.begin() + 1000, 5000, 'q');  // shifts the rest of the content
  for (op::DeltaEngine e : kEngines) {
    CAPTURE(static_cast<int>(e));
    auto patch = op::encode_delta(from, to, params(e, kSmallWindow));
    REQUIRE(patch.ok());
    auto info = op::read_delta_info(*patch);
    REQUIRE(info.ok());
    CHECK(info->segments > 10);
    CHECK(patch->size() < to.size() / 4);  // segments still find their content

    // Apply with a reader that serves slices, and record what it was asked.
    std::uint64_t max_read = 0;
    auto reader = [&](std::uint64_t off, std::uint64_t len, Bytes& out) -> Status {
      REQUIRE(off + len <= from.size());
      max_read = std::max(max_read, len);
      out.assign(from.begin() + static_cast<std::ptrdiff_t>(off),
                 from.begin() + static_cast<std::ptrdiff_t>(off + len));
      return Status::Ok();
    };
    Bytes out;
    std::size_t max_piece = 0;
    auto sink = [&](ByteView piece) -> Status {
      max_piece = std::max(max_piece, piece.size());
      out.insert(out.end(), piece.begin(), piece.end());
      return Status::Ok();
    };
    REQUIRE(op::apply_delta(reader, from.size(), *patch, to.size(), sink, kSmallWindow).ok());
    CHECK(out == to);
    CHECK(max_read <= kSmallWindow);
    CHECK(max_piece <= kSmallWindow);
    // The same patch is refused under a smaller memory limit.
    Status small = op::apply_delta(reader, from.size(), *patch, to.size(), sink, kSmallWindow / 2);
    CHECK(small.code() == Code::kCorruption);
  }
}

TEST_CASE("delta rejects bad parameters", "[packaging][delta]") {
  const Bytes a = stats_text(100, 1);
  CHECK(op::encode_delta(a, a, params(op::DeltaEngine::kZstd, 100)).error().code() ==
        Code::kInvalidArgument);
  CHECK(op::encode_delta(a, a, params(op::DeltaEngine::kZstd, op::kMaxDeltaWindow + 1))
            .error()
            .code() == Code::kInvalidArgument);
  CHECK(op::encode_delta(a, a, params(static_cast<op::DeltaEngine>(7))).error().code() ==
        Code::kInvalidArgument);
}

TEST_CASE("a damaged patch is refused or caught, never overread", "[packaging][delta]") {
  const Bytes from = stats_text(30000, 4);
  const Bytes to = drift(from, 20, 11);
  for (op::DeltaEngine e : kEngines) {
    CAPTURE(static_cast<int>(e));
    auto made = op::encode_delta(from, to, params(e, kSmallWindow));
    REQUIRE(made.ok());
    const Bytes patch = *made;

    // Wrong sizes are always detected.
    CHECK(op::apply_delta(from, patch, to.size() + 1).error().code() == Code::kCorruption);
    CHECK(op::apply_delta(from, patch, to.size() - 1).error().code() == Code::kCorruption);
    const Bytes shorter(from.begin(), from.end() - 1);
    CHECK(op::apply_delta(shorter, patch, to.size()).error().code() == Code::kCorruption);

    // Every truncation is corruption.
    for (std::size_t n = 0; n < patch.size(); n += std::max<std::size_t>(1, patch.size() / 300)) {
      auto r = op::apply_delta(from, ByteView(patch).first(n), to.size());
      CHECK(r.error().code() == Code::kCorruption);
    }
    // Flipped bytes: kCorruption, or output of the declared size (the hash check catches it).
    for (std::size_t i = 0; i < patch.size(); i += std::max<std::size_t>(1, patch.size() / 400)) {
      for (int mask : {0x01, 0x80, 0xff}) {
        Bytes bad = patch;
        bad[i] = static_cast<std::uint8_t>(bad[i] ^ mask);
        auto r = op::apply_delta(from, bad, to.size());
        if (r.ok()) {
          CHECK(r->size() == to.size());
        } else {
          CHECK(r.error().code() == Code::kCorruption);
        }
      }
    }
    // Trailing garbage.
    Bytes longer = patch;
    longer.push_back(0);
    CHECK(op::apply_delta(from, longer, to.size()).error().code() == Code::kCorruption);
  }
}

namespace {

void put_varint(Bytes& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

// A hand-made patch header: "OPD1", engine, from_size, to_size, window, segments.
Bytes header(std::uint64_t from_size, std::uint64_t to_size, std::uint64_t window,
             std::uint64_t segments) {
  Bytes p = outpost::to_bytes("OPD1");
  p.push_back(2);
  put_varint(p, from_size);
  put_varint(p, to_size);
  put_varint(p, window);
  put_varint(p, segments);
  return p;
}

}  // namespace

TEST_CASE("hand-made hostile patches are corruption", "[packaging][delta]") {
  const Bytes from = stats_text(1000, 5);
  auto noop_reader = [&](std::uint64_t off, std::uint64_t len, Bytes& out) -> Status {
    REQUIRE(off + len <= from.size());
    out.assign(from.begin() + static_cast<std::ptrdiff_t>(off),
               from.begin() + static_cast<std::ptrdiff_t>(off + len));
    return Status::Ok();
  };
  auto sink = [](ByteView) { return Status::Ok(); };
  auto apply = [&](const Bytes& patch, std::uint64_t to_size, std::uint64_t max_window) {
    return op::apply_delta(noop_reader, from.size(), patch, to_size, sink, max_window);
  };

  // A header window above the caller's limit.
  CHECK(apply(header(1000, 10, 1ull << 40, 0), 10, 1 << 20).code() == Code::kCorruption);
  // More segments than bytes.
  CHECK(apply(header(1000, 10, 1 << 20, 11), 10, 1 << 20).code() == Code::kCorruption);
  // A slice outside the old content.
  Bytes p = header(1000, 10, 1 << 20, 1);
  p.push_back(1);      // zstd segment
  put_varint(p, 10);   // to_len
  put_varint(p, 900);  // from_off
  put_varint(p, 200);  // from_len: 900 + 200 > 1000
  put_varint(p, 0);    // payload
  CHECK(apply(p, 10, 1 << 20).code() == Code::kCorruption);
  // A segment claiming a huge length (no allocation happens before the check).
  p = header(1000, 10, 1 << 20, 1);
  p.push_back(2);
  put_varint(p, 1ull << 50);
  put_varint(p, 0);
  put_varint(p, 1000);
  put_varint(p, 0);
  CHECK(apply(p, 10, 1 << 20).code() == Code::kCorruption);
  // A suffix segment whose control reads past the old slice.
  p = header(1000, 10, 1 << 20, 1);
  p.push_back(2);
  put_varint(p, 10);
  put_varint(p, 0);
  put_varint(p, 1000);
  Bytes payload;
  put_varint(payload, 1);    // one control
  put_varint(payload, 995);  // start at old byte 995
  Bytes ctrl;
  put_varint(ctrl, 10);  // add 10 bytes: 995 + 10 > 1000
  put_varint(ctrl, 0);
  put_varint(ctrl, 0);
  payload.push_back(0);  // stored
  put_varint(payload, ctrl.size());
  put_varint(payload, ctrl.size());
  payload.insert(payload.end(), ctrl.begin(), ctrl.end());
  for (int i = 0; i < 2; ++i) {  // empty differences and new bytes
    payload.push_back(0);
    put_varint(payload, 0);
    put_varint(payload, 0);
  }
  put_varint(p, payload.size());
  p.insert(p.end(), payload.begin(), payload.end());
  CHECK(apply(p, 10, 1 << 20).code() == Code::kCorruption);
  // A stream declaring more bytes than its segment can use.
  p = header(1000, 10, 1 << 20, 1);
  p.push_back(2);
  put_varint(p, 10);
  put_varint(p, 0);
  put_varint(p, 1000);
  payload.clear();
  put_varint(payload, 1);
  put_varint(payload, 0);
  payload.push_back(1);  // zstd
  put_varint(payload, 1ull << 40);
  put_varint(payload, 0);
  put_varint(p, payload.size());
  p.insert(p.end(), payload.begin(), payload.end());
  CHECK(apply(p, 10, 1 << 20).code() == Code::kCorruption);
  // Not a patch at all.
  CHECK(apply(outpost::to_bytes("hello"), 10, 1 << 20).code() == Code::kCorruption);
}

TEST_CASE("reader and sink errors pass through apply_delta", "[packaging][delta]") {
  const Bytes from = stats_text(5000, 6);
  const Bytes to = drift(from, 30, 2);
  auto patch = op::encode_delta(from, to, params(op::DeltaEngine::kSuffix));
  REQUIRE(patch.ok());
  auto failing_reader = [](std::uint64_t, std::uint64_t, Bytes&) {
    return Status::Unavailable("disk gone");
  };
  auto sink = [](ByteView) { return Status::Ok(); };
  CHECK(op::apply_delta(failing_reader, from.size(), *patch, to.size(), sink).code() ==
        Code::kUnavailable);
  auto ok_reader = [&](std::uint64_t off, std::uint64_t len, Bytes& out) -> Status {
    out.assign(from.begin() + static_cast<std::ptrdiff_t>(off),
               from.begin() + static_cast<std::ptrdiff_t>(off + len));
    return Status::Ok();
  };
  auto full_sink = [](ByteView) { return Status::ResourceExhausted("disk full"); };
  CHECK(op::apply_delta(ok_reader, from.size(), *patch, to.size(), full_sink).code() ==
        Code::kResourceExhausted);
}
