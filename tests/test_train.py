"""The trainer: exact resume (also after kill -9), NaN stop, damaged checkpoints, logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from birnn.tasks.tagging import TaggerConfig, TaggingTask
from birnn.train import CheckpointError, TrainConfig, Trainer, TrainingDiverged
from birnn.train import checkpoint as ckpt
from train_helpers import tagged_sentences

CONFIG = TrainConfig(epochs=4, batch_size=8, lr=3e-3, seed=1)


def _setup(dropout=0.2):
    sentences = tagged_sentences(80)
    task = TaggingTask.for_data(
        TaggerConfig(model="bilstm", hidden=8, embedding=6, dropout=dropout, layers=2), sentences
    )
    data = task.encode(sentences)
    return task, data[:64], data[64:]


def _weights(task):
    return {k: v.clone() for k, v in task.model.state_dict().items()}


def test_two_plus_two_epochs_equal_four(tmp_path):
    task, train, dev = _setup()
    Trainer(task, train, dev, CONFIG, tmp_path / "straight", progress=False).fit()
    expected = _weights(task)

    task, train, dev = _setup()
    Trainer(
        task, train, dev, TrainConfig(**{**CONFIG.to_dict(), "epochs": 2}), tmp_path / "split", progress=False
    ).fit()
    task, train, dev = _setup()  # a fresh process would start from scratch too
    notices = []
    trainer = Trainer(task, train, dev, CONFIG, tmp_path / "split", progress=False, log=notices.append)
    trainer.fit(resume=True)
    assert notices == [f"resuming {tmp_path / 'split'} with epochs 2 -> 4"]
    for name, value in _weights(task).items():
        assert torch.equal(value, expected[name]), name
    rows = (tmp_path / "split" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("epoch,step,lr,train_loss")
    summary = json.loads((tmp_path / "split" / "summary.json").read_text())
    assert summary["epochs"] == 4 and (tmp_path / "split" / "curves.png").is_file()


SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_train import _setup, CONFIG
    from birnn.train import Trainer
    task, train, dev = _setup()
    Trainer(task, train, dev, CONFIG, {run!r}, progress=False,
            on_epoch=lambda epoch, row: (print("epoch", epoch, flush=True), epoch == 2 and __import__("time").sleep(60))
            ).fit()
    """
)


def test_kill_minus_nine_then_resume_gives_the_same_weights(tmp_path):
    task, train, dev = _setup()
    Trainer(task, train, dev, CONFIG, tmp_path / "straight", progress=False).fit()
    expected = _weights(task)

    run = tmp_path / "killed"
    code = SCRIPT.format(tests=os.path.dirname(__file__), run=str(run))
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    for line in process.stdout:
        if line.strip() == "epoch 2" or time.time() > deadline:
            break
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert json.loads((run / "checkpoint" / "state.json").read_text())["epoch"] == 2

    task, train, dev = _setup()
    Trainer(task, train, dev, CONFIG, run, progress=False).fit(resume=True)
    for name, value in _weights(task).items():
        assert torch.equal(value, expected[name]), name


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    task, train, dev = _setup(dropout=0.0)
    trainer = Trainer(task, train, dev, TrainConfig(epochs=3, batch_size=8), tmp_path, progress=False)
    calls = {"n": 0}
    original = task.loss

    def sometimes_nan(batch):
        calls["n"] += 1
        loss = original(batch)
        return loss * float("nan") if calls["n"] == 12 else loss

    monkeypatch.setattr(task, "loss", sometimes_nan)
    with pytest.raises(TrainingDiverged, match="loss became nan at step 12 \\(epoch 2\\)"):
        trainer.fit()
    assert ckpt.read_state(tmp_path / "checkpoint")["epoch"] == 1


def test_damaged_checkpoints_give_clear_errors(tmp_path):
    task, train, dev = _setup()
    Trainer(task, train, dev, TrainConfig(epochs=1, batch_size=8), tmp_path, progress=False).fit()
    weights = tmp_path / "checkpoint" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="model.safetensors: damaged or truncated"):
        ckpt.load(tmp_path / "checkpoint", task.model)
    (tmp_path / "checkpoint" / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="state.json: damaged"):
        ckpt.read_state(tmp_path / "checkpoint")
    with pytest.raises(CheckpointError, match="no checkpoint here"):
        ckpt.read_state(tmp_path / "nothing")
    other = TaggingTask.for_data(TaggerConfig(hidden=3), tagged_sentences(80))
    with pytest.raises(CheckpointError, match="weights do not fit the model"):
        ckpt.load(tmp_path / "best", other.model)


def test_optimizer_state_round_trips(tmp_path):
    task, train, dev = _setup()
    trainer = Trainer(task, train, dev, TrainConfig(epochs=1, batch_size=8), tmp_path, progress=False)
    trainer.fit()
    again = torch.optim.Adam(task.model.parameters(), lr=1.0)
    ckpt.load(tmp_path / "checkpoint", task.model, again)
    saved = trainer.optimizer.state_dict()
    for index, state in saved["state"].items():
        for name, value in state.items():
            assert torch.equal(again.state_dict()["state"][index][name], value)
    assert again.param_groups[0]["lr"] == saved["param_groups"][0]["lr"]


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path):
    task, train, dev = _setup(dropout=0.0)
    config = TrainConfig(epochs=5, batch_size=8, lr=1e-12, patience=1)  # too small to change the dev score
    summary = Trainer(task, train, dev, config, tmp_path, progress=False).fit()
    assert summary["epochs"] == 2


def test_bad_config():
    with pytest.raises(ValueError, match="optimizer must be 'adam' or 'sgd'"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        TrainConfig(epochs=0)
