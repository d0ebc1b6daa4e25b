#!/usr/bin/env bash
# USB pack benchmark (issue 9, docs/BENCHMARKS.md "USB packs"), through the outpost binary:
#  1. caniuse-lite N -> N+1 (npm releases, consecutive): the thin pack an HQ writes for an
#     office's have-file, against what `outpost sync` reads for the same update (bytes and
#     file reads; HTTP adds ~350 header bytes per request), a whole pack, apt-offline-style
#     whole files (tar | zstd -19 of the new tree) and a git-bundle-style thin pack (git
#     bundle of the new commit against the old one).
#  2. import throughput and peak RSS of a whole pack of SIZE_MB of generated files, and
#     export throughput against `tar | zstd -3` of the same tree, in the same run, RUNS times
#     (median). REUSE=1 keeps the tree, repository and HQ store of an earlier run.
#   bench/usb/run.sh [BUILD_DIR]     env: DATA (default /tmp/usb-bench), SIZE_MB (1024),
#                                         PAIRS ("819 820 ..."), SKIP_LARGE=1, RUNS (3),
#                                         REUSE=1
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-$here/../../build}
O=$build/node/outpost
data=${DATA:-/tmp/usb-bench}
size_mb=${SIZE_MB:-1024}
pairs=${PAIRS:-"819 820 820 822 822 823 823 826 827 828"}
for t in npm zstd tar git /usr/bin/time python3; do
  command -v $t >/dev/null || { echo "run.sh: $t is missing" >&2; exit 1; }
