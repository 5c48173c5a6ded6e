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
"""
import ctypes

import numpy as np

from . import _lib
from ._lib import lib, Format as _FormatStruct, Progress as _Progress, PROGRESS_FN as _PROGRESS_FN, LOG_FN as _LOG_FN
from .safetensors import export_aqlm, read_safetensors

__all__ = ["AqError", "Context", "Options", "Format", "Hessian", "Quant", "Pipeline", "vstep", "constant", "version",
           "version_string", "export_aqlm", "read_safetensors",
           "init", "beam_search", "update_codebooks", "optimize", "quantize_layer", "has_algorithm"]


def constant(name):
    """Value of a named library constant (e.g. "AQ_ERR_SHAPE", "AQ_OPT_EM_MAX_ROUNDS")."""
    value = ctypes.c_int64()
    if lib.aq_constant(ctypes.byref(value), name.encode()) != 0:
        raise KeyError(name)
    return value.value


def version():
    """(major, minor, patch) of the loaded library."""
    v = lib.aq_version()  # major·10000 + minor·100 + patch
    return v // 10000, v // 100 % 100, v % 100


def version_string():
    return lib.aq_version_string().decode()


# Constants, read from the library so they can never disagree with it. Exposed without the
# "AQ_" prefix (aqinit.ERR_SHAPE, aqinit.OPT_EM_MAX_ROUNDS, aqinit.INIT_OA_EM, ...).
_CONSTANT_NAMES = [
    "AQ_OK", "AQ_ERR_INVALID_ARG", "AQ_ERR_SHAPE", "AQ_ERR_OVERFLOW", "AQ_ERR_NOMEM", "AQ_ERR_NONFINITE",
    "AQ_ERR_NOT_PSD", "AQ_ERR_FORMAT", "AQ_ERR_IO", "AQ_ERR_CANCELLED", "AQ_ERR_CALLBACK", "AQ_ERR_UNSUPPORTED",
    "AQ_ERR_INTERNAL", "AQ_ERR_THREAD",
    "AQ_VERSION_MAJOR", "AQ_VERSION_MINOR", "AQ_VERSION_PATCH", "AQ_VERSION_NUMBER",
    "AQ_LOG_ERROR", "AQ_LOG_WARN", "AQ_LOG_INFO", "AQ_LOG_DEBUG",
    "AQ_OPT_INIT_METHOD", "AQ_OPT_KMEANS_SEEDING", "AQ_OPT_KMEANS_MAX_ITER", "AQ_OPT_KMEANS_TOL",
    "AQ_OPT_EM_SEEDING", "AQ_OPT_EM_MAX_ROUNDS", "AQ_OPT_EM_TOL", "AQ_OPT_EM_DAMPING",
    "AQ_OPT_EM_SCALE_WEIGHTING", "AQ_OPT_EM_MSTEP", "AQ_OPT_EM_ADAM_STEPS", "AQ_OPT_EM_ADAM_LR",
    "AQ_OPT_EM_JOINT_PASSES", "AQ_OPT_BEAM_WIDTH", "AQ_OPT_BEAM_RANDOM_ORDER", "AQ_OPT_CODEBOOK_UPDATE",
    "AQ_OPT_CODEBOOK_EXACT_MAX_DIM", "AQ_OPT_CODEBOOK_ADAM_STEPS", "AQ_OPT_CODEBOOK_ADAM_LR",
    "AQ_OPT_UPDATE_SCALES", "AQ_OPT_MAX_EPOCHS", "AQ_OPT_REL_TOL", "AQ_OPT_HESSIAN_DAMPING", "AQ_OPT_VSTEP_MAX_FRACTION",
    "AQ_OPT_VSTEP_SELECTION", "AQ_OPT_VSTEP_TRUST_RATIO", "AQ_OPT_VSTEP_MAX_CHANGE", "AQ_VSTEP_LARGEST",
    "AQ_VSTEP_SAMPLED", "AQ_VSTEP_GAIN",
    "AQ_INIT_GREEDY", "AQ_INIT_OA_EM", "AQ_SEEDING_RANDOM_ROWS", "AQ_SEEDING_KMEANSPP",
    "AQ_EM_SEED_KMEANS", "AQ_EM_SEED_RANDOM_ROWS", "AQ_EM_SEED_KMEANSPP", "AQ_MSTEP_EXACT", "AQ_MSTEP_ADAM",
    "AQ_CODEBOOK_UPDATE_AUTO", "AQ_CODEBOOK_UPDATE_EXACT", "AQ_CODEBOOK_UPDATE_ADAM", "AQ_CODEBOOK_UPDATE_NONE",
    "AQ_SCALE_NONE", "AQ_SCALE_PER_OUTPUT_GROUP", "AQ_MAX_BITS_PER_CODEBOOK",
]
for _name in _CONSTANT_NAMES:
    try:
        globals()[_name[3:]] = constant(_name)
    except KeyError:  # a constant this build does not know
        pass
_STATUS_NAMES = {globals()[n[3:]]: n for n in _CONSTANT_NAMES if n.startswith("AQ_ERR_") and n[3:] in globals()}


class AqError(Exception):
    """A libaqinit failure: .status (negative int), .name ("AQ_ERR_SHAPE"), .message (the detailed
    message of the failing call, else aq_strerror's description) and .description (aq_strerror)."""

    def __init__(self, status, message=""):
        self.status = status
        self.name = _STATUS_NAMES.get(status, "AQ_ERR_%d" % -status)
        text = lib.aq_strerror(status).decode()
        self.description = text.split(": ", 1)[1] if text.startswith(self.name + ": ") else text
        self.message = message or self.description
        super().__init__(f"{self.name}: {self.message}")


def _check(status, ctx=None):
    """Raise AqError for a negative status. The context's last message is used only if it belongs
    to this failure (same status), so a message left by an earlier failure is never reported."""
    if status < 0:
        message = ""
        if ctx is not None and getattr(ctx, "_ptr", None):
            last, last_status = ctx._last_error()
            if last_status == status:
                message = last
        raise AqError(status, message)
    return status


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


class Context:
    """Threads, seed, callbacks and the last error. Use as a context manager or call close()."""

    def __init__(self, threads=1, seed=0):
        self._ptr = ctypes.c_void_p()
        _check(lib.aq_context_create(ctypes.byref(self._ptr)))
        # The C objects of this context's handles, freed before the context. Strong references to
        # small cells, not weak references to the handles: when a Context and its handles become
        # cyclic garbage together, the collector clears weak references before it runs any
        # finaliser, so a WeakSet would be empty and the context freed before its handles.
        self._live = {}
        self._progress_ref = None
        self._log_ref = None
        self._callback_error = None
        self.threads = threads
        self.seed = seed

    @property
    def handle(self):
        if not self._ptr:
            raise ValueError("the context is closed")
        return self._ptr

    _ctx_free = lib.aq_context_free  # kept on the class: module globals may be gone at exit

    def close(self):
        """Free the context and every handle created with it (they become unusable)."""
        if self._ptr:
            for cell in list(self._live.values()):
                cell.release()
            self._live.clear()
            Context._ctx_free(self._ptr)
            self._ptr = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def threads(self):
        return lib.aq_context_get_threads(self.handle)

    @threads.setter
    def threads(self, n):
        _check(lib.aq_context_set_threads(self.handle, int(n)), self)

    @property
    def seed(self):
        return lib.aq_context_get_seed(self.handle)

    @seed.setter
    def seed(self, s):
        _check(lib.aq_context_set_seed(self.handle, int(s)), self)

    def _last_error(self):
        buf = ctypes.create_string_buffer(1024)
        status = lib.aq_context_copy_last_error(self.handle, buf, len(buf))
        return buf.value.decode(errors="replace"), status

    def last_error(self):
        """Message of the last failure on this context ("" if none)."""
        return self._last_error()[0]

    def clear_error(self):
        """Forget the last failure."""
        lib.aq_context_clear_error(self.handle)

    def set_progress(self, fn):
        """fn(operation, stage, n_stages, round, objective) -> truthy to cancel; None removes it.
        An exception in fn cancels the operation and is re-raised by the library call."""
        if fn is None:
            self._progress_ref = None
            _check(lib.aq_context_set_progress_callback(self.handle, ctypes.cast(None, _PROGRESS_FN), None), self)
            return

        def trampoline(p, _ud):
            try:
                info = p.contents
                op = info.operation.decode() if info.operation else ""
                return 1 if fn(op, info.stage, info.n_stages, info.round, info.objective) else 0
            except BaseException as exc:  # noqa: BLE001 — carried back to the caller
                self._callback_error = exc
                return 1

        self._progress_ref = _PROGRESS_FN(trampoline)
        _check(lib.aq_context_set_progress_callback(self.handle, self._progress_ref, None), self)

    def set_log(self, fn, level=None):
        """fn(level, message) receives messages at `level` (default LOG_INFO) or more important."""
        if fn is None:
            self._log_ref = None
            _check(lib.aq_context_set_log_callback(self.handle, ctypes.cast(None, _LOG_FN), 0, None), self)
            return
        self._log_ref = _LOG_FN(lambda lvl, msg, _ud: fn(lvl, msg.decode(errors="replace")))
        _check(lib.aq_context_set_log_callback(self.handle, self._log_ref, LOG_INFO if level is None else level,
                                               None), self)

    def _call(self, status):
        """Check a status, re-raising an exception that a Python callback raised during the call."""
        err, self._callback_error = self._callback_error, None
        if err is not None and status == ERR_CANCELLED:
            raise err
        return _check(status, self)


class _Cell:
    """The C pointer of one handle and its free function (None for a borrowed handle)."""
    __slots__ = ("ptr", "free")

    def __init__(self, ptr, free):
        self.ptr, self.free = ptr, free

    def release(self):
        ptr, self.ptr = self.ptr, None
        if ptr and self.free is not None:
            self.free(ptr)


class _Handle:
    """A library handle tied to its Context: freed with it at the latest."""
    _free_fn = None

    def _attach(self, ctx, ptr):
        self.ctx = ctx
        self._cell = _Cell(ptr, type(self)._free_fn)
        ctx._live[id(self._cell)] = self._cell

    @property
    def _ptr(self):
        cell = self.__dict__.get("_cell")
        return cell.ptr if cell is not None else None

    @property
    def ptr(self):
        if not self._ptr:
            raise ValueError(f"this {type(self).__name__} is closed (its Context was closed)")
        return self._ptr

    def _release(self):
        cell = self.__dict__.get("_cell")
        if cell is not None and cell.ptr:
            cell.release()
            ctx = self.__dict__.get("ctx")
            if ctx is not None and cell.free is not None:
                ctx._live.pop(id(cell), None)

    @classmethod
    def _borrow(cls, ctx, ptr):
        """A view of a handle the library owns, valid only during a callback."""
        obj = cls.__new__(cls)
        obj.ctx, obj._cell = ctx, _Cell(ctypes.c_void_p(ptr), None)
        return obj

    def __del__(self):
        try:
            self._release()
        except Exception:
            pass


class Options(_Handle):
    """Algorithm options: Options(ctx, EM_MAX_ROUNDS=5, INIT_METHOD=INIT_OA_EM, ...).

    Keys are the pinned AQ_OPT_* values (aqinit.OPT_EM_TOL) or their names with or without the
    prefix ("EM_TOL", "AQ_OPT_EM_TOL"). set() picks the typed setter from the option's own type,
    so EM_TOL=0 sets the double 0.0; a non-integral value for an integer option is a TypeError."""

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
        return int(key)

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
            return self.set_double(k, value)
        if isinstance(value, (float, np.floating)):
            if not float(value).is_integer():
                raise TypeError(f"option {key!r} is integer-valued, got {value!r}")
            value = int(value)
        return self.set_int(k, value)

    def set_int(self, key, value):
        """aq_options_set_int."""
        _check(lib.aq_options_set_int(self.ptr, self._key(key), int(value)), self.ctx)
        return self

    def set_double(self, key, value):
        """aq_options_set_double."""
        _check(lib.aq_options_set_double(self.ptr, self._key(key), float(value)), self.ctx)
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


class Format:
    """A quantization format, e.g. Format("2x8g8") or Format("1x16g8o1"); fields may be changed
    (Format("2x8g8", scale_mode=SCALE_NONE), f.in_group_size = 4)."""

    _FIELDS = ("num_codebooks", "bits_per_codebook", "in_group_size", "out_group_size", "scale_mode")

    def __init__(self, text="2x8g8", **fields):
        self.struct = _FormatStruct()
        lib.aq_format_init(ctypes.byref(self.struct))
        status = lib.aq_format_parse(ctypes.byref(self.struct), str(text).encode())
        if status < 0:
            raise AqError(status, f"cannot parse the format {text!r} (expected MxB[gG][oGO], e.g. 2x8g8, "
                                  f"M in 1..64, B in 1..16)")
        self._text = str(text)
        for name, value in fields.items():
            if name not in self._FIELDS:
                raise TypeError(f"Format has no field {name!r}")
            setattr(self, name, value)

    @classmethod
    def _from_struct(cls, struct):
        f = cls.__new__(cls)
        f.struct, f._text = struct, None
        return f

    def _field(name):  # noqa: N805 — a property factory used in the class body
        def get(self):
            return getattr(self.struct, name)

        def put(self, value):
            setattr(self.struct, name, int(value))
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
        _check(lib.aq_format_check(c.handle, ctypes.byref(self.struct), int(rows), int(cols)), c)

    def bits_per_parameter(self, rows, cols):
        self.check(rows, cols)
        out = ctypes.c_double()
        _check(lib.aq_format_bits_per_parameter(ctypes.byref(out), ctypes.byref(self.struct), int(rows), int(cols)))
        return out.value

    def rho(self, rows, cols):
        """ρ = N / K^M with N = (rows/g_o)(cols/g) tiles."""
        self.check(rows, cols)
        out = ctypes.c_double()
        _check(lib.aq_format_rho(ctypes.byref(out), ctypes.byref(self.struct), int(rows), int(cols)))
        return out.value

    def __eq__(self, other):
        return isinstance(other, Format) and all(getattr(self, f) == getattr(other, f) for f in self._FIELDS)

    def __hash__(self):
        return hash(tuple(getattr(self, f) for f in self._FIELDS))

    def __repr__(self):
        extra = "" if self.scale_mode == SCALE_PER_OUTPUT_GROUP else f", scale_mode={self.scale_mode}"
        return f"Format({self.text!r}{extra})"


_SCRATCH = []


def _scratch_context():
    """A private context that receives the messages of calls that take no context (format checks)."""
    if not _SCRATCH:
        _SCRATCH.append(Context())
    return _SCRATCH[0]


class Hessian(_Handle):
    """Running mean H = XᵀX/n of a layer's inputs, in double."""
    _free_fn = lib.aq_hessian_free

    def __init__(self, ctx, n_inputs, _ptr=None):
        if _ptr is None:
            _ptr = ctypes.c_void_p()
            _check(lib.aq_hessian_create(ctypes.byref(_ptr), ctx.handle, int(n_inputs)), ctx)
        self._attach(ctx, _ptr)

    @classmethod
    def from_matrix(cls, ctx, H, n_samples):
        H = np.ascontiguousarray(H, dtype=np.float64)
        if H.ndim != 2 or H.shape[0] != H.shape[1]:
            raise ValueError("H must be square")
        ptr = ctypes.c_void_p()
        _check(lib.aq_hessian_create_from_matrix(ctypes.byref(ptr), ctx.handle, H.ctypes.data, H.shape[0],
                                                 H.shape[1], int(n_samples)), ctx)
        return cls(ctx, H.shape[0], ptr)

    @classmethod
    def load(cls, ctx, path):
        ptr = ctypes.c_void_p()
        _check(lib.aq_hessian_load(ctypes.byref(ptr), ctx.handle, str(path).encode()), ctx)
        return cls(ctx, None, ptr)

    def add(self, X):
        """Accumulate the rows of X (float32, n_rows × n_inputs)."""
        X, ld = _float32_matrix(X, "X")
        if X.shape[1] != self.n_inputs:
            raise AqError(ERR_SHAPE, f"Hessian.add: X has {X.shape[1]} columns, the Hessian {self.n_inputs} inputs")
        _check(lib.aq_hessian_add(self.ptr, X.ctypes.data, X.shape[0], ld), self.ctx)

    def merge(self, other):
        _check(lib.aq_hessian_merge(self.ptr, other.ptr), self.ctx)

    @property
    def n_inputs(self):
        return lib.aq_hessian_num_inputs(self.ptr)

    @property
    def n_samples(self):
        return lib.aq_hessian_num_samples(self.ptr)

    def matrix(self, damping=0.0):
        n = self.n_inputs
        out = np.empty((n, n), dtype=np.float64)
        _check(lib.aq_hessian_copy_matrix(self.ptr, out.ctypes.data, n, float(damping)), self.ctx)
        return out

    def diagonal(self, damping=0.0):
        out = np.empty(self.n_inputs, dtype=np.float64)
        _check(lib.aq_hessian_copy_diagonal(self.ptr, out.ctypes.data, float(damping)), self.ctx)
        return out

    def block(self, group_size, group, damping=0.0):
        out = np.empty((group_size, group_size), dtype=np.float64)
        _check(lib.aq_hessian_copy_block(self.ptr, out.ctypes.data, int(group_size), int(group), float(damping)),
               self.ctx)
        return out

    def save(self, path):
        _check(lib.aq_hessian_save(self.ptr, str(path).encode()), self.ctx)


class Quant(_Handle):
    """A quantized matrix in AQLM's layout: codes [O/g_o, I/g, M], codebooks [M, K, g_o, g],
    scales [O/g_o]."""

    _free_fn = lib.aq_quant_free

    def __init__(self, ctx, fmt, rows, cols, _ptr=None):
        if _ptr is None:
            _ptr = ctypes.c_void_p()
            fmt = Format(fmt) if isinstance(fmt, str) else fmt
            _check(lib.aq_quant_create(ctypes.byref(_ptr), ctx.handle, ctypes.byref(fmt.struct), int(rows),
                                       int(cols)), ctx)
        self._attach(ctx, _ptr)

    @classmethod
    def load(cls, ctx, path):
        ptr = ctypes.c_void_p()
        _check(lib.aq_quant_load(ctypes.byref(ptr), ctx.handle, str(path).encode()), ctx)
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
        shape, dtype, _, _ = self._shapes()
        out = np.empty(shape, dtype=dtype)
        _check(lib.aq_quant_copy_codes_out(self.ptr, out.ctypes.data, out.nbytes), self.ctx)
        return out

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
        return out

    def _float_in(self, copy_in, value, shape, name):
        a = np.ascontiguousarray(value, dtype=np.float32)
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape}")
        _check(copy_in(self.ptr, a.ctypes.data, a.size), self.ctx)

    @property
    def codebooks(self):
        return self._float_out(lib.aq_quant_copy_codebooks_out, self._shapes()[2])

    @codebooks.setter
    def codebooks(self, value):
        self._float_in(lib.aq_quant_copy_codebooks_in, value, self._shapes()[2], "codebooks")

    @property
    def scales(self):
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
        _check(lib.aq_quant_save(self.ptr, str(path).encode()), self.ctx)

    def matvec(self, x):
        """Ŵ x with the LUT kernels (x: float32 vector of length cols)."""
        rows, cols = self.shape
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape != (cols,):
            raise AqError(ERR_SHAPE, f"x has shape {x.shape}, expected ({cols},)")
        y = np.empty(rows, dtype=np.float32)
        _check(lib.aq_quant_matvec(self.ptr, x.ctypes.data, y.ctypes.data), self.ctx)
        return y

    def backward(self, grad_W):
        """P-step: (∂L/∂codebooks, ∂L/∂scales) from ∂L/∂Ŵ (float32, rows × cols)."""
        G, ld = _check_weight(self, grad_W)
        _, _, cb_shape, sc_shape = self._shapes()
        gc, gs = np.empty(cb_shape, dtype=np.float32), np.empty(sc_shape, dtype=np.float32)
        _check(lib.aq_quant_backward(self.ptr, G.ctypes.data, ld, gc.ctypes.data, gs.ctypes.data), self.ctx)
        return gc, gs

    def matmul(self, X):
        """X Ŵᵀ for a batch X (n × cols, float32)."""
        rows, cols = self.shape
        X, ld = _float32_matrix(X, "X")
        if X.shape[1] != cols:
            raise AqError(ERR_SHAPE, f"X has {X.shape[1]} columns, expected {cols}")
        Y = np.empty((X.shape[0], rows), dtype=np.float32)
        _check(lib.aq_quant_matmul(self.ptr, X.ctypes.data, X.shape[0], ld, Y.ctypes.data, rows), self.ctx)
        return Y


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


