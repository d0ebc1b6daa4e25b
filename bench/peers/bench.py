#!/usr/bin/env python3
"""Peer baseline: bytes that existing delta-sync / delta-compression tools need
to update a file tree from version N to version N+1 of real npm data packages.

Driven by run.sh (which installs the Debian packages first). Standard library
only. Every server it starts (nginx, rsync daemon) listens on 127.0.0.1 only
and is stopped by its own PID when the run ends.

Stages:  fetch   -> npm pack every version named in pairs.conf into CACHE/tgz
         prepare -> unpack to normalized trees + deterministic tars (in CACHE)
         measure -> per pair and method: prepare server side, sync, verify
         report  -> results.csv + RESULTS.md
"""
import argparse
import csv
import datetime
import filecmp
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = 499162500          # 1985-10-26T08:15:00Z, the fixed mtime npm uses in tarballs
T1 = T0 + 86400         # "changed" mtime for the rsync quick-check variant
TIMEOUT = 900           # seconds, per external command

# ----------------------------------------------------------------- helpers


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


class CmdError(Exception):
    pass


def sh(cmd, cwd=None, timeout=TIMEOUT, env=None):
    """Run cmd (a list); return (combined output, seconds). Raise CmdError on failure."""
    t = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise CmdError("timeout after %ss: %s" % (timeout, " ".join(cmd)))
    dt = time.monotonic() - t
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        tail = " | ".join(out.strip().splitlines()[-4:])
        raise CmdError("rc=%d %s: %s" % (p.returncode, os.path.basename(cmd[0]), tail[:400]))
    return out, dt


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, secs=10):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited early with rc=%s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server on port %d did not come up" % port)


def stop_proc(proc, name):
    """Stop a server we started, by its PID only."""
    if proc is None or proc.poll() is not None:
        return
    log("stopping %s (pid %d)" % (name, proc.pid))
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)


def slug(pkg):
    return pkg.replace("@", "").replace("/", "-")


def walk_files(root):
    """Relative paths of regular files under root."""
    out = []
    for d, dirs, files in os.walk(root):
        for f in files:
            out.append(os.path.relpath(os.path.join(d, f), root))
    return sorted(out)


def same_tree(a, b):
    """True when trees a and b hold the same file paths with the same contents."""
    fa, fb = walk_files(a), walk_files(b)
    if fa != fb:
        return False
    for f in fa:
        if not filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False):
            return False
    return True


def same_file(a, b):
    return os.path.exists(a) and filecmp.cmp(a, b, shallow=False)


def fsize(p):
    return os.path.getsize(p)


def link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# ----------------------------------------------------------------- servers


class Nginx:
    """nginx on 127.0.0.1 serving ROOT; access log with byte counters per request."""

    FMT = ('$connection $connection_requests $status $body_bytes_sent $bytes_sent '
           '$request_length $request_method "$uri"')

    def __init__(self, root, rundir):
        self.root, self.rundir = root, rundir
        self.port = free_port()
        self.log = os.path.join(rundir, "nginx-access.log")
        self.proc = None
        self.offset = 0

    def start(self):
        r = self.rundir
        for d in ("tmp_body", "tmp_proxy", "tmp_fcgi", "tmp_uwsgi", "tmp_scgi"):
            os.makedirs(os.path.join(r, d), exist_ok=True)
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf = f"""{user}worker_processes 1;
error_log {r}/nginx-error.log warn;
pid {r}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  log_format bench '{self.FMT}';
  access_log {self.log} bench;
  client_body_temp_path {r}/tmp_body;
  proxy_temp_path {r}/tmp_proxy;
  fastcgi_temp_path {r}/tmp_fcgi;
  uwsgi_temp_path {r}/tmp_uwsgi;
  scgi_temp_path {r}/tmp_scgi;
  types {{ }}
  default_type application/octet-stream;
  sendfile on;
  gzip off;
  keepalive_requests 100000;
  keepalive_timeout 60s;
  large_client_header_buffers 8 256k;
  server {{
    listen 127.0.0.1:{self.port};
    root {self.root};
    max_ranges 100000;
  }}
}}
"""
        path = os.path.join(r, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        open(self.log, "a").close()
        self.proc = subprocess.Popen(
            ["nginx", "-e", os.path.join(r, "nginx-error.log"), "-p", r, "-c", path,
             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)
        log("nginx pid %d on 127.0.0.1:%d" % (self.proc.pid, self.port))

    def url(self, relpath):
        return "http://127.0.0.1:%d/%s" % (self.port, relpath)

    def mark(self):
        time.sleep(0.05)
        self.offset = os.path.getsize(self.log)

    def collect(self, prefix):
        """Requests logged since mark() whose URI starts with /prefix."""
        time.sleep(0.3)  # nginx logs a request when it is finalized
        with open(self.log, "rb") as f:
            f.seek(self.offset)
            data = f.read().decode("utf-8", "replace")
        self.offset += len(data.encode("utf-8"))
        res = dict(requests=0, conns=set(), body=0, sent=0, reqlen=0, bad=[], stray=0)
        for line in data.splitlines():
            m = re.match(r'(\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\S+) "(.*)"$', line)
            if not m:
                continue
            conn, _, status, body, sent, reqlen, _, uri = m.groups()
            if not uri.startswith("/" + prefix):
                res["stray"] += 1
                continue
            res["requests"] += 1
            res["conns"].add(conn)
            res["body"] += int(body)
            res["sent"] += int(sent)
            res["reqlen"] += int(reqlen)
            if status not in ("200", "206", "304"):   # 304: a conditional GET, unchanged
                res["bad"].append(status)
        res["conns"] = len(res["conns"])
        return res


class RsyncDaemon:
    def __init__(self, root, rundir):
        self.root, self.rundir = root, rundir
        self.port = free_port()
        self.proc = None

    def start(self):
        r = self.rundir
        ids = "uid = root\ngid = root\n" if os.geteuid() == 0 else ""
        conf = f"""port = {self.port}
address = 127.0.0.1
use chroot = no
reverse lookup = no
pid file = {r}/rsyncd.pid
log file = {r}/rsyncd.log
[bench]
  path = {self.root}
  read only = yes
  list = no
{ids}"""
        path = os.path.join(r, "rsyncd.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(["rsync", "--daemon", "--no-detach", "--config=" + path],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)
        log("rsync daemon pid %d on 127.0.0.1:%d" % (self.proc.pid, self.port))

        self.proxy = CountingProxy(self.port)
        log("byte-counting TCP relay on 127.0.0.1:%d -> rsync daemon" % self.proxy.port)

    def url(self, relpath):
        # clients go through the counting relay, so rsync's bytes are measured on the socket
        return "rsync://127.0.0.1:%d/bench/%s" % (self.proxy.port, relpath)


class CountingProxy:
    """TCP relay on 127.0.0.1 that counts the bytes passing each way (payload only)."""

    def __init__(self, target_port):
        self.target = target_port
        self.lock = threading.Lock()
        self.up = self.down = 0
        self.active = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.target))
            conn = dict(left=2, socks=(c, u))
            with self.lock:
                self.active += 1
            threading.Thread(target=self._pump, args=(c, u, "up", conn), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, "down", conn), daemon=True).start()

    def _pump(self, a, b, way, conn):
        try:
            while True:
                d = a.recv(1 << 16)
                if not d:
                    break
                with self.lock:
                    setattr(self, way, getattr(self, way) + len(d))
                b.sendall(d)
        except OSError:
            pass
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self.lock:
            conn["left"] -= 1
            last = conn["left"] == 0
        if last:                      # both directions done: close and mark idle
            for x in conn["socks"]:
                x.close()
            with self.lock:
                self.active -= 1

    def reset(self):
        with self.lock:
            self.up = self.down = 0

    def read(self, secs=10):
        """Counts once every relayed connection has closed."""
        end = time.monotonic() + secs
        while time.monotonic() < end:
            with self.lock:
                if self.active == 0:
                    return self.up, self.down
            time.sleep(0.02)
        raise RuntimeError("relay connection still open")

    def close(self):
        self.sock.close()


