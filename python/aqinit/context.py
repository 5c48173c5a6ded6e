# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Context: threads, seed, progress and log callbacks, and the last error."""
import ctypes

from ._lib import lib, PROGRESS_FN as _PROGRESS_FN, LOG_FN as _LOG_FN
from ._scalars import _c_int
from .constants import ERR_CANCELLED, LOG_INFO
from .errors import _check


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
        self._comm_ref = None
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
        _check(lib.aq_context_set_threads(self.handle, _c_int(n, ctypes.c_int32, "threads")), self)

    @property
    def seed(self):
        return lib.aq_context_get_seed(self.handle)

    @seed.setter
    def seed(self, s):
        _check(lib.aq_context_set_seed(self.handle, _c_int(s, ctypes.c_uint64, "seed")), self)

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

    def set_comm(self, comm):
        """Attach an aqinit.Comm (None detaches): the context's functions then run across its ranks."""
        if comm is None:
            _check(lib.aq_context_set_comm(self.handle, None), self)
            self._comm_ref = None
            return
        _check(lib.aq_context_set_comm(self.handle, ctypes.byref(comm.struct)), self)
        self._comm_ref = comm

    @property
    def comm_rank(self):
        return lib.aq_context_comm_rank(self.handle)

    @property
    def comm_size(self):
        return lib.aq_context_comm_size(self.handle)

    def set_log(self, fn, level=None):
        """fn(level, message) receives messages at `level` (default LOG_INFO) or more important."""
        if fn is None:
            self._log_ref = None
            _check(lib.aq_context_set_log_callback(self.handle, ctypes.cast(None, _LOG_FN), 0, None), self)
            return
        level = LOG_INFO if level is None else _c_int(level, ctypes.c_int32, "level")
        self._log_ref = _LOG_FN(lambda lvl, msg, _ud: fn(lvl, msg.decode(errors="replace")))
        _check(lib.aq_context_set_log_callback(self.handle, self._log_ref, level, None), self)

    def _call(self, status):
        """Check a status, re-raising an exception that a Python callback raised during the call."""
        err, self._callback_error = self._callback_error, None
        if err is not None and status == ERR_CANCELLED:
            raise err
        return _check(status, self)
