# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Quantize a Hugging Face Llama checkpoint with aq_pipeline and write an AQLM checkpoint.

The numpy forward (model.py) is the pipeline's host. Calibration is true-sequential, as
examples/llama/llama-quantize.c does it: layer k's Hessian comes from the model whose earlier
layers are already replaced by their dequantized weights; order per block q, k, v, o, gate, up,
down. The calibration windows are the first @calib_windows consecutive windows of @seq_len tokens
of the calibration stream (the remainder dropped), each window added to the Hessian on its own,
as examples/common/calibrate.c does. The residual stream entering the current block is kept for
all windows, so each block's earlier blocks are run once; q/k/v (one input) and gate/up (one
input) share one Hessian, computed once."""
import json
import os
import shutil
import sys
import time

import numpy as np

from ..context import Context
from ..hessian import Hessian
from ..options import Options
from ..constants import INIT_GREEDY, INIT_OA_EM
from ..pipeline import Pipeline
from ..format import Format
from .aqlm import DEFAULT_MAX_SHARD_SIZE, aqlm_tensors, quantization_config, raw_entry, read_raw, \
    write_checkpoint_tensors
from .checkpoint import _shards, read_config
from .model import PROJECTIONS, Linear, LlamaModel, rms_norm
from .perplexity import read_tokens

TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
RESUME_DIR = ".aqinit-resume"
_FIRST_OF_INPUT = (0, 0, 0, 3, 4, 4, 6)  # q, k, v read one activation; gate, up another
METHODS = {"oaem": INIT_OA_EM, "greedy": INIT_GREEDY}


class _Stop(Exception):
    def __init__(self, X):
        super().__init__()
        self.X = X


def _raise_input(X):
    raise _Stop(X)


class _Host:
    """The pipeline's host over a LlamaModel and a [windows, seq_len] grid of calibration tokens."""

    def __init__(self, model, grid, ctx, codebook_dtype, progress, batch_tokens=4096):
        self.model, self.grid, self.ctx, self.progress = model, grid, ctx, progress
        self.codebook_dtype = codebook_dtype
        self.names = [name for name, _ in model.linears()]
        self.dense = [linear for _, linear in model.linears()]
        self.tables = model.tables(grid.shape[1])
        self.step = max(1, batch_tokens // grid.shape[1])
        self.x, self.x_block = None, -1  # residual stream entering block x_block, [windows, n, hidden]
        self.shared, self.shared_for = None, -1
        self.tensors, self.reports, self.start = {}, [], time.perf_counter()

    def num_layers(self):
        return len(self.names)

    def layer_info(self, k):
        return (self.names[k], *self.dense[k].shape)

    def get_weight(self, k):
        return self.dense[k].weight

    def _advance(self, block):
        """Bring self.x to the input of @block (earlier blocks are quantized by now)."""
        if self.x is None:
            self.x, self.x_block = self.model.embed[self.grid], 0
        while self.x_block < block:
            layer = self.model.layers[self.x_block]
            for s in range(0, len(self.x), self.step):
                self.x[s:s + self.step] = self.model.block(layer, self.x[s:s + self.step], self.tables)
            self.x_block += 1

    def _input(self, layer, kind, x):
        """The input [windows · n, in] of projection @kind of @layer for the residual stream @x."""
        m, eps, key = self.model, self.model.config.rms_norm_eps, PROJECTIONS[kind]
        if kind < 3:
            h = rms_norm(x, layer["input_layernorm"], eps)
            return h.reshape(-1, h.shape[-1])
        linears = layer["linears"]
        kept, linears[key] = linears[key], _raise_input
        try:
            if kind == 3:
                m._attention(layer, rms_norm(x, layer["input_layernorm"], eps), *self.tables)
            x = x + m._attention(layer, rms_norm(x, layer["input_layernorm"], eps), *self.tables)
            h = rms_norm(x, layer["post_attention_layernorm"], eps)
            if kind < 6:
                return h.reshape(-1, h.shape[-1])
            m._mlp(layer, h)
        except _Stop as stop:
            return stop.X
        finally:
            linears[key] = kept
        raise AssertionError("the forward did not reach the captured linear")

    def calibrate(self, k, hessian):
        block, kind = divmod(k, len(PROJECTIONS))
        group = block * len(PROJECTIONS) + _FIRST_OF_INPUT[kind]
        if self.shared_for != group:
            self._advance(block)
            self.shared, self.shared_for = Hessian(self.ctx, hessian.n_inputs), group
            n = self.grid.shape[1]
            for s in range(0, len(self.x), self.step):
                X = np.ascontiguousarray(self._input(self.model.layers[block], kind, self.x[s:s + self.step]),
                                         dtype=np.float32)
                for w in range(0, len(X), n):  # window by window, as calibrate.c
                    self.shared.add(X[w:w + n])
        hessian.merge(self.shared)

    def put_result(self, k, quant, report):
        dense = self.dense[k]
        self.model.set_linear(self.names[k], Linear(quant.dequantize(), dense.bias))
        self.tensors[self.names[k]] = aqlm_tensors(quant, self.codebook_dtype)
        self.reports.append(dict(report, name=self.names[k]))
        if self.progress is not None:
            rows, cols = dense.shape
            print(f"  [{k + 1:3d}/{len(self.names)}] {self.names[k]:32s} {rows}x{cols} "
                  f"{'(resumed) ' if report['resumed'] else ''}init {report['init_error']:.5f}  "
                  f"final {report['final_error']:.5f}  {report['init_seconds'] + report['optimize_seconds']:.2f} s"
                  f"  [{time.perf_counter() - self.start:.0f} s]", file=self.progress, flush=True)


def calibration_grid(tokens, seq_len, windows):
    """[count, seq_len] of the first @windows windows (None or 0: all) of the token stream."""
    tokens = read_tokens(tokens) if isinstance(tokens, (str, os.PathLike)) else np.asarray(tokens, dtype=np.int64)
    available = len(tokens) // seq_len
    count = available if not windows else min(int(windows), available)
    if count <= 0:
        raise ValueError(f"{len(tokens)} calibration tokens hold no window of {seq_len}")
    return tokens[:count * seq_len].reshape(count, seq_len)


def quantize_checkpoint(hf_dir, calib_tokens, out_dir, format="2x8g8", method="oaem", beam=1, epochs=10,
                        calib_windows=128, seq_len=None, threads=0, seed=1, resume=False, progress=sys.stderr,
                        em_damping=1.0, codebook_dtype=np.float16, max_shard_size=DEFAULT_MAX_SHARD_SIZE):
    """Quantize every q/k/v/o/gate/up/down projection of the HF Llama checkpoint @hf_dir to @format
    and write the AQLM checkpoint @out_dir (docs/formats.md). @calib_tokens: a token file (uint16)
    or an array of ids; @seq_len defaults to max_position_embeddings; @em_damping defaults to
    llama-quantize's 1 (the library's own default is 0.01). With @resume, finished layers are kept
    in and reused from @out_dir/.aqinit-resume (the library checks their provenance). Returns a
    summary dict (layers' reports, seconds, files)."""
    fmt = Format._of(format)
    if method not in METHODS:
        raise ValueError(f"method {method!r}: expected one of {sorted(METHODS)}")
    config = read_config(hf_dir)
    model = LlamaModel.from_pretrained(hf_dir)
    grid = calibration_grid(calib_tokens, seq_len or model.config.max_position_embeddings, calib_windows)
    os.makedirs(out_dir, exist_ok=True)
    start = time.perf_counter()
    with Context(threads=threads, seed=seed) as ctx:
        options = Options(ctx, INIT_METHOD=METHODS[method], BEAM_WIDTH=beam, MAX_EPOCHS=epochs,
                          EM_DAMPING=em_damping)
        host = _Host(model, grid, ctx, codebook_dtype, progress)
        resume_dir = os.path.join(out_dir, RESUME_DIR) if resume else None
        if resume_dir:
            os.makedirs(resume_dir, exist_ok=True)
        if progress is not None:
            print(f"quantizing {host.num_layers()} linear layers of {hf_dir} to {fmt.text} ({method}, beam {beam}, "
                  f"{epochs} epochs, {len(grid)} calibration windows of {grid.shape[1]})", file=progress, flush=True)
        Pipeline(ctx, fmt, host, options, resume_dir=resume_dir).run()
    seconds = time.perf_counter() - start
    files = write_aqlm_checkpoint(hf_dir, out_dir, config, fmt, host.tensors, codebook_dtype, max_shard_size)
    if progress is not None:
        print(f"wrote {out_dir} ({len(files)} safetensors file(s)) in {seconds:.1f} s of quantization",
              file=progress, flush=True)
    return {"format": fmt.text, "layers": host.reports, "seconds": seconds, "files": files,
            "calib_windows": len(grid), "seq_len": int(grid.shape[1])}


def write_aqlm_checkpoint(hf_dir, out_dir, config, fmt, quantized, codebook_dtype=np.float16,
                          max_shard_size=DEFAULT_MAX_SHARD_SIZE):
    """Write @out_dir: the tensors of @hf_dir in their order, each quantized linear's weight
    replaced by {name}.codes/.codebooks/.scales (@quantized: {"model.layers.0.mlp.up_proj":
    aqlm_tensors}), the others copied byte for byte; config.json with quantization_config; the
    tokenizer files. Returns the safetensors file names."""
    entries, dense = {}, []
    for file, names in _shards(hf_dir).items():
        raw, _ = read_raw(os.path.join(hf_dir, file))
        for name in raw if names is None else names:
            base = name[:-len(".weight")]
            if name.endswith(".weight") and base in quantized:
                for suffix, a in quantized[base].items():
                    entries[f"{base}.{suffix}"] = raw_entry(a)
            else:
                entries[name] = raw[name]
                dense.append(name)
    if "lm_head.weight" not in dense:  # tied: AQLM's convert_to_hf.py lists it all the same
        dense.append("lm_head.weight")
    files = write_checkpoint_tensors(out_dir, entries, max_shard_size)
    out_config = dict(config, quantization_config=quantization_config(fmt, dense),
                      torch_dtype=str(np.dtype(codebook_dtype)))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(out_config, f, indent=2)
        f.write("\n")
    for name in TOKENIZER_FILES:
        if os.path.exists(os.path.join(hf_dir, name)):
            shutil.copyfile(os.path.join(hf_dir, name), os.path.join(out_dir, name))
    return files