done
mkdir -p "$data/cache"
bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
packs() { find "$1" -type f -name '*.pack' -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
ms() { python3 -c 'import time; print(int(time.time()*1000))'; }

tree() {  # tree VERSION_SUFFIX -> $data/cache/tVER/package
  local v=$1
  if [ ! -d "$data/cache/t$v/package" ]; then
    (cd "$data/cache" && { [ -f "caniuse-lite-1.0.30001$v.tgz" ] ||
      npm pack --prefer-offline "caniuse-lite@1.0.30001$v" >/dev/null 2>&1; } &&
      rm -rf "t$v" && mkdir "t$v" && tar -xzf "caniuse-lite-1.0.30001$v.tgz" -C "t$v")
  fi
  echo "$data/cache/t$v/package"
}

setup_repo() {  # setup_repo DIR: keys, repository delegating "npm" to a publisher key
  local d=$1
  mkdir -p "$d/keys"
  ROOT=$($O keygen --role root --out "$d/keys/root.key" | head -1)
  for r in targets snapshot timestamp; do $O keygen --role $r --out "$d/keys/$r.key" >/dev/null; done
  local pub
  pub=$($O keygen --role publisher --out "$d/keys/npm.key" | head -1)
  $O repo init "$d/repo" --keys "$d/keys" >/dev/null
  $O repo delegate "$d/repo" --keys "$d/keys" --publisher-pubkey "$pub" --prefix npm >/dev/null
}
publish() {  # publish DIR SRC
  $O publish "$1/repo" --key "$1/keys/npm.key" --keys "$1/keys" --bundle npm/caniuse-lite "$2" >/dev/null
}

echo "## caniuse-lite N -> N+1"
echo
echo "| pair | thin folder (pack only) | sync reads (files) | folder / HTTP est. (pack / HTTP est.) | whole pack | tar+zstd-19 of N+1 | git bundle N..N+1 | import s |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
set -- $pairs
while [ $# -ge 2 ]; do
  a=$1 b=$2
  shift 2
  ta=$(tree "$a") tb=$(tree "$b")
  w=$data/pair-$a-$b
  rm -rf "$w" && mkdir -p "$w"
  setup_repo "$w"
  publish "$w" "$ta"
  $O subscribe "$w/repo" --root-pubkey "$ROOT" --store "$w/hq" >/dev/null && $O sync --store "$w/hq" >/dev/null
  $O subscribe "$w/repo" --root-pubkey "$ROOT" --store "$w/link" >/dev/null && $O sync --store "$w/link" >/dev/null
  mkdir -p "$w/s0" && $O export --to "$w/s0" --store "$w/hq" >/dev/null
  $O import "$w/s0" --root-pubkey "$ROOT" --store "$w/office" >/dev/null
  publish "$w" "$tb"
  $O sync --store "$w/hq" >/dev/null
  # What a link spends on the same update (a path source: bytes and file reads).
  read -r sync_bytes sync_reads < <($O sync --json --store "$w/link" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print(r["bytes_read"], r["requests"])')
  $O have --out "$w/office.have" --store "$w/office" >/dev/null
  mkdir -p "$w/thin" "$w/whole"
  $O export --to "$w/thin" --for "$w/office.have" --store "$w/hq" >/dev/null
  $O export --to "$w/whole" --store "$w/hq" >/dev/null
  thin=$(bytes "$w/thin/outpost-pack")
  thinp=$(packs "$w/thin/outpost-pack")
  whole=$(bytes "$w/whole/outpost-pack")
  t0=$(ms)
  $O import "$w/thin" --store "$w/office" >/dev/null
  t1=$(ms)
  tarz=$(tar -C "$tb" --sort=name --mtime=@0 --owner=0 --group=0 -cf - . | zstd -19 -q -c | wc -c)
  g=$w/git
  git init -q "$g" && cp -r "$ta/." "$g/" && git -C "$g" add -A &&
    git -C "$g" -c user.name=b -c user.email=b@b commit -qm a && git -C "$g" tag a &&
    rm -rf "${g:?}"/* && cp -r "$tb/." "$g/" && git -C "$g" add -A &&
    git -C "$g" -c user.name=b -c user.email=b@b commit -qm b &&
    git -C "$g" bundle create -q "$w/b.bundle" a..HEAD 2>/dev/null
  gb=$(stat -c %s "$w/b.bundle")
  http=$((sync_bytes + sync_reads * 350))
  ratio=$(python3 -c "print(f'{$thin/$http:.2f} ({$thinp/$http:.2f})')")
  echo "| $a -> $b | $thin ($thinp) | $sync_bytes ($sync_reads) | $ratio | $whole | $tarz | $gb | $(python3 -c "print(f'{($t1-$t0)/1000:.2f}')") |"
done

[ "${SKIP_LARGE:-}" = 1 ] && exit 0
echo
echo "## Whole pack of ${size_mb} MB: export and import"
echo
w=$data/large
runs=${RUNS:-3}
if [ "${REUSE:-}" = 1 ] && [ -s "$w/root.hex" ] && [ -d "$w/hq" ]; then
  ROOT=$(cat "$w/root.hex")  # the tree, repository and HQ store of an earlier run
else
  rm -rf "$w" && mkdir -p "$w/src"
  # Generated files of mixed compressibility (text-like and random), 4 MB each.
  python3 - "$w/src" "$size_mb" <<'PY'
import os, random, sys
d, mb = sys.argv[1], int(sys.argv[2])
r = random.Random(9)
words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9))) for _ in range(5000)]
for i in range(mb // 4):
    with open(os.path.join(d, f"f{i:04d}.dat"), "wb") as f:
        if i % 2:
            f.write(os.urandom(4 << 20))
        else:
            out = bytearray()
            while len(out) < (4 << 20):
                out += b" ".join(r.choice(words) for _ in range(12)) + b"\n"
            f.write(out[: 4 << 20])
PY
  setup_repo "$w"
  publish "$w" "$w/src"
  $O subscribe "$w/repo" --root-pubkey "$ROOT" --store "$w/hq" >/dev/null && $O sync --store "$w/hq" >/dev/null
  echo "$ROOT" >"$w/root.hex"
fi
# RUNS times: export, tar | zstd -3 of the same tree, import into a fresh store (peak RSS
# from /usr/bin/time -v); the table gives each run and the median.
for r in $(seq 1 "$runs"); do
  rm -rf "$w/stick" "$w/tar" "$w/office" && mkdir -p "$w/stick" "$w/tar"
  t0=$(ms)
  $O export --to "$w/stick" --store "$w/hq" >/dev/null
  t1=$(ms)
  tar -C "$w/src" -cf - . | zstd -3 -q -T1 -c >"$w/tar/src.tar.zst"
  t2=$(ms)
  sync
  /usr/bin/time -v -o "$w/import.time" $O import "$w/stick" --root-pubkey "$ROOT" --store "$w/office" >/dev/null
  python3 - "$w/import.time" "$t0" "$t1" "$t2" "$(bytes "$w/stick/outpost-pack")" >>"$w/runs.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def f(k): return re.search(re.escape(k) + r": (.*)", t).group(1).strip()
wall = 0.0
for part in f("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"): wall = wall * 60 + float(part)
t0, t1, t2, pack = (int(x) for x in sys.argv[2:])
cpu = float(f("User time (seconds)")) + float(f("System time (seconds)"))
print((t1 - t0) / 1000, (t2 - t1) / 1000, wall, cpu, int(f("Maximum resident set size (kbytes)")), pack)
PY
done
python3 - "$size_mb" "$runs" "$w/runs.txt" <<'PY'
import statistics, sys
mb, runs, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rows = [[float(x) for x in l.split()] for l in open(path).read().split("\n") if l][-runs:]
c = mb * 1.048576  # MB of content
med = [statistics.median(r[i] for r in rows) for i in range(6)]
print(f"Runs: {runs}; pack {med[5]/1e6:.0f} MB; content {c:.0f} MB. Per run (export s, tar|zstd s, import wall s, import CPU s, peak RSS MB):")
for r in rows: print(f"  {r[0]:.1f} {r[1]:.1f} {r[2]:.1f} {r[3]:.1f} {r[4]/1024:.0f}")
print()
print("| what (median of %d) | seconds | MB/s of content | peak RSS |" % runs)
print("| --- | ---: | ---: | ---: |")
print(f"| export (whole pack, {med[5]/1e6:.0f} MB) | {med[0]:.1f} | {c/med[0]:.0f} | |")
print(f"| tar \\| zstd -3 of the same tree | {med[1]:.1f} | {c/med[1]:.0f} | |")
print(f"| import (verification included), wall | {med[2]:.1f} | {c/med[2]:.0f} | {max(r[4] for r in rows)/1024:.0f} MB (max) |")
print(f"| import, CPU (user + sys) | {med[3]:.1f} | {c/med[3]:.0f} | |")
PY
