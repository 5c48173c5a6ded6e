# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""The perplexity protocol of the benchmark data (../shared/bench/README.md): the token stream is cut
into consecutive, non-overlapping windows of seq_len tokens (the remainder dropped); in each window
tokens 2…seq_len are predicted from their prefix, no BOS added; perplexity = exp(mean negative
log-likelihood over all predicted tokens of all windows)."""
import math

import numpy as np


def read_tokens(path):
    """Token ids of a benchmark token file (uint16 little-endian) as int64."""
    return np.fromfile(path, dtype="<u2").astype(np.int64)


def _window_nll(logits, targets):
    """Sum over rows of -log softmax(logits)[target] (the sums of exponentials in float64)."""
    top = logits.max(axis=-1, keepdims=True)
    logz = np.log(np.exp(logits - top).sum(axis=-1, dtype=np.float64)) + top[..., 0]
    picked = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return float(np.sum(logz - picked))


def mean_nll(model, tokens, seq_len, windows=None, batch_tokens=4096):
    """(mean NLL, number of predicted tokens) of @model (a callable token ids [batch, seq_len] ->
    logits [batch, seq_len, vocab]) on the first @windows windows (None or 0: all of them) of
    @tokens; @batch_tokens bounds how many tokens go through one forward call."""
    if seq_len < 2:
        raise ValueError(f"seq_len {seq_len}: a window must hold at least two tokens")
    tokens = np.asarray(tokens, dtype=np.int64)
    available = len(tokens) // seq_len
    count = available if not windows else min(int(windows), available)
    if count <= 0:
        raise ValueError(f"{len(tokens)} tokens hold no window of {seq_len}")
    grid = tokens[:count * seq_len].reshape(count, seq_len)
    step = max(1, batch_tokens // seq_len)
    total = 0.0
    for start in range(0, count, step):
        chunk = grid[start:start + step]
        total += _window_nll(model(chunk)[:, :-1], chunk[:, 1:])
    predicted = count * (seq_len - 1)
    return total / predicted, predicted


def perplexity(model, tokens, seq_len, windows=None):
    """exp(mean NLL) of mean_nll(@model, @tokens, @seq_len, @windows)."""
    return math.exp(mean_nll(model, tokens, seq_len, windows)[0])
