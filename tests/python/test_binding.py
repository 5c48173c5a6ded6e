# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""The ctypes binding against independent numpy computations."""
import os
import re

import numpy as np
import pytest

import aqinit

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def ctx():
    with aqinit.Context(threads=2, seed=3) as c:
        yield c


def test_version_matches_meson_project():
    meson = open(os.path.join(ROOT, "meson.build")).read()
    declared = re.search(r"version\s*:\s*'([0-9.]+)'", meson).group(1)
    assert aqinit.version_string() == declared
    assert ".".join(map(str, aqinit.version())) == declared
    assert aqinit.VERSION_NUMBER == aqinit.VERSION_MAJOR * 10000 + aqinit.VERSION_MINOR * 100 + aqinit.VERSION_PATCH


def test_errors_carry_status_name_and_message(ctx):
    with pytest.raises(aqinit.AqError) as info:
        aqinit.Hessian(ctx, 0)
    assert info.value.status < 0 and info.value.name.startswith("AQ_ERR_")
    h = aqinit.Hessian(ctx, 8)
    with pytest.raises(aqinit.AqError) as info:
        h.add(np.zeros((3, 9), dtype=np.float32))
    assert info.value.status == aqinit.ERR_SHAPE and info.value.name == "AQ_ERR_SHAPE"
    assert "9 columns" in info.value.message
    with pytest.raises(aqinit.AqError) as info:  # detected by the library itself
        h.merge(aqinit.Hessian(ctx, 9))
    assert info.value.status == aqinit.ERR_SHAPE and "aq_hessian_merge" in info.value.message
    with pytest.raises(TypeError):
        h.add(np.zeros((3, 8), dtype=np.float64))


def test_nonfinite_rows_change_nothing(ctx):
    rng = np.random.default_rng(0)
    h = aqinit.Hessian(ctx, 16)
    X = rng.standard_normal((40, 16)).astype(np.float32)
    h.add(X)
    before = h.matrix()
    bad = rng.standard_normal((5, 16)).astype(np.float32)
    bad[3, 7] = np.nan
    with pytest.raises(aqinit.AqError) as info:
        h.add(bad)
    assert info.value.status == aqinit.ERR_NONFINITE
    assert h.n_samples == 40
    np.testing.assert_array_equal(h.matrix(), before)


@pytest.mark.parametrize("splits", [[300], [1, 299], [100, 100, 100], [7, 13, 280]])
def test_hessian_equals_numpy(ctx, splits):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((sum(splits), 48)).astype(np.float32)
    h = aqinit.Hessian(ctx, 48)
    start = 0
    for n in splits:
        h.add(X[start:start + n])
        start += n
    ref = X.astype(np.float64).T @ X.astype(np.float64) / X.shape[0]
    np.testing.assert_allclose(h.matrix(), ref, rtol=1e-10, atol=1e-12)
    assert h.n_samples == X.shape[0]


def test_strided_rows_are_read_with_their_leading_dimension(ctx):
    rng = np.random.default_rng(2)
    big = rng.standard_normal((64, 40)).astype(np.float32)
    view = big[:, :24]  # rows with a stride of 40 floats
    h = aqinit.Hessian(ctx, 24)
    h.add(view)
    ref = view.astype(np.float64).T @ view.astype(np.float64) / 64
    np.testing.assert_allclose(h.matrix(), ref, rtol=1e-10, atol=1e-12)


def test_merge_diagonal_block_and_damping(ctx):
    rng = np.random.default_rng(3)
    A, B = (rng.standard_normal((n, 32)).astype(np.float32) for n in (50, 70))
    ha, hb, hall = aqinit.Hessian(ctx, 32), aqinit.Hessian(ctx, 32), aqinit.Hessian(ctx, 32)
    ha.add(A)
    hb.add(B)
    hall.add(np.vstack([A, B]))
    ha.merge(hb)
    np.testing.assert_allclose(ha.matrix(), hall.matrix(), rtol=1e-12)
    full = hall.matrix()
    shift = 0.01 * np.mean(np.diag(full))
    np.testing.assert_allclose(hall.diagonal(0.01), np.diag(full) + shift, rtol=1e-12)
    np.testing.assert_allclose(hall.block(8, 2, 0.01), full[16:24, 16:24] + shift * np.eye(8), rtol=1e-12)


