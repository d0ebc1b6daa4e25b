#!/usr/bin/env bash
# Long form of the hostile-network sweep (issue 12, point 7; docs/RELIABILITY.md): SYNCS
# syncs of a fresh node through the fault proxy in front of nginx, each with one to three
# faults at random requests (drops, truncation, bit flips, a moved Content-Range, Range
# ignored, stalls, 500 and 503). Every sync must complete with the content intact, and all
# of them together cost at most 1.2x the bytes of as many undisturbed syncs. The same test as
# CI's short form (tests/integration/hostile_network_test.cc), with more runs.
#
#   bench/reliability/hostile_network.sh [BUILD_DIR] [SYNCS]
#
# Defaults: build, 1000 syncs. OUTPOST_SEED=N picks other faults. Needs nginx
# (apt-get install nginx-light) and the release build's integration_tests.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-$here/../../build}
syncs=${2:-1000}
tests=$build/tests/integration_tests
[ -x "$tests" ] || { echo "no $tests: build the target integration_tests first" >&2; exit 2; }
start=$SECONDS
rc=0
log=${TMPDIR:-/tmp}/hostile_network.log
OUTPOST_HOSTILE_SYNCS=$syncs "$tests" "[hostile]" >"$log" 2>&1 || rc=$?
grep -E "^hostile network sweep" "$log" | tail -n 1 || true
tail -n 3 "$log"
echo "hostile_network.sh: $((SECONDS - start)) s, exit $rc (full log: $log)"
exit $rc
