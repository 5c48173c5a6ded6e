# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Quant: a quantized matrix (codes, codebooks, scales) and the products with it."""
import ctypes

import numpy as np

from ._lib import lib, Format as _FormatStruct
from ._arrays import _check_weight, _float32_matrix, _typed_array
from ._handle import _Handle
from ._scalars import _c_int, _c_path
from .constants import ERR_INVALID_ARG, ERR_SHAPE
from .errors import AqError, _check
from .format import Format, _dims


class Quant(_Handle):
    """A quantized matrix in AQLM's layout: codes [O/g_o, I/g, M], codebooks [M, K, g_o, g],
    scales [O/g_o].

    Reading .codes, .codebooks or .scales returns a new read-only copy of the library's arrays:
    writing into it raises ValueError instead of being silently lost. To change them, assign a whole
    array, which is validated and copied in: ``books = q.codebooks.copy(); books[0] = 0;
    q.codebooks = books``."""

    _free_fn = lib.aq_quant_free

    def __init__(self, ctx, fmt, rows, cols, _ptr=None):
        if _ptr is None:
            _ptr = ctypes.c_void_p()
            fmt = Format._of(fmt)
            _check(lib.aq_quant_create(ctypes.byref(_ptr), ctx.handle, ctypes.byref(fmt.struct), *_dims(rows, cols)),
                   ctx)
        self._attach(ctx, _ptr)

    @classmethod
    def load(cls, ctx, path):
        ptr = ctypes.c_void_p()
        _check(lib.aq_quant_load(ctypes.byref(ptr), ctx.handle, _c_path(path)), ctx)
        return cls(ctx, None, 0, 0, ptr)

    def clone(self):
        ptr = ctypes.c_void_p()
        _check(lib.aq_quant_clone(ctypes.byref(ptr), self.ptr), self.ctx)
        return Quant(self.ctx, None, 0, 0, ptr)

    @property
    def format(self):
        struct = _FormatStruct()
        lib.aq_format_init(ctypes.byref(struct))
        _check(lib.aq_quant_get_format(ctypes.byref(struct), self.ptr), self.ctx)
        return Format._from_struct(struct)

    @property
    def shape(self):
        return lib.aq_quant_rows(self.ptr), lib.aq_quant_cols(self.ptr)

    def _shapes(self):
        f, (rows, cols) = self.format.struct, self.shape
        P, J = rows // f.out_group_size, cols // f.in_group_size
        K = 1 << f.bits_per_codebook
        code_type = np.uint8 if f.bits_per_codebook <= 8 else np.uint16
        return (P, J, f.num_codebooks), code_type, (f.num_codebooks, K, f.out_group_size, f.in_group_size), (P,)

    @property
    def codes(self):
        """Read-only copy, uint8 (B <= 8) or uint16, [O/g_o, I/g, M]. Set with any integer array
        whose values are in 0..K-1 (validated, copied in)."""
        shape, dtype, _, _ = self._shapes()
        out = np.empty(shape, dtype=dtype)
        _check(lib.aq_quant_copy_codes_out(self.ptr, out.ctypes.data, out.nbytes), self.ctx)
        return _read_only(out)

    @codes.setter
    def codes(self, value):
        shape, dtype, _, _ = self._shapes()
        v = np.asarray(value)
        if v.dtype.kind not in "ui":
            raise TypeError(f"codes must be an integer array (got {v.dtype})")
        if v.size and (v.min() < 0 or v.max() > np.iinfo(dtype).max):
            raise AqError(ERR_INVALID_ARG, f"codes must be in 0..K-1 = {self.format.codebook_size - 1} "
                                           f"(got {v.min()}..{v.max()})")
        a = np.ascontiguousarray(v, dtype=dtype)
        if a.shape != shape:
            raise ValueError(f"codes must have shape {shape}")
        _check(lib.aq_quant_copy_codes_in(self.ptr, a.ctypes.data, a.nbytes), self.ctx)

    def _float_out(self, copy_out, shape):
        out = np.empty(shape, dtype=np.float32)
        _check(copy_out(self.ptr, out.ctypes.data, out.size), self.ctx)
        return _read_only(out)

    def _float_in(self, copy_in, value, shape, name):
        a = _typed_array(value, np.float32, name)
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape}")
        _check(copy_in(self.ptr, a.ctypes.data, a.size), self.ctx)

    @property
    def codebooks(self):
        """Read-only copy, float32 [M, K, g_o, g]. Set with a float32 array of that shape (finite
        values; validated, copied in)."""
        return self._float_out(lib.aq_quant_copy_codebooks_out, self._shapes()[2])

    @codebooks.setter
    def codebooks(self, value):
        self._float_in(lib.aq_quant_copy_codebooks_in, value, self._shapes()[2], "codebooks")

    @property
    def scales(self):
        """Read-only copy, float32 [O/g_o]. Set with a float32 array of that shape (finite values;
        validated, copied in)."""
        return self._float_out(lib.aq_quant_copy_scales_out, self._shapes()[3])

    @scales.setter
    def scales(self, value):
        self._float_in(lib.aq_quant_copy_scales_in, value, self._shapes()[3], "scales")

    def dequantize(self):
        rows, cols = self.shape
        out = np.empty((rows, cols), dtype=np.float32)
        _check(lib.aq_quant_dequantize(self.ptr, out.ctypes.data, cols), self.ctx)
        return out

    def output_error(self, W, H):
        """tr(ΔW H ΔWᵀ) / tr(W H Wᵀ)."""
        W, ld = _check_weight(self, W)
        out = ctypes.c_double()
        _check(lib.aq_quant_output_error(ctypes.byref(out), self.ptr, W.ctypes.data, ld, H.ptr), self.ctx)
        return out.value

    def weight_mse(self, W):
        W, ld = _check_weight(self, W)
        out = ctypes.c_double()
        _check(lib.aq_quant_weight_mse(ctypes.byref(out), self.ptr, W.ctypes.data, ld), self.ctx)
        return out.value

    def save(self, path):
        _check(lib.aq_quant_save(self.ptr, _c_path(path)), self.ctx)

    def matvec(self, x, kernel=None):
        """Ŵ x with the LUT kernels (x: float32 vector of length cols); kernel: MATVEC_EXACT (the
        default) or MATVEC_INT16 (approximate int16 tables, aq_quant_matvec_kernel)."""
        rows, cols = self.shape
        x = _typed_array(x, np.float32, "x")
        if x.shape != (cols,):
            raise AqError(ERR_SHAPE, f"x has shape {x.shape}, expected ({cols},)")
        y = np.empty(rows, dtype=np.float32)
        if kernel is None:
            _check(lib.aq_quant_matvec(self.ptr, x.ctypes.data, y.ctypes.data), self.ctx)
        else:
            _check(lib.aq_quant_matvec_kernel(self.ptr, x.ctypes.data, y.ctypes.data, _c_int(kernel, ctypes.c_int, "kernel")),
                   self.ctx)
        return y

    def backward(self, grad_W):
        """P-step: (∂L/∂codebooks, ∂L/∂scales) from ∂L/∂Ŵ (float32, rows × cols)."""
        G, ld = _check_weight(self, grad_W)
        _, _, cb_shape, sc_shape = self._shapes()
        gc, gs = np.empty(cb_shape, dtype=np.float32), np.empty(sc_shape, dtype=np.float32)
        _check(lib.aq_quant_backward(self.ptr, G.ctypes.data, ld, gc.ctypes.data, gs.ctypes.data), self.ctx)
        return gc, gs

    def matmul(self, X, kernel=None):
        """X Ŵᵀ for a batch X (n × cols, float32); kernel as for matvec."""
        rows, cols = self.shape
        X, ld = _float32_matrix(X, "X")
        if X.shape[1] != cols:
            raise AqError(ERR_SHAPE, f"X has {X.shape[1]} columns, expected {cols}")
        Y = np.empty((X.shape[0], rows), dtype=np.float32)
        if kernel is None:
            _check(lib.aq_quant_matmul(self.ptr, X.ctypes.data, X.shape[0], ld, Y.ctypes.data, rows), self.ctx)
        else:
            _check(lib.aq_quant_matmul_kernel(self.ptr, X.ctypes.data, X.shape[0], ld, Y.ctypes.data, rows,
                                              _c_int(kernel, ctypes.c_int, "kernel")), self.ctx)
        return Y


def _read_only(a):
    """@a, a fresh copy of library memory, marked read-only: a write into it would be lost."""
    a.flags.writeable = False
    return a
