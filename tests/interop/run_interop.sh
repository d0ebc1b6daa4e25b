#!/usr/bin/env bash
# Interoperability of outpost's TUF repositories with tuf-js, an independent TUF client
# (DESIGN.md, "Trust"). Builds a repository with the real outpost binary, then:
#
#   accept        tuf-js refreshes it (walking a root rotation) and downloads both samples'
#                 manifests as targets; the bytes equal what outpost published, and an
#                 outpost node sees the same versions.
#   differential  tampered copies of that repository, one per case; outpost (a fresh
#                 store: subscribe + sync) and tuf-js (the same initial root) must agree:
#                 both accept or both refuse. Each case also has the expected outcome, and
#                 a client that accepts must end up with what the good repository holds.
#
#   run_interop.sh OUTPOST_BINARY TUFJS_DIR accept|differential
#
# TUFJS_DIR: where install_tufjs.sh put tuf-js (installed here if missing). Writes only under
# a mktemp directory, removed at the end (kept when OUTPOST_INTEROP_KEEP=1).
# Exit 0 pass, 1 fail, 77 skipped (no Node.js on this machine).
set -euo pipefail
trap 'echo "FAIL: run_interop.sh line $LINENO: $BASH_COMMAND exited with status $?" >&2' ERR
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
if [ $# -ne 3 ]; then
  echo "usage: run_interop.sh OUTPOST_BINARY TUFJS_DIR accept|differential" >&2
  exit 2
fi
outpost_bin=$1
tufjs=$2
mode=$3
case $mode in accept | differential) ;; *) echo "unknown mode '$mode'" >&2; exit 2 ;; esac
[ -x "$outpost_bin" ] || { echo "FAIL: outpost binary '$outpost_bin' not found"; exit 1; }

rc=0
bash "$here/install_tufjs.sh" "$tufjs" >/dev/null || rc=$?
if [ $rc -eq 77 ]; then
  bash "$here/install_tufjs.sh" "$tufjs"  # prints why
  exit 77
elif [ $rc -ne 0 ]; then
  echo "FAIL: could not install tuf-js into $tufjs (exit $rc)"
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/outpost-interop.XXXXXX")
if [ "${OUTPOST_INTEROP_KEEP:-0}" = 1 ]; then
  echo "keeping $work"
else
  trap 'rm -rf "$work"' EXIT
fi
started=$SECONDS

fail() {
  echo "FAIL: $*"
  exit 1
}

# Runs outpost for setting up the repository: quiet unless it fails.
op() {
  if ! "$outpost_bin" "$@" >"$work/op.out" 2>&1; then
    cat "$work/op.out"
    fail "outpost $*"
  fi
}
# Runs tamper.mjs; while the cases are declared ($tamper_queue set), queues the command
# instead: all cases' commands then run, in order, in one Node process.
tamper_queue=
tamper() {
  if [ -n "$tamper_queue" ]; then
    printf '%s\0' "$@" >>"$tamper_queue"
    printf '\0' >>"$tamper_queue"
  else
    node "$here/tamper.mjs" "$tufjs" "$@"
  fi
}

RES=un/ga/A-RES-75-202
IND=itu/ict/digital-divide-2019
RES_T=$RES/manifest.json
IND_T=$IND/manifest.json

