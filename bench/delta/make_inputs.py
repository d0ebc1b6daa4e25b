#!/usr/bin/python3
"""Builds the inputs of the delta benchmark from a directory tree.

  make_inputs.py TREE OUT_PREFIX

writes OUT_PREFIX.content (the outpost content stream of TREE) and OUT_PREFIX.tar (a
deterministic tar of the same tree, the input the peer tools bsdiff and zstd get).

Content stream ("outpost-content-v1\\n", then per file in bytewise path order):
  u64le(len(path)) path u32le(mode) u64le(size) bytes      (mode 420 or 493)
"""
import os
import struct
import subprocess
import sys


def files_of(tree):
    out = []
    for root, _dirs, names in os.walk(tree):
        for name in names:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, tree).replace(os.sep, "/")
            out.append((rel.encode("utf-8"), full))
    out.sort(key=lambda f: f[0])
    return out


def content_stream(tree):
    parts = [b"outpost-content-v1\n"]
    for rel, full in files_of(tree):
        mode = 493 if os.stat(full).st_mode & 0o111 else 420
        with open(full, "rb") as f:
            data = f.read()
        parts.append(struct.pack("<Q", len(rel)) + rel + struct.pack("<IQ", mode, len(data)))
        parts.append(data)
    return b"".join(parts)


def main():
    tree, prefix = sys.argv[1], sys.argv[2]
    with open(prefix + ".content", "wb") as f:
        f.write(content_stream(tree))
    subprocess.run(["tar", "--sort=name", "--format=gnu", "--mtime=@499162500", "--owner=0",
                    "--group=0", "-cf", os.path.abspath(prefix + ".tar"), "."],
                   cwd=tree, check=True)


if __name__ == "__main__":
    main()
