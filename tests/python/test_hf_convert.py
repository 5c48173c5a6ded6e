# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""llama2.c -> Hugging Face conversion (aqinit.hf.convert) and the HF reader/forward (aqinit.hf.model):
the forward of the converted checkpoint equals llama2.c's forward of the original, which proves the
q/k row permutation (interleaved rotary pairs -> rotate_half)."""
import json
import struct

import numpy as np
import pytest

from aqinit.hf import convert_llama2c, load_llama
from aqinit.hf.checkpoint import read_tensors
from aqinit.hf.config import LlamaConfig
from aqinit.hf.model import LlamaModel
from aqinit.safetensors import write_safetensors
from test_hf_llama2c import SMALL, llama2c_logits, random_llama2c, write_llama2c

DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, SEQ = 16, 40, 2, 4, 2, 32, 16
HS = DIM // HEADS


@pytest.fixture(params=[True, False], ids=["tied", "untied"])
def converted(request, tmp_path):
    """(header, llama2.c arrays, HF directory) of a random GQA model."""
    header, p = random_llama2c(np.random.default_rng(3), request.param, **SMALL)
    write_llama2c(tmp_path / "model.bin", header, p)
    (tmp_path / "tok.model").write_bytes(b"sentencepiece bytes")
    convert_llama2c(tmp_path / "model.bin", tmp_path / "hf", tokenizer_model=tmp_path / "tok.model")
    return header, p, tmp_path / "hf"


def safetensors_header(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n])


def test_config_fields(converted):
    header, _, out = converted
    tied = header[5] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["model_type"] == "llama"
    assert config["hidden_size"] == DIM
    assert config["intermediate_size"] == HIDDEN
    assert config["num_hidden_layers"] == LAYERS
    assert config["num_attention_heads"] == HEADS
    assert config["num_key_value_heads"] == KV_HEADS
    assert config["vocab_size"] == VOCAB
    assert config["max_position_embeddings"] == SEQ
    assert config["rms_norm_eps"] == 1e-5
    assert config["rope_theta"] == 10000.0
    assert config["tie_word_embeddings"] is tied
    assert config["torch_dtype"] == "float32"
    assert config["hidden_act"] == "silu"
    assert (config["bos_token_id"], config["eos_token_id"]) == (1, 2)
    assert (out / "tokenizer.model").read_bytes() == b"sentencepiece bytes"


def test_safetensors_names_shapes_dtypes_metadata(converted):
    header, _, out = converted
    tied = header[5] > 0
    h = safetensors_header(out / "model.safetensors")
    assert h.pop("__metadata__") == {"format": "pt"}
    want = {"model.embed_tokens.weight": [VOCAB, DIM], "model.norm.weight": [DIM]}
    for n in range(LAYERS):
        p = f"model.layers.{n}."
        want.update({p + "self_attn.q_proj.weight": [DIM, DIM], p + "self_attn.k_proj.weight": [KV_HEADS * HS, DIM],
                     p + "self_attn.v_proj.weight": [KV_HEADS * HS, DIM], p + "self_attn.o_proj.weight": [DIM, DIM],
                     p + "mlp.gate_proj.weight": [HIDDEN, DIM], p + "mlp.up_proj.weight": [HIDDEN, DIM],
                     p + "mlp.down_proj.weight": [DIM, HIDDEN], p + "input_layernorm.weight": [DIM],
                     p + "post_attention_layernorm.weight": [DIM]})
    if not tied:
        want["lm_head.weight"] = [VOCAB, DIM]
    assert sorted(h) == sorted(want)
    for name, shape in want.items():
        assert h[name]["dtype"] == "F32", name
        assert h[name]["shape"] == shape, name


def test_tensor_values_and_the_qk_row_order(converted):
    _, p, out = converted
    t = read_tensors(out)
    np.testing.assert_array_equal(t["model.embed_tokens.weight"], p["emb"])
    np.testing.assert_array_equal(t["model.norm.weight"], p["rms_final"])
    if "wcls" in p:
        np.testing.assert_array_equal(t["lm_head.weight"], p["wcls"])
    for n in range(LAYERS):
        pre = f"model.layers.{n}."
        for hf, ours in [("self_attn.v_proj", "wv"), ("self_attn.o_proj", "wo"), ("mlp.gate_proj", "w1"),
                         ("mlp.up_proj", "w3"), ("mlp.down_proj", "w2"), ("input_layernorm", "rms_att"),
                         ("post_attention_layernorm", "rms_ffn")]:
            np.testing.assert_array_equal(t[pre + hf + ".weight"], p[ours][n])
        for hf, ours, heads in [("self_attn.q_proj", "wq", HEADS), ("self_attn.k_proj", "wk", KV_HEADS)]:
            w, orig = t[pre + hf + ".weight"], p[ours][n]
            for head in range(heads):
                for i in range(HS // 2):  # HF row i <- pair element 2i, row HS/2 + i <- 2i + 1
                    np.testing.assert_array_equal(w[head * HS + i], orig[head * HS + 2 * i])
                    np.testing.assert_array_equal(w[head * HS + HS // 2 + i], orig[head * HS + 2 * i + 1])


def relative_error(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_hf_forward_equals_the_llama2c_forward(converted):
    header, p, out = converted
    model = load_llama(out)
    tokens = np.random.default_rng(4).integers(0, VOCAB, size=(3, SEQ))
    logits = model(tokens)
    assert logits.shape == (3, SEQ, VOCAB) and logits.dtype == np.float32
    for row, window in zip(logits, tokens):
        assert relative_error(row, llama2c_logits(header, p, window)) < 1e-5
    assert relative_error(model(tokens[1]), logits[1]) < 1e-6  # one window alone = its row of a batch (BLAS rounding)


def test_without_the_permutation_the_logits_differ(converted):
    """The comparison above is sensitive to the rotary convention."""
    header, p, out = converted
    tensors = read_tensors(out)
    for n in range(LAYERS):
        tensors[f"model.layers.{n}.self_attn.q_proj.weight"] = p["wq"][n]
        tensors[f"model.layers.{n}.self_attn.k_proj.weight"] = p["wk"][n]
    model = LlamaModel(LlamaConfig.from_dict(json.loads((out / "config.json").read_text())), tensors)
    tokens = np.arange(SEQ) % VOCAB
    assert relative_error(model(tokens), llama2c_logits(header, p, tokens)) > 1e-2


def test_sharded_checkpoint_gives_identical_logits(converted, tmp_path):
    _, _, out = converted
    tensors = read_tensors(out)
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "config.json").write_text((out / "config.json").read_text())
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[:len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for file, part in shards.items():
        write_safetensors(sharded / file, {n: tensors[n] for n in part}, {"format": "pt"})
        weight_map.update({n: file for n in part})
    total = sum(a.nbytes for a in tensors.values())
    (sharded / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    tokens = np.random.default_rng(5).integers(0, VOCAB, size=(2, SEQ))
    np.testing.assert_array_equal(load_llama(sharded)(tokens), load_llama(out)(tokens))
    weight_map[names[0]] = "model-00002-of-00002.safetensors"  # an index naming the wrong shard
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(KeyError, match="does not hold it"):
        load_llama(sharded)
