#!/usr/bin/env bash
# outpost foundation benchmark: chunking, publish/sync throughput and peak RSS, storage size,
# against tar+zstd and casync. Results: $BENCH_BASE/out/RESULTS.md (+ results.json); the
# numbers in docs/BENCHMARKS.md come from this script.
#
#   bench/foundation/run.sh                       # everything (about 15-25 min on 2 cores)
#   bench/foundation/run.sh --runs 5              # more runs per measurement
#   bench/foundation/run.sh --skip tree200,casync # subsets: chunking,tree200,caniuse,casync
#
# Environment: BENCH_BASE (scratch: data cache, work files, results; default
# /tmp/outpost-bench; nothing is written inside the repository), OUTPOST_BUILD_DIR (default
# <repo>/../build-bench, configured Release and built here when the binaries are missing;
# set OUTPOST_REBUILD=1 to rebuild anyway).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BASE="${BENCH_BASE:-/tmp/outpost-bench}"
BUILD="${OUTPOST_BUILD_DIR:-$(dirname "$REPO")/build-bench}"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
declare -A PKG=([casync]=casync [zstd]=zstd [npm]=npm [tar]=tar [python3]=python3)
missing=()
for tool in "${!PKG[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PKG[$tool]}")
done
[ -x /usr/bin/time ] || missing+=(time)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

OUTPOST="$BUILD/node/outpost"
CHUNK_BENCH="$BUILD/bench/outpost_chunk_bench"
if [ ! -x "$OUTPOST" ] || [ ! -x "$CHUNK_BENCH" ] || [ "${OUTPOST_REBUILD:-0}" = 1 ]; then
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DOUTPOST_BENCH=ON
  cmake --build "$BUILD" -j"$(nproc)" --target outpost outpost_chunk_bench
fi

mkdir -p "$BASE"
python3 "$HERE/bench.py" --outpost "$OUTPOST" --chunk-bench "$CHUNK_BENCH" --base "$BASE" \
  --cache "${BENCH_CACHE:-$BASE/cache}" "$@" 2>&1 | tee "$BASE/run.log"
