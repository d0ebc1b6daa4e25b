#!/usr/bin/env bash
# Long form of the crash-consistency sweeps (issue 12, point 1; docs/RELIABILITY.md):
# SIGKILL of sync, publish, gc, import and export at random points (half by time, half by
# bytes the process has read and written), KILLS of each, and a reader syncing in a loop
# during PUBLISHES publishes. The same tests as CI's short form
# (tests/integration/crash_test.cc), with more runs.
#
#   bench/reliability/crash_sweep.sh [BUILD_DIR] [KILLS_PER_COMMAND] [PUBLISHES]
#
# Defaults: build, 110 kills per command (550 in all), 100 publishes. OUTPOST_SEED=N picks
# other kill points. Needs the release build's integration_tests and outpost
# (cmake --build build --target integration_tests). Prints one line per sweep and exits
# non-zero when any check failed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-$here/../../build}
kills=${2:-110}
publishes=${3:-100}
tests=$build/tests/integration_tests
[ -x "$tests" ] || { echo "no $tests: build the target integration_tests first" >&2; exit 2; }
start=$SECONDS
rc=0
OUTPOST_KILLS=$kills OUTPOST_PUBLISHES=$publishes "$tests" "[crash]" >"${TMPDIR:-/tmp}/crash_sweep.log" 2>&1 || rc=$?
grep -E "^(crash sweep|reader during)" "${TMPDIR:-/tmp}/crash_sweep.log" || true
tail -n 3 "${TMPDIR:-/tmp}/crash_sweep.log"
echo "crash_sweep.sh: $((SECONDS - start)) s, exit $rc (full log: ${TMPDIR:-/tmp}/crash_sweep.log)"
exit $rc
