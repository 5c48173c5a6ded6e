# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""A small safetensors writer/reader and the export of a quantized layer in AQLM's tensor layout.

safetensors: 8-byte little-endian header length, a JSON header {name: {"dtype", "shape",
"data_offsets": [begin, end]}, "__metadata__": {...}}, then the raw little-endian data."""
import json
import struct

import numpy as np

_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int8): "I8",
           np.dtype(np.int16): "I16", np.dtype(np.int32): "I32", np.dtype(np.uint8): "U8"}
_NUMPY = {v: k for k, v in _DTYPES.items()}
# Read only: F64/I64/U16 as such, BF16 (the usual dtype of Hugging Face checkpoints, which numpy
# lacks) widened exactly to float32 (a bfloat16 is the upper half of a float32).
_NUMPY_READ = dict(_NUMPY, F64=np.dtype(np.float64), I64=np.dtype(np.int64), U16=np.dtype(np.uint16),
                   BF16=np.dtype(np.uint16))


def _bf16_to_float32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def _tensor_entry(path, name, info, data_bytes):
    """(numpy dtype, shape, begin, end) of one header entry, checked: a known dtype, a shape of
    non-negative ints, 0 <= begin <= end <= the data's size and end - begin = the shape's bytes."""
    if not isinstance(info, dict) or info.get("dtype") not in _NUMPY_READ:
        raise ValueError(f"{path}: tensor {name!r}: unsupported or missing dtype")
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if (not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            or not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
        raise ValueError(f"{path}: tensor {name!r}: malformed shape or data_offsets")
    dtype, (begin, end) = _NUMPY_READ[info["dtype"]], offsets
    if not 0 <= begin <= end <= data_bytes or end - begin != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise ValueError(f"{path}: tensor {name!r}: data_offsets {offsets} do not fit its shape or the file")
    return dtype, shape, begin, end


def write_safetensors(path, tensors, metadata=None):
    """Write {name: numpy array} to @path."""
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        if a.dtype not in _DTYPES:
            raise TypeError(f"{name}: dtype {a.dtype} is not supported")
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # align the data
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path):
    """({name: numpy array}, metadata) from a safetensors file; BF16 tensors come back as float32
    (exactly). A malformed header or an entry outside the file is a ValueError."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: not a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: truncated header")
    try:
        header = json.loads(raw[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: the header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    base, out = 8 + n, {}
    for name, info in header.items():
        dtype, shape, begin, end = _tensor_entry(path, name, info, len(raw) - base)
        a = np.frombuffer(raw[base + begin:base + end], dtype=dtype.newbyteorder("<")).reshape(shape)
        out[name] = _bf16_to_float32(a) if info["dtype"] == "BF16" else a.astype(dtype)
    return out, metadata


def export_aqlm(quant, path, prefix="", codebook_dtype=np.float32):
    """Write a quantized layer as AQLM's tensors: {prefix}codes int8/int16 (two's complement of the
    unsigned codes, shape [O/g_o, I/g, M]), {prefix}codebooks [M, K, g_o, g] and {prefix}scales
    [O/g_o, 1, 1, 1]. codebook_dtype, of the codebooks and scales, is float32 or float16 (TypeError
    otherwise; OverflowError for a value beyond float16's range)."""
    if np.dtype(codebook_dtype) not in (np.float32, np.float16):
        raise TypeError(f"codebook_dtype must be float32 or float16 (got {np.dtype(codebook_dtype)})")
    codes = quant.codes
    signed = codes.view(np.int8) if codes.dtype == np.uint8 else codes.view(np.int16)
    with np.errstate(over="ignore"):  # an overflow is the OverflowError below, not a warning
        books, scales = (a.astype(codebook_dtype) for a in (quant.codebooks, quant.scales.reshape(-1, 1, 1, 1)))
    if not (np.isfinite(books).all() and np.isfinite(scales).all()):  # the library's values are finite
        raise OverflowError(f"codebooks or scales are beyond the range of {np.dtype(codebook_dtype)}")
    fmt = quant.format
    write_safetensors(path, {prefix + "codes": signed, prefix + "codebooks": books, prefix + "scales": scales},
                      {"format": fmt.text, "producer": "libaqinit", "rows": quant.shape[0], "cols": quant.shape[1]})
