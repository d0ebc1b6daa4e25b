#!/usr/bin/env bash
# The kiosk's browser test (ctest "kiosk: browser ..."): publishes the samples plus test
# bundles in French and Arabic (made here, marked as test text, not official translations),
# starts `outpost serve` on a free loopback port, waits until the kiosk answers, and runs
# kiosk.mjs in Debian's headless chromium. Screenshots stay in OUT_DIR.
#   run_browser.sh OUTPOST_BINARY NPM_DIR OUT_DIR
# Exit 0 passed, 77 skipped (chromium or node missing, or the npm registry out of reach; never
# under CI=true, where it fails).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
outpost=${1:?usage: run_browser.sh OUTPOST NPM_DIR OUT_DIR}
npm_dir=${OUTPOST_BROWSER_NPM_DIR:-${2:?}}  # scripts/test.sh shares one install
out=${3:?}

chromium=${CHROMIUM:-/usr/bin/chromium}
missing=""
[ -x "$chromium" ] || missing="chromium ($chromium)"
command -v node >/dev/null 2>&1 || missing="$missing node"
if [ -n "$missing" ]; then
  if [ "${CI:-}" = true ]; then
    echo "FAIL: missing $missing; CI must run the kiosk's browser test (scripts/test.sh installs it: apt-get install chromium fonts-dejavu-core nodejs)"
    exit 1
  fi
  echo "SKIP: missing $missing; the kiosk's browser test needs them (apt-get install chromium fonts-dejavu-core nodejs)"
  exit 77
fi
bash "$here/install_browser_deps.sh" "$npm_dir" || exit $?  # 77: skipped, said why

work=$(mktemp -d)
serve_pid=""
cleanup() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# A publisher and a repository holding the samples and the test bundles.
mkdir -p "$work/keys"
root=$("$outpost" keygen --role root --out "$work/keys/root.key")
for role in targets snapshot timestamp; do "$outpost" keygen --role $role --out "$work/keys/$role.key" >/dev/null; done
"$outpost" repo init "$work/repo" --keys "$work/keys" >/dev/null
un=$("$outpost" keygen --role publisher --out "$work/keys/un.key")
itu=$("$outpost" keygen --role publisher --out "$work/keys/itu.key")
"$outpost" repo delegate "$work/repo" --keys "$work/keys" --publisher-pubkey "$un" --prefix un/ga >/dev/null
"$outpost" repo delegate "$work/repo" --keys "$work/keys" --publisher-pubkey "$itu" --prefix itu/ict >/dev/null
"$outpost" publish "$work/repo" --key "$work/keys/un.key" --keys "$work/keys" "$src/samples/resolutions/A-RES-75-202" >/dev/null
"$outpost" publish "$work/repo" --key "$work/keys/itu.key" --keys "$work/keys" "$src/samples/indicators/itu-ict-2019" >/dev/null

multi="$work/src/multi"
mkdir -p "$multi"
cat > "$multi/bundle.json" <<'JSON'
{"kind": "resolution", "name": "un/ga/TEST-75-202-MULTI", "title": "Test bundle in three languages",
 "symbol": "TEST/75/202", "languages": ["en", "fr", "ar"],
 "note": "Test text made by the test suite, not an official translation."}
JSON
{
  echo "Test text made by the test suite, not an official translation."
  echo
  echo "*The General Assembly*,"
  echo
  for n in 1 2 3; do echo "$n. *Recognizes* test paragraph $n of the English test text;¹"; echo; done
  echo "See [the official text](https://undocs.org/A/RES/75/202) (a test link: the printed page shows its address)."
  echo
  echo "¹ A test note."
} > "$multi/TEST-75-202-MULTI.en.md"
{
  echo "Texte d’essai produit par la suite de tests, pas une traduction officielle."
  echo
  echo "*L’Assemblée générale*,"
  echo
  for n in 1 2 3; do echo "$n. *Reconnaît* le paragraphe d’essai $n du texte français;¹"; echo; done
  echo "Voir [le texte officiel](https://undocs.org/fr/A/RES/75/202) (lien d’essai)."
  echo
  echo "¹ Une note d’essai."
} > "$multi/TEST-75-202-MULTI.fr.md"
{
  echo "نص اختباري أنشأته مجموعة الاختبارات، وليس ترجمة رسمية."
  echo
  echo "*إن الجمعية العامة*،"
  echo
  for n in 1 2 3; do echo "$n. *تدرك* فقرة الاختبار رقم $n من النص العربي؛¹"; echo; done
  echo "انظر [النص الرسمي](https://undocs.org/ar/A/RES/75/202) (رابط اختباري)."
  echo
  echo "¹ حاشية اختبارية."
} > "$multi/TEST-75-202-MULTI.ar.md"
"$outpost" publish "$work/repo" --key "$work/keys/un.key" --keys "$work/keys" "$multi" >/dev/null

# The daemon with the kiosk, on a port the kernel picks (its "ready" line names it).
cat > "$work/outpost.toml" <<EOF2
store = "$work/store"
[http]
listen = ["127.0.0.1:0"]
[kiosk]
site_name = "Community centre kiosk"
[[subscription]]
url = "$work/repo"
root_pubkey = "$root"
EOF2
"$outpost" serve --config "$work/outpost.toml" >/dev/null 2>"$work/serve.log" &
serve_pid=$!
port=""
for _ in $(seq 300); do
  port=$(sed -n 's/.*ready: http on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/serve.log" | head -1)
  [ -n "$port" ] && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "FAIL: outpost serve did not say it was ready"; cat "$work/serve.log"; exit 1; }
# Ready when the home page lists the three bundles (synced and seen by the kiosk).
for _ in $(seq 300); do
  home=$(curl -s "http://127.0.0.1:$port/?kind=resolution" || true)
  case "$home" in *TEST-75-202-MULTI*A-RES-75-202*|*A-RES-75-202*TEST-75-202-MULTI*) break ;; esac
  kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.1
done
# ... and search knows the resolution.
for _ in $(seq 300); do
  found=$(curl -s "http://127.0.0.1:$port/search?q=affordable" || true)
  case "$found" in *'<mark>'*) break ;; esac
  sleep 0.1
done
echo "kiosk ready on port $port after ${SECONDS} s"
CHROMIUM=$chromium node "$here/kiosk.mjs" "http://127.0.0.1:$port" "$out" "$npm_dir/node_modules" || { cat "$work/serve.log"; exit 1; }
