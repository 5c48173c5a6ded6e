# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Format: a quantization format (MxB[gG][oGO]) and its checks."""
import ctypes

from ._lib import lib, Format as _FormatStruct
from ._scalars import _c_int
from .constants import ERR_INVALID_ARG, SCALE_PER_OUTPUT_GROUP
from .context import Context
from .errors import AqError, _check


class Format:
    """A quantization format, e.g. Format("2x8g8") or Format("1x16g8o1"); fields may be changed
    (Format("2x8g8", scale_mode=SCALE_NONE), f.in_group_size = 4)."""

    _FIELDS = ("num_codebooks", "bits_per_codebook", "in_group_size", "out_group_size", "scale_mode")

    def __init__(self, text="2x8g8", **fields):
        if not isinstance(text, str):
            raise TypeError(f"a format is given by its text, e.g. \"2x8g8\" (got {type(text).__name__} {text!r})")
        self.struct = _FormatStruct()
        lib.aq_format_init(ctypes.byref(self.struct))
        # C reads the text up to a NUL: "2x8g8\0junk" would parse as "2x8g8".
        status = ERR_INVALID_ARG if "\0" in text else lib.aq_format_parse(ctypes.byref(self.struct), text.encode())
        if status < 0:
            raise AqError(status, f"cannot parse the format {text!r} (expected MxB[gG][oGO], e.g. 2x8g8, "
                                  f"M in 1..64, B in 1..16)")
        self._text = text
        for name, value in fields.items():
            if name not in self._FIELDS:
                raise TypeError(f"Format has no field {name!r}")
            setattr(self, name, value)

    @classmethod
    def _from_struct(cls, struct):
        f = cls.__new__(cls)
        f.struct, f._text = struct, None
        return f

    @classmethod
    def _of(cls, fmt):
        """@fmt if it is a Format, else the Format of its text (TypeError for another type)."""
        return fmt if isinstance(fmt, Format) else cls(fmt)

    def _field(name):  # noqa: N805 — a property factory used in the class body
        def get(self):
            return getattr(self.struct, name)

        def put(self, value):
            setattr(self.struct, name, _c_int(value, ctypes.c_int32, name))  # a ctypes field would wrap
            self._text = None
        return property(get, put)

    num_codebooks = _field("num_codebooks")
    bits_per_codebook = _field("bits_per_codebook")
    in_group_size = _field("in_group_size")
    out_group_size = _field("out_group_size")
    scale_mode = _field("scale_mode")
    del _field

    @property
    def codebook_size(self):
        """K = 2^B."""
        return 1 << self.bits_per_codebook

    @property
    def text(self):
        """The text it was parsed from, or "MxBgGoGO" once a field changed (scale mode not included)."""
        s = self.struct
        return self._text or f"{s.num_codebooks}x{s.bits_per_codebook}g{s.in_group_size}o{s.out_group_size}"

    def check(self, rows, cols, ctx=None):
        """aq_format_check for a rows × cols matrix: AqError with the library's message if it does not fit."""
        c = ctx if ctx is not None else _scratch_context()
        _check(lib.aq_format_check(c.handle, ctypes.byref(self.struct), *_dims(rows, cols)), c)

    def bits_per_parameter(self, rows, cols):
        self.check(rows, cols)
        out = ctypes.c_double()
        _check(lib.aq_format_bits_per_parameter(ctypes.byref(out), ctypes.byref(self.struct), *_dims(rows, cols)))
        return out.value

    def rho(self, rows, cols):
        """ρ = N / K^M with N = (rows/g_o)(cols/g) tiles."""
        self.check(rows, cols)
        out = ctypes.c_double()
        _check(lib.aq_format_rho(ctypes.byref(out), ctypes.byref(self.struct), *_dims(rows, cols)))
        return out.value

    def __eq__(self, other):
        return isinstance(other, Format) and all(getattr(self, f) == getattr(other, f) for f in self._FIELDS)

    def __hash__(self):
        return hash(tuple(getattr(self, f) for f in self._FIELDS))

    def __repr__(self):
        extra = "" if self.scale_mode == SCALE_PER_OUTPUT_GROUP else f", scale_mode={self.scale_mode}"
        return f"Format({self.text!r}{extra})"


def _dims(rows, cols):
    """(rows, cols) checked as the int64_t arguments of the aq_format_* calls."""
    return _c_int(rows, ctypes.c_int64, "rows"), _c_int(cols, ctypes.c_int64, "cols")


_SCRATCH = []


def _scratch_context():
    """A private context that receives the messages of calls that take no context (format checks)."""
    if not _SCRATCH:
        _SCRATCH.append(Context())
    return _SCRATCH[0]
