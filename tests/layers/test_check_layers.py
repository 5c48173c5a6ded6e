# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""scripts/check_layers.py finds what it is meant to find: trees built here with one planted
violation each must fail with a line naming it, and the clean tree must pass."""
import os
import shutil
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "check_layers.py")


def make_tree(root, files):
    """files: {"core/a.c": text}; every layer folder used gets a README.md."""
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        readme = os.path.join(os.path.dirname(path), "README.md")
        if not os.path.exists(readme):
            with open(readme, "w") as f:
                f.write("# test layer\n")


def run(root, archive=None):
    args = [sys.executable, SCRIPT, root] + (["--archive", archive] if archive else [])
    p = subprocess.run(args, capture_output=True, text=True)
    return p.returncode, p.stdout


CLEAN = {
    "core/internal.h": '#include "aqinit.h"\nint aqi_core(void);\n',
    "core/core.c": '#include "core/internal.h"\nint aqi_core(void) { return 1; }\n',
    "quant/quant.h": '#include "core/internal.h"\nint aqi_quant(void);\n',
    "quant/quant.c": '#include "quant/quant.h"\nint aqi_quant(void) { return aqi_core(); }\n',
    "beam/beam.h": '#include "quant/quant.h"\nint aqi_beam(void);\n',
    "beam/beam.c": '#include "beam/beam.h"\nint aqi_beam(void) { return aqi_quant(); }\n',
    "codebook/codebook.h": '#include "quant/quant.h"\nint aqi_codebook(void);\n',
    "codebook/codebook.c": '#include "codebook/codebook.h"\nint aqi_codebook(void) { return aqi_quant(); }\n',
    "optimize/optimize.c": '#include "beam/beam.h"\n#include "codebook/codebook.h"\n'
                           'int aq_optimize(void) { return aqi_beam() + aqi_codebook(); }\n',
}


def tree(tmp_path, changes=None, drop=()):
    files = dict(CLEAN)
    files.update(changes or {})
    for rel in drop:
        del files[rel]
    root = str(tmp_path / "libaqinit")
    make_tree(root, files)
    return root


def test_clean_tree_passes(tmp_path):
    rc, out = run(tree(tmp_path))
    assert rc == 0, out
    assert "0 violation(s)" in out


def test_include_from_a_higher_layer_fails(tmp_path):
    rc, out = run(tree(tmp_path, {"quant/quant.c": '#include "quant/quant.h"\n#include "beam/beam.h"\n'}))
    assert rc == 1
    assert 'libaqinit/quant/quant.c:2: quant includes "beam/beam.h" of a higher layer' in out


def test_include_of_a_sibling_layer_fails(tmp_path):
    rc, out = run(tree(tmp_path, {"beam/beam.c": '#include "beam/beam.h"\n#include "codebook/codebook.h"\n'}))
    assert rc == 1
    assert "of a sibling layer (codebook" in out


def test_include_cycle_fails(tmp_path):
    rc, out = run(tree(tmp_path, {"beam/a.h": '#include "beam/b.h"\n', "beam/b.h": '#include "beam/a.h"\n'}))
    assert rc == 1
    assert "include cycle: beam/a.h -> beam/b.h" in out


def test_unqualified_include_unknown_folder_and_missing_readme_fail(tmp_path):
    root = tree(tmp_path, {"core/x.c": '#include "internal.h"\n', "misc/y.c": "int y;\n"})
    os.remove(os.path.join(root, "beam", "README.md"))
    rc, out = run(root)
    assert rc == 1
    assert 'include "internal.h" does not name a layer folder' in out
    assert "libaqinit/misc/: folder has no layer" in out
    assert "libaqinit/beam/: no README.md" in out


def build_archive(root, tmp_path):
    """Compile every .c of the tree and archive the objects under meson's member names."""
    cc = shutil.which("cc") or shutil.which("gcc")
    ar = shutil.which("ar")
    if not cc or not ar:
        pytest.skip("no C compiler or ar")
    inc = str(tmp_path / "include")  # a stand-in public header: the fixture needs none of its names
    os.makedirs(inc, exist_ok=True)
    with open(os.path.join(inc, "aqinit.h"), "w") as f:
        f.write("/* public header stand-in */\n")
    objects = []
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".c"):
                rel = os.path.relpath(os.path.join(folder, name), root)
                obj = str(tmp_path / (rel.replace(os.sep, "_") + ".o"))
                subprocess.run([cc, "-c", "-I", root, "-I", inc, os.path.join(root, rel), "-o", obj], check=True)
                objects.append(obj)
    archive = str(tmp_path / "lib.a")
    subprocess.run([ar, "rcs", archive] + sorted(objects), check=True)
    return archive


def test_link_graph_of_the_clean_tree_passes(tmp_path):
    root = tree(tmp_path)
    rc, out = run(root, build_archive(root, tmp_path))
    assert rc == 0, out


def test_call_upward_through_a_declaration_fails_and_a_call_cycle_fails(tmp_path):
    # beam.c calls the optimiser and the optimiser calls beam.c: the circle the layering removed,
    # hidden from the include check by a local declaration.
    root = tree(tmp_path, {"beam/beam.c": '#include "beam/beam.h"\nint aq_optimize(void);\n'
                                          'int aqi_beam(void) { return aqi_quant() ? aq_optimize() : 0; }\n'})
    rc, out = run(root, build_archive(root, tmp_path))
    assert rc == 1
    assert "beam/beam.c calls aq_optimize (defined in optimize/optimize.c) of a higher layer" in out
    assert "call cycle between source files: beam/beam.c <-> optimize/optimize.c" in out


def test_call_cycle_inside_one_folder_fails(tmp_path):
    root = tree(tmp_path, {"core/core.c": '#include "core/internal.h"\nint aqi_other(int);\n'
                                          'int aqi_core(void) { return aqi_other(1); }\n',
                           "core/other.c": '#include "core/internal.h"\nint aqi_other(int n) { return n ? aqi_core() : 0; }\n'})
    rc, out = run(root, build_archive(root, tmp_path))
    assert rc == 1
    assert "call cycle between source files: core/core.c <-> core/other.c" in out
