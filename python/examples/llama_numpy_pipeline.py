# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Quantize a llama2.c model from Python: a numpy forward pass drives aq_pipeline through ctypes
callbacks, the way a PyTorch or numpy framework integrates libaqinit; then one layer is exported
in AQLM's tensor layout to a safetensors file and read back.

    PYTHONPATH=python /usr/bin/python3 python/examples/llama_numpy_pipeline.py \\
        ../shared/bench/tiny/model.bin ../shared/bench/tiny/calib.tok.bin [--format 2x6g4] [--out layer.safetensors]
"""
import argparse
import time

import numpy as np

import aqinit

KINDS = ("wq", "wk", "wv", "wo", "w1", "w3", "w2")  # forward order: w2 after w1 and w3 (true-sequential)


class LlamaNumpy:
    """llama2.c version-0 checkpoint with a float32 numpy forward over one window."""

    def __init__(self, path):
        raw = np.fromfile(path, dtype=np.int32, count=7)
        dim, hidden, n_layers, n_heads, n_kv, vocab, seq = (int(v) for v in raw)
        self.dim, self.hidden, self.L, self.heads, self.kv, self.seq = dim, hidden, n_layers, n_heads, n_kv, seq
        self.vocab, self.hs = abs(vocab), dim // n_heads
        kvd = dim // n_heads * n_kv
        w = np.fromfile(path, dtype=np.float32, offset=28)
        shapes = [("emb", (self.vocab, dim)), ("rms_att", (n_layers, dim)), ("wq", (n_layers, dim, dim)),
                  ("wk", (n_layers, kvd, dim)), ("wv", (n_layers, kvd, dim)), ("wo", (n_layers, dim, dim)),
                  ("rms_ffn", (n_layers, dim)), ("w1", (n_layers, hidden, dim)), ("w2", (n_layers, dim, hidden)),
                  ("w3", (n_layers, hidden, dim)), ("rms_final", (dim,)), ("cos", (seq, self.hs // 2)),
                  ("sin", (seq, self.hs // 2))]
        self.p, off = {}, 0
        for name, shape in shapes:
            n = int(np.prod(shape))
            self.p[name] = w[off:off + n].reshape(shape).copy()
            off += n

    def linears(self):
        return [(l, k) for l in range(self.L) for k in KINDS]

    def weight(self, index):
        l, k = self.linears()[index]
        return self.p[k][l]

    @staticmethod
    def rmsnorm(x, w):
        return x / np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True) + 1e-5).astype(np.float32) * w

    def rope(self, x):
        n = x.shape[0]
        xr = x.reshape(n, -1, self.hs // 2, 2)
        c, s = self.p["cos"][:n, None, :], self.p["sin"][:n, None, :]
        a, b = xr[..., 0], xr[..., 1]
        return np.stack([a * c - b * s, a * s + b * c], axis=-1).reshape(x.shape)

    def forward(self, tokens, hook=None):
        """Logits of one window; hook(index, X) sees every linear input and may return True to stop."""
        x = self.p["emb"][tokens]
        n, group = len(tokens), self.heads // self.kv

        def lin(l, kind, X):
            if hook and hook(l * 7 + KINDS.index(kind), X):
                raise StopIteration
            return X @ self.p[kind][l].T

        try:
            for l in range(self.L):
                h = self.rmsnorm(x, self.p["rms_att"][l])
                q, k, v = self.rope(lin(l, "wq", h)), self.rope(lin(l, "wk", h)), lin(l, "wv", h)
                out = np.empty_like(q)
                mask = np.triu(np.full((n, n), -np.inf, dtype=np.float32), 1)
                for hd in range(self.heads):
                    sl, kl = slice(hd * self.hs, (hd + 1) * self.hs), slice((hd // group) * self.hs, (hd // group + 1) * self.hs)
                    a = q[:, sl] @ k[:, kl].T / np.sqrt(self.hs) + mask
                    a = np.exp(a - a.max(axis=1, keepdims=True))
                    out[:, sl] = (a / a.sum(axis=1, keepdims=True)) @ v[:, kl]
                x = x + lin(l, "wo", out)
                h = self.rmsnorm(x, self.p["rms_ffn"][l])
                a, b = lin(l, "w1", h), lin(l, "w3", h)
                x = x + lin(l, "w2", a / (1 + np.exp(-a)) * b)
        except StopIteration:
            return None
        return self.rmsnorm(x, self.p["rms_final"]) @ self.p["emb"].T


def perplexity(model, tokens, windows):
    nll, count = 0.0, 0
    for w in range(min(windows, len(tokens) // model.seq)):
        win = tokens[w * model.seq:(w + 1) * model.seq]
        logits = model.forward(win).astype(np.float64)[:-1]
        logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        nll += float(np.sum(logz - logits[np.arange(len(win) - 1), win[1:]]))
        count += len(win) - 1
    return float(np.exp(nll / count))


class Host:
    """The pipeline's host: the numpy model, true-sequential calibration."""

    def __init__(self, model, calib, windows):
        self.model, self.calib, self.windows = model, calib, windows
        self.quants = {}

    def num_layers(self):
        return len(self.model.linears())

    def layer_info(self, k):
        l, kind = self.model.linears()[k]
        return f"layers.{l}.{kind}", *self.model.weight(k).shape

    def get_weight(self, k):
        return self.model.weight(k)

    def calibrate(self, k, hessian):
        def capture(index, X):
            if index == k:
                hessian.add(np.ascontiguousarray(X, dtype=np.float32))
                return True
            return False
        for w in range(self.windows):
            self.model.forward(self.calib[w * self.model.seq:(w + 1) * self.model.seq], capture)

    def put_result(self, k, quant, report):
        self.model.weight(k)[...] = quant.dequantize()  # later layers see the quantized model
        self.quants[k] = quant.clone()
        print(f"  {self.layer_info(k)[0]:14s} init {report['init_error']:.5f}  final {report['final_error']:.5f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("calib")
    ap.add_argument("--format", default="2x6g4")
    ap.add_argument("--method", choices=("greedy", "oaem"), default="oaem")
    ap.add_argument("--calib-windows", type=int, default=8)
    ap.add_argument("--out", default="layer0.safetensors")
    args = ap.parse_args()
    model = LlamaNumpy(args.model)
    calib = np.fromfile(args.calib, dtype="<u2").astype(np.int64)
    ppl_before = perplexity(model, calib[-20 * model.seq:], 20)
    with aqinit.Context(threads=0, seed=1) as ctx:
        method = aqinit.INIT_OA_EM if args.method == "oaem" else aqinit.INIT_GREEDY
        host = Host(model, calib, args.calib_windows)
        t0 = time.perf_counter()
        aqinit.Pipeline(ctx, args.format, host, aqinit.Options(ctx, INIT_METHOD=method)).run()
        print(f"quantized {len(host.quants)} layers in {time.perf_counter() - t0:.1f} s")
        ppl_after = perplexity(model, calib[-20 * model.seq:], 20)
        print(f"perplexity on the last 20 calibration windows: fp32 {ppl_before:.2f} -> quantized {ppl_after:.2f}")
        aqinit.export_aqlm(host.quants[0], args.out, prefix="layers.0.attention.wq.")
        tensors, meta = aqinit.read_safetensors(args.out)
        print(f"{args.out}: " + ", ".join(f"{n} {t.dtype}{list(t.shape)}" for n, t in tensors.items()), meta)


if __name__ == "__main__":
    main()
