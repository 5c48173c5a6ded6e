# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Checks of scalar arguments before they are passed to the library: C integers, doubles, paths.

ctypes wraps a Python int around silently (2**64 + 16 passed as int64_t is 16) and int() or
float() would accept 3.5, "4" or True; these checks raise instead."""
import ctypes
import numbers
import operator
import os

import numpy as np


def _c_int(value, ctype, name):
    """@value as a Python int for the ctypes integer type @ctype (ctypes.c_int64, ...): TypeError
    for a bool or a non-integer (3.5, 4.0, "4"), OverflowError outside the C type's range. Python
    and numpy integers are accepted."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, not a bool ({value!r})")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer (got {type(value).__name__} {value!r})") from None
    bits, signed = 8 * ctypes.sizeof(ctype), ctype(-1).value < 0
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= v <= hi:
        raise OverflowError(f"{name} = {v} is out of the range of {'' if signed else 'u'}int{bits}_t ({lo}..{hi})")
    return v


def _c_double(value, name):
    """@value as a float for a C double: TypeError for a bool, a string or another non-real."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number (got {type(value).__name__} {value!r})")
    return float(value)


def _c_path(path):
    """@path (str, bytes or os.PathLike) as bytes for a const char * file name; TypeError for
    another type, ValueError for an embedded NUL (C would read a shorter name)."""
    b = os.fsencode(path)
    if b"\0" in b:
        raise ValueError(f"path {path!r} contains a NUL byte")
    return b
