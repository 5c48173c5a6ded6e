# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Comm: an aq_comm (aqinit.h, "Communicator") over an mpi4py communicator.

    from mpi4py import MPI
    ctx = aqinit.Context(threads=1, seed=1)
    ctx.set_comm(aqinit.Comm(MPI.COMM_WORLD))   # every rank runs the same calls

With a communicator every rank calls the library with the same arguments and each does its share
of the work; every rank ends with the same handles, bit-identical to one process. Each rank may
add its own calibration rows to a Hessian and combine them with Hessian.allreduce(). mpi4py is
imported only when a Comm is made (Debian: python3-mpi4py)."""
import ctypes

import numpy as np

from ._lib import lib, CommStruct, ALLREDUCE_F64_FN, ALLREDUCE_F32_FN, BROADCAST_FN, AGREE_FN


class Comm:
    """The library's communicator over an mpi4py ``MPI.Comm`` (a duplicate, so the library's
    messages never meet the host's). Keep it alive while a context uses it."""

    def __init__(self, mpi_comm):
        from mpi4py import MPI  # noqa: F401 — only needed here
        self._MPI = MPI
        self._mpi = mpi_comm.Dup()
        self.error = None  # the exception a callback last caught (a callback cannot raise into C)
        self._refs = (ALLREDUCE_F64_FN(self._allreduce(np.float64)), ALLREDUCE_F32_FN(self._allreduce(np.float32)),
                      BROADCAST_FN(self._broadcast), AGREE_FN(self._agree))
        self.struct = CommStruct()
        lib.aq_comm_init(ctypes.byref(self.struct))
        self.struct.rank = self._mpi.Get_rank()
        self.struct.size = self._mpi.Get_size()
        (self.struct.allreduce_sum_f64, self.struct.allreduce_sum_f32, self.struct.broadcast,
         self.struct.agree) = self._refs

    @property
    def rank(self):
        return self.struct.rank

    @property
    def size(self):
        return self.struct.size

    def free(self):
        """Free the duplicate communicator (collective); the Comm is unusable afterwards."""
        if self._mpi is not None:
            self._mpi.Free()
            self._mpi = None

    @staticmethod
    def _view(address, count, dtype):
        """A writable numpy view of count items at address (native-order buffer format, as mpi4py wants)."""
        nbytes = int(count) * np.dtype(dtype).itemsize
        return np.frombuffer((ctypes.c_char * nbytes).from_address(address), dtype=dtype)

    def _allreduce(self, dtype):
        def fn(buf, count, _ud):
            try:
                if count > 0:
                    self._mpi.Allreduce(self._MPI.IN_PLACE, self._view(buf, count, dtype), op=self._MPI.SUM)
                return 0
            except BaseException as exc:  # noqa: BLE001 — reported to the library as a failing callback
                self.error = exc
                return -1
        return fn

    def _broadcast(self, buf, nbytes, root, _ud):
        try:
            if nbytes > 0:
                self._mpi.Bcast(self._view(buf, nbytes, np.uint8), root=root)
            return 0
        except BaseException as exc:  # noqa: BLE001
            self.error = exc
            return -1

    def _agree(self, status, failed_rank, _ud):
        try:
            statuses = self._mpi.allgather(int(status[0]))
            failing = [r for r, s in enumerate(statuses) if s != 0]
            status[0] = statuses[failing[0]] if failing else 0
            failed_rank[0] = failing[0] if failing else -1
            return 0
        except BaseException as exc:  # noqa: BLE001
            self.error = exc
            return -1
