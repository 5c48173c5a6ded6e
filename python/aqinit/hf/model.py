# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""A numpy float32 forward of a Hugging Face Llama-family checkpoint, in transformers'
modeling_llama conventions: RMSNorm (x / sqrt(mean(x²) + eps) · w), rotary embedding on the halves
of each head (rotate_half: (x1, x2) -> (-x2, x1), angle pos · rope_theta^(-2i/head_dim)), grouped-query
attention (query head h reads KV head h // (heads / kv_heads), as repeat_kv does), a causal mask,
and the SwiGLU MLP down(silu(gate(x)) · up(x)).

Every linear layer is an object called as ``linear(x)`` on a 2-D float32 array [tokens, in]
returning [tokens, out], so a quantized layer (e.g. one applying aq_quant_matmul) or a recording
wrapper can take the place of a dense one through LlamaModel.set_linear."""
import numpy as np

from .checkpoint import read_config, read_tensors
from .config import LlamaConfig
from .perplexity import mean_nll, perplexity  # the protocol, part of this module's API

__all__ = ["LlamaModel", "Linear", "LlamaConfig", "load_llama", "perplexity", "mean_nll", "PROJECTIONS"]

PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")  # in forward order


class Linear:
    """y = x Wᵀ (+ b), W [out, in] as nn.Linear.weight."""

    def __init__(self, weight, bias=None):
        self.weight = np.ascontiguousarray(weight, dtype=np.float32)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32)

    @property
    def shape(self):
        """(out, in)."""
        return self.weight.shape

    def __call__(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias


def _linear(tensors, prefix):
    """The linear @prefix ("model.layers.0.mlp.up_proj."): dense from {prefix}weight, or an AqlmLinear
    (computed by the library) from {prefix}codes/codebooks/scales of an AQLM checkpoint."""
    if prefix + "codes" in tensors:
        from .aqlm import AqlmLinear
        return AqlmLinear.from_tensors(tensors, prefix)
    return Linear(tensors[prefix + "weight"], tensors.get(prefix + "bias"))


def rms_norm(x, weight, eps):
    """modeling_llama's LlamaRMSNorm, the mean of squares accumulated in float64."""
    ms = np.mean(np.square(x, dtype=np.float64), axis=-1, keepdims=True)
    return (x / np.sqrt(ms + eps).astype(np.float32)) * weight


def rotary_tables(n, head_dim, theta):
    """(cos, sin), each [n, head_dim]: the angles pos · theta^(-2i/head_dim) of pair i, repeated
    for both halves as modeling_llama's LlamaRotaryEmbedding concatenates them."""
    inv_freq = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = np.arange(n, dtype=np.float64)[:, None] * inv_freq[None, :]
    angles = np.concatenate([angles, angles], axis=1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def apply_rotary(x, cos, sin):
    """x · cos + rotate_half(x) · sin over the last axis (head_dim); cos, sin [n, head_dim]
    broadcast over x [..., n, head_dim]."""
    half = x.shape[-1] // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def softmax(a):
    a = np.exp(a - a.max(axis=-1, keepdims=True))
    return a / a.sum(axis=-1, keepdims=True)


class LlamaModel:
    """Weights of a Llama-family causal LM and its forward. embed [vocab, hidden]; per layer a dict
    of the norms' weights and a dict of the linears by the names of PROJECTIONS; norm; lm_head."""

    def __init__(self, config, tensors):
        self.config = c = config
        self.embed = tensors["model.embed_tokens.weight"]
        self.layers = []
        for n in range(c.num_hidden_layers):
            p = f"model.layers.{n}."
            self.layers.append({"input_layernorm": tensors[p + "input_layernorm.weight"],
                                "post_attention_layernorm": tensors[p + "post_attention_layernorm.weight"],
                                "linears": {k: _linear(tensors, p + k + ".") for k in PROJECTIONS}})
        self.norm = tensors["model.norm.weight"]
        self.lm_head = Linear(self.embed if c.tie_word_embeddings else tensors["lm_head.weight"])
        self._check_shapes()

    @classmethod
    def from_pretrained(cls, path):
        """The checkpoint directory @path (config.json + safetensors, single or sharded)."""
        return cls(LlamaConfig.from_dict(read_config(path)), read_tensors(path))

    def _check_shapes(self):
        c = self.config
        q, kv = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
        want = {"self_attn.q_proj": (q, c.hidden_size), "self_attn.k_proj": (kv, c.hidden_size),
                "self_attn.v_proj": (kv, c.hidden_size), "self_attn.o_proj": (c.hidden_size, q),
                "mlp.gate_proj": (c.intermediate_size, c.hidden_size),
                "mlp.up_proj": (c.intermediate_size, c.hidden_size),
                "mlp.down_proj": (c.hidden_size, c.intermediate_size)}
        for name, linear in self.linears():
            expected = want[name.split(".", 3)[3]]
            if tuple(linear.shape) != expected:
                raise ValueError(f"{name}: shape {tuple(linear.shape)}, the config implies {expected}")
        for name, a, shape in [("embed_tokens", self.embed, (c.vocab_size, c.hidden_size)),
                               ("lm_head", self.lm_head.weight, (c.vocab_size, c.hidden_size))]:
            if a.shape != shape:
                raise ValueError(f"{name}: shape {a.shape}, the config implies {shape}")

    def linears(self):
        """[(HF name without ".weight", linear)] of the decoder layers, in forward order."""
        return [(f"model.layers.{n}.{k}", layer["linears"][k]) for n, layer in enumerate(self.layers)
                for k in PROJECTIONS]

    def set_linear(self, name, linear):
        """Replace the linear @name (as listed by linears()) by any callable [tokens, in] -> [tokens, out]."""
        _, _, n, key = name.split(".", 3)
        if key not in self.layers[int(n)]["linears"]:
            raise KeyError(name)
        self.layers[int(n)]["linears"][key] = linear

    def _attention(self, layer, h, cos, sin, mask):
        c = self.config
        b, n, _ = h.shape
        group, d = c.num_attention_heads // c.num_key_value_heads, c.head_dim
        flat = h.reshape(b * n, -1)
        lin = layer["linears"]
        # [b, kv, group, n, d] for queries (head h = kv · group + g), [b, kv, 1, n, d] for keys/values
        q = lin["self_attn.q_proj"](flat).reshape(b, n, c.num_key_value_heads, group, d).transpose(0, 2, 3, 1, 4)
        k = lin["self_attn.k_proj"](flat).reshape(b, n, c.num_key_value_heads, 1, d).transpose(0, 2, 3, 1, 4)
        v = lin["self_attn.v_proj"](flat).reshape(b, n, c.num_key_value_heads, 1, d).transpose(0, 2, 3, 1, 4)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        scores = q @ k.swapaxes(-1, -2) * np.float32(1.0 / np.sqrt(d)) + mask
        out = softmax(scores) @ v  # [b, kv, group, n, d]
        return lin["self_attn.o_proj"](out.transpose(0, 3, 1, 2, 4).reshape(b * n, -1)).reshape(b, n, -1)

    def _mlp(self, layer, h):
        lin = layer["linears"]
        flat = h.reshape(-1, h.shape[-1])
        gate = lin["mlp.gate_proj"](flat)
        act = gate / (1.0 + np.exp(-gate)) * lin["mlp.up_proj"](flat)
        return lin["mlp.down_proj"](act).reshape(h.shape)

    def tables(self, n):
        """(cos, sin, causal mask) of windows of @n tokens."""
        cos, sin = rotary_tables(n, self.config.head_dim, self.config.rope_theta)
        return cos, sin, np.triu(np.full((n, n), -np.inf, dtype=np.float32), 1)

    def block(self, layer, x, tables):
        """The residual stream [batch, n, hidden] after the decoder layer @layer (of self.layers)."""
        eps = self.config.rms_norm_eps
        x = x + self._attention(layer, rms_norm(x, layer["input_layernorm"], eps), *tables)
        return x + self._mlp(layer, rms_norm(x, layer["post_attention_layernorm"], eps))

    def forward(self, tokens):
        """Float32 logits [..., n, vocab] of token ids [n] or [batch, n], each row a window that
        starts at position 0."""
        tokens = np.asarray(tokens)
        batch = tokens.reshape(-1, tokens.shape[-1])
        tables = self.tables(batch.shape[1])
        x = self.embed[batch]
        for layer in self.layers:
            x = self.block(layer, x, tables)
        x = rms_norm(x, self.norm, self.config.rms_norm_eps)
        return self.lm_head(x.reshape(-1, x.shape[-1])).reshape(tokens.shape + (-1,))

    __call__ = forward


def load_llama(path):
    """LlamaModel.from_pretrained(@path)."""
    return LlamaModel.from_pretrained(path)
