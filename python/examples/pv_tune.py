# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""PV-tuning of a 2-bit model written by examples/llama/llama-quantize (--out DIR), with torch.

    PYTHONPATH=python /usr/bin/python3 python/examples/pv_tune.py ../shared/bench/model.bin QDIR \\
        ../shared/bench/calib.tok.bin ../shared/bench/wikitext2_test.tok.bin [--steps 50]

The host (this script) owns autograd; libaqinit owns the two steps:
- P-step: the codebooks and scales of every quantized layer are torch Parameters; the layer's
  weight is computed by the library (aq_quant_dequantize) in a torch.autograd.Function whose
  backward is the library's exact transpose (aq_quant_backward). Adam moves them to minimise
  KL(fp32 teacher ‖ quantized student) on calibration windows.
- V-step: every --vstep-every steps aq_vstep moves every layer's codes towards a target, with
  the current (P-tuned) codebooks and scales, changing at most --vstep-fraction of its tiles,
  ranked by the decrease of their distance (AQ_VSTEP_GAIN); the move is kept only if the KL on
  --val-windows held-out calibration windows (the last of CALIB) does not grow (--vstep-check
  val), else the codes are restored. Targets (--vstep):
    teacher (default): the layer's fp32 weight W, in the metric of the layer's input Hessian
      captured in the training forwards (--vstep-metric hessian, default) or in weight space;
    adam: a continuous straight-through copy B of Ŵ, started at Ŵ and moved at every step by
      an Adam-normalised step on ∂L/∂Ŵ (B ← B − code_lr·‖B‖·u/‖u‖, u = m̂/(√v̂ + ε)), as AQLM's
      PV-tuning does; AQ_OPT_VSTEP_MAX_CHANGE (--vstep-max-change) bounds ‖ΔŴ‖/‖Ŵ‖;
    legacy: Ŵ − η·∂L/∂Ŵ of the last batch (η relative to the weight scale), the first version;
    off: the P-only baseline with the same steps.
  On the benchmark model the teacher target gave the large gains, the Adam target a marginal
  one, and every legacy V-step was reverted (docs/results.md, PV-tuning).
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
        # copies: the optimizer updates them in place, and quant's arrays are read-only
        self.codebooks = torch.nn.Parameter(torch.from_numpy(quant.codebooks.copy()))
        self.scales = torch.nn.Parameter(torch.from_numpy(quant.scales.copy()))
        self.last_grad = None
        self.xtx, self.n = None, 0  # Σ xᵀx of the layer's inputs seen in training forwards
        self.buffer = self.m = self.v = None  # straight-through copy of Ŵ and its Adam moments
        self.t = 0

    def weight(self):
        return Dequantize.apply(self.codebooks, self.scales, self)

    def hessian(self, ctx):
        return aqinit.Hessian.from_matrix(ctx, self.xtx / max(self.n, 1), self.n)

    def adam_buffer_step(self, lr, beta1, beta2, eps=1e-12):
        """B ← B − lr·‖Ŵ‖·u/‖u‖ with u the bias-corrected Adam direction of ∂L/∂Ŵ."""
        g = self.last_grad.astype(np.float64)
        if self.buffer is None:
            self.buffer = self.quant.dequantize().astype(np.float64)
            self.m, self.v = np.zeros_like(g), np.zeros_like(g)
        self.t += 1
        self.m = beta1 * self.m + (1 - beta1) * g
        self.v = beta2 * self.v + (1 - beta2) * g * g
        u = (self.m / (1 - beta1 ** self.t)) / (np.sqrt(self.v / (1 - beta2 ** self.t)) + eps)
        norm_u = np.linalg.norm(u)
        if norm_u > 0:
            self.buffer -= lr * np.linalg.norm(self.buffer) / norm_u * u