# ----------------------------------------------------------------- data


def read_pairs(path):
    pairs = []
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line:
            pkg, old, new, kind = line.split()
            pairs.append(dict(pkg=pkg, old=old, new=new, kind=kind))
    return pairs


class Data:
    def __init__(self, cache):
        self.cache = cache
        for d in ("tgz", "tree", "tar", "zck", "meta"):
            os.makedirs(os.path.join(cache, d), exist_ok=True)

    def tgz(self, pkg, ver):
        return os.path.join(self.cache, "tgz", "%s-%s.tgz" % (slug(pkg), ver))

    def tree(self, pkg, ver):
        return os.path.join(self.cache, "tree", "%s-%s" % (slug(pkg), ver))

    def tar(self, pkg, ver):
        return os.path.join(self.cache, "tar", "%s-%s.tar" % (slug(pkg), ver))

    def zck(self, pkg, ver):
        return os.path.join(self.cache, "zck", "%s-%s.tar.zck" % (slug(pkg), ver))

    def versions(self, pkg):
        """The registry's published-version list (its order), cached in meta/."""
        meta = os.path.join(self.cache, "meta", slug(pkg) + ".versions.json")
        if not os.path.exists(meta):
            out, _ = sh(["npm", "view", pkg, "versions", "--json"])
            json.loads(out)
            with open(meta + ".tmp", "w") as f:
                f.write(out)
            os.rename(meta + ".tmp", meta)
        return json.load(open(meta))

    def history(self, pkg, old, new):
        """Every published version from old to new inclusive, in registry order."""
        v = self.versions(pkg)
        if old not in v or new not in v or v.index(old) > v.index(new):
            raise ValueError("%s: %s and %s are not in registry order in `npm view %s versions`"
                             % (pkg, old, new, pkg))
        return v[v.index(old):v.index(new) + 1]

    def fetch(self, pairs, extra=()):
        want = sorted({(p["pkg"], v) for p in pairs for v in (p["old"], p["new"])} | set(extra))
        missing = [(p, v) for p, v in want if not os.path.exists(self.tgz(p, v))]
        if missing:
            log("npm pack %d versions into %s" % (len(missing), os.path.join(self.cache, "tgz")))
            tmp = os.path.join(self.cache, "tgz", ".incoming")
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            out, _ = sh(["npm", "pack", "--json", "--pack-destination", tmp] +
                        ["%s@%s" % (p, v) for p, v in missing], cwd=tmp)
            info = json.loads(out[out.index("["):])
            for (p, v), item in zip(missing, info):
                assert item["version"] == v, (item["version"], v)
                os.replace(os.path.join(tmp, item["filename"]), self.tgz(p, v))
            shutil.rmtree(tmp)
        # publish dates, for the report (one registry query per package)
        for pkg in sorted({p["pkg"] for p in pairs}):
            meta = os.path.join(self.cache, "meta", slug(pkg) + ".time.json")
            if not os.path.exists(meta):
                try:
                    out, _ = sh(["npm", "view", pkg, "time", "--json"])
                    with open(meta, "w") as f:
                        f.write(out)
                except CmdError as e:
                    log("could not get publish dates for %s: %s" % (pkg, e))

    def publish_date(self, pkg, ver):
        try:
            t = json.load(open(os.path.join(self.cache, "meta", slug(pkg) + ".time.json")))
            return t.get(ver, "")[:10]
        except (OSError, ValueError):
            return ""

    def unpack(self, pkg, ver):
        tree = self.tree(pkg, ver)
        if not os.path.isdir(tree):
            tmp = tree + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            sh(["tar", "-xzf", self.tgz(pkg, ver), "-C", tmp, "--strip-components=1",
                "--no-same-owner"])
            if SUBTREE:  # only this folder of the package is the tree (its trees, tars cached)
                keep = os.path.join(tmp, SUBTREE)
                if not os.path.isdir(keep):
                    raise SystemExit("%s %s has no folder %s" % (pkg, ver, SUBTREE))
                os.rename(keep, tmp + ".sub")
                shutil.rmtree(tmp)
                os.rename(tmp + ".sub", tmp)
            normalize_tree(tmp)
            os.rename(tmp, tree)
        return tree

    def prepare(self, pairs, extra=()):
        for pkg, ver in sorted(set(extra)):      # intermediate versions: trees only
            self.unpack(pkg, ver)
        for pkg, ver in sorted({(p["pkg"], v) for p in pairs for v in (p["old"], p["new"])}):
            tree, tar, zck = self.unpack(pkg, ver), self.tar(pkg, ver), self.zck(pkg, ver)
            if not os.path.exists(tar):
                # deterministic: sorted names, fixed mtime/owner, GNU format (no pax times)
                sh(["tar", "--sort=name", "--format=gnu", "--mtime=@%d" % T0, "--owner=0",
                    "--group=0", "--numeric-owner", "-C", tree, "-cf", tar + ".tmp", "."],
                   env=dict(os.environ, LC_ALL="C"))
                os.rename(tar + ".tmp", tar)
            if not os.path.exists(zck):
                # the zchunk client keeps its current version as a .zck (its delta source)
                sh(["zck", "-o", zck + ".tmp", tar])
                os.rename(zck + ".tmp", zck)


# PEERS_SUBTREE: the tree of a version is only this folder of its package (bench/library/peers.sh:
# "data", the files that are the library's bundles). Use a --base of its own: trees are cached.
SUBTREE = os.environ.get("PEERS_SUBTREE", "")


def normalize_tree(root):
    for d, dirs, files in os.walk(root, topdown=False):
        for f in files:
            p = os.path.join(d, f)
            mode = os.lstat(p).st_mode
            if not os.path.islink(p):
                os.chmod(p, 0o755 if mode & 0o111 else 0o644)
            os.utime(p, (T0, T0), follow_symlinks=False)
        for x in dirs:
            p = os.path.join(d, x)
            os.chmod(p, 0o755)
            os.utime(p, (T0, T0))
    os.chmod(root, 0o755)
    os.utime(root, (T0, T0))


def pair_stats(a, b):
    fa, fb = set(walk_files(a)), set(walk_files(b))
    added, removed = fb - fa, fa - fb
    modified = {f for f in fa & fb
                if not filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False)}
    changed_bytes = sum(os.path.getsize(os.path.join(b, f)) for f in added | modified)
    return dict(files_old=len(fa), files_new=len(fb), added=len(added), removed=len(removed),
                modified=len(modified), changed_file_bytes=changed_bytes)


