#!/usr/bin/env bash
# Regenerates the seed corpora (fuzz/corpus/<target>/) from real files: publishes samples/
# into a scratch repository with the outpost binary (three versions of one bundle, one of
# another, two publishers under delegations) and copies its metadata, manifests, chunk
# indexes, packs, update files and patches; a node subscribed to it writes the have-files
# (`outpost have`, before and after each sync). Keys and times differ on every run, so the
# bytes do too; the committed corpus is one such run. Hand-written seeds are kept: JSON edge
# cases (fuzz/corpus/json/edge-*.json), the daemon's configurations (fuzz/corpus/config/, with
# dist/outpost.toml copied afresh), the HTTP request lines (fuzz/corpus/http_request/), and
# regression inputs (fuzz/corpus/*/regression-*).
#   fuzz/make_corpus.sh [OUTPOST_BINARY]     (default build/node/outpost)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
outpost=${1:-$here/build/node/outpost}
[ -x "$outpost" ] || { echo "make_corpus.sh: no outpost binary at $outpost (build target outpost)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
mkdir keys
for role in root targets snapshot timestamp; do
  "$outpost" keygen --role $role --out keys/$role.key >/dev/null
done
"$outpost" repo init repo --keys keys >/dev/null
pub() { "$outpost" keygen --role publisher --out "keys/$1.key" | grep -oE '[0-9a-f]{64}' | head -1; }
"$outpost" repo delegate repo --publisher-pubkey "$(pub un)" --prefix un --keys keys >/dev/null
"$outpost" repo delegate repo --publisher-pubkey "$(pub itu)" --prefix itu --keys keys >/dev/null
cp -r "$here/samples/resolutions/A-RES-75-202" res
cp -r "$here/samples/indicators/itu-ict-2019" ind
"$outpost" publish repo --key keys/un.key res --keys keys >/dev/null
"$outpost" publish repo --key keys/itu.key ind --keys keys >/dev/null
have() { "$outpost" --store node have --out "have/$1.have" >/dev/null; }
mkdir have
"$outpost" --store node subscribe repo --root repo/metadata/1.root.json >/dev/null
have subscribed
"$outpost" --store node sync >/dev/null
have synced-1
sed -i 's/sustainable/SUSTAINABLE/g' res/*.md
echo "An added paragraph." >>res/A-RES-75-202.en.md
"$outpost" publish repo --key keys/un.key res --keys keys >/dev/null
head -c 3000 res/A-RES-75-202.en.md >>res/A-RES-75-202.en.md
"$outpost" publish repo --key keys/un.key res --keys keys >/dev/null
"$outpost" --store node sync >/dev/null
have synced-3

c=$here/fuzz/corpus
for t in tuf_metadata manifest chunk_index pack update_file delta have_file; do
  mkdir -p "$c/$t"
  # opu1-*: update files in the full layout, written by publishers before 2026-12-04 (the
  # layout is now only the inside of library files and USB packs' update files).
  find "$c/$t" -type f ! -name 'regression-*' ! -name 'opu1-*' -delete
done
mkdir -p "$c/json"
find "$c/json" -type f ! -name 'regression-*' ! -name 'edge-*' -delete
for f in repo/metadata/*.json; do
  cp "$f" "$c/tuf_metadata/$(basename "$f")"
done
rm -f "$c/tuf_metadata/root.json"  # the same bytes as the newest N.root.json
cp repo/metadata/1.root.json repo/metadata/timestamp.json repo/metadata/2.targets.json \
  repo/metadata/1.un.json repo/outpost-repository.json "$c/json/"
n=0
for f in repo/targets/*/*/*/*.manifest.json; do
  n=$((n + 1))
  cp "$f" "$c/manifest/$(basename "$(dirname "$f")")-$n.manifest.json"
done
cp "$(ls repo/targets/un/ga/*/*.manifest.json | head -1)" "$c/json/manifest.json"
for f in repo/objects/*/*.index; do cp "$f" "$c/chunk_index/"; done
for f in repo/objects/*/*.patch; do cp "$f" "$c/delta/"; done
for f in repo/packs/*.pack; do cp "$f" "$c/pack/"; done
for f in repo/metadata/updates/{2.from-1,3.from-2,4.from-3,5.from-1,6.from-5,7.from-6}.upd; do
  cp "$f" "$c/update_file/"
done
for f in have/*.have; do
  cp "$f" "$c/have_file/"
  # The body alone (between the 12-byte head and the checksum), which the target seals itself.
  head -c -32 "$f" | tail -c +13 | zstd -dq >"$c/have_file/body-$(basename "$f" .have)"
done
mkdir -p "$c/config"
cp "$here/dist/outpost.toml" "$c/config/dist-outpost.toml"
du -sh "$c"/*
