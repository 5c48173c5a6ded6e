# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Loading libaqinit and declaring the C prototypes (ctypes)."""
import ctypes
import ctypes.util
import glob
import json
import os
import subprocess

from ._version import __version__

c_int, c_int32, c_int64, c_uint32, c_uint64 = (ctypes.c_int, ctypes.c_int32, ctypes.c_int64,
                                               ctypes.c_uint32, ctypes.c_uint64)
c_size_t, c_double, c_char_p, c_void_p = ctypes.c_size_t, ctypes.c_double, ctypes.c_char_p, ctypes.c_void_p
P = ctypes.POINTER


class Format(ctypes.Structure):
    """struct aq_format (versioned by struct_size)."""
    _fields_ = [("struct_size", c_uint32), ("num_codebooks", c_int32), ("bits_per_codebook", c_int32),
                ("in_group_size", c_int32), ("out_group_size", c_int32), ("scale_mode", c_int32)]


class Progress(ctypes.Structure):
    """struct aq_progress."""
    _fields_ = [("struct_size", c_uint32), ("stage", c_int32), ("n_stages", c_int32), ("round", c_int32),
                ("operation", c_char_p), ("objective", c_double)]


class LayerReport(ctypes.Structure):
    """struct aq_layer_report."""
    _fields_ = [("struct_size", c_uint32), ("layer", c_int32), ("resumed", c_int32), ("init_error", c_double),
                ("final_error", c_double), ("init_seconds", c_double), ("optimize_seconds", c_double)]


NUM_LAYERS_FN = ctypes.CFUNCTYPE(c_int, P(c_int32), c_void_p)
LAYER_INFO_FN = ctypes.CFUNCTYPE(c_int, c_int32, P(c_char_p), P(c_int64), P(c_int64), c_void_p)
GET_WEIGHT_FN = ctypes.CFUNCTYPE(c_int, c_int32, c_void_p, c_void_p)
CALIBRATE_FN = ctypes.CFUNCTYPE(c_int, c_int32, c_void_p, c_void_p)
PUT_RESULT_FN = ctypes.CFUNCTYPE(c_int, c_int32, c_void_p, P(LayerReport), c_void_p)


class PipelineCallbacks(ctypes.Structure):
    """struct aq_pipeline_callbacks."""
    _fields_ = [("struct_size", c_uint32), ("num_layers", NUM_LAYERS_FN), ("layer_info", LAYER_INFO_FN),
                ("get_weight", GET_WEIGHT_FN), ("calibrate", CALIBRATE_FN), ("put_result", PUT_RESULT_FN),
                ("userdata", c_void_p)]


PROGRESS_FN = ctypes.CFUNCTYPE(c_int, P(Progress), c_void_p)
LOG_FN = ctypes.CFUNCTYPE(None, c_int32, c_char_p, c_void_p)

ALLREDUCE_F64_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_int64, c_void_p)
ALLREDUCE_F32_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_int64, c_void_p)
BROADCAST_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_int64, c_int32, c_void_p)
AGREE_FN = ctypes.CFUNCTYPE(c_int, P(c_int32), P(c_int32), c_void_p)


class CommStruct(ctypes.Structure):
    """struct aq_comm."""
    _fields_ = [("struct_size", c_uint32), ("rank", c_int32), ("size", c_int32),
                ("allreduce_sum_f64", ALLREDUCE_F64_FN), ("allreduce_sum_f32", ALLREDUCE_F32_FN),
                ("broadcast", BROADCAST_FN), ("agree", AGREE_FN), ("userdata", c_void_p)]


def _candidates():
    """Where to look, in order: $AQINIT_LIBRARY alone when it is set (an explicit path that cannot
    be loaded is an error, never a reason to load some other copy), else the system's library,
    else the meson build trees of the source tree this package sits in."""
    env = os.environ.get("AQINIT_LIBRARY")
    if env:
        yield env
        return
    yield from _system_candidates()
    yield from _build_tree_candidates()


