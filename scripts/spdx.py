#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""SPDX license and copyright lines at the top of every source file.

    scripts/spdx.py           add the two lines where they are missing (tracked files)
    scripts/spdx.py --check   list the source files without them; fail if there is one

A source file is a tracked file (git ls-files) of a kind listed in STYLES: C, C++, headers, the
linker version script, Python, shell, meson, CMake, Doxygen and TOML configuration, manual pages,
debian/rules. Data, documentation (Markdown) and Debian control files are not. The lines go first,
after a #! line or a Python encoding line, in the file's comment syntax. Idempotent: re-run it after
a merge."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LICENSE = "SPDX-License-Identifier: MIT"
COPYRIGHT = "Copyright (c) 2026 The libaqinit developers"

C_STYLE = ("/* ", " */")
HASH_STYLE = ("# ", "")
ROFF_STYLE = ('.\\" ', "")
# (pattern on the path relative to the root, comment style)
STYLES = [
    (r".*\.(c|h|cpp|map)$", C_STYLE),
    (r".*\.h\.in$", C_STYLE),
    (r".*\.(py|sh|build|toml|cmake\.in)$", HASH_STYLE),
    (r"(.*/)?(meson_options\.txt|CMakeLists\.txt|Doxyfile\.in)$", HASH_STYLE),
    (r"\.ci/run$", HASH_STYLE),
    (r"debian/(rules|aqinit-hf)$", HASH_STYLE),
    (r".*\.[1-8]$", ROFF_STYLE),
]


def style_of(path):
    for pattern, style in STYLES:
        if re.fullmatch(pattern, path):
            return style
    return None


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    return [p for p in out.decode().split("\0") if p]


def has_lines(text):
    head = "\n".join(text.splitlines()[:6])
    return LICENSE in head and "Copyright" in head


def with_lines(text, style):
    start, end = style
    block = f"{start}{LICENSE}{end}\n{start}{COPYRIGHT}{end}\n"
    lines = text.splitlines(keepends=True)
    keep = 0
    if lines and lines[0].startswith("#!"):
        keep = 1
    if len(lines) > keep and re.match(r"#.*coding[:=]", lines[keep]):
        keep += 1
    return "".join(lines[:keep]) + block + "".join(lines[keep:])


def main(argv):
    check = argv[1:] == ["--check"]
    if argv[1:] not in ([], ["--check"]):
        sys.exit(__doc__)
    missing, changed = [], 0
    for path in tracked_files():
        style = style_of(path)
        full = os.path.join(ROOT, path)
        if style is None or os.path.islink(full) or not os.path.isfile(full):
            continue
        with open(full, encoding="utf-8") as f:
            text = f.read()
        if has_lines(text):
            continue
        if check:
            missing.append(path)
            continue
        mode = os.stat(full).st_mode
        with open(full, "w", encoding="utf-8") as f:
            f.write(with_lines(text, style))
        os.chmod(full, mode)
        changed += 1
    if check:
        for path in missing:
            print(f"{path}: no SPDX/copyright lines (scripts/spdx.py adds them)")
        if missing:
            sys.exit(1)
        print("every source file has its SPDX and copyright lines")
    else:
        print(f"added the SPDX and copyright lines to {changed} files")


if __name__ == "__main__":
    main(sys.argv)
