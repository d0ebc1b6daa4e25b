#!/usr/bin/env python3
"""Deterministic synthetic bundle tree for the foundation benchmark.

    gen_tree.py OUT_DIR [--files 10000] [--bytes 200000000] [--seed 1]

Same arguments, same bytes, on any machine (Python's random.Random is specified to be
reproducible across platforms for a given seed). The tree mixes what a publisher ships:

- sizes: 5 large files (48, 24, 16, 8, 8 MB: RSS must not grow with file size) and the rest
  log-normal around 4 KB (median), clipped to 64 B .. 2 MB, scaled so the total is --bytes;
- content, by file: 40 % CSV-like statistics rows (compress ~3-4x with zstd), 30 % random
  bytes (incompressible), 25 % half rows / half random, 5 % exact copies of an earlier file
  (dedup across files); the large files are "half and half" too;
- 100 folders, 2 levels deep (plus large/).

Writes OUT_DIR.tmp and renames it, so an interrupted run never leaves a partial tree.
"""
import argparse
import math
import os
import random
import shutil

LARGE = [48_000_000, 24_000_000, 16_000_000, 8_000_000, 8_000_000]


def row_pool(rng, n=100_000):
    areas = ["World", "Africa", "Asia", "Europe", "Oceania", "Americas"] + \
            ["Country %03d" % i for i in range(200)]
    series = ["SI_POV_DAY1", "SH_STA_MORT", "SE_TOT_CPLR", "IT_NET_BBND", "EG_ELC_ACCS",
              "EN_ATM_CO2", "SL_TLF_UEM", "SP_ACS_BSRVH2O"]
    units = ["PERCENT", "NUMBER", "PER_100000_POP", "USD"]
    rows = []
    for _ in range(n):
        rows.append("%s,%s,%d,%d.%04d,%s,%s\n" % (
            rng.choice(series), rng.choice(areas), rng.randint(1990, 2030),
            rng.randint(0, 999), rng.randint(0, 9999), rng.choice(units),
            rng.choice(["", "E", "M", "N"])))
    return rows


def text_bytes(rng, pool, size):
    out, n = [], 0
    while n < size:
        chunk = rng.choices(pool, k=max(1, min(4096, (size - n) // 40 + 1)))
        s = "".join(chunk)
        out.append(s)
        n += len(s)
    return "".join(out).encode()[:size]


def content(rng, pool, kind, size):
    if kind == "text":
        return text_bytes(rng, pool, size)
    if kind == "random":
        return rng.randbytes(size)
    half = size // 2
    return text_bytes(rng, pool, half) + rng.randbytes(size - half)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--bytes", type=int, default=200_000_000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    rng = random.Random(a.seed)
    pool = row_pool(rng)
    n_small = a.files - len(LARGE)
    kinds, src = [], []
    for i in range(n_small):
        x = rng.random()
        kind = ("text" if x < 0.40 else "random" if x < 0.70 else
                "mixed" if x < 0.95 else "copy")
        if kind == "copy" and not [k for k in kinds if k != "copy"]:
            kind = "text"
        kinds.append(kind)
        src.append(None)
        if kind == "copy":   # an exact copy of an earlier generated file
            while True:
                j = rng.randrange(i)
                if kinds[j] != "copy":
                    src[i] = j
                    break
    raw = [min(2_000_000, max(64, int(math.exp(rng.gauss(math.log(4000), 1.3)))))
           for _ in range(n_small)]
    budget = a.bytes - sum(LARGE)
    if budget < n_small * 64:
        ap.error("--bytes too small for --files and the %d large files" % len(LARGE))
    # scale the generated files' sizes so that, copies included, the total is exact
    uses = [1] * n_small
    for i, j in enumerate(src):
        if j is not None:
            uses[i] = 0
            uses[j] += 1
    weighted = sum(r * u for r, u in zip(raw, uses))
    sizes = [max(1, int(r * budget / weighted)) if u else 0 for r, u in zip(raw, uses)]
    last = max(i for i in range(n_small) if uses[i] == 1)   # a file nobody copies
    sizes[last] += budget - sum(s * u for s, u in zip(sizes, uses))
    for i, j in enumerate(src):
        if j is not None:
            sizes[i] = sizes[j]

    tmp = a.out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for i, size in enumerate(LARGE):
        p = os.path.join(tmp, "large", "part-%d.bin" % i)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(content(rng, pool, "mixed", size))
    paths = []
    for i, (size, kind) in enumerate(zip(sizes, kinds)):
        d = os.path.join(tmp, "d%02d" % (i % 10), "e%02d" % ((i // 10) % 10))
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, "f%05d.%s" % (i, "csv" if kind == "text" else "bin"))
        paths.append(p)
        if kind == "copy":
            shutil.copyfile(paths[src[i]], p)
        else:
            with open(p, "wb") as f:
                f.write(content(rng, pool, kind, size))
    shutil.rmtree(a.out, ignore_errors=True)
    os.rename(tmp, a.out)


if __name__ == "__main__":
    main()
