# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""The real benchmark models (../shared/bench, skipped when absent) converted to Hugging Face
checkpoints reproduce the reference perplexities of ../shared/bench/README.md with the HF forward."""
import math
import os

import pytest

from aqinit.hf import convert_llama2c, load_llama, mean_nll, read_tokens

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
                     "shared", "bench")

pytestmark = pytest.mark.skipif(not os.path.isdir(BENCH), reason=f"no benchmark data at {BENCH}")


def converted_nll(tmp_path, model, tokens, seq_len, windows):
    convert_llama2c(os.path.join(BENCH, model), tmp_path / "hf")
    return mean_nll(load_llama(tmp_path / "hf"), read_tokens(os.path.join(BENCH, tokens)), seq_len, windows)


def test_tiny_model_on_its_calibration_text(tmp_path):
    """README: tiny/model.bin, tiny/calib.tok.bin, all 512 windows of 128: mean NLL 5.66974, perplexity 289.96."""
    nll, count = converted_nll(tmp_path, os.path.join("tiny", "model.bin"), os.path.join("tiny", "calib.tok.bin"),
                               128, None)
    assert count == 512 * 127
    assert abs(nll - 5.66974) < 1e-5
    assert pytest.approx(289.96, rel=1e-3) == math.exp(nll)


def test_model_first_40_windows_of_wikitext2(tmp_path):
    """README: model.bin, wikitext2_test.tok.bin, first 40 windows of 256: mean NLL 4.72042, perplexity 112.215."""
    nll, count = converted_nll(tmp_path, "model.bin", "wikitext2_test.tok.bin", 256, 40)
    assert count == 40 * 255
    assert abs(nll - 4.72042) < 1e-5
    assert pytest.approx(112.215, rel=1e-3) == math.exp(nll)
