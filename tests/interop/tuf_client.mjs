// An independent TUF client for outpost's repositories: tuf-js (the client npm relies on)
// refreshes the metadata of a repository directory and downloads targets from it.
//
//   node tuf_client.mjs --modules TUFJS_DIR --repo REPO --root TRUSTED_ROOT_JSON
//                       --scratch DIR --target PATH [--target PATH ...]
//   node tuf_client.mjs --modules TUFJS_DIR --batch FILE
//
// TUFJS_DIR holds node_modules/tuf-js (install_tufjs.sh). The client keeps its trusted
// metadata in DIR/metadata (seeded from TRUSTED_ROOT_JSON when DIR/metadata/root.json does
// not exist yet, so a second run with the same DIR starts from what the first one trusted)
// and writes the targets to DIR/targets. Files are read straight from REPO/metadata and
// REPO/targets through a custom fetcher: no HTTP server.
//
// Environment: TUF_FAKE_NOW=2031-01-01T00:00:00Z makes the client believe it is that time
// (tuf-js reads the clock with `new Date()`).
//
// Prints one JSON line: {"ok":true,"length":TOTAL,"root_version":N,"targets":[{path,length,
// sha256,version,file}]} and exits 0, or {"ok":false,"error":"..."} and exits 1.
// Bad usage exits 2.
//
// --batch runs many clients in this one process, one after the other (Node's start-up and
// loading tuf-js cost far more than a refresh): FILE holds one JSON object per line,
// {"id":ID,"repo":...,"root":...,"scratch":...,"targets":[...],"now":ISO_TIME or absent},
// and each gets an output line as above with "id" added. Exits 0 unless the batch itself
// could not run.
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

function usage(msg) {
  process.stderr.write(
    `tuf_client.mjs: ${msg}\nusage: node tuf_client.mjs --modules DIR --repo REPO ` +
      `--root ROOT_JSON --scratch DIR --target PATH [--target PATH ...]\n` +
      `       node tuf_client.mjs --modules DIR --batch FILE\n`);
  process.exit(2);
}

const opts = { target: [] };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    if (!['modules', 'repo', 'root', 'scratch', 'target', 'batch'].includes(name)) {
      usage(`unknown option ${argv[i]}`);
    }
    if (i + 1 >= argv.length) usage(`${argv[i]} needs a value`);
    if (name === 'target') opts.target.push(argv[i + 1]);
    else opts[name] = argv[i + 1];
  }
  if (!opts.modules) usage('--modules is required');
  if (!opts.batch) {
    for (const k of ['repo', 'root', 'scratch']) if (!opts[k]) usage(`--${k} is required`);
    if (opts.target.length === 0) usage('at least one --target is required');
    const now = process.env.TUF_FAKE_NOW;
    if (now && Number.isNaN(Date.parse(now))) usage(`TUF_FAKE_NOW=${now} is not a date`);
  }
}

// A clock that can be set: tuf-js reads the time with `new Date()` (once per Updater).
const RealDate = Date;
let fakeNow = null;
class SettableDate extends RealDate {
  constructor(...args) {
    if (args.length === 0 && fakeNow !== null) super(fakeNow);
    else super(...args);
  }
  static now() {
    return fakeNow !== null ? fakeNow : RealDate.now();
  }
}
globalThis.Date = SettableDate;
function setClock(iso) {
  if (!iso) {
    fakeNow = null;
    return;
  }
  const t = RealDate.parse(iso);
  if (Number.isNaN(t)) throw new Error(`fake time '${iso}' is not a date`);
  fakeNow = t;
}

const require = createRequire(path.resolve(opts.modules) + '/');
// tuf-js loads make-fetch-happen (its HTTP client, two thirds of its start-up time) for the
// default fetcher, which is never used here: stand in a stub that refuses to fetch.
{
  const tufDir = path.dirname(require.resolve('tuf-js/package.json'));
  const httpClient = createRequire(tufDir + '/').resolve('make-fetch-happen');
  require.cache[httpClient] = {
    id: httpClient,
    filename: httpClient,
    loaded: true,
    exports: () => {
      throw new Error('tuf_client.mjs: no network; files come from the directory fetcher');
    },
  };
}
const { Updater, BaseFetcher } = require('tuf-js');
// Not re-exported by the package index; the updater recognises a missing N+1.root.json only
// through this error with status 404.
const { DownloadHTTPError } = require('tuf-js/dist/error');

