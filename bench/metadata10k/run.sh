#!/bin/sh
# Metadata bytes of one change in a repository of 10,000 bundles (one delegated role).
# Usage: bench/metadata10k/run.sh [BUILD_DIR] [BUNDLES]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-"$here/../../build"}
bundles=${2:-10000}
cmake --build "$build" -j2 --target outpost_metadata10k_bench >/dev/null
work=$(mktemp -d "${TMPDIR:-/tmp}/metadata10k.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$build/bench/outpost_metadata10k_bench" "$work/run" "$bundles"
