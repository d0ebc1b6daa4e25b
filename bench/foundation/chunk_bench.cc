// Chunking throughput on one core, in memory (no I/O): what `outpost publish` can reach at
// best before hashing, compression and writing.
//
//   outpost_chunk_bench [--runs N] [--synthetic-mb MB] [DIR ...]
//
// Each DIR is walked recursively and every regular file is loaded into memory (the caller
// keeps DIRs to a few hundred MB). Without DIR, a synthetic buffer of --synthetic-mb MB
// (default 256) is generated: half pseudo-random bytes, half repetitive text, in 1 MB blocks.
// For every data set it measures, median/min/max over --runs runs (default 5):
//   next_cut   Chunker::next_cut() walked over each file's bytes (the core loop alone)
//   stream     chunk_stream() per file, reading from memory (what publish runs per file:
//              buffer refill + memmove + callback)
//   stream+b2  chunk_stream() + BLAKE2b-256 of every chunk (chunk ids, as publish needs)
// and prints one JSON object per line (for run.sh) and a human summary on stderr.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "outpost/crypto/hash.h"
#include "outpost/packaging/chunker.h"

namespace fs = std::filesystem;
using namespace outpost;

namespace {

struct DataSet {
  std::string name;
  std::vector<Bytes> files;
  std::uint64_t bytes = 0;
};

DataSet load_dir(const std::string& dir) {
  DataSet d;
  d.name = dir;
  std::vector<fs::path> paths;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file() && !e.is_symlink()) paths.push_back(e.path());
  }
  std::sort(paths.begin(), paths.end());
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    Bytes b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    d.bytes += b.size();
    d.files.push_back(std::move(b));
  }
  return d;
}

DataSet synthetic(std::uint64_t mb) {
  DataSet d;
  d.name = "synthetic-" + std::to_string(mb) + "MB";
  Bytes b(mb << 20);
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  const char* words[] = {"alpha ", "beta ", "gamma ", "0.0123,", "region ", "2024;", "\n"};
  for (std::size_t block = 0; block < mb; ++block) {
    std::uint8_t* p = b.data() + (block << 20);
    if (block % 2 == 0) {
      for (std::size_t i = 0; i < (1u << 20); i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::memcpy(p + i, &x, 8);
      }
    } else {
      std::size_t i = 0;
      while (i < (1u << 20)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const char* w = words[x % 7];
        for (; *w && i < (1u << 20); ++w) p[i++] = static_cast<std::uint8_t>(*w);
      }
    }
  }
  d.bytes = b.size();
  d.files.push_back(std::move(b));
  return d;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Stats {
  double median, min, max;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {med, v.front(), v.back()};
}

volatile std::uint64_t g_sink = 0;

// Returns seconds; counts chunks.
double run_next_cut(const DataSet& d, const packaging::Chunker& c, std::uint64_t& chunks) {
  chunks = 0;
  double t = now_s();
  for (const Bytes& f : d.files) {
    ByteView rest(f);
    while (!rest.empty()) {
      std::size_t cut = c.next_cut(rest, true);
      rest = rest.subspan(cut);
      ++chunks;
    }
  }
  return now_s() - t;
}

double run_stream(const DataSet& d, const packaging::ChunkerParams& p, bool hash,
                  std::uint64_t& chunks) {
  chunks = 0;
  std::uint64_t sink = 0;
  double t = now_s();
  for (const Bytes& f : d.files) {
    std::size_t pos = 0;
    auto read = [&](std::span<std::uint8_t> dst) -> Result<std::size_t> {
      std::size_t n = std::min(dst.size(), f.size() - pos);
      std::memcpy(dst.data(), f.data() + pos, n);
      pos += n;
      return n;
    };
    Status s = packaging::chunk_stream(read, p, [&](ByteView chunk) {
      ++chunks;
      if (hash) {
        sink += crypto::blake2b(chunk)[0];
      } else {
        sink += chunk.size();
      }
      return Status::Ok();
    });
    if (!s.ok()) {
      std::cerr << "chunk_stream failed\n";
      std::exit(1);
    }
  }
  double dt = now_s() - t;
  g_sink = g_sink + sink;
  return dt;
}

}  // namespace

int main(int argc, char** argv) {
  if (!crypto::init()) return 1;
  int runs = 5;
  std::uint64_t synth_mb = 256;
  std::vector<std::string> dirs;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
    } else if (a == "--synthetic-mb" && i + 1 < argc) {
      synth_mb = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--help") {
      std::cout << "usage: outpost_chunk_bench [--runs N] [--synthetic-mb MB] [DIR ...]\n";
      return 0;
    } else {
      dirs.push_back(a);
    }
  }
  std::vector<DataSet> sets;
  if (dirs.empty()) sets.push_back(synthetic(synth_mb));
  for (const auto& d : dirs) sets.push_back(load_dir(d));

  const packaging::ChunkerParams params;  // the defaults publish uses: 2/8/64 KiB
  const packaging::Chunker chunker(params);
  for (const DataSet& d : sets) {
    const double mb = static_cast<double>(d.bytes) / 1e6;
    struct Mode {
      const char* name;
      std::vector<double> mbps;
      std::uint64_t chunks = 0;
    } modes[3] = {{"next_cut", {}}, {"stream", {}}, {"stream+b2", {}}};
    // one warm-up pass (page faults, caches), not counted
    std::uint64_t ignored = 0;
    run_next_cut(d, chunker, ignored);
    for (int r = 0; r < runs; ++r) {
      modes[0].mbps.push_back(mb / run_next_cut(d, chunker, modes[0].chunks));
      modes[1].mbps.push_back(mb / run_stream(d, params, false, modes[1].chunks));
      modes[2].mbps.push_back(mb / run_stream(d, params, true, modes[2].chunks));
    }
    for (auto& m : modes) {
      Stats s = stats(m.mbps);
      std::printf(
          "{\"data\": \"%s\", \"files\": %zu, \"bytes\": %llu, \"mode\": \"%s\", \"runs\": %d, "
          "\"chunks\": %llu, \"avg_chunk\": %.0f, \"mb_s_median\": %.1f, \"mb_s_min\": %.1f, "
          "\"mb_s_max\": %.1f}\n",
          d.name.c_str(), d.files.size(), static_cast<unsigned long long>(d.bytes), m.name, runs,
          static_cast<unsigned long long>(m.chunks),
          m.chunks ? static_cast<double>(d.bytes) / static_cast<double>(m.chunks) : 0.0, s.median,
          s.min, s.max);
      std::fprintf(stderr, "%-40s %-10s %8.1f MB/s median (min %.1f, max %.1f), %llu chunks\n",
                   d.name.c_str(), m.name, s.median, s.min, s.max,
                   static_cast<unsigned long long>(m.chunks));
    }
    std::fflush(stdout);
  }
  return 0;
}
