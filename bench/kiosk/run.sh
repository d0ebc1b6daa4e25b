#!/usr/bin/env bash
# The kiosk (`outpost serve`, docs/kiosk.md) against nginx serving the same pages pre-rendered
# as static files, side by side in one run (issue 11; docs/BENCHMARKS.md, "Kiosk"):
#   - requests/s and latency of the resolution page (75/202) under wrk, 64 connections;
#   - search latency on a library of generated resolutions (1,000 by default), one connection,
#     every request a different query (a wrk Lua script), so no page comes from a cache;
#   - page weight per page type, plain and gzip;
#   - RSS of `outpost serve` with the kiosk idle (VmRSS from /proc, the median of 5 samples a
#     second apart), just after it synced and indexed the library and again after a restart on
#     that store; its peak under the load above; and idle again after a new store synced the
#     same library over HTTP from nginx (as a kiosk fed by a mirror).
#   bench/kiosk/run.sh [OUTPOST_BINARY]      (needs nginx-light, wrk, curl, python3)
# BENCH_SECONDS (30), BENCH_LIBRARY (1000) and BENCH_BASE (/tmp/outpost-bench) change it;
# BENCH_REUSE=1 keeps the repository the previous run published (same BENCH_LIBRARY), to
# measure a new binary without publishing the library again.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
o=${1:-$here/build/node/outpost}
work=${BENCH_BASE:-/tmp/outpost-bench}/kiosk
secs=${BENCH_SECONDS:-30}
library=${BENCH_LIBRARY:-1000}
for tool in nginx wrk curl python3; do
  command -v $tool >/dev/null || { echo "missing $tool: apt-get install nginx-light wrk curl python3"; exit 1; }
done
reuse=""
if [ "${BENCH_REUSE:-}" = 1 ] && [ -f "$work/root.pub" ] && [ "$(cat "$work/library" 2>/dev/null)" = "$library" ]; then
  reuse=1
  rm -rf "$work/store" "$work/store-http" "$work/static" "$work/nginx"; mkdir -p "$work/static"
else
  rm -rf "$work"; mkdir -p "$work/keys" "$work/gen" "$work/static"
