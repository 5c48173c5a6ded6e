# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""The binding's contract: library discovery, prototypes and constants against the header, errors,
options, formats, Hessian and quant arrays — each checked against an independent computation
(numpy, the header text, the file layout of docs/formats.md)."""
import ctypes
import gc
import json
import os
import re
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import aqinit
from aqinit import _lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = os.path.join(ROOT, "include", "aqinit.h")
PYDIR = os.path.join(ROOT, "python")


@pytest.fixture
def ctx():
    with aqinit.Context(threads=2, seed=11) as c:
        yield c


def header_text():
    with open(HEADER) as f:
        return f.read()


# ---------------------------------------------------------------------------------------------
# Loading the library
# ---------------------------------------------------------------------------------------------

def test_the_loaded_library_is_the_one_named_by_AQINIT_LIBRARY():
    env = os.environ.get("AQINIT_LIBRARY")
    if not env:
        pytest.skip("AQINIT_LIBRARY is not set (meson test sets it)")
    assert os.path.samefile(_lib.lib_path, env)
    # The mapping the dynamic loader made, not just what the binding says it asked for.
    with open("/proc/self/maps") as f:
        mapped = {line.split()[-1] for line in f if "libaqinit" in line}
    assert mapped, "no libaqinit mapped into the process"
    assert all(os.path.samefile(m, env) for m in mapped), mapped


def _import_in_subprocess(env_value):
    env = {k: v for k, v in os.environ.items() if k != "AQINIT_LIBRARY"}
    env["PYTHONPATH"] = PYDIR
    if env_value is not None:
        env["AQINIT_LIBRARY"] = env_value
    return subprocess.run([sys.executable, "-c", "import aqinit; print(aqinit._lib.lib_path)"], env=env,
                          capture_output=True, text=True, timeout=60)


def test_an_unloadable_AQINIT_LIBRARY_is_an_error_not_a_fallback(tmp_path):
    r = _import_in_subprocess(str(tmp_path / "no-such-libaqinit.so"))
    assert r.returncode != 0
    assert "AQINIT_LIBRARY" in r.stderr and "no-such-libaqinit.so" in r.stderr


def _is_sanitized(build_dir):
    try:
        with open(os.path.join(build_dir, "meson-info", "intro-buildoptions.json")) as f:
            opts = {o["name"]: o["value"] for o in json.load(f)}
    except OSError:
        return False
    return opts.get("b_sanitize", "none") != "none"


def test_without_AQINIT_LIBRARY_the_build_trees_follow_the_system(monkeypatch):
    """The build trees in their order (the system's library before them: test_packaging.py)."""
    for name in ("AQINIT_LIBRARY", "LD_LIBRARY_PATH", "PKG_CONFIG_PATH"):  # meson test sets LD_LIBRARY_PATH
        monkeypatch.delenv(name, raising=False)
    system_has_one = next(_lib._system_candidates(), None) is not None
    monkeypatch.setattr(_lib, "_system_candidates", lambda: iter(()))
    candidates = list(_lib._candidates())
    trees = [d for d in sorted(os.listdir(ROOT)) if d.startswith("build")
             and os.path.exists(os.path.join(ROOT, d, "libaqinit", "libaqinit.so"))]
    usable = [os.path.join(ROOT, d, "libaqinit", "libaqinit.so") for d in trees
              if not _is_sanitized(os.path.join(ROOT, d))]
    if not usable:
        pytest.skip("no unsanitized build tree")
    assert candidates[:len(usable)] == sorted(usable, key=lambda p: (not p.endswith("/build/libaqinit/libaqinit.so"), p))
    assert all(os.path.join(ROOT, d, "libaqinit", "libaqinit.so") not in candidates
               for d in trees if _is_sanitized(os.path.join(ROOT, d)))
    # And a fresh interpreter without the variable really loads the first of them (when the
    # system has no libaqinit).
    if system_has_one:
        pytest.skip("the system has a libaqinit, which comes first")
    r = _import_in_subprocess(None)
    assert r.returncode == 0, r.stderr
    assert os.path.samefile(r.stdout.strip(), candidates[0])


# ---------------------------------------------------------------------------------------------
# Version, constants, prototypes against the header
# ---------------------------------------------------------------------------------------------

def _version_header():
    """The generated aqinit_version.h of the build the library comes from."""
    build = os.path.dirname(os.path.dirname(os.path.realpath(_lib.lib_path)))
    path = os.path.join(build, "include", "aqinit_version.h")
    if not os.path.exists(path):
        pytest.skip("generated aqinit_version.h not found next to the library")
    with open(path) as f:
        return f.read()


def test_version_matches_the_header_macros():
    text = _version_header()
    macro = {m.group(1): m.group(2) for m in re.finditer(r"#define (AQ_VERSION_\w+) (.+)", text)}
    major, minor, patch = (int(macro["AQ_VERSION_" + k]) for k in ("MAJOR", "MINOR", "PATCH"))
    assert aqinit.version() == (major, minor, patch)
    assert aqinit.version_string() == macro["AQ_VERSION_STRING"].strip('"')
    assert _lib.lib.aq_version() == major * 10000 + minor * 100 + patch
    assert aqinit.VERSION_NUMBER == major * 10000 + minor * 100 + patch
    assert (aqinit.VERSION_MAJOR, aqinit.VERSION_MINOR, aqinit.VERSION_PATCH) == (major, minor, patch)


def test_every_integer_macro_of_the_header_has_its_runtime_twin():
    macros = {m.group(1): int(m.group(2))
              for m in re.finditer(r"^#define (AQ_\w+)\s+(-?\d+)\b", header_text(), flags=re.M)}
    assert len(macros) > 50
    for name, value in macros.items():
        assert aqinit.constant(name) == value, name
        assert getattr(aqinit, name[3:]) == value, name  # exposed without the prefix
    with pytest.raises(KeyError):
        aqinit.constant("AQ_NO_SUCH_CONSTANT")


_C_TYPES = {"int": ctypes.c_int, "int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64, "uint32_t": ctypes.c_uint32,
            "uint64_t": ctypes.c_uint64, "double": ctypes.c_double, "size_t": ctypes.c_size_t, "void": None}


def _kind(c_type):
    """Coarse class of a C type: 'ptr', 'fn' (a callback typedef) or the ctypes scalar."""
    c_type = re.sub(r"\bconst\b", "", c_type).strip()
    if "*" in c_type:
        return "ptr"
    if c_type.endswith("_fn"):
        return "fn"
    return _C_TYPES[c_type]


def _ctypes_kind(t):
    if t is None:
        return None
    if isinstance(t, type) and issubclass(t, ctypes._CFuncPtr):
        return "fn"
    if t in (ctypes.c_void_p, ctypes.c_char_p) or (isinstance(t, type) and issubclass(t, ctypes._Pointer)):
        return "ptr"
    return t


def _header_prototypes():
    text = re.sub(r"/\*.*?\*/", "", header_text(), flags=re.S)
    protos = {}
    for m in re.finditer(r"AQ_API\s+([\w\s\*]+?)\s*\b(aq_\w+)\s*\(([^)]*)\)\s*;", text):
        ret, name, params = m.group(1), m.group(2), m.group(3).strip()
        args = [] if params == "void" else [re.sub(r"\w+$", "", p.strip()) for p in params.split(",")]
        protos[name] = (_kind(ret), [_kind(a) for a in args])
    return protos


def test_every_declared_prototype_matches_the_header():
    header = _header_prototypes()
    assert len(header) > 60
    declared = {name: (res, args) for name, (res, args) in _lib._PROTOTYPES.items()}
    for name in _lib.ALGORITHMS:
        fn = _lib.algorithm(name)
        if fn is not None:
            declared[name] = (fn.restype, fn.argtypes)
    for name, (res, args) in declared.items():
        assert name in header, name
        h_res, h_args = header[name]
        assert _ctypes_kind(res) == h_res, (name, "return type")
        assert [_ctypes_kind(a) for a in args] == h_args, (name, "parameters")


def test_the_binding_declares_every_exported_function():
    with open(os.path.join(ROOT, "libaqinit", "aqinit.map")) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    exported = set()
    for node in text.split("global:")[1:]:  # every version node (AQINIT_0, AQINIT_0.2, ...)
        exported |= {s.strip() for s in node.split("}")[0].split("local:")[0].split(";") if s.strip()}
    assert {"aq_init", "aq_format_parse_ctx"} <= exported
    covered = set(_lib._PROTOTYPES) | set(_lib.ALGORITHMS)
    # Not wrapped on purpose: a Python allocator would run on worker threads for every allocation,
    # and aq_context_last_error returns a pointer that copy_last_error replaces safely.
    assert exported - covered <= {"aq_context_create_with_allocator", "aq_context_last_error"}
    # Every lib.aq_* the package calls has a prototype (no call through ctypes' int default).
    src = "".join(open(os.path.join(PYDIR, "aqinit", f)).read()
                  for f in os.listdir(os.path.join(PYDIR, "aqinit")) if f.endswith(".py"))
    called = set(re.findall(r"\blib\.(aq_\w+)", src))
    assert called and called <= set(_lib._PROTOTYPES)


# ---------------------------------------------------------------------------------------------
# Context and errors
# ---------------------------------------------------------------------------------------------

def test_context_settings_round_trip(ctx):
    assert ctx.threads == 2
    ctx.seed = 2 ** 63 + 5  # uint64
    assert ctx.seed == 2 ** 63 + 5
    online = min(os.sysconf("SC_NPROCESSORS_ONLN"), 1024)
    ctx.threads = 0  # all online CPUs
    assert ctx.threads == online
    with pytest.raises(aqinit.AqError) as info:
        ctx.threads = -1
    assert info.value.status == aqinit.ERR_INVALID_ARG == -1
    assert "aq_context_set_threads" in info.value.message and "-1" in info.value.message
    assert ctx.threads == online  # unchanged


def test_errors_carry_status_name_message_and_description(ctx):
    h = aqinit.Hessian(ctx, 8)
    with pytest.raises(aqinit.AqError) as info:
        h.merge(aqinit.Hessian(ctx, 5))
    e = info.value
    assert (e.status, e.name) == (-2, "AQ_ERR_SHAPE")
    assert e.description == "sizes do not fit together"  # aq_strerror without the name
    assert "aq_hessian_merge" in e.message and str(e) == "AQ_ERR_SHAPE: " + e.message
    assert ctx.last_error() == e.message
    # A later failure with another status never reports that stale message.
    with pytest.raises(aqinit.AqError) as info:
        aqinit._check(aqinit.ERR_NOMEM, ctx)
    assert info.value.message == "out of memory"
    ctx.clear_error()
    assert ctx.last_error() == ""


def test_log_callback_receives_failures_and_is_kept_alive(ctx):
    got = []
    ctx.set_log(lambda level, msg: got.append((level, msg)), aqinit.LOG_ERROR)
    gc.collect()  # the CFUNCTYPE object must survive: only the context holds it
    with pytest.raises(aqinit.AqError) as info:
        aqinit.Hessian(ctx, 4).merge(aqinit.Hessian(ctx, 3))
    assert got == [(aqinit.LOG_ERROR, info.value.message)]
    ctx.set_log(None)
    with pytest.raises(aqinit.AqError):
        aqinit.Hessian(ctx, 4).merge(aqinit.Hessian(ctx, 3))
    assert len(got) == 1


def test_closed_handles_refuse_use():
    c = aqinit.Context()
    q = aqinit.Quant(c, "1x4g2", 2, 4)
    o = aqinit.Options(c)
    c.close()
    c.close()  # twice is fine
    for use in (lambda: q.codes, lambda: o.get("BEAM_WIDTH"), lambda: c.threads):
        with pytest.raises(ValueError):
            use()


CYCLE = """
import gc, aqinit
gc.disable()
ctx = aqinit.Context()
handles = [aqinit.Hessian(ctx, 4), aqinit.Quant(ctx, "1x4g2", 2, 4), aqinit.Options(ctx)]
ctx.cycle = handles          # ctx -> handles -> ctx: cyclic garbage together
handles.append(ctx)
del ctx, handles
gc.collect()                 # weak references are cleared before any finaliser runs
print("collected")
"""


def test_a_context_and_its_handles_collected_together_free_in_order():
    # Regression: with a WeakSet of handles the context was freed first and each handle's free
    # then read the freed context (segfault).
    r = subprocess.run([sys.executable, "-c", CYCLE], env=dict(os.environ, PYTHONPATH=PYDIR), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "collected", (r.returncode, r.stderr)


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------

def test_option_defaults_are_those_the_header_documents(ctx):
    o = aqinit.Options(ctx)
    documented = {m.group(1): float(m.group(2)) for m in re.finditer(
        r"#define AQ_OPT_(\w+)\s+\d+\s*/\*\*<\s*(?:int|double):[^*]*?default (-?[0-9.e-]+)", header_text())}
    assert len(documented) >= 15
    for name, value in documented.items():
        assert o.get(name) == pytest.approx(value), name


def test_options_pick_the_typed_setter_and_validate(ctx):
    o = aqinit.Options(ctx, EM_TOL=0, INIT_METHOD=1.0, BEAM_WIDTH=np.int64(4))
    assert o.get("EM_TOL") == 0.0 and isinstance(o.get("EM_TOL"), float)
    assert o.get(aqinit.OPT_INIT_METHOD) == aqinit.INIT_OA_EM and isinstance(o.get("INIT_METHOD"), int)
    assert o.get("AQ_OPT_BEAM_WIDTH") == 4
    with pytest.raises(TypeError):
        o.set("BEAM_WIDTH", 2.5)
    with pytest.raises(aqinit.AqError) as info:
        o.set("BEAM_WIDTH", 65)
    assert info.value.status == aqinit.ERR_INVALID_ARG and "AQ_OPT_BEAM_WIDTH" in info.value.message
    with pytest.raises(aqinit.AqError) as info:
        o.set_double(aqinit.OPT_EM_TOL, float("nan"))
    assert info.value.status == aqinit.ERR_NONFINITE
    with pytest.raises(aqinit.AqError) as info:
        o.set_int(aqinit.OPT_EM_TOL, 1)  # the raw typed setter keeps the library's type check
    assert info.value.status == aqinit.ERR_INVALID_ARG and "double" in info.value.message
    with pytest.raises(aqinit.AqError):
        o.set(9999, 1)
    with pytest.raises(KeyError):
        o.set("NO_SUCH_OPTION", 1)
    assert o.get("BEAM_WIDTH") == 4 and o.get("EM_TOL") == 0.0  # failures changed nothing
    c = o.clone()
    c.set("BEAM_WIDTH", 8)
    assert (o.get("BEAM_WIDTH"), c.get("BEAM_WIDTH"), c.get("EM_TOL")) == (4, 8, 0.0)


# ---------------------------------------------------------------------------------------------
# Format
# ---------------------------------------------------------------------------------------------

def aqlm_bits_per_parameter(M, B, g, go, rows, cols, scales=True):
    """AQLM's estimate_nbits_per_parameter: codes + fp16 codebooks (+ fp16 scales)."""
    bits = rows * cols / (go * g) * M * B + M * 2 ** B * go * g * 16 + (rows / go * 16 if scales else 0)
    return bits / (rows * cols)


@pytest.mark.parametrize("text,fields", [("2x8g8", (2, 8, 8, 1)), ("1x16g8", (1, 16, 8, 1)),
                                         ("1x8g4", (1, 8, 4, 1)), ("3x6g4o2", (3, 6, 4, 2))])
def test_format_fields_bits_and_rho(text, fields):
    f = aqinit.Format(text)
    assert (f.num_codebooks, f.bits_per_codebook, f.in_group_size, f.out_group_size) == fields
    assert f.scale_mode == aqinit.SCALE_PER_OUTPUT_GROUP and f.codebook_size == 2 ** fields[1]
    M, B, g, go = fields
    for rows, cols in ((4096, 4096), (512, 1024)):
        assert f.bits_per_parameter(rows, cols) == pytest.approx(aqlm_bits_per_parameter(M, B, g, go, rows, cols),
                                                                rel=1e-12)
        assert f.rho(rows, cols) == pytest.approx(rows / go * cols / g / 2.0 ** (M * B), rel=1e-12)
    none = aqinit.Format(text, scale_mode=aqinit.SCALE_NONE)
    assert none.bits_per_parameter(512, 1024) == pytest.approx(
        aqlm_bits_per_parameter(M, B, g, go, 512, 1024, scales=False), rel=1e-12)
    assert none != f and aqinit.Format(text) == f


def test_aqlm_reference_bit_rates():
    assert round(aqinit.Format("1x16g8").bits_per_parameter(4096, 4096), 3) == 2.504
    assert round(aqinit.Format("2x8g8").bits_per_parameter(4096, 4096), 3) == 2.008


def test_format_errors_explain_themselves():
    for bad in ("2x17g8", "0x8", "2y8", "2x8g0", ""):
        with pytest.raises(aqinit.AqError) as info:
            aqinit.Format(bad)
        assert info.value.status == aqinit.ERR_INVALID_ARG and repr(bad) in info.value.message
    f = aqinit.Format("2x8g8")
    with pytest.raises(aqinit.AqError) as info:
        f.bits_per_parameter(64, 30)
    assert info.value.status == aqinit.ERR_SHAPE and "not divisible" in info.value.message
    f.in_group_size = 6
    assert f.text == "2x8g6o1" and f.rho(64, 30) == pytest.approx(64 * 5 / 2 ** 16)
    with pytest.raises(TypeError):
        aqinit.Format("2x8g8", no_such_field=1)


# ---------------------------------------------------------------------------------------------
# Hessian
# ---------------------------------------------------------------------------------------------

def test_hessian_reads_any_numpy_layout(ctx):
    rng = np.random.default_rng(21)
    base = rng.standard_normal((90, 30)).astype(np.float32)
    for X in (base[::-1], base[::3], np.asfortranarray(base), base[:, 5:17]):
        h = aqinit.Hessian(ctx, X.shape[1])
        h.add(X)
        X64 = X.astype(np.float64)
        np.testing.assert_allclose(h.matrix(), X64.T @ X64 / X.shape[0], rtol=1e-10, atol=1e-12)
    with pytest.raises(TypeError):
        aqinit.Hessian(ctx, 30).add(base.astype(np.float16))
    with pytest.raises(TypeError):
        aqinit.Hessian(ctx, 30).add(base.tolist())


def test_nonfinite_inputs_leave_the_hessian_unchanged(ctx):
    rng = np.random.default_rng(22)
    h = aqinit.Hessian(ctx, 12)
    X = rng.standard_normal((25, 12)).astype(np.float32)
    h.add(X)
    for value in (np.nan, np.inf, -np.inf):
        bad = rng.standard_normal((9, 12)).astype(np.float32)
        bad[8, 11] = value
        with pytest.raises(aqinit.AqError) as info:
            h.add(bad)
        assert info.value.status == aqinit.ERR_NONFINITE == -5 and info.value.name == "AQ_ERR_NONFINITE"
    assert h.n_samples == 25
    np.testing.assert_allclose(h.matrix(), X.astype(np.float64).T @ X.astype(np.float64) / 25, rtol=1e-10)


def test_merge_of_unequal_batches_equals_one_accumulation(ctx):
    rng = np.random.default_rng(23)
    parts = [rng.standard_normal((n, 20)).astype(np.float32) * s for n, s in ((3, 1.0), (40, 0.1), (117, 5.0))]
    total = aqinit.Hessian(ctx, 20)
    for p in parts:
        h = aqinit.Hessian(ctx, 20)
        h.add(p)
        total.merge(h)
    X = np.vstack(parts).astype(np.float64)
    assert total.n_samples == X.shape[0] and total.n_inputs == 20
    np.testing.assert_allclose(total.matrix(), X.T @ X / X.shape[0], rtol=1e-10, atol=1e-12)


def test_diagonal_block_and_damping_agree_with_the_full_matrix(ctx):
    rng = np.random.default_rng(24)
    h = aqinit.Hessian(ctx, 24)
    h.add(rng.standard_normal((60, 24)).astype(np.float32))
    full = h.matrix()
    assert full.dtype == np.float64 and full.shape == (24, 24)
    np.testing.assert_array_equal(full, full.T)
    for lam in (0.0, 0.1):
        shift = lam * np.trace(full) / 24
        np.testing.assert_allclose(h.matrix(lam), full + shift * np.eye(24), rtol=1e-13)
        np.testing.assert_allclose(h.diagonal(lam), np.diag(full) + shift, rtol=1e-13)
        for g, j in ((4, 0), (4, 5), (6, 3), (24, 0), (5, 3)):
            np.testing.assert_allclose(h.block(g, j, lam), full[g * j:g * j + g, g * j:g * j + g] + shift * np.eye(g),
                                       rtol=1e-13)
    with pytest.raises(aqinit.AqError) as info:
        h.block(8, 3)  # inputs 24..31 do not exist
    assert info.value.status == aqinit.ERR_SHAPE


def test_hessian_from_matrix(ctx):
    rng = np.random.default_rng(25)
    A = rng.standard_normal((10, 6))
    H = A.T @ A / 10
    h = aqinit.Hessian.from_matrix(ctx, H, 10)
    np.testing.assert_array_equal(h.matrix(), H)
    assert h.n_samples == 10
    asym = H.copy()
    asym[0, 1] += 1.0
    with pytest.raises(aqinit.AqError) as info:
        aqinit.Hessian.from_matrix(ctx, asym, 10)
    assert info.value.status == aqinit.ERR_NOT_PSD
    bad = H.copy()
    bad[2, 2] = np.nan
    with pytest.raises(aqinit.AqError) as info:
        aqinit.Hessian.from_matrix(ctx, bad, 10)
    assert info.value.status == aqinit.ERR_NONFINITE


def test_hessian_file_is_the_documented_layout(ctx, tmp_path):
    rng = np.random.default_rng(26)
    X = rng.standard_normal((33, 7)).astype(np.float32)
    h = aqinit.Hessian(ctx, 7)
    h.add(X)
    path = tmp_path / "h.aqh"
    h.save(path)
    data = path.read_bytes()
    T = 7
    assert len(data) == 36 + 4 * T * (T + 1)
    assert data[:8] == b"AQHESS\x00\x01"
    version, reserved, n_inputs, n_samples = struct.unpack_from("<IIQQ", data, 8)
    assert (version, reserved, n_inputs, n_samples) == (1, 0, 7, 33)
    upper = np.frombuffer(data, dtype="<f8", count=T * (T + 1) // 2, offset=32)
    np.testing.assert_array_equal(upper, h.matrix()[np.triu_indices(T)])
    assert struct.unpack_from("<I", data, len(data) - 4)[0] == zlib.crc32(data[:-4])
    g = aqinit.Hessian.load(ctx, path)
    np.testing.assert_array_equal(g.matrix(), h.matrix())
    assert g.n_samples == 33
    corrupt = bytearray(data)
    corrupt[40] ^= 1
    (tmp_path / "bad.aqh").write_bytes(bytes(corrupt))
    with pytest.raises(aqinit.AqError) as info:
        aqinit.Hessian.load(ctx, tmp_path / "bad.aqh")
    assert info.value.status == aqinit.ERR_FORMAT
    with pytest.raises(aqinit.AqError) as info:
        aqinit.Hessian.load(ctx, tmp_path / "missing.aqh")
    assert info.value.status == aqinit.ERR_IO


# ---------------------------------------------------------------------------------------------
# Quant
# ---------------------------------------------------------------------------------------------

def numpy_dequantize(codes, codebooks, scales):
    """Ŵ[p·g_o + t, j·g + a] = s_p Σ_m C_m[codes[p, j, m]][t][a] (docs/formats.md, quant.h)."""
    P, J, M = codes.shape
    go, g = codebooks.shape[2:]
    W = np.zeros((P, go, J, g))
    for p in range(P):
        for j in range(J):
            for m in range(M):
                W[p, :, j, :] += codebooks[m, codes[p, j, m]]
        W[p] *= scales[p]
    return W.reshape(P * go, J * g)


def random_quant(ctx, rng, text, rows, cols, scale_mode=None):
    fmt = aqinit.Format(text) if scale_mode is None else aqinit.Format(text, scale_mode=scale_mode)
    q = aqinit.Quant(ctx, fmt, rows, cols)
    P, J, M, K = rows // fmt.out_group_size, cols // fmt.in_group_size, fmt.num_codebooks, fmt.codebook_size
    codes = rng.integers(0, K, size=(P, J, M)).astype(np.uint8 if fmt.bits_per_codebook <= 8 else np.uint16)
    books = rng.standard_normal((M, K, fmt.out_group_size, fmt.in_group_size)).astype(np.float32)
    scales = (rng.uniform(0.5, 2.0, P) if fmt.scale_mode == aqinit.SCALE_PER_OUTPUT_GROUP else np.ones(P))
    q.codes, q.codebooks, q.scales = codes, books, scales.astype(np.float32)
    return q, codes, books, scales.astype(np.float32)


@pytest.mark.parametrize("text,rows,cols,scale_mode", [
    ("1x8g4", 6, 16, None), ("2x4g4o2", 8, 12, None), ("1x10g2", 4, 6, None), ("3x3g2o4", 8, 10, None),
    ("2x5g3", 5, 9, aqinit.SCALE_NONE)])
def test_copies_round_trip_and_dequantize_equals_numpy(ctx, text, rows, cols, scale_mode):
    rng = np.random.default_rng(31)
    q, codes, books, scales = random_quant(ctx, rng, text, rows, cols, scale_mode)
    fmt = q.format
    assert q.shape == (rows, cols) and fmt == aqinit.Format(text, **({} if scale_mode is None
                                                                        else {"scale_mode": scale_mode}))
    out_codes = q.codes
    assert out_codes.dtype == codes.dtype and out_codes.shape == codes.shape
    np.testing.assert_array_equal(out_codes, codes)
    np.testing.assert_array_equal(q.codebooks, books)
    np.testing.assert_array_equal(q.scales, scales)
    Wq = q.dequantize()
    assert Wq.dtype == np.float32 and Wq.shape == (rows, cols)
    np.testing.assert_allclose(Wq, numpy_dequantize(codes, books, scales), rtol=1e-5, atol=1e-5)


def test_copy_in_validates_and_changes_nothing_on_failure(ctx):
    rng = np.random.default_rng(32)
    q, codes, books, scales = random_quant(ctx, rng, "2x4g4", 4, 8)
    bad = codes.astype(np.int64)
    bad[1, 1, 1] = 16  # == K
    with pytest.raises(aqinit.AqError) as info:
        q.codes = bad
    assert info.value.status == aqinit.ERR_INVALID_ARG
    bad[1, 1, 1] = 256 + 3  # would wrap around to the valid code 3 as uint8
    with pytest.raises(aqinit.AqError):
        q.codes = bad
    bad[1, 1, 1] = -1
    with pytest.raises(aqinit.AqError):
        q.codes = bad
    with pytest.raises(TypeError):
        q.codes = codes.astype(np.float32)
    with pytest.raises(ValueError):
        q.codes = codes[:, :1]
    nan_books = books.copy()
    nan_books[1, 3, 0, 2] = np.nan
    with pytest.raises(aqinit.AqError) as info:
        q.codebooks = nan_books
    assert info.value.status == aqinit.ERR_NONFINITE
    with pytest.raises(aqinit.AqError):
        q.scales = np.array([1, 2, np.inf, 1], dtype=np.float32)
    np.testing.assert_array_equal(q.codes, codes)
    np.testing.assert_array_equal(q.codebooks, books)
    np.testing.assert_array_equal(q.scales, scales)
    none = aqinit.Quant(ctx, aqinit.Format("1x4g4", scale_mode=aqinit.SCALE_NONE), 4, 8)
    with pytest.raises(aqinit.AqError):
        none.scales = np.full(4, 2.0, dtype=np.float32)
    q.codes = codes.astype(np.int32)  # a lossless integer conversion is accepted
    np.testing.assert_array_equal(q.codes, codes)


def test_the_array_properties_are_read_only_copies(ctx):
    """A write into q.codes / .codebooks / .scales would be lost: it raises; assigning a whole array
    (validated, copied in) is how they change, and an array read earlier keeps its values."""
    q, codes, books, scales = random_quant(ctx, np.random.default_rng(33), "2x4g4", 4, 8)
    arrays = {"codes": q.codes, "codebooks": q.codebooks, "scales": q.scales}
    for name, a in arrays.items():
        assert not a.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            a.flat[0] = 1
        with pytest.raises(ValueError, match="read-only"):
            a += 1
        assert not a.view().flags.writeable and not a.reshape(-1).flags.writeable, name
    new = (((codes + 1) % 16).astype(np.uint8), books * 2, scales + 1)
    for values in ((codes, books, scales), new):  # unchanged by the refused writes, then assigned
        for got, expected in zip((q.codes, q.codebooks, q.scales), values):
            np.testing.assert_array_equal(got, expected)
        q.codes, q.codebooks, q.scales = new
    np.testing.assert_array_equal(arrays["codes"], codes)  # a copy, not a view of the library's memory
    edited = arrays["codebooks"].copy()  # the way to edit one element
    edited[0, 0, 0, 0] = 7.0
    q.codebooks = edited
    assert q.codebooks[0, 0, 0, 0] == 7.0 and q.codebooks.flags.writeable is False


def test_output_error_and_mse_equal_numpy_for_strided_weights(ctx):
    rng = np.random.default_rng(33)
    q, codes, books, scales = random_quant(ctx, rng, "2x4g4o2", 8, 16)
    H = aqinit.Hessian(ctx, 16)
    H.add((rng.standard_normal((200, 16)) * np.linspace(0.1, 3, 16)).astype(np.float32))
    Hm = H.matrix()
    big = rng.standard_normal((8, 40)).astype(np.float32)
    Wq = numpy_dequantize(codes, books, scales)
    for W in (big[:, 3:19], np.asfortranarray(big[:, :16]), big[:, :16].copy()):
        W64 = W.astype(np.float64)
        D = W64 - Wq
        expected = np.trace(D @ Hm @ D.T) / np.trace(W64 @ Hm @ W64.T)
        assert q.output_error(W, H) == pytest.approx(expected, rel=1e-5)
        assert q.weight_mse(W) == pytest.approx(np.mean(D ** 2), rel=1e-5)
    with pytest.raises(aqinit.AqError) as info:
        q.output_error(big[:, :12], H)
    assert info.value.status == aqinit.ERR_SHAPE
    with pytest.raises(TypeError):
        q.weight_mse(big[:, :16].astype(np.float64))


def test_quant_file_is_the_documented_layout(ctx, tmp_path):
    rng = np.random.default_rng(34)
    q, codes, books, scales = random_quant(ctx, rng, "2x10g2o2", 4, 6)
    path = tmp_path / "q.aqq"
    q.save(path)
    data = path.read_bytes()
    assert data[:8] == b"AQQUANT\x00"
    head = struct.unpack_from("<IIQQIIIIII", data, 8)
    assert head == (1, 0, 4, 6, 2, 10, 2, 2, aqinit.SCALE_PER_OUTPUT_GROUP, 0)
    off = 56
    got_codes = np.frombuffer(data, "<u2", codes.size, off).reshape(codes.shape)
    off += codes.size * 2
    got_books = np.frombuffer(data, "<f4", books.size, off).reshape(books.shape)
    off += books.size * 4
    got_scales = np.frombuffer(data, "<f4", scales.size, off)
    off += scales.size * 4
    assert off + 4 == len(data)
    assert struct.unpack_from("<I", data, off)[0] == zlib.crc32(data[:off])
    np.testing.assert_array_equal(got_codes, codes)
    np.testing.assert_array_equal(got_books, books)
    np.testing.assert_array_equal(got_scales, scales)
    r = aqinit.Quant.load(ctx, path)
    assert r.format == q.format and r.shape == q.shape
    np.testing.assert_array_equal(r.dequantize(), q.dequantize())
    (tmp_path / "h.aqh").write_bytes(b"AQHESS\x00\x01" + bytes(40))
    with pytest.raises(aqinit.AqError) as info:
        aqinit.Quant.load(ctx, tmp_path / "h.aqh")
    assert info.value.status == aqinit.ERR_FORMAT


def test_clone_is_a_deep_copy(ctx):
    rng = np.random.default_rng(35)
    q, codes, books, scales = random_quant(ctx, rng, "1x6g4", 4, 8)
    c = q.clone()
    c.codes = (codes + 1) % 64
    c.scales = scales * 2
    np.testing.assert_array_equal(q.codes, codes)
    np.testing.assert_array_equal(q.scales, scales)
    np.testing.assert_allclose(c.dequantize(), numpy_dequantize((codes + 1) % 64, books, scales * 2), rtol=1e-5,
                               atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Algorithms and progress
# ---------------------------------------------------------------------------------------------

def small_layer(ctx, rng, rows=32, cols=32):
    W = rng.standard_normal((rows, cols)).astype(np.float32)
    H = aqinit.Hessian(ctx, cols)
    H.add((rng.standard_normal((400, cols)) * np.logspace(0, -1, cols)).astype(np.float32))
    return W, H


@pytest.mark.skipif(not (aqinit.has_algorithm("init") and aqinit.has_algorithm("optimize")),
                    reason="aq_init / aq_optimize not in this build")
def test_cancelling_optimize_returns_cancelled_and_keeps_the_quant(ctx):
    rng = np.random.default_rng(41)
    W, H = small_layer(ctx, rng)
    q = aqinit.Quant(ctx, "2x4g4", 32, 32)
    opts = aqinit.Options(ctx, MAX_EPOCHS=3, REL_TOL=0.0)
    aqinit.init(ctx, q, W, H, opts)
    before = (q.codes, q.codebooks, q.scales)
    seen = []
    ctx.set_progress(lambda op, stage, n, rnd, obj: seen.append((op, stage, n, obj)) or True)
    gc.collect()
    with pytest.raises(aqinit.AqError) as info:
        aqinit.optimize(ctx, q, W, H, opts)
    assert info.value.status == aqinit.ERR_CANCELLED == -9 and "cancelled" in info.value.message
    assert len(seen) == 1 and seen[0][0] == "optimize" and seen[0][2] == 3
    for a, b in zip(before, (q.codes, q.codebooks, q.scales)):
        np.testing.assert_array_equal(a, b)
    # The reported objective is the relative output error the numpy formula gives for some state
    # the optimiser reached: positive and below the error after initialisation.
    assert 0 < seen[0][3] <= q.output_error(W, H) * (1 + 1e-6)
    # Not cancelled: the same first epoch (same seed and state), then the run completes, and the
    # last objective reported is the numpy relative error of the final quant.
    objectives = []
    ctx.set_progress(lambda op, stage, n, rnd, obj: objectives.append(obj) and False)
    aqinit.optimize(ctx, q, W, H, opts)
    assert objectives[0] == pytest.approx(seen[0][3], rel=1e-9)
    Hm, W64 = H.matrix(), W.astype(np.float64)
    D = W64 - numpy_dequantize(q.codes, q.codebooks, q.scales)
    numpy_rel = np.trace(D @ Hm @ D.T) / np.trace(W64 @ Hm @ W64.T)
    assert objectives[-1] == pytest.approx(numpy_rel, rel=1e-5)
    assert objectives[-1] <= objectives[0] * (1 + 1e-9)


@pytest.mark.skipif(not aqinit.has_algorithm("beam_search"), reason="aq_beam_search not in this build")
def test_beam_search_does_not_increase_the_numpy_error(ctx):
    rng = np.random.default_rng(42)
    W, H = small_layer(ctx, rng)
    q, codes, books, scales = random_quant(ctx, rng, "2x4g4", 32, 32)
    Hm = H.matrix()

    def numpy_error():
        D = W.astype(np.float64) - numpy_dequantize(q.codes, books, scales)
        return np.trace(D @ Hm @ D.T)

    e0 = numpy_error()
    aqinit.beam_search(ctx, q, W, H, aqinit.Options(ctx, BEAM_WIDTH=2))
    e1 = numpy_error()
    assert e1 < 0.9 * e0
    np.testing.assert_array_equal(q.codebooks, books)  # only the codes move
    with pytest.raises(aqinit.AqError) as info:
        aqinit.beam_search(ctx, q, W[:16], H)
    assert info.value.status == aqinit.ERR_SHAPE


def test_missing_algorithms_raise_unsupported(monkeypatch, ctx):
    monkeypatch.setattr(_lib, "algorithm", lambda name: None)
    assert not aqinit.has_algorithm("init")
    q = aqinit.Quant(ctx, "1x4g2", 2, 4)
    with pytest.raises(aqinit.AqError) as info:
        aqinit.init(ctx, q, np.zeros((2, 4), np.float32))
    assert info.value.status == aqinit.ERR_UNSUPPORTED


def test_hessian_demo_example_runs():
    env = dict(os.environ, PYTHONPATH=PYDIR)
    r = subprocess.run([sys.executable, os.path.join(PYDIR, "examples", "hessian_demo.py"), "--inputs", "32",
                        "--rows", "100", "--batch", "33"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "inputs 32, samples 100" in r.stdout and "reloaded identical: True" in r.stdout
    err = float(re.search(r"max \|H - XᵀX/n\| / max \|H\|: (\S+)", r.stdout).group(1))
    assert err < 1e-12
