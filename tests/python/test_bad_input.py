# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Hostile input to the binding (issue 13, item 3): integers outside the range of their C type raise
OverflowError instead of wrapping around, bools and non-integers (3.5, "4", 4.0) given for an integer
raise TypeError, numpy integer scalars are accepted, and arrays of another dtype than the C one are
refused with TypeError instead of being converted."""
import numpy as np
import pytest

import aqinit

I32, I64, U64 = 2 ** 31, 2 ** 63, 2 ** 64
NOT_INTEGERS = [3.5, 4.0, "4", b"4", True, np.float64(4.0), np.bool_(True), None]


@pytest.fixture
def ctx():
    with aqinit.Context(threads=1, seed=5) as c:
        yield c


def small_quant(ctx, text="2x4g4", rows=4, cols=8):
    rng = np.random.default_rng(7)
    q = aqinit.Quant(ctx, text, rows, cols)
    f = q.format
    q.codes = rng.integers(0, f.codebook_size, size=(rows // f.out_group_size, cols // f.in_group_size,
                                                     f.num_codebooks)).astype(np.uint8)
    q.codebooks = rng.standard_normal((f.num_codebooks, f.codebook_size, f.out_group_size,
                                       f.in_group_size)).astype(np.float32)
    q.scales = np.ones(rows // f.out_group_size, dtype=np.float32)
    return q


# ---------------------------------------------------------------------------------------------
# The reported cases
# ---------------------------------------------------------------------------------------------

def test_quant_rows_beyond_int64_raise_instead_of_wrapping(ctx):
    with pytest.raises(OverflowError):
        aqinit.Quant(ctx, "2x8g8", 2 ** 64 + 64, 64)  # was a 64 × 64 quant
    with pytest.raises(OverflowError):
        aqinit.Quant(ctx, "2x8g8", 64, 2 ** 64 + 64)


def test_hessian_inputs_beyond_int64_raise_instead_of_wrapping(ctx):
    with pytest.raises(OverflowError):
        aqinit.Hessian(ctx, 2 ** 64 + 16)  # had 16 inputs


def test_integer_option_beyond_int64_raises_instead_of_wrapping(ctx):
    o = aqinit.Options(ctx)
    with pytest.raises(OverflowError):
        o.set("BEAM_WIDTH", 2 ** 64 + 4)  # became 4
    with pytest.raises(OverflowError):
        aqinit.Options(ctx, BEAM_WIDTH=2 ** 64 + 4)
    with pytest.raises(OverflowError):
        o.set_int(aqinit.OPT_BEAM_WIDTH, 2 ** 64 + 4)
    assert o.get("BEAM_WIDTH") != 4


def test_format_field_beyond_int32_raises_instead_of_wrapping():
    with pytest.raises(OverflowError):
        aqinit.Format(num_codebooks=2 ** 32 + 1)  # became 1x8g8
    f = aqinit.Format("2x8g8")
    with pytest.raises(OverflowError):
        f.num_codebooks = 2 ** 32 + 1
    assert f.num_codebooks == 2 and f.text == "2x8g8"  # unchanged by the failure


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.float16, np.int32, np.bool_])
def test_matvec_refuses_other_dtypes(ctx, dtype):
    q = small_quant(ctx)
    with pytest.raises(TypeError):
        q.matvec(np.ones(8, dtype=dtype))  # was converted silently


# ---------------------------------------------------------------------------------------------
# Integers: every argument that becomes a C integer
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", NOT_INTEGERS, ids=repr)
def test_non_integers_for_integer_arguments_raise_type_error(ctx, bad):
    cases = [lambda: aqinit.Quant(ctx, "1x4g2", bad, 4), lambda: aqinit.Quant(ctx, "1x4g2", 4, bad),
             lambda: aqinit.Hessian(ctx, bad), lambda: setattr(ctx, "threads", bad),
             lambda: setattr(ctx, "seed", bad), lambda: aqinit.Context(threads=bad), lambda: aqinit.Context(seed=bad),
             lambda: aqinit.Format("2x8g8", in_group_size=bad), lambda: aqinit.Format("2x8g8").check(bad, 64),
             lambda: aqinit.Format("2x8g8").rho(64, bad), lambda: aqinit.Format("2x8g8").bits_per_parameter(bad, 64),
             lambda: aqinit.Hessian(ctx, 16).block(bad, 0), lambda: aqinit.Hessian(ctx, 16).block(8, bad),
             lambda: aqinit.Hessian.from_matrix(ctx, np.eye(4), bad),
             lambda: aqinit.Options(ctx).set_int(aqinit.OPT_BEAM_WIDTH, bad)]
    if bad is not None:  # set_log's level None is LOG_INFO
        cases.append(lambda: ctx.set_log(lambda *a: None, bad))
    if not isinstance(bad, (float, np.floating)):  # set() takes an integral float for an integer option
        cases.append(lambda: aqinit.Options(ctx).set("BEAM_WIDTH", bad))
    if not isinstance(bad, str):  # a string key is an option's name: KeyError when unknown
        cases.append(lambda: aqinit.Options(ctx).set(bad, 4))
    for i, case in enumerate(cases):
        with pytest.raises(TypeError):
            case()
            pytest.fail(f"case {i} accepted {bad!r}")


def test_integer_arguments_out_of_their_c_range_raise_overflow_error(ctx):
    h = aqinit.Hessian(ctx, 16)
    f = aqinit.Format("2x8g8")
    o = aqinit.Options(ctx)
    cases = {
        "Quant rows < int64": lambda: aqinit.Quant(ctx, "1x4g2", -I64 - 2, 4),
        "Hessian n_inputs = 2^63": lambda: aqinit.Hessian(ctx, I64),
        "from_matrix n_samples": lambda: aqinit.Hessian.from_matrix(ctx, np.eye(4), 2 ** 64 + 10),
        "block group_size": lambda: h.block(2 ** 64 + 8, 0),
        "block group": lambda: h.block(8, 2 ** 64),
        "threads": lambda: setattr(ctx, "threads", 2 ** 32 + 1),
        "threads = 2^31": lambda: setattr(ctx, "threads", I32),
        "Context(threads)": lambda: aqinit.Context(threads=2 ** 32 + 2),
        "negative seed": lambda: setattr(ctx, "seed", -1),
        "seed = 2^64": lambda: setattr(ctx, "seed", U64),
        "log level": lambda: ctx.set_log(lambda *a: None, 2 ** 32 + aqinit.LOG_ERROR),
        "option key": lambda: o.set(2 ** 32 + aqinit.OPT_BEAM_WIDTH, 4),
        "option key, get": lambda: o.get(2 ** 32 + aqinit.OPT_BEAM_WIDTH),
        "option below int64": lambda: o.set("BEAM_WIDTH", -I64 - 4),
        "integral float option": lambda: o.set("BEAM_WIDTH", 1e30),
        "bits_per_codebook": lambda: setattr(f, "bits_per_codebook", 2 ** 32 + 8),
        "in_group_size = 2^31": lambda: setattr(f, "in_group_size", I32),
        "scale_mode": lambda: setattr(f, "scale_mode", -I32 - 1),
        "check rows": lambda: f.check(2 ** 64 + 64, 64),
        "rho cols": lambda: f.rho(64, 2 ** 64 + 64),
        "bits_per_parameter rows": lambda: f.bits_per_parameter(2 ** 64 + 64, 64),
        "AqError status": lambda: aqinit.AqError(2 ** 32 + aqinit.ERR_SHAPE),  # was aq_strerror(ERR_SHAPE)
    }
    for name, case in cases.items():
        with pytest.raises(OverflowError):
            case()
            pytest.fail(f"{name} accepted")
    assert ctx.threads == 1 and ctx.seed == 5 and o.get("BEAM_WIDTH") == aqinit.Options(ctx).get("BEAM_WIDTH")
    assert f == aqinit.Format("2x8g8")


def test_limits_of_the_c_types_and_numpy_integers_are_accepted(ctx):
    ctx.seed = U64 - 1
    assert ctx.seed == U64 - 1
    ctx.seed = np.uint64(U64 - 1)
    ctx.seed = np.int8(3)
    assert ctx.seed == 3
    ctx.threads = np.int64(2)
    assert ctx.threads == 2
    q = aqinit.Quant(ctx, "1x4g2", np.int64(4), np.uint16(6))
    assert q.shape == (4, 6)
    assert aqinit.Hessian(ctx, np.int32(6)).n_inputs == 6
    f = aqinit.Format("2x8g8", in_group_size=np.int64(4), out_group_size=np.uint8(2))
    assert (f.in_group_size, f.out_group_size) == (4, 2)
    assert f.rho(np.int64(8), np.int64(16)) == pytest.approx(8 / 2 * 16 / 4 / 2.0 ** 16)
    o = aqinit.Options(ctx, BEAM_WIDTH=np.uint8(3))
    assert o.get(np.int32(aqinit.OPT_BEAM_WIDTH)) == 3
    # In range of the C type but refused by the library: its AqError, not an OverflowError.
    for case in (lambda: o.set("BEAM_WIDTH", I64 - 1), lambda: aqinit.Hessian(ctx, I64 - 1),
                 lambda: setattr(ctx, "threads", -I32), lambda: aqinit.Format("2x8g8", num_codebooks=I32 - 1)
                 .check(64, 64)):
        with pytest.raises(aqinit.AqError):
            case()


def test_pipeline_callback_counts_out_of_range_stop_the_run(ctx):
    class Host:
        def __init__(self, n, rows=4):
            self.n, self.rows = n, rows

        def num_layers(self):
            return self.n

        def layer_info(self, k):
            return "fc", self.rows, 8

        def get_weight(self, k):
            return np.ones((4, 8), dtype=np.float32)

        def calibrate(self, k, hessian):
            hessian.add(np.random.default_rng(k).standard_normal((32, 8)).astype(np.float32))

        def put_result(self, k, quant, report):
            self.done = True

    for host, error in ((Host(2 ** 32 + 1), OverflowError),  # wrapped to 1 layer
                        (Host(1, rows=2 ** 64 + 4), OverflowError),  # wrapped to 4 rows
                        (Host(1.0), TypeError), (Host(True), TypeError), (Host(1, rows="4"), TypeError)):
        with pytest.raises(error):
            aqinit.Pipeline(ctx, "1x4g4", host).run()
        assert not hasattr(host, "done")
    ok = Host(np.int64(1), rows=np.int32(4))
    aqinit.Pipeline(ctx, "1x4g4", ok).run()
    assert ok.done


# ---------------------------------------------------------------------------------------------
# Arrays: refused when the dtype is not the C one, never converted
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.int64])
def test_float32_arrays_refuse_other_dtypes(ctx, dtype):
    q = small_quant(ctx)
    H = aqinit.Hessian(ctx, 8)
    H.add(np.random.default_rng(1).standard_normal((40, 8)).astype(np.float32))
    W = np.ones((4, 8), dtype=dtype)
    books, scales = q.codebooks, q.scales
    cases = {
        "matvec": lambda: q.matvec(np.ones(8, dtype=dtype)),
        "matmul": lambda: q.matmul(np.ones((3, 8), dtype=dtype)),
        "Hessian.add": lambda: H.add(np.ones((5, 8), dtype=dtype)),
        "init": lambda: aqinit.init(ctx, q, W, H),
        "optimize": lambda: aqinit.optimize(ctx, q, W, H),
        "output_error": lambda: q.output_error(W, H),
        "weight_mse": lambda: q.weight_mse(W),
        "vstep": lambda: aqinit.vstep(ctx, q, W, H),
        "backward": lambda: q.backward(W),
        "codebooks": lambda: setattr(q, "codebooks", books.astype(dtype)),
        "scales": lambda: setattr(q, "scales", scales.astype(dtype)),
    }
    for name, case in cases.items():
        with pytest.raises(TypeError):
            case()
            pytest.fail(f"{name} accepted {np.dtype(dtype)}")
    np.testing.assert_array_equal(q.codebooks, books)
    np.testing.assert_array_equal(q.scales, scales)


def test_arrays_must_be_numpy_arrays(ctx):
    q = small_quant(ctx)
    books, scales = q.codebooks, q.scales
    for case in (lambda: q.matvec([1.0] * 8), lambda: setattr(q, "codebooks", books.tolist()),
                 lambda: setattr(q, "scales", scales.tolist()),
                 lambda: aqinit.Hessian.from_matrix(ctx, np.eye(3).tolist(), 3)):
        with pytest.raises(TypeError):
            case()


def test_matvec_takes_a_float32_vector_with_any_stride(ctx):
    q = small_quant(ctx)
    x = np.arange(16, dtype=np.float32)[::2]
    np.testing.assert_allclose(q.matvec(x), q.dequantize() @ x, rtol=1e-5, atol=1e-5)
    with pytest.raises(aqinit.AqError) as info:
        q.matvec(np.ones((1, 8), dtype=np.float32))
    assert info.value.status == aqinit.ERR_SHAPE


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.complex128])
def test_hessian_from_matrix_takes_float64_only(ctx, dtype):
    with pytest.raises(TypeError):
        aqinit.Hessian.from_matrix(ctx, np.eye(3).astype(dtype), 3)
    assert aqinit.Hessian.from_matrix(ctx, np.eye(3), 3).n_inputs == 3


def test_pipeline_weight_of_another_dtype_stops_the_run(ctx):
    class Host:
        def num_layers(self):
            return 1

        def layer_info(self, k):
            return "fc", 4, 8

        def get_weight(self, k):
            return np.ones((4, 8), dtype=np.float64)  # was converted silently

        def calibrate(self, k, hessian):
            hessian.add(np.ones((8, 8), dtype=np.float32))

        def put_result(self, k, quant, report):
            raise AssertionError("not reached")

    with pytest.raises(TypeError):
        aqinit.Pipeline(ctx, "1x4g4", Host()).run()


def test_export_refuses_a_non_float_codebook_dtype(ctx, tmp_path):
    q = small_quant(ctx)
    for dtype in (np.int8, np.int32, np.uint8, np.float64):
        with pytest.raises(TypeError):
            aqinit.export_aqlm(q, tmp_path / "q.safetensors", codebook_dtype=dtype)  # int8 truncated codebooks
    aqinit.export_aqlm(q, tmp_path / "q.safetensors", codebook_dtype=np.float16)
    tensors, _ = aqinit.read_safetensors(tmp_path / "q.safetensors")
    assert tensors["codebooks"].dtype == np.float16


# ---------------------------------------------------------------------------------------------
# Doubles, formats and paths: no silent conversion of a string or a bool either
# ---------------------------------------------------------------------------------------------

def test_doubles_refuse_strings_and_bools(ctx):
    o = aqinit.Options(ctx)
    h = aqinit.Hessian(ctx, 4)
    for bad in ("0.5", True, None, b"1"):
        for case in (lambda: o.set("EM_TOL", bad), lambda: o.set_double(aqinit.OPT_EM_TOL, bad),
                     lambda: h.matrix(bad), lambda: h.diagonal(bad), lambda: h.block(2, 0, bad)):
            with pytest.raises(TypeError):
                case()
    o.set("EM_TOL", np.float32(0.25))
    o.set("EM_TOL", 1)
    assert o.get("EM_TOL") == 1.0


def test_formats_are_a_format_or_its_text(ctx):
    for bad in (5, b"2x8g8", None, 2.5):
        with pytest.raises(TypeError):
            aqinit.Quant(ctx, bad, 64, 64)
        with pytest.raises(TypeError):
            aqinit.Format(bad)


def test_paths_must_be_paths(ctx, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    q = small_quant(ctx)
    h = aqinit.Hessian(ctx, 4)
    h.add(np.ones((2, 4), dtype=np.float32))
    for bad in (5, 2.5, None):
        for case in (lambda: q.save(bad), lambda: h.save(bad), lambda: aqinit.Quant.load(ctx, bad),
                     lambda: aqinit.Hessian.load(ctx, bad)):
            with pytest.raises(TypeError):
                case()
    assert list(tmp_path.iterdir()) == []  # no file named "5" or "None"
    q.save(tmp_path / "q.aqq")
    h.save(str(tmp_path / "h.aqh").encode())
    assert aqinit.Quant.load(ctx, tmp_path / "q.aqq").shape == (4, 8)
    assert aqinit.Hessian.load(ctx, tmp_path / "h.aqh").n_inputs == 4


def test_a_nul_never_shortens_a_name_given_to_c(ctx, tmp_path):
    with pytest.raises(aqinit.AqError) as info:
        aqinit.Format("2x8g8\0junk")  # parsed as 2x8g8
    assert info.value.status == aqinit.ERR_INVALID_ARG
    with pytest.raises(KeyError):
        aqinit.constant("AQ_OK\0junk")  # was AQ_OK
    with pytest.raises(KeyError):
        aqinit.Options(ctx).set("BEAM_WIDTH\0junk", 4)
    q = small_quant(ctx)
    with pytest.raises(ValueError):
        q.save(str(tmp_path / "q.aqq") + "\0junk")
    assert list(tmp_path.iterdir()) == []


def test_export_to_float16_refuses_values_beyond_its_range(ctx, tmp_path):
    q = small_quant(ctx)
    books = q.codebooks.copy()  # the property's array is read-only
    books[0, 0, 0, 0] = 1e5  # float16's largest is 65504
    q.codebooks = books
    with pytest.raises(OverflowError):
        aqinit.export_aqlm(q, tmp_path / "q.safetensors", codebook_dtype=np.float16)
    aqinit.export_aqlm(q, tmp_path / "q.safetensors")
    assert aqinit.read_safetensors(tmp_path / "q.safetensors")[0]["codebooks"][0, 0, 0, 0] == 1e5
