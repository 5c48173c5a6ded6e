# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""aqinit-hf: Hugging Face Llama checkpoints from the command line (numpy only).

    aqinit-hf convert-llama2c MODEL.bin OUT_DIR [--tokenizer tokenizer.model]
    aqinit-hf ppl DIR --tokens TOKENS.bin [--windows N] [--seq-len L] [--json]
    aqinit-hf quantize HF_DIR --calib TOKENS.bin [--format 2x8g8] [--method oaem|greedy] [--beam 1]
                       [--epochs 10] [--calib-windows 128] [--seq-len L] [--threads 0] [--seed 1]
                       [--em-damping 1] [--codebook-dtype float16|float32] [--max-shard-size BYTES]
                       [--out OUT_DIR] [--resume]

Each subcommand is a pair: _add_<name>(subparsers) declares its arguments and sets func to
_run_<name>(args), which returns the exit status; SUBCOMMANDS lists them.

ppl reads full-precision and AQLM checkpoints alike (the quantized linears computed by the library)."""
import argparse
import json
import math
import sys
import time

from ..errors import AqError
from .convert import convert_llama2c
from .model import load_llama
from .perplexity import mean_nll, read_tokens
from .quantize import quantize_checkpoint


def _run_convert(args):
    config = convert_llama2c(args.model, args.out_dir, args.tokenizer)
    print(f"{args.out_dir}: {config['num_hidden_layers']} layers, hidden {config['hidden_size']}, "
          f"vocab {config['vocab_size']}, tied {config['tie_word_embeddings']}")
    return 0


def _add_convert(sub):
    p = sub.add_parser("convert-llama2c", help="a llama2.c version-0 checkpoint -> an HF Llama directory")
    p.add_argument("model", metavar="MODEL.bin")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--tokenizer", metavar="tokenizer.model", help="SentencePiece model to copy alongside")
    p.set_defaults(func=_run_convert)


def _run_ppl(args):
    model = load_llama(args.dir)
    seq_len = args.seq_len or model.config.max_position_embeddings
    start = time.perf_counter()
    nll, predicted = mean_nll(model, read_tokens(args.tokens), seq_len, args.windows)
    seconds = time.perf_counter() - start
    result = {"perplexity": math.exp(nll), "mean_nll": nll, "tokens": predicted,
              "windows": predicted // (seq_len - 1), "seq_len": seq_len, "seconds": round(seconds, 3)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"perplexity {result['perplexity']:.4f}  mean NLL {nll:.5f}  tokens {predicted} "
              f"({result['windows']} windows of {seq_len})  {seconds:.1f} s")
    return 0


def _add_ppl(sub):
    p = sub.add_parser("ppl", help="perplexity by the protocol of the benchmark README")
    p.add_argument("dir", metavar="DIR", help="checkpoint directory (config.json + safetensors)")
    p.add_argument("--tokens", required=True, metavar="TOKENS.bin", help="uint16 little-endian token ids")
    p.add_argument("--windows", type=int, default=0, help="first N windows only (default 0: all)")
    p.add_argument("--seq-len", type=int, default=0, help="window length (default: max_position_embeddings)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_ppl)


# (option, type, default, help) of quantize; each passed to quantize_checkpoint by its dest name
_QUANTIZE_OPTIONS = [
    ("--format", str, "2x8g8", "MxB[gG][oGO]"), ("--beam", int, 1, None), ("--epochs", int, 10, None),
    ("--calib-windows", int, 128, "first N windows of the calibration tokens"),
    ("--seq-len", int, 0, "window length (default: max_position_embeddings)"), ("--threads", int, 0, None),
    ("--seed", int, 1, None), ("--em-damping", float, 1.0, "AQ_OPT_EM_DAMPING (llama-quantize's default 1)"),
    ("--max-shard-size", int, 5 * 10**9, "bytes per safetensors shard")]


def _run_quantize(args):
    out = args.out or args.hf_dir.rstrip("/") + f"-aqlm-{args.format}"
    kw = {o[2:].replace("-", "_"): getattr(args, o[2:].replace("-", "_")) for o, *_ in _QUANTIZE_OPTIONS}
    kw["seq_len"] = kw["seq_len"] or None
    summary = quantize_checkpoint(args.hf_dir, args.calib, out, method=args.method, resume=args.resume,
                                  codebook_dtype=args.codebook_dtype, **kw)
    errors = [r["final_error"] for r in summary["layers"] if math.isfinite(r["final_error"])]
    print(f"{out}: {len(summary['layers'])} layers to {summary['format']}, mean layer error "
          f"{sum(errors) / max(1, len(errors)):.5f}, {summary['seconds']:.1f} s, files {', '.join(summary['files'])}")
    return 0


def _add_quantize(sub):
    p = sub.add_parser("quantize", help="quantize an HF Llama checkpoint to an AQLM checkpoint")
    p.set_defaults(func=_run_quantize)
    p.add_argument("hf_dir", metavar="HF_DIR")
    p.add_argument("--calib", required=True, metavar="TOKENS.bin", help="calibration tokens, uint16 little-endian")
    p.add_argument("--method", choices=("oaem", "greedy"), default="oaem")
    p.add_argument("--codebook-dtype", choices=("float16", "float32"), default="float16")
    for option, kind, default, text in _QUANTIZE_OPTIONS:
        p.add_argument(option, type=kind, default=default, help=text)
    p.add_argument("--out", metavar="OUT_DIR", help="default: HF_DIR-aqlm-FORMAT")
    p.add_argument("--resume", action="store_true", help="keep and reuse finished layers in OUT_DIR/.aqinit-resume")


SUBCOMMANDS = [_add_convert, _add_ppl, _add_quantize]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="aqinit-hf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError, KeyError, AqError) as e:
        print(f"aqinit-hf {args.command}: {e}", file=sys.stderr)
        return 1