fi
cleanup() {
  [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null || true
  [ -f "$work/nginx/nginx.pid" ] && kill "$(cat "$work/nginx/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT

if [ -n "$reuse" ]; then
  root=$(cat "$work/root.pub")
  publish_s="(reused)"
else
  root=$("$o" keygen --role root --out "$work/keys/root.key")
  echo "$root" > "$work/root.pub"
  for r in targets snapshot timestamp; do "$o" keygen --role $r --out "$work/keys/$r.key" >/dev/null; done
  "$o" repo init "$work/repo" --keys "$work/keys" >/dev/null
  un=$("$o" keygen --role publisher --out "$work/keys/un.key")
  itu=$("$o" keygen --role publisher --out "$work/keys/itu.key")
  "$o" repo delegate "$work/repo" --keys "$work/keys" --publisher-pubkey "$un" --prefix un/ga >/dev/null
  "$o" repo delegate "$work/repo" --keys "$work/keys" --publisher-pubkey "$itu" --prefix itu/ict >/dev/null
  "$o" publish "$work/repo" --key "$work/keys/un.key" --keys "$work/keys" "$here/samples/resolutions/A-RES-75-202" >/dev/null
  "$o" publish "$work/repo" --key "$work/keys/itu.key" --keys "$work/keys" "$here/samples/indicators/itu-ict-2019" >/dev/null

  # The library: resolutions of 30 paragraphs drawn from 75/202's, reordered and renumbered
  # (its vocabulary, so queries find something), with a word list for the queries.
  python3 - "$here/samples/resolutions/A-RES-75-202/A-RES-75-202.en.md" "$work/gen" "$library" <<'PY'
import os, random, re, sys
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
paras = [p.strip() for p in open(src, encoding='utf-8').read().split('\n\n') if len(p.strip()) > 80]
paras = [re.sub(r'^\d+\. ', '', p) for p in paras]
random.seed(11)
words = sorted({w.lower() for w in re.findall(r'[A-Za-z]{5,}', ' '.join(paras))})
open(os.path.join(out, 'words.txt'), 'w').write('\n'.join(words) + '\n')
for i in range(1, n + 1):
    d = os.path.join(out, f'g{i:04d}')
    os.makedirs(d)
    open(os.path.join(d, 'bundle.json'), 'w').write(
        '{"kind": "resolution", "name": "un/ga/GEN-%04d", "title": "Generated resolution %d on %s", "symbol": "GEN/%d"}'
        % (i, i, random.choice(words), i))
    body = ['*The General Assembly*,', ''] + [f'{k}. {p}\n' for k, p in enumerate(random.sample(paras, min(30, len(paras))), 1)]
    open(os.path.join(d, f'GEN-{i:04d}.en.md'), 'w').write('\n'.join(body))
PY
  t0=$SECONDS
  for d in "$work"/gen/g*; do
    "$o" publish "$work/repo" --key "$work/keys/un.key" --keys "$work/keys" "$d" >/dev/null
  done
  publish_s=$((SECONDS - t0))
  echo "$library" > "$work/library"
fi

# The daemon with the kiosk; ready when the kiosk has indexed the whole library.
port=18490; ngport=18491; repoport=18492
cat > "$work/outpost.toml" <<TOML
store = "$work/store"
[http]
listen = ["127.0.0.1:$port"]
[[subscription]]
url = "$work/repo"
root_pubkey = "$root"
TOML
# Memory of the daemon and its worker processes together (docs/daemon.md, "Worker
# processes"): the sum of their PSS, which counts a page they share (the binary, the
# libraries) once, not once per process as a sum of RSS would.
tree_rss() {
  local total=0 p r
  for p in "$serve_pid" $(pgrep -P "$serve_pid" || true); do
    r=$(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup 2>/dev/null || true)
    total=$((total + ${r:-0}))
  done
  echo $total
}
start_serve() {  # starts the daemon; returns when search finds the first generated resolution
  "$o" serve --config "${1:-$work/outpost.toml}" >/dev/null 2>>"$work/serve.log" &
  serve_pid=$!
  tree_peak=0
  # The kiosk indexes the newest first: GEN-0001 comes after every other generated one (the
  # two samples, older still, are left to the idle wait of rss_sample).
  for _ in $(seq 3000); do
    local now; now=$(tree_rss)
    [ "$now" -gt "$tree_peak" ] && tree_peak=$now
    curl -s "http://127.0.0.1:$port/search?q=generated&b=un/ga/GEN-0001" | grep -q '<mark>' && return 0
    kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
    sleep 0.2
  done
  echo "the kiosk did not index the library in 10 minutes"; exit 1
}
stop_serve() { kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=""; }
# RSS of the idle daemon: VmRSS (what top and ps show), and of it the process's own memory
# (RssAnon) and file pages (RssFile: shared libraries and the LMDB map), in KB, each the median
# of 5 samples a second apart.
rss_sample() {
  # Idle: under 10 % of a core over 3 s (indexing takes a whole core; it pauses 2 s between
  # batches, the refresh period).
  local prev=-100000 t hz
  hz=$(getconf CLK_TCK)
  # No worker running (they do the syncing and indexing) and the daemon itself quiet.
  for _ in $(seq 100); do
    t=$(awk '{print $14 + $15}' /proc/$serve_pid/stat)
    [ $((t - prev)) -le $((3 * hz / 10)) ] && [ -z "$(pgrep -P "$serve_pid")" ] && break
    prev=$t
    sleep 3
  done
  idle_s=$((SECONDS - t0))
  for _ in 1 2 3 4 5; do
    awk -v s="$idle_s" '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print r, a, f, s}' /proc/$serve_pid/status
    sleep 1
  done | sort -n | sed -n 3p
}
t0=$SECONDS
start_serve
first_peak=$tree_peak
rss_sample > "$work/rss_idle"
read -r rss_idle rss_anon rss_file idle_s < "$work/rss_idle"
# Restarted on the same store: the index is there, nothing to sync.
stop_serve
t0=$SECONDS
start_serve
read -r rss_restart rss_restart_anon rss_restart_file restart_s <<<"$(rss_sample)"

# The same pages, pre-rendered, for nginx.
base="http://127.0.0.1:$port"
declare -A urls=(
  [home]="/"
  [resolution]="/b/un/ga/A-RES-75-202"
  [indicator]="/b/itu/ict/digital-divide-2019"
  [search]="/search?q=digital+divide"
  [not-found]="/b/un/ga/NONE"
)
weights=""
for name in home resolution indicator search not-found; do
  u=${urls[$name]}
  curl -s -o "$work/static/$name.html" "$base$u"
  plain=$(stat -c %s "$work/static/$name.html")
  gz=$(curl -s -H 'Accept-Encoding: gzip' "$base$u" | wc -c)
  weights+="| $name | $plain | $gz |"$'\n'
done
text=$(stat -c %s "$here/samples/resolutions/A-RES-75-202/A-RES-75-202.en.md")
mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<NG
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  include /etc/nginx/mime.types;
  server { listen 127.0.0.1:$ngport; root $work/static; etag on; }
  server { listen 127.0.0.1:$repoport; root $work/repo; }
}
NG
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx"

run_wrk() {  # URL [ARGS] -> "requests/s p50 p99"
  wrk -t2 -c64 -d"${secs}s" --latency "$@" | awk '
    /Requests\/sec/ {rps=$2}
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
    END {print rps, p50, p99}'
}
read -r ng_rps ng_p50 ng_p99 <<<"$(run_wrk "http://127.0.0.1:$ngport/resolution.html")"
read -r k_rps k_p50 k_p99 <<<"$(run_wrk "$base/b/un/ga/A-RES-75-202")"
read -r kgz_rps kgz_p50 kgz_p99 <<<"$(run_wrk "$base/b/un/ga/A-RES-75-202" -H 'Accept-Encoding: gzip')"

# Search: one connection, a new query each request (two words of the library's vocabulary).
cat > "$work/search.lua" <<LUA
local words = {}
for line in io.lines("$work/gen/words.txt") do words[#words + 1] = line end
math.randomseed(7)
request = function()
  local q = words[math.random(#words)] .. "+" .. words[math.random(#words)]
  return wrk.format("GET", "/search?q=" .. q .. "&n=" .. math.random(0, 1000000000))
end
LUA
s_out=$(wrk -t1 -c1 -d"${secs}s" --latency -s "$work/search.lua" "$base")
s_rps=$(echo "$s_out" | awk '/Requests\/sec/ {print $2}')
s_p50=$(echo "$s_out" | awk '/^ +50%/ {print $2}')
s_p99=$(echo "$s_out" | awk '/^ +99%/ {print $2}')
rss_peak=$(awk '/VmHWM/ {print $2}' /proc/$serve_pid/status)
index_kb=$(du -sk "$work/store/kiosk-index" | cut -f1)

# As a kiosk that syncs from a mirror: the same library over HTTP from nginx, into a new store.
# libcurl's start-up (OpenSSL's, and libssh2's) is part of what stays resident.
stop_serve
sed -e "s|^store = .*|store = \"$work/store-http\"|" -e "s|^url = .*|url = \"http://127.0.0.1:$repoport\"|" \
  "$work/outpost.toml" > "$work/outpost-http.toml"
t0=$SECONDS
start_serve "$work/outpost-http.toml"
http_peak=$tree_peak
read -r rss_http rss_http_anon rss_http_file http_s <<<"$(rss_sample)"

cat <<MD
### Kiosk against nginx, $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -m)), wrk ${secs} s

Library: the samples and $library generated resolutions (published in $publish_s s; the daemon
synced and indexed them and was idle after $idle_s s, and after $restart_s s when restarted on
that store; index $index_kb KB).

| measure | nginx (pre-rendered) | outpost serve (kiosk) | target |
| --- | --- | --- | --- |
| resolution page, wrk -c64: requests/s | $ng_rps | $k_rps | ≥ 50 % of nginx |
| ... latency p50 / p99 | $ng_p50 / $ng_p99 | $k_p50 / $k_p99 | p99 ≤ 50 ms |
| ... gzip (Accept-Encoding: gzip): requests/s, p99 | | $kgz_rps, $kgz_p99 | |
| search, one connection, a new query each time: median / p99 | | $s_p50 / $s_p99 ($s_rps/s) | ≤ 20 ms / ≤ 100 ms |
| RSS of outpost serve, kiosk idle, just after indexing (KB) | | $rss_idle (anonymous $rss_anon, file $rss_file) | ≤ 20 MB |
| ... restarted on that store (KB) | | $rss_restart (anonymous $rss_restart_anon, file $rss_restart_file) | ≤ 20 MB |
| peak RSS under the loads above, restarted daemon (KB) | | $rss_peak | ≤ 64 MB |
| RSS, kiosk idle, just after syncing the library over HTTP from nginx and indexing it (KB) | | $rss_http (anonymous $rss_http_anon, file $rss_http_file; idle after $http_s s) | ≤ 20 MB |
| peak memory of the daemon and its workers together (sum of PSS, sampled every 0.2 s) while they synced and indexed the library, from a path / over HTTP (KB) | | $first_peak / $http_peak | |

Page weight (bytes; the resolution's Markdown text alone is $text bytes):

| page | plain | gzip |
| --- | --- | --- |
$weights
MD
