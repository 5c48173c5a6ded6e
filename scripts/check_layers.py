#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Check the layering of libaqinit/ (docs/architecture.md).

Every folder of libaqinit/ is one layer with a rank. A file may include headers of its own
folder and of folders of a lower rank; never of a higher rank, and never of a sibling (another
folder of the same rank). Internal headers are included by their folder ("quant/quant.h"); the
public header is "aqinit.h". Include cycles between files are errors too.

With --archive LIB.a (the static library, whose members are named FOLDER_FILE.c.o by meson) the
same rules are checked on the link graph: a function may only call functions defined in its own
folder or in a lower one, and no two source files may call each other through any chain (no
cycle). This catches what includes cannot see, e.g. a call through the public header or through
a header that several folders share.

Exit status 0 when the tree is clean; 1 with one line per violation otherwise.
"""
import argparse
import os
import re
import subprocess
import sys

# rank: folders of one rank are siblings and must not depend on each other.
LAYERS = {
    "core": 0,       # context, errors, allocator, options, pool, CPU level, RNG, checks, CRC
    "hessian": 1,    # streaming statistics H = XᵀX/n
    "quant": 2,      # format, quantized representation, file I/O, evaluation
    "lut": 3,        # inference: LUT mat-vec / mat-mat
    "init": 3,       # codebook initialisation: greedy k-means, OA-EM
    "pv": 3,         # PV-tuning steps
    "objective": 3,  # the layer objective shared by the optimisers
    "beam": 4,       # beam search over codes
    "codebook": 4,   # codebook and scale updates
    "optimize": 5,   # the alternating optimiser
    "pipeline": 6,   # drivers: one layer, a whole model
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
PUBLIC_HEADER = "aqinit.h"


def source_files(root):
    for folder, _, names in os.walk(root):
        for name in sorted(names):
            if name.endswith((".c", ".h")):
                yield os.path.relpath(os.path.join(folder, name), root)


def folder_of(rel):
    return rel.split(os.sep)[0] if os.sep in rel else ""


def allowed(src_folder, dst_folder):
    """None if src_folder may depend on dst_folder, else the reason."""
    if src_folder == dst_folder:
        return None
    a, b = LAYERS[src_folder], LAYERS[dst_folder]
    if b > a:
        return "a higher layer (%s, rank %d > %d)" % (dst_folder, b, a)
    if b == a:
        return "a sibling layer (%s, rank %d)" % (dst_folder, b)
    return None


def find_cycles(graph):
    """Strongly connected components with more than one node (or a self-loop), by Tarjan."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check_includes(root):
    errors, graph = [], {}
    folders = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    for d in folders:
        if d not in LAYERS:
            errors.append("libaqinit/%s/: folder has no layer in scripts/check_layers.py" % d)
        elif not os.path.isfile(os.path.join(root, d, "README.md")):
            errors.append("libaqinit/%s/: no README.md saying what the layer owns" % d)
    for rel in source_files(root):
        src_folder = folder_of(rel)
        if not src_folder:
            errors.append("libaqinit/%s: source file outside a layer folder" % rel)
            continue
        if src_folder not in LAYERS:
            continue
        graph.setdefault(rel, set())
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = m.group(1)
                where = "libaqinit/%s:%d" % (rel, lineno)
                if target == PUBLIC_HEADER:
                    continue
                dst_folder = target.split("/")[0] if "/" in target else ""
                if dst_folder not in LAYERS:
                    errors.append('%s: include "%s" does not name a layer folder' % (where, target))
                    continue
                if not os.path.isfile(os.path.join(root, target)):
                    errors.append('%s: include "%s": no such file' % (where, target))
                    continue
                reason = allowed(src_folder, dst_folder)
                if reason:
                    errors.append('%s: %s includes "%s" of %s' % (where, src_folder, target, reason))
                graph[rel].add(os.path.normpath(target))
    for comp in find_cycles(graph):
        errors.append("include cycle: " + " -> ".join(comp))
    return errors


def object_source(member):
    """'beam_beam_step.c.o' -> ('beam', 'beam/beam_step.c')."""
    stem = member[:-len(".o")] if member.endswith(".o") else member
    for folder in sorted(LAYERS, key=len, reverse=True):
        if stem.startswith(folder + "_"):
            return folder, folder + "/" + stem[len(folder) + 1:]
    return None, stem


def check_links(archive):
    out = subprocess.run(["nm", "-A", archive], check=True, capture_output=True, text=True).stdout
    defined, used = {}, {}
    for line in out.splitlines():
        # archive:member:[address] type symbol
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        member, fields = parts[1], parts[2].split()
        if len(fields) < 2:
            continue
        kind, sym = fields[-2], fields[-1]
        if kind == "U":
            used.setdefault(member, set()).add(sym)
        elif kind in ("T", "D", "B", "R", "i", "V", "W"):  # global definitions (i: target_clones)
            defined.setdefault(sym, set()).add(member)
    errors, graph = [], {}
    members = set(used) | {m for ms in defined.values() for m in ms}
    for member in sorted(members):
        src_folder, src = object_source(member)
        if src_folder is None:
            errors.append("%s: archive member outside a layer folder" % member)
            continue
        graph.setdefault(src, set())
        for sym in sorted(used.get(member, ())):
            for owner in sorted(defined.get(sym, ())):
                dst_folder, dst = object_source(owner)
                if dst_folder is None or dst == src:
                    continue
                reason = allowed(src_folder, dst_folder)
                if reason:
                    errors.append("%s calls %s (defined in %s) of %s" % (src, sym, dst, reason))
                graph[src].add(dst)
    for comp in find_cycles(graph):
        errors.append("call cycle between source files: " + " <-> ".join(comp))
    return errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", help="the libaqinit/ source folder")
    ap.add_argument("--archive", help="the built static library, to check the link graph too")
    args = ap.parse_args()
    errors = check_includes(args.root)
    if args.archive:
        errors += check_links(args.archive)
    for e in errors:
        print(e)
    n_files = sum(1 for _ in source_files(args.root))
    print("layers: %d folders, %d files, %s: %d violation(s)" % (
        len(LAYERS), n_files, "includes and links" if args.archive else "includes", len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
