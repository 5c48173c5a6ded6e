# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""llama2.c version-0 checkpoints: a writer of random ones and an independent float64 forward in
llama2.c's conventions (run.c: rotary on consecutive pairs, query head h reads KV head
h / (n_heads / n_kv_heads)), used by the conversion tests; and the tests of aqinit.hf.llama2c."""
import numpy as np
import pytest

from aqinit.hf.llama2c import read_llama2c

SMALL = dict(dim=16, hidden=40, layers=2, heads=4, kv_heads=2, vocab=32, seq=16)


def random_llama2c(rng, tied, dim, hidden, layers, heads, kv_heads, vocab, seq):
    """(header ints, {name: float32 array}) of a random model; weights scaled so activations stay O(1)."""
    hs, kvd = dim // heads, dim // heads * kv_heads

    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)

    angles = np.arange(seq)[:, None] * 10000.0 ** (-np.arange(0, hs, 2) / hs)
    p = {"emb": w(vocab, dim), "rms_att": (1 + 0.1 * rng.standard_normal((layers, dim))).astype(np.float32),
         "wq": w(layers, dim, dim), "wk": w(layers, kvd, dim), "wv": w(layers, kvd, dim), "wo": w(layers, dim, dim),
         "rms_ffn": (1 + 0.1 * rng.standard_normal((layers, dim))).astype(np.float32),
         "w1": w(layers, hidden, dim), "w2": w(layers, dim, hidden), "w3": w(layers, hidden, dim),
         "rms_final": (1 + 0.1 * rng.standard_normal(dim)).astype(np.float32),
         "cos": np.cos(angles).astype(np.float32), "sin": np.sin(angles).astype(np.float32)}
    if not tied:
        p["wcls"] = w(vocab, dim)
    header = [dim, hidden, layers, heads, kv_heads, vocab if tied else -vocab, seq]
    return header, p


def write_llama2c(path, header, p):
    order = ["emb", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3", "rms_final", "cos", "sin", "wcls"]
    with open(path, "wb") as f:
        f.write(np.asarray(header, dtype="<i4").tobytes())
        for name in order:
            if name in p:
                f.write(p[name].astype("<f4").tobytes())


def llama2c_logits(header, p, tokens):
    """Logits [n, vocab] (float64) of one window, written after llama2.c's run.c."""
    dim, _, layers, heads, kv_heads, _, _ = header
    hs, n = dim // heads, len(tokens)
    P = {k: v.astype(np.float64) for k, v in p.items()}

    def rmsnorm(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5) * w

    def rope(x):  # pairs (2i, 2i+1) of every head as complex numbers, times e^{i pos freq_i}
        pairs = x.reshape(n, -1, hs // 2, 2)
        z = (pairs[..., 0] + 1j * pairs[..., 1]) * (P["cos"][:n] + 1j * P["sin"][:n])[:, None, :]
        return np.stack([z.real, z.imag], axis=-1).reshape(x.shape)

    x = P["emb"][tokens]
    causal = np.tril(np.ones((n, n), dtype=bool))
    for l in range(layers):
        h = rmsnorm(x, P["rms_att"][l])
        q, k, v = rope(h @ P["wq"][l].T), rope(h @ P["wk"][l].T), h @ P["wv"][l].T
        att = np.zeros_like(q)
        for head in range(heads):
            kvh = head // (heads // kv_heads)
            qs, ks = slice(head * hs, (head + 1) * hs), slice(kvh * hs, (kvh + 1) * hs)
            score = np.where(causal, q[:, qs] @ k[:, ks].T / np.sqrt(hs), -np.inf)
            e = np.exp(score - score.max(axis=1, keepdims=True))
            att[:, qs] = e / e.sum(axis=1, keepdims=True) @ v[:, ks]
        x = x + att @ P["wo"][l].T
        h = rmsnorm(x, P["rms_ffn"][l])
        a, b = h @ P["w1"][l].T, h @ P["w3"][l].T
        x = x + (a / (1 + np.exp(-a)) * b) @ P["w2"][l].T
    return rmsnorm(x, P["rms_final"]) @ P.get("wcls", P["emb"]).T


@pytest.mark.parametrize("tied", [True, False])
def test_read_llama2c_returns_the_written_arrays(tmp_path, tied):
    header, p = random_llama2c(np.random.default_rng(1), tied, **SMALL)
    write_llama2c(tmp_path / "m.bin", header, p)
    c, a = read_llama2c(tmp_path / "m.bin")
    assert (c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len, c.tied) == \
        (16, 40, 2, 4, 2, 32, 16, tied)
    assert (c.head_size, c.kv_dim) == (4, 8)
    names = {"emb": "token_embedding", "cos": "freq_cis_real", "sin": "freq_cis_imag"}
    assert set(a) == {names.get(k, k) for k in p}
    for k, v in p.items():
        assert a[names.get(k, k)].dtype == np.float32
        np.testing.assert_array_equal(a[names.get(k, k)], v)


def test_read_llama2c_rejects_a_wrong_length_or_header(tmp_path):
    header, p = random_llama2c(np.random.default_rng(2), True, **SMALL)
    write_llama2c(tmp_path / "m.bin", header, p)
    data = (tmp_path / "m.bin").read_bytes()
    (tmp_path / "short.bin").write_bytes(data[:-4])
    with pytest.raises(ValueError, match="floats after the header"):
        read_llama2c(tmp_path / "short.bin")
    (tmp_path / "head.bin").write_bytes(data[:12])
    with pytest.raises(ValueError, match="shorter than"):
        read_llama2c(tmp_path / "head.bin")
    write_llama2c(tmp_path / "odd.bin", [16, 40, 2, 3, 3, 32, 16], p)
    with pytest.raises(ValueError, match="do not split"):
        read_llama2c(tmp_path / "odd.bin")
    write_llama2c(tmp_path / "zero.bin", [16, 40, 0, 4, 2, 32, 16], p)
    with pytest.raises(ValueError, match="non-positive"):
        read_llama2c(tmp_path / "zero.bin")
