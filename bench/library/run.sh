#!/usr/bin/env bash
# Library benchmark (issue 8): caniuse-lite as a library, every file under package/data/ of a
# release its own bundle (about 600), each release published with `outpost publish --batch`.
# One node syncs the first release (first sync) and then every release in turn; another jumps
# from the first release to the 11th (N -> N+10), a third to the 51st (N -> N+50), each against
# a node holding nothing that syncs the same release (the first sync of a later release, whose
# manifests list the patches of their ladder). Requests are files read from the repository
# path (an HTTP sync adds about 400 B of headers per request); bytes are bytes read.
# Compared with `tar | zstd -19 --long` of data/ (first sync), `rsync -azc` of data/ between
# releases (-c: npm tarballs give every file the same mtime), and the sum of per-bundle
# `zstd --patch-from -22` (the practical limit).
# Then the first sync of 1,000 generated bundles of a few KB each (900 words drawn from the
# sample resolution), against `tar | zstd -19 --long` of their folders.
# Then a synthetic library of 10,000 small bundles: publish time of the first release, of a
# release changing 10 bundles (the saved chunk catalog: no rescan), and of a single-bundle
# `publish` (which scans every bundle) for comparison.
#   bench/library/run.sh [BUILD_DIR]          (needs npm or TGZ_DIR, zstd, rsync, python3)
# Env: DATA (default /tmp/library-bench), TGZ_DIR (cached caniuse-lite-1.0.30001V.tgz),
#      SKIP_10K=1 (caniuse part only), ONLY_10K=1 (the 10,000-bundle part only),
#      BUNDLES (default 10000), QUICK=1 (the first 11 releases only: the pairs, N -> N+10 and
#      the one-bundle edits in a few minutes; no N -> N+50), SKIP_1K=1 (no first sync of
#      1,000 generated bundles of a few KB each), ONLY_1K=1 (that part only).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-$here/../../build}
O=$build/node/outpost
data=${DATA:-/tmp/library-bench}
for t in zstd rsync python3 tar; do
  command -v $t >/dev/null || { echo "run.sh: $t is missing (apt-get install $t)" >&2; exit 1; }
done
[ -x "$O" ] || cmake --build "$build" -j2 --target outpost >/dev/null
mkdir -p "$data"
cd "$data"
sync_line() {  # store -> "requests bytes"
  "$O" sync --json --store "$1" | python3 -c "import json,sys; d=json.load(sys.stdin)[0]; print(d['requests'], d['bytes_read'])"
}

if [ "${ONLY_10K:-0}" != 1 ] && [ "${ONLY_1K:-0}" != 1 ]; then  # the caniuse-lite part
# Releases: 51 consecutive published versions (some numbers were never published).
releases="761 762 763 764 765 766 767 768 769 770 772 774 775 776 777 778 779 780 781 782 784
  785 786 787 788 790 791 792 793 797 799 800 802 803 805 806 807 809 810 812 813 814 815 816 817
  818 819 820 822 823 826"
[ "${QUICK:-0}" = 1 ] && releases="761 762 763 764 765 766 767 768 769 770 772"
for v in $releases; do
  [ -d "t$v" ] && continue
  tgz="caniuse-lite-1.0.30001$v.tgz"
  if [ ! -f "$tgz" ]; then
    if [ -n "${TGZ_DIR:-}" ] && [ -f "$TGZ_DIR/$tgz" ]; then cp "$TGZ_DIR/$tgz" .
    else npm pack "caniuse-lite@1.0.30001$v" >/dev/null 2>&1; fi
  fi
  mkdir "t$v" && tar -xzf "$tgz" -C "t$v"
done

