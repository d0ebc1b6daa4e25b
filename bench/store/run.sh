#!/usr/bin/env bash
# The node store against the packs it was synced from (issue 8, point 6: "a store that fits
# an SD card"), and what a synced megabyte costs the disk.
#   caniuse   20 consecutive releases of caniuse-lite (1.0.30001800 ... 826, as the foundation
#             benchmark), published in order as versions 1..20 of one bundle; the node syncs
#             after each (no gc: the store keeps every version, as the packs do).
#   tree200   bench/foundation/gen_tree.py (10,000 files, 200,000,000 bytes), one bundle, one
#             sync into a new store.
# Reported: the repository's packs/ (du --apparent-size), the store's data.mdb (bytes the
# file takes on disk, du) and the pages its tables hold (`outpost status --json`
# in_use_bytes), the ratio store / packs; the kernel's write_bytes and wchar of every
# `outpost sync` (/proc/PID/io, read in the subshell that reaped it) per MB read from the
# repository. WORK_DIR must be on a real disk (tmpfs has no write accounting).
#   bench/store/run.sh [BUILD_DIR] [WORK_DIR]      env: TGZ_DIR (cached caniuse tgz), SKIP_CANIUSE=1, SKIP_TREE=1
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-$here/../../build}
O=$build/node/outpost
work=${2:-/var/tmp/outpost-store-bench}
[ -x "$O" ] || { echo "run.sh: no outpost binary at $O (cmake --build $build --target outpost)" >&2; exit 2; }
mkdir -p "$work"
cd "$work"

written() {  # "WCHAR WRITE_BYTES BYTES_READ" of one `outpost sync --json`
  (
    out=$("$@")
    read_bytes=$(printf '%s' "$out" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['bytes_read'])")
    awk -v r="$read_bytes" '/^wchar:/ {w=$2} /^write_bytes:/ {b=$2} END {print w, b, r}' "/proc/$BASHPID/io"
  )
}
setup() {  # DIR: keys, a repository delegating "b", a subscribed store
  rm -rf "$1" && mkdir -p "$1/keys"
  root=$("$O" keygen --role root --out "$1/keys/root.key" | head -n 1)
  for r in targets snapshot timestamp; do "$O" keygen --role $r --out "$1/keys/$r.key" >/dev/null; done
  pub=$("$O" keygen --role publisher --out "$1/keys/p.key" | head -n 1)
  "$O" repo init "$1/repo" --keys "$1/keys" >/dev/null
  "$O" repo delegate "$1/repo" --keys "$1/keys" --publisher-pubkey "$pub" --prefix b >/dev/null
  "$O" subscribe "$1/repo" --root-pubkey "$root" --store "$1/store" >/dev/null
}
report() {  # LABEL DIR WCHAR WRITE_BYTES READ
  local packs mdb inuse
  packs=$(du -sb "$2/repo/packs" | cut -f1)
  mdb=$(du -B1 "$2/store/data.mdb" | cut -f1)
  inuse=$("$O" status --json --store "$2/store" | python3 -c "import json,sys; print(json.load(sys.stdin)['in_use_bytes'])")
  python3 - "$1" "$packs" "$mdb" "$inuse" "$3" "$4" "$5" <<'EOF'
import sys
label, packs, mdb, inuse, wchar, wb, read = sys.argv[1], *map(int, sys.argv[2:])
mb = max(read, 1) / 1048576
print(f"| {label} | {packs:,} | {mdb:,} | {inuse:,} | {mdb / packs:.2f} | {inuse / packs:.2f} | "
      f"{read:,} | {wchar / 1048576 / mb:.2f} | {wb / 1048576 / mb:.2f} |")
EOF
}

echo "| data | packs B | store data.mdb on disk B | store tables' pages B | data.mdb / packs | pages / packs | read from the repository B | wchar per MB read | write_bytes per MB read |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"

if [ "${SKIP_CANIUSE:-0}" != 1 ]; then
  releases="800 802 803 805 806 807 809 810 812 813 814 815 816 817 818 819 820 822 823 826"
  mkdir -p tgz
  for v in $releases; do
    tgz="caniuse-lite-1.0.30001$v.tgz"
    [ -f "tgz/$tgz" ] && continue
    if [ -n "${TGZ_DIR:-}" ] && [ -f "$TGZ_DIR/$tgz" ]; then cp "$TGZ_DIR/$tgz" tgz/
    else (cd tgz && npm pack "caniuse-lite@1.0.30001$v" >/dev/null 2>&1); fi
  done
  setup caniuse
  tw=0 tb=0 tr=0
  for v in $releases; do
    rm -rf src && mkdir src && tar -xzf "tgz/caniuse-lite-1.0.30001$v.tgz" -C src
    "$O" publish caniuse/repo --key caniuse/keys/p.key --keys caniuse/keys --bundle b/caniuse src/package >/dev/null
    read -r w b r < <(written "$O" sync --json --store caniuse/store)
    tw=$((tw + w)) tb=$((tb + b)) tr=$((tr + r))
  done
  report "caniuse-lite, 20 releases" caniuse $tw $tb $tr
fi

if [ "${SKIP_TREE:-0}" != 1 ]; then
  tree=tree200
  [ -d $tree ] || python3 "$here/../foundation/gen_tree.py" $tree --files 10000 --bytes 200000000 --seed 1 >/dev/null
  setup t200
  "$O" publish t200/repo --key t200/keys/p.key --keys t200/keys --bundle b/tree $tree >/dev/null
  read -r w b r < <(written "$O" sync --json --store t200/store)
  report "tree200, one sync" t200 $w $b $r
fi
