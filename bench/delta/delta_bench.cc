// Command-line front end of the delta engines for bench/delta/run.sh.
//   outpost_delta_bench encode zstd|suffix LEVEL WINDOW OLD NEW PATCH   (prints bytes, seconds)
//   outpost_delta_bench apply OLD PATCH OUT                             (streams OLD from disk)
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include "outpost/packaging/delta.h"

namespace {

outpost::Bytes slurp(const char* path) {
  std::ifstream f(path, std::ios::binary);
  return outpost::Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

int usage() {
  std::cerr << "usage: outpost_delta_bench encode zstd|suffix LEVEL WINDOW OLD NEW PATCH\n"
               "       outpost_delta_bench apply OLD PATCH OUT\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  namespace op = outpost::packaging;
  if (argc == 8 && std::strcmp(argv[1], "encode") == 0) {
    op::DeltaParams p;
    p.engine =
        std::strcmp(argv[2], "zstd") == 0 ? op::DeltaEngine::kZstd : op::DeltaEngine::kSuffix;
    p.level = std::stoi(argv[3]);
    p.window = std::stoull(argv[4]);
    const outpost::Bytes from = slurp(argv[5]);
    const outpost::Bytes to = slurp(argv[6]);
    const auto t0 = std::chrono::steady_clock::now();
    auto patch = op::encode_delta(from, to, p);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!patch.ok()) {
      std::cerr << "encode: " << patch.error().message() << "\n";
      return 1;
    }
    std::ofstream(argv[7], std::ios::binary)
        .write(reinterpret_cast<const char*>(patch->data()),
               static_cast<std::streamsize>(patch->size()));
    std::printf("%zu %.2f\n", patch->size(), secs);
    return 0;
  }
  if (argc == 5 && std::strcmp(argv[1], "apply") == 0) {
    std::ifstream old(argv[2], std::ios::binary);
    old.seekg(0, std::ios::end);
    const auto from_size = static_cast<std::uint64_t>(old.tellg());
    const outpost::Bytes patch = slurp(argv[3]);
    auto info = op::read_delta_info(patch);
    if (!info.ok()) {
      std::cerr << "apply: " << info.error().message() << "\n";
      return 1;
    }
    std::ofstream out(argv[4], std::ios::binary);
    auto reader = [&](std::uint64_t off, std::uint64_t len, outpost::Bytes& buf) {
      buf.resize(len);
      old.seekg(static_cast<std::streamoff>(off));
      old.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(len));
      return old ? outpost::Status::Ok() : outpost::Status::Unavailable("short read of OLD");
    };
    auto sink = [&](outpost::ByteView piece) {
      out.write(reinterpret_cast<const char*>(piece.data()),
                static_cast<std::streamsize>(piece.size()));
      return outpost::Status::Ok();
    };
    outpost::Status s = op::apply_delta(reader, from_size, patch, info->to_size, sink);
    if (!s.ok()) {
      std::cerr << "apply: " << s.message() << "\n";
      return 1;
    }
    return 0;
  }
  return usage();
}
