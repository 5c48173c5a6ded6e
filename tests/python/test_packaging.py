# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""The installable package: the build backend's wheel and sdist (python/_aqinit_build.py), one
version for the package, meson.build and the loaded library, the library search order
(AQINIT_LIBRARY, then the system, then the build tree) and `pip install ./python` into a venv."""
import base64
import csv
import glob
import hashlib
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

import aqinit
from aqinit import _lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYDIR = os.path.join(ROOT, "python")


def meson_version():
    with open(os.path.join(ROOT, "meson.build")) as f:
        return re.search(r"project\(\s*'aqinit'.*?\bversion\s*:\s*'([^']+)'", f.read(), re.S).group(1)


def load_backend(directory, monkeypatch):
    """The build backend in @directory as a fresh module (no bytecode written into the tree)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    spec = importlib.util.spec_from_file_location(f"_aqinit_build_{abs(hash(directory))}",
                                                  os.path.join(directory, "_aqinit_build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def backend(monkeypatch):
    return load_backend(PYDIR, monkeypatch)


def package_files(directory):
    """The files of the aqinit package under @directory as archive names."""
    found = set()
    for root, dirs, files in os.walk(os.path.join(directory, "aqinit")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found |= {os.path.relpath(os.path.join(root, f), directory) for f in files
                  if not f.endswith(".pyc") and not f.startswith(".")}
    return found


def read_wheel(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


# ---------------------------------------------------------------------------------------------
# One version
# ---------------------------------------------------------------------------------------------

def test_the_package_meson_build_and_the_library_have_one_version():
    from aqinit._version import __version__
    assert __version__ == meson_version() == aqinit.__version__ == aqinit.version_string()


def test_the_backend_refuses_a_tree_whose_meson_build_disagrees(tmp_path, monkeypatch):
    tree = tmp_path / "src" / "python"
    shutil.copytree(os.path.join(PYDIR, "aqinit"), tree / "aqinit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "_aqinit_build.py"):
        shutil.copy(os.path.join(PYDIR, name), tree / name)
    (tmp_path / "src" / "meson.build").write_text("project('aqinit', 'c',\n  version : '9.9.9')\n")
    with pytest.raises(ValueError, match=r"says %s .*says 9\.9\.9" % re.escape(meson_version())):
        load_backend(str(tree), monkeypatch).build_wheel(str(tmp_path))


# ---------------------------------------------------------------------------------------------
# The wheel and the sdist
# ---------------------------------------------------------------------------------------------

def check_wheel(path, expected_package_files):
    files = read_wheel(path)
    version = meson_version()
    dist_info = f"aqinit-{version}.dist-info"
    assert os.path.basename(path) == f"aqinit-{version}-py3-none-any.whl"
    assert {n for n in files if not n.startswith(dist_info + "/")} == expected_package_files
    assert {n for n in files if n.startswith(dist_info + "/")} == {
        f"{dist_info}/{n}" for n in ("METADATA", "WHEEL", "RECORD", "entry_points.txt", "LICENSE")}
    metadata = files[f"{dist_info}/METADATA"].decode()
    assert re.search(r"^Metadata-Version: 2\.1$", metadata, re.M)
    assert re.search(r"^Name: aqinit$", metadata, re.M)
    assert re.search(r"^Version: %s$" % re.escape(version), metadata, re.M)
    assert re.findall(r"^Requires-Dist: (.*)$", metadata, re.M) == ["numpy"]  # the core is numpy-only
    wheel = files[f"{dist_info}/WHEEL"].decode()
    assert "Root-Is-Purelib: true" in wheel and "Tag: py3-none-any" in wheel
    assert files[f"{dist_info}/entry_points.txt"].decode().split("\n")[:2] == [
        "[console_scripts]", "aqinit-hf = aqinit.hf.cli:main"]
    rows = list(csv.reader(io.StringIO(files[f"{dist_info}/RECORD"].decode())))
    assert sorted(r[0] for r in rows) == sorted(files)
    for name, digest, size in rows:
        if name == f"{dist_info}/RECORD":
            assert digest == size == ""
            continue
        expected = base64.urlsafe_b64encode(hashlib.sha256(files[name]).digest()).rstrip(b"=").decode()
        assert (digest, int(size)) == ("sha256=" + expected, len(files[name])), name
    return files


def test_the_wheel_holds_the_package_and_correct_metadata(backend, tmp_path):
    name = backend.build_wheel(str(tmp_path))
    files = check_wheel(os.path.join(tmp_path, name), package_files(PYDIR))
    assert "aqinit/_lib.py" in files and "aqinit/_version.py" in files
    with open(os.path.join(PYDIR, "aqinit", "quant.py"), "rb") as f:
        assert files["aqinit/quant.py"] == f.read()
    # Fixed timestamps: the same tree builds the same wheel.
    again = tmp_path / "again"
    again.mkdir()
    with open(os.path.join(tmp_path, name), "rb") as a, open(again / backend.build_wheel(str(again)), "rb") as b:
        assert a.read() == b.read()


def test_prepared_metadata_is_the_wheels(backend, tmp_path):
    dist_info = backend.prepare_metadata_for_build_wheel(str(tmp_path / "meta"))
    wheel = read_wheel(tmp_path / backend.build_wheel(str(tmp_path)))
    for name in os.listdir(tmp_path / "meta" / dist_info):
        with open(tmp_path / "meta" / dist_info / name, "rb") as f:
            assert f.read() == wheel[f"{dist_info}/{name}"], name
    assert backend.get_requires_for_build_wheel() == backend.get_requires_for_build_sdist() == []


def test_the_sdist_builds_the_same_wheel_without_meson_build(backend, tmp_path, monkeypatch):
    name = backend.build_sdist(str(tmp_path))
    base = f"aqinit-{meson_version()}"
    assert name == base + ".tar.gz"
    with tarfile.open(tmp_path / name) as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    expected = {f"{base}/{n}" for n in ("pyproject.toml", "_aqinit_build.py", "PKG-INFO", "LICENSE")}
    assert names == expected | {f"{base}/{n}" for n in package_files(PYDIR)}
    unpacked = str(tmp_path / "unpacked" / base)
    assert not os.path.exists(os.path.join(os.path.dirname(unpacked), "meson.build"))
    out = tmp_path / "wheel"
    out.mkdir()
    wheel = load_backend(unpacked, monkeypatch).build_wheel(str(out))
    assert read_wheel(out / wheel) == read_wheel(tmp_path / backend.build_wheel(str(tmp_path)))


def test_the_editable_wheel_puts_the_source_directory_on_the_path(backend, tmp_path):
    files = read_wheel(tmp_path / backend.build_editable(str(tmp_path)))
    assert files["_aqinit_editable.pth"].decode() == PYDIR + "\n"
    assert not any(n.startswith("aqinit/") for n in files)


# ---------------------------------------------------------------------------------------------
# Finding the library
# ---------------------------------------------------------------------------------------------

def test_AQINIT_LIBRARY_alone_when_set(monkeypatch):
    def never():
        raise AssertionError("searched although AQINIT_LIBRARY is set")
        yield

    monkeypatch.setenv("AQINIT_LIBRARY", "/explicit/libaqinit.so")
    monkeypatch.setattr(_lib, "_system_candidates", never)
    monkeypatch.setattr(_lib, "_build_tree_candidates", never)
    assert list(_lib._candidates()) == ["/explicit/libaqinit.so"]


def test_the_system_before_the_build_tree(monkeypatch):
    monkeypatch.delenv("AQINIT_LIBRARY", raising=False)
    monkeypatch.setattr(_lib, "_system_candidates", lambda: iter(["system"]))
    monkeypatch.setattr(_lib, "_build_tree_candidates", lambda: iter(["tree"]))
    assert list(_lib._candidates()) == ["system", "tree"]


def test_the_system_is_find_library_then_the_pkg_config_libdir(monkeypatch, tmp_path):
    for name in ("libaqinit.so", "libaqinit.so.0", "libother.so"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setattr(_lib.ctypes.util, "find_library", lambda name: {"aqinit": "libaqinit.so.0"}.get(name))
    monkeypatch.setattr(_lib, "_pkg_config_libdir", lambda: str(tmp_path))
    assert list(_lib._system_candidates()) == ["libaqinit.so.0", str(tmp_path / "libaqinit.so"),
                                               str(tmp_path / "libaqinit.so.0")]
    monkeypatch.setattr(_lib.ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(_lib, "_pkg_config_libdir", lambda: None)
    assert list(_lib._system_candidates()) == []


def test_pkg_config_libdir_reads_the_pc_file(monkeypatch, tmp_path):
    if shutil.which("pkg-config") is None:
        pytest.skip("no pkg-config")
    (tmp_path / "aqinit.pc").write_text("prefix=/opt/aq\nlibdir=${prefix}/lib64\n\nName: aqinit\n"
                                        "Description: test\nVersion: 0.1.0\nLibs: -L${libdir} -laqinit\n")
    monkeypatch.setenv("PKG_CONFIG_PATH", str(tmp_path))
    assert _lib._pkg_config_libdir() == "/opt/aq/lib64"
    monkeypatch.setenv("PATH", str(tmp_path))  # no pkg-config at all: no candidate, no error
    assert _lib._pkg_config_libdir() is None


def test_an_installed_package_has_no_build_tree(monkeypatch, tmp_path):
    monkeypatch.setattr(_lib, "__file__", str(tmp_path / "lib" / "site-packages" / "aqinit" / "_lib.py"))
    assert list(_lib._build_tree_candidates()) == []


def fake_open(libraries):
    """_lib._open over {name: version} (a missing name cannot be loaded)."""
    def open_(name):
        if name not in libraries:
            raise OSError(f"{name}: cannot open shared object file")
        return "dll:" + name, "/real/" + name, libraries[name]
    return open_


def test_a_library_of_another_version_is_passed_over(monkeypatch):
    monkeypatch.setattr(_lib, "_open", fake_open({"old": "0.0.9", "good": "1.2.3", "later": "1.2.3"}))
    assert _lib._load(["missing", "old", "good", "later"], "1.2.3") == ("dll:good", "/real/good")


def test_no_library_of_the_packages_version_is_an_ImportError_naming_both(monkeypatch):
    monkeypatch.setattr(_lib, "_open", fake_open({"old": "0.0.9", "new": "2.0.0"}))
    with pytest.raises(ImportError) as info:
        _lib._load(["missing", "old", "new"], "1.2.3")
    message = str(info.value)
    for part in ("package 1.2.3", "/real/old is libaqinit 0.0.9", "/real/new is libaqinit 2.0.0", "AQINIT_LIBRARY"):
        assert part in message
    monkeypatch.setattr(_lib, "_open", fake_open({}))
    monkeypatch.delenv("AQINIT_LIBRARY", raising=False)
    with pytest.raises(OSError, match="libaqinit not found"):
        _lib._load(["missing"], "1.2.3")


def test_importing_a_package_of_another_version_fails_at_import(tmp_path):
    """The real check: the package copied with another _version.py refuses the real library."""
    shutil.copytree(os.path.join(PYDIR, "aqinit"), tmp_path / "aqinit", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "aqinit" / "_version.py").write_text('__version__ = "9.9.9"\n')
    env = dict(os.environ, PYTHONPATH=str(tmp_path), AQINIT_LIBRARY=_lib.lib_path)
    r = subprocess.run([sys.executable, "-c", "import aqinit"], env=env, cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: ") and "9.9.9" in last
    assert f"{_lib.lib_path} is libaqinit {aqinit.version_string()}" in last


def test_lib_path_is_the_mapped_file_even_for_a_soname(tmp_path):
    """find_library gives a soname; lib_path is the file the loader mapped (dladdr)."""
    soname = "libaqinit.so.77"  # dlopen searches LD_LIBRARY_PATH for a name without a slash
    shutil.copy(_lib.lib_path, tmp_path / soname)  # a copy: not the file the import already loaded
    env = dict(os.environ, PYTHONPATH=PYDIR, LD_LIBRARY_PATH=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", f"from aqinit import _lib; print(_lib._open({soname!r})[1])"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / soname)


# ---------------------------------------------------------------------------------------------
# pip install ./python (offline: --no-index) into a venv, and each route to the library
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A venv seeing the system's numpy and pip, with the package installed by pip."""
    if importlib.util.find_spec("venv") is None or importlib.util.find_spec("pip") is None:
        pytest.skip("no venv or pip module")
    base = tmp_path_factory.mktemp("venv")
    path = base / "venv"
    r = subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(path)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        pytest.skip("cannot create a venv: " + r.stderr.strip()[-200:])
    python = str(path / "bin" / "python")
    r = subprocess.run([python, "-m", "pip", "install", "--no-index", "--no-cache-dir",
                        "--disable-pip-version-check", PYDIR], capture_output=True, text=True, timeout=300,
                       cwd=str(base))
    assert r.returncode == 0, r.stdout + r.stderr
    return path


def run_installed(venv, cwd, **env):
    """`import aqinit` by the venv's python outside the source tree; (returncode, stdout, stderr)."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("AQINIT_LIBRARY", "PYTHONPATH", "LD_LIBRARY_PATH", "PKG_CONFIG_PATH")}
    r = subprocess.run([str(venv / "bin" / "python"), "-c",
                        "import aqinit\nprint(aqinit.__file__, aqinit.__version__, aqinit._lib.lib_path, sep='\\n')"],
                       env=dict(clean, **env), cwd=str(cwd), capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout.split("\n"), r.stderr


@pytest.fixture
def prefix(tmp_path):
    """An install of the tested library in a prefix: lib/ with a copy of it under the names it has
    next to it (libaqinit.so, the soname, ...) and lib/pkgconfig/aqinit.pc."""
    real = os.path.realpath(_lib.lib_path)
    lib = tmp_path / "prefix" / "lib"
    (lib / "pkgconfig").mkdir(parents=True)
    shutil.copy(real, lib / os.path.basename(real))
    for other in glob.glob(os.path.join(os.path.dirname(real), "libaqinit.so*")) + ["libaqinit.so"]:
        if not os.path.isdir(other) and not os.path.lexists(lib / os.path.basename(other)):
            os.symlink(os.path.basename(real), lib / os.path.basename(other))
    (lib / "pkgconfig" / "aqinit.pc").write_text(
        f"prefix={tmp_path / 'prefix'}\nlibdir=${{prefix}}/lib\n\nName: aqinit\nDescription: test\n"
        f"Version: {aqinit.version_string()}\nLibs: -L${{libdir}} -laqinit\n")
    return lib


def skip_if_the_system_has_one(venv, cwd):
    rc, out, _ = run_installed(venv, cwd)
    if rc == 0:
        pytest.skip(f"this system has a libaqinit ({out[2]}), which comes first")


def test_pip_install_installs_the_package_and_the_console_script(venv):
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                          timeout=60).stdout.strip()
    installed = {os.path.relpath(os.path.join(r, f), site) for r, d, fs in os.walk(os.path.join(site, "aqinit"))
                 for f in fs if not f.endswith(".pyc")}
    assert installed == package_files(PYDIR)
    with open(venv / "bin" / "aqinit-hf") as f:
        assert "from aqinit.hf.cli import main" in f.read()


def test_installed_package_loads_AQINIT_LIBRARY(venv, tmp_path):
    rc, out, err = run_installed(venv, tmp_path, AQINIT_LIBRARY=_lib.lib_path)
    assert rc == 0, err
    assert out[0].startswith(str(venv)) and out[1] == aqinit.version_string() and out[2] == _lib.lib_path


def test_installed_package_finds_the_system_library_through_pkg_config(venv, tmp_path, prefix):
    if shutil.which("pkg-config") is None:
        pytest.skip("no pkg-config")
    skip_if_the_system_has_one(venv, tmp_path)
    rc, out, err = run_installed(venv, tmp_path, PKG_CONFIG_PATH=str(prefix / "pkgconfig"))
    assert rc == 0, err
    assert out[1] == aqinit.version_string() and os.path.dirname(out[2]) == str(prefix)


def test_installed_package_finds_the_system_library_through_find_library(venv, tmp_path, prefix):
    probe = subprocess.run([sys.executable, "-c", "import ctypes.util; print(ctypes.util.find_library('aqinit'))"],
                           env=dict(os.environ, LD_LIBRARY_PATH=str(prefix)), capture_output=True, text=True,
                           timeout=60).stdout.strip()
    if probe in ("", "None"):
        pytest.skip("ctypes.util.find_library does not search LD_LIBRARY_PATH here (no ld or objdump)")
    skip_if_the_system_has_one(venv, tmp_path)
    rc, out, err = run_installed(venv, tmp_path, LD_LIBRARY_PATH=str(prefix))
    assert rc == 0, err
    assert out[1] == aqinit.version_string() and os.path.dirname(out[2]) == str(prefix)


def test_installed_package_never_uses_a_build_tree(venv, tmp_path):
    """Without AQINIT_LIBRARY and a system library it fails with the search advice, although
    build/ of the source tree has one (a package on PYTHONPATH=python uses that: test_api.py)."""
    skip_if_the_system_has_one(venv, tmp_path)
    rc, out, err = run_installed(venv, tmp_path)
    assert rc != 0 and "OSError: libaqinit not found" in err and "AQINIT_LIBRARY" in err