# A batch folder per release: data/<dir>/<file> -> bundle cl/<dir>/<file with . -> ->.
python3 - "$releases" <<'EOF'
import os, sys, shutil, json
for v in sys.argv[1].split():
    out = f"b{v}"
    if os.path.isdir(out):
        continue
    root = f"t{v}/package/data"
    for d, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), root)
            segs = ["cl"] + [s.replace(".", "-") for s in rel.split("/")]
            name = "/".join(segs)
            folder = os.path.join(out, name.replace("/", "__"))
            os.makedirs(folder)
            shutil.copy(os.path.join(d, f), os.path.join(folder, f))
            json.dump({"name": name, "kind": "generic"}, open(os.path.join(folder, "bundle.json"), "w"))
EOF

rm -rf keys repo nodeA nodeB nodeC nodeF
mkdir keys
for r in root targets snapshot timestamp; do "$O" keygen --role $r --out keys/$r.key > keys/$r.pub; done
"$O" keygen --role publisher --out keys/p.key > keys/p.pub
"$O" repo init repo --keys keys >/dev/null
"$O" repo delegate repo --keys keys --publisher-pubkey "$(head -1 keys/p.pub)" --prefix cl >/dev/null
rootpub=$(head -1 keys/root.pub)
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin)[0]; print(d['$1'])"; }
patch_limit() {  # sum of per-file zstd --patch-from -22 between two data trees
  python3 - "$1" "$2" <<'EOF'
import os, subprocess, sys
a, b = sys.argv[1], sys.argv[2]
total = 0
for d, _, files in os.walk(b):
    for f in files:
        nb = os.path.join(d, f)
        na = os.path.join(a, os.path.relpath(nb, b))
        if os.path.exists(na) and open(na, "rb").read() == open(nb, "rb").read():
            continue
        cmd = ["zstd", "-q", "-c", "--ultra", "-22", "--long=27"]
        if os.path.exists(na):
            cmd.append("--patch-from=" + na)
        total += len(subprocess.run(cmd + [nb], capture_output=True).stdout)
print(total)
EOF
}
rsync_bytes() {  # bytes rsync -z moves to bring a copy of $1 to $2
  rm -rf rs && cp -r "$1" rs
  rsync -azc --stats "$2/" rs/ | awk '/Total bytes received/ {gsub(",","",$4); r=$4} /Total bytes sent/ {gsub(",","",$4); s=$4} END {print r+s}'
}

