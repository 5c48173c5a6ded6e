# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""aqinit.hf.quantize and the AQLM checkpoint it writes: a random llama2.c model converted to HF,
quantized end to end, the files checked field by field against AQLM's conventions, the tensors
dequantized by an independent numpy version of AQLM's formula, read back by the numpy forward, a
resumed run; and, with ../shared/bench, the tiny model against examples/llama/llama-quantize."""
import json
import math
import os
import struct
import subprocess

import numpy as np
import pytest

import aqinit
from aqinit.hf import convert_llama2c, load_llama, mean_nll
from aqinit.hf.aqlm import AqlmLinear, aqlm_tensors, unpack_codes
from aqinit.hf.cli import main
from aqinit.hf.quantize import RESUME_DIR, quantize_checkpoint
from test_hf_llama2c import random_llama2c, write_llama2c

DIMS = dict(dim=16, hidden=40, layers=2, heads=4, kv_heads=2, vocab=32, seq=16)
NAMES = [f"model.layers.{n}.{k}" for n in range(2) for k in (
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
    "mlp.down_proj")]
SHAPES = dict(q_proj=(16, 16), k_proj=(8, 16), v_proj=(8, 16), o_proj=(16, 16), gate_proj=(40, 16),
              up_proj=(40, 16), down_proj=(16, 40))
BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "bench", "tiny")


def aqlm_dequantize(codes, codebooks, scales):
    """AQLM's _dequantize_weight, written in numpy: unpack the int8/int16 codes (unpack_int_data:
    modulo 2^B), one-hot gather of each codebook's vector, sum over the M codebooks, times the
    output group's scale, groups [O/g_o, I/g, g_o, g] laid out as [O, I]."""
    P, J, M = codes.shape
    M2, K, go, g = codebooks.shape
    onehot = np.eye(K)[codes.astype(np.int64) % K]  # [P, J, M, K]
    groups = np.einsum("pjmk,mkab->pjab", onehot, codebooks.astype(np.float64))
    groups *= scales.astype(np.float64).reshape(P, 1, 1, 1)
    return groups.transpose(0, 2, 1, 3).reshape(P * go, J * g)


def header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("q")
    h, p = random_llama2c(np.random.default_rng(3), True, **DIMS)
    write_llama2c(tmp / "model.bin", h, p)
    convert_llama2c(tmp / "model.bin", tmp / "hf")
    (tmp / "hf" / "tokenizer.json").write_text('{"model": {}}')
    calib = np.random.default_rng(4).integers(0, DIMS["vocab"], size=6 * DIMS["seq"] + 5)
    kw = dict(format="1x6g4", epochs=1, calib_windows=4, threads=2, seed=5, resume=True, progress=None,
              max_shard_size=6000)
    summary = quantize_checkpoint(tmp / "hf", calib, tmp / "out", **kw)
    return tmp, calib, kw, summary


def test_config_follows_aqlm(run):
    tmp, _, _, summary = run
    src = json.loads((tmp / "hf" / "config.json").read_text())
    out = json.loads((tmp / "out" / "config.json").read_text())
    qc = out.pop("quantization_config")
    assert out.pop("torch_dtype") == "float16"
    src.pop("torch_dtype")
    assert out == src
    dense = ["model.embed_tokens.weight"] + [f"model.layers.{n}.{k}.weight" for n in range(2)
                                             for k in ("input_layernorm", "post_attention_layernorm")]
    assert qc == {"quant_method": "aqlm", "nbits_per_codebook": 6, "num_codebooks": 1, "in_group_size": 4,
                  "out_group_size": 1, "linear_weights_not_to_quantize": qc["linear_weights_not_to_quantize"]}
    assert sorted(qc["linear_weights_not_to_quantize"]) == sorted(dense + ["model.norm.weight", "lm_head.weight"])
    assert [r["name"] for r in summary["layers"]] == NAMES
    assert (tmp / "out" / "tokenizer.json").read_text() == '{"model": {}}'