class Pipeline(_Handle):
    """Whole-model quantization driven by a Python host object with methods

        num_layers() -> int
        layer_info(k) -> (name, rows, cols)
        get_weight(k) -> float32 array (rows × cols)
        calibrate(k, hessian)          # add layer k's inputs: hessian.add(X)
        put_result(k, quant, report)   # quant is valid during the call: copy what you keep

    `report` is a dict (layer, resumed, init_error, final_error, init_seconds, optimize_seconds).
    An exception raised by the host stops the run and is re-raised by run()."""
    _free_fn = lib.aq_pipeline_free

    def __init__(self, ctx, fmt, host, options=None, resume_dir=None):
        fmt = Format(fmt) if isinstance(fmt, str) else fmt
        self.host = host
        self._error = None
        self._cb = self._callbacks()
        ptr = ctypes.c_void_p()
        _check(lib.aq_pipeline_create(ctypes.byref(ptr), ctx.handle, ctypes.byref(self._cb), ctypes.byref(fmt.struct),
                                      options.ptr if options is not None else None), ctx)
        self._attach(ctx, ptr)
        if resume_dir is not None:
            _check(lib.aq_pipeline_set_resume_dir(self.ptr, str(resume_dir).encode()), ctx)

    def _guard(self, fn):
        def call(*args):
            try:
                return fn(*args) or 0
            except BaseException as exc:  # noqa: BLE001 — re-raised by run()
                self._error = exc
                return 1
        return call

    def _callbacks(self):
        L = _lib
        self._names = {}

        def num_layers(out, _ud):
            out[0] = int(self.host.num_layers())

        def layer_info(k, name, rows, cols, _ud):
            n, r, c = self.host.layer_info(k)
            self._names[k] = str(n).encode()  # the library keeps a pointer to it during the layer
            name[0], rows[0], cols[0] = self._names[k], int(r), int(c)

        def get_weight(k, out, _ud):
            _, r, c = self.host.layer_info(k)
            W = np.ascontiguousarray(self.host.get_weight(k), dtype=np.float32)
            if W.shape != (r, c):
                raise AqError(ERR_SHAPE, f"get_weight({k}) returned shape {W.shape}, expected {(r, c)}")
            ctypes.memmove(out, W.ctypes.data, W.nbytes)

        def calibrate(k, h, _ud):
            self.host.calibrate(k, Hessian._borrow(self.ctx, h))

        def put_result(k, q, rep, _ud):
            r = rep.contents
            report = {f: getattr(r, f) for f in ("layer", "resumed", "init_error", "final_error", "init_seconds",
                                                  "optimize_seconds")}
            self.host.put_result(k, Quant._borrow(self.ctx, q), report)

        cb = L.PipelineCallbacks()
        cb.struct_size = ctypes.sizeof(L.PipelineCallbacks)
        cb.num_layers = L.NUM_LAYERS_FN(self._guard(num_layers))
        cb.layer_info = L.LAYER_INFO_FN(self._guard(layer_info))
        cb.get_weight = L.GET_WEIGHT_FN(self._guard(get_weight))
        cb.calibrate = L.CALIBRATE_FN(self._guard(calibrate))
        cb.put_result = L.PUT_RESULT_FN(self._guard(put_result))
        return cb

    def run(self):
        self._error = None
        status = lib.aq_pipeline_run(self.ptr)
        err, self._error = self._error, None
        if err is not None and status in (ERR_CALLBACK, ERR_CANCELLED):
            raise err
        return self.ctx._call(status)

    @property
    def host_status(self):
        return lib.aq_pipeline_host_status(self.ptr)
