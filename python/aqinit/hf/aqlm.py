# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""AQLM checkpoints (docs/formats.md, "AQLM checkpoint (aqinit-hf quantize)"): the tensors of a
quantized linear in the layout of AQLM's convert_to_hf.py (codes packed by pack_int_data), the
quantization_config transformers' AqlmConfig reads, a safetensors writer that copies tensors byte
for byte (BF16 included) and shards them, and AqlmLinear, the linear layer read back from such a
checkpoint, computed by the library (aq_quant_matmul)."""
import json
import os
import struct

import numpy as np

from ..context import Context
from ..format import Format
from ..quant import Quant
from ..safetensors import _DTYPES, _tensor_entry
from .checkpoint import INDEX, SINGLE

QUANT_SUFFIXES = ("codes", "codebooks", "scales")
DEFAULT_MAX_SHARD_SIZE = 5 * 10**9  # bytes, as save_pretrained's "5GB"


def aqlm_tensors(quant, codebook_dtype=np.float16):
    """{"codes", "codebooks", "scales": array} of a quantized layer as AQLM stores it: codes int8
    (B <= 8) or int16, [O/g_o, I/g, M], packed as AQLM's pack_int_data does (a code c >= 2^(B-1)
    is stored as c - 2^B, the B-bit two's complement, so unpack_int_data's c mod 2^B restores it);
    codebooks [M, 2^B, g_o, g] and scales [O/g_o, 1, 1, 1] in @codebook_dtype (OverflowError for a
    value beyond its range)."""
    bits = quant.format.struct.bits_per_codebook
    codes = quant.codes.astype(np.int32)
    codes[codes >= 1 << (bits - 1)] -= 1 << bits  # pack_int_data: -32 for code 32 of B = 6
    with np.errstate(over="ignore"):
        books = quant.codebooks.astype(codebook_dtype)
        scales = quant.scales.reshape(-1, 1, 1, 1).astype(codebook_dtype)
    if not (np.isfinite(books).all() and np.isfinite(scales).all()):
        raise OverflowError(f"codebooks or scales are beyond the range of {np.dtype(codebook_dtype)}")
    return {"codes": codes.astype(np.int8 if bits <= 8 else np.int16), "codebooks": books,
            "scales": scales}


def quantization_config(fmt, not_quantized):
    """config.json's quantization_config of AQLM for the Format @fmt."""
    s = Format._of(fmt).struct
    return {"quant_method": "aqlm", "nbits_per_codebook": s.bits_per_codebook, "num_codebooks": s.num_codebooks,
            "in_group_size": s.in_group_size, "out_group_size": s.out_group_size,
            "linear_weights_not_to_quantize": list(not_quantized)}


# ---- safetensors, raw: {name: (dtype string, shape, bytes)} ----

def read_raw(path):
    """({name: (dtype, shape, bytes)} in file order, metadata) of a safetensors file, data unconverted."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8]) if len(raw) >= 8 else (len(raw),)
    if 8 + n > len(raw):
        raise ValueError(f"{path}: not a safetensors file or a truncated header")
    header = json.loads(raw[8:8 + n])
    metadata, base, out = header.pop("__metadata__", {}), 8 + n, {}
    for name, info in header.items():
        _, shape, begin, end = _tensor_entry(path, name, info, len(raw) - base)
        out[name] = (info["dtype"], shape, raw[base + begin:base + end])
    return out, metadata


def raw_entry(a):
    """(dtype, shape, bytes) of a numpy array."""
    a = np.ascontiguousarray(a)
    return _DTYPES[a.dtype], list(a.shape), a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()


def write_raw(path, entries, metadata=None):
    header, offset = {}, 0
    for name, (dtype, shape, data) in entries.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _, _, data in entries.values():
            f.write(data)
    os.replace(tmp, path)


def write_checkpoint_tensors(out_dir, entries, max_shard_size=DEFAULT_MAX_SHARD_SIZE):
    """Write @entries ({name: (dtype, shape, bytes)}, in order) to @out_dir as model.safetensors or,
    when they exceed @max_shard_size bytes, as model-0000i-of-0000n.safetensors shards (a new shard
    starts before a tensor that would overflow the current one) plus model.safetensors.index.json,
    metadata {"format": "pt"}. Earlier files of either layout are removed. Returns the file names."""
    shards, size = [[]], 0
    for name, (_, _, data) in entries.items():
        if shards[-1] and size + len(data) > max_shard_size:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += len(data)
    for old in os.listdir(out_dir):
        if old == INDEX or (old.startswith("model") and old.endswith(".safetensors")):
            os.remove(os.path.join(out_dir, old))
    files = [SINGLE] if len(shards) == 1 else \
        [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for file, names in zip(files, shards):
        write_raw(os.path.join(out_dir, file), {n: entries[n] for n in names}, {"format": "pt"})
    if len(files) > 1:
        index = {"metadata": {"total_size": sum(len(e[2]) for e in entries.values())},
                 "weight_map": {n: file for file, names in zip(files, shards) for n in names}}
        with open(os.path.join(out_dir, INDEX), "w") as f:
            json.dump(index, f, indent=2)
            f.write("\n")
    return files


# ---- reading back ----

_CONTEXT = []


def _context():
    """The context of the AqlmLinear objects (all cores, created on first use)."""
    if not _CONTEXT:
        _CONTEXT.append(Context(threads=0, seed=0))
    return _CONTEXT[0]


def unpack_codes(codes, bits):
    """AQLM's unpack_int_data: the unsigned codes (uint8 or uint16) of packed int8/int16 codes."""
    return (np.asarray(codes).astype(np.int64) % (1 << bits)).astype(np.uint8 if bits <= 8 else np.uint16)


class AqlmLinear:
    """y = x Ŵᵀ (+ b) of a quantized linear read from an AQLM checkpoint, through aq_quant_matmul."""

    def __init__(self, codes, codebooks, scales, bias=None, ctx=None):
        P, J, M = codes.shape
        M2, K, go, g = codebooks.shape
        bits = int(K).bit_length() - 1
        if M2 != M or K != 1 << bits or np.asarray(scales).size != P:
            raise ValueError(f"AQLM tensors do not agree: codes {codes.shape}, codebooks {codebooks.shape}, "
                             f"scales {np.asarray(scales).shape}")
        self.quant = Quant(ctx or _context(), f"{M}x{bits}g{g}o{go}", P * go, J * g)
        self.quant.codes = unpack_codes(codes, bits)
        self.quant.codebooks = np.asarray(codebooks, dtype=np.float32)
        self.quant.scales = np.asarray(scales, dtype=np.float32).reshape(-1)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32)

    @classmethod
    def from_tensors(cls, tensors, prefix):
        """The linear @prefix ("model.layers.0.self_attn.q_proj.") of a {name: array} dict."""
        return cls(*(tensors[prefix + s] for s in QUANT_SUFFIXES), tensors.get(prefix + "bias"))

    @property
    def shape(self):
        return self.quant.shape

    def __call__(self, x):
        y = self.quant.matmul(x)
        return y if self.bias is None else y + self.bias