class TorchLlama:
    """The forward of LlamaNumpy in torch; linears either fp32 or QuantLayer. With capture, the
    inputs of every quantized linear add to its QuantLayer.xtx (one product per shared input)."""

    def __init__(self, base, layers=None):
        self.b = base
        self.p = {k: torch.from_numpy(v) for k, v in base.p.items()}
        self.layers = layers  # list of QuantLayer in linear order, or None for fp32
        self.capture = False

    def W(self, l, kind):
        return self.layers[l * 7 + KINDS.index(kind)].weight() if self.layers else self.p[kind][l]

    def _capture(self, l, kinds, x):
        if self.capture and self.layers:
            x = x.detach().double()
            xtx = (x.T @ x).numpy()
            for kind in kinds:
                L = self.layers[l * 7 + KINDS.index(kind)]
                L.xtx = xtx.copy() if L.xtx is None else L.xtx + xtx
                L.n += x.shape[0]

    def rmsnorm(self, x, w):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w

    def rope(self, x):  # x: n × heads × hs
        n, hs = x.shape[0], self.b.hs
        xr = x.reshape(n, -1, hs // 2, 2)
        c, s = self.p["cos"][:n, None, :], self.p["sin"][:n, None, :]
        a, b = xr[..., 0], xr[..., 1]
        return torch.stack([a * c - b * s, a * s + b * c], dim=-1).reshape(x.shape)

    def forward(self, tokens):
        b = self.b
        x = self.p["emb"][tokens]
        n, group, hs = len(tokens), b.heads // b.kv, b.hs
        mask = torch.triu(torch.full((n, n), float("-inf")), 1)
        for l in range(b.L):
            h = self.rmsnorm(x, self.p["rms_att"][l])
            self._capture(l, ("wq", "wk", "wv"), h)
            q = self.rope((h @ self.W(l, "wq").T).reshape(n, b.heads, hs)).transpose(0, 1)
            k = self.rope((h @ self.W(l, "wk").T).reshape(n, b.kv, hs)).transpose(0, 1)
            v = (h @ self.W(l, "wv").T).reshape(n, b.kv, hs).transpose(0, 1)
            if group > 1:
                k, v = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)
            a = torch.softmax(q @ k.transpose(1, 2) / hs ** 0.5 + mask, dim=-1)
            att = (a @ v).transpose(0, 1).reshape(n, b.heads * hs)
            self._capture(l, ("wo",), att)
            x = x + att @ self.W(l, "wo").T
            h = self.rmsnorm(x, self.p["rms_ffn"][l])
            self._capture(l, ("w1", "w3"), h)
            hid = torch.nn.functional.silu(h @ self.W(l, "w1").T) * (h @ self.W(l, "w3").T)
            self._capture(l, ("w2",), hid)
            x = x + hid @ self.W(l, "w2").T
        return self.rmsnorm(x, self.p["rms_final"]) @ self.p["emb"].T


def kl(model, window, target, reduce=True):
    """KL(teacher ‖ student) per token, averaged; target = the teacher's log-probabilities."""
    logq = torch.log_softmax(model.forward(window), dim=-1)
    value = torch.sum(torch.exp(target) * (target - logq), dim=-1).mean()
    return float(value) if reduce else value


def mean_kl(model, windows, targets):
    with torch.no_grad():
        return float(np.mean([kl(model, w, t) for w, t in zip(windows, targets)]))


