#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Whole-model perplexity table: fp32 vs GREEDY vs OA-EM at several formats and beam widths.

    bench/model_ppl.py [--build build] [--data ../shared/bench] [--windows 200] [--threads 2]
                       [--formats 1x8g4,2x8g8,3x8g8] [--beams 1,8] [--epochs 10[,0...]] [--seeds 1[,2...]]
                       [--calib-windows 128] [--em-damping 1.0[,0.01...]] [--hessian-damping 0[,1...]] [--out docs/results.md]
                       [--cache runs.jsonl [--cached-only]]

Runs build/examples/llama-quantize for every (format, beam, epochs, method, seed) on the benchmark model
(calibration: --calib-windows windows of calib.tok.bin; OA-EM with AQ_OPT_EM_DAMPING =
each --em-damping value (a comma list gives one OA-EM row per value); perplexity: the protocol of ../shared/bench/README.md on the first --windows
windows of wikitext2_test.tok.bin, 0 = all) and writes the Markdown table into --out between
the markers <!-- model_ppl:begin --> and <!-- model_ppl:end --> (the rest of the file is kept):
one row per (format, beam, epochs, method) with the perplexity of each seed and their mean, then
the paired OA-EM − GREEDY differences per seed (the seed changes both initialisations, so a
difference is only meaningful against the seed-to-seed spread). Standard library only."""
import argparse
import json
import os
import statistics
import subprocess
import sys


BEGIN, END = "<!-- model_ppl:begin -->", "<!-- model_ppl:end -->"


def run(binary, data, fmt, method, beam, damping, seed, epochs, hdamp, args):
    # llama-quantize's defaults: seed 1, 10 epochs (rows written before those fields carry them implicitly)
    key = {"format": fmt, "method": method, "beam": beam, "calib_windows": args.calib_windows,
           "ppl_windows": args.windows, "seed": seed, "epochs": epochs, "hessian_damping": hdamp}
    implicit = {"seed": 1, "epochs": 10, "hessian_damping": 0.0}
    if method == "oaem":
        key["em_damping"] = damping
    for row in load_cache(args.cache):
        if all(row.get(k, implicit.get(k)) == v for k, v in key.items()):
            return row
    if args.cached_only:
        return None
    cmd = [binary, os.path.join(data, "model.bin"), os.path.join(data, "calib.tok.bin"),
           os.path.join(data, "wikitext2_test.tok.bin"), "--format", fmt, "--method", method, "--beam", str(beam),
           "--threads", str(args.threads), "--ppl-windows", str(args.windows), "--calib-windows",
           str(args.calib_windows), "--seed", str(seed), "--epochs", str(epochs), "--hessian-damping",
           str(hdamp), "--json"]
    if method == "oaem":
        cmd += ["--em-damping", str(damping)]
    print(" ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    if args.cache:
        with open(args.cache, "a") as f:
            f.write(json.dumps(row) + "\n")
    return row


def load_cache(path):
    """Rows of earlier runs (one JSON object per line), so an interrupted table resumes."""
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--data", default=os.path.join("..", "shared", "bench"))
    ap.add_argument("--windows", type=int, default=200)
    ap.add_argument("--calib-windows", type=int, default=128)
    ap.add_argument("--em-damping", default="1.0", help="OA-EM damping values, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--formats", default="1x8g4,2x8g8,3x8g8")
    ap.add_argument("--beams", default="1,8")
    ap.add_argument("--epochs", default="10", help="aq_optimize epochs, comma-separated (0 = initialisation only)")
    ap.add_argument("--seeds", default="1", help="seeds, comma-separated")
    ap.add_argument("--hessian-damping", default="0", help="AQ_OPT_HESSIAN_DAMPING values of the optimiser, comma-separated")
    ap.add_argument("--out", default=os.path.join("docs", "results.md"))
    ap.add_argument("--cache", default="", help="JSON-lines file of finished runs, reused and appended")
    ap.add_argument("--cached-only", action="store_true", help="only tabulate the rows found in --cache")
    args = ap.parse_args()
    binary = os.path.join(args.build, "examples", "llama-quantize")
    dampings = [float(d) for d in args.em_damping.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    hdamps = [float(d) for d in args.hessian_damping.split(",")]
    groups, rows = [], []  # groups: (format, beam, epochs, λ_H, method, damping, [rows by seed])
    for fmt in args.formats.split(","):
        for beam in [int(b) for b in args.beams.split(",")]:
            for epochs in [int(e) for e in args.epochs.split(",")]:
                for hdamp in hdamps:
                    for method, damping in [("greedy", None)] + [("oaem", d) for d in dampings]:
                        by_seed = []
                        for seed in seeds:
                            r = run(binary, args.data, fmt, method, beam, damping, seed, epochs, hdamp, args)
                            if r is None:
                                continue
                            by_seed.append(r)
                            rows.append(r)
                            print(f"  -> {fmt} beam {beam} epochs {epochs} λ_H {hdamp:g} {method} seed {seed}: "
                                  f"ppl {r['ppl_quantized']:.3f} ({r['seconds']:.0f} s)", file=sys.stderr, flush=True)
                        if by_seed:
                            groups.append((fmt, beam, epochs, hdamp, method, damping, by_seed))
    if not rows:
        sys.exit("no runs (with --cached-only: none of the requested rows is in --cache)")
    fp32 = rows[0]["ppl_fp32"]
    scope = "all windows" if args.windows == 0 else f"first {args.windows} windows"
    lines = [
        BEGIN,
        f"Generated by `bench/model_ppl.py` (libaqinit {rows[0]['version']}): calibration {args.calib_windows} "
        f"windows × 256 tokens of `calib.tok.bin`, perplexity on the {scope} "
        "of WikiText-2 test; seeds " + ", ".join(map(str, seeds)) + " where run. λ_H: the optimiser's "
        "Hessian damping (`--hessian-damping`, 0 = the library default).",
        "",
        f"fp32 perplexity: **{fp32:.3f}**",
        "",
        "| format | bits/param | beam | epochs | λ_H | method | OA-EM λ | perplexity per seed | mean | mean layer rel. error | held-out calib / test | quantization time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fmt, beam, epochs, hdamp, method, damping, by_seed in groups:
        oaem = method == "oaem"
        ppl = [r["ppl_quantized"] for r in by_seed]
        err = statistics.mean(r["mean_layer_rel_error"] for r in by_seed)
        secs = statistics.mean(r["seconds"] for r in by_seed)
        held = [r for r in by_seed if r.get("heldout_calib_rel_error", -1) > 0 and r.get("heldout_test_rel_error", -1) > 0]
        held_text = (f"{statistics.mean(r['heldout_calib_rel_error'] for r in held):.5f} / "
                     f"{statistics.mean(r['heldout_test_rel_error'] for r in held):.5f}") if held else ""
        lines.append(f"| {fmt} | {by_seed[0]['bpp']:.3f} | {beam} | {epochs} | {hdamp:g} | {'OA-EM' if oaem else 'GREEDY'} | "
                     f"{format(damping, 'g') if oaem else ''} | {' / '.join(f'{p:.3f}' for p in ppl)} | "
                     f"{statistics.mean(ppl):.3f} | {err:.5f} | {held_text} | {secs:.0f} |")
    lines += ["", "Paired by seed, OA-EM (first λ) against GREEDY: perplexity difference in %, negative = OA-EM lower.",
              "", "| format | beam | epochs | λ_H | seeds | OA-EM − GREEDY per seed (%) | mean (%) | OA-EM lower on |",
              "|---|---|---|---|---|---|---|---|"]
    for fmt, beam, epochs, hdamp, method, damping, by_seed in groups:
        if method != "oaem" or damping != dampings[0]:
            continue
        base = next((g[6] for g in groups if g[:5] == (fmt, beam, epochs, hdamp, "greedy")), [])
        greedy = {r.get("seed", 1): r["ppl_quantized"] for r in base}
        pairs = [(100.0 * (r["ppl_quantized"] / greedy[r.get("seed", 1)] - 1.0)) for r in by_seed
                 if r.get("seed", 1) in greedy]
        if not pairs:
            continue
        lines.append(f"| {fmt} | {beam} | {epochs} | {hdamp:g} | {len(pairs)} | {' / '.join(f'{d:+.2f}' for d in pairs)} | "
                     f"{statistics.mean(pairs):+.2f} | {sum(d < 0 for d in pairs)} of {len(pairs)} |")
    total = sum(r["seconds"] for r in rows) / 60
    lines += ["", f"Machine: 2 cores shared with other jobs (times up to several × slower than alone); "
              f"quantization {total:.0f} min in all.", END]
    table = "\n".join(lines)
    text = open(args.out).read() if os.path.exists(args.out) else f"# Results\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + table + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + table + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(table)


if __name__ == "__main__":
    main()