# ----------------------------------------------------------------- methods
#
# Each method returns a dict with: down (server->client payload bytes), up
# (client->server payload bytes), wire (all application bytes both ways, HTTP
# headers included), requests, conns, prep_s (server side), client_s, ok, note.

METHODS = []


def method(name, group, what):
    def deco(fn):
        METHODS.append(dict(name=name, group=group, what=what, fn=fn))
        return fn
    return deco


class Ctx:
    pass


def http_result(c, prefix, fetch_cmds, verify, prep_s, note=""):
    """Run the client commands (each a (cmd, cwd) tuple), then read nginx's log."""
    c.nginx.mark()
    client_s = 0.0
    for cmd, cwd in fetch_cmds:
        _, dt = sh(cmd, cwd=cwd)
        client_s += dt
    h = c.nginx.collect(prefix)
    ok = verify()
    if h["bad"]:
        note = (note + " HTTP status %s" % ",".join(sorted(set(h["bad"])))).strip()
    if h["stray"]:
        note = (note + " %d unrelated log lines" % h["stray"]).strip()
    return dict(down=h["body"], up=0, wire=h["sent"] + h["reqlen"], requests=h["requests"],
                conns=h["conns"], prep_s=prep_s, client_s=client_s, ok=ok, note=note)


def single_file(c, name, make_cmd, artifact, decode_cmd, prep_s=None):
    """A file made on the server (full archive or patch), fetched with one GET, decoded."""
    d = os.path.join(c.W, name)
    os.makedirs(d, exist_ok=True)
    if make_cmd:
        _, prep_s = sh(make_cmd, cwd=d)
    rel = os.path.relpath(artifact, c.base)
    got = os.path.join(d, "got." + os.path.basename(artifact))
    out = os.path.join(d, "out.tar")
    cmds = [(["curl", "-sS", "--fail", "-o", got, c.nginx.url(rel)], d),
            (decode_cmd(got, out), d)]
    return http_result(c, rel, cmds, lambda: same_file(out, c.new_tar), prep_s,
                       note="artifact %d B" % fsize(artifact))


@method("npm-tgz", "full", "the package .tgz as published on npm (gzip)")
def m_npm(c):
    d = os.path.join(c.W, "npm")
    os.makedirs(os.path.join(d, "tree"))
    rel = os.path.relpath(c.new_tgz, c.base)
    got = os.path.join(d, "got.tgz")
    cmds = [(["curl", "-sS", "--fail", "-o", got, c.nginx.url(rel)], d),
            (["tar", "-xzf", got, "-C", "tree", "--strip-components=1", "--no-same-owner"], d)]
    return http_result(c, rel, cmds, lambda: same_tree(os.path.join(d, "tree"), c.new_tree),
                       None)


@method("tar.zst-19", "full", "new tar, zstd -19 --long=27 (full download)")
def m_full(c):
    art = os.path.join(c.W, "full", "new.tar.zst")
    return single_file(c, "full", ["zstd", "-q", "-f", "-19", "--long=27", c.new_tar, "-o", art],
                       art, lambda i, o: ["zstd", "-d", "-q", "-f", "--long=31", i, "-o", o])


@method("zstd-patch-19", "patch", "zstd -19 --long=27 --patch-from=old.tar")
def m_zp19(c):
    art = os.path.join(c.W, "zp19", "patch.zst")
    return single_file(c, "zp19", ["zstd", "-q", "-f", "-19", "--long=27",
                                   "--patch-from=" + c.old_tar, c.new_tar, "-o", art],
                       art, lambda i, o: ["zstd", "-d", "-q", "-f", "--long=31",
                                          "--patch-from=" + c.old_tar, i, "-o", o])


@method("zstd-patch-22", "patch", "zstd --ultra -22 --long=27 --patch-from=old.tar")
def m_zp22(c):
    art = os.path.join(c.W, "zp22", "patch.zst")
    return single_file(c, "zp22", ["zstd", "-q", "-f", "--ultra", "-22", "--long=27",
                                   "--patch-from=" + c.old_tar, c.new_tar, "-o", art],
                       art, lambda i, o: ["zstd", "-d", "-q", "-f", "--long=31",
                                          "--patch-from=" + c.old_tar, i, "-o", o])


@method("xdelta3-9-djw", "patch", "xdelta3 -e -9 -S djw -s old.tar new.tar (VCDIFF)")
def m_xd(c):
    art = os.path.join(c.W, "xd", "patch.vcdiff")
    return single_file(c, "xd", ["xdelta3", "-e", "-f", "-9", "-S", "djw", "-s", c.old_tar,
                                 c.new_tar, art],
                       art, lambda i, o: ["xdelta3", "-d", "-f", "-s", c.old_tar, i, o])


@method("bsdiff", "patch", "bsdiff old.tar new.tar (bzip2 inside)")
def m_bsdiff(c):
    art = os.path.join(c.W, "bsdiff", "patch.bsdiff")
    return single_file(c, "bsdiff", ["bsdiff", c.old_tar, c.new_tar, art],
                       art, lambda i, o: ["bspatch", c.old_tar, o, i])


def rsync_result(c, name, src_rel, dest, flags, verify, note=""):
    cmd = ["rsync", "--stats"] + flags + [c.rsyncd.url(src_rel), dest]
    c.rsyncd.proxy.reset()
    out, dt = sh(cmd)
    up, down = c.rsyncd.proxy.read()

    def num(label):
        m = re.search(label + r": ([\d,]+)", out)
        return int(m.group(1).replace(",", "")) if m else None

    sent, recv = num("Total bytes sent"), num("Total bytes received")
    lit, mat = num("Literal data"), num("Matched data")
    note = (note + " --stats sent %s + received %s B; literal %s B, matched %s B" %
            (sent, recv, lit, mat)).strip()
    return dict(down=down, up=up, wire=up + down, requests=None, conns=1, prep_s=None,
                client_s=dt, ok=verify(), note=note)


def rsync_z(c):
    return ["-z", "--compress-choice=zstd"] if c.rsync_zstd else ["-z"]


def rsync_tree(c, name, extra, qc=False):
    d = os.path.join(c.W, name)
    os.makedirs(d)
    dest = os.path.join(d, "dest")
    shutil.copytree(c.old_tree, dest, symlinks=True)   # client's current version
    src = c.new_tree
    if qc:
        # mirror-style server tree: files unchanged since the old version keep the old
        # mtime, changed/added files get a newer one, so rsync's quick check works.
        src = os.path.join(d, "srvtree")
        shutil.copytree(c.new_tree, src, symlinks=True)
        for f in walk_files(src):
            o = os.path.join(c.old_tree, f)
            if not (os.path.exists(o) and filecmp.cmp(o, os.path.join(src, f), shallow=False)):
                os.utime(os.path.join(src, f), (T1, T1))
    flags = ["-a", "--delete"] + ([] if qc else ["-c"]) + extra
    return rsync_result(c, name, os.path.relpath(src, c.base) + "/", dest + "/", flags,
                        lambda: same_tree(dest, c.new_tree))


@method("rsync-tree-c", "rsync", "rsync -a -c --delete, tree, daemon on 127.0.0.1")
def m_rt(c):
    return rsync_tree(c, "rt", [])


@method("rsync-tree-c-z", "rsync", "as above + -z --compress-choice=zstd")
def m_rtz(c):
    return rsync_tree(c, "rtz", rsync_z(c))