# ---- the repository ----------------------------------------------------------------------
# Root, targets, snapshot and timestamp keys; un/ga and itu/ict delegated to publisher keys;
# both samples published (a copy is kept as repo-v1); then the root key rotated (2.root.json,
# signed by the old and the new root key) and a second version of the resolution published.
keys=$work/keys
repo=$work/repo
mkdir -p "$keys" "$work/src"
keygen() {
  "$outpost_bin" keygen --role "$1" --out "$2" 2>"$work/op.out" | head -n 1 ||
    { cat "$work/op.out"; fail "outpost keygen"; }
}
root_hex=$(keygen root "$keys/root.key")
keygen root "$keys/root2.key" >/dev/null
for role in targets snapshot timestamp; do keygen "$role" "$keys/$role.key" >/dev/null; done
# A second timestamp key, for the trust-attack cases that rotate or revoke the first.
keygen timestamp "$keys/timestamp2.key" >/dev/null
un_hex=$(keygen publisher "$keys/un.key")
itu_hex=$(keygen publisher "$keys/itu.key")
if [ ${#root_hex} -ne 64 ] || [ ${#un_hex} -ne 64 ] || [ ${#itu_hex} -ne 64 ]; then
  fail "keygen printed no public key"
fi

op repo init "$repo" --keys "$keys"
op repo delegate "$repo" --keys "$keys" --publisher-pubkey "$un_hex" --prefix un/ga
op repo delegate "$repo" --keys "$keys" --publisher-pubkey "$itu_hex" --prefix itu/ict
cp -r "$src/samples/resolutions/A-RES-75-202" "$work/src/resolution"
cp -r "$src/samples/indicators/itu-ict-2019" "$work/src/indicator"
op publish "$repo" --key "$keys/un.key" --keys "$keys" "$work/src/resolution"
op publish "$repo" --key "$keys/itu.key" --keys "$keys" "$work/src/indicator"
cp -a "$repo" "$work/repo-v1"
op repo rotate "$repo" --old-root-key "$keys/root.key" --root-key "$keys/root2.key" --keys "$keys"
printf '\nA second version, to give the resolution a history.\n' >>"$work/src/resolution/A-RES-75-202.en.md"
op publish "$repo" --key "$keys/un.key" --keys "$keys" "$work/src/resolution"
[ -f "$repo/metadata/2.root.json" ] || fail "the root rotation did not write 2.root.json"

# Runs tuf-js against REPO with the trusted root ROOT, keeping its state in SCRATCH; prints
# its JSON line.
tufjs_client() {
  local repo_dir=$1 root=$2 scratch=$3
  node "$here/tuf_client.mjs" --modules "$tufjs" --repo "$repo_dir" --root "$root" \
    --scratch "$scratch" --target "$RES_T" --target "$IND_T"
}

# ---- accept ------------------------------------------------------------------------------
if [ "$mode" = accept ]; then
  out=$(tufjs_client "$repo" "$repo/metadata/1.root.json" "$work/tuf" 2>"$work/tuf.err") ||
    { cat "$work/tuf.err"; fail "tuf-js refused outpost's repository: $out"; }
  echo "tuf-js: $out"
  echo "$out" >"$work/tuf.json"
  # outpost's own node, for the versions it holds.
  store=$work/store
  "$outpost_bin" subscribe "$repo" --root-pubkey "$root_hex" --store "$store" >/dev/null ||
    fail "outpost subscribe"
  "$outpost_bin" sync --store "$store" >/dev/null || fail "outpost sync"
  "$outpost_bin" ls --json --store "$store" >"$work/ls.json" || fail "outpost ls"

  # For each target: the bytes tuf-js downloaded are the file outpost published under that
  # sha256, it is the newest version (resolution 2, indicator 1) by the target's custom
  # field, by the manifest itself and by what outpost's node synced.
  node - "$work/tuf.json" "$work/ls.json" "$repo" "$RES=2" "$IND=1" <<'CHECK' || fail "see above"
const fs = require('fs');
const [tufFile, lsFile, repo, ...want] = process.argv.slice(2);
const tuf = JSON.parse(fs.readFileSync(tufFile, 'utf8'));
const ls = JSON.parse(fs.readFileSync(lsFile, 'utf8'));
let bad = 0;
const check = (ok, msg) => { if (!ok) { console.log(`FAIL: ${msg}`); bad++; } };
check(tuf.ok === true, 'tuf-js did not report ok');
check(tuf.root_version === 2, `tuf-js trusts root version ${tuf.root_version}, expected 2 (the rotation)`);
check(tuf.targets.length === want.length, 'tuf-js did not download every target');
for (const [i, w] of want.entries()) {
  const [bundle, version] = [w.slice(0, w.lastIndexOf('=')), Number(w.slice(w.lastIndexOf('=') + 1))];
  const t = tuf.targets[i] || {};
  check(t.path === `${bundle}/manifest.json`, `target ${i} is ${t.path}`);
  const published = `${repo}/targets/${bundle}/${t.sha256}.manifest.json`;
  if (!fs.existsSync(published)) {
    check(false, `${bundle}: tuf-js got sha256 ${t.sha256}, a file outpost did not publish`);
    continue;
  }
  const got = fs.readFileSync(t.file);
  check(got.equals(fs.readFileSync(published)), `${bundle}: tuf-js's bytes differ from ${published}`);
  const manifest = JSON.parse(got.toString('utf8'));
  check(t.version === version, `${bundle}: the target's custom version is ${t.version}, expected ${version}`);
  check(manifest.version === version && manifest.bundle === bundle,
        `${bundle}: the manifest is ${manifest.bundle} version ${manifest.version}`);
  const held = ls.find((b) => b.name === bundle);
  check(held && held.version === version,
        `${bundle}: outpost's node holds version ${held && held.version}, tuf-js downloaded ${version}`);
  console.log(`ok: ${t.path} version ${t.version}, ${got.length} bytes, sha256 ${t.sha256}: ` +
              `identical to outpost's file and to the version outpost's node synced`);
}
process.exit(bad ? 1 : 0);
CHECK
  echo "PASS: tuf-js verified and downloaded outpost's targets ($((SECONDS - started)) s)"
  exit 0
fi

# ---- differential ------------------------------------------------------------------------
root_v="" snap_v="" targets_v="" role_v="" ts_expires="" before_expiry="" after_expiry=""
target_file=""
facts=$(tamper facts "$repo" un.ga "$RES_T") || fail "reading the repository's metadata"
eval "$facts"
[ "$root_v" = 2 ] || fail "the repository serves root version $root_v, expected 2"
echo "serving root $root_v, snapshot $snap_v, targets $targets_v, un.ga $role_v;" \
     "timestamp.json expires $ts_expires"
unga_v=$role_v
res_manifest=$target_file
[ "$unga_v" -ge 2 ] || fail "un.ga should be at version 2 or more after two publications"
[ -f "$repo/$res_manifest" ] || fail "un.ga lists $RES_T as $res_manifest, which does not exist"

# Tamperings: each gets the case's repository directory. Exit status 3: the case cannot be
# built (reported as n/a).
t_none() { :; }
t_flip() { tamper flip-signed "$1/metadata/$2" >/dev/null; }
t_root1() { t_flip "$1" 1.root.json; }
t_root2() { t_flip "$1" 2.root.json; }
t_root_copy() { t_flip "$1" root.json; }
t_root2_new_only() { tamper sign "$1/metadata/2.root.json" "$keys/root2.key" >/dev/null; }
t_root2_old_only() { tamper sign "$1/metadata/2.root.json" "$keys/root.key" >/dev/null; }
t_timestamp() { t_flip "$1" timestamp.json; }
t_snapshot() { t_flip "$1" "$snap_v.snapshot.json"; }
t_targets() { t_flip "$1" "$targets_v.targets.json"; }
t_unga() { t_flip "$1" "$unga_v.un.ga.json"; }
# outpost reads the manifest's compressed copy (.zst) first; both clients must see the same
# damaged bytes, so the copy goes.
t_manifest() { tamper flip-byte "$1/$res_manifest" >/dev/null; rm -f "$1/$res_manifest.zst"; }
t_rollback() { tamper copy "$work/repo-v1/metadata/timestamp.json" "$1/metadata/timestamp.json"; }
t_mix() { tamper copy "$1/metadata/$((unga_v - 1)).un.ga.json" "$1/metadata/$unga_v.un.ga.json"; }
t_unknown_key() { tamper sign "$1/metadata/timestamp.json" new >/dev/null; }
t_unknown_key_extra() { tamper sign "$1/metadata/timestamp.json" new append >/dev/null; }
t_no_sigs_ts() { tamper strip-sigs "$1/metadata/timestamp.json" >/dev/null; }
t_no_sigs_unga() { tamper strip-sigs "$1/metadata/$unga_v.un.ga.json" >/dev/null; }
t_unga_by_itu() { tamper sign "$1/metadata/$unga_v.un.ga.json" "$keys/itu.key" >/dev/null; }
t_unga_by_un() { tamper sign "$1/metadata/$unga_v.un.ga.json" "$keys/un.key" >/dev/null; }
t_endless() { tamper pad "$1/metadata/timestamp.json" $((1024 * 1024)) >/dev/null; }
t_padded() { tamper pad "$1/metadata/timestamp.json" 8192 >/dev/null; }
t_pretty() {
  local f
  for f in timestamp.json 2.root.json "$targets_v.targets.json" "$unga_v.un.ga.json"; do
    tamper pretty "$1/metadata/$f" >/dev/null
  done
}
# The un publisher claims the itu bundle's name, outside its delegated paths, pointing at a
# file it placed there: a client must take that name from itu.ict only.
t_unga_claims_itu() {
  local rogue
  rogue=$1/targets/$IND/$(sha256sum "$1/$res_manifest" | cut -c1-64).manifest.json
  tamper copy "$1/$res_manifest" "$rogue"
  tamper add-target "$1/metadata/$unga_v.un.ga.json" "$IND_T" "$rogue" >/dev/null
  tamper sign "$1/metadata/$unga_v.un.ga.json" "$keys/un.key" >/dev/null
}
# un.ga, validly re-signed by its publisher, expired yesterday.
t_unga_expired() {
  tamper edit "$1/metadata/$unga_v.un.ga.json" "d.signed.expires = '$yesterday'" >/dev/null
  tamper sign "$1/metadata/$unga_v.un.ga.json" "$keys/un.key" >/dev/null
}
# Compromised online keys: a new snapshot, validly signed and named by a validly signed
# timestamp, lists un.ga at an older version than the client already trusts (5.5.5).
t_snapshot_role_rollback() {
  local next=$((snap_v + 1))
  tamper copy "$1/metadata/$snap_v.snapshot.json" "$1/metadata/$next.snapshot.json"
  tamper edit "$1/metadata/$next.snapshot.json" \
    "d.signed.version = $next; d.signed.meta['un.ga.json'].version = $((unga_v - 1))" >/dev/null
  tamper sign "$1/metadata/$next.snapshot.json" "$keys/snapshot.key" >/dev/null
  tamper edit "$1/metadata/timestamp.json" "d.signed.version += 1;
    d.signed.meta['snapshot.json'] = fileMeta('$1/metadata/$next.snapshot.json', $next)" >/dev/null
  tamper sign "$1/metadata/timestamp.json" "$keys/timestamp.key" >/dev/null
}
# Metadata a foreign TUF tool could write. spec_version "1.0" (go-tuf writes it; tuf-js and
# python-tuf accept MAJOR.MINOR).
t_spec_version_short() {
  tamper edit "$1/metadata/timestamp.json" "d.signed.spec_version = '1.0'" >/dev/null
  tamper sign "$1/metadata/timestamp.json" "$keys/timestamp.key" >/dev/null
}
# A 3.root.json whose timestamp key object carries an extra field (securesystemslib's legacy
# "keyid_hash_algorithms"), its key id computed over the whole object as the spec says.
t_key_extra_field() {
  local m=$1/metadata
  tamper copy "$m/2.root.json" "$m/3.root.json"
  tamper edit "$m/3.root.json" "const s = d.signed; s.version = 3;
    const old = s.roles.timestamp.keyids[0]; const k = s.keys[old]; delete s.keys[old];
    k.keyid_hash_algorithms = ['sha256', 'sha512']; const id = keyidOf(k);
    s.keys[id] = k; s.roles.timestamp.keyids = [id];" >/dev/null
  tamper sign "$m/3.root.json" "$keys/root2.key" >/dev/null
  tamper copy "$m/3.root.json" "$m/root.json"
  tamper sign "$m/timestamp.json" "$keys/timestamp.key" >/dev/null
  tamper edit "$m/timestamp.json" \
    "d.signatures[0].keyid = readJson('$m/3.root.json').signed.roles.timestamp.keyids[0]" >/dev/null
}
# Fields the spec does not define (it says they count in signatures), non-ASCII text
# included: in timestamp.json and in 3.targets.json and one of its delegations, re-signed.
t_unknown_fields() {
  tamper edit "$1/metadata/timestamp.json" "d.signed['x-extra'] = {a: [1, 'caf\u00e9']}" >/dev/null
  tamper sign "$1/metadata/timestamp.json" "$keys/timestamp.key" >/dev/null
  tamper edit "$1/metadata/$targets_v.targets.json" \
    "d.signed['x-top'] = true; d.signed.delegations.roles[0]['x-note'] = 'r\u00e9sum\u00e9'" >/dev/null
  tamper sign "$1/metadata/$targets_v.targets.json" "$keys/targets.key" >/dev/null
}
# ---- trust attacks (docs/SECURITY.md, "Trust attacks"), named as in the TUF specification --
# N.root.json: a copy of 2.root.json as version N, with JS run on its signed part `s`, signed
# by the current root key (root2.key).
new_root() {  # REPO N JS
  local m=$1/metadata
  tamper copy "$m/2.root.json" "$m/$2.root.json"
  tamper edit "$m/$2.root.json" "const s = d.signed; s.version = $2; $3" >/dev/null
  tamper sign "$m/$2.root.json" "$keys/root2.key" >/dev/null
}
# JS for new_root: the timestamp role's keys become the second timestamp key only (the first
# one is revoked), or both keys with a threshold of 2.
ts2_key="const k2 = {keytype: 'ed25519', scheme: 'ed25519',
  keyval: {public: readJson('$keys/timestamp2.key').public}}; const id2 = keyidOf(k2);"
rotate_ts="$ts2_key s.keys[id2] = k2; s.roles.timestamp.keyids = [id2];"
both_ts="$ts2_key s.keys[id2] = k2; s.roles.timestamp.keyids.push(id2);
  s.roles.timestamp.keyids.sort(); s.roles.timestamp.threshold = 2;"
# timestamp.json as the good repository serves it, one version on, signed by KEY (and more).
next_timestamp() {  # REPO KEY [KEY2]
  tamper copy "$repo/metadata/timestamp.json" "$1/metadata/timestamp.json"
  tamper edit "$1/metadata/timestamp.json" "d.signed.version += 1" >/dev/null
  tamper sign "$1/metadata/timestamp.json" "$2" >/dev/null
  [ -z "${3:-}" ] || tamper sign "$1/metadata/timestamp.json" "$3" append >/dev/null
}
# Missed root rotations: 3.root.json and 4.root.json appeared while the client was away; 4
# replaced the timestamp key. An unbroken chain is walked; with 3 missing the client stays
# at 2 and cannot verify the timestamp (t_root_gap writes 4.root.json but no 3).
t_root_chain() {
  new_root "$1" 3 ""
  new_root "$1" 4 "$rotate_ts"
  next_timestamp "$1" "$keys/timestamp2.key"
}
t_root_gap() {
  new_root "$1" 4 "$rotate_ts"
  next_timestamp "$1" "$keys/timestamp2.key"
}
# Rollback of root: 3.root.json is version 2's file (its signed version says 2), served with
# a new timestamp as a real rotation is (outpost probes the root chain only when the
# timestamp changed: an unchanged timestamp means nothing new is trusted).
t_root_rollback() {
  tamper copy "$1/metadata/2.root.json" "$1/metadata/3.root.json"
  next_timestamp "$1" "$keys/timestamp.key"
}
# A revoked key: root 3 replaced the timestamp key, the timestamp is still signed by the old.
t_revoked_key() {
  new_root "$1" 3 "$rotate_ts"
  next_timestamp "$1" "$keys/timestamp.key"
}
# Threshold 2 for timestamp (both keys listed): signed by both (control), or twice by one key
# under the same key id (the duplicate must count once).
t_threshold2_two_keys() {
  new_root "$1" 3 "$both_ts"
  next_timestamp "$1" "$keys/timestamp.key" "$keys/timestamp2.key"
}
t_duplicate_keyids() {
  new_root "$1" 3 "$both_ts"
  next_timestamp "$1" "$keys/timestamp.key"
  tamper edit "$1/metadata/timestamp.json" "d.signatures.push({...d.signatures[0]})" >/dev/null
}
# Fast-forward attack and recovery (5.3.11): the clients accepted a timestamp the attacker
# fast-forwarded to version 1000 with the compromised timestamp key (prior_tamper); the
# repository then rotates the timestamp key (root 3) and serves its next normal version.
t_fast_forward() {
  tamper edit "$1/metadata/timestamp.json" "d.signed.version = 1000" >/dev/null
  tamper sign "$1/metadata/timestamp.json" "$keys/timestamp.key" >/dev/null
}
t_ff_recovered() {
  new_root "$1" 3 "$rotate_ts"
  next_timestamp "$1" "$keys/timestamp2.key"
}
t_ff_not_rotated() { next_timestamp "$1" "$keys/timestamp.key"; }
# Rollback of snapshot: a fresh timestamp (validly signed) names the previous snapshot.
t_snapshot_rollback() {
  tamper edit "$1/metadata/timestamp.json" "d.signed.version += 1;
    d.signed.meta['snapshot.json'] = fileMeta('$1/metadata/$((snap_v - 1)).snapshot.json', $((snap_v - 1)))" >/dev/null
  tamper sign "$1/metadata/timestamp.json" "$keys/timestamp.key" >/dev/null
}
# Rollback of targets: a new snapshot (validly signed, named by a valid timestamp) lists
# targets.json one version back.
t_targets_rollback() {
  local next=$((snap_v + 1))
  tamper copy "$1/metadata/$snap_v.snapshot.json" "$1/metadata/$next.snapshot.json"
  tamper edit "$1/metadata/$next.snapshot.json" \
    "d.signed.version = $next; d.signed.meta['targets.json'].version = $((targets_v - 1))" >/dev/null
  tamper sign "$1/metadata/$next.snapshot.json" "$keys/snapshot.key" >/dev/null
  tamper edit "$1/metadata/timestamp.json" "d.signed.version += 1;
    d.signed.meta['snapshot.json'] = fileMeta('$1/metadata/$next.snapshot.json', $next)" >/dev/null
  tamper sign "$1/metadata/timestamp.json" "$keys/timestamp.key" >/dev/null
}
# Freeze with the clock turned back: a timestamp one version on, validly signed, that expired
# yesterday, shown to a client whose clock says 1970.
t_expired_yesterday() {
  tamper edit "$1/metadata/timestamp.json" "d.signed.version += 1; d.signed.expires = '$yesterday'" >/dev/null
  tamper sign "$1/metadata/timestamp.json" "$keys/timestamp.key" >/dev/null
}

# A bundle name with a segment starting with '.', which docs/format-repository.md allows.
# Outcome of one client: accept, refuse, or ERROR (a crash, a sanitizer report, bad usage:
# never counted as a refusal).
outpost_outcome() {  # LOG ENV... COMMAND...
  local log=$1 rc=0
  shift
  env "$@" >>"$log.out" 2>>"$log.err" || rc=$?
  echo "$rc" >"$log.rc"
  if grep -q -E 'Sanitizer|runtime error:' "$log.err"; then
    echo ERROR
  elif [ $rc -eq 0 ]; then
    echo accept
  elif [ $rc -le 6 ]; then
    echo refuse
  else
    echo ERROR
  fi
}

# What each client holds after accepting the good repository: a case either client accepts
# must leave it holding exactly that (outpost: its bundle list without sync times; tuf-js:
# the downloaded targets' hashes).
"$outpost_bin" subscribe "$repo" --root-pubkey "$root_hex" --store "$work/baseline-store" >/dev/null ||
  fail "outpost subscribe (good repository)"
"$outpost_bin" sync --store "$work/baseline-store" >/dev/null || fail "outpost sync (good repository)"
"$outpost_bin" ls --json --store "$work/baseline-store" | grep -v '"confirmed"' >"$work/baseline.ls"
grep -q "\"name\": \"$RES\"" "$work/baseline.ls" || fail "outpost ls does not list $RES"
node "$here/tuf_client.mjs" --modules "$tufjs" --repo "$repo" --root "$repo/metadata/1.root.json" \
  --scratch "$work/baseline-tuf" --target "$RES_T" --target "$IND_T" >"$work/baseline.tuf" ||
  fail "tuf-js refused the good repository: $(cat "$work/baseline.tuf")"
baseline_shas=$(grep -o '"sha256":"[0-9a-f]*"' "$work/baseline.tuf" | cut -d'"' -f4 | tr '\n' ' ')
yesterday=$(date -u -d '1 day ago' +%Y-%m-%dT%H:%M:%SZ)

n=0
# run_case NAME EXPECTED TAMPER [OPTION...] declares a case. Each is built (repository copy,
# tampering queued), then all tamperings run in one Node process, outpost runs on each case
# (in parallel), tuf-js on all of them in one process (tuf_client.mjs --batch), and the
# outcomes are compared. Options:
#   prior       both clients first trust the good repository's current metadata, then see
#               the tampered one (outpost: subscribe + sync the good copy, then sync again
#               with the same store; tuf-js: starts from the metadata directory its run on
#               the good repository left)
#   prior_tamper=FN  as prior, but the state both clients first accept is the good
#               repository changed by FN (tuf-js then runs on it first, from 1.root.json)
#   now=TIME    both clients run with a fake clock
#   target=PATH one more target for tuf-js (outpost syncs every bundle anyway); the case's
#               accepted state is then not compared with the good repository's
#   known       a known difference between the clients, shown as KNOWN but not failing the
#               test; see the comment at the case
run_case() {
  n=$((n + 1))
  local dir name=$1 expected=$2 tamper_fn=$3 prior="" fake="" extra="" known="" opt before=""
  dir=$work/case$(printf '%03d' $n)
  shift 3
  for opt in "$@"; do
    case $opt in
      prior) prior=1 ;;
      prior_tamper=*) prior=1 before=${opt#prior_tamper=} ;;
      now=*) fake=${opt#now=} ;;
      target=*) extra=${opt#target=} ;;
      known) known=1 ;;
      *) fail "run_case $name: unknown option $opt" ;;
    esac
  done
  local crepo=$dir/repo store=$dir/store o=pending o_why="" status=ok rc=0
  mkdir -p "$dir"
  cp -a "$repo" "$crepo"
  if [ -n "$before" ]; then
    # The state both clients first accept is itself tampered: built now, not queued.
    local queue=$tamper_queue
    tamper_queue=
    "$before" "$crepo" || status="building the prior state failed ($before)"
    tamper_queue=$queue
  fi
  if [ -n "$prior" ] && [ "$status" = ok ]; then
    o=$(outpost_outcome "$dir/prior" "$outpost_bin" subscribe "$crepo" --root-pubkey "$root_hex" \
          --store "$store")
    [ "$o" = accept ] && o=$(outpost_outcome "$dir/prior" "$outpost_bin" sync --store "$store")
    [ "$o" = accept ] ||
      status="outpost did not accept the good repository first: $(tr '\n' ' ' <"$dir/prior.err")"
    mkdir -p "$dir/tuf"
    if [ -n "$before" ]; then
      node "$here/tuf_client.mjs" --modules "$tufjs" --repo "$crepo" \
        --root "$crepo/metadata/1.root.json" --scratch "$dir/tuf" --target "$RES_T" \
        --target "$IND_T" >"$dir/prior.tuf" 2>&1 ||
        status="tuf-js did not accept the prior state: $(cat "$dir/prior.tuf")"
    else
      cp -a "$work/baseline-tuf/metadata" "$dir/tuf/metadata"
    fi
  fi
  if [ "$status" = ok ]; then
    "$tamper_fn" "$crepo" || rc=$?
    [ $rc -eq 0 ] || status="building the case failed ($tamper_fn exited with $rc)"
    [ $rc -ne 3 ] || status=n/a
  fi
  declare -p name expected prior fake extra known o o_why status >"$dir/case.sh"
}

