# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""PEP 517 build backend of the aqinit Python package, in plain Python with no build
requirements, so that `pip install ./python` works offline (pip's build isolation has nothing to
download). It builds a pure-Python wheel (py3-none-any) of aqinit/ and an sdist, from the [project]
table of pyproject.toml; the version is aqinit/_version.py's, which must agree with the project's
version in ../meson.build when that file is there (a source tree, not an unpacked sdist).
The C library is not bundled: aqinit/_lib.py finds it at import."""
import base64
import csv
import gzip
import hashlib
import io
import os
import re
import tarfile
import zipfile

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11: build with `pip install --no-build-isolation` and tomli
    import tomli as tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "aqinit"
PROJECT_KEYS = {"name", "dynamic", "description", "license", "requires-python", "dependencies", "scripts"}
EPOCH = 315532800  # 1980-01-01, the earliest zip date: the same tree gives the same archives


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _version():
    text = _read(os.path.join(HERE, PACKAGE, "_version.py")).decode()
    version = re.search(r'^__version__ = "([^"]+)"$', text, re.M).group(1)
    meson = os.path.join(os.path.dirname(HERE), "meson.build")
    if os.path.exists(meson):
        m = re.search(r"project\(\s*'aqinit'.*?\bversion\s*:\s*'([^']+)'", _read(meson).decode(), re.S)
        if m and m.group(1) != version:
            raise ValueError(f"{PACKAGE}/_version.py says {version} but {meson} says {m.group(1)}: "
                             "the package's version must be the project's")
    return version


def _project():
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    unknown = set(project) - PROJECT_KEYS
    if unknown or project.get("dynamic") != ["version"]:
        raise ValueError(f"pyproject.toml: {PACKAGE}'s backend handles the [project] keys {sorted(PROJECT_KEYS)} "
                         f"with dynamic = [\"version\"] (got {sorted(unknown)}, dynamic = {project.get('dynamic')})")
    return project


def _license():
    """The LICENSE file: next to this file in an sdist, at the top of the source tree otherwise."""
    for path in (os.path.join(HERE, "LICENSE"), os.path.join(os.path.dirname(HERE), "LICENSE")):
        if os.path.exists(path):
            return path
    return None


def _metadata(project, version):
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {version}"]
    if "description" in project:
        lines.append(f"Summary: {project['description']}")
    if "license" in project:
        lines.append(f"License: {project['license']['text']}")
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    lines += [f"Requires-Dist: {d}" for d in project.get("dependencies", [])]
    return "\n".join(lines) + "\n"


def _dist_info(project, version):
    """(directory name, {file name: bytes}) of the .dist-info, RECORD aside."""
    files = {"METADATA": _metadata(project, version),
             "WHEEL": "Wheel-Version: 1.0\nGenerator: _aqinit_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    scripts = project.get("scripts", {})
    if scripts:
        files["entry_points.txt"] = "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())
    files = {name: text.encode() for name, text in files.items()}
    if _license():
        files["LICENSE"] = _read(_license())
    return f"{project['name']}-{version}.dist-info", files


def _package_files():
    """(name in the archive, path) of each file of the package, sorted; no bytecode, no hidden files."""
    found = []
    for root, dirs, files in os.walk(os.path.join(HERE, PACKAGE)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        for name in sorted(files):
            if not name.endswith((".pyc", ".pyo")) and not name.startswith("."):
                path = os.path.join(root, name)
                found.append((os.path.relpath(path, HERE).replace(os.sep, "/"), path))
    return found


def _zip_add(zf, name, data):
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def _wheel(directory, entries):
    """Write the wheel of @entries ((name, bytes) of the files outside the .dist-info) and return its
    file name; RECORD lists every file with its sha256 and size."""
    project, version = _project(), _version()
    dist_info, meta = _dist_info(project, version)
    entries = list(entries) + [(f"{dist_info}/{name}", data) for name, data in meta.items()]
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([name, f"sha256={digest}", len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    filename = f"{project['name']}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, filename), "w") as zf:
        for name, data in entries + [(f"{dist_info}/RECORD", record.getvalue().encode())]:
            _zip_add(zf, name, data)
    return filename


def _prepare_metadata(metadata_directory):
    dist_info, meta = _dist_info(_project(), _version())
    os.makedirs(os.path.join(metadata_directory, dist_info), exist_ok=True)
    for name, data in meta.items():
        with open(os.path.join(metadata_directory, dist_info, name), "wb") as f:
            f.write(data)
    return dist_info


# --- PEP 517 / PEP 660 hooks

def get_requires_for_build_wheel(config_settings=None):
    return []


get_requires_for_build_sdist = get_requires_for_build_editable = get_requires_for_build_wheel


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _prepare_metadata(metadata_directory)


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, ((name, _read(path)) for name, path in _package_files()))


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """A wheel whose only file is a .pth putting this directory on sys.path."""
    return _wheel(wheel_directory, [(f"_{PACKAGE}_editable.pth", (HERE + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    project, version = _project(), _version()
    base = f"{project['name']}-{version}"
    files = [("pyproject.toml", _read(os.path.join(HERE, "pyproject.toml"))),
             (os.path.basename(__file__), _read(os.path.abspath(__file__))),
             ("PKG-INFO", _metadata(project, version).encode())]
    files += [(name, _read(path)) for name, path in _package_files()]
    if _license():
        files.append(("LICENSE", _read(_license())))
    filename = base + ".tar.gz"
    with gzip.GzipFile(os.path.join(sdist_directory, filename), "wb", mtime=EPOCH) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(f"{base}/{name}")
            info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
            tar.addfile(info, io.BytesIO(data))
    return filename
