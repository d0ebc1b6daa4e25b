#!/usr/bin/env bash
# ThreadSanitizer over the concurrent parts (issue 12, point 6): the store's readers and
# writer in threads of one process (tests/storage: the [threads] test, three readers and a
# writer while the map grows, run OUTPOST_TSAN_REPEAT times, default 5), and the tests that
# share one store between two Store objects or two processes; then the daemon's threads
# (every test of tests/serve and tests/kiosk, once: the HTTP server's thread pool answering
# while the scheduler syncs, reloads and status reads, the kiosk's indexing thread beside its
# readers; the browser test aside), and the daemon as a process: the `outpost` binary built
# with ThreadSanitizer, run by the integration tests of LAN discovery (DNS-SD, two daemons in
# namespaces of their own) and of two nodes syncing from each other. Builds build-tsan/ (g++, -fsanitize=thread) with only
# what those tests need; any data race report fails the run. libmicrohttpd, like LMDB, is
# not instrumented: its own locks are seen (pthread), races inside it are not.
# Not run: "a writer killed at random points ...": it kills a forked writer after 2-42 ms,
# which under ThreadSanitizer's slowdown is before its first commit (and it is about
# processes, which ThreadSanitizer does not watch).
# LMDB itself is a system library, not instrumented: races inside it are not seen, only
# those in outpost's code around it (map growth, transaction tracking, counters).
#   scripts/tsan.sh            build and run
#   scripts/tsan.sh REGEX      only the storage tests whose name matches (ctest -R), no daemon
#   OUTPOST_TSAN_DAEMON=0 scripts/tsan.sh      the storage tests only
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${OUTPOST_TSAN_BUILD:-$here/build-tsan}
filter=${1:-'consistent snapshots|share the environment|share a store'}
daemon=${OUTPOST_TSAN_DAEMON:-1}
[ $# -gt 0 ] && daemon=0
repeat=${OUTPOST_TSAN_REPEAT:-5}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$here} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" -DOUTPOST_SANITIZE=thread \
  -DOUTPOST_WERROR=ON -DOUTPOST_TESTS=ON -DOUTPOST_BENCH=OFF >/dev/null
targets=(storage_tests)
[ "$daemon" = 1 ] && targets+=(serve_tests kiosk_tests outpost integration_tests)
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"
# halt_on_error: the first race fails the test that met it (the report is in its output).
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$here/scripts/tsan.supp ${TSAN_OPTIONS:-}"
# gcc 12's ThreadSanitizer sometimes refuses a randomized address space with more entropy
# than it expects ("FATAL: ThreadSanitizer: unexpected memory mapping"); without
# randomization (setarch -R, inherited by ctest's children) it always runs.
runner=()
command -v setarch >/dev/null && runner=(setarch "$(uname -m)" -R)
cd "$build"
"${runner[@]}" ctest --output-on-failure -R "$filter" -j1 --repeat until-fail:"$repeat"
if [ "$daemon" = 1 ]; then
  "${runner[@]}" ctest --output-on-failure -L '^(serve|kiosk)$' -E 'browser' -j2
  "${runner[@]}" ctest --output-on-failure -L '^integration$' -R 'DNS-SD|two nodes' -j1
fi