def _system_candidates():
    """ctypes.util.find_library's (the loader's cache, LD_LIBRARY_PATH), then the files in
    `pkg-config --variable=libdir aqinit` (an install in a prefix named by PKG_CONFIG_PATH)."""
    found = ctypes.util.find_library("aqinit")
    if found:
        yield found
    libdir = _pkg_config_libdir()
    if libdir:
        yield from sorted(glob.glob(os.path.join(libdir, "libaqinit.so*")))


def _pkg_config_libdir():
    try:
        r = subprocess.run(["pkg-config", "--variable=libdir", "aqinit"], capture_output=True, text=True,
                           timeout=30)
    except (OSError, subprocess.SubprocessError):  # no pkg-config
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def _build_tree_candidates():
    """build*/libaqinit/libaqinit.so of the source tree (build/ first, sanitized builds skipped);
    nothing for an installed package."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.exists(os.path.join(root, "meson.build")):
        return
    builds = sorted(glob.glob(os.path.join(root, "build*", "libaqinit", "libaqinit.so")),
                    key=lambda p: (os.path.basename(os.path.dirname(os.path.dirname(p))) != "build", p))
    for path in builds:
        if not _sanitized(os.path.dirname(os.path.dirname(path))):
            yield path


def _sanitized(build_dir):
    """True for a meson build with sanitizers: its library cannot be loaded into python."""
    try:
        with open(os.path.join(build_dir, "meson-info", "intro-buildoptions.json")) as f:
            options = {o["name"]: o["value"] for o in json.load(f)}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return options.get("b_sanitize", "none") not in ("none", "", None)


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", c_char_p), ("dli_fbase", c_void_p), ("dli_sname", c_char_p), ("dli_saddr", c_void_p)]


def _open(name):
    """(CDLL, the file the loader mapped, its aq_version_string()) of @name, a path or a soname
    (find_library's); OSError if it cannot be loaded."""
    dll = ctypes.CDLL(name)
    try:
        version_fn = dll.aq_version_string
    except AttributeError:  # some other library of that name
        return dll, name, "unknown (no aq_version_string)"
    version_fn.restype, version_fn.argtypes = c_char_p, []
    path, info = name, _DlInfo()
    dladdr = getattr(ctypes.CDLL(None), "dladdr", None)
    if dladdr is not None:
        dladdr.argtypes = [c_void_p, P(_DlInfo)]
        if dladdr(ctypes.cast(version_fn, c_void_p), ctypes.byref(info)) and info.dli_fname:
            path = os.fsdecode(info.dli_fname)
    return dll, path, version_fn().decode(errors="replace")


def _load(candidates=None, expected=__version__):
    """(CDLL, path) of the first candidate that loads and is libaqinit @expected, the package's
    version. A library of another version is passed over; if no candidate fits, ImportError names
    the package's version and each library's path and version (OSError if none loaded at all)."""
    errors, others = [], []
    for name in _candidates() if candidates is None else candidates:
        try:
            dll, path, version = _open(name)
        except OSError as exc:
            errors.append(f"{name}: {exc}")
            continue
        if version == expected:
            return dll, path
        others.append(f"{path} is libaqinit {version}")
    if others:
        raise ImportError(f"the aqinit Python package {expected} needs libaqinit {expected}, but "
                          + "; ".join(others) + f". Point AQINIT_LIBRARY at a libaqinit.so {expected}, install "
                          "one, or use the binding of the library's version.")
    if os.environ.get("AQINIT_LIBRARY"):
        raise OSError("AQINIT_LIBRARY is set but cannot be loaded: " + "; ".join(errors))
    raise OSError("libaqinit not found; set AQINIT_LIBRARY to the path of libaqinit.so, install it (the "
                  "dynamic loader's path or pkg-config), or build it with meson in build/ of the source tree. "
                  "Tried: " + ("; ".join(errors) or "nothing"))


lib, lib_path = _load()

_PROTOTYPES = {
    "aq_comm_init": (None, [P(CommStruct)]),
    "aq_context_set_comm": (c_int, [c_void_p, P(CommStruct)]),
    "aq_context_comm_rank": (c_int32, [c_void_p]),
    "aq_context_comm_size": (c_int32, [c_void_p]),
    "aq_hessian_allreduce": (c_int, [c_void_p]),
    "aq_version": (c_uint32, []),
    "aq_version_string": (c_char_p, []),
    "aq_strerror": (c_char_p, [c_int]),
    "aq_constant": (c_int, [P(c_int64), c_char_p]),
    "aq_context_create": (c_int, [P(c_void_p)]),
    "aq_context_free": (None, [c_void_p]),
    "aq_context_set_threads": (c_int, [c_void_p, c_int32]),
    "aq_context_get_threads": (c_int32, [c_void_p]),
    "aq_context_set_seed": (c_int, [c_void_p, c_uint64]),
    "aq_context_get_seed": (c_uint64, [c_void_p]),
    "aq_context_set_log_callback": (c_int, [c_void_p, LOG_FN, c_int32, c_void_p]),
    "aq_context_set_progress_callback": (c_int, [c_void_p, PROGRESS_FN, c_void_p]),
    "aq_context_copy_last_error": (c_int, [c_void_p, c_char_p, c_size_t]),
    "aq_context_clear_error": (None, [c_void_p]),
    "aq_options_create": (c_int, [P(c_void_p), c_void_p]),
    "aq_options_free": (None, [c_void_p]),
    "aq_options_clone": (c_int, [P(c_void_p), c_void_p]),
    "aq_options_set_int": (c_int, [c_void_p, c_int32, c_int64]),
    "aq_options_set_double": (c_int, [c_void_p, c_int32, c_double]),
    "aq_options_get_int": (c_int, [P(c_int64), c_void_p, c_int32]),
    "aq_options_get_double": (c_int, [P(c_double), c_void_p, c_int32]),
    "aq_hessian_create": (c_int, [P(c_void_p), c_void_p, c_int64]),
    "aq_hessian_create_from_matrix": (c_int, [P(c_void_p), c_void_p, c_void_p, c_int64, c_int64, c_int64]),
    "aq_hessian_free": (None, [c_void_p]),
    "aq_hessian_add": (c_int, [c_void_p, c_void_p, c_int64, c_int64]),
    "aq_hessian_merge": (c_int, [c_void_p, c_void_p]),
    "aq_hessian_num_inputs": (c_int64, [c_void_p]),
    "aq_hessian_num_samples": (c_int64, [c_void_p]),
    "aq_hessian_copy_matrix": (c_int, [c_void_p, c_void_p, c_int64, c_double]),
    "aq_hessian_copy_diagonal": (c_int, [c_void_p, c_void_p, c_double]),
    "aq_hessian_copy_block": (c_int, [c_void_p, c_void_p, c_int64, c_int64, c_double]),
    "aq_hessian_save": (c_int, [c_void_p, c_char_p]),
    "aq_hessian_load": (c_int, [P(c_void_p), c_void_p, c_char_p]),
    "aq_format_init": (None, [P(Format)]),
    "aq_format_parse": (c_int, [P(Format), c_char_p]),
    "aq_format_parse_ctx": (c_int, [c_void_p, P(Format), c_char_p]),
    "aq_format_check": (c_int, [c_void_p, P(Format), c_int64, c_int64]),
    "aq_format_bits_per_parameter": (c_int, [P(c_double), P(Format), c_int64, c_int64]),
    "aq_format_rho": (c_int, [P(c_double), P(Format), c_int64, c_int64]),
    "aq_quant_create": (c_int, [P(c_void_p), c_void_p, P(Format), c_int64, c_int64]),
    "aq_quant_free": (None, [c_void_p]),
    "aq_quant_clone": (c_int, [P(c_void_p), c_void_p]),
    "aq_quant_get_format": (c_int, [P(Format), c_void_p]),
    "aq_quant_rows": (c_int64, [c_void_p]),
    "aq_quant_cols": (c_int64, [c_void_p]),
    "aq_quant_codes": (c_void_p, [c_void_p, P(c_size_t)]),
    "aq_quant_codebooks": (c_void_p, [c_void_p, P(c_size_t)]),
    "aq_quant_scales": (c_void_p, [c_void_p, P(c_size_t)]),
    "aq_quant_codes_const": (c_void_p, [c_void_p, P(c_size_t)]),
    "aq_quant_codebooks_const": (c_void_p, [c_void_p, P(c_size_t)]),
    "aq_quant_scales_const": (c_void_p, [c_void_p, P(c_size_t)]),
    "aq_quant_copy_codes_out": (c_int, [c_void_p, c_void_p, c_size_t]),
    "aq_quant_copy_codes_in": (c_int, [c_void_p, c_void_p, c_size_t]),
    "aq_quant_copy_codebooks_out": (c_int, [c_void_p, c_void_p, c_size_t]),
    "aq_quant_copy_codebooks_in": (c_int, [c_void_p, c_void_p, c_size_t]),
    "aq_quant_copy_scales_out": (c_int, [c_void_p, c_void_p, c_size_t]),
    "aq_quant_copy_scales_in": (c_int, [c_void_p, c_void_p, c_size_t]),
    "aq_quant_dequantize": (c_int, [c_void_p, c_void_p, c_int64]),
    "aq_quant_output_error": (c_int, [P(c_double), c_void_p, c_void_p, c_int64, c_void_p]),
    "aq_quant_weight_mse": (c_int, [P(c_double), c_void_p, c_void_p, c_int64]),
    "aq_quant_save": (c_int, [c_void_p, c_char_p]),
    "aq_quant_matvec": (c_int, [c_void_p, c_void_p, c_void_p]),
    "aq_quant_backward": (c_int, [c_void_p, c_void_p, c_int64, c_void_p, c_void_p]),
    "aq_vstep": (c_int, [c_void_p, c_void_p, c_void_p, c_int64, c_void_p, c_void_p, P(c_int64)]),
    "aq_quant_matmul": (c_int, [c_void_p, c_void_p, c_int64, c_int64, c_void_p, c_int64]),
    "aq_quant_matvec_kernel": (c_int, [c_void_p, c_void_p, c_void_p, c_int]),
    "aq_quant_matmul_kernel": (c_int, [c_void_p, c_void_p, c_int64, c_int64, c_void_p, c_int64, c_int]),
    "aq_pipeline_create": (c_int, [P(c_void_p), c_void_p, P(PipelineCallbacks), P(Format), c_void_p]),
    "aq_pipeline_free": (None, [c_void_p]),
    "aq_pipeline_set_resume_dir": (c_int, [c_void_p, c_char_p]),
    "aq_pipeline_run": (c_int, [c_void_p]),
    "aq_pipeline_host_status": (c_int, [c_void_p]),
    "aq_quant_load": (c_int, [P(c_void_p), c_void_p, c_char_p]),
}
# Algorithms share one signature: (ctx, quant, W, ld, H, options). Some may be absent from an
# older or partial build; they are looked up lazily.
ALGORITHMS = ("aq_init", "aq_beam_search", "aq_update_codebooks", "aq_optimize", "aq_quantize_layer")

for _name, (_res, _args) in _PROTOTYPES.items():
    _fn = getattr(lib, _name)
    _fn.restype, _fn.argtypes = _res, _args


def algorithm(name):
    """The C function @name with its prototype, or None if this library does not export it."""
    try:
        fn = getattr(lib, name)
    except AttributeError:
        return None
    fn.restype, fn.argtypes = c_int, [c_void_p, c_void_p, c_void_p, c_int64, c_void_p, c_void_p]
    return fn
