# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""aqinit.hf.perplexity: the protocol of ../shared/bench/README.md on a random model, against a
direct computation with llama2.c's forward (consecutive windows, remainder dropped, tokens
2..seq_len predicted, no BOS, one mean over all predicted tokens)."""
import math

import numpy as np
import pytest

from aqinit.hf import convert_llama2c, load_llama, mean_nll, perplexity, read_tokens
from test_hf_llama2c import SMALL, llama2c_logits, random_llama2c, write_llama2c


def reference_nll(header, p, tokens, seq_len, windows):
    total = 0.0
    for w in range(windows):
        window = tokens[w * seq_len:(w + 1) * seq_len]
        z = llama2c_logits(header, p, window)[:-1]
        logz = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
        total += float(np.sum(logz - z[np.arange(seq_len - 1), window[1:]]))
    return total / (windows * (seq_len - 1))


@pytest.fixture
def setup(tmp_path):
    header, p = random_llama2c(np.random.default_rng(7), False, **SMALL)
    write_llama2c(tmp_path / "model.bin", header, p)
    convert_llama2c(tmp_path / "model.bin", tmp_path / "hf")
    tokens = np.random.default_rng(8).integers(0, SMALL["vocab"], size=5 * 12 + 7)  # 5 windows of 12 + a remainder
    return header, p, load_llama(tmp_path / "hf"), tokens


def test_mean_nll_follows_the_protocol(setup):
    header, p, model, tokens = setup
    for windows, used in [(None, 5), (0, 5), (3, 3), (99, 5)]:
        nll, count = mean_nll(model, tokens, 12, windows)
        assert count == used * 11
        assert abs(nll - reference_nll(header, p, tokens, 12, used)) < 1e-5
    # batching windows through the forward does not change the result
    assert abs(mean_nll(model, tokens, 12, batch_tokens=1)[0] - mean_nll(model, tokens, 12)[0]) < 1e-6
    assert perplexity(model, tokens, 12, 3) == pytest.approx(math.exp(mean_nll(model, tokens, 12, 3)[0]), rel=1e-12)


def test_too_few_tokens_or_a_window_too_short(setup):
    _, _, model, tokens = setup
    with pytest.raises(ValueError, match="no window"):
        mean_nll(model, tokens[:11], 12)
    with pytest.raises(ValueError, match="at least two"):
        mean_nll(model, tokens, 1)


def test_read_tokens_is_uint16_little_endian(tmp_path):
    (tmp_path / "t.bin").write_bytes(bytes([1, 0, 0, 1, 255, 255]))
    tokens = read_tokens(tmp_path / "t.bin")
    assert tokens.dtype == np.int64 and tokens.tolist() == [1, 256, 65535]
