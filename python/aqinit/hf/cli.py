"""aqinit-hf: Hugging Face Llama checkpoints from the command line (numpy only).

    aqinit-hf convert-llama2c MODEL.bin OUT_DIR [--tokenizer tokenizer.model]
    aqinit-hf ppl DIR --tokens TOKENS.bin [--windows N] [--seq-len L] [--json]

Each subcommand is a pair: _add_<name>(subparsers) declares its arguments and sets func to
_run_<name>(args), which returns the exit status. A later `quantize` subcommand goes into
SUBCOMMANDS the same way."""
import argparse
import json
import math
import sys
import time

from .convert import convert_llama2c
from .model import load_llama
from .perplexity import mean_nll, read_tokens


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


SUBCOMMANDS = [_add_convert, _add_ppl]  # a later _add_quantize joins here


def main(argv=None):
    parser = argparse.ArgumentParser(prog="aqinit-hf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError, KeyError) as e:
        print(f"aqinit-hf {args.command}: {e}", file=sys.stderr)
        return 1
