# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Python binding of libaqinit (ctypes + numpy).

Additive quantization of LLM weight matrices with OA-EM codebook initialisation. Arrays go in
and out as numpy arrays; every failure raises :class:`AqError` carrying the library's status
code, its name and the detailed message.

    import numpy as np, aqinit
    ctx = aqinit.Context(threads=2, seed=1)
    H = aqinit.Hessian(ctx, 512)
    H.add(np.random.randn(4096, 512).astype(np.float32))
    q = aqinit.Quant(ctx, "2x8g8", 256, 512)
    aqinit.init(ctx, q, W, H, aqinit.Options(ctx, INIT_METHOD=aqinit.INIT_OA_EM))

The package re-exports every public name of its modules, so ``import aqinit`` is all user code
needs:

    constants     constant(), version(), version_string() and the AQ_* constants without the prefix
    errors        AqError (and _check)
    context       Context: threads, seed, callbacks, last error, set_comm
    comm          Comm: an aq_comm over an mpi4py communicator (mpi4py imported only when one is made)
    options       Options                    format     Format
    hessian       Hessian                    quant      Quant
    algorithms    init, beam_search, update_codebooks, optimize, quantize_layer, vstep, has_algorithm
    pipeline      Pipeline                   safetensors  export_aqlm, read_safetensors
    _lib          finding and loading the shared library (of the package's version), the ctypes prototypes
"""
import ctypes  # noqa: F401 — aqinit.ctypes and aqinit.np were reachable before the split into modules

import numpy as np  # noqa: F401

from . import _lib
from ._lib import lib
from ._version import __version__  # _lib loads only a library of this version
from .constants import *  # noqa: F401,F403 — constant, version, version_string, ERR_SHAPE, OPT_EM_TOL, ...
from .constants import constant, version, version_string
from .errors import AqError, _check  # noqa: F401 — _check for the tests
from .context import Context
from .comm import Comm
from .options import Options
from .format import Format
from .hessian import Hessian
from .quant import Quant
from .algorithms import init, beam_search, update_codebooks, optimize, quantize_layer, vstep, has_algorithm
from .pipeline import Pipeline
from .safetensors import export_aqlm, read_safetensors

__all__ = ["AqError", "Context", "Comm", "Options", "Format", "Hessian", "Quant", "Pipeline", "vstep", "constant", "version",
           "version_string", "export_aqlm", "read_safetensors",
           "init", "beam_search", "update_codebooks", "optimize", "quantize_layer", "has_algorithm"]
