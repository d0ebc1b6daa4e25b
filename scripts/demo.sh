#!/usr/bin/env bash
# The demo: builds outpost, publishes the samples (a UN resolution and an indicator data
# set) into a signed repository, subscribes a fresh node to it, syncs, and shows what the
# node holds. Everything lives under $OUTPOST_DEMO (default /tmp/outpost-demo).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh" "$here/build" -DOUTPOST_TESTS=OFF -DOUTPOST_BENCH=OFF
outpost="$here/build/node/outpost"
demo=${OUTPOST_DEMO:-/tmp/outpost-demo}
rm -rf "$demo"; mkdir -p "$demo/keys"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

# The publisher: keys (kept outside the published tree), a repository, a delegation per
# publisher. keygen prints the public key.
root_hex=$("$outpost" keygen --role root --out "$demo/keys/root.key")
for role in targets snapshot timestamp; do
  "$outpost" keygen --role $role --out "$demo/keys/$role.key" >/dev/null
done
run "$outpost" repo init "$demo/repo" --keys "$demo/keys"
pub_hex=$("$outpost" keygen --role publisher --out "$demo/keys/un.key")
run "$outpost" repo delegate "$demo/repo" --keys "$demo/keys" --publisher-pubkey "$pub_hex" --prefix un/ga
itu_hex=$("$outpost" keygen --role publisher --out "$demo/keys/itu.key")
run "$outpost" repo delegate "$demo/repo" --keys "$demo/keys" --publisher-pubkey "$itu_hex" --prefix itu/ict
run "$outpost" publish "$demo/repo" --key "$demo/keys/un.key" --keys "$demo/keys" "$here/samples/resolutions/A-RES-75-202"
run "$outpost" publish "$demo/repo" --key "$demo/keys/itu.key" --keys "$demo/keys" "$here/samples/indicators/itu-ict-2019"

# The field office node: trusts the root key, syncs, reads.
export OUTPOST_STORE="$demo/store"
run "$outpost" subscribe "$demo/repo" --root-pubkey "$root_hex"
run "$outpost" sync
run "$outpost" sync
run "$outpost" ls
run "$outpost" show un/ga/A-RES-75-202
say "$outpost cat itu/ict/digital-divide-2019 data.csv | head -4"
"$outpost" cat itu/ict/digital-divide-2019 data.csv | head -4
run "$outpost" verify
run "$outpost" status
echo
echo "demo finished: repository in $demo/repo, node store in $demo/store"
