#!/usr/bin/env bash
# Builds outpost_delta_bench against an existing build dir's libraries (for when the bench
# target is not wired into bench/CMakeLists.txt). Usage: build_tool.sh BUILD_DIR OUT
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
b=$1
g++ -std=c++20 -O2 -I"$here/packaging/include" -I"$here/storage/include" \
  -I"$here/crypto/include" -I"$here/base/include" "$here/bench/delta/delta_bench.cc" \
  "$b/packaging/liboutpost_packaging.a" "$b/storage/liboutpost_storage.a" \
  "$b/crypto/liboutpost_crypto.a" "$b/base/liboutpost_base.a" \
  -lzstd -ldivsufsort -llmdb -lsodium -o "$2"
