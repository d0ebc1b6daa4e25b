#!/usr/bin/env bash
# Installs the pinned playwright-core and axe-core (package.json and package-lock.json next to
# this script, with integrity hashes) into DIR/node_modules with 'npm ci'; does nothing when DIR
# already holds an install from the same lock file. Never downloads a browser: the test drives
# Debian's chromium. Safe to run concurrently (flock). scripts/test.sh runs it before the tests.
#   install_browser_deps.sh DIR
# Exit 0 installed, 77 skipped (no registry; never under CI=true, where it fails).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${1:?usage: install_browser_deps.sh DIR}
mkdir -p "$dir"
exec 9>"$dir/.install.lock"
flock 9
stamp="$dir/.installed-from-package-lock.json"
if [ -f "$dir/node_modules/playwright-core/package.json" ] && cmp -s "$here/package-lock.json" "$stamp"; then
  exit 0
fi
rm -f "$stamp"
cp "$here/package.json" "$here/package-lock.json" "$dir/"
echo "installing playwright-core and axe-core into $dir (node $(node --version))"
bash "$here/../support/npm_ci.sh" "$dir" \
  "cannot install playwright-core and axe-core from the npm registry (see npm's error above); the kiosk's browser test needs them once per build tree. CI runs it." PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
cp "$here/package-lock.json" "$stamp"