@method("rsync-tree-qc-z", "rsync", "rsync -a --delete -z (quick check on mirror-style mtimes)")
def m_rtqz(c):
    return rsync_tree(c, "rtqz", rsync_z(c), qc=True)


def rsync_tar(c, name, extra):
    d = os.path.join(c.W, name)
    os.makedirs(d)
    dest = os.path.join(d, "new.tar")
    shutil.copy2(c.old_tar, dest)                       # basis file = old version
    return rsync_result(c, name, os.path.relpath(c.new_tar, c.base), dest,
                        ["-I", "--no-whole-file"] + extra, lambda: same_file(dest, c.new_tar))


@method("rsync-tar", "rsync", "rsync -I of the single tar onto the old tar")
def m_rtar(c):
    return rsync_tar(c, "rtar", [])


@method("rsync-tar-z", "rsync", "as above + -z --compress-choice=zstd")
def m_rtarz(c):
    return rsync_tar(c, "rtarz", rsync_z(c))


@method("zsync-tar", "http", "zsyncmake new.tar; zsync -i old.tar (nginx, Range requests)")
def m_zsync(c):
    d = os.path.join(c.W, "zs")
    cl = os.path.join(d, "client")
    os.makedirs(cl)
    link_or_copy(c.new_tar, os.path.join(d, "new.tar"))
    _, prep = sh(["zsyncmake", "-u", "new.tar", "-o", "new.tar.zsync", "new.tar"], cwd=d)
    rel = os.path.relpath(d, c.base) + "/"
    out = os.path.join(cl, "out.tar")
    cmds = [(["zsync", "-q", "-i", c.old_tar, "-o", out, c.nginx.url(rel + "new.tar.zsync")],
             cl)]
    return http_result(c, rel, cmds, lambda: same_file(out, c.new_tar), prep,
                       note=".zsync %d B" % fsize(os.path.join(d, "new.tar.zsync")))


def casync_run(c, name, src, seed, index, chunk=None):
    d = os.path.join(c.W, name)
    os.makedirs(d)
    extra = ["--chunk-size=%d" % chunk] if chunk else []
    _, prep = sh(["casync", "make"] + extra + ["--store=store.castr", index, src], cwd=d)
    rel = os.path.relpath(d, c.base) + "/"
    out = os.path.join(d, "out" + (".tar" if index.endswith(".caibx") else ""))
    cmds = [(["casync", "extract", "--store=" + c.nginx.url(rel + "store.castr/"),
              "--seed=" + seed, c.nginx.url(rel + index), out], d)]
    nchunks = len(walk_files(os.path.join(d, "store.castr")))
    verify = (lambda: same_file(out, c.new_tar)) if out.endswith(".tar") else \
        (lambda: same_tree(out, c.new_tree))
    return http_result(c, rel, cmds, verify, prep,
                       note="index %d B, %d chunks in store" % (fsize(os.path.join(d, index)),
                                                                nchunks))


@method("casync-tree", "http", "casync make .caidx of the tree (default 64K avg chunks, zstd); "
        "extract --seed=old tree")
def m_ca(c):
    return casync_run(c, "ca", c.new_tree, c.old_tree, "new.caidx")


@method("casync-tree-16k", "http", "as above with --chunk-size=16384")
def m_ca16(c):
    return casync_run(c, "ca16", c.new_tree, c.old_tree, "new.caidx", chunk=16384)


@method("casync-tar", "http", "casync make .caibx of the tar; extract --seed=old.tar")
def m_cab(c):
    return casync_run(c, "cab", c.new_tar, c.old_tar, "new.caibx")


@method("zchunk-tar", "http", "zck new.tar; zckdl --source=old.tar.zck; unzck")
def m_zck(c):
    d = os.path.join(c.W, "zc")
    cl = os.path.join(d, "client")
    os.makedirs(cl)
    _, prep = sh(["zck", "-o", "new.tar.zck", c.new_tar], cwd=d)
    rel = os.path.relpath(d, c.base) + "/"
    cmds = [(["zckdl", "-q", "--source=" + c.old_zck, c.nginx.url(rel + "new.tar.zck")], cl),
            (["unzck", "new.tar.zck"], cl)]
    return http_result(c, rel, cmds, lambda: same_file(os.path.join(cl, "new.tar"), c.new_tar),
                       prep, note=".zck %d B" % fsize(os.path.join(d, "new.tar.zck")))


# outpost: a repository holding OLD and NEW of the tree as one bundle, and a node synced to
# OLD that syncs to NEW. "outpost" reads the repository from its path (bytes = `outpost sync
# --json` "bytes_read", no headers: wire = bytes); "outpost-http" publishes the real registry
# history OLD .. NEW and syncs over HTTP from the harness nginx, counted from its log like
# every other HTTP method.
OUTPOST_BIN = os.environ.get("OUTPOST_BIN", "")


def outpost(*args, cwd=None):
    out, dt = sh([OUTPOST_BIN] + list(args), cwd=cwd)
    return out, dt


def outpost_repo(d, pkg):
    """Fresh keys and repository in d with the prefix npm/ delegated to a publisher key.
    Returns (repo dir, root public key hex, bundle name, publish command prefix)."""
    keys, repo = os.path.join(d, "keys"), os.path.join(d, "repo")
    os.makedirs(keys)
    hexes = {}
    for role, name in (("root", "root"), ("targets", "targets"), ("snapshot", "snapshot"),
                       ("timestamp", "timestamp"), ("publisher", "pub")):
        out, _ = outpost("keygen", "--role", role, "--out", os.path.join(keys, name + ".key"))
        hexes[name] = out.split()[0]
    outpost("repo", "init", repo, "--keys", keys)
    outpost("repo", "delegate", repo, "--keys", keys, "--publisher-pubkey", hexes["pub"],
            "--prefix", "npm")
    bundle = "npm/" + slug(pkg)
    pub = ["publish", repo, "--key", os.path.join(keys, "pub.key"), "--keys", keys,
           "--bundle", bundle, "--json"]
    return repo, hexes["root"], bundle, pub


def need_outpost():
    if not OUTPOST_BIN or not os.access(OUTPOST_BIN, os.X_OK):
        raise RuntimeError("outpost binary not found: set OUTPOST_BIN (run.sh builds it)")


@method("outpost", "outpost", "outpost publish N, N+1 as one bundle; node synced to N runs "
        "`outpost sync` from the repository path; bytes = sync --json bytes_read "
        "(no HTTP, no headers)")
