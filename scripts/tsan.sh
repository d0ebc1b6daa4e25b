#!/usr/bin/env bash
# ThreadSanitizer over the concurrent parts (issue 12, point 6): the store's readers and
# writer in threads of one process (tests/storage: the [threads] test, three readers and a
# writer while the map grows, run OUTPOST_TSAN_REPEAT times, default 5), and the tests that
# share one store between two Store objects or two processes. Builds build-tsan/ (g++,
# -fsanitize=thread) with only what those tests need; any data race report fails the run.
# Not run: "a writer killed at random points ...": it kills a forked writer after 2-42 ms,
# which under ThreadSanitizer's slowdown is before its first commit (and it is about
# processes, which ThreadSanitizer does not watch).
# LMDB itself is a system library, not instrumented: races inside it are not seen, only
# those in outpost's code around it (map growth, transaction tracking, counters).
#   scripts/tsan.sh            build and run
#   scripts/tsan.sh REGEX      only the storage tests whose name matches (ctest -R)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${OUTPOST_TSAN_BUILD:-$here/build-tsan}
filter=${1:-'consistent snapshots|share the environment|share a store'}
repeat=${OUTPOST_TSAN_REPEAT:-5}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$here} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" -DOUTPOST_SANITIZE=thread \
  -DOUTPOST_WERROR=ON -DOUTPOST_TESTS=ON -DOUTPOST_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target storage_tests
# halt_on_error: the first race fails the test that met it (the report is in its output).
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
# gcc 12's ThreadSanitizer sometimes refuses a randomized address space with more entropy
# than it expects ("FATAL: ThreadSanitizer: unexpected memory mapping"); without
# randomization (setarch -R, inherited by ctest's children) it always runs.
runner=()
command -v setarch >/dev/null && runner=(setarch "$(uname -m)" -R)
cd "$build"
exec "${runner[@]}" ctest --output-on-failure -R "$filter" -j1 --repeat until-fail:"$repeat"
