#!/usr/bin/env bash
# Peer serving (`outpost serve`) against nginx serving the same repository files, side by side
# in one run (issue 10; docs/BENCHMARKS.md, "Peer serving"):
#   - a second node's sync time and bytes on the wire from each;
#   - requests per second for one multi-range request of 64 chunks under wrk (64 connections);
#   - RSS of `outpost serve` idle with the samples, and its peak while serving that load.
# The repository holds the samples and a generated bundle of about 2 MB (~250 chunks), with its
# patches removed so that both servers are read by the chunk route (a peer serves packs for
# versions it fetched by chunks, docs/daemon.md).
#   bench/serve/run.sh [OUTPOST_BINARY]      (needs nginx-light, wrk, curl, python3)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
o=${1:-$here/build/node/outpost}
work=${BENCH_BASE:-/tmp/outpost-bench}/serve
secs=${BENCH_SECONDS:-10}
for tool in nginx wrk curl python3; do
  command -v $tool >/dev/null || { echo "missing $tool: apt-get install nginx-light wrk curl python3"; exit 1; }
done
rm -rf "$work"; mkdir -p "$work/keys" "$work/big"
cleanup() {
  [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null || true
  [ -f "$work/nginx/nginx.pid" ] && kill "$(cat "$work/nginx/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT

root=$("$o" keygen --role root --out "$work/keys/root.key")
for r in targets snapshot timestamp; do "$o" keygen --role $r --out "$work/keys/$r.key" >/dev/null; done
"$o" repo init "$work/repo" --keys "$work/keys" >/dev/null
pub=$("$o" keygen --role publisher --out "$work/keys/pub.key")
"$o" repo delegate "$work/repo" --keys "$work/keys" --publisher-pubkey "$pub" --prefix bench >/dev/null
python3 - "$work/big" <<'PY'
import random, sys
random.seed(7)
words = [''.join(random.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(random.randint(2, 9))) for _ in range(5000)]
for f in range(8):
    with open(f"{sys.argv[1]}/part{f}.txt", "w") as out:
        out.write(' '.join(random.choice(words) for _ in range(45000)))
PY
"$o" publish "$work/repo" --key "$work/keys/pub.key" --keys "$work/keys" --bundle bench/big "$work/big" >/dev/null
find "$work/repo/objects" -name '*.patch' -delete

# nginx on the repository
mkdir -p "$work/nginx/logs"
ngport=18480; peerport=18481
cat > "$work/nginx/nginx.conf" <<NG
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server { listen 127.0.0.1:$ngport; root $work/repo; }
}
NG
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx"

# the office node: syncs the repository by itself, then serves it
cat > "$work/outpost.toml" <<TOML
store = "$work/office"
[http]
listen = ["127.0.0.1:$peerport"]
[[subscription]]
url = "$work/repo"
root_pubkey = "$root"
TOML
"$o" serve --config "$work/outpost.toml" >/dev/null 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 300); do grep -q "synced from" "$work/serve.log" && break; sleep 0.1; done
id=$(curl -s "http://127.0.0.1:$peerport/repo/" | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -1)
peer="http://127.0.0.1:$peerport/repo/$id"
sleep 1
rss_idle=$(awk '/VmRSS/ {print $2}' /proc/$serve_pid/status)

sync_from() {  # URL STORE -> "seconds bytes requests"
  "$o" subscribe "$1" --root-pubkey "$root" --store "$2" >/dev/null
  local t0 t1 out
  t0=$(date +%s.%N)
  out=$("$o" sync --json --store "$2")
  t1=$(date +%s.%N)
  echo "$(python3 -c "print(f'{$t1-$t0:.2f}')") $(echo "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print(r["bytes_read"], r["requests"])')"
}
read -r ng_s ng_b ng_r <<<"$(sync_from "http://127.0.0.1:$ngport" "$work/node-nginx")"
read -r pe_s pe_b pe_r <<<"$(sync_from "$peer" "$work/node-peer")"

# 64 ranges, one per chunk, spread over the biggest pack (offsets from the published index)
pack=$(ls -S "$work/repo/packs" | head -1)
ranges=$(python3 - "$work/repo" "$pack" <<'PY'
import glob, struct, sys
repo, pack = sys.argv[1], sys.argv[2]
pid = bytes.fromhex(pack[:64])
best = []
for idx in glob.glob(f"{repo}/objects/*/*.index"):
    b = open(idx, 'rb').read()
    files, packs, chunks = struct.unpack_from('<IIQ', b, 8)
    ids = [b[24 + 32*i:24 + 32*(i+1)] for i in range(packs)]
    at = 24 + 32*packs + 4*files
    for c in range(chunks):
        _, raw, p, off, stored = struct.unpack_from('<32sIIQI', b, at + 52*c)
        if ids[p] == pid: best.append((off, stored))
best.sort()
step = max(1, len(best) // 64)
pick = best[::step][:64]
print(','.join(f'{o}-{o+s-1}' for o, s in pick), len(pick), file=sys.stdout)
PY
)
count=${ranges##* }; ranges=${ranges% *}
run_wrk() {  # URL -> requests/s
  wrk -t2 -c64 -d"${secs}s" -H "Range: bytes=$ranges" "$1" | awk '/Requests\/sec/ {print $2}'
}
code_ng=$(curl -s -o /dev/null -w '%{http_code}' -H "Range: bytes=$ranges" "http://127.0.0.1:$ngport/packs/$pack")
code_pe=$(curl -s -o /dev/null -w '%{http_code}' -H "Range: bytes=$ranges" "$peer/packs/$pack")
rps_ng=$(run_wrk "http://127.0.0.1:$ngport/packs/$pack")
rps_pe=$(run_wrk "$peer/packs/$pack")
rss_peak=$(awk '/VmHWM/ {print $2}' /proc/$serve_pid/status)

cat <<MD
### Peer serving against nginx, $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -m))

| measure | nginx | outpost serve | target |
| --- | --- | --- | --- |
| second node's first sync: seconds | $ng_s | $pe_s | |
| ... bytes on the wire | $ng_b | $pe_b | |
| ... requests | $ng_r | $pe_r | |
| multi-range request of $count chunks (HTTP $code_ng / $code_pe), wrk -c64 ${secs}s: requests/s | $rps_ng | $rps_pe | ≥ 50 % of nginx |
| RSS of outpost serve idle with the repository (KB) | | $rss_idle | ≤ 20 MB |
| peak RSS of outpost serve under that load (KB) | | $rss_peak | ≤ 64 MB |
MD
