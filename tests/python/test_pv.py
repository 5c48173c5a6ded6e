# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""aq_vstep's GAIN selection and whole-matrix trust ratio through the binding."""
import numpy as np

import aqinit


def _quant(ctx, rng):
    q = aqinit.Quant(ctx, "2x4g4", 32, 32)
    q.codes = rng.integers(0, 16, size=(32, 8, 2)).astype(np.uint8)
    q.codebooks = rng.standard_normal((2, 16, 1, 4)).astype(np.float32)
    q.scales = rng.uniform(0.5, 1.5, 32).astype(np.float32)
    return q


def test_vstep_gain_and_max_change():
    rng = np.random.default_rng(3)
    with aqinit.Context(threads=2, seed=1) as ctx:
        q = _quant(ctx, rng)
        T = rng.standard_normal((32, 32)).astype(np.float32)
        W0, codes0 = q.dequantize(), q.codes
        start = np.sum((W0 - T) ** 2)
        decrease = {}
        for name in ("LARGEST", "SAMPLED", "GAIN"):
            q.codes = codes0
            n = aqinit.vstep(ctx, q, T, options=aqinit.Options(ctx, VSTEP_MAX_FRACTION=0.05,
                                                                VSTEP_SELECTION=getattr(aqinit, "VSTEP_" + name)))
            tiles = np.any(q.codes != codes0, axis=-1).sum()
            assert 0 < tiles <= np.ceil(0.05 * 256) and n >= tiles
            decrease[name] = start - np.sum((q.dequantize() - T) ** 2)
        assert decrease["GAIN"] >= max(decrease["LARGEST"], decrease["SAMPLED"]) - 1e-6
        for r in (0.01, 0.05, 0.2):
            q.codes = codes0
            options = aqinit.Options(ctx, VSTEP_MAX_FRACTION=1.0, VSTEP_SELECTION=aqinit.VSTEP_GAIN, VSTEP_MAX_CHANGE=r)
            aqinit.vstep(ctx, q, T, options=options)
            assert np.linalg.norm(q.dequantize() - W0) <= r * np.linalg.norm(W0) * (1 + 1e-6)
