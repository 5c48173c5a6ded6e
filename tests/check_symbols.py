#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Fail if the dynamic symbols the library exports differ from those listed in aqinit.map."""
import re
import subprocess
import sys

lib, mapfile = sys.argv[1], sys.argv[2]
text = re.sub(r"/\*.*?\*/", "", open(mapfile).read(), flags=re.S)
# Every version node's global: list (a node ends at "local:" or at its closing brace).
listed = set()
for part in text.split("global:")[1:]:
    part = part.split("local:")[0].split("}")[0]
    listed |= {s.strip() for s in part.split(";") if s.strip()}

out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True, text=True).stdout
exported = set()
for line in out.splitlines():
    parts = line.split()
    if len(parts) >= 3 and parts[1] in "TDBRVWiu":
        name = parts[2].split("@")[0]
        if name and not name.startswith("AQINIT_"):
            exported.add(name)

extra, missing = sorted(exported - listed), sorted(listed - exported)
bad_prefix = sorted(s for s in exported if not s.startswith("aq_"))
for what, names in (("exported but not in the map", extra), ("in the map but not exported", missing),
                    ("exported without the aq_ prefix", bad_prefix)):
    for n in names:
        print(f"{what}: {n}")
if extra or missing or bad_prefix:
    sys.exit(1)
print(f"{len(exported)} exported symbols match {mapfile}")
