#!/usr/bin/python3
"""The libraries vfiod's programs load on first use stay out of their start.

libkmod (loading kernel modules, vfio/kmod-dlopen.h) and libarchive (audit snapshots,
audit/archive-dlopen.h) bring large libraries of their own: libcrypto, liblzma and
libzstd; libxml2, ICU and the C++ runtime. Linked, they are mapped and relocated at every
start of every program, which costs a slow machine more than most verbs do; the programs
dlopen() them when an operation needs them. A NEEDED entry for one of them, from a
dependency that links it again, fails here.

Usage: test-lazy-libraries.py PROGRAM...
prints one PASS/FAIL line per program and exits 1 on failure
"""
import re
import subprocess
import sys

LAZY = ("libkmod.so", "libarchive.so")
NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[(.+)\]")


def needed(path):
    out = subprocess.run(["readelf", "--dynamic", "--wide", path], check=True,
                         capture_output=True, text=True).stdout
    return [m.group(1) for m in map(NEEDED.search, out.splitlines()) if m]


def main(programs):
    if not programs:
        print(__doc__, file=sys.stderr)
        return 2
    failures = 0
    for path in programs:
        libs = needed(path)
        linked = [lib for lib in libs if lib.startswith(LAZY)]
        # Every program links libc: without it the parsing, not the program, is wrong.
        ok = "libc.so.6" in libs and not linked
        print("%s %s: NEEDED %s" % ("PASS" if ok else "FAIL", path, ", ".join(libs)))
        if linked:
            print("    linked, though it is to be loaded on first use: " + ", ".join(linked))
        failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
