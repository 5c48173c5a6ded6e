# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""aqinit.hf.cli (the aqinit-hf command): convert-llama2c and ppl, in process and as python -m aqinit.hf."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from aqinit.hf import load_llama, mean_nll
from aqinit.hf.cli import main
from test_hf_llama2c import SMALL, random_llama2c, write_llama2c

PYTHON_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "python")


@pytest.fixture
def files(tmp_path):
    header, p = random_llama2c(np.random.default_rng(9), True, **SMALL)
    write_llama2c(tmp_path / "model.bin", header, p)
    (tmp_path / "tokenizer.model").write_bytes(b"spm")
    tokens = np.random.default_rng(10).integers(0, SMALL["vocab"], size=4 * SMALL["seq"] + 3).astype("<u2")
    tokens.tofile(tmp_path / "tokens.bin")
    return tmp_path


def test_convert_then_ppl(files, capsys):
    out = files / "hf"
    tokenizer = str(files / "tokenizer.model")
    assert main(["convert-llama2c", str(files / "model.bin"), str(out), "--tokenizer", tokenizer]) == 0
    assert "2 layers" in capsys.readouterr().out
    assert (out / "tokenizer.model").read_bytes() == b"spm"
    assert main(["ppl", str(out), "--tokens", str(files / "tokens.bin"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    nll, count = mean_nll(load_llama(out), np.fromfile(files / "tokens.bin", "<u2"), SMALL["seq"])
    assert result["seq_len"] == SMALL["seq"]  # max_position_embeddings by default
    assert (result["windows"], result["tokens"]) == (4, count) == (4, 4 * (SMALL["seq"] - 1))
    assert result["mean_nll"] == pytest.approx(nll, rel=1e-12)
    assert result["perplexity"] == pytest.approx(np.exp(nll), rel=1e-12)
    assert result["seconds"] >= 0
    assert main(["ppl", str(out), "--tokens", str(files / "tokens.bin"), "--windows", "2", "--seq-len", "8"]) == 0
    text = capsys.readouterr().out
    assert "perplexity" in text and "mean NLL" in text and "tokens 14 (2 windows of 8)" in text


def test_errors_are_reported_with_status_1(files, capsys):
    assert main(["ppl", str(files / "absent"), "--tokens", str(files / "tokens.bin")]) == 1
    assert "config.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ppl", str(files)])  # --tokens is required


def test_python_dash_m(files):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    run = subprocess.run([sys.executable, "-m", "aqinit.hf", "convert-llama2c", str(files / "model.bin"),
                          str(files / "hf")], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (files / "hf" / "model.safetensors").exists()
    run = subprocess.run([sys.executable, "-m", "aqinit.hf", "--help"], env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "convert-llama2c" in run.stdout and "ppl" in run.stdout
