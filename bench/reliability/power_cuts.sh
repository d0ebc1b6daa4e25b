#!/usr/bin/env bash
# Long form of the power-cut sweeps (issue 12, point 2; docs/RELIABILITY.md "Lost and torn
# writes"): through tests/support/fault_fs.h, a power cut drops (or tears) every write not yet
# fsynced and undoes renames in folders not yet fsynced, at every file system call of a
# publication, of a pack's writing (and before each chunk), of a checkout (into an empty
# folder and over old files) and of saving a key file, and once after each returned success.
# The same tests as CI's short form, with OUTPOST_POWER_CUTS=all.
#
#   bench/reliability/power_cuts.sh [BUILD_DIR] [CUTS]
#
# CUTS: "all" (the default) or about how many calls of each operation to cut at. Builds
# nothing: needs packaging_tests, node_tests and crypto_tests in BUILD_DIR (default build;
# cmake --build build --target packaging_tests node_tests crypto_tests). Prints one line per
# sweep and exits non-zero when any check failed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-$here/../../build}
cuts=${2:-all}
log=${TMPDIR:-/tmp}/power_cuts.log
start=$SECONDS
rc=0
: >"$log"
for t in "packaging_tests [publish][fault]" "packaging_tests [pack][fault]" \
         "node_tests [checkout][fault]" "crypto_tests [keys][fault]"; do
  exe=$build/tests/${t%% *}
  [ -x "$exe" ] || { echo "no $exe: build the targets packaging_tests node_tests crypto_tests first" >&2; exit 2; }
  echo "== ${t}" >>"$log"
  OUTPOST_POWER_CUTS=$cuts "$exe" "${t#* }" >>"$log" 2>&1 || rc=$?
  tail -n 2 "$log" | grep -E "passed|failed" || true
done
grep -E "^power cuts" "$log" || true
echo "power_cuts.sh: $((SECONDS - start)) s, exit $rc (full log: $log)"
exit $rc
