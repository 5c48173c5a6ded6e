# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""The algorithms on a Quant: init, beam_search, update_codebooks, optimize, quantize_layer (looked
up lazily: a build may lack some, see has_algorithm) and the PV-tuning V-step vstep."""
import ctypes

from . import _lib
from ._lib import lib
from ._arrays import _check_weight
from .constants import ERR_UNSUPPORTED, version_string
from .errors import AqError


def vstep(ctx, quant, target, H=None, options=None):
    """V-step: move at most a fraction of the tiles' codes towards `target` (float32 rows × cols);
    returns the number of codes changed."""
    T, ld = _check_weight(quant, target)
    n = ctypes.c_int64(0)
    ctx._call(lib.aq_vstep(ctx.handle, quant.ptr, T.ctypes.data, ld, H.ptr if H is not None else None,
                           options.ptr if options is not None else None, ctypes.byref(n)))
    return n.value


def has_algorithm(name):
    """True if the loaded library exports aq_<name> (e.g. "init", "optimize")."""
    return _lib.algorithm("aq_" + name) is not None


def _run(name, ctx, quant, W, H, options):
    fn = _lib.algorithm(name)
    if fn is None:
        raise AqError(ERR_UNSUPPORTED, f"{name} is not in the loaded libaqinit {version_string()}")
    W, ld = _check_weight(quant, W)
    return ctx._call(fn(ctx.handle, quant.ptr, W.ctypes.data, ld, H.ptr if H is not None else None,
                        options.ptr if options is not None else None))


def init(ctx, quant, W, H=None, options=None):
    """Initialise scales, codebooks and codes (GREEDY or OA_EM, per options)."""
    _run("aq_init", ctx, quant, W, H, options)


def beam_search(ctx, quant, W, H, options=None):
    """One beam-search pass over the codes, minimising tr(ΔW H ΔWᵀ)."""
    _run("aq_beam_search", ctx, quant, W, H, options)


def update_codebooks(ctx, quant, W, H, options=None):
    """Codebook and scale update with the codes fixed."""
    _run("aq_update_codebooks", ctx, quant, W, H, options)


def optimize(ctx, quant, W, H, options=None):
    """Epochs of {codebook/scale update, beam search}."""
    _run("aq_optimize", ctx, quant, W, H, options)


def quantize_layer(ctx, quant, W, H, options=None):
    """init() followed by optimize()."""
    _run("aq_quantize_layer", ctx, quant, W, H, options)
