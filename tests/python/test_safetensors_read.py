# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""read_safetensors on what Hugging Face checkpoints hold (BF16) and on damaged files."""
import json
import struct

import numpy as np
import pytest

from aqinit.safetensors import read_safetensors, write_safetensors


def raw_file(path, header, data):
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def test_bf16_is_widened_exactly_to_float32(tmp_path):
    x = np.array([1.0, -2.5, 3.140625, 1e-3, 65504.0, -0.0], dtype=np.float32)
    bf16 = (x.view(np.uint32) >> 16).astype("<u2")  # truncated to bf16: the first three are exact, the rest are not
    expect = (bf16.astype(np.uint32) << 16).view(np.float32)
    raw_file(tmp_path / "b.safetensors", {"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}},
             bf16.tobytes())
    out, _ = read_safetensors(tmp_path / "b.safetensors")
    assert out["w"].dtype == np.float32 and out["w"].shape == (2, 3)
    np.testing.assert_array_equal(out["w"].ravel(), expect)
    np.testing.assert_array_equal(out["w"].ravel()[:3], x[:3])


def test_round_trip_and_read_only_dtypes(tmp_path):
    t = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([-1, 2], dtype=np.int8)}
    write_safetensors(tmp_path / "t.safetensors", t, {"format": "pt"})
    out, meta = read_safetensors(tmp_path / "t.safetensors")
    assert meta == {"format": "pt"}
    for k in t:
        assert out[k].dtype == t[k].dtype
        np.testing.assert_array_equal(out[k], t[k])
    raw_file(tmp_path / "d.safetensors", {"d": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}},
             np.array([0.5, 2.0], "<f8").tobytes())
    np.testing.assert_array_equal(read_safetensors(tmp_path / "d.safetensors")[0]["d"], [0.5, 2.0])


@pytest.mark.parametrize("entry", [
    {"dtype": "F32", "shape": [2], "data_offsets": [0, 12]},        # bytes do not match the shape
    {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},        # beyond the file
    {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]},         # end before begin
    {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]},        # negative dimension
    {"dtype": "Q4", "shape": [1], "data_offsets": [0, 4]},          # unknown dtype
    {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]},         # malformed shape
    {"dtype": "F32", "shape": [2], "data_offsets": [0]},            # malformed offsets
    "F32",                                                          # not an object
])
def test_malformed_entries_are_value_errors(tmp_path, entry):
    raw_file(tmp_path / "m.safetensors", {"x": entry}, b"\0" * 8)
    with pytest.raises(ValueError):
        read_safetensors(tmp_path / "m.safetensors")


def test_header_that_is_not_json_is_a_value_error(tmp_path):
    with open(tmp_path / "j.safetensors", "wb") as f:
        f.write(struct.pack("<Q", 4) + b"\xff{[x")
    with pytest.raises(ValueError):
        read_safetensors(tmp_path / "j.safetensors")
