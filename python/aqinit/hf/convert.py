# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""llama2.c version-0 checkpoint -> Hugging Face Llama directory (config.json, model.safetensors).

Names follow transformers' modeling_llama: wq/wk/wv/wo -> self_attn.{q,k,v,o}_proj, w1 -> mlp.gate_proj,
w3 -> mlp.up_proj, w2 -> mlp.down_proj, rms_att -> input_layernorm, rms_ffn -> post_attention_layernorm.

Rotary convention: llama2.c's run.c (like Meta's original Llama) rotates consecutive pairs
(2i, 2i+1) of each head by the angle pos * theta^(-2i/head_size); HF's modeling_llama rotates
(i, i + head_size/2) by the same angle (rotate_half). The two agree once the output rows of wq
and wk are reordered within each head: HF row i takes the old row 2i and HF row head_size/2 + i
the old row 2i+1 (the permutation HF's convert_llama_weights_to_hf applies to Meta checkpoints)."""
import json
import os
import shutil

from ..safetensors import write_safetensors
from .llama2c import read_llama2c

LLAMA2C_BOS, LLAMA2C_EOS = 1, 2  # run.c: BOS = 1, EOS = 2 (the sentencepiece ids llama2.c trains with)
ROPE_THETA = 10000.0  # run.c's base
RMS_NORM_EPS = 1e-5  # run.c's rmsnorm


def interleaved_to_rotate_half(w, n_heads):
    """Reorder the rows of a q or k projection [n_heads * head_size, in] from interleaved rotary
    pairs (llama2.c) to the half-split layout of HF's rotate_half."""
    rows, cols = w.shape
    half = rows // n_heads // 2
    return w.reshape(n_heads, half, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def hf_config(c):
    """config.json of a LlamaForCausalLM for the llama2.c header @c (a Llama2cConfig)."""
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": c.dim,
            "intermediate_size": c.hidden_dim, "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads,
            "num_key_value_heads": c.n_kv_heads, "vocab_size": c.vocab_size, "max_position_embeddings": c.seq_len,
            "rms_norm_eps": RMS_NORM_EPS, "rope_theta": ROPE_THETA, "tie_word_embeddings": c.tied,
            "torch_dtype": "float32", "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
            "bos_token_id": LLAMA2C_BOS, "eos_token_id": LLAMA2C_EOS}


def hf_tensors(c, a):
    """{HF name: array} from the arrays @a of read_llama2c."""
    out = {"model.embed_tokens.weight": a["token_embedding"]}
    for n in range(c.n_layers):
        p = f"model.layers.{n}."
        out[p + "self_attn.q_proj.weight"] = interleaved_to_rotate_half(a["wq"][n], c.n_heads)
        out[p + "self_attn.k_proj.weight"] = interleaved_to_rotate_half(a["wk"][n], c.n_kv_heads)
        out[p + "self_attn.v_proj.weight"] = a["wv"][n]
        out[p + "self_attn.o_proj.weight"] = a["wo"][n]
        out[p + "mlp.gate_proj.weight"] = a["w1"][n]
        out[p + "mlp.up_proj.weight"] = a["w3"][n]
        out[p + "mlp.down_proj.weight"] = a["w2"][n]
        out[p + "input_layernorm.weight"] = a["rms_att"][n]
        out[p + "post_attention_layernorm.weight"] = a["rms_ffn"][n]
    out["model.norm.weight"] = a["rms_final"]
    if not c.tied:
        out["lm_head.weight"] = a["wcls"]
    return out


def convert_llama2c(model_bin, out_dir, tokenizer_model=None):
    """Write @out_dir/config.json and model.safetensors (float32, metadata {"format": "pt"}) for the
    llama2.c checkpoint @model_bin, and copy @tokenizer_model (a SentencePiece model) to
    @out_dir/tokenizer.model when given. Returns the config dict."""
    c, arrays = read_llama2c(model_bin)
    os.makedirs(out_dir, exist_ok=True)
    config = hf_config(c)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(out_dir, "model.safetensors"), hf_tensors(c, arrays), {"format": "pt"})
    if tokenizer_model is not None:
        shutil.copyfile(tokenizer_model, os.path.join(out_dir, "tokenizer.model"))
    return config
