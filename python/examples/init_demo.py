# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""GREEDY vs OA-EM on a random layer through the Python binding.

    PYTHONPATH=python /usr/bin/python3 python/examples/init_demo.py
(with the library built in build/, or AQINIT_LIBRARY pointing at libaqinit.so)."""
import time

import numpy as np

import aqinit

rng = np.random.default_rng(0)
rows, cols = 512, 512
W = rng.standard_t(df=4, size=(rows, cols)).astype(np.float32) * 0.02
X = (rng.standard_normal((4 * cols, cols)) @ np.diag(np.logspace(0, -2, cols))).astype(np.float32)

with aqinit.Context(threads=0, seed=1) as ctx:
    H = aqinit.Hessian(ctx, cols)
    H.add(X)
    for fmt in ("1x8g4", "2x8g8"):
        for name, method in (("greedy", aqinit.INIT_GREEDY), ("oaem", aqinit.INIT_OA_EM)):
            q = aqinit.Quant(ctx, fmt, rows, cols)
            t0 = time.perf_counter()
            aqinit.init(ctx, q, W, H, aqinit.Options(ctx, INIT_METHOD=method))
            f = aqinit.Format(fmt)
            print(f"{fmt:6s} {f.bits_per_parameter(rows, cols):.3f} bpp  rho {f.rho(rows, cols):8.1f}  {name:6s} "
                  f"rel. output error {q.output_error(W, H):.5f}  {time.perf_counter() - t0:.2f} s")