def perplexity(model, tokens, seq, windows):
    nll, count = 0.0, 0
    with torch.no_grad():
        for w in range(min(windows, len(tokens) // seq)):
            win = torch.from_numpy(tokens[w * seq:(w + 1) * seq])
            logp = torch.log_softmax(model.forward(win).double()[:-1], dim=-1)
            nll -= float(logp[torch.arange(seq - 1), win[1:]].sum())
            count += seq - 1
    return float(np.exp(nll / count))


def vstep_all(ctx, layers, args, options, step):
    """One V-step of every layer; returns the number of codes changed."""
    moved = 0
    for L in layers:
        if L.last_grad is None:
            continue
        if args.vstep == "teacher":
            target = L.teacher
        elif args.vstep == "legacy":
            W, g = L.quant.dequantize(), L.last_grad
            eta = args.vstep_eta * np.abs(W).mean() / (np.abs(g).mean() + 1e-30)
            target = W - eta * g
        else:
            target = L.buffer
        H = L.hessian(ctx) if args.vstep_metric == "hessian" and L.n > 0 else None
        moved += aqinit.vstep(ctx, L.quant, np.asarray(target, dtype=np.float32), H, options)
    return moved


def load_layers(ctx, qdir, base):
    files = {}  # layer name → file, from the manifest (docs/formats.md)
    with open(os.path.join(qdir, "manifest.txt")) as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] == "layer":
                files[parts[2]] = parts[3]
    return [QuantLayer(aqinit.Quant.load(ctx, os.path.join(qdir, files[f"layers.{l}.{kind}"])))
            for l in range(base.L) for kind in KINDS]


def parse_args(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("qdir")
    ap.add_argument("calib")
    ap.add_argument("test")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--lr", type=float, default=1e-3, help="P-step Adam learning rate (codebooks, scales)")
    ap.add_argument("--vstep", choices=("teacher", "adam", "legacy", "off"), default="teacher")
    ap.add_argument("--vstep-every", type=int, default=25)
    ap.add_argument("--vstep-fraction", type=float, default=0.3, help="AQ_OPT_VSTEP_MAX_FRACTION")
    ap.add_argument("--vstep-selection", choices=("largest", "sampled", "gain"), default="gain")
    ap.add_argument("--vstep-metric", choices=("hessian", "weight"), default="hessian")
    ap.add_argument("--vstep-max-change", type=float, default=0.0, help="AQ_OPT_VSTEP_MAX_CHANGE (0: off)")
    ap.add_argument("--vstep-check", choices=("val", "batch", "none"), default="val",
                    help="keep a V-step only if the KL on the validation windows / the batch does not grow")
    ap.add_argument("--code-lr", type=float, default=1e-3, help="relative step of the straight-through copy")
    ap.add_argument("--code-beta1", type=float, default=0.9)
    ap.add_argument("--code-beta2", type=float, default=0.95)
    ap.add_argument("--vstep-eta", type=float, default=0.05, help="--vstep legacy: relative step")
    ap.add_argument("--calib-windows", type=int, default=32, help="training windows (the first of CALIB)")
    ap.add_argument("--val-windows", type=int, default=4, help="held-out windows (the last of CALIB)")
    ap.add_argument("--windows", type=int, default=40, help="perplexity windows of TEST (0: skip)")
    ap.add_argument("--skip-fp32", action="store_true", help="do not measure the fp32 perplexity (112.215)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch and library threads (0: all cores)")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args(argv)


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads or max(1, os.cpu_count() or 1))
    base = LlamaNumpy(args.model)
    calib = np.fromfile(args.calib, dtype="<u2").astype(np.int64)
    test = np.fromfile(args.test, dtype="<u2").astype(np.int64)
    seq = base.seq
    n_calib = len(calib) // seq
    if args.calib_windows + args.val_windows > n_calib:
        sys.exit(f"{args.calib} has {n_calib} windows, fewer than --calib-windows + --val-windows")
    with aqinit.Context(threads=args.threads, seed=args.seed) as ctx:
        layers = load_layers(ctx, args.qdir, base)
        for n, L in enumerate(layers):  # the fp32 weight, target of --vstep teacher
            L.teacher = base.p[KINDS[n % 7]][n // 7]
        teacher, student = TorchLlama(base), TorchLlama(base, layers)
        ppl_fp32 = perplexity(teacher, test, seq, args.windows) if args.windows and not args.skip_fp32 else float("nan")
        ppl_before = perplexity(student, test, seq, args.windows) if args.windows else float("nan")
        print(f"fp32 {ppl_fp32:.3f}, quantized before PV {ppl_before:.3f}", file=sys.stderr)
        params = [t for L in layers for t in (L.codebooks, L.scales)]
        opt = torch.optim.Adam(params, lr=args.lr)
        win = lambda w: torch.from_numpy(calib[w * seq:(w + 1) * seq])  # noqa: E731
        windows = [win(w) for w in range(args.calib_windows)]
        val = [win(w) for w in range(n_calib - args.val_windows, n_calib)]
        with torch.no_grad():
            targets = [torch.log_softmax(teacher.forward(w), dim=-1) for w in windows]
            val_targets = [torch.log_softmax(teacher.forward(w), dim=-1) for w in val]
        selection = {"largest": aqinit.VSTEP_LARGEST, "sampled": aqinit.VSTEP_SAMPLED,
                     "gain": aqinit.VSTEP_GAIN}[args.vstep_selection]
        options = aqinit.Options(ctx, VSTEP_MAX_FRACTION=args.vstep_fraction, VSTEP_SELECTION=selection,
                                 VSTEP_MAX_CHANGE=args.vstep_max_change)
        val_start = mean_kl(student, val, val_targets) if val else float("nan")
        t0, changed, vsteps, kept, log = time.time(), 0, 0, 0, []
        student.capture = args.vstep in ("teacher", "adam") and args.vstep_metric == "hessian"
        for step in range(args.steps):
            i = step % len(windows)
            loss = kl(student, windows[i], targets[i], reduce=False)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if args.vstep == "adam":
                for L in layers:
                    L.adam_buffer_step(args.code_lr, args.code_beta1, args.code_beta2)
            if step == 0:
                print(f"  step 1: KL {float(loss):.4f}", file=sys.stderr)
            if args.vstep != "off" and (step + 1) % args.vstep_every == 0:
                saved = [L.quant.codes for L in layers]
                check = {"val": (val, val_targets), "batch": ([windows[i]], [targets[i]])}.get(args.vstep_check)
                with torch.no_grad():  # the forwards also load the P-step's codebooks into the quants
                    ref = check or ([windows[i]], [targets[i]])
                    kl_before = mean_kl(student, *ref)
                moved = vstep_all(ctx, layers, args, options, step)
                kl_after = mean_kl(student, *ref)
                reverted = check is not None and kl_after > kl_before
                if reverted:
                    for L, codes in zip(layers, saved):
                        L.quant.codes = codes
                    moved = 0
                vsteps += 1
                kept += moved > 0
                changed += moved
                log.append({"step": step + 1, "kl_before": kl_before, "kl_after": kl_after,
                            "codes": 0 if reverted else moved, "kept": not reverted})
                print(f"  step {step + 1}: {args.vstep_check if check else 'batch'} KL {kl_before:.5f} -> "
                      f"after V-step {kl_after:.5f} ({'reverted' if reverted else 'kept'}, {moved} codes), "
                      f"codes changed so far {changed}", file=sys.stderr)
        student.capture = False
        seconds = time.time() - t0
        val_end = mean_kl(student, val, val_targets) if val else float("nan")
        ppl_after = perplexity(student, test, seq, args.windows) if args.windows else float("nan")
        result = {"qdir": args.qdir, "steps": args.steps, "vstep": args.vstep, "ppl_fp32": ppl_fp32,
                  "ppl_before": ppl_before, "ppl_after": ppl_after, "val_kl_before": val_start,
                  "val_kl_after": val_end, "codes_changed": changed, "vsteps": vsteps, "vsteps_kept": kept,
                  "seconds": seconds, "vstep_log": log, "settings": {k: v for k, v in vars(args).items()
                                                                     if k not in ("model", "qdir", "calib", "test")}}
        print(json.dumps(result) if args.json else
              f"{args.qdir}: perplexity {ppl_before:.3f} -> {ppl_after:.3f} after {args.steps} PV steps "
              f"({changed} codes changed, {kept}/{vsteps} V-steps kept, {seconds:.0f} s); "
              f"validation KL {val_start:.5f} -> {val_end:.5f}; fp32 {ppl_fp32:.3f}")


if __name__ == "__main__":
    main()