def m_outpost(c):
    need_outpost()
    d = os.path.join(c.W, "outpost")
    repo, root_hex, bundle, pub = outpost_repo(d, c.pkg)
    store = os.path.join(d, "store")
    outpost(*(pub + [c.old_tree]))
    outpost("subscribe", repo, "--root-pubkey", root_hex, "--store", store)
    outpost("sync", "--store", store)                         # the node holds N
    out, prep_s = outpost(*(pub + [c.new_tree]))
    new_pack = json.loads(out).get("pack_bytes", 0)
    out, client_s = outpost("sync", "--json", "--store", store)
    reports = json.loads(out)
    got = sum(r.get("bytes_read", 0) for r in reports)
    upd = [u for r in reports for u in r.get("updated", [])]
    fetched = sum(u.get("chunks_fetched", 0) for u in upd)
    held = sum(u.get("chunks_held", 0) for u in upd)
    tree = os.path.join(d, "tree")
    _, checkout_s = outpost("checkout", bundle, tree, "--store", store)
    sync_s = client_s
    client_s += checkout_s
    # the manifest and chunk index of N+1, for the note (highest version in the repository)
    mdir = os.path.join(repo, "targets", bundle)
    manifests = []
    for f in os.listdir(mdir):
        try:
            manifests.append((json.load(open(os.path.join(mdir, f))), os.path.join(mdir, f)))
        except (ValueError, UnicodeDecodeError, IsADirectoryError):
            pass                                  # patches and other non-JSON files
    manifest, newest = max(manifests, key=lambda m: m[0].get("version", 0))
    note = ("manifest %d B, chunk index %d B, new pack %d B; chunks fetched %d, held %d; "
            "routes %s; sync %.2f s + checkout %.2f s" %
            (fsize(newest), manifest.get("index", {}).get("length", 0), new_pack, fetched, held,
             ",".join(str(u.get("route", "-")) for u in upd), sync_s, checkout_s))
    return dict(down=got, up=0, wire=got, requests=None, conns=None, prep_s=prep_s,
                client_s=client_s, ok=same_tree(tree, c.new_tree), note=note,
                self_bytes=got, route=",".join(str(u.get("route", "")) for u in upd))


def timed_outpost(args, rss_file):
    """outpost ARGS under /usr/bin/time -v; returns (output, seconds, max RSS in KiB)."""
    if os.path.exists(rss_file):
        os.remove(rss_file)
    out, dt = sh(["/usr/bin/time", "-v", "-o", rss_file, OUTPOST_BIN] + list(args))
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(rss_file).read())
    return out, dt, int(m.group(1)) if m else None


def sync_reports(out):
    reports = json.loads(out)
    if not isinstance(reports, list):
        raise ValueError("outpost sync --json did not print a list: %s" % out[:200])
    return reports


@method("outpost-http", "outpost", "repository published with the real history (OLD, every "
        "registry version in between, NEW; one bundle), served by nginx; node subscribed over "
        "HTTP and synced to OLD runs `outpost sync`; bytes/wire/requests from nginx's log")
def m_outpost_http(c):
    need_outpost()
    d = os.path.join(c.W, "ohttp")
    os.makedirs(d)
    repo, root_hex, bundle, pub = outpost_repo(d, c.pkg)
    store = os.path.join(d, "store")
    rel = os.path.relpath(repo, c.base)
    url = c.nginx.url(rel)
    hist = c.history                                   # trees OLD .. NEW in registry order
    outpost(*(pub + [hist[0]]))
    outpost("subscribe", url, "--root-pubkey", root_hex, "--store", store)
    outpost("sync", "--store", store)
    held = os.path.join(d, "held-old")
    outpost("checkout", bundle, held, "--store", store)
    if not same_tree(held, c.old_tree):
        raise RuntimeError("outpost-http: the node's first sync did not reproduce OLD exactly")
    shutil.rmtree(held)
    publish_s = prep_s = 0.0
    out = "{}"
    for t in hist[1:]:                                 # the publisher's history up to NEW
        out, prep_s = outpost(*(pub + [t]))
        publish_s += prep_s
    pub_info = json.loads(out)
    rss_file = os.path.join(d, "time-v.txt")
    c.nginx.mark()
    out, client_s, rss = timed_outpost(["sync", "--json", "--store", store], rss_file)
    h = c.nginx.collect(rel)
    if h["requests"] == 0:
        raise RuntimeError("outpost-http: the sync made no request to nginx under /" + rel)
    reports = sync_reports(out)
    upd = [u for r in reports for u in r.get("updated", [])]
    if not upd:
        raise RuntimeError("outpost-http: sync reported no update from OLD to NEW")
    self_bytes = sum(r.get("bytes_read", 0) for r in reports)
    self_req = sum(r.get("requests", 0) for r in reports) if all(
        "requests" in r for r in reports) else None
    c.nginx.mark()                                     # nothing changed: the no-change check
    out2, _ = outpost("sync", "--json", "--store", store)
    h2 = c.nginx.collect(rel)
    if any(r.get("updated") for r in sync_reports(out2)):
        raise RuntimeError("outpost-http: a second sync with nothing published updated something")
    tree = os.path.join(d, "tree")
    _, checkout_s = outpost("checkout", bundle, tree, "--store", store)
    ok = same_tree(tree, c.new_tree)
    if not ok:
        log("    outpost-http: MISMATCH: the node's checkout of %s is not the NEW tree %s" %
            (bundle, c.new_tree))
    items = ["%s" % ",".join("%s=%s" % (k, v) for k, v in u.items() if k != "bundle")
             for u in upd]
    note = ("%d publishes after OLD (%.1f s, NEW %.2f s, pack %s B); sync %.2f s + checkout "
            "%.2f s; self-reported bytes_read %s, requests %s; updated: %s" %
            (len(hist) - 1, publish_s, prep_s, pub_info.get("pack_bytes", "?"), client_s,
             checkout_s, self_bytes, self_req, "; ".join(items)))
    if h["bad"] or h2["bad"]:
        note += " HTTP status %s" % ",".join(sorted(set(h["bad"] + h2["bad"])))
    if h["stray"] or h2["stray"]:
        note += " %d unrelated log lines" % (h["stray"] + h2["stray"])
    return dict(down=h["body"], up=0, wire=h["sent"] + h["reqlen"], requests=h["requests"],
                conns=h["conns"], prep_s=prep_s, client_s=client_s + checkout_s, ok=ok,
                note=note, max_rss_kb=rss, route=",".join(str(u.get("route", "")) for u in upd),
                self_bytes=self_bytes, self_requests=self_req,
                nochange_wire=h2["sent"] + h2["reqlen"], nochange_requests=h2["requests"])


# ----------------------------------------------------------------- measure

FIELDS = ["package", "kind", "old", "new", "method", "group", "bytes", "down_bytes", "up_bytes",
          "wire_bytes", "requests", "connections", "prep_s", "client_s", "ok", "note",
          "max_rss_kb", "route", "self_bytes", "self_requests", "nochange_wire_bytes",
          "nochange_requests"]


