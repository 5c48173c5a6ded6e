# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Hessian: the running mean H = XᵀX/n of a layer's inputs."""
import ctypes

import numpy as np

from ._lib import lib
from ._arrays import _float32_matrix, _typed_array
from ._handle import _Handle
from ._scalars import _c_double, _c_int, _c_path
from .constants import ERR_SHAPE
from .errors import AqError, _check


class Hessian(_Handle):
    """Running mean H = XᵀX/n of a layer's inputs, in double."""
    _free_fn = lib.aq_hessian_free

    def __init__(self, ctx, n_inputs, _ptr=None):
        if _ptr is None:
            _ptr = ctypes.c_void_p()
            n_inputs = _c_int(n_inputs, ctypes.c_int64, "n_inputs")
            _check(lib.aq_hessian_create(ctypes.byref(_ptr), ctx.handle, n_inputs), ctx)
        self._attach(ctx, _ptr)

    @classmethod
    def from_matrix(cls, ctx, H, n_samples):
        """A Hessian from a square float64 matrix H (another dtype is a TypeError) of n_samples rows."""
        H = _typed_array(H, np.float64, "H")
        n_samples = _c_int(n_samples, ctypes.c_int64, "n_samples")
        if H.ndim != 2 or H.shape[0] != H.shape[1]:
            raise ValueError("H must be square")
        ptr = ctypes.c_void_p()
        _check(lib.aq_hessian_create_from_matrix(ctypes.byref(ptr), ctx.handle, H.ctypes.data, H.shape[0],
                                                 H.shape[1], n_samples), ctx)
        return cls(ctx, H.shape[0], ptr)

    @classmethod
    def load(cls, ctx, path):
        ptr = ctypes.c_void_p()
        _check(lib.aq_hessian_load(ctypes.byref(ptr), ctx.handle, _c_path(path)), ctx)
        return cls(ctx, None, ptr)

    def add(self, X):
        """Accumulate the rows of X (float32, n_rows × n_inputs)."""
        X, ld = _float32_matrix(X, "X")
        if X.shape[1] != self.n_inputs:
            raise AqError(ERR_SHAPE, f"Hessian.add: X has {X.shape[1]} columns, the Hessian {self.n_inputs} inputs")
        _check(lib.aq_hessian_add(self.ptr, X.ctypes.data, X.shape[0], ld), self.ctx)

    def merge(self, other):
        _check(lib.aq_hessian_merge(self.ptr, other.ptr), self.ctx)

    def allreduce(self):
        """Combine every rank's statistics (collective over the context's Comm): the rank-order merge."""
        _check(lib.aq_hessian_allreduce(self.ptr), self.ctx)

    @property
    def n_inputs(self):
        return lib.aq_hessian_num_inputs(self.ptr)

    @property
    def n_samples(self):
        return lib.aq_hessian_num_samples(self.ptr)

    def matrix(self, damping=0.0):
        n = self.n_inputs
        out = np.empty((n, n), dtype=np.float64)
        _check(lib.aq_hessian_copy_matrix(self.ptr, out.ctypes.data, n, _c_double(damping, "damping")), self.ctx)
        return out

    def diagonal(self, damping=0.0):
        out = np.empty(self.n_inputs, dtype=np.float64)
        _check(lib.aq_hessian_copy_diagonal(self.ptr, out.ctypes.data, _c_double(damping, "damping")), self.ctx)
        return out

    def block(self, group_size, group, damping=0.0):
        group_size, group = _c_int(group_size, ctypes.c_int64, "group_size"), _c_int(group, ctypes.c_int64, "group")
        damping = _c_double(damping, "damping")
        side = group_size if 0 < group_size <= self.n_inputs else 0  # else the library's AQ_ERR_SHAPE
        out = np.empty((side, side), dtype=np.float64)
        _check(lib.aq_hessian_copy_block(self.ptr, out.ctypes.data, group_size, group, damping), self.ctx)
        return out

    def save(self, path):
        _check(lib.aq_hessian_save(self.ptr, _c_path(path)), self.ctx)
