#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""debian/libaqinit0.symbols from libaqinit/aqinit.map: every symbol of every version node, with
the release that added it (node AQINIT_0: 0.1.0, the first release; node AQINIT_X.Y: X.Y.0).

    scripts/debian_symbols.py          print the symbols file
    scripts/debian_symbols.py --check  fail unless debian/libaqinit0.symbols is that file
    scripts/debian_symbols.py --write  rewrite debian/libaqinit0.symbols

dpkg-gensymbols (DPKG_GENSYMBOLS_CHECK_LEVEL=4 in debian/rules) then fails the package build if
the library exports anything else."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAP = os.path.join(ROOT, "libaqinit", "aqinit.map")
SYMBOLS = os.path.join(ROOT, "debian", "libaqinit0.symbols")


def nodes(text):
    """(node name, [symbols]) of each version node, in file order."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = []
    for name, body in re.findall(r"(\w[\w.]*)\s*\{(.*?)\}", text, flags=re.S):
        glob = body.split("global:")[1].split("local:")[0] if "global:" in body else ""
        out.append((name, [s.strip() for s in glob.split(";") if s.strip()]))
    return out


def release_of(node):
    if node == "AQINIT_0":
        return "0.1.0"
    m = re.fullmatch(r"AQINIT_(\d+)\.(\d+)", node)
    if not m:
        sys.exit(f"{MAP}: version node {node!r} is neither AQINIT_0 nor AQINIT_X.Y")
    return f"{m.group(1)}.{m.group(2)}.0"


def symbols_file():
    lines = ["libaqinit.so.0 libaqinit0 #MINVER#"]
    for node, syms in nodes(open(MAP).read()):
        version = release_of(node)
        lines.append(f" {node}@{node} {version}")
        lines += [f" {s}@{node} {version}" for s in sorted(syms)]
    return "\n".join(lines) + "\n"


def main(argv):
    text = symbols_file()
    if argv[1:] == ["--check"]:
        have = open(SYMBOLS).read() if os.path.exists(SYMBOLS) else ""
        if have != text:
            sys.exit(f"{SYMBOLS} does not match {MAP}: run scripts/debian_symbols.py --write")
        print(f"{SYMBOLS}: {text.count(chr(10)) - 1} entries match {MAP}")
    elif argv[1:] == ["--write"]:
        open(SYMBOLS, "w").write(text)
    elif len(argv) == 1:
        sys.stdout.write(text)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