def test_hessian_save_load_round_trip(ctx, tmp_path):
    rng = np.random.default_rng(4)
    h = aqinit.Hessian(ctx, 20)
    h.add(rng.standard_normal((30, 20)).astype(np.float32))
    path = tmp_path / "h.aqh"
    h.save(path)
    g = aqinit.Hessian.load(ctx, path)
    np.testing.assert_array_equal(g.matrix(), h.matrix())
    assert g.n_samples == 30
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(aqinit.AqError) as info:
        aqinit.Hessian.load(ctx, path)
    assert info.value.status == aqinit.ERR_FORMAT


def test_format_bits_per_parameter_and_rho():
    assert round(aqinit.Format("1x16g8").bits_per_parameter(4096, 4096), 3) == 2.504
    assert round(aqinit.Format("2x8g8").bits_per_parameter(4096, 4096), 3) == 2.008
    assert aqinit.Format("2x8g8").rho(4096, 4096) == pytest.approx(4096 * 512 / 2 ** 16)
    with pytest.raises(aqinit.AqError):
        aqinit.Format("2x17g8")


def numpy_dequantize(codes, codebooks, scales):
    """Ŵ[p·g_o + t, j·g + a] = s_p Σ_m C_m[b(p, j, m)][t][a]."""
    P, J, M = codes.shape
    _, K, go, g = codebooks.shape
    W = np.zeros((P * go, J * g), dtype=np.float64)
    for m in range(M):
        tiles = codebooks[m][codes[:, :, m].astype(np.int64)]  # P, J, go, g
        W += tiles.transpose(0, 2, 1, 3).reshape(P * go, J * g)
    return W * np.repeat(scales.astype(np.float64), go)[:, None]


def test_quant_copies_dequantize_and_errors(ctx):
    rng = np.random.default_rng(5)
    q = aqinit.Quant(ctx, "2x4g4o2", 8, 16)
    codes = rng.integers(0, 16, size=(4, 4, 2)).astype(np.uint8)
    books = rng.standard_normal((2, 16, 2, 4)).astype(np.float32)
    scales = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    q.codes, q.codebooks, q.scales = codes, books, scales
    np.testing.assert_array_equal(q.codes, codes)
    np.testing.assert_array_equal(q.codebooks, books)
    np.testing.assert_array_equal(q.scales, scales)
    ref = numpy_dequantize(codes, books, scales)
    np.testing.assert_allclose(q.dequantize(), ref, rtol=1e-5, atol=1e-5)
    W = rng.standard_normal((8, 16)).astype(np.float32)
    X = rng.standard_normal((100, 16)).astype(np.float32)
    H = aqinit.Hessian(ctx, 16)
    H.add(X)
    Hm = H.matrix()
    D = W.astype(np.float64) - ref
    expected = np.trace(D @ Hm @ D.T) / np.trace(W.astype(np.float64) @ Hm @ W.astype(np.float64).T)
    assert q.output_error(W, H) == pytest.approx(expected, rel=1e-5)
    assert q.weight_mse(W) == pytest.approx(np.mean(D ** 2), rel=1e-5)
    bad = codes.copy()
    bad[0, 0, 0] = 16
    with pytest.raises(aqinit.AqError):
        q.codes = bad
    np.testing.assert_array_equal(q.codes, codes)  # unchanged


def test_quant_save_load_clone(ctx, tmp_path):
    rng = np.random.default_rng(6)
    q = aqinit.Quant(ctx, "1x10g2", 6, 8)
    q.codes = rng.integers(0, 1024, size=(6, 4, 1)).astype(np.uint16)
    q.codebooks = rng.standard_normal((1, 1024, 1, 2)).astype(np.float32)
    path = tmp_path / "q.aqq"
    q.save(path)
    r = aqinit.Quant.load(ctx, path)
    np.testing.assert_array_equal(r.dequantize(), q.dequantize())
    c = q.clone()
    np.testing.assert_array_equal(c.codes, q.codes)


def layer(rng, rows, cols, n=2000):
    W = rng.standard_normal((rows, cols)).astype(np.float32)
    X = (rng.standard_normal((n, cols)) * np.logspace(0, -2, cols)).astype(np.float32)
    return W, X


