"""Checks of numpy array arguments before they are passed to the library."""
import numpy as np

from .constants import ERR_SHAPE
from .errors import AqError


def _check_weight(quant, W):
    """W as (float32 array, ld) after checking it has the quant's shape."""
    W, ld = _float32_matrix(W, "W")
    if tuple(W.shape) != tuple(quant.shape):
        raise AqError(ERR_SHAPE, f"W has shape {tuple(W.shape)}, the quantized matrix {tuple(quant.shape)}")
    return W, ld


def _float32_matrix(a, name):
    """(array, leading dimension) for a 2-D float32 array, honouring a row stride."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array")
    if a.dtype != np.float32:
        raise TypeError(f"{name} must be float32 (got {a.dtype}); convert with .astype(np.float32)")
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (got {a.ndim}-D)")
    if (a.strides[1] != 4 or a.strides[0] % 4 != 0 or a.strides[0] < 4 * a.shape[1]
            or not a.flags.aligned):
        a = np.ascontiguousarray(a)  # a copy: the library reads rows with a stride of ld floats
    ld = a.strides[0] // 4 if a.shape[0] > 1 else a.shape[1]
    return a, max(ld, a.shape[1])
