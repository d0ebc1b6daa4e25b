#!/usr/bin/env bash
# Installs what outpost needs to build (Debian 12 packages; only the missing ones) and
# builds it. Idempotent: a second run installs nothing and rebuilds only what changed
# (ccache, installed here, makes even a fresh build tree of unchanged sources quick).
#   scripts/setup.sh [BUILD_DIR] [extra cmake args...]
#   scripts/setup.sh --packages-only       installs, does not build (scripts/test.sh)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$here/build}
shift || true

packages=(build-essential cmake pkg-config ca-certificates ccache
          libcurl4-openssl-dev liblmdb-dev libzstd-dev libsodium-dev catch2
          libdivsufsort-dev libcli11-dev libmicrohttpd-dev libtomlplusplus-dev libsystemd-dev
          libavahi-client-dev
          libcmark-dev libxapian-dev zlib1g-dev  # these three: the kiosk (docs/kiosk.md)
          curl)  # the demo (scripts/demo.sh) asks the daemon for its pages as a phone would
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "$build" = --packages-only ] && exit 0

cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
