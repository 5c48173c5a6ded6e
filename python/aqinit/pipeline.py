# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Pipeline: whole-model quantization driven by a Python host object."""
import ctypes

import numpy as np

from . import _lib
from ._lib import lib
from ._arrays import _typed_array
from ._handle import _Handle
from ._scalars import _c_int, _c_path
from .constants import ERR_CALLBACK, ERR_CANCELLED, ERR_SHAPE
from .errors import AqError, _check
from .format import Format
from .hessian import Hessian
from .quant import Quant


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
        fmt = Format._of(fmt)
        self.host = host
        self._error = None
        self._cb = self._callbacks()
        ptr = ctypes.c_void_p()
        _check(lib.aq_pipeline_create(ctypes.byref(ptr), ctx.handle, ctypes.byref(self._cb), ctypes.byref(fmt.struct),
                                      options.ptr if options is not None else None), ctx)
        self._attach(ctx, ptr)
        if resume_dir is not None:
            _check(lib.aq_pipeline_set_resume_dir(self.ptr, _c_path(resume_dir)), ctx)

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
            out[0] = _c_int(self.host.num_layers(), ctypes.c_int32, "num_layers()")

        def layer_info(k, name, rows, cols, _ud):
            n, r, c = self.host.layer_info(k)
            r, c = (_c_int(v, ctypes.c_int64, f"layer_info({k}) {what}") for v, what in ((r, "rows"), (c, "cols")))
            self._names[k] = str(n).encode()  # the library keeps a pointer to it during the layer
            name[0], rows[0], cols[0] = self._names[k], r, c

        def get_weight(k, out, _ud):
            _, r, c = self.host.layer_info(k)
            W = _typed_array(self.host.get_weight(k), np.float32, f"get_weight({k})")
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
