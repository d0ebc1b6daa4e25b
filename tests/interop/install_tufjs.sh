#!/usr/bin/env bash
# Installs the pinned tuf-js (package.json and package-lock.json next to this script, with
# integrity hashes) into DIR/node_modules with 'npm ci'. Does nothing when DIR already holds
# an install made from the same lock file. Safe to run concurrently (flock).
#   install_tufjs.sh DIR
# Exit 0 installed, 77 skipped (no node or npm, or no registry; never under CI=true, where
# these fail instead), else failed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${1:?usage: install_tufjs.sh DIR}

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then
      echo "FAIL: '$tool' is not installed; CI must run the tuf-js interoperability tests" \
           "(scripts/test.sh installs it: apt-get install nodejs npm)"
      exit 1
    fi
    echo "SKIP: '$tool' is not installed; the tuf-js interoperability tests need Node.js and npm" \
         "(scripts/test.sh installs them: apt-get install nodejs npm)"
    exit 77
  fi
done

mkdir -p "$dir"
exec 9>"$dir/.install.lock"
flock 9

stamp="$dir/.installed-from-package-lock.json"
if [ -f "$dir/node_modules/tuf-js/package.json" ] && cmp -s "$here/package-lock.json" "$stamp"; then
  echo "tuf-js $(node -p "require('$dir/node_modules/tuf-js/package.json').version") already installed in $dir"
  exit 0
fi

rm -f "$stamp"
cp "$here/package.json" "$here/package-lock.json" "$dir/"
echo "installing tuf-js into $dir (node $(node --version), npm $(npm --version))"
bash "$here/../support/npm_ci.sh" "$dir" \
  "cannot install tuf-js from the npm registry (see npm's error above); the interoperability tests need it once per build tree. CI runs them."
cp "$here/package-lock.json" "$stamp"
echo "installed tuf-js $(node -p "require('$dir/node_modules/tuf-js/package.json').version")"
