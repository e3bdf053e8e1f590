#!/usr/bin/env python3
"""Writes a text of at least N megabytes for benchmarks: Debian's licence and copyright texts from
/usr/share (the same kind of text the peers were measured on), repeated. Usage: gen-text.py MB OUT"""
import glob, os, sys

mb, out = int(sys.argv[1]), sys.argv[2]
paths = sorted(glob.glob("/usr/share/common-licenses/*")) or sorted(glob.glob("/usr/share/doc/*/copyright"))
chunks = []
for p in paths:
    try:
        with open(p, "rb") as f:
            chunks.append(f.read())
    except OSError:
        pass
corpus = b"".join(chunks) or b"the quick brown fox jumps over the lazy dog\n" * 1000
target = mb * 1024 * 1024
with open(out + ".tmp", "wb") as f:
    written = 0
    while written < target:
        f.write(corpus)
        written += len(corpus)
os.replace(out + ".tmp", out)