def test_sharded_safetensors_and_index(run):
    tmp, _, _, summary = run
    files = summary["files"]
    assert len(files) > 1 and files == [f"model-{i:05d}-of-{len(files):05d}.safetensors" for i in range(1, len(files) + 1)]
    assert not (tmp / "out" / "model.safetensors").exists()
    index = json.loads((tmp / "out" / "model.safetensors.index.json").read_text())
    seen, total = {}, 0
    src = header(tmp / "hf" / "model.safetensors")
    for file in files:
        hd = header(tmp / "out" / file)
        assert hd.pop("__metadata__") == {"format": "pt"}
        for name, info in hd.items():
            assert name not in seen
            seen[name] = file
            total += info["data_offsets"][1] - info["data_offsets"][0]
            leaf = name.rsplit(".", 2)[-2] if name.split(".")[-1] in ("codes", "codebooks", "scales") else None
            if leaf is None:
                assert info["dtype"] == src[name]["dtype"] == "F32" and info["shape"] == src[name]["shape"]
            else:
                O, I = SHAPES[leaf]
                want = {"codes": ("I8", [O, I // 4, 1]), "codebooks": ("F16", [1, 64, 1, 4]),
                        "scales": ("F16", [O, 1, 1, 1])}[name.rsplit(".", 1)[1]]
                assert (info["dtype"], info["shape"]) == want
    assert index["weight_map"] == seen
    assert index["metadata"]["total_size"] == total
    expected = {n for n in src if n != "__metadata__" and n[:-len(".weight")] not in NAMES}
    expected |= {f"{n}.{s}" for n in NAMES for s in ("codes", "codebooks", "scales")}
    assert set(seen) == expected


def test_numpy_aqlm_dequantization_matches_the_library(run):
    tmp, _, _, _ = run
    from aqinit.hf.checkpoint import read_tensors
    tensors = read_tensors(tmp / "out")
    ctx, negative = aqinit.Context(threads=1), False
    for k, name in enumerate(NAMES):
        codes, books, scales = (tensors[f"{name}.{s}"] for s in ("codes", "codebooks", "scales"))
        assert codes.dtype == np.int8 and -32 <= codes.min() and codes.max() < 32  # codes >= 32 as c - 64
        negative |= codes.min() < 0
        W = aqlm_dequantize(codes, books, scales)
        linear = AqlmLinear(codes, books, scales, ctx=ctx)
        np.testing.assert_allclose(linear.quant.dequantize(), W, rtol=1e-6, atol=1e-7)
        # the pipeline's own quant (float32 codebooks, saved for resuming) agrees up to float16 rounding
        q = aqinit.Quant.load(ctx, tmp / "out" / RESUME_DIR / f"layer-{k:05d}.aqq")
        np.testing.assert_array_equal(q.codes, unpack_codes(codes, 6))
        np.testing.assert_allclose(q.dequantize(), W, rtol=2e-3, atol=2e-3 * np.abs(W).max())
        x = np.random.default_rng(k).standard_normal((3, W.shape[1])).astype(np.float32)
        np.testing.assert_allclose(linear(x), x @ W.T, rtol=1e-4, atol=1e-5)
    assert negative


def test_packing_of_16_bit_codes():
    ctx = aqinit.Context(threads=1)
    q = aqinit.Quant(ctx, "1x10g4", 4, 8)
    codes = np.random.default_rng(1).integers(0, 1024, size=(4, 2, 1))
    codes[0, 0, 0] = 1023
    q.codes = codes
    t = aqlm_tensors(q, np.float32)
    assert t["codes"].dtype == np.int16 and t["codes"].min() < 0
    np.testing.assert_array_equal(unpack_codes(t["codes"], 10), codes)


def test_the_model_reads_the_aqlm_checkpoint(run):
    tmp, calib, _, _ = run
    quantized, dense = load_llama(tmp / "out"), load_llama(tmp / "hf")
    assert all(isinstance(l, AqlmLinear) for _, l in quantized.linears())
    from aqinit.hf.checkpoint import read_tensors
    tensors = read_tensors(tmp / "out")
    for name in NAMES:
        dense.set_linear(name, aqinit.hf.Linear(aqlm_dequantize(*(tensors[f"{name}.{s}"] for s in
                                                                   ("codes", "codebooks", "scales")))))
    tokens = calib[:2 * DIMS["seq"]].reshape(2, -1)
    np.testing.assert_allclose(quantized(tokens), dense(tokens), rtol=1e-4, atol=1e-4)
    assert math.isfinite(mean_nll(quantized, calib, DIMS["seq"])[0])


def test_a_resumed_run_reproduces_the_files(run):
    tmp, calib, kw, summary = run
    before = {f: (tmp / "out" / f).read_bytes() for f in summary["files"] + ["config.json",
                                                                              "model.safetensors.index.json"]}
    again = quantize_checkpoint(tmp / "hf", calib, tmp / "out", **kw)
    assert all(r["resumed"] for r in again["layers"]) and len(again["layers"]) == len(NAMES)
    assert {f: (tmp / "out" / f).read_bytes() for f in before} == before


@pytest.mark.skipif(not os.path.exists(os.path.join(BENCH, "model.bin")), reason="no ../shared/bench")
def test_tiny_model_cli_against_llama_quantize(tmp_path, capsys):
    settings = ["--format", "1x8g4", "--calib-windows", "16", "--epochs", "3", "--threads", "2", "--seed", "1"]
    assert main(["convert-llama2c", os.path.join(BENCH, "model.bin"), str(tmp_path / "hf")]) == 0
    assert main(["quantize", str(tmp_path / "hf"), "--calib", os.path.join(BENCH, "calib.tok.bin"),
                 "--out", str(tmp_path / "q")] + settings) == 0
    capsys.readouterr()
    test = os.path.join(BENCH, "wikitext2_test.tok.bin")
    assert main(["ppl", str(tmp_path / "q"), "--tokens", test, "--windows", "40", "--json"]) == 0
    ppl = json.loads(capsys.readouterr().out)["perplexity"]
    assert math.isfinite(ppl) and 100 < ppl < 400
    lib = os.environ.get("AQINIT_LIBRARY", "")
    exe = os.path.join(os.path.dirname(os.path.dirname(lib)), "examples", "llama-quantize") if lib else ""
    if not os.access(exe, os.X_OK):
        pytest.skip("no examples/llama-quantize next to AQINIT_LIBRARY for the comparison")
    out = subprocess.run([exe, os.path.join(BENCH, "model.bin"), os.path.join(BENCH, "calib.tok.bin"), test,
                          "--ppl-windows", "40", "--json"] + settings, capture_output=True, text=True, check=True)
    reference = json.loads(out.stdout)["ppl_quantized"]
    # the same protocol; q/k rows are permuted by the conversion, so their codebooks differ a little
    assert abs(ppl / reference - 1) < 0.05, (ppl, reference)
