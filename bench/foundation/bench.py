#!/usr/bin/env python3
"""outpost foundation benchmark: chunking, publish and sync throughput, peak memory and
storage size, against tar+zstd and casync, on this machine.

Driven by run.sh (which builds outpost and installs casync/zstd/npm when missing).
Standard library only. Data (generated tree, npm tarballs, unpacked trees, tars) lives in
--cache, outside the repository; work files in --work; results in --out.

Data sets
  tree200   bench/foundation/gen_tree.py: 10,000 files, 200,000,000 bytes, deterministic,
            mixed sizes (5 files of 8-48 MB, the rest log-normal around 4 KB) and content
            (statistics rows, random bytes, half and half, exact copies).
  caniuse   20 consecutive releases of the npm package caniuse-lite ending at 1.0.30001826
            (the last one before the data files' re-encoding in 1.0.30001827), unpacked.

Measurements (times: median of --runs runs; wall and CPU = user + system, from
/usr/bin/time -v, which also gives "Maximum resident set size")
  chunking  outpost_chunk_bench (in memory, one core), median of 5 runs
  tree200   outpost publish of the whole tree as one bundle into a new repository; outpost
            sync of it from the path into a new store; casync make of the same tree into a new
            store (default 64 KiB average chunks, default zstd compression)
  caniuse   the 20 releases published in order as versions 1..20 of one bundle into one
            repository, the node syncing after each; casync make of each release in order into
            one shared store; tar + zstd -19 --long=27 of each release (sum) and of the 20
            tars concatenated (best case for a full-archive scheme)
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = 499162500  # 1985-10-26T08:15:00Z, npm's fixed mtime (as bench/peers uses)
CANIUSE = ["1.0.300018%s" % v for v in (
    "00", "02", "03", "05", "06", "07", "09", "10", "12", "13", "14", "15", "16", "17", "18",
    "19", "20", "22", "23", "26")]
TREE_FILES, TREE_BYTES, TREE_SEED = 10_000, 200_000_000, 1


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def sh(cmd, cwd=None, env=None, stdout=subprocess.PIPE):
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=stdout, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError("rc=%d: %s\n%s" % (p.returncode, " ".join(cmd),
                                               p.stderr.decode(errors="replace")[-2000:]))
    return p.stdout.decode(errors="replace") if p.stdout is not None else ""


def _child_of(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = f.read().split()
        return int(kids[0]) if kids else None
    except OSError:
        return None


def _rss_split(pid):
    """(RssAnon, RssFile + RssShmem) in kB of a live process, or None."""
    try:
        anon = fil = 0
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
                elif line.startswith(("RssFile:", "RssShmem:")):
                    fil += int(line.split()[1])
        return anon, fil
    except (OSError, ValueError):
        return None


def timed(cmd, cwd=None):
    """Runs cmd under /usr/bin/time -v. Returns dict(wall, cpu, rss_kb, anon_kb, file_kb, out):
    rss_kb is time's "Maximum resident set size"; anon_kb / file_kb are the peaks of RssAnon
    (heap, stacks) and RssFile (mapped files: the LMDB map, the binary) sampled every 10 ms from
    /proc, to tell memory the process owns from file pages the kernel can drop at any time."""
    tf = os.path.join(ARGS.work, ".time.txt")
    full = ["/usr/bin/time", "-v", "-o", tf] + cmd
    t = time.monotonic()
    p = subprocess.Popen(full, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chunks = {"out": [], "err": []}

    def drain(stream, key):
        for b in iter(lambda: stream.read(65536), b""):
            chunks[key].append(b)
    th = [threading.Thread(target=drain, args=(p.stdout, "out")),
          threading.Thread(target=drain, args=(p.stderr, "err"))]
    for x in th:
        x.start()
    anon = fil = 0
    child = None
    while p.poll() is None:
        child = child or _child_of(p.pid)
        if child:
            r = _rss_split(child)
            if r:
                anon, fil = max(anon, r[0]), max(fil, r[1])
        time.sleep(0.01)
    wall = time.monotonic() - t
    for x in th:
        x.join()
    out = b"".join(chunks["out"]).decode(errors="replace")
    err = b"".join(chunks["err"]).decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError("rc=%d: %s\n%s" % (p.returncode, " ".join(cmd), err[-2000:]))
    tv = open(tf).read()

    def num(label):
        m = re.search(re.escape(label) + r":\s*([\d.]+)", tv)
        return float(m.group(1)) if m else 0.0
    return dict(wall=wall, cpu=num("User time (seconds)") + num("System time (seconds)"),
                rss_kb=int(num("Maximum resident set size (kbytes)")), anon_kb=anon,
                file_kb=fil, out=out)


def disk_usage(path):
    """(bytes on disk as du counts them, apparent bytes) of a file or folder."""
    if os.path.isfile(path):
        st = os.stat(path)
        return st.st_blocks * 512, st.st_size
    used = apparent = 0
    for d, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(d, f))
            used += st.st_blocks * 512
            apparent += st.st_size
    return used, apparent


def tree_bytes(path):
    return disk_usage(path)[1]


def med(v):
    return statistics.median(v) if v else None


# ----------------------------------------------------------------- data


def prepare_tree200(cache):
    tree = os.path.join(cache, "tree-%d-%d-s%d" % (TREE_FILES, TREE_BYTES, TREE_SEED))
    if not os.path.isdir(tree):
        log("generating", tree)
        sh([sys.executable, os.path.join(HERE, "gen_tree.py"), tree, "--files", str(TREE_FILES),
            "--bytes", str(TREE_BYTES), "--seed", str(TREE_SEED)])
    return tree


def normalize_tree(root):
    for d, dirs, files in os.walk(root, topdown=False):
        for f in files:
            p = os.path.join(d, f)
            os.chmod(p, 0o755 if os.lstat(p).st_mode & 0o111 else 0o644)
            os.utime(p, (T0, T0))
        for x in dirs:
            os.chmod(os.path.join(d, x), 0o755)
            os.utime(os.path.join(d, x), (T0, T0))
    os.utime(root, (T0, T0))


def prepare_caniuse(cache):
    """Returns [(version, tree, tar)] in release order."""
    tgz_dir = os.path.join(cache, "npm")
    os.makedirs(tgz_dir, exist_ok=True)
    out = []
    for v in CANIUSE:
        tgz = os.path.join(tgz_dir, "caniuse-lite-%s.tgz" % v)
        if not os.path.exists(tgz):
            log("npm pack caniuse-lite@%s" % v)
            sh(["npm", "pack", "--silent", "caniuse-lite@%s" % v], cwd=tgz_dir)
        tree = os.path.join(cache, "caniuse", "tree", v)
        if not os.path.isdir(tree):
            tmp = tree + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            sh(["tar", "-xzf", tgz, "-C", tmp, "--strip-components=1", "--no-same-owner"])
            normalize_tree(tmp)
            os.rename(tmp, tree)
        tar = os.path.join(cache, "caniuse", "tar", v + ".tar")
        if not os.path.exists(tar):
            os.makedirs(os.path.dirname(tar), exist_ok=True)
            sh(["tar", "--sort=name", "--format=gnu", "--mtime=@%d" % T0, "--owner=0",
                "--group=0", "--numeric-owner", "-C", tree, "-cf", tar + ".tmp", "."],
               env=dict(os.environ, LC_ALL="C"))
            os.rename(tar + ".tmp", tar)
        out.append((v, tree, tar))
    return out


# ----------------------------------------------------------------- outpost


class Outpost:
    """A fresh publisher (keys, repository delegating PREFIX) and node store under DIR."""

    def __init__(self, binary, d, prefix):
        self.bin, self.d = binary, d
        shutil.rmtree(d, ignore_errors=True)
        self.keys, self.repo, self.store = (os.path.join(d, x) for x in ("keys", "repo", "store"))
        os.makedirs(self.keys)
        hexes = {}
        for role, name in (("root", "root"), ("targets", "targets"), ("snapshot", "snapshot"),
                           ("timestamp", "timestamp"), ("publisher", "pub")):
            out = sh([binary, "keygen", "--role", role, "--out",
                      os.path.join(self.keys, name + ".key")])
            hexes[name] = out.split()[0]
        self.root_hex = hexes["root"]
        sh([binary, "repo", "init", self.repo, "--keys", self.keys])
        sh([binary, "repo", "delegate", self.repo, "--keys", self.keys, "--publisher-pubkey",
            hexes["pub"], "--prefix", prefix])
        self.subscribed = False

    def publish(self, bundle, src):
        r = timed([self.bin, "publish", self.repo, "--key", os.path.join(self.keys, "pub.key"),
                   "--keys", self.keys, "--bundle", bundle, "--json", src])
        r["json"] = json.loads(r["out"])
        return r

    def sync(self):
        if not self.subscribed:
            sh([self.bin, "subscribe", self.repo, "--root-pubkey", self.root_hex, "--store",
                self.store])
            self.subscribed = True
        r = timed([self.bin, "sync", "--json", "--store", self.store])
        r["json"] = json.loads(r["out"])
        r["bytes_read"] = sum(x.get("bytes_read", 0) for x in r["json"])
        return r


def bench_chunking(chunk_bin, tree200, caniuse_root):
    log("chunking throughput (outpost_chunk_bench, 5 runs each)")
    rows = []
    for label, args in (("synthetic 256 MiB (half random, half text)", ["--synthetic-mb", "256"]),
                        ("tree200 (generated)", [tree200]),
                        ("caniuse-lite, 20 releases", [caniuse_root])):
        if not args[-1]:
            continue
        out = sh([chunk_bin, "--runs", "5"] + args)
        for line in out.splitlines():
            if line.startswith("{"):
                rows.append(json.loads(line))
                rows[-1]["data"] = label
    return rows


def bench_tree200_outpost(binary, tree, runs):
    res = []
    for i in range(runs):
        log("tree200 outpost run %d/%d" % (i + 1, runs))
        o = Outpost(binary, os.path.join(ARGS.work, "tree200-outpost"), "bench")
        pub = o.publish("bench/tree200", tree)
        syn = o.sync()
        res.append(dict(pub=pub, sync=syn, pack_bytes=pub["json"].get("pack_bytes"),
                        store=disk_usage(o.store), packs=disk_usage(os.path.join(o.repo, "packs")),
                        repo=disk_usage(o.repo)))
    return res


def bench_tree200_casync(tree, runs):
    res = []
    for i in range(runs):
        log("tree200 casync run %d/%d" % (i + 1, runs))
        d = os.path.join(ARGS.work, "tree200-casync")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        r = timed(["casync", "make", "--store=" + os.path.join(d, "store.castr"),
                   os.path.join(d, "tree.caidx"), tree])
        r["store"] = disk_usage(os.path.join(d, "store.castr"))
        r["index"] = disk_usage(os.path.join(d, "tree.caidx"))
        res.append(r)
    return res


def bench_caniuse_outpost(binary, versions, runs):
    res = []
    for i in range(runs):
        log("caniuse outpost run %d/%d (20 publishes + 20 syncs)" % (i + 1, runs))
        o = Outpost(binary, os.path.join(ARGS.work, "caniuse-outpost"), "npm")
        steps = []
        for v, tree, _ in versions:
            pub = o.publish("npm/caniuse-lite", tree)
            syn = o.sync()
            steps.append(dict(version=v, bytes=tree_bytes(tree), pub=pub, sync=syn,
                              pack_bytes=pub["json"].get("pack_bytes", 0),
                              bytes_read=syn["bytes_read"]))
        res.append(dict(steps=steps, store=disk_usage(o.store),
                        packs=disk_usage(os.path.join(o.repo, "packs")),
                        repo=disk_usage(o.repo)))
    return res


def bench_caniuse_casync(versions, runs):
    res = []
    for i in range(runs):
        log("caniuse casync run %d/%d (20 makes, one store)" % (i + 1, runs))
        d = os.path.join(ARGS.work, "caniuse-casync")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        steps = []
        for v, tree, _ in versions:
            steps.append(timed(["casync", "make", "--store=" + os.path.join(d, "store.castr"),
                                os.path.join(d, v + ".caidx"), tree]))
        idx = sum(disk_usage(os.path.join(d, v + ".caidx"))[1] for v, _, _ in versions)
        res.append(dict(steps=steps, store=disk_usage(os.path.join(d, "store.castr")),
                        index_bytes=idx))
    return res


def bench_caniuse_zstd(versions):
    log("caniuse tar | zstd -19 --long=27 (each release, and the 20 tars concatenated)")
    d = os.path.join(ARGS.work, "caniuse-zstd")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    each, each_cpu, tars = 0, 0.0, 0
    for v, _, tar in versions:
        out = os.path.join(d, v + ".tar.zst")
        r = timed(["zstd", "-q", "-f", "-T1", "-19", "--long=27", tar, "-o", out])
        each += os.path.getsize(out)
        each_cpu += r["cpu"]
        tars += os.path.getsize(tar)
    cat = os.path.join(d, "all.tar")
    with open(cat, "wb") as f:
        for _, _, tar in versions:
            with open(tar, "rb") as t:
                shutil.copyfileobj(t, f)
    r = timed(["zstd", "-q", "-f", "-T1", "-19", "--long=27", cat, "-o", cat + ".zst"])
    return dict(tar_bytes=tars, each_bytes=each, each_cpu=each_cpu,
                concat_bytes=os.path.getsize(cat + ".zst"), concat_cpu=r["cpu"],
                concat_rss_kb=r["rss_kb"])


# ----------------------------------------------------------------- report


def mb(x):
    return x / 1e6


def fmt_int(x):
    return "{:,}".format(int(x))


def report(R):
    L = []
    m = R["machine"]
    L.append("Machine: %s; %d cores (%s), %.0f GiB RAM; %s; load average at start %s. "
             "Date %s UTC. %s (Release build, commit %s%s)." % (
                 m["cpu"], m["cores"], m["arch"], m["ram_gib"], m["os"], m["load"], R["date"],
                 m["outpost_version"], m["commit"], ", uncommitted changes" if m["dirty"] else ""))
    L.append("")
    L.append("### Chunking throughput, one core, in memory (FastCDC 2/8/64 KiB)")
    L.append("")
    L.append("| data | files | MB | mode | chunks | avg chunk B | MB/s median of 5 | min | max |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for c in R["chunking"]:
        name = c["data"]
        L.append("| %s | %s | %.1f | %s | %s | %s | **%.0f** | %.0f | %.0f |" % (
            name, fmt_int(c["files"]), mb(c["bytes"]), c["mode"], fmt_int(c["chunks"]),
            fmt_int(c["avg_chunk"]), c["mb_s_median"], c["mb_s_min"], c["mb_s_max"]))
    L.append("")

    t = R.get("tree200_outpost")
    if t:
        size = R["tree200_bytes"]
        L.append("### Generated tree: %s files, %s bytes (median of %d runs)" % (
            fmt_int(TREE_FILES), fmt_int(size), len(t)))
        L.append("")
        L.append("MB/s = content bytes / time. CPU = user + system. RSS = peak resident set "
                 "(`/usr/bin/time -v`).")
        L.append("")
        L.append("| operation | wall s | MB/s (wall) | CPU s | MB/s (CPU) | peak RSS MB | "
                 "of which anon / file-backed MB (sampled) |")
        L.append("|---|---|---|---|---|---|---|")

        def row(name, rs):
            w = med([r["wall"] for r in rs])
            c = med([r["cpu"] for r in rs])
            rss = max(r["rss_kb"] for r in rs) / 1024
            L.append("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f / %.1f |" % (
                name, w, mb(size) / w, c, mb(size) / c, rss,
                max(r.get("anon_kb", 0) for r in rs) / 1024,
                max(r.get("file_kb", 0) for r in rs) / 1024))
        row("outpost publish (zstd level 12)", [r["pub"] for r in t])
        row("outpost sync (from path)", [r["sync"] for r in t])
        if R.get("tree200_casync"):
            row("casync make (64 KiB avg chunks, zstd)", R["tree200_casync"])
        L.append("")
        last = t[-1]
        L.append("| storage | bytes on disk (du) | apparent bytes | vs content |")
        L.append("|---|---|---|---|")
        L.append("| content | — | %s | 1.000 |" % fmt_int(size))
        L.append("| outpost repository packs/ | %s | %s | %.3f |" % (
            fmt_int(last["packs"][0]), fmt_int(last["packs"][1]), last["packs"][1] / size))
        L.append("| outpost repository, everything | %s | %s | %.3f |" % (
            fmt_int(last["repo"][0]), fmt_int(last["repo"][1]), last["repo"][1] / size))
        L.append("| outpost node store (LMDB) | %s | %s | %.3f |" % (
            fmt_int(last["store"][0]), fmt_int(last["store"][1]), last["store"][0] / size))
        if R.get("tree200_casync"):
            c = R["tree200_casync"][-1]
            L.append("| casync chunk store (+ .caidx %s B) | %s | %s | %.3f |" % (
                fmt_int(c["index"][1]), fmt_int(c["store"][0]), fmt_int(c["store"][1]),
                c["store"][1] / size))
        L.append("")

    cu = R.get("caniuse_outpost")
    if cu:
        vs = R["caniuse_versions"]
        n = len(vs)
        content = sum(s["bytes"] for s in cu[0]["steps"])
        L.append("### caniuse-lite, %d consecutive releases %s … %s (%s content bytes in all; "
                 "median of %d runs)" % (n, vs[0], vs[-1], fmt_int(content), len(cu)))
        L.append("")
        L.append("Per release: outpost publishes it as the next version of `npm/caniuse-lite` "
                 "and the node syncs; casync makes an index of it into one shared store.")
        L.append("")
        L.append("| operation | total wall s (20 releases) | median wall s per release | "
                 "MB/s (wall) | total CPU s | MB/s (CPU) | peak RSS MB (max of all) | "
                 "anon / file-backed MB (sampled) |")
        L.append("|---|---|---|---|---|---|---|---|")

        def row2(name, key, runs):
            tot_w = med([sum(s[key]["wall"] if key else s["wall"] for s in r) for r in runs])
            tot_c = med([sum(s[key]["cpu"] if key else s["cpu"] for s in r) for r in runs])
            per = med([s[key]["wall"] if key else s["wall"] for r in runs for s in r])
            rss = max((s[key] if key else s)["rss_kb"] for r in runs for s in r) / 1024
            anon = max((s[key] if key else s).get("anon_kb", 0) for r in runs for s in r) / 1024
            fil = max((s[key] if key else s).get("file_kb", 0) for r in runs for s in r) / 1024
            L.append("| %s | %.2f | %.3f | %.1f | %.2f | %.1f | %.1f | %.1f / %.1f |" % (
                name, tot_w, per, mb(content) / tot_w, tot_c, mb(content) / tot_c, rss, anon,
                fil))
        row2("outpost publish", "pub", [r["steps"] for r in cu])
        row2("outpost sync (from path)", "sync", [r["steps"] for r in cu])
        if R.get("caniuse_casync"):
            row2("casync make", None, [r["steps"] for r in R["caniuse_casync"]])
        L.append("")
        z = R["caniuse_zstd"]
        last = cu[-1]
        best = z["concat_bytes"]
        L.append("| storage for all %d releases | bytes on disk (du) | apparent bytes | "
                 "vs best tar.zst |" % n)
        L.append("|---|---|---|---|")
        L.append("| unpacked content (sum of releases) | — | %s | %.1f |" % (
            fmt_int(content), content / best))
        L.append("| tars (sum) | — | %s | %.1f |" % (fmt_int(z["tar_bytes"]),
                                                     z["tar_bytes"] / best))
        L.append("| each tar, `zstd -19 --long=27`, sum | — | %s | %.2f |" % (
            fmt_int(z["each_bytes"]), z["each_bytes"] / best))
        L.append("| all 20 tars concatenated, one `zstd -19 --long=27` (best case) | — | %s | "
                 "1.00 |" % fmt_int(best))
        L.append("| outpost repository packs/ | %s | %s | %.2f |" % (
            fmt_int(last["packs"][0]), fmt_int(last["packs"][1]), last["packs"][1] / best))
        L.append("| outpost repository, everything (metadata, manifests, indexes, packs) | %s | "
                 "%s | %.2f |" % (fmt_int(last["repo"][0]), fmt_int(last["repo"][1]),
                                  last["repo"][1] / best))
        L.append("| outpost node store (LMDB data.mdb + lock.mdb) | %s | %s | %.2f |" % (
            fmt_int(last["store"][0]), fmt_int(last["store"][1]), last["store"][0] / best))
        if R.get("caniuse_casync"):
            c = R["caniuse_casync"][-1]
            L.append("| casync chunk store (+ 20 .caidx, %s B) | %s | %s | %.2f |" % (
                fmt_int(c["index_bytes"]), fmt_int(c["store"][0]), fmt_int(c["store"][1]),
                c["store"][1] / best))
        L.append("")
        L.append("zstd CPU: %.1f s for the 20 tars one by one, %.1f s for the concatenation "
                 "(single-threaded, peak RSS %.0f MB)." % (
                     z["each_cpu"], z["concat_cpu"], z["concat_rss_kb"] / 1024))
        L.append("")
        steps = last["steps"]
        L.append("Per-release detail (last run): pack bytes written by publish, bytes the node "
                 "read from the repository in sync.")
        L.append("")
        L.append("| release | content bytes | new pack bytes | sync bytes_read | publish s | "
                 "sync s |")
        L.append("|---|---|---|---|---|---|")
        for s in steps:
            L.append("| %s | %s | %s | %s | %.3f | %.3f |" % (
                s["version"], fmt_int(s["bytes"]), fmt_int(s["pack_bytes"]),
                fmt_int(s["bytes_read"]), s["pub"]["wall"], s["sync"]["wall"]))
        upd = [s["bytes_read"] for s in steps[1:]]
        L.append("")
        L.append("Median bytes_read per update (releases 2..%d): %s; median new pack bytes: %s." %
                 (n, fmt_int(med(upd)), fmt_int(med([s["pack_bytes"] for s in steps[1:]]))))
        L.append("")
    return "\n".join(L)


def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    osname = ""
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    repo = os.path.dirname(os.path.dirname(HERE))

    def git(*a):
        try:
            return subprocess.run(["git", "-C", repo] + list(a), stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True).stdout.strip()
        except OSError:
            return ""
    ver = ""
    try:
        ver = sh([ARGS.outpost, "--version"]).strip()
    except RuntimeError:
        pass
    return dict(cpu=cpu, cores=os.cpu_count(), arch=platform.machine(),
                ram_gib=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
                os=osname, load="%.1f" % os.getloadavg()[0], outpost_version=ver,
                commit=git("rev-parse", "--short", "HEAD"), dirty=bool(git("status", "--porcelain")))


ARGS = None


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outpost", required=True, help="the outpost binary")
    ap.add_argument("--chunk-bench", required=True, help="the outpost_chunk_bench binary")
    ap.add_argument("--base", default="/tmp/outpost-bench", help="scratch: cache/ work/ out/")
    ap.add_argument("--cache", default=None, help="data cache (default BASE/cache)")
    ap.add_argument("--runs", type=int, default=3,
                    help="runs of each publish/sync/casync measurement (default 3)")
    ap.add_argument("--skip", default="", help="comma list of: chunking,tree200,caniuse,casync")
    ARGS = ap.parse_args()
    ARGS.base = os.path.abspath(ARGS.base)
    ARGS.cache = os.path.abspath(ARGS.cache or os.path.join(ARGS.base, "cache"))
    ARGS.work = os.path.join(ARGS.base, "work")
    out_dir = os.path.join(ARGS.base, "out")
    for d in (ARGS.cache, ARGS.work, out_dir):
        os.makedirs(d, exist_ok=True)
    skip = set(x for x in ARGS.skip.split(",") if x)

    R = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
             machine=machine(), runs=ARGS.runs)
    tree = prepare_tree200(ARGS.cache) if "tree200" not in skip else None
    versions = prepare_caniuse(ARGS.cache) if "caniuse" not in skip else []
    R["caniuse_versions"] = [v for v, _, _ in versions]
    if tree:
        R["tree200_bytes"] = tree_bytes(tree)
    if "chunking" not in skip:
        R["chunking"] = bench_chunking(ARGS.chunk_bench, tree or "",
                                       os.path.join(ARGS.cache, "caniuse", "tree")
                                       if versions else "")
    else:
        R["chunking"] = []
    if tree:
        R["tree200_outpost"] = bench_tree200_outpost(ARGS.outpost, tree, ARGS.runs)
        if "casync" not in skip:
            R["tree200_casync"] = bench_tree200_casync(tree, ARGS.runs)
    if versions:
        R["caniuse_outpost"] = bench_caniuse_outpost(ARGS.outpost, versions, ARGS.runs)
        if "casync" not in skip:
            R["caniuse_casync"] = bench_caniuse_casync(versions, ARGS.runs)
        R["caniuse_zstd"] = bench_caniuse_zstd(versions)

    def strip(o):  # drop captured stdout from the JSON dump
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k != "out"}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(strip(R), f, indent=1)
    md = report(R)
    with open(os.path.join(out_dir, "RESULTS.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    log("wrote %s and %s" % (os.path.join(out_dir, "results.json"),
                             os.path.join(out_dir, "RESULTS.md")))


if __name__ == "__main__":
    main()
