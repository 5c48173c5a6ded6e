# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Reading a Hugging Face checkpoint directory: config.json and its safetensors weights, either one
model.safetensors or shards listed by model.safetensors.index.json ({"weight_map": {name: file}}),
the two layouts transformers' save_pretrained writes."""
import json
import os

import numpy as np

from ..safetensors import read_safetensors

SINGLE, INDEX = "model.safetensors", "model.safetensors.index.json"


def read_config(path):
    """The dict of @path/config.json."""
    with open(os.path.join(path, "config.json")) as f:
        return json.load(f)


def _shards(path):
    """{file: [tensor names]} to read, None for "every tensor of model.safetensors"."""
    index = os.path.join(path, INDEX)
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        shards = {}
        for name, file in weight_map.items():
            shards.setdefault(file, []).append(name)
        return shards
    if os.path.exists(os.path.join(path, SINGLE)):
        return {SINGLE: None}
    raise FileNotFoundError(f"{path}: neither {SINGLE} nor {INDEX} (only safetensors checkpoints are read)")


def read_tensors(path):
    """{name: array} of every weight of the checkpoint directory @path: floating-point tensors as
    float32 (float16, bfloat16 widened), integer ones (AQLM's codes) in their stored dtype. KeyError when the index names a tensor its shard lacks."""
    out = {}
    for file, names in _shards(path).items():
        tensors, _ = read_safetensors(os.path.join(path, file))
        for name in tensors if names is None else names:
            if name not in tensors:
                raise KeyError(f"{path}: {INDEX} puts {name} in {file}, which does not hold it")
            t = tensors[name]  # integer tensors (AQLM's codes) keep their dtype
            out[name] = np.ascontiguousarray(t, dtype=np.float32 if t.dtype.kind == "f" else t.dtype)
    return out