def measure(args, pairs, data):
    base = args.base
    work = os.path.join(base, "work")
    rundir = os.path.join(base, "run")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(rundir, ignore_errors=True)
    os.makedirs(work)
    os.makedirs(rundir)
    for p in (base, work):
        os.chmod(p, 0o755)
    methods = [m for m in METHODS if not args.methods or m["name"] in args.methods.split(",")]
    rsync_zstd = "zstd" in subprocess.run(["rsync", "--version"], stdout=subprocess.PIPE,
                                          text=True).stdout.split("Compress list:")[-1][:200]
    rows, pstats = [], []
    nginx, rsyncd = Nginx(base, rundir), RsyncDaemon(base, rundir)

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        nginx.start()
        rsyncd.start()
        for i, p in enumerate(pairs):
            pkg, old, new = p["pkg"], p["old"], p["new"]
            c = Ctx()
            c.base, c.nginx, c.rsyncd, c.rsync_zstd = base, nginx, rsyncd, rsync_zstd
            c.pkg = pkg
            c.old_tree, c.new_tree = data.tree(pkg, old), data.tree(pkg, new)
            c.old_tar, c.new_tar = data.tar(pkg, old), data.tar(pkg, new)
            c.old_zck, c.new_tgz = data.zck(pkg, old), data.tgz(pkg, new)
            c.history = [data.tree(pkg, v) for v in p.get("history", [])]
            c.W = os.path.join(work, "%s_%s_%s" % (slug(pkg), old, new))
            os.makedirs(c.W)
            st = pair_stats(c.old_tree, c.new_tree)
            st.update(package=pkg, kind=p["kind"], old=old, new=new,
                      tar_old=fsize(c.old_tar), tar_new=fsize(c.new_tar),
                      date_old=data.publish_date(pkg, old), date_new=data.publish_date(pkg, new))
            pstats.append(st)
            log("[%d/%d] %s %s -> %s (%s): %d modified, %d added, %d removed files" %
                (i + 1, len(pairs), pkg, old, new, p["kind"], st["modified"], st["added"],
                 st["removed"]))
            for m in methods:
                row = dict(package=pkg, kind=p["kind"], old=old, new=new, method=m["name"],
                           group=m["group"])
                try:
                    r = m["fn"](c)
                    r["bytes"] = r["down"] + r["up"]
                    r["ok"] = "ok" if r["ok"] else "MISMATCH"
                except (CmdError, OSError, RuntimeError, ValueError) as e:
                    r = dict(ok="FAIL", note=str(e)[:500])
                row.update(bytes=r.get("bytes"), down_bytes=r.get("down"), up_bytes=r.get("up"),
                           wire_bytes=r.get("wire"), requests=r.get("requests"),
                           connections=r.get("conns"),
                           prep_s=None if r.get("prep_s") is None else round(r["prep_s"], 3),
                           client_s=None if r.get("client_s") is None else round(r["client_s"], 3),
                           ok=r["ok"], note=r.get("note", ""), max_rss_kb=r.get("max_rss_kb"),
                           route=r.get("route"), self_bytes=r.get("self_bytes"),
                           self_requests=r.get("self_requests"),
                           nochange_wire_bytes=r.get("nochange_wire"),
                           nochange_requests=r.get("nochange_requests"))
                rows.append(row)
                log("    %-16s %12s B  req=%-5s prep=%-7s client=%-7s %s %s" % (
                    m["name"], row["bytes"], row["requests"], row["prep_s"], row["client_s"],
                    row["ok"], row["note"] if row["ok"] != "ok" else ""))
            if not args.keep:
                shutil.rmtree(c.W)
    finally:
        stop_proc(nginx.proc, "nginx")
        stop_proc(rsyncd.proc, "rsync daemon")
        if getattr(rsyncd, "proxy", None):
            rsyncd.proxy.close()
    return rows, pstats, methods


# ----------------------------------------------------------------- report


def fmt_b(v):
    return "—" if v in (None, "") else "{:,}".format(int(v))


def fmt_s(v):
    return "—" if v in (None, "") else "%.2f" % float(v)


def med(vals):
    vals = [v for v in vals if v not in (None, "")]
    return statistics.median(vals) if vals else None


def tool_versions():
    lines = []
    pk = "rsync zsync casync zchunk xdelta3 bsdiff zstd nginx curl tar npm nodejs"
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Version}\\n"] + pk.split(),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
        lines.append("Debian packages: " + "; ".join(
            l for l in out.splitlines() if len(l.split()) == 2))
    except OSError:
        pass
    for cmd in (["rsync", "--version"], ["zstd", "--version"], ["xdelta3", "-V"],
                ["casync", "--version"], ["zck", "--version"], ["zsync", "-V"], ["nginx", "-v"],
                ["npm", "--version"], ["node", "--version"]):
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            first = p.stdout.strip().splitlines()[0] if p.stdout.strip() else ""
            lines.append("`%s`: %s" % (" ".join(cmd), first.strip()))
        except OSError:
            lines.append("`%s`: not found" % " ".join(cmd))
    return lines


NETWORK_SYNC_GROUPS = ("rsync", "http")   # rsync, zsync, casync, zchunk: the peers of (b)


def targets(rows, pstats, method="outpost-http"):
    """Issue 3's targets for METHOD, on wire bytes (bodies + headers both ways; rsync: the
    whole TCP stream). Returns lines 'target: PASS|FAIL ...'; empty when METHOD did not run."""
    def row(s, name):
        for r in rows:
            if (r["package"], r["old"], r["new"], r["method"]) == (s["package"], s["old"],
                                                                   s["new"], name):
                return r if r["ok"] == "ok" else False
        return None

    if not any(r["method"] == method for r in rows):
        return []
    L = []
    for pkg in sorted({s["package"] for s in pstats}):
        ps = [s for s in pstats if s["package"] == pkg]
        nxt = [s for s in ps if s["kind"] == "next"]
        tag = "%s %s" % (pkg, method)
        pair = lambda s: "%s→%s" % (s["old"], s["new"])
        broken = [pair(s) for s in ps if row(s, method) is False]
        if broken:
            L.append("%s: FAIL — did not reproduce NEW or errored on %s" % (tag, ", ".join(broken)))
        # (a) median over consecutive pairs of outpost ÷ min(zstd-patch-22, bsdiff)
        ratios, strict = [], []
        for s in nxt:
            o = row(s, method)
            lim = [r for r in (row(s, "zstd-patch-22"), row(s, "bsdiff")) if r]
            if o and lim:
                ratios.append(o["wire_bytes"] / min(r["wire_bytes"] for r in lim))
                strict.append(o["wire_bytes"] / min(r["bytes"] for r in lim))
        if ratios and len(ratios) == len(nxt):
            m = statistics.median(ratios)
            L.append("(a) %s: median over %d consecutive pairs of bytes ÷ min(zstd-patch-22, "
                     "bsdiff) = %.3f (target ≤ 1.15): %s  [per pair %s; against the patch "
                     "bodies alone, headers left out of the patch side: median %.3f]" % (
                         tag, len(ratios), m, "PASS" if m <= 1.15 else "FAIL",
                         ", ".join("%.2f" % x for x in ratios), statistics.median(strict)))
        else:
            L.append("(a) %s: FAIL — needs %s, zstd-patch-22 and bsdiff ok on every consecutive "
                     "pair (have %d of %d)" % (tag, method, len(ratios), len(nxt)))
        # (b) >= 5x fewer bytes than the best network sync tool, every consecutive pair
        facs, missing = [], []
        for s in nxt:
            o = row(s, method)
            peers = [r for r in rows if (r["package"], r["old"], r["new"]) ==
                     (s["package"], s["old"], s["new"]) and r["group"] in NETWORK_SYNC_GROUPS
                     and r["ok"] == "ok"]
            if not o or not peers:
                missing.append(pair(s))
                continue
            best = min(peers, key=lambda r: r["wire_bytes"])
            facs.append((best["wire_bytes"] / o["wire_bytes"], pair(s), best["method"]))
        if facs and not missing:
            worst = min(facs)
            L.append("(b) %s: best of rsync/zsync/casync/zchunk ÷ %s, worst consecutive pair "
                     "%.1f× (%s, %s) (target ≥ 5× on every pair): %s  [per pair %s]" % (
                         tag, method, worst[0], worst[1], worst[2],
                         "PASS" if worst[0] >= 5 else "FAIL",
                         ", ".join("%.1f× %s" % (f, m) for f, _, m in facs)))
        else:
            L.append("(b) %s: FAIL — no %s or no network sync peer result on %s" %
                     (tag, method, ", ".join(missing)))
        # (c) never more than the full download + 2 KB, every pair
        over, missing = [], []
        for s in ps:
            o, f = row(s, method), row(s, "tar.zst-19")
            if not o or not f:
                missing.append(pair(s))
            else:
                over.append((o["wire_bytes"] - f["wire_bytes"], pair(s)))
        if over and not missing:
            worst = max(over)
            L.append("(c) %s: most over the full download (tar.zst-19) on any of %d pairs: "
                     "%+d B (%s) (target ≤ +2,048 B): %s" % (
                         tag, len(over), worst[0], worst[1],
                         "PASS" if worst[0] <= 2048 else "FAIL"))
        else:
            L.append("(c) %s: FAIL — no %s or tar.zst-19 result on %s" %
                     (tag, method, ", ".join(missing)))
        # (d) a sync with nothing new costs < 1 KB
        nc = [(row(s, method) or {}).get("nochange_wire_bytes") for s in ps]
        if nc and all(v not in (None, "") for v in nc):
            nreq = [(row(s, method) or {}).get("nochange_requests") for s in ps]
            L.append("(d) %s: no-change sync, largest of %d: %d B in %s request(s) "
                     "(target < 1,024 B): %s" % (tag, len(nc), max(nc), max(nreq),
                                                 "PASS" if max(nc) < 1024 else "FAIL"))
        else:
            L.append("(d) %s: FAIL — no no-change measurement on every pair" % tag)
    return L


