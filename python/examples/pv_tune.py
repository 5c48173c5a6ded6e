"""PV-tuning of a 2-bit model written by examples/llama/llama-quantize (--out DIR), with torch.

    PYTHONPATH=python /usr/bin/python3 python/examples/pv_tune.py ../shared/bench/model.bin QDIR \\
        ../shared/bench/calib.tok.bin ../shared/bench/wikitext2_test.tok.bin [--steps 200]

The host (this script) owns autograd; libaqinit owns the two steps:
- P-step: the codebooks and scales of every quantized layer are torch Parameters; the layer's
  weight is computed by the library (aq_quant_dequantize) in a torch.autograd.Function whose
  backward is the library's exact transpose (aq_quant_backward). Adam moves them to minimise
  KL(fp32 teacher ‖ quantized student) on calibration windows.
- V-step: every --vstep-every steps, each layer's codes move towards the continuous target
  Ŵ − η·∂L/∂Ŵ with aq_vstep, changing at most --vstep-fraction of its tiles.
Perplexity on the first --windows windows of TEST (../shared/bench/README.md protocol) is
reported before and after. Needs Debian's python3-torch."""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aqinit  # noqa: E402
from llama_numpy_pipeline import KINDS, LlamaNumpy  # noqa: E402


class Dequantize(torch.autograd.Function):
    """Ŵ from (codebooks, scales) through the library; backward = aq_quant_backward."""

    @staticmethod
    def forward(ctx, codebooks, scales, layer):
        layer.quant.codebooks = codebooks.detach().numpy()
        layer.quant.scales = scales.detach().numpy()
        ctx.layer = layer
        return torch.from_numpy(layer.quant.dequantize())

    @staticmethod
    def backward(ctx, grad_w):
        g = np.ascontiguousarray(grad_w.numpy(), dtype=np.float32)
        ctx.layer.last_grad = g  # the V-step's direction
        gc, gs = ctx.layer.quant.backward(g)
        return torch.from_numpy(gc), torch.from_numpy(gs), None


class QuantLayer:
    def __init__(self, quant):
        self.quant = quant
        self.codebooks = torch.nn.Parameter(torch.from_numpy(quant.codebooks))
        self.scales = torch.nn.Parameter(torch.from_numpy(quant.scales))
        self.last_grad = None

    def weight(self):
        return Dequantize.apply(self.codebooks, self.scales, self)


