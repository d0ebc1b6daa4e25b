#!/usr/bin/env bash
# `npm ci` in DIR (its package.json and package-lock.json already copied there) for the test
# helpers that need npm packages (tests/interop/install_tufjs.sh,
# tests/browser/install_browser_deps.sh). The caller holds DIR's install lock.
#   npm_ci.sh DIR SKIP_MESSAGE [VAR=VALUE...]     extra environment for npm
# Exit 0 installed; 77 skipped (the registry out of reach: SKIP_MESSAGE and npm's error
# printed; never under CI=true, where it fails with 1).
set -euo pipefail
dir=${1:?usage: npm_ci.sh DIR SKIP_MESSAGE [VAR=VALUE...]}
skip=${2:?}
shift 2

# A registry that failed a moment ago is not asked again for 10 minutes: the tests that need
# the install each call it, and each attempt costs seconds of npm's retries.
failed="$dir/.install-failed"
if [ "${CI:-}" != true ] && [ -n "$(find "$failed" -mmin -10 2>/dev/null)" ]; then
  cat "$failed"
  exit 77
fi
rm -f "$failed"
# npm retries a failed fetch after 10 s and again after 60 s; a registry out of reach (or a
# TLS-intercepting proxy whose CA this machine lacks) then costs 70 s per attempt. Twice
# within 5 s is enough for a passing hiccup.
if (cd "$dir" && env "$@" npm ci --no-audit --no-fund --loglevel=error --fetch-retries=2 \
      --fetch-retry-mintimeout=1000 --fetch-retry-maxtimeout=4000) 2>&1 | tee "$dir/.npm-output"; then
  exit 0
fi
# CI must run these tests; a newcomer's machine that cannot reach the npm registry (no
# network, or a TLS-intercepting proxy whose CA it lacks) gets a loud skip instead.
[ "${CI:-}" != true ] || exit 1
{
  grep -m3 -E '^npm (ERR!|error) (code|request)' "$dir/.npm-output" || true
  echo "SKIP: $skip"
} | tee "$failed"
exit 77