# Runs outpost on one built case (after the tampering), records its outcome in case.sh and
# writes the case's tuf-js job.
outpost_case() {
  local dir=$1 name expected prior fake extra known o o_why status
  # shellcheck disable=SC1091  # written by run_case
  . "$dir/case.sh"
  [ "$status" = ok ] || return 0
  local crepo=$dir/repo store=$dir/store env_o=()
  # No variable changes the time an outpost node believes: the real binary runs under
  # libfaketime (Debian's faketime), as a machine with a wrong clock would run it.
  # (ASan wants its runtime first among the loaded libraries; libfaketime is preloaded. Its
  # allocator reads the clock under a lock when it considers returning memory to the system,
  # and libfaketime's clock then allocates: a deadlock, unless it never returns memory.)
  [ -z "$fake" ] || env_o=(env TZ=UTC "ASAN_OPTIONS=${ASAN_OPTIONS:-}:verify_asan_link_order=0:allocator_release_to_os_interval_ms=-1"
    faketime -f "@$(date -u -d "$fake" '+%Y-%m-%d %H:%M:%S')")
  if [ -n "$prior" ]; then
    o=$(outpost_outcome "$dir/o" "${env_o[@]}" "$outpost_bin" sync --store "$store")
  else
    o=$(outpost_outcome "$dir/o" "${env_o[@]}" "$outpost_bin" subscribe "$crepo" \
          --root-pubkey "$root_hex" --store "$store")
    [ "$o" = accept ] && o=$(outpost_outcome "$dir/o" "${env_o[@]}" "$outpost_bin" sync --store "$store")
  fi
  o_why=$(grep -m1 -E 'error|Sanitizer|runtime error' "$dir/o.err" 2>/dev/null || true)
  o_why=${o_why#outpost: error: }
  o_why=${o_why//$crepo/REPO}
  if [ "$o" = ERROR ]; then
    o_why="exit status $(cat "$dir/o.rc"): ${o_why:-} (stderr: $(tr '\n' ' ' <"$dir/o.err" | cut -c1-600))"
  elif [ -z "$extra" ] && [ "$o" = accept ] &&
     ! "$outpost_bin" ls --json --store "$store" 2>/dev/null | grep -v '"confirmed"' |
       cmp -s - "$work/baseline.ls"; then
    o=WRONG
    o_why="accepted, but holds other bundles or versions than from the good repository"
  fi
  declare -p name expected prior fake extra known o o_why status >"$dir/case.sh"

  local targets="\"$RES_T\",\"$IND_T\"" now_json=""
  [ -z "$extra" ] || targets="$targets,\"$extra\""
  [ -z "$fake" ] || now_json=",\"now\":\"$fake\""
  printf '{"id":"%s","repo":"%s","root":"%s","scratch":"%s","targets":[%s]%s}\n' \
    "${dir##*/}" "$crepo" "$crepo/metadata/1.root.json" "$dir/tuf" "$targets" "$now_json" \
    >"$dir/tuf-job.json"
}

row() { printf '%-58s %-8s %-8s %-8s %s\n' "$@"; }

# Compares the clients' outcomes for one case and prints its rows (bash only: forks are
# slow on a busy CI machine). $tuf_result[ID] holds tuf-js's output line.
verdict_rows() {
  local dir=$1 id=${1##*/} name expected prior fake extra known o o_why status t t_why line
  # shellcheck disable=SC1091  # written by run_case
  . "$dir/case.sh"
  if [ "$status" = n/a ]; then
    row "$name" "$expected" n/a n/a agree
    echo "      outpost no longer produces this case (it refused to build it): nothing to compare"
    return
  elif [ "$status" != ok ]; then
    row "$name" "$expected" - - ERROR
    echo "      $status"
    return
  fi
  line=${tuf_result[$id]:-}
  t=ERROR
  t_why="no result from tuf_client.mjs --batch"
  if [[ $line == *'"ok":true'* ]]; then
    t=accept
    t_why=""
    if [ -z "$extra" ]; then
      local shas="" rest=$line
      while [[ $rest =~ \"sha256\":\"([0-9a-f]*)\"(.*) ]]; do
        shas+="${BASH_REMATCH[1]} "
        rest=${BASH_REMATCH[2]}
      done
      if [ "$shas" != "$baseline_shas" ]; then
        t=WRONG
        t_why="accepted, but downloaded other files than from the good repository"
      fi
    fi
  elif [[ $line =~ \"ok\":false,\"error\":\"(.*)\"\}$ ]]; then
    t=refuse
    t_why=${BASH_REMATCH[1]}
  fi

  local verdict=agree
  if [ "$o" = ERROR ] || [ "$t" = ERROR ] || [ "$o" = WRONG ] || [ "$t" = WRONG ]; then
    verdict=ERROR
  elif [ "$o" != "$t" ]; then
    verdict=DISAGREE
    [ -z "$known" ] || verdict=KNOWN
  elif [ "$o" != "$expected" ]; then
    verdict=UNEXPECTED
  elif [ -n "$known" ]; then
    verdict="agree (a known difference no longer shows: drop 'known' from this case)"
  fi
  row "$name" "$expected" "$o" "$t" "$verdict"
  o_why=${o_why:--}
  t_why=${t_why:--}
  echo "      outpost: ${o_why:0:160}"
  echo "      tuf-js:  ${t_why:0:160}"
  case $verdict in
    agree* | KNOWN) ;;
    *)
      echo "      outpost: $o_why"
      echo "      tuf-js: ${line:-(none)}"
      ;;
  esac
}

tamper_queue=$work/tamper.queue
: >"$tamper_queue"
run_case "control: the untouched repository" accept t_none
run_case "control: clock 1 h before timestamp.json expires" accept t_none now="$before_expiry"
run_case "control: metadata/root.json changed (no client reads it)" accept t_root_copy
run_case "control: timestamp.json + unknown key's extra signature" accept t_unknown_key_extra
run_case "control: $unga_v.un.ga.json re-signed by un key (Node ed25519)" accept t_unga_by_un
run_case "control: timestamp.json padded to 8 KB with spaces" accept t_padded
run_case "control: timestamp, root, targets, un.ga pretty-printed" accept t_pretty
run_case "control: unknown fields, non-ASCII text (re-signed)" accept t_unknown_fields
run_case "un.ga lists the itu bundle, outside its paths" accept t_unga_claims_itu
run_case "1.root.json: one byte changed in signed" refuse t_root1
run_case "2.root.json: one byte changed in signed" refuse t_root2
run_case "2.root.json: signed by the new root key only" refuse t_root2_new_only
run_case "2.root.json: signed by the old root key only" refuse t_root2_old_only
run_case "timestamp.json: one byte changed in signed" refuse t_timestamp
run_case "$snap_v.snapshot.json: one byte changed in signed" refuse t_snapshot
run_case "$targets_v.targets.json: one byte changed in signed" refuse t_targets
run_case "$unga_v.un.ga.json: one byte changed in signed" refuse t_unga
run_case "$RES v2 manifest (a target): one byte changed" refuse t_manifest
run_case "timestamp.json rolled back to an older version" refuse t_rollback prior
run_case "snapshot (signed) rolls un.ga back to version $((unga_v - 1))" refuse t_snapshot_role_rollback prior
run_case "mix-and-match: $((unga_v - 1)).un.ga.json served as $unga_v.un.ga.json" refuse t_mix
run_case "timestamp.json expired (clock: expiry + 1 day)" refuse t_none now="$after_expiry"
run_case "$unga_v.un.ga.json expired (re-signed by un key)" refuse t_unga_expired
run_case "timestamp.json signed by an unknown key only" refuse t_unknown_key
run_case "timestamp.json without signatures" refuse t_no_sigs_ts
run_case "$unga_v.un.ga.json without signatures" refuse t_no_sigs_unga
run_case "$unga_v.un.ga.json signed by itu key (not delegated un/ga)" refuse t_unga_by_itu
run_case "endless data: timestamp.json padded to 1 MB" refuse t_endless
# Formerly known differences, now fixed in outpost and kept as strict cases:
# - spec_version MAJOR.MINOR ("1.0", written by older TUF tools) is accepted like tuf-js does;
# - a key object with extra fields (keyid_hash_algorithms) is identified by the hash of the
#   object as written, as the spec says.
run_case "foreign: timestamp.json with spec_version \"1.0\"" accept t_spec_version_short
run_case "foreign: 3.root.json, a key with keyid_hash_algorithms" accept t_key_extra_field
# (Bundle names whose segment starts with '.' are now refused by the publisher, since glob(7)
# '*' never matches a leading '.': packaging's manifest tests cover it.)

# Trust attacks by the TUF specification's names (docs/SECURITY.md, "Trust attacks").
run_case "attack: missed root rotations, unbroken chain 2->3->4" accept t_root_chain prior
run_case "attack: missed root rotations, a gap (3.root.json missing)" refuse t_root_gap prior
run_case "attack: rollback of root (2.root.json served as 3)" refuse t_root_rollback prior
run_case "attack: rollback of snapshot (timestamp names the previous)" refuse t_snapshot_rollback prior
run_case "attack: rollback of targets (snapshot names the previous)" refuse t_targets_rollback prior
run_case "attack: revoked timestamp key still signing" refuse t_revoked_key
run_case "control: timestamp threshold 2, signed by both keys" accept t_threshold2_two_keys
run_case "attack: threshold 2 met by one key id given twice" refuse t_duplicate_keyids
run_case "attack: fast-forward, recovered by a timestamp key rotation" accept t_ff_recovered prior_tamper=t_fast_forward
run_case "attack: fast-forward, no key rotation (stays refused)" refuse t_ff_not_rotated prior_tamper=t_fast_forward
run_case "clock 1970: a fresh client" accept t_none now=1970-01-01T12:00:00Z
run_case "clock 1970 after a sync today" accept t_none prior now=1970-01-01T12:00:00Z
# outpost keeps a time floor in its store (the newest time it has trusted), so turning the
# clock back does not reopen the freeze attack; tuf-js trusts the system clock.
run_case "clock 1970 + timestamp expired yesterday (freeze)" refuse t_expired_yesterday prior now=1970-01-01T12:00:00Z known
run_case "clock 2099: a fresh client" refuse t_none now=2099-06-01T00:00:00Z
run_case "clock 2099 after a sync today" refuse t_none prior now=2099-06-01T00:00:00Z

# Tamper (one Node process), outpost (in parallel), tuf-js (one Node process).
if [ -s "$tamper_queue" ]; then
  tamper_file=$tamper_queue
  tamper_queue=
  tamper batch "$tamper_file" >/dev/null || fail "building the cases (tamper.mjs batch)"
fi
jobs=$(nproc 2>/dev/null || echo 2)
[ "$jobs" -le 4 ] || jobs=4
for dir in "$work"/case*; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  outpost_case "$dir" &
done
wait
cat "$work"/case*/tuf-job.json >"$work/tuf-jobs.jsonl" 2>/dev/null || true
node "$here/tuf_client.mjs" --modules "$tufjs" --batch "$work/tuf-jobs.jsonl" \
  >"$work/tuf-results.jsonl" 2>"$work/tuf-batch.err" ||
  { cat "$work/tuf-batch.err"; fail "tuf_client.mjs --batch did not run"; }
declare -A tuf_result=()
while IFS= read -r line; do
  [[ $line =~ ^\{\"id\":\"([a-z0-9]*)\" ]] && tuf_result[${BASH_REMATCH[1]}]=$line
done <"$work/tuf-results.jsonl"

echo
row "case" "expected" "outpost" "tuf-js" "verdict"
for dir in "$work"/case*; do verdict_rows "$dir"; done >"$work/table"
cat "$work/table"
echo
failures=$(grep -v '^      ' "$work/table" | grep -c -v -E ' (agree|agree \(.*\)|KNOWN)$' || true)
known=$(grep -v '^      ' "$work/table" | grep -c -E ' KNOWN$' || true)
rows=$(grep -c -v '^      ' "$work/table" || true)
if [ "$rows" -ne "$n" ]; then
  echo "FAIL: only $rows of $n cases finished: building one failed (see the errors above)"
  exit 1
fi
if [ "$failures" -ne 0 ]; then
  echo "FAIL: $failures of $n cases: outpost and tuf-js disagree, a client crashed, or both" \
       "reached an unexpected outcome ($((SECONDS - started)) s)"
  exit 1
fi
echo "PASS: outpost and tuf-js agree on $((n - known)) of $n cases; $known known difference(s)" \
     "($((SECONDS - started)) s)"
