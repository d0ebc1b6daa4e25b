// Helpers for the differential test: read facts from an outpost repository and tamper with
// its files the way an attacker or a broken mirror would. Signing uses Node's own ed25519
// and tuf-js's canonical JSON (@tufjs/canonical-json), not outpost's code.
//
//   node tamper.mjs TUFJS_DIR role-version REPO ROLE   version the repository serves
//                                                       (root: highest N.root.json;
//                                                       snapshot: as timestamp.json names it;
//                                                       targets/DELEGATED: as snapshot names it)
//   node tamper.mjs TUFJS_DIR facts REPO ROLE TARGET    shell assignments: the versions the
//                                                       repository serves (root_v, snap_v,
//                                                       targets_v, role_v of delegated ROLE),
//                                                       ts_expires and the times one hour
//                                                       before and one day after it, and
//                                                       target_file: TARGET's file as ROLE
//                                                       lists it, relative to REPO
//   node tamper.mjs TUFJS_DIR flip-signed FILE          change one byte inside "signed"
//                                                       (a digit of the expiry year: the file
//                                                       stays well-formed metadata)
//   node tamper.mjs TUFJS_DIR flip-byte FILE            change one byte in the middle
//   node tamper.mjs TUFJS_DIR pad FILE SIZE             append spaces up to SIZE bytes
//                                                       (still the same JSON value)
//   node tamper.mjs TUFJS_DIR pretty FILE               rewrite as indented JSON (python-tuf
//                                                       writes metadata so): not canonical
//                                                       on disk, same signed value
//   node tamper.mjs TUFJS_DIR add-target FILE PATH FROM add target PATH to a targets role,
//                                                       with FROM's length and sha256 (no
//                                                       re-signing: use sign next)
//   node tamper.mjs TUFJS_DIR edit FILE JS              run JS on the parsed file `d` (with
//                                                       helpers readJson(FILE),
//                                                       fileMeta(FILE, VERSION) and
//                                                       keyidOf(KEY_OBJECT)), write it back
//                                                       as canonical JSON (no re-signing)
//   node tamper.mjs TUFJS_DIR strip-sigs FILE           "signatures": []
//   node tamper.mjs TUFJS_DIR copy FROM TO              copy a file (as a mirror would serve it)
//   node tamper.mjs TUFJS_DIR batch FILE                run the commands in FILE in order, in
//                                                       this one process: each argument ends
//                                                       with a NUL byte, each command with
//                                                       one more; stops at the first failure
//   node tamper.mjs TUFJS_DIR sign FILE KEY [append]    replace the signatures (or add one)
//                                                       with KEY's: an outpost key file, or
//                                                       "new" for a fresh, unknown key
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const [modules, cmd, ...args] = process.argv.slice(2);
if (!modules || !cmd) {
  process.stderr.write('usage: node tamper.mjs TUFJS_DIR COMMAND ARGS...\n');
  process.exit(2);
}
const require = createRequire(path.resolve(modules) + '/');

function fail(msg) {
  throw new Error(msg);
}

const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));

// Replace a file the way a mirror would: a new inode, so hard-linked copies stay intact.
function replace(file, bytes) {
  const tmp = `${file}.tamper-tmp`;
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, file);
}

function canonical(value) {
  const { canonicalize } = require('@tufjs/canonical-json');
  return Buffer.from(canonicalize(value), 'utf8');
}

// An outpost key file holds the 32-byte ed25519 seed in hex; Node takes it as PKCS#8.
function keyFromSeed(seedHex) {
  const seed = Buffer.from(seedHex, 'hex');
  if (seed.length !== 32) fail('a key seed must be 32 bytes');
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  return crypto.createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
}

function publicHex(privateKey) {
  const spki = crypto.createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return spki.subarray(spki.length - 32).toString('hex');
}

// TUF key id: SHA-256 of the canonical JSON of the public key object, every field included.
function keyidOf(keyObject) {
  return crypto.createHash('sha256').update(canonical(keyObject)).digest('hex');
}
function keyid(pubHex) {
  return keyidOf({ keytype: 'ed25519', keyval: { public: pubHex }, scheme: 'ed25519' });
}

// A snapshot or timestamp "meta" entry describing FILE.
function fileMeta(file, version) {
  const bytes = fs.readFileSync(file);
  return {
    version,
    length: bytes.length,
    hashes: { sha256: crypto.createHash('sha256').update(bytes).digest('hex') },
  };
}

