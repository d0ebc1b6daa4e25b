#!/usr/bin/env bash
# The whole test suite, in two builds (docs/testing.md says where the time goes):
#   sanitizer  AddressSanitizer + UndefinedBehaviorSanitizer, -Werror: builds everything and
#              runs every test but the large-data ones (label "large": the sources with a
#              test named "... (large)", tests/CMakeLists.txt).
#   release    -O2, -Werror: builds the outpost binary, the large-data tests and the
#              benchmarks (compiled, not run); runs the large-data tests.
# Installs what is missing first (Debian 12, as root: CI runs it so; what only the tests need
# installs while the release build compiles). Idempotent; a rerun
# rebuilds through ccache, which it installs. Prints the time of each phase and the total;
# under CI=true it fails when the whole run took longer than OUTPOST_TEST_BUDGET seconds
# (default 1200, 20 minutes), so that the change that makes the suite grow past it says so.
#   scripts/test.sh                             everything
#   OUTPOST_SKIP_SANITIZE=1 scripts/test.sh     release build only, whole suite (quick local run)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=$(nproc)
# One test more than cores: some tests spend seconds waiting on purpose (a 64 kbit/s link, a
# rate cap, a stalled server), and the third slot keeps the cores busy meanwhile (whole
# sanitizer suite on 2 cores: 356 s at -j2, 318 s at -j3).
test_jobs=$((jobs + 1))
budget=${OUTPOST_TEST_BUDGET:-1200}

# ---- phase timing: each phase and the total, printed at the end even when a phase fails ----
phase_names=()
phase_secs=()
phase_now=""
phase_start=0
phase() {
  phase_end
  phase_now=$1
  phase_start=$SECONDS
  echo "== $1"
}
phase_end() {
  if [ -n "$phase_now" ]; then
    phase_names+=("$phase_now")
    phase_secs+=($((SECONDS - phase_start)))
    phase_now=""
  fi
}
summary() {
  local rc=$?
  # A build that failed while the test packages install: let apt finish (a dpkg stopped midway
  # leaves the machine's packages half-configured).
  [ -z "${packages_pid:-}" ] || wait "$packages_pid" 2>/dev/null || true
  phase_end
  echo "== time"
  local i
  for i in "${!phase_names[@]}"; do
    printf '  %-62s %5d s\n' "${phase_names[$i]}" "${phase_secs[$i]}"
  done
  printf '  %-62s %5d s (budget under CI=true: %d s)\n' total "$SECONDS" "$budget"
  if [ "$rc" -eq 0 ]; then  # one closing line over every ctest run
    local passed=0 failed=0 p f
    for log in "${ctest_logs[@]}"; do
      read -r p f < <(sed -nE 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+)$/\2 \1/p' "$log" |
        awk '{ print $1 - $2, $2 }')
      passed=$((passed + ${p:-0}))
      failed=$((failed + ${f:-0}))
    done
    echo "tests: $passed passed, $failed failed"
  fi
  if [ "$rc" -eq 0 ] && [ "${CI:-}" = true ] && [ "$SECONDS" -gt "$budget" ]; then
    echo "FAIL: the test command took $SECONDS s, over its budget of $budget s; the phases" \
         "above say what grew (docs/testing.md: how to make tests wait and build less)"
    rc=1
  fi
  exit "$rc"
}
trap summary EXIT

# The slowest tests of the last ctest run in BUILD_DIR (from the log ctest_run writes).
slowest() {
  sed -nE 's/^ *[0-9]+\/[0-9]+ +Test +#[0-9]+: (.*[^ .]) \.+.* ([0-9.]+) sec$/\2 \1/p' "$1" |
    sort -rn | head -n "$2" | awk '{ t = $1; $1 = ""; printf "  %7.1f s %s\n", t, $0 }'
}
# ctest in BUILD_DIR with the given arguments; its output also goes to BUILD_DIR/ctest.log.
ctest_logs=()
ctest_run() {
  local dir=$1
  shift
  ctest_logs+=("$dir/ctest.log")
  local rc=0
  (cd "$dir" && ctest --output-on-failure -j"$test_jobs" --timeout 900 "$@") | tee "$dir/ctest.log" ||
    rc=$?
  echo "slowest:"
  slowest "$dir/ctest.log" 10
  return "$rc"
}