set -- $releases
first=$1
echo "## caniuse-lite as a library ($(ls "b$first" | wc -l) bundles per release)"
echo
start=$(date +%s.%N)
"$O" publish repo --key keys/p.key --keys keys --batch "b$first" >/dev/null
pub_first=$(python3 -c "import time; print(round(time.time()-$start,1))")
tarzst=$(tar -C "t$first/package/data" -cf - . | zstd -19 --long -q -c | wc -c)
"$O" subscribe repo --root-pubkey "$rootpub" --store nodeA >/dev/null
"$O" subscribe repo --root-pubkey "$rootpub" --store nodeB >/dev/null
"$O" subscribe repo --root-pubkey "$rootpub" --store nodeC >/dev/null
read -r reqA bytesA < <(sync_line nodeA)
read -r reqB bytesB < <(sync_line nodeB)
read -r reqC bytesC < <(sync_line nodeC)
echo "| first sync | requests | bytes | tar \\| zstd -19 --long | ratio | publish s |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
echo "| release $first | $reqA | $bytesA | $tarzst | $(python3 -c "print(round($bytesA/$tarzst,3))") | $pub_first |"
echo
echo "| pair | changed bundles | requests | bytes | per-bundle zstd -22 limit | bytes / limit | rsync -z | rsync / bytes | publish s | tar\\|zstd-19 of changed s |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
prev=$first
shift
n=0
absent=()
later=()
for v in "$@"; do
  n=$((n + 1))
  start=$(date +%s.%N)
  changed=$("$O" publish repo --key keys/p.key --keys keys --batch "b$v" --json |
    python3 -c "import json,sys; print(sum(1 for b in json.load(sys.stdin)['bundles'] if not b['unchanged']))")
  pub=$(python3 -c "import time; print(round(time.time()-$start,1))")
  # What the publisher compresses for the changed files, by tar | zstd -19 for scale.
  list=$(cd "t$v/package/data" && find . -type f | while read -r f; do cmp -s "$f" "../../../t$prev/package/data/$f" || echo "$f"; done)
  start=$(date +%s.%N)
  (cd "t$v/package/data" && echo "$list" | tar -cf - -T - 2>/dev/null | zstd -19 -q -c >/dev/null)
  tz=$(python3 -c "import time; print(round(time.time()-$start,1))")
  if [ $n -le 6 ]; then
    read -r req bytes < <(sync_line nodeA)
    limit=$(patch_limit "t$prev/package/data" "t$v/package/data")
    rs=$(rsync_bytes "t$prev/package/data" "t$v/package/data")
    echo "| $prev → $v | $changed | $req | $bytes | $limit | $(python3 -c "print(round($bytes/max($limit,1),2))") | $rs | $(python3 -c "print(round($rs/max($bytes,1),1))") | $pub | $tz |"
  fi
  if [ $n -eq 10 ] || [ $n -eq 50 ]; then  # a long absence: node B 10 releases, node C 50
    node=nodeB; [ $n -eq 50 ] && node=nodeC
    read -r req bytes < <(sync_line $node)
    # The full download: what a node holding nothing reads for this release.
    rm -rf nodeF
    "$O" subscribe repo --root-pubkey "$rootpub" --store nodeF >/dev/null
    read -r freq fbytes < <(sync_line nodeF)
    limit=$(patch_limit "t$first/package/data" "t$v/package/data")
    rs=$(rsync_bytes "t$first/package/data" "t$v/package/data")
    absent+=("| $first → $v (N→N+$n) | $req | $bytes | $freq | $fbytes | $((bytes - fbytes)) | $limit | $rs |")
    # The same full download as a first sync at a later release, against tar | zstd of it.
    tz_v=$(tar -C "t$v/package/data" -cf - . | zstd -19 --long -q -c | wc -c)
    later+=("| release $v | $freq | $fbytes | $tz_v | $(python3 -c "print(round($fbytes/$tz_v,3))") |")
  fi
  prev=$v
done
echo
echo "| long absence | requests | bytes | full download: requests | bytes | bytes − full | per-bundle zstd -22 limit | rsync -z |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${absent[@]}"
echo
echo "| first sync at a later release | requests | bytes | tar \\| zstd -19 --long | ratio |"
echo "| --- | ---: | ---: | ---: | ---: |"
printf '%s\n' "${later[@]}"

# One bundle changed alone after the last release (a line added to one data file): what node
# A, current, reads for it. A small bundle lists no patch from its version before
# (repository.h, kMinRungSaving); its change comes in the update file.
sync_line nodeA >/dev/null
echo
echo "| one bundle changed alone | its file | requests | bytes |"
echo "| --- | ---: | ---: | ---: |"
rm -rf bedit && cp -rL "b$prev" bedit  # -L: DATA may hold links to shared trees
for f in cl__features__aac-js/aac.js cl__regions__VN-js/VN.js; do
  printf '// edited\n' >> "bedit/$f"
  "$O" publish repo --key keys/p.key --keys keys --batch bedit >/dev/null
  read -r req bytes < <(sync_line nodeA)
  echo "| ${f#*/} | $(wc -c < "bedit/$f") B | $req | $bytes |"
done
"$O" verify --store nodeA >/dev/null
fi