const commands = {
  'role-version'([repo, role]) {
    const meta = path.join(repo, 'metadata');
    if (role === 'root') {
      let n = 1;
      while (fs.existsSync(path.join(meta, `${n + 1}.root.json`))) n += 1;
      return String(n);
    }
    const ts = readJson(path.join(meta, 'timestamp.json')).signed;
    if (role === 'timestamp') return String(ts.version);
    const snapVersion = ts.meta['snapshot.json'].version;
    if (role === 'snapshot') return String(snapVersion);
    const snap = readJson(path.join(meta, `${snapVersion}.snapshot.json`)).signed;
    const entry = snap.meta[`${role}.json`];
    if (!entry) fail(`snapshot version ${snapVersion} does not list ${role}.json`);
    return String(entry.version);
  },

  facts([repo, role, target]) {
    const v = (r) => commands['role-version']([repo, r]);
    const roleV = v(role);
    const listed = readJson(path.join(repo, 'metadata', `${roleV}.${role}.json`)).signed.targets[target];
    if (!listed) fail(`${role} version ${roleV} does not list ${target}`);
    const { dir, base } = path.posix.parse(target);
    const expires = readJson(path.join(repo, 'metadata', 'timestamp.json')).signed.expires;
    const shift = (seconds) => new Date(Date.parse(expires) + seconds * 1000).toISOString()
      .replace(/\.\d{3}Z$/, 'Z');
    const facts = {
      root_v: v('root'),
      snap_v: v('snapshot'),
      targets_v: v('targets'),
      role_v: roleV,
      ts_expires: expires,
      before_expiry: shift(-3600),
      after_expiry: shift(86400),
      target_file: `targets/${dir}/${listed.hashes.sha256}.${base}`,
    };
    return Object.entries(facts).map(([k, x]) => `${k}='${x.replace(/'/g, '')}'`).join('\n');
  },

  'flip-signed'([file]) {
    const bytes = fs.readFileSync(file);
    const signedAt = bytes.indexOf('"signed":');
    const at = bytes.indexOf('"expires":"', signedAt);
    if (signedAt < 0 || at < 0) fail(`${file}: no "signed" part with an "expires" field`);
    const digit = at + '"expires":"'.length + 3;  // last digit of the year
    const old = bytes[digit];
    if (old < 0x30 || old > 0x39) fail(`${file}: unexpected expiry format`);
    bytes[digit] = old === 0x39 ? 0x38 : old + 1;
    JSON.parse(bytes.toString('utf8'));  // still well-formed
    replace(file, bytes);
    return `byte ${digit}: '${String.fromCharCode(old)}' -> '${String.fromCharCode(bytes[digit])}'`;
  },

  'flip-byte'([file]) {
    const bytes = fs.readFileSync(file);
    const at = Math.floor(bytes.length / 2);
    const old = bytes[at];
    // Stay printable and away from quotes and backslashes.
    bytes[at] = old === 0x61 ? 0x62 : 0x61;
    replace(file, bytes);
    return `byte ${at}: 0x${old.toString(16)} -> 0x${bytes[at].toString(16)}`;
  },

  pad([file, size]) {
    const bytes = fs.readFileSync(file);
    const n = Number(size);
    if (!(n > bytes.length)) fail(`${file} is already ${bytes.length} bytes`);
    replace(file, Buffer.concat([bytes, Buffer.alloc(n - bytes.length, 0x20)]));
    return `${bytes.length} -> ${n} bytes`;
  },

  pretty([file]) {
    replace(file, JSON.stringify(readJson(file), null, 1) + '\n');
    return 'indented';
  },

  'add-target'([file, targetPath, from]) {
    const doc = readJson(file);
    const bytes = fs.readFileSync(from);
    doc.signed.targets[targetPath] = {
      length: bytes.length,
      hashes: { sha256: crypto.createHash('sha256').update(bytes).digest('hex') },
    };
    replace(file, canonical(doc));
    return `added ${targetPath}`;
  },

  edit([file, js]) {
    const doc = readJson(file);
    new Function('d', 'readJson', 'fileMeta', 'keyidOf', js)(doc, readJson, fileMeta, keyidOf);
    replace(file, canonical(doc));
    return 'edited';
  },

  copy([from, to]) {
    replace(to, fs.readFileSync(from));
    return `copied ${path.basename(from)}`;
  },

  batch([file]) {
    const fields = fs.readFileSync(file, 'utf8').split('\0');
    const out = [];
    let cmd = [];
    for (const f of fields) {
      if (f !== '') {
        cmd.push(f);
        continue;
      }
      if (cmd.length === 0) continue;
      if (!commands[cmd[0]] || cmd[0] === 'batch') fail(`batch: unknown command ${cmd[0]}`);
      out.push(commands[cmd[0]](cmd.slice(1)));
      cmd = [];
    }
    return out.join('\n');
  },

  'strip-sigs'([file]) {
    const doc = readJson(file);
    const had = doc.signatures.length;
    doc.signatures = [];
    replace(file, canonical(doc));
    return `removed ${had} signature(s)`;
  },

  sign([file, keyFile, mode]) {
    const doc = readJson(file);
    const key = keyFile === 'new'
      ? crypto.generateKeyPairSync('ed25519').privateKey
      : keyFromSeed(readJson(keyFile).seed);
    const pub = publicHex(key);
    if (keyFile !== 'new' && readJson(keyFile).public !== pub) fail(`${keyFile}: seed and public key disagree`);
    const sig = crypto.sign(null, canonical(doc.signed), key).toString('hex');
    const entry = { keyid: keyid(pub), sig };
    doc.signatures = mode === 'append' ? [...doc.signatures, entry] : [entry];
    replace(file, canonical(doc));
    return `signed by ${entry.keyid.slice(0, 16)}...`;
  },
};

try {
  if (!commands[cmd]) fail(`unknown command ${cmd}`);
  process.stdout.write(commands[cmd](args) + '\n');
} catch (err) {
  process.stderr.write(`tamper.mjs ${cmd}: ${err.message}\n`);
  process.exit(1);
}
