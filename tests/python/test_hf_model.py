# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""aqinit.hf.model: what the reader accepts and rejects, and linears that can be replaced."""
import json
import os

import numpy as np
import pytest

from aqinit.hf import Linear, convert_llama2c, load_llama
from aqinit.hf.checkpoint import read_tensors
from aqinit.hf.config import LlamaConfig
from aqinit.hf.model import PROJECTIONS, LlamaModel
from aqinit.safetensors import write_safetensors
from test_hf_llama2c import SMALL, random_llama2c, write_llama2c


def hf_dir(tmp_path, tied=True):
    header, p = random_llama2c(np.random.default_rng(6), tied, **SMALL)
    write_llama2c(tmp_path / "model.bin", header, p)
    convert_llama2c(tmp_path / "model.bin", tmp_path / "hf")
    return tmp_path / "hf"


def edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


def test_config_defaults_and_rejections():
    base = {"hidden_size": 16, "intermediate_size": 40, "num_hidden_layers": 2, "num_attention_heads": 4,
            "vocab_size": 32}
    c = LlamaConfig.from_dict(base)
    assert (c.num_key_value_heads, c.head_dim, c.rms_norm_eps, c.rope_theta, c.tie_word_embeddings,
            c.max_position_embeddings) == (4, 4, 1e-6, 10000.0, False, 2048)  # transformers' LlamaConfig defaults
    assert LlamaConfig.from_dict(dict(base, head_dim=8)).head_dim == 8
    for bad, match in [({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "rope_scaling"),
                       ({"hidden_act": "gelu"}, "hidden_act"), ({"num_key_value_heads": 3}, "groups"),
                       ({"head_dim": 3}, "odd")]:
        with pytest.raises(ValueError, match=match):
            LlamaConfig.from_dict(dict(base, **bad))


def test_rope_theta_is_used(tmp_path):
    path = hf_dir(tmp_path)
    tokens = np.arange(SMALL["seq"]) % SMALL["vocab"]
    before = load_llama(path)(tokens)
    edit_config(path, rope_theta=500000.0)
    after = load_llama(path)(tokens)
    np.testing.assert_array_equal(before[0], after[0])  # position 0 is not rotated
    assert np.max(np.abs(before - after)) > 1e-3


def test_tied_and_untied_output_layers(tmp_path):
    path = hf_dir(tmp_path, tied=True)
    model = load_llama(path)
    assert model.lm_head.weight is model.embed
    tensors = read_tensors(path)
    tensors["lm_head.weight"] = np.zeros_like(tensors["model.embed_tokens.weight"])  # ignored when tied
    write_safetensors(path / "model.safetensors", tensors)
    model = load_llama(path)
    assert model.lm_head.weight is model.embed
    edit_config(path, tie_word_embeddings=False)
    assert not np.any(load_llama(path).lm_head.weight)
    del tensors["lm_head.weight"]
    write_safetensors(path / "model.safetensors", tensors)
    with pytest.raises(KeyError, match="lm_head.weight"):
        load_llama(path)


def test_missing_files_tensors_and_wrong_shapes(tmp_path):
    path = hf_dir(tmp_path)
    tensors = read_tensors(path)
    config = LlamaConfig.from_dict(json.loads((path / "config.json").read_text()))
    with pytest.raises(KeyError, match="mlp.up_proj"):
        LlamaModel(config, {k: v for k, v in tensors.items() if k != "model.layers.1.mlp.up_proj.weight"})
    with pytest.raises(ValueError, match="k_proj: shape"):
        LlamaModel(config, dict(tensors, **{"model.layers.0.self_attn.k_proj.weight": np.zeros((16, 16), np.float32)}))
    os.remove(path / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="only safetensors"):
        load_llama(path)


def test_biases_are_applied_when_present(tmp_path):
    path = hf_dir(tmp_path)
    tensors = read_tensors(path)
    tokens = np.arange(8)
    plain = load_llama(path)(tokens)
    tensors["model.layers.0.self_attn.v_proj.bias"] = np.ones(8, np.float32)
    write_safetensors(path / "model.safetensors", tensors)
    assert np.max(np.abs(load_llama(path)(tokens) - plain)) > 1e-3


def test_linears_are_listed_in_forward_order_and_replaceable(tmp_path):
    model = load_llama(hf_dir(tmp_path))
    names = [name for name, _ in model.linears()]
    assert names == [f"model.layers.{n}.{k}" for n in range(SMALL["layers"]) for k in PROJECTIONS]
    tokens = np.arange(10)
    reference = model(tokens)
    seen = []

    class Recording:
        """A wrapper that sees each input, as calibration for quantization does."""

        def __init__(self, name, inner):
            self.name, self.inner = name, inner

        def __call__(self, x):
            seen.append((self.name, x.shape, x.dtype))
            return self.inner(x)

    for name, linear in model.linears():
        model.set_linear(name, Recording(name, linear))
    np.testing.assert_array_equal(model(tokens), reference)
    dims = {"mlp.down_proj": SMALL["hidden"], "self_attn.o_proj": SMALL["dim"]}
    assert seen == [(n, (10, dims.get(n.split(".", 3)[3], SMALL["dim"])), np.float32) for n in names]
    model.set_linear(names[-1], Linear(np.zeros((SMALL["dim"], SMALL["hidden"]), np.float32)))
    assert np.max(np.abs(model(tokens) - reference)) > 1e-3
    with pytest.raises(KeyError):
        model.set_linear("model.layers.0.mlp.nonexistent", Linear(np.zeros((1, 1))))