if [ "${SKIP_1K:-0}" != 1 ] && [ "${ONLY_10K:-0}" != 1 ]; then  # 1,000 bundles of a few KB
echo
echo "## First sync of 1,000 generated bundles (900 words each, drawn from the sample resolution)"
rm -rf k1k r1k s1k n1k
mkdir k1k
for r in root targets snapshot timestamp; do "$O" keygen --role $r --out k1k/$r.key > k1k/$r.pub; done
"$O" keygen --role publisher --out k1k/p.key > k1k/p.pub
"$O" repo init r1k --keys k1k >/dev/null
"$O" repo delegate r1k --keys k1k --publisher-pubkey "$(head -1 k1k/p.pub)" --prefix lib >/dev/null
python3 - "$here/../../samples/resolutions" <<'EOF'
import os, random, re, sys
text = ""
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        if f.endswith(".md"):
            text += open(os.path.join(d, f), encoding="utf-8").read()
words = re.findall(r"\w+[.,;:]?", text)
random.seed(1000)
for i in range(1000):
    d = f"s1k/b{i:04d}"
    os.makedirs(d)
    open(d + "/bundle.json", "w").write('{"name": "lib/doc/b%04d"}' % i)
    open(d + "/text.md", "w").write(" ".join(random.choice(words) for _ in range(900)) + "\n")
EOF
"$O" publish r1k --key k1k/p.key --keys k1k --batch s1k >/dev/null
"$O" subscribe r1k --root-pubkey "$(head -1 k1k/root.pub)" --store n1k >/dev/null
read -r req1k bytes1k < <(sync_line n1k)
tar1k=$(tar -C s1k -cf - . | zstd -19 --long -q -c | wc -c)
echo
echo "| first sync | requests | bytes | tar \\| zstd -19 --long | ratio |"
echo "| --- | ---: | ---: | ---: | ---: |"
echo "| 1,000 bundles, $(find s1k -type f -printf "%s\n" | awk "{s+=\$1} END {print s}") B of files | $req1k | $bytes1k | $tar1k | $(python3 -c "print(round($bytes1k/$tar1k,3))") |"
fi

[ "${SKIP_10K:-0}" = 1 ] || [ "${ONLY_1K:-0}" = 1 ] && exit 0
echo
count=${BUNDLES:-10000}
echo "## Publish time on a library of $count small bundles"
rm -rf k10 r10 s10
mkdir k10
for r in root targets snapshot timestamp; do "$O" keygen --role $r --out k10/$r.key >/dev/null; done
"$O" keygen --role publisher --out k10/p.key > k10/p.pub
"$O" repo init r10 --keys k10 >/dev/null
"$O" repo delegate r10 --keys k10 --publisher-pubkey "$(head -1 k10/p.pub)" --prefix lib >/dev/null
python3 - "$count" <<'EOF'
import os, random, sys
random.seed(8)
words = ["assembly", "resolution", "member", "states", "development", "report", "data", "goal"]
for i in range(int(sys.argv[1])):
    d = f"s10/b{i:05d}"
    os.makedirs(d)
    open(d + "/bundle.json", "w").write('{"name": "lib/doc/b%05d"}' % i)
    open(d + "/text.md", "w").write(" ".join(random.choice(words) for _ in range(300)) + f" {i}\n")
EOF
t() { local s; s=$(date +%s.%N); "$@" >/dev/null; python3 -c "import time; print(round(time.time()-$s,1))"; }
t_first=$(t "$O" publish r10 --key k10/p.key --keys k10 --batch s10)
for i in 00001 00002 00003 00004 00005 00006 00007 00008 00009 00010; do echo "edit" >> "s10/b$i/text.md"; done
t_batch10=$(t "$O" publish r10 --key k10/p.key --keys k10 --batch s10)
echo "edit" >> s10/b00011/text.md
t_single=$(t "$O" publish r10 --key k10/p.key --keys k10 s10/b00011)
echo "| publish | seconds |"
echo "| --- | ---: |"
echo "| first release, $count bundles (--batch) | $t_first |"
echo "| release changing 10 bundles (--batch, saved catalog) | $t_batch10 |"
echo "| one bundle without --batch (scans every bundle) | $t_single |"