class TorchLlama:
    """The forward of LlamaNumpy in torch; linears either fp32 or QuantLayer."""

    def __init__(self, base, layers=None):
        self.b = base
        self.p = {k: torch.from_numpy(v) for k, v in base.p.items()}
        self.layers = layers  # list of QuantLayer in linear order, or None for fp32

    def W(self, l, kind):
        return self.layers[l * 7 + KINDS.index(kind)].weight() if self.layers else self.p[kind][l]

    def rmsnorm(self, x, w):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w

    def rope(self, x):
        n, hs = x.shape[0], self.b.hs
        xr = x.reshape(n, -1, hs // 2, 2)
        c, s = self.p["cos"][:n, None, :], self.p["sin"][:n, None, :]
        a, b = xr[..., 0], xr[..., 1]
        return torch.stack([a * c - b * s, a * s + b * c], dim=-1).reshape(x.shape)

    def forward(self, tokens):
        b = self.b
        x = self.p["emb"][tokens]
        n, group = len(tokens), b.heads // b.kv
        mask = torch.triu(torch.full((n, n), float("-inf")), 1)
        for l in range(b.L):
            h = self.rmsnorm(x, self.p["rms_att"][l])
            q, k, v = self.rope(h @ self.W(l, "wq").T), self.rope(h @ self.W(l, "wk").T), h @ self.W(l, "wv").T
            heads = []
            for hd in range(b.heads):
                sl, kl = slice(hd * b.hs, (hd + 1) * b.hs), slice((hd // group) * b.hs, (hd // group + 1) * b.hs)
                a = torch.softmax(q[:, sl] @ k[:, kl].T / b.hs ** 0.5 + mask, dim=-1)
                heads.append(a @ v[:, kl])
            x = x + torch.cat(heads, dim=1) @ self.W(l, "wo").T
            h = self.rmsnorm(x, self.p["rms_ffn"][l])
            x = x + (torch.nn.functional.silu(h @ self.W(l, "w1").T) * (h @ self.W(l, "w3").T)) @ self.W(l, "w2").T
        return self.rmsnorm(x, self.p["rms_final"]) @ self.p["emb"].T


def kl(model, window, target, reduce=True):
    """KL(teacher ‖ student) per token, averaged; target = the teacher's log-probabilities."""
    logq = torch.log_softmax(model.forward(window), dim=-1)
    value = torch.sum(torch.exp(target) * (target - logq), dim=-1).mean()
    return float(value) if reduce else value


def perplexity(model, tokens, seq, windows):
    nll, count = 0.0, 0
    with torch.no_grad():
        for w in range(min(windows, len(tokens) // seq)):
            win = torch.from_numpy(tokens[w * seq:(w + 1) * seq])
            logp = torch.log_softmax(model.forward(win).double()[:-1], dim=-1)
            nll -= float(logp[torch.arange(seq - 1), win[1:]].sum())
            count += seq - 1
    return float(np.exp(nll / count))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("qdir")
    ap.add_argument("calib")
    ap.add_argument("test")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--vstep-every", type=int, default=20)
    ap.add_argument("--vstep-fraction", type=float, default=0.01)
    ap.add_argument("--vstep-eta", type=float, default=0.05)
    ap.add_argument("--calib-windows", type=int, default=32)
    ap.add_argument("--windows", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch and library threads (0: all cores)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads or max(1, os.cpu_count() or 1))
    base = LlamaNumpy(args.model)
    calib = np.fromfile(args.calib, dtype="<u2").astype(np.int64)
    test = np.fromfile(args.test, dtype="<u2").astype(np.int64)
    seq = base.seq
    with aqinit.Context(threads=args.threads, seed=args.seed) as ctx:
        files = {}  # layer name → file, from the manifest (docs/formats.md)
        with open(os.path.join(args.qdir, "manifest.txt")) as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] == "layer":
                    files[parts[2]] = parts[3]
        layers = [QuantLayer(aqinit.Quant.load(ctx, os.path.join(args.qdir, files[f"layers.{l}.{kind}"])))
                  for l in range(base.L) for kind in KINDS]
        teacher, student = TorchLlama(base), TorchLlama(base, layers)
        ppl_fp32 = perplexity(teacher, test, seq, args.windows)
        ppl_before = perplexity(student, test, seq, args.windows)
        print(f"fp32 {ppl_fp32:.3f}, quantized before PV {ppl_before:.3f}", file=sys.stderr)
        params = [t for L in layers for t in (L.codebooks, L.scales)]
        opt = torch.optim.Adam(params, lr=args.lr)
        windows = [torch.from_numpy(calib[w * seq:(w + 1) * seq]) for w in range(min(args.calib_windows, len(calib) // seq))]
        with torch.no_grad():
            targets = [torch.log_softmax(teacher.forward(w), dim=-1) for w in windows]
        options = aqinit.Options(ctx, VSTEP_MAX_FRACTION=args.vstep_fraction)
        t0, changed = time.time(), 0
        for step in range(args.steps):
            i = step % len(windows)
            loss = kl(student, windows[i], targets[i], reduce=False)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step == 0:
                print(f"  step 1: KL {float(loss):.4f}", file=sys.stderr)
            if (step + 1) % args.vstep_every == 0:
                # V-step towards Ŵ − η ∂L/∂Ŵ (η relative to the weight scale), kept only if the KL
                # on this batch does not get worse (the host's line search; codes are restored).
                saved = [L.quant.codes for L in layers]
                with torch.no_grad():
                    kl_before = kl(student, windows[i], targets[i])
                moved = 0
                for L in layers:
                    if L.last_grad is None:
                        continue
                    W = L.quant.dequantize()
                    g = L.last_grad
                    eta = args.vstep_eta * np.abs(W).mean() / (np.abs(g).mean() + 1e-30)
                    moved += aqinit.vstep(ctx, L.quant, (W - eta * g).astype(np.float32), options=options)
                with torch.no_grad():
                    kl_after = kl(student, windows[i], targets[i])
                if kl_after > kl_before:
                    for L, codes in zip(layers, saved):
                        L.quant.codes = codes
                    moved = 0
                changed += moved
                print(f"  step {step + 1}: KL {kl_before:.4f} -> after V-step {kl_after:.4f} "
                      f"({'kept' if moved else 'reverted'}), codes changed so far {changed}", file=sys.stderr)
        ppl_after = perplexity(student, test, seq, args.windows)
        result = {"qdir": args.qdir, "steps": args.steps, "ppl_fp32": ppl_fp32, "ppl_before": ppl_before,
                  "ppl_after": ppl_after, "codes_changed": changed, "seconds": time.time() - t0}
        print(json.dumps(result) if args.json else
              f"{args.qdir}: perplexity {ppl_before:.3f} -> {ppl_after:.3f} after {args.steps} PV steps "
              f"({changed} codes changed, {result['seconds']:.0f} s); fp32 {ppl_fp32:.3f}")


if __name__ == "__main__":
    main()
