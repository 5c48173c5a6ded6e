# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""The fields of a Hugging Face Llama-family config.json that the numpy forward uses, with
transformers' LlamaConfig defaults where a field may be absent."""
from dataclasses import dataclass


@dataclass(frozen=True)
class LlamaConfig:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool

    @classmethod
    def from_dict(cls, d):
        """From a config.json dict. ValueError for what the forward does not implement: rope_scaling,
        an activation other than silu, heads that do not group."""
        if d.get("rope_scaling"):
            raise ValueError(f"rope_scaling {d['rope_scaling']} is not supported (plain rotary only)")
        if d.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act {d['hidden_act']!r} is not supported (SwiGLU with silu only)")
        heads = int(d["num_attention_heads"])
        kv_heads = int(d.get("num_key_value_heads") or heads)
        if heads % kv_heads:
            raise ValueError(f"{heads} attention heads do not split into groups of {kv_heads} KV heads")
        head_dim = int(d.get("head_dim") or d["hidden_size"] // heads)
        if head_dim % 2:
            raise ValueError(f"head_dim {head_dim} is odd: rotary embedding needs pairs")
        return cls(hidden_size=int(d["hidden_size"]), intermediate_size=int(d["intermediate_size"]),
                   num_hidden_layers=int(d["num_hidden_layers"]), num_attention_heads=heads,
                   num_key_value_heads=kv_heads, head_dim=head_dim, vocab_size=int(d["vocab_size"]),
                   max_position_embeddings=int(d.get("max_position_embeddings", 2048)),
                   rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)), rope_theta=float(d.get("rope_theta", 10000.0)),
                   tie_word_embeddings=bool(d.get("tie_word_embeddings", False)))
