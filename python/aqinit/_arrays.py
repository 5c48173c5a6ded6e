# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Checks of numpy array arguments before they are passed to the library: an array of another
dtype than the C one is refused with TypeError, never converted."""
import numpy as np

from .constants import ERR_SHAPE
from .errors import AqError


def _check_weight(quant, W):
    """W as (float32 array, ld) after checking it has the quant's shape."""
    W, ld = _float32_matrix(W, "W")
    if tuple(W.shape) != tuple(quant.shape):
        raise AqError(ERR_SHAPE, f"W has shape {tuple(W.shape)}, the quantized matrix {tuple(quant.shape)}")
    return W, ld


def _typed_array(a, dtype, name, contiguous=True):
    """@a itself (C-contiguous unless @contiguous is false: a copy of the same dtype then) after
    checking it is a numpy array of @dtype; TypeError otherwise."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (got {type(a).__name__})")
    if a.dtype != dtype:
        raise TypeError(f"{name} must be {np.dtype(dtype)} (got {a.dtype}); convert with "
                        f".astype(np.{np.dtype(dtype)})")
    return np.ascontiguousarray(a) if contiguous else a


def _float32_matrix(a, name):
    """(array, leading dimension) for a 2-D float32 array, honouring a row stride."""
    a = _typed_array(a, np.float32, name, contiguous=False)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (got {a.ndim}-D)")
    if (a.strides[1] != 4 or a.strides[0] % 4 != 0 or a.strides[0] < 4 * a.shape[1]
            or not a.flags.aligned):
        a = np.ascontiguousarray(a)  # a copy: the library reads rows with a stride of ld floats
    ld = a.strides[0] // 4 if a.shape[0] > 1 else a.shape[1]
    return a, max(ld, a.shape[1])
