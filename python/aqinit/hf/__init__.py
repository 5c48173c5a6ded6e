# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Hugging Face Llama checkpoints with numpy only (no torch, no downloads).

    convert      convert_llama2c: a llama2.c version-0 checkpoint -> an HF Llama directory
    llama2c      read_llama2c: the llama2.c format
    checkpoint   config.json and safetensors weights, single file or sharded
    config       LlamaConfig: the config fields the forward uses
    model        LlamaModel (load_llama): a float32 forward in modeling_llama's conventions
    perplexity   perplexity / mean_nll: the protocol of the benchmark data's README
    quantize     quantize_checkpoint: an HF Llama checkpoint -> an AQLM checkpoint, through aq_pipeline
    aqlm         the AQLM checkpoint layout: aqlm_tensors, sharded writing, AqlmLinear (read back)
    cli          the aqinit-hf command (python -m aqinit.hf)
"""
from .convert import convert_llama2c
from .model import LlamaModel, Linear, load_llama
from .perplexity import mean_nll, perplexity, read_tokens
from .aqlm import AqlmLinear
from .quantize import quantize_checkpoint

__all__ = ["convert_llama2c", "LlamaModel", "Linear", "load_llama", "mean_nll", "perplexity", "read_tokens",
           "AqlmLinear", "quantize_checkpoint"]
