"""Two processes under torchrun (gloo, localhost) train the same weights as one process on the global batch."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from safetensors.torch import load_file

from birnn.cli import main
from train_helpers import tagged_sentences, write_conll


def test_two_ranks_match_one_process(tmp_path):
    # Equal lengths: each rank's token-mean loss then averages to the global token mean. SGD, because
    # Adam's normalisation would amplify float-rounding differences of near-zero gradients.
    sentences = [(words[:8], tags[:8]) for words, tags in tagged_sentences(96, seed=4, length=8) if len(words) >= 8]
    assert len(sentences) >= 16
    train = tmp_path / "train.conll"
    write_conll(train, sentences)
    common = ["train", "tag", "--train", str(train), "--model", "bilstm", "--hidden", "8", "--embedding", "8"]
    common += ["--epochs", "2", "--batch-size", "8", "--lr", "0.5", "--optimizer", "sgd", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "single")]) == 0
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "birnn.cli"]
    done = subprocess.run(
        [*launch, *common, "--out", str(tmp_path / "ddp")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    single = load_file(str(tmp_path / "single" / "checkpoint" / "model.safetensors"))
    ddp = load_file(str(tmp_path / "ddp" / "checkpoint" / "model.safetensors"))
    assert single.keys() == ddp.keys()
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], atol=1e-5, rtol=1e-4, msg=name)
    # each rank trained on its half of every global batch, not on all of it
    tokens = {
        run: json.loads((tmp_path / run / "summary.json").read_text())["last"]["tokens"] for run in ("single", "ddp")
    }
    assert tokens["ddp"] * 2 == tokens["single"]
