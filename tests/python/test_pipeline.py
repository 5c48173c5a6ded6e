# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Pipeline through ctypes callbacks, LUT mat-vec, and the AQLM safetensors export."""
import numpy as np
import pytest

import aqinit


class TwoLayerHost:
    """y = W1 (W0 x), calibrated true-sequentially on fixed inputs."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.W = [rng.standard_normal((16, 32)).astype(np.float32), rng.standard_normal((8, 16)).astype(np.float32)]
        self.X = rng.standard_normal((300, 32)).astype(np.float32)
        self.reports, self.quants, self.fail_at = {}, {}, None

    def num_layers(self):
        return 2

    def layer_info(self, k):
        return f"fc{k}", *self.W[k].shape

    def get_weight(self, k):
        return self.W[k]

    def calibrate(self, k, hessian):
        if self.fail_at == k:
            raise KeyError("host cannot calibrate")
        hessian.add(self.X if k == 0 else self.X @ self.W[0].T)

    def put_result(self, k, quant, report):
        self.W[k] = quant.dequantize()  # the next layer sees the quantized model
        self.quants[k] = quant.clone()
        self.reports[k] = report


def test_pipeline_runs_true_sequentially(tmp_path):
    with aqinit.Context(threads=2, seed=1) as ctx:
        host = TwoLayerHost()
        original = [w.copy() for w in host.W]
        opts = aqinit.Options(ctx, INIT_METHOD=aqinit.INIT_OA_EM, MAX_EPOCHS=2)
        aqinit.Pipeline(ctx, "2x4g4", host, opts, resume_dir=tmp_path).run()
        for k in (0, 1):
            r = host.reports[k]
            assert r["layer"] == k and r["resumed"] == 0
            assert 0 < r["final_error"] <= r["init_error"] * (1 + 1e-9)
            assert not np.array_equal(host.W[k], original[k])
        assert sorted(p.name for p in tmp_path.iterdir()) == ["layer-00000.aqq", "layer-00000.prov",
                                                               "layer-00001.aqq", "layer-00001.prov"]
        # Resuming: the host is never asked to calibrate, and gets the same layers back.
        again = TwoLayerHost()
        again.fail_at = 0
        aqinit.Pipeline(ctx, "2x4g4", again, opts, resume_dir=tmp_path).run()
        for k in (0, 1):
            assert again.reports[k]["resumed"] == 1
            assert again.reports[k]["final_error"] == host.reports[k]["final_error"]
            np.testing.assert_array_equal(again.W[k], host.W[k])


def test_host_exceptions_propagate():
    with aqinit.Context() as ctx:
        host = TwoLayerHost()
        host.fail_at = 1
        p = aqinit.Pipeline(ctx, "2x4g4", host)
        with pytest.raises(KeyError, match="host cannot calibrate"):
            p.run()
        assert p.host_status == 1 and 0 in host.reports and 1 not in host.reports


def test_matvec_and_matmul_equal_numpy():
    rng = np.random.default_rng(3)
    with aqinit.Context(threads=2) as ctx:
        q = aqinit.Quant(ctx, "2x8g8", 64, 128)
        q.codes = rng.integers(0, 256, size=(64, 16, 2)).astype(np.uint8)
        q.codebooks = rng.standard_normal((2, 256, 1, 8)).astype(np.float32)
        q.scales = rng.uniform(0.5, 1.5, 64).astype(np.float32)
        W = q.dequantize().astype(np.float64)
        x = rng.standard_normal(128).astype(np.float32)
        np.testing.assert_allclose(q.matvec(x), W @ x, rtol=1e-4, atol=1e-4 * np.abs(W @ x).max())
        X = rng.standard_normal((20, 128)).astype(np.float32)
        np.testing.assert_allclose(q.matmul(X), X @ W.T, rtol=1e-4, atol=1e-4 * np.abs(X @ W.T).max())
        # the int16 tables (or the exact kernel where the CPU has no VBMI): relative error 1e-3
        y = q.matvec(x, kernel=aqinit.MATVEC_INT16)
        assert np.linalg.norm(y - W @ x) <= 1e-3 * np.linalg.norm(W @ x)
        Y = q.matmul(X[:3], kernel=aqinit.MATVEC_INT16)
        assert np.linalg.norm(Y - X[:3] @ W.T) <= 1e-3 * np.linalg.norm(X[:3] @ W.T)
        np.testing.assert_array_equal(q.matvec(x, kernel=aqinit.MATVEC_EXACT), q.matvec(x))
        with pytest.raises(aqinit.AqError):
            q.matvec(x, kernel=9)


def test_aqlm_safetensors_export_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    with aqinit.Context() as ctx:
        q = aqinit.Quant(ctx, "1x16g8", 8, 32)
        codes = rng.integers(0, 65536, size=(8, 4, 1)).astype(np.uint16)
        q.codes = codes
        q.codebooks = rng.standard_normal((1, 65536, 1, 8)).astype(np.float32)
        path = tmp_path / "layer.safetensors"
        aqinit.export_aqlm(q, path, prefix="model.layers.0.mlp.down_proj.")
        tensors, meta = aqinit.read_safetensors(path)
        c = tensors["model.layers.0.mlp.down_proj.codes"]
        assert c.dtype == np.int16 and c.shape == (8, 4, 1)
        np.testing.assert_array_equal(c.view(np.uint16), codes)  # two's complement of the codes
        np.testing.assert_array_equal(tensors["model.layers.0.mlp.down_proj.codebooks"], q.codebooks)
        assert tensors["model.layers.0.mlp.down_proj.scales"].shape == (8, 1, 1, 1)
        assert meta["format"].startswith("1x16g8")
        # Rebuild Ŵ from the exported tensors alone.
        books = tensors["model.layers.0.mlp.down_proj.codebooks"][0, :, 0, :]
        W = books[c.view(np.uint16)[:, :, 0]].reshape(8, 32) * tensors["model.layers.0.mlp.down_proj.scales"].reshape(8, 1)
        np.testing.assert_allclose(W, q.dequantize(), rtol=1e-6)


TINY = __import__("os").path.join(__import__("os").path.dirname(__file__), "..", "..", "..", "shared", "bench", "tiny")


@pytest.mark.skipif(not __import__("os").path.exists(TINY), reason="../shared/bench/tiny not found")
def test_numpy_llama_example_on_the_tiny_model(tmp_path):
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python", "examples"))
    import llama_numpy_pipeline as ex
    model = ex.LlamaNumpy(os.path.join(TINY, "model.bin"))
    calib = np.fromfile(os.path.join(TINY, "calib.tok.bin"), dtype="<u2").astype(np.int64)
    # The numpy forward reproduces the reference figure (289.96 on all 512 windows; 40 here).
    fp32 = ex.perplexity(model, calib, 40)
    with aqinit.Context(threads=2, seed=1) as ctx:
        host = ex.Host(model, calib, 4)
        aqinit.Pipeline(ctx, "2x6g4", host, aqinit.Options(ctx, INIT_METHOD=aqinit.INIT_OA_EM, MAX_EPOCHS=2)).run()
        assert len(host.quants) == 28
        quantized = ex.perplexity(model, calib, 40)
        assert quantized < 1.5 * fp32
        aqinit.export_aqlm(host.quants[0], tmp_path / "l0.safetensors")
        tensors, _ = aqinit.read_safetensors(tmp_path / "l0.safetensors")
        np.testing.assert_array_equal(tensors["codes"].view(np.uint8), host.quants[0].codes)


def test_backward_and_vstep():
    rng = np.random.default_rng(9)
    with aqinit.Context(threads=2, seed=2) as ctx:
        q = aqinit.Quant(ctx, "2x4g4", 16, 32)
        q.codes = rng.integers(0, 16, size=(16, 8, 2)).astype(np.uint8)
        q.codebooks = rng.standard_normal((2, 16, 1, 4)).astype(np.float32)
        q.scales = rng.uniform(0.5, 1.5, 16).astype(np.float32)
        G = rng.standard_normal((16, 32)).astype(np.float32)
        gc, gs = q.backward(G)
        # numpy transpose of dequantize (docs/formats.md layout)
        codes, books, scales = q.codes, q.codebooks, q.scales
        ref_c = np.zeros_like(books, dtype=np.float64)
        ref_s = np.zeros(16)
        for p in range(16):
            for j in range(8):
                g = G[p, j * 4:(j + 1) * 4].astype(np.float64)
                for m in range(2):
                    ref_c[m, codes[p, j, m], 0] += scales[p] * g
                    ref_s[p] += g @ books[m, codes[p, j, m], 0]
        np.testing.assert_allclose(gc, ref_c, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(gs, ref_s, rtol=1e-5, atol=1e-5)
        T = rng.standard_normal((16, 32)).astype(np.float32)
        before = np.sum((q.dequantize() - T) ** 2)
        n = aqinit.vstep(ctx, q, T, options=aqinit.Options(ctx, VSTEP_MAX_FRACTION=0.25))
        after = np.sum((q.dequantize() - T) ** 2)
        assert n > 0 and after < before


@pytest.mark.skipif(not __import__("os").path.exists(TINY), reason="../shared/bench/tiny not found")
def test_pv_steps_on_a_tiny_model_layer():
    """A few P- and V-steps on layers.0.w1 of the tiny model with its real Hessian: the layer's
    output error tr(ΔW H ΔWᵀ) goes down with each kind of step."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python", "examples"))
    import llama_numpy_pipeline as ex
    model = ex.LlamaNumpy(os.path.join(TINY, "model.bin"))
    calib = np.fromfile(os.path.join(TINY, "calib.tok.bin"), dtype="<u2").astype(np.int64)
    W = model.weight(4).copy()  # layers.0.w1
    with aqinit.Context(threads=2, seed=1) as ctx:
        H = aqinit.Hessian(ctx, W.shape[1])
        for w in range(8):
            model.forward(calib[w * model.seq:(w + 1) * model.seq],
                          lambda i, X: i == 4 and (H.add(np.ascontiguousarray(X, np.float32)) or True))
        q = aqinit.Quant(ctx, "1x6g4", *W.shape)
        aqinit.init(ctx, q, W, H, aqinit.Options(ctx, INIT_METHOD=aqinit.INIT_OA_EM))
        Hm = H.matrix()
        loss = lambda: float(np.trace((q.dequantize() - W) @ Hm @ (q.dequantize() - W).T))  # noqa: E731
        start = loss()
        for _ in range(5):  # P-steps: gradient descent on the codebooks via aq_quant_backward
            G = (2.0 * (q.dequantize() - W) @ Hm).astype(np.float32)
            gc, _ = q.backward(G)
            before, books, step = loss(), q.codebooks, 1.0 / np.abs(gc).max()
            for _ in range(30):  # backtracking: the gradient is a descent direction
                q.codebooks = books - step * gc
                if loss() < before:
                    break
                step /= 2
            assert loss() < before
        after_p = loss()
        assert after_p < start

        def block_distance():  # the V-step's metric: Σ_tiles (Ŵ − W)_tile H_jj (Ŵ − W)_tileᵀ
            D = (q.dequantize() - W).astype(np.float64)
            return sum(float(np.sum((D[:, j:j + 4] @ Hm[j:j + 4, j:j + 4]) * D[:, j:j + 4]))
                       for j in range(0, W.shape[1], 4))
        before_v = block_distance()
        n = aqinit.vstep(ctx, q, W, H, aqinit.Options(ctx, VSTEP_MAX_FRACTION=0.05))
        assert n > 0 and block_distance() < before_v
