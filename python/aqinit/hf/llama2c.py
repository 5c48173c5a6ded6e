# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Reading llama2.c "version 0" checkpoints (the legacy format of llama2.c's export.py / run.c).

Layout: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
vocab_size means an untied output layer), then float32 arrays, each matrix row-major [out][in]:
token_embedding[vocab][dim], rms_att[L][dim], wq[L][dim][dim], wk[L][kv_dim][dim],
wv[L][kv_dim][dim], wo[L][dim][dim], rms_ffn[L][dim], w1[L][hidden][dim], w2[L][dim][hidden],
w3[L][hidden][dim], rms_final[dim], freq_cis_real[seq][head/2], freq_cis_imag[seq][head/2] and,
when untied, wcls[vocab][dim]. run.c skips the two rotary tables and recomputes the frequencies
with base 10000; so does everything here."""
from dataclasses import dataclass

import numpy as np

HEADER_INTS = 7


@dataclass(frozen=True)
class Llama2cConfig:
    """The header of a llama2.c checkpoint; vocab_size is positive, tied says whether the output
    layer shares the token embedding."""
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    tied: bool

    @property
    def head_size(self):
        return self.dim // self.n_heads

    @property
    def kv_dim(self):
        return self.head_size * self.n_kv_heads

    def layout(self):
        """[(name, shape)] of the float32 arrays, in file order."""
        L, d, h, kv, v = self.n_layers, self.dim, self.hidden_dim, self.kv_dim, self.vocab_size
        half = self.head_size // 2
        out = [("token_embedding", (v, d)), ("rms_att", (L, d)), ("wq", (L, d, d)), ("wk", (L, kv, d)),
               ("wv", (L, kv, d)), ("wo", (L, d, d)), ("rms_ffn", (L, d)), ("w1", (L, h, d)), ("w2", (L, d, h)),
               ("w3", (L, h, d)), ("rms_final", (d,)), ("freq_cis_real", (self.seq_len, half)),
               ("freq_cis_imag", (self.seq_len, half))]
        return out if self.tied else out + [("wcls", (v, d))]


def _config(header):
    dim, hidden, layers, heads, kv_heads, vocab, seq = (int(x) for x in header)
    if min(dim, hidden, layers, heads, kv_heads, abs(vocab), seq) <= 0:
        raise ValueError(f"llama2.c header has a non-positive field: {list(header)}")
    if dim % heads or heads % kv_heads or (dim // heads) % 2:
        raise ValueError(f"llama2.c header: dim {dim}, heads {heads}, kv heads {kv_heads} do not split "
                         "into heads of an even size")
    return Llama2cConfig(dim, hidden, layers, heads, kv_heads, abs(vocab), seq, vocab > 0)


def read_llama2c(path):
    """(Llama2cConfig, {name: float32 array}) of a version-0 checkpoint, names as in the module
    docstring. ValueError when the header is implausible or the file length does not match it."""
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if header.size != HEADER_INTS:
        raise ValueError(f"{path}: shorter than the llama2.c header")
    config = _config(header)
    floats = np.fromfile(path, dtype="<f4", offset=4 * HEADER_INTS)
    layout = config.layout()
    expected = sum(int(np.prod(shape)) for _, shape in layout)
    if floats.size != expected:
        raise ValueError(f"{path}: {floats.size} floats after the header, the header implies {expected}")
    arrays, offset = {}, 0
    for name, shape in layout:
        n = int(np.prod(shape))
        arrays[name] = floats[offset:offset + n].reshape(shape).astype(np.float32)
        offset += n
    return config, arrays
