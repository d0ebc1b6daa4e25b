#!/usr/bin/env bash
# The demo: builds outpost, publishes the samples (a UN resolution and an indicator data
# set) into a signed repository, subscribes a fresh node to it, syncs, and shows what the
# node holds; it ends with the daemon's kiosk serving the samples on 127.0.0.1. Everything
# lives under $OUTPOST_DEMO (default /tmp/outpost-demo).
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

# The field office node as a daemon (docs/daemon.md), with its own store: it subscribes and
# syncs by itself (keeping what peers ask for) and shares what it holds over HTTP; a second
# node (a kiosk) syncs from it over the LAN path, here on 127.0.0.1, exactly as from a
# mirror, verifying everything against the publisher's keys.
port=${OUTPOST_DEMO_PORT:-8080}
cat > "$demo/outpost.toml" <<EOF
store = "$demo/office"

[http]
listen = ["127.0.0.1:$port"]

[[subscription]]
url = "$demo/repo"
root_pubkey = "$root_hex"
EOF
run "$outpost" serve --config "$demo/outpost.toml" --check-config
say "$outpost serve --config $demo/outpost.toml 2>$demo/serve.log &"
"$outpost" serve --config "$demo/outpost.toml" >/dev/null 2>"$demo/serve.log" &
serve_pid=$!
for _ in $(seq 100); do
  grep -q "synced from" "$demo/serve.log" 2>/dev/null && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$demo/serve.log"; exit 1; }
  sleep 0.1
done
cat "$demo/serve.log"
id=$(curl -s "http://127.0.0.1:$port/repo/" | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -1)
run "$outpost" status --store "$demo/office"
run "$outpost" subscribe "http://127.0.0.1:$port/repo/$id/" --root-pubkey "$root_hex" --store "$demo/kiosk"
run "$outpost" sync --store "$demo/kiosk"
run "$outpost" ls --store "$demo/kiosk"

# The kiosk pages (docs/kiosk.md) of the daemon: what a phone on the Wi-Fi would open.
for _ in $(seq 100); do
  curl -s "http://127.0.0.1:$port/search?q=affordable" | grep -q '<mark>' && break
  sleep 0.1
done
say "curl -s http://127.0.0.1:$port/ | grep '<li><a href=\"/b/'"
curl -s "http://127.0.0.1:$port/" | grep -o '<li><a href="/b/[^"]*"[^>]*>[^<]*' | sed 's/<li><a href="\([^"]*\)"[^>]*>/\1  /' | sort -u
say "curl -s 'http://127.0.0.1:$port/search?q=%22affordable+and+reliable+connectivity%22' | grep -o '<mark>[^<]*</mark>'"
curl -s "http://127.0.0.1:$port/search?q=%22affordable+and+reliable+connectivity%22" | grep -o '<mark>[^<]*</mark>' | head -3
echo
echo "demo finished: repository in $demo/repo, node store in $demo/store, and a daemon"
echo "(store $demo/office, log $demo/serve.log) with pid $serve_pid; the kiosk store"
echo "$demo/kiosk synced from it."
echo
echo "The kiosk is serving the samples on http://127.0.0.1:$port/ : open it in a browser"
echo "(resolution 75/202 at /b/un/ga/A-RES-75-202, the indicator at"
echo "/b/itu/ict/digital-divide-2019, search at /search; status at /status, metrics at /metrics)."
echo "Stop it with: kill $serve_pid"
