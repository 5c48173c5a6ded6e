#!/usr/bin/env python3
"""Whole-model perplexity table: fp32 vs GREEDY vs OA-EM at several formats and beam widths.

    bench/model_ppl.py [--build build] [--data ../shared/bench] [--windows 40] [--threads 2]
                       [--formats 1x8g4,2x8g8,3x8g8] [--beams 1,8] [--out docs/results.md]

Runs build/examples/llama-quantize for every (format, method, beam) on the benchmark model
(calibration: 32 windows of calib.tok.bin; perplexity: the protocol of ../shared/bench/README.md
on the first --windows windows of wikitext2_test.tok.bin, 0 = all) and writes a Markdown table.
Standard library only."""
import argparse
import json
import os
import subprocess
import sys
import time


def run(binary, data, fmt, method, beam, windows, threads):
    cmd = [binary, os.path.join(data, "model.bin"), os.path.join(data, "calib.tok.bin"),
           os.path.join(data, "wikitext2_test.tok.bin"), "--format", fmt, "--method", method, "--beam", str(beam),
           "--threads", str(threads), "--ppl-windows", str(windows), "--json"]
    print(" ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--data", default=os.path.join("..", "shared", "bench"))
    ap.add_argument("--windows", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--formats", default="1x8g4,2x8g8,3x8g8")
    ap.add_argument("--beams", default="1,8")
    ap.add_argument("--out", default=os.path.join("docs", "results.md"))
    args = ap.parse_args()
    binary = os.path.join(args.build, "examples", "llama-quantize")
    rows, started = [], time.time()
    for fmt in args.formats.split(","):
        for beam in [int(b) for b in args.beams.split(",")]:
            for method in ("greedy", "oaem"):
                rows.append(run(binary, args.data, fmt, method, beam, args.windows, args.threads))
                r = rows[-1]
                print(f"  -> {fmt} {method} beam {beam}: ppl {r['ppl_quantized']:.3f} ({r['seconds']:.0f} s)",
                      file=sys.stderr, flush=True)
    fp32 = rows[0]["ppl_fp32"]
    scope = "all windows" if args.windows == 0 else f"first {args.windows} windows"
    lines = [
        "# Results: whole-model quantization of the benchmark model",
        "",
        f"`bench/model_ppl.py` (libaqinit {rows[0]['version']}); regenerate with `bench/model_ppl.py`.",
        "",
        "Model: `../shared/bench/model.bin` (Llama architecture, dim 288, 6 layers, 7.1 M parameters);",
        "all 42 linear layers quantized true-sequentially through `aq_pipeline` by",
        "`examples/llama/llama-quantize` (calibration: 32 windows × 256 tokens of `calib.tok.bin`;",
        "per layer `aq_init` then `aq_optimize`: up to 10 epochs of codebook/scale updates and beam",
        "search, stopping below 1 % improvement). Perplexity on WikiText-2 test, protocol of",
        f"`../shared/bench/README.md`, {scope}. Bits per parameter count codes, fp16 codebooks and",
        "fp16 scales of the linear layers (AQLM's formula); embeddings and norms stay fp32.",
        "",
        f"fp32 perplexity: **{fp32:.3f}**",
        "",
        "| format | bits/param | method | beam | perplexity | mean layer rel. error | quantization time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['format']} | {r['bpp']:.3f} | {'OA-EM' if r['method'] == 'oaem' else 'GREEDY'} | {r['beam']} "
                     f"| {r['ppl_quantized']:.3f} | {r['mean_layer_rel_error']:.5f} | {r['seconds']:.0f} |")
    lines += ["", f"Machine: 2 cores; the whole table took {(time.time() - started) / 60:.0f} min.", ""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
