#!/usr/bin/env python3
# Writes a C header holding varlink interface descriptions as string constants:
#   embed-interfaces.py OUTPUT FILE.varlink...
# The constant for io.vfiod.varlink is vfiod_interface_io_vfiod.
import os
import sys


def c_string(text):
    out = []
    for line in text.splitlines(keepends=True):
        esc = line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        out.append('        "%s"' % esc)
    return "\n".join(out) if out else '""'


def main():
    output, inputs = sys.argv[1], sys.argv[2:]
    parts = ["/* Generated from the .varlink files by embed-interfaces.py. */", "#pragma once", ""]
    for path in inputs:
        name = os.path.basename(path)[: -len(".varlink")].replace(".", "_")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        parts.append("static const char vfiod_interface_%s[] =\n%s;\n" % (name, c_string(text)))
    with open(output, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))


if __name__ == "__main__":
    main()