@pytest.mark.skipif(not aqinit.has_algorithm("init"), reason="aq_init not in this build")
def test_init_oaem_beats_greedy_and_progress_cancels(ctx):
    rng = np.random.default_rng(7)
    W, X = layer(rng, 64, 32)
    H = aqinit.Hessian(ctx, 32)
    H.add(X)
    errors = {}
    for method in (aqinit.INIT_GREEDY, aqinit.INIT_OA_EM):
        q = aqinit.Quant(ctx, "1x6g4", 64, 32)
        aqinit.init(ctx, q, W, H, aqinit.Options(ctx, INIT_METHOD=method))
        errors[method] = q.output_error(W, H)
    assert errors[aqinit.INIT_OA_EM] < errors[aqinit.INIT_GREEDY]

    seen = []
    ctx.set_progress(lambda op, stage, n, rnd, obj: seen.append((op, rnd)) or len(seen) == 3)
    q = aqinit.Quant(ctx, "1x6g4", 64, 32)
    before = q.codebooks
    with pytest.raises(aqinit.AqError) as info:
        aqinit.init(ctx, q, W, H, aqinit.Options(ctx, INIT_METHOD=aqinit.INIT_OA_EM))
    assert info.value.status == aqinit.ERR_CANCELLED and len(seen) == 3
    np.testing.assert_array_equal(q.codebooks, before)

    def boom(*_):
        raise RuntimeError("host failure")
    ctx.set_progress(boom)
    with pytest.raises(RuntimeError, match="host failure"):
        aqinit.init(ctx, q, W, H)
    ctx.set_progress(None)
    with pytest.raises(aqinit.AqError) as info:
        aqinit.init(ctx, q, W[:, :16], H)
    assert info.value.status == aqinit.ERR_SHAPE


def test_closing_the_context_frees_its_handles():
    c = aqinit.Context()
    h = aqinit.Hessian(c, 4)
    c.close()
    with pytest.raises(ValueError):
        h.n_samples


@pytest.mark.skipif(not all(aqinit.has_algorithm(n) for n in ("init", "beam_search", "update_codebooks", "optimize",
                                                              "quantize_layer")),
                    reason="optimisation not in this build")
def test_optimisation_steps_never_increase_the_output_error(ctx):
    rng = np.random.default_rng(8)
    W, X = layer(rng, 32, 32)
    H = aqinit.Hessian(ctx, 32)
    H.add(X)
    opts = aqinit.Options(ctx, INIT_METHOD=aqinit.INIT_OA_EM, BEAM_WIDTH=4, MAX_EPOCHS=3,
                          CODEBOOK_UPDATE=aqinit.CODEBOOK_UPDATE_EXACT)
    q = aqinit.Quant(ctx, "2x4g4", 32, 32)
    aqinit.init(ctx, q, W, H, opts)
    errors = [q.output_error(W, H)]
    aqinit.beam_search(ctx, q, W, H, opts)
    errors.append(q.output_error(W, H))
    aqinit.update_codebooks(ctx, q, W, H, opts)
    errors.append(q.output_error(W, H))
    aqinit.optimize(ctx, q, W, H, opts)
    errors.append(q.output_error(W, H))
    assert all(b <= a * (1 + 1e-6) for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.9 * errors[0]
    # aq_quantize_layer is init + optimize: the same bits from the same seed and options.
    r = aqinit.Quant(ctx, "2x4g4", 32, 32)
    s = aqinit.Quant(ctx, "2x4g4", 32, 32)
    aqinit.quantize_layer(ctx, r, W, H, opts)
    aqinit.init(ctx, s, W, H, opts)
    aqinit.optimize(ctx, s, W, H, opts)
    np.testing.assert_array_equal(r.codes, s.codes)
    np.testing.assert_array_equal(r.codebooks, s.codebooks)
    np.testing.assert_array_equal(r.scales, s.scales)


def test_output_error_with_huge_but_finite_hessian(ctx):
    """H entries beyond float range (1e38) must not turn the relative error into NaN."""
    h = aqinit.Hessian(ctx, 4)
    h.add(np.full((2, 4), 1e19, np.float32))
    q = aqinit.Quant(ctx, "1x4g2", 2, 4)
    W = np.ones((2, 4), np.float32)
    assert q.output_error(W, h) == pytest.approx(1.0)  # Ŵ = 0, so ΔW = W
