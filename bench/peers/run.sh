#!/usr/bin/env bash
# End-to-end peer baseline: install the tools (Debian packages), fetch the data
# (npm pack into a cache outside the repo), measure every tool on every version
# pair in pairs.conf, write results.csv + RESULTS.md.
#
#   bench/peers/run.sh                 # everything, results copied next to this script
#   bench/peers/run.sh --only caniuse-lite --methods outpost,tar.zst-19,bsdiff
#   bench/peers/run.sh --only caniuse-lite --methods outpost-http,tar.zst-19,zstd-patch-22,bsdiff,rsync-tree-c-z,zsync-tar,casync-tree,zchunk-tar
#   PEERS_BASE=/tmp/x bench/peers/run.sh --only caniuse-lite --limit 2   # quick try
#
# Extra arguments go to bench.py (see `python3 bench.py --help`).
# Scratch space (data cache, work files, logs) lives in $PEERS_BASE, default
# /tmp/peers-bench; nothing downloaded is written inside the repository.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BASE="${PEERS_BASE:-/tmp/peers-bench}"
RESULTS_DIR="${PEERS_RESULTS_DIR:-$HERE}"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# tool -> Debian package
declare -A PKG=(
  [rsync]=rsync [zsync]=zsync [zsyncmake]=zsync [casync]=casync [zck]=zchunk
  [zckdl]=zchunk [unzck]=zchunk [xdelta3]=xdelta3 [bsdiff]=bsdiff [bspatch]=bsdiff
  [zstd]=zstd [nginx]=nginx [curl]=curl [python3]=python3 [npm]=npm [tar]=tar
)
missing=()
for tool in "${!PKG[@]}"; do
  if ! command -v "$tool" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$tool" ]; then
    missing+=("${PKG[$tool]}")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "installing: ${missing[*]}"
  $SUDO apt-get update
  # policy-rc.d or not: we never use the system nginx/rsync services, only our own instances
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
export PATH="$PATH:/usr/sbin:/sbin"

# tar --sort=name needs GNU tar >= 1.28
tar --version | head -1

# outpost itself: a Release build (OUTPOST_BUILD_DIR, default <repo>/../build-bench), brought
# up to date from the working tree before every run (incremental); OUTPOST_BIN names another
# binary and skips the build.
REPO="$(cd "$HERE/../.." && pwd)"
BUILD="${OUTPOST_BUILD_DIR:-$(dirname "$REPO")/build-bench}"
if [ -z "${OUTPOST_BIN:-}" ]; then
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release
  fi
  cmake --build "$BUILD" -j2 --target outpost
  OUTPOST_BIN="$BUILD/node/outpost"
fi
export OUTPOST_BIN

mkdir -p "$BASE"
python3 "$HERE/bench.py" --base "$BASE" --results-dir "$RESULTS_DIR" "$@" 2>&1 | tee "$BASE/run.log"
