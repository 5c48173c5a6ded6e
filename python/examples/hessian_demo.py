# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Accumulate a Hessian H = XᵀX/n from random numpy batches and print its statistics.

    PYTHONPATH=python /usr/bin/python3 python/examples/hessian_demo.py [--inputs 256] [--rows 4096]
(with the library built in build/, or AQINIT_LIBRARY pointing at libaqinit.so)."""
import argparse
import os
import tempfile

import numpy as np

import aqinit

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--inputs", type=int, default=256)
ap.add_argument("--rows", type=int, default=4096)
ap.add_argument("--batch", type=int, default=1000)
args = ap.parse_args()

rng = np.random.default_rng(0)
# Correlated inputs with a decaying spectrum, like an LLM layer's activations.
mix = rng.standard_normal((args.inputs, args.inputs)) * np.logspace(0, -2, args.inputs)
X = (rng.standard_normal((args.rows, args.inputs)) @ mix).astype(np.float32)

print(f"libaqinit {aqinit.version_string()} ({aqinit._lib.lib_path})")
with aqinit.Context(threads=0) as ctx:
    H = aqinit.Hessian(ctx, args.inputs)
    for start in range(0, args.rows, args.batch):  # any batch split gives the same H
        H.add(X[start:start + args.batch])
    M = H.matrix()
    eig = np.linalg.eigvalsh(M)
    ref = X.astype(np.float64).T @ X.astype(np.float64) / args.rows
    print(f"inputs {H.n_inputs}, samples {H.n_samples}")
    print(f"trace {np.trace(M):.6g}, mean diagonal {H.diagonal().mean():.6g}")
    print(f"eigenvalues: max {eig[-1]:.4g}, min {eig[0]:.4g}, condition {eig[-1] / max(eig[0], 1e-300):.3g}")
    print(f"condition with 1% damping: {np.linalg.cond(H.matrix(0.01)):.3g}")
    print(f"max |H - XᵀX/n| / max |H|: {np.abs(M - ref).max() / np.abs(ref).max():.2e}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "layer.aqh")
        H.save(path)
        same = np.array_equal(aqinit.Hessian.load(ctx, path).matrix(), M)
        print(f"saved {os.path.getsize(path)} bytes, reloaded identical: {same}")
