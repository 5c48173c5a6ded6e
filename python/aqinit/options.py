# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Options: the algorithm options of a context."""
import ctypes

import numpy as np

from ._lib import lib
from ._handle import _Handle
from ._scalars import _c_double, _c_int
from .constants import constant
from .errors import _check


class Options(_Handle):
    """Algorithm options: Options(ctx, EM_MAX_ROUNDS=5, INIT_METHOD=INIT_OA_EM, ...).

    Keys are the pinned AQ_OPT_* values (aqinit.OPT_EM_TOL) or their names with or without the
    prefix ("EM_TOL", "AQ_OPT_EM_TOL"). set() picks the typed setter from the option's own type,
    so EM_TOL=0 sets the double 0.0 and INIT_METHOD=1.0 the integer 1; a non-integral value for an
    integer option (2.5, "4", True) is a TypeError, one outside int64_t an OverflowError."""

    _free_fn = lib.aq_options_free

    def __init__(self, ctx, _ptr=None, **settings):
        if _ptr is None:
            _ptr = ctypes.c_void_p()
            _check(lib.aq_options_create(ctypes.byref(_ptr), ctx.handle), ctx)
        self._attach(ctx, _ptr)
        for key, value in settings.items():
            self.set(key, value)

    @staticmethod
    def _key(key):
        if isinstance(key, str):
            name = key if key.startswith("AQ_OPT_") else "AQ_OPT_" + key
            try:
                return constant(name)
            except KeyError:
                raise KeyError(f"unknown option {key!r}") from None
        return _c_int(key, ctypes.c_int32, "option key")

    def _is_double(self, k):
        """True for a double option, False for an integer one (AqError for an unknown key)."""
        iv, dv = ctypes.c_int64(), ctypes.c_double()
        if lib.aq_options_get_int(ctypes.byref(iv), self.ptr, k) == 0:
            return False
        _check(lib.aq_options_get_double(ctypes.byref(dv), self.ptr, k), self.ctx)
        return True

    def set(self, key, value):
        k = self._key(key)
        if self._is_double(k):
            return self.set_double(key, value)
        if isinstance(value, (float, np.floating)):
            if not float(value).is_integer():
                raise TypeError(f"option {key!r} is integer-valued, got {value!r}")
            value = int(value)
        return self.set_int(key, value)

    def set_int(self, key, value):
        """aq_options_set_int."""
        _check(lib.aq_options_set_int(self.ptr, self._key(key), _c_int(value, ctypes.c_int64, f"option {key!r}")),
               self.ctx)
        return self

    def set_double(self, key, value):
        """aq_options_set_double."""
        _check(lib.aq_options_set_double(self.ptr, self._key(key), _c_double(value, f"option {key!r}")), self.ctx)
        return self

    def get(self, key):
        k, iv, dv = self._key(key), ctypes.c_int64(), ctypes.c_double()
        if lib.aq_options_get_int(ctypes.byref(iv), self.ptr, k) == 0:
            return iv.value
        _check(lib.aq_options_get_double(ctypes.byref(dv), self.ptr, k), self.ctx)
        return dv.value

    def clone(self):
        """An independent copy (same context)."""
        ptr = ctypes.c_void_p()
        _check(lib.aq_options_clone(ctypes.byref(ptr), self.ptr), self.ctx)
        return Options(self.ctx, _ptr=ptr)
