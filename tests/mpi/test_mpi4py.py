# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""The binding's Comm under mpirun (suite mpi, when mpi4py is installed): init + optimize with a
communicator give every rank the bytes of the run without one; Hessian.allreduce equals the
rank-order merge; a cancel on the last rank is AqError(ERR_CANCELLED) on every rank."""
import sys

import numpy as np
from mpi4py import MPI

import aqinit

world = MPI.COMM_WORLD
rank, size = world.Get_rank(), world.Get_size()
rng = np.random.default_rng(1)
W = rng.standard_normal((48, 64)).astype(np.float32)
X = rng.standard_normal((160, 64)).astype(np.float32)
X[:, 1:] += 0.6 * X[:, :-1]
failures = []


def quantize(ctx):
    H = aqinit.Hessian(ctx, 64)
    H.add(X)
    q = aqinit.Quant(ctx, "2x6g8", 48, 64)
    opts = aqinit.Options(ctx, INIT_METHOD=aqinit.INIT_OA_EM, BEAM_WIDTH=2, MAX_EPOCHS=2)
    aqinit.init(ctx, q, W, H, opts)
    aqinit.optimize(ctx, q, W, H, opts)
    return q.codes.tobytes() + q.codebooks.tobytes() + q.scales.tobytes()


comm = aqinit.Comm(world)
alone = aqinit.Context(threads=1, seed=4)
ctx = aqinit.Context(threads=1, seed=4)
ctx.set_comm(comm)
if (ctx.comm_rank, ctx.comm_size) != (rank, size):
    failures.append("comm rank/size")
if quantize(ctx) != quantize(alone):
    failures.append(f"init + optimize on {size} ranks differs from one process")

part, merged = aqinit.Hessian(ctx, 64), aqinit.Hessian(alone, 64)
bounds = [len(X) * r // size for r in range(size + 1)]
part.add(X[bounds[rank]:bounds[rank + 1]])
part.allreduce()
for r in range(size):
    piece = aqinit.Hessian(alone, 64)
    piece.add(X[bounds[r]:bounds[r + 1]])
    merged.merge(piece)
if part.n_samples != len(X) or not np.array_equal(part.matrix(), merged.matrix()):
    failures.append("allreduce is not the rank-order merge")

if size > 1:
    if rank == size - 1:
        ctx.set_progress(lambda *a: True)
    try:
        quantize(ctx)
        failures.append("no error after a cancel on the last rank")
    except aqinit.AqError as e:
        if e.status != aqinit.ERR_CANCELLED:
            failures.append(f"cancel gave {e}")
    ctx.set_progress(None)

ctx.close()
alone.close()
comm.free()
for f in failures:
    print(f"rank {rank}: {f}", file=sys.stderr)
total = world.allreduce(len(failures))
if rank == 0:
    print(f"{size} ranks (mpi4py): {'FAILED' if total else 'OK'}")
sys.exit(1 if total else 0)
