#!/usr/bin/env bash
# Installs what the tests need, builds outpost twice (release with -Werror, and with
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs the whole suite on both.
# Idempotent; safe to rerun. Run as root on Debian 12 (CI does).
#   scripts/test.sh            everything
#   OUTPOST_SKIP_SANITIZE=1 scripts/test.sh    release build only (quick local run)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=$(nproc)

# Test-only packages: Node.js and npm run tuf-js, the independent TUF client (a Node.js
# already on PATH is used as is); lmdb-utils writes a foreign LMDB file for a store test.
missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
dpkg-query -W -f='${Status}' lmdb-utils 2>/dev/null | grep -q "install ok installed" || missing+=(lmdb-utils)
# The network test rig (tests/support/nginx.h): a real nginx serving repositories on loopback,
# openssl for its self-signed TLS certificate, curl for the rig's own tests.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "== release build"
"$here/scripts/setup.sh" "$here/build" -DOUTPOST_WERROR=ON -DOUTPOST_TESTS=ON -DOUTPOST_BENCH=ON
echo "== release tests"
(cd "$here/build" && ctest --output-on-failure -j"$jobs" --timeout 900)

if [ "${OUTPOST_SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== sanitizer build (address, undefined)"
  "$here/scripts/setup.sh" "$here/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DOUTPOST_SANITIZE=address,undefined -DOUTPOST_WERROR=ON -DOUTPOST_TESTS=ON -DOUTPOST_BENCH=OFF
  echo "== sanitizer tests (the large-data tests run in the release build only)"
  (cd "$here/build-asan" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --output-on-failure -j"$jobs" --timeout 900 -E '\((large|slow)\)')
fi