// Serves file-repo://meta/NAME from REPO/metadata/NAME and file-repo://targets/PATH from
// REPO/targets/PATH, as a stream, so tuf-js's own length limits apply while reading.
class DirectoryFetcher extends BaseFetcher {
  constructor(repo) {
    super();
    this.roots = {
      meta: path.resolve(repo, 'metadata'),
      targets: path.resolve(repo, 'targets'),
    };
  }

  async fetch(url) {
    const u = new URL(url);
    const base = u.protocol === 'file-repo:' ? this.roots[u.host] : undefined;
    if (!base) throw new DownloadHTTPError(`no such repository area: ${url}`, 404);
    const rel = decodeURIComponent(u.pathname).replace(/^\/+/, '');
    const file = path.resolve(base, rel);
    if (!file.startsWith(base + path.sep)) {
      throw new DownloadHTTPError(`outside the repository: ${url}`, 403);
    }
    let st;
    try {
      st = fs.statSync(file);
    } catch {
      throw new DownloadHTTPError(`not found: ${url}`, 404);
    }
    if (!st.isFile()) throw new DownloadHTTPError(`not a file: ${url}`, 404);
    return fs.createReadStream(file);
  }
}

// One client run: refresh, then look up and download each target.
async function runClient({ repo, root, scratch, targets, now }) {
  let step = 'setting the clock';
  try {
    setClock(now);
    const metadataDir = path.join(scratch, 'metadata');
    const targetDir = path.join(scratch, 'targets');
    fs.mkdirSync(metadataDir, { recursive: true });
    fs.mkdirSync(targetDir, { recursive: true });
    const trusted = path.join(metadataDir, 'root.json');
    if (!fs.existsSync(trusted)) fs.copyFileSync(root, trusted);

    step = 'loading the trusted root';
    // The constructor verifies the trusted root (self-signed), so it can fail too.
    const updater = new Updater({
      metadataDir,
      metadataBaseUrl: 'file-repo://meta/',
      targetDir,
      targetBaseUrl: 'file-repo://targets/',
      fetcher: new DirectoryFetcher(repo),
    });
    step = 'refresh';
    await updater.refresh();
    const got = [];
    let total = 0;
    for (const t of targets) {
      step = `getTargetInfo(${t})`;
      const info = await updater.getTargetInfo(t);
      if (!info) throw new Error(`target ${t} not found by any trusted role`);
      step = `downloadTarget(${t})`;
      const file = await updater.downloadTarget(info);
      const bytes = fs.readFileSync(file);
      got.push({
        path: t,
        length: bytes.length,
        sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
        version: info.custom?.outpost?.version ?? null,
        file,
      });
      total += bytes.length;
    }
    return {
      ok: true,
      length: total,
      root_version: updater.trustedSet?.root?.signed?.version ?? null,
      targets: got,
    };
  } catch (err) {
    const name = err?.constructor?.name ?? 'Error';
    const msg = String(err?.message ?? err).replace(/\s+/g, ' ');
    return { ok: false, error: `${step}: ${name}: ${msg}` };
  } finally {
    setClock(null);
  }
}

if (opts.batch) {
  const lines = fs.readFileSync(opts.batch, 'utf8').split('\n').filter((l) => l.trim());
  for (const line of lines) {
    const job = JSON.parse(line);
    const result = await runClient(job);
    process.stdout.write(JSON.stringify({ id: job.id, ...result }) + '\n');
  }
} else {
  const result = await runClient({
    repo: opts.repo,
    root: opts.root,
    scratch: opts.scratch,
    targets: opts.target,
    now: process.env.TUF_FAKE_NOW,
  });
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exitCode = result.ok ? 0 : 1;
}
