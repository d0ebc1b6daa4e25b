#!/usr/bin/env bash
# The peers of the library benchmark (issue 8) on its own release pairs (pairs.conf):
# zsync and casync of data/ as one tar, rsync -z over data/, and tar | zstd -19 of the new
# data/ (the full download), through the peer harness (bench/peers/bench.py: nginx and an
# rsync daemon on 127.0.0.1, bytes counted on the wire). bench/library/run.sh measures
# outpost on the same pairs; docs/BENCHMARKS.md puts the two side by side.
#   bench/library/peers.sh [bench.py options]
# Env: PEERS_BASE (default /tmp/library-peers; trees of data/ only, so not the peers' base),
# TGZ_DIR (npm tarballs already fetched: copied into the cache instead of npm pack).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
base=${PEERS_BASE:-/tmp/library-peers}
mkdir -p "$base/cache/tgz"
if [ -n "${TGZ_DIR:-}" ]; then
  for f in "$TGZ_DIR"/caniuse-lite-*.tgz; do
    [ -e "$f" ] && cp -n "$f" "$base/cache/tgz/"
  done
fi
# outpost itself is not one of these methods: any binary will do for the harness's check.
export OUTPOST_BIN=${OUTPOST_BIN:-/bin/true}
export PEERS_SUBTREE=data PEERS_BASE="$base" PEERS_RESULTS_DIR=${PEERS_RESULTS_DIR:-$base/results}
exec bash "$here/../peers/run.sh" --pairs "$here/pairs.conf" \
  --methods rsync-tree-c-z,zsync-tar,casync-tree,casync-tree-16k,tar.zst-19 "$@"
