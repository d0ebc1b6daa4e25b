#!/usr/bin/env bash
# Delta benchmark on real releases of the npm package caniuse-lite (statistics files that drift
# between releases). Prints a markdown table: our engines (through the API, on outpost content
# streams) against `zstd --patch-from --ultra -22 --long=27` and `bsdiff` on the same streams
# (and, for reference, on deterministic tars of the same trees).
#   bench/delta/run.sh [BUILD_DIR]        (needs npm, zstd, bsdiff, /usr/bin/time)
# Env: DATA (default /tmp/delta-data), DELTA_TOOL (a prebuilt outpost_delta_bench).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-$here/../../build}
data=${DATA:-/tmp/delta-data}
tool=${DELTA_TOOL:-$build/bench/outpost_delta_bench}
if [ -z "${DELTA_TOOL:-}" ]; then
  cmake --build "$build" -j2 --target outpost_delta_bench >/dev/null
fi
for t in zstd bsdiff npm; do
  command -v $t >/dev/null || { echo "run.sh: $t is missing (apt-get install zstd bsdiff npm)" >&2; exit 1; }
done
mkdir -p "$data"
cd "$data"
versions="819 820 822 823 826 827 828"
for v in $versions; do
  [ -f "v$v.content" ] && continue
  [ -f "caniuse-lite-1.0.30001$v.tgz" ] || npm pack "caniuse-lite@1.0.30001$v" >/dev/null 2>&1
  rm -rf "t$v" && mkdir "t$v" && tar -xzf "caniuse-lite-1.0.30001$v.tgz" -C "t$v"
  /usr/bin/python3 "$here/make_inputs.py" "t$v/package" "v$v"
done

size() { wc -c <"$1" | tr -d ' '; }
echo "| pair | new bytes | zstd-19 (API) | zstd-22 (API) | zstd -22 --long (CLI) | bsdiff | kSuffix | ratio | encode s | apply peak RSS |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
ratios=()
for pair in "819 820" "820 822" "822 823" "823 826" "826 827" "827 828"; do
  set -- $pair
  a=v$1.content b=v$2.content
  z19=$("$tool" encode zstd 19 134217728 $a $b p.z19 | cut -d' ' -f1)
  z22=$("$tool" encode zstd 22 134217728 $a $b p.z22 | cut -d' ' -f1)
  read -r ours secs < <("$tool" encode suffix 22 134217728 $a $b p.ours)
  zstd -q -f --patch-from=$a --ultra -22 --long=27 $b -o p.cli 2>/dev/null
  bsdiff $a $b p.bsdiff
  zc=$(size p.cli) bs=$(size p.bsdiff)
  /usr/bin/time -v "$tool" apply $a p.ours out 2>time.log
  cmp -s out $b || { echo "run.sh: applying our patch for $1->$2 did not rebuild v$2" >&2; exit 1; }
  rss=$(awk '/Maximum resident/ {print $6}' time.log)
  ratio=$(/usr/bin/python3 -c "print(f'{$ours / min($zc, $bs):.3f}')")
  ratios+=("$ratio")
  echo "| $1→$2 | $(size $b) | $z19 | $z22 | $zc | $bs | $ours | $ratio | $secs | ${rss} KB |"
done
/usr/bin/python3 -c "import statistics,sys; print(f'\nmedian ratio kSuffix / min(zstd -22 --long, bsdiff): {statistics.median(map(float, sys.argv[1:])):.3f}')" "${ratios[@]}"

echo
echo "Reference, on deterministic tars of the same trees:"
echo "| pair | zstd -22 --long | bsdiff |"
echo "| --- | ---: | ---: |"
for pair in "819 820" "820 822" "822 823" "823 826" "826 827" "827 828"; do
  set -- $pair
  zstd -q -f --patch-from=v$1.tar --ultra -22 --long=27 v$2.tar -o p.tcli 2>/dev/null
  bsdiff v$1.tar v$2.tar p.tbs
  echo "| $1→$2 | $(size p.tcli) | $(size p.tbs) |"
done