# ccache: shares objects between build trees and checkouts of this machine (CMakeLists.txt
# uses it when installed). A base directory makes paths inside the checkout relative, so a
# fresh clone in another folder (CI's) hits what an earlier checkout compiled.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$here}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}

phase "packages to build (apt)"
"$here/scripts/setup.sh" --packages-only  # the build dependencies and ccache

# The packages only the tests need install in the background while the release build compiles:
# downloading and unpacking them (chromium and clang are most of it) took 2 minutes of a fresh
# machine's run, and the compiler leaves the network idle.
# Node.js and npm run tuf-js, the independent TUF client (a Node.js already on PATH is used as
# is); lmdb-utils writes a foreign LMDB file for a store test.
missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
dpkg-query -W -f='${Status}' lmdb-utils 2>/dev/null | grep -q "install ok installed" || missing+=(lmdb-utils)
# The network test rig (tests/support/nginx.h): a real nginx serving repositories on loopback,
# openssl for its self-signed TLS certificate, curl for the rig's own tests.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# zstd and tar: the library test compares a first sync with tar | zstd -19 --long.
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
# libfaketime: the tuf-js differential test runs the real outpost binary with a wrong clock
# for its expiry cases (no environment variable of outpost's own moves its clock).
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
# A real FAT32 stick for the USB tests (tests/integration/usb_fat_test.cc): mkfs.vfat makes
# the image; fusefat mounts it where the kernel has no vfat (this project's machines).
[ -x /usr/sbin/mkfs.vfat ] || [ -x /sbin/mkfs.vfat ] || missing+=(dosfstools)
command -v fusefat >/dev/null 2>&1 || missing+=(fusefat)
# DNS-SD (tests/integration/serve_test.cc): avahi-daemon (with dbus-daemon) started by the test
# in namespaces of its own.
[ -x /usr/sbin/avahi-daemon ] || missing+=(avahi-daemon)
command -v dbus-daemon >/dev/null 2>&1 || missing+=(dbus)
[ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || [ -x /bin/ip ] || missing+=(iproute2)  # loopback up in the namespace
# The kiosk's browser test (tests/browser/): Debian's chromium, driven by playwright-core, and
# a font for its screenshots; wrk for bench/kiosk.
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The sanitizer build's compiler: clang (why: at the sanitizer build below).
command -v clang++-14 >/dev/null 2>&1 || missing+=(clang-14)
dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "install ok installed" ||
  missing+=(libclang-rt-14-dev)
dpkg-query -W -f='${Status}' fonts-dejavu-core 2>/dev/null | grep -q "install ok installed" || missing+=(fonts-dejavu-core)
# npm packages of the browser test (pinned by tests/browser/package-lock.json) into a cache
# folder of the build tree, once; never a browser download (the test uses Debian's chromium).
export OUTPOST_BROWSER_NPM_DIR="$here/build/browser-npm"  # both build trees' tests use it
test_packages() {
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # Outside CI, a machine that cannot reach the npm registry skips the browser test (said here
  # and again by the test); under CI=true that fails.
  bash "$here/tests/browser/install_browser_deps.sh" "$OUTPOST_BROWSER_NPM_DIR" || [ $? -eq 77 ]
}
mkdir -p "$here/build"
packages_start=$SECONDS
test_packages >"$here/build/test-packages.out" 2>&1 &
packages_pid=$!
packages_done() {  # waits for the test packages, shows what their installation said
  [ -n "$packages_pid" ] || return 0
  local rc=0
  phase "waiting for the test packages"
  wait "$packages_pid" || rc=$?
  packages_pid=""
  cat "$here/build/test-packages.out"
  phase_end
  phase_names+=("  alongside: packages for the tests (apt, npm)")
  phase_secs+=("$((SECONDS - packages_start))")
  [ "$rc" -eq 0 ] || { echo "FAIL: installing the test packages failed (above)"; exit "$rc"; }
}

release_args=(-DCMAKE_BUILD_TYPE=Release -DOUTPOST_WERROR=ON -DOUTPOST_TESTS=ON -DOUTPOST_BENCH=ON)
if [ "${OUTPOST_SKIP_SANITIZE:-0}" = 1 ]; then
  phase "release build (everything)"
  cmake -S "$here" -B "$here/build" "${release_args[@]}" >/dev/null
  cmake --build "$here/build" -j"$jobs"
  packages_done
  phase "release tests (all)"
  ctest_run "$here/build"
  exit 0
fi

phase "release build (outpost, large-data tests, benchmarks)"
cmake -S "$here" -B "$here/build" "${release_args[@]}" >/dev/null
cmake --build "$here/build" -j"$jobs" --target outpost outpost_large_tests outpost_benchmarks
packages_done  # the large-data tests want nginx and zstd, the sanitizer build clang

# A build tree tested before the large-data tests had executables of their own still lists
# them under another executable, and ctest would run them twice: drop such stale lists (they
# are written again when their executable is next linked).
for f in "$here"/build/tests/*_tests_tests-*.cmake; do
  case $f in *_large_tests_tests-*) continue ;; esac
  if grep -q '(large)]' "$f" 2>/dev/null; then rm -f "$f"; fi
done

# The large-data tests use one core: they run alongside the sanitizer build and tests, their
# output kept in build/ctest-large.out and shown when they are done.
large_start=$(date +%s)
rm -f "$here/build/large-end"
{
  rc=0
  ctest_run "$here/build" -L '^large$' >"$here/build/ctest-large.out" 2>&1 || rc=$?
  date +%s >"$here/build/large-end"  # when they ended, not when they were waited for
  exit "$rc"
} &
large_pid=$!
ctest_logs+=("$here/build/ctest.log")  # ctest_run ran in a subshell
large_done() {  # waits for the large-data tests, shows their output; their exit code
  local rc=0
  wait "$large_pid" || rc=$?
  large_pid=""
  local end
  end=$(cat "$here/build/large-end" 2>/dev/null || date +%s)
  echo "-- release tests (large data), $((end - large_start)) s from their start to their end:"
  cat "$here/build/ctest-large.out"
  phase_end
  phase_names+=("  alongside: release tests (large)")
  phase_secs+=("$((end - large_start))")
  return "$rc"
}

phase "sanitizer build (alongside: release tests (large))"
# clang, not g++: g++ 12 instruments UBSan's own records of its checks as AddressSanitizer
# globals, which gave the outpost binary 21 MB of data and 754,000 relocations to apply at every
# start (75 ms, against 40 ms with clang's 2 MB); the suite starts outpost some 3,500 times,
# and its sanitizer tests ran in 535 s with g++ and 356 s with clang. The release build stays
# g++, the compiler the package is built with, so both compilers' warnings hold (-Werror).
# -O1 -g1, the sanitizers' advice: a third less compile time than -O2 -g, and line tables
# enough for their stack traces; the test sources themselves at -O0 (tests/CMakeLists.txt).
# A tree configured for another compiler is configured anew (CMake keeps its first compiler).
if [ -f "$here/build-asan/CMakeCache.txt" ] &&
   ! grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++-14$' "$here/build-asan/CMakeCache.txt"; then
  rm -rf "$here/build-asan/CMakeCache.txt" "$here/build-asan/CMakeFiles"
fi
build_rc=0
{ cmake -S "$here" -B "$here/build-asan" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DOUTPOST_SANITIZE=address,undefined \
      -DOUTPOST_WERROR=ON -DOUTPOST_TESTS=ON -DOUTPOST_BENCH=OFF >/dev/null &&
    cmake --build "$here/build-asan" -j"$jobs"; } || build_rc=$?
if [ "$build_rc" -ne 0 ]; then
  large_done || true
  echo "FAIL: the sanitizer build failed (above)"
  exit "$build_rc"
fi

phase "sanitizer tests (all but large data; alongside: release tests (large))"
asan_rc=0
# strict_memcmp=0: AddressSanitizer checks the bytes memcmp compares, not all n of them. The
# publisher's delta search compares up to 512 bytes at each of millions of positions where the
# first byte already differs; checking all 512 each time made one test's publish take 43 s
# instead of 12 s.
ASAN_OPTIONS=detect_leaks=1:strict_memcmp=0 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest_run "$here/build-asan" -LE '^large$' || asan_rc=$?

phase "waiting for the release tests (large)"
large_rc=0
large_done || large_rc=$?
[ "$asan_rc" -eq 0 ] || { echo "FAIL: sanitizer tests failed (above)"; exit "$asan_rc"; }
[ "$large_rc" -eq 0 ] || { echo "FAIL: the release large-data tests failed (above)"; exit "$large_rc"; }