def report(rows, pstats, methods, out_md, started, elapsed):
    pkgs = []
    for s in pstats:
        if s["package"] not in pkgs:
            pkgs.append(s["package"])
    names = [m["name"] for m in methods]
    by = {}
    for r in rows:
        by.setdefault((r["package"], r["method"]), []).append(r)

    def good(rs):
        return [r for r in rs if r["ok"] == "ok"]

    def cell(pkg, name, kind, field="bytes", f=fmt_b):
        rs = [r for r in by.get((pkg, name), []) if r["kind"] == kind]
        g = good(rs)
        if not g:
            return "FAIL" if rs else "—"
        v = med([r[field] for r in g])
        s = f(v)
        if kind == "next" and len(g) < len(rs):
            s += " (%d/%d ok)" % (len(g), len(rs))
        return s

    L = []
    L.append("# Delta-sync peer baseline: bytes to update real data trees N → N+1")
    L.append("")
    L.append("Generated by `bench/peers/run.sh` on %s (UTC), run took %.1f min. Machine: %d CPU cores, "
             "%.0f GiB RAM; all traffic over 127.0.0.1 (nginx / rsync daemon)." %
             (started, elapsed / 60, os.cpu_count(),
              os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30))
    L.append("See README.md for what each method does and how bytes are counted. "
             "Raw data: results.csv.")
    L.append("")
    L.append("**bytes** = payload both directions: for HTTP tools the sum of nginx "
             "`$body_bytes_sent` (client→server request bodies are empty); for rsync every byte "
             "of the TCP stream both ways, counted by a relay between client and daemon (whole "
             "protocol: greeting, file list, checksums, block checksums sent up, data). "
             "Single-file methods are fetched with one GET. Every result is verified "
             "byte-for-byte against the real new version.")
    L.append("")
    L.append("## Median bytes (6 consecutive pairs) and skip-ahead pairs")
    L.append("")
    hdr = ["method"]
    for pkg in pkgs:
        hdr += ["%s N→N+1 (median)" % pkg, "N→N+10", "N→N+50"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for n in names:
        cells = [n]
        for pkg in pkgs:
            cells += [cell(pkg, n, k) for k in ("next", "skip10", "skip50")]
        L.append("| " + " | ".join(cells) + " |")
    L.append("")

    # relative to full
    L.append("### Same, as % of the full download (tar.zst-19) of the same pair")
    L.append("")
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))

    def rel_cell(pkg, n, kind):
        vals = []
        for r in good([r for r in by.get((pkg, n), []) if r["kind"] == kind]):
            f = [x for x in by.get((pkg, "tar.zst-19"), []) if x["kind"] == kind and
                 x["old"] == r["old"] and x["new"] == r["new"] and x["ok"] == "ok"]
            if f and f[0]["bytes"]:
                vals.append(100.0 * r["bytes"] / f[0]["bytes"])
        v = med(vals)
        return "—" if v is None else ("%.2f%%" % v if v < 10 else "%.1f%%" % v)
    for n in names:
        cells = [n]
        for pkg in pkgs:
            cells += [rel_cell(pkg, n, k) for k in ("next", "skip10", "skip50")]
        L.append("| " + " | ".join(cells) + " |")
    L.append("")

    L.append("## Wire bytes (bodies + request and response headers, both directions) and "
             "requests")
    L.append("")
    L.append("HTTP methods: sum over the client's requests of nginx `$bytes_sent` (status line, "
             "response headers, body) + `$request_length` (request line, headers); rsync: every "
             "byte of the TCP stream both ways. Medians over the consecutive pairs.")
    L.append("")
    hdr3 = ["method"]
    for pkg in pkgs:
        hdr3 += ["%s wire N→N+1" % pkg, "req", "wire N→N+10", "req", "wire N→N+50", "req"]
    L.append("| " + " | ".join(hdr3) + " |")
    L.append("|" + "---|" * len(hdr3))
    for n in names:
        cells = [n]
        for pkg in pkgs:
            for k in ("next", "skip10", "skip50"):
                cells += [cell(pkg, n, k, "wire_bytes"), cell(pkg, n, k, "requests")]
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    summary = targets(rows, pstats)
    if summary:
        L.append("### Targets (issue 3), on wire bytes")
        L.append("")
        for l in summary:
            L.append("- " + l)
        L.append("")
    orows = [r for r in rows if r["method"] == "outpost-http"]
    if orows:
        L.append("### outpost-http per pair")
        L.append("")
        L.append("| pair | kind | ok | wire bytes | body bytes | requests | conns | outpost's "
                 "bytes_read | outpost's requests | route | no-change wire | no-change req | "
                 "sync max RSS | sync s |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in orows:
            L.append("| %s→%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
                     % (r["old"], r["new"], r["kind"], r["ok"], fmt_b(r["wire_bytes"]),
                        fmt_b(r["bytes"]), fmt_b(r["requests"]), fmt_b(r["connections"]),
                        fmt_b(r["self_bytes"]), fmt_b(r["self_requests"]), r["route"] or "—",
                        fmt_b(r["nochange_wire_bytes"]), fmt_b(r["nochange_requests"]),
                        "—" if not r["max_rss_kb"] else "%.1f MB" % (r["max_rss_kb"] / 1024),
                        fmt_s(r["client_s"])))
        L.append("")
    L.append("## Requests, connections, all bytes incl. HTTP headers, time (medians of the 6 "
             "consecutive pairs)")
    L.append("")
    L.append("prep = server-side work per release (compress / make patch / make index or chunk "
             "store); client = fetch + apply/extract on the client (single run, 2-core VM, "
             "loopback network, so times are CPU cost, not network time).")
    L.append("")
    hdr2 = ["method"]
    for pkg in pkgs:
        hdr2 += ["%s req" % pkg, "conns", "all bytes", "prep s", "client s"]
    L.append("| " + " | ".join(hdr2) + " |")
    L.append("|" + "---|" * len(hdr2))
    for n in names:
        cells = [n]
        for pkg in pkgs:
            cells += [cell(pkg, n, "next", "requests"), cell(pkg, n, "next", "connections"),
                      cell(pkg, n, "next", "wire_bytes"), cell(pkg, n, "next", "prep_s", fmt_s),
                      cell(pkg, n, "next", "client_s", fmt_s)]
        L.append("| " + " | ".join(cells) + " |")
    L.append("")

    L.append("## Best delta method per pair")
    L.append("")
    L.append("| package | pair | kind | best | bytes | full tar.zst-19 | full / best | runner-up "
             "(other tool) | best non-patch (network sync) tool |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for s in pstats:
        rs = [r for r in rows if r["package"] == s["package"] and r["old"] == s["old"] and
              r["new"] == s["new"] and r["ok"] == "ok"]
        deltas = sorted([r for r in rs if r["group"] != "full"], key=lambda r: r["bytes"])
        full = [r for r in rs if r["method"] == "tar.zst-19"]
        if not deltas:
            continue
        b = deltas[0]
        fam = lambda r: r["method"].split("-")[0]
        ru = [r for r in deltas[1:] if fam(r) != fam(b)]
        net = [r for r in deltas if r["group"] in ("rsync", "http")]
        fb = full[0]["bytes"] if full else None
        L.append("| %s | %s → %s | %s | %s | %s | %s | %s | %s | %s |" % (
            s["package"], s["old"], s["new"], s["kind"], b["method"], fmt_b(b["bytes"]),
            fmt_b(fb), ("%.1f×" % (fb / b["bytes"])) if fb and b["bytes"] else "—",
            ("%s %s (%.2f×)" % (ru[0]["method"], fmt_b(ru[0]["bytes"]),
                                ru[0]["bytes"] / b["bytes"])) if ru else "—",
            ("%s %s (%.1f×)" % (net[0]["method"], fmt_b(net[0]["bytes"]),
                                net[0]["bytes"] / b["bytes"])) if net else "—"))
    L.append("")

    L.append("## Version pairs (exact) and how much changed")
    L.append("")
    L.append("| package | old (published) | new (published) | kind | files old→new | modified | "
             "added | removed | bytes of changed files | tar old | tar new |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in pstats:
        L.append("| %s | %s (%s) | %s (%s) | %s | %d→%d | %d | %d | %d | %s | %s | %s |" % (
            s["package"], s["old"], s["date_old"], s["new"], s["date_new"], s["kind"],
            s["files_old"], s["files_new"], s["modified"], s["added"], s["removed"],
            fmt_b(s["changed_file_bytes"]), fmt_b(s["tar_old"]), fmt_b(s["tar_new"])))
    L.append("")

    L.append("## Per-pair bytes")
    for pkg in pkgs:
        ps = [s for s in pstats if s["package"] == pkg]
        L.append("")
        L.append("### %s" % pkg)
        L.append("")
        L.append("| method | " + " | ".join("%s→%s%s" % (
            s["old"], s["new"], "" if s["kind"] == "next" else " (%s)" % s["kind"]) for s in ps)
            + " |")
        L.append("|---|" + "---|" * len(ps))
        for n in names:
            cells = [n]
            for s in ps:
                r = [r for r in by.get((pkg, n), []) if r["old"] == s["old"] and
                     r["new"] == s["new"]]
                cells.append("—" if not r else (fmt_b(r[0]["bytes"]) if r[0]["ok"] == "ok"
                                                else r[0]["ok"]))
            L.append("| " + " | ".join(cells) + " |")
    L.append("")

    bad = [r for r in rows if r["ok"] != "ok"]
    L.append("## Failures")
    L.append("")
    if not bad:
        L.append("None: every method produced the exact new version for every pair.")
    for r in bad:
        L.append("- %s %s → %s, %s: %s — %s" % (r["package"], r["old"], r["new"], r["method"],
                                               r["ok"], r["note"]))
    L.append("")
    L.append("## Methods")
    L.append("")
    for m in methods:
        L.append("- **%s** (%s): %s" % (m["name"], m["group"], m["what"]))
    L.append("")
    L.append("## Tool versions")
    L.append("")
    for l in tool_versions():
        L.append("- " + l)
    L.append("")
    with open(out_md, "w") as f:
        f.write("\n".join(L))


# ----------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default=os.environ.get("PEERS_BASE", "/tmp/peers-bench"),
                    help="scratch folder: cache/ (data), work/, run/, out/ (default %(default)s)")
    ap.add_argument("--pairs", default=os.path.join(HERE, "pairs.conf"))
    ap.add_argument("--only", help="only pairs of this package")
    ap.add_argument("--limit", type=int, help="only the first N pairs (after --only)")
    ap.add_argument("--methods", help="comma-separated subset of methods")
    ap.add_argument("--keep", action="store_true", help="keep per-pair work folders")
    ap.add_argument("--results-dir", default=None,
                    help="also copy results.csv and RESULTS.md here")
    args = ap.parse_args()
    if args.methods:
        unknown = sorted(set(args.methods.split(",")) - {m["name"] for m in METHODS})
        if unknown:
            ap.error("unknown method(s) %s; known: %s" % (
                ", ".join(unknown), ", ".join(m["name"] for m in METHODS)))

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    t_start = time.monotonic()
    pairs = read_pairs(args.pairs)
    if args.only:
        pairs = [p for p in pairs if p["pkg"] == args.only]
    if args.limit:
        pairs = pairs[:args.limit]
    base = os.path.abspath(args.base)
    args.base = base
    data = Data(os.path.join(base, "cache"))
    # outpost-http publishes every registry version between OLD and NEW (trees only)
    extra = set()
    if not args.methods or "outpost-http" in args.methods.split(","):
        for p in pairs:
            p["history"] = data.history(p["pkg"], p["old"], p["new"])
            extra |= {(p["pkg"], v) for v in p["history"]}
    data.fetch(pairs, extra)
    log("preparing trees, tars and client-side .zck files")
    data.prepare(pairs, extra)
    rows, pstats, methods = measure(args, pairs, data)
    out = os.path.join(base, "out")
    os.makedirs(out, exist_ok=True)
    csv_path = os.path.join(out, "results.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in FIELDS})
    md = os.path.join(out, "RESULTS.md")
    report(rows, pstats, methods, md, started, time.monotonic() - t_start)
    log("wrote %s and %s" % (csv_path, md))
    if args.results_dir:
        os.makedirs(args.results_dir, exist_ok=True)
        shutil.copy(csv_path, os.path.join(args.results_dir, "results.csv"))
        shutil.copy(md, os.path.join(args.results_dir, "RESULTS.md"))
        log("copied results to %s" % args.results_dir)
    for line in targets(rows, pstats):
        log(line)
    fails = [r for r in rows if r["ok"] != "ok"]
    log("done: %d measurements, %d not ok" % (len(rows), len(fails)))
    if fails:
        for r in fails:
            log("NOT OK: %s %s -> %s %s: %s %s" % (r["package"], r["old"], r["new"], r["method"],
                                                  r["ok"], r["note"]))
        sys.exit(1)


if __name__ == "__main__":
    main()
