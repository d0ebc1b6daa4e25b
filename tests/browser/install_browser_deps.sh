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
# A registry that failed a moment ago is not asked again for 10 minutes: the tests that need
# the install each call this script, and each attempt costs seconds of npm's retries.
failed="$dir/.install-failed"
if [ "${CI:-}" != true ] && [ -n "$(find "$failed" -mmin -10 2>/dev/null)" ]; then
  cat "$failed"
  exit 77
fi
rm -f "$stamp" "$failed"
cp "$here/package.json" "$here/package-lock.json" "$dir/"
# npm retries a failed fetch after 10 s and again after 60 s; a registry out of reach (or a
# TLS-intercepting proxy whose CA this machine lacks) then costs 70 s per attempt. Twice
# within 5 s is enough for a passing hiccup.
npm_fast="--fetch-retries=2 --fetch-retry-mintimeout=1000 --fetch-retry-maxtimeout=4000"
echo "installing playwright-core and axe-core into $dir (node $(node --version))"
if ! (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error $npm_fast) 2>&1 | tee "$dir/.npm-output"; then
  # CI must run the browser test; a newcomer's machine that cannot reach the npm registry (no
  # network, or a TLS-intercepting proxy whose CA it lacks) gets a loud skip instead, as the
  # tuf-js tests do (tests/interop/install_tufjs.sh).
  if [ "${CI:-}" != true ]; then
    {
      grep -m3 -E '^npm (ERR!|error) (code|request)' "$dir/.npm-output" || true
      echo "SKIP: cannot install playwright-core and axe-core from the npm registry (see npm's" \
           "error above); the kiosk's browser test needs them once per build tree. CI runs it."
    } | tee "$failed"
    exit 77
  fi
  exit 1
fi
cp "$here/package-lock.json" "$stamp"
