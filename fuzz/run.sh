#!/usr/bin/env bash
# Builds the libFuzzer targets (clang++-14, -fsanitize=fuzzer,address,undefined; the libraries
# with fuzzer-no-link) in build-fuzz/ and runs each target in turn, one process at a time,
# starting from its committed seeds (fuzz/corpus/<target>/). New inputs go to
# build-fuzz/corpus/<target>/ (never into the committed corpus); a crash, a sanitizer report
# or a failed property stops that target and leaves its input in build-fuzz/artifacts/<target>/.
# Prints one line per target: executions, seconds, coverage, outcome. docs/SECURITY.md.
#
#   fuzz/run.sh                        every target for 20 s each (the short default)
#   fuzz/run.sh --time 600             every target for 10 minutes
#   fuzz/run.sh --runs 10000000        every target for 10 million executions (the long run)
#   fuzz/run.sh --runs N --time S      whichever limit comes first
#   fuzz/run.sh --target pack ...      only these targets (repeatable)
#   fuzz/run.sh --build-only           build, run nothing
#   fuzz/run.sh --repro FILE --target T   run one input through target T and exit
# Exit status: 0 when every target ran clean, 1 when one found a problem, 2 on bad usage.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${OUTPOST_FUZZ_BUILD:-$here/build-fuzz}
all_targets=(json tuf_metadata manifest chunk_index pack update_file delta have_file config
  http_request)

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
time_per_target=""
runs=""
targets=()
build_only=false
repro=""
while [ $# -gt 0 ]; do
  case $1 in
    --time) time_per_target=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --target) targets+=("$2"); shift 2 ;;
    --build-only) build_only=true; shift ;;
    --repro) repro=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fuzz/run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [ -f "$here/fuzz/targets/$t.cc" ] || { echo "fuzz/run.sh: no target '$t' (fuzz/targets/)" >&2; exit 2; }
done
command -v clang++-14 >/dev/null || {
  echo "fuzz/run.sh: clang++-14 not found: apt-get install clang-14 libclang-rt-14-dev" >&2
  exit 2
}

# ---- build ----
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$here} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
cmake -S "$here" -B "$build" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DOUTPOST_FUZZ=ON -DOUTPOST_TESTS=OFF -DOUTPOST_BENCH=OFF \
  -DCMAKE_CXX_FLAGS="-Wno-unknown-warning-option" >/dev/null
cmake --build "$build" -j"$(nproc)" --target outpost_fuzzers
$build_only && exit 0

if [ -n "$repro" ]; then
  [ ${#targets[@]} -eq 1 ] || { echo "fuzz/run.sh: --repro needs one --target" >&2; exit 2; }
  exec "$build/fuzz/fuzz_${targets[0]}" "$repro"
fi

# ---- run, one target at a time ----
limit=()
[ -n "$runs" ] && limit+=(-runs="$runs")
[ -n "$time_per_target" ] && limit+=(-max_total_time="$time_per_target")
[ ${#limit[@]} -gt 0 ] || limit=(-max_total_time=20)
summary=()
failed=0
for t in "${targets[@]}"; do
  work="$build/corpus/$t"
  artifacts="$build/artifacts/$t/"
  mkdir -p "$work" "$artifacts"
  dict=()
  [ -f "$here/fuzz/dicts/$t.dict" ] && dict=(-dict="$here/fuzz/dicts/$t.dict")
  log="$build/fuzz-$t.log"
  echo "== $t (${limit[*]}), log $log"
  rc=0
  "$build/fuzz/fuzz_$t" "${limit[@]}" "${dict[@]}" -max_len=65536 -timeout=25 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts" \
    "$work" "$here/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -1)
  secs=$(sed -nE 's/^Done [0-9]+ runs in ([0-9]+) second.*/\1/p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  corp=$(grep -oE 'corp: [0-9]+/[0-9]+[bKM]b' "$log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    outcome=clean
  else
    outcome="FOUND A PROBLEM (exit $rc): $(ls -t "$artifacts" | head -1) — see $log"
    failed=1
  fi
  summary+=("$(printf '%-13s %12s execs %6s s  %-20s %-16s %s' "$t" "${execs:-?}" \
    "${secs:-?}" "${cov:-?}" "${corp:-?}" "$outcome")")
  echo "${summary[-1]}"
done
echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
