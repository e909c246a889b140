"""Run directories survive kill -9 at any moment, refuse a second training, never hold non-finite weights,
and refuse a resume with settings that cannot change."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from birnn.cli import main
from birnn.tasks.tagging import TaggerConfig, TaggingTask
from birnn.train import CheckpointError, TrainConfig, Trainer, TrainingDiverged, load_task
from birnn.train import checkpoint as ckpt
from birnn.train.trainer import ResumeMismatch, RunLocked
from train_helpers import tagged_sentences, write_conll

CONFIG = TrainConfig(epochs=4, batch_size=8, lr=3e-3, seed=1)
TESTS = os.path.dirname(__file__)


def _setup():
    sentences = tagged_sentences(48, seed=2)
    task = TaggingTask.for_data(TaggerConfig(model="bilstm", hidden=4, embedding=4, dropout=0.2), sentences)
    data = task.encode(sentences)
    return task, data[:40], data[40:]


def _fit(run, config=CONFIG, resume=False, **options):
    task, train, dev = _setup()
    trainer = Trainer(task, train, dev, config, run, progress=False, **options)
    trainer.fit(resume=resume)
    return trainer


# Every file-system step of a save is announced ("op N") and delayed, so that the parent can kill the
# process just before (or, with its own random delay, during or just after) any one of them.
KILLABLE = textwrap.dedent(
    """
    import os, shutil, sys, time
    sys.path.insert(0, {tests!r})
    from test_checkpoint_safety import _setup, CONFIG
    from birnn.train import Trainer
    count = [0]
    def announced(function):
        def wrapper(*args, **kwargs):
            count[0] += 1
            print("op", count[0], function.__name__, flush=True)
            time.sleep(0.01)
            return function(*args, **kwargs)
        return wrapper
    for name in ("fsync", "replace", "rename", "symlink", "mkdir", "unlink"):
        setattr(os, name, announced(getattr(os, name)))
    shutil.rmtree = announced(shutil.rmtree)
    task, train, dev = _setup()
    Trainer(task, train, dev, CONFIG, {run!r}, progress=False).fit(resume=True)
    print("done", flush=True)
    """
)


def _check_run_dir(run, seen_epoch, note):
    """What a killed run left: a loadable checkpoint no older than before, a loadable best, parseable logs."""
    directory = run / "checkpoint"
    if not ckpt.exists(directory):
        assert seen_epoch == 0, f"{note}: the checkpoint of epoch {seen_epoch} was lost"
        return 0
    epoch = ckpt.read_state(directory)["epoch"]  # raises CheckpointError on any damage
    assert epoch >= seen_epoch, f"{note}: checkpoint went back from epoch {seen_epoch} to {epoch}"
    if ckpt.exists(run / "best"):
        ckpt.read_state(run / "best")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "damaged, using checkpoint instead"
            load_task(run, "best")
    if (run / "metrics.csv").exists():
        rows = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
        assert 1 <= len(rows) <= epoch, note
    if (run / "summary.json").exists():
        json.loads((run / "summary.json").read_text())
    return epoch


def test_kill_minus_nine_at_any_moment_of_a_save_loses_nothing(tmp_path):
    expected = _fit(tmp_path / "straight").task.model.state_dict()

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    run = tmp_path / "killed"
    code = KILLABLE.format(tests=TESTS, run=str(run))
    seen, kills = 0, 0
    for round_ in range(12):
        if kills >= 7:
            break
        target, extra = rng.randint(1, 45), rng.uniform(0, 0.015)
        process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        last, deadline = "", time.time() + 120
        for line in process.stdout:
            last = line.strip()
            if last == f"op {target}" or last.startswith(f"op {target} ") or time.time() > deadline:
                time.sleep(extra)
                break
        if last == "done":  # finished before op `target`: kill a fresh run, unless it was killed enough
            process.wait()
            if kills >= 3:
                break
            shutil.rmtree(run)
            seen = 0
            continue
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
        seen = _check_run_dir(run, seen, f"seed {seed}, round {round_}, killed at {last!r} + {extra:.3f} s")
    assert kills >= 3, f"seed {seed}: the run ended before it was killed enough"

    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0 and finished.stdout.strip().endswith("done"), finished.stderr[-2000:]
    assert ckpt.read_state(run / "checkpoint")["epoch"] == CONFIG.epochs
    weights = load_file(str(run / "checkpoint" / "model.safetensors"))
    for name, value in expected.items():
        assert torch.equal(weights[name], value), f"seed {seed}: {name} differs from the uninterrupted run"
    leftovers = sorted(p.name for p in run.iterdir() if ".link-" in p.name or ".tmp-" in p.name)
    assert leftovers == [] and len([p for p in run.iterdir() if p.name.startswith("checkpoint-")]) == 1


def test_layout_one_linked_version_each_and_plain_directories_migrate(tmp_path):
    _fit(tmp_path, TrainConfig(epochs=2, batch_size=8))
    for name in ("checkpoint", "best"):
        assert (tmp_path / name).is_symlink()
        versions = [p for p in tmp_path.iterdir() if p.name.startswith(f"{name}-")]
        assert len(versions) == 1 and ckpt.resolve(tmp_path / name) == versions[0]
    # a run written by an earlier birnn: plain directories
    for name in ("checkpoint", "best"):
        version = ckpt.resolve(tmp_path / name)
        (tmp_path / name).unlink()
        version.rename(tmp_path / name)
    _fit(tmp_path, TrainConfig(epochs=3, batch_size=8), resume=True, log=lambda message: None)
    assert (tmp_path / "checkpoint").is_symlink() and ckpt.read_state(tmp_path / "checkpoint")["epoch"] == 3
    # killed between renaming a plain directory into a version and linking it: the version is found
    version = ckpt.resolve(tmp_path / "checkpoint")
    (tmp_path / "checkpoint").unlink()
    assert ckpt.exists(tmp_path / "checkpoint") and ckpt.read_state(tmp_path / "checkpoint")["epoch"] == 3
    # an incomplete version (no state.json) is never taken for a checkpoint
    (version / "state.json").unlink()
    assert not ckpt.exists(tmp_path / "checkpoint")
    with pytest.raises(CheckpointError, match="no checkpoint here"):
        ckpt.read_state(tmp_path / "checkpoint")


def test_damaged_best_falls_back_to_the_checkpoint_with_a_warning(tmp_path):
    _fit(tmp_path, TrainConfig(epochs=1, batch_size=8))
    weights = tmp_path / "best" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.warns(UserWarning, match="damaged or truncated.*using .*checkpoint"):
        task = load_task(tmp_path, "best")
    assert not task.model.training


def test_overwrite_removes_every_version(tmp_path):
    _fit(tmp_path, TrainConfig(epochs=1, batch_size=8))
    task, train, dev = _setup()
    Trainer(task, train, dev, TrainConfig(epochs=1, batch_size=8, seed=5), tmp_path, progress=False).fit(
        overwrite=True
    )
    state = ckpt.read_state(tmp_path / "checkpoint")
    assert state["train_config"]["seed"] == 5 and state["epoch"] == 1


def test_non_finite_weights_are_never_saved(tmp_path, monkeypatch):
    task, train, dev = _setup()
    trainer = Trainer(task, train, dev, TrainConfig(epochs=3, batch_size=8), tmp_path, progress=False)
    original = trainer.optimizer.step

    def poisoned(*args, **kwargs):  # the last step of epoch 2 (5 steps per epoch): the loss never sees it
        result = original(*args, **kwargs)
        if trainer.step + 1 == 10:
            with torch.no_grad():
                next(task.model.parameters())[0] = float("inf")
        return result

    monkeypatch.setattr(trainer.optimizer, "step", poisoned)
    message = f"weights became NaN or infinite \\(.*\\) by step 10 \\(epoch 2\\).*last good checkpoint is {tmp_path}"
    with pytest.raises(TrainingDiverged, match=message):
        trainer.fit()
    state = ckpt.read_state(tmp_path / "checkpoint")
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in load_file(str(tmp_path / "checkpoint" / "model.safetensors")).values())

    # diverged in the first epoch: nothing was saved, and the message says so
    task, train, dev = _setup()
    with torch.no_grad():
        next(task.model.parameters())[0] = float("nan")
    with pytest.raises(TrainingDiverged, match="no checkpoint was written"):
        Trainer(task, train, dev, TrainConfig(epochs=1, batch_size=8), tmp_path / "fresh", progress=False).fit()
    with pytest.raises(CheckpointError, match="not saved, parameters .* hold NaN or infinity"):
        ckpt.save(tmp_path / "direct" / "checkpoint", task.model, {})
    assert not os.path.lexists(tmp_path / "direct" / "checkpoint")


HOLDER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_checkpoint_safety import _setup, CONFIG
    from birnn.train import Trainer
    task, train, dev = _setup()
    Trainer(task, train, dev, CONFIG, {run!r}, progress=False,
            on_epoch=lambda epoch, row: (print("epoch", epoch, flush=True), time.sleep(120))).fit()
    """
)


def test_a_second_training_on_the_same_run_directory_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(tests=TESTS, run=str(run))], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "epoch 1"
        with pytest.raises(RunLocked, match=f"{run} is in use by another training \\(pid {process.pid} on "):
            _fit(run, resume=True)
        # through the CLI: one line, exit 2
        data = tmp_path / "train.conll"
        write_conll(data, tagged_sentences(16))
        assert main(["train", "tag", "--train", str(data), "--out", str(run), "--resume", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is in use by another training" in err, err
        assert ckpt.read_state(run / "checkpoint")["epoch"] == 1  # untouched by the refused trainings
    finally:
        os.kill(process.pid, signal.SIGKILL)  # the lock dies with its holder: no stale lock
        process.wait()
    trainer = _fit(run, resume=True)
    assert trainer.epoch == CONFIG.epochs
    assert (run / ".lock").read_text().startswith(f"pid {os.getpid()} on ")


def test_resume_refuses_changed_batches_and_reports_other_changes(tmp_path):
    config = TrainConfig(epochs=1, batch_size=8, optimizer="sgd", lr=0.1, seed=1)
    fresh = _fit(tmp_path, config)
    before = {k: v.clone() for k, v in fresh.task.model.state_dict().items()}
    for field, value, old in (("batch_size", 16, 8), ("seed", 2, 1), ("optimizer", "adam", "sgd")):
        changed = TrainConfig(**{**config.to_dict(), field: value})
        task, train, dev = _setup()
        trainer = Trainer(task, train, dev, changed, tmp_path, progress=False)
        with pytest.raises(ResumeMismatch, match=f"{field}={value!r} \\(the run was trained with {field}={old!r}\\)"):
            trainer.fit(resume=True)
        assert ckpt.read_state(tmp_path / "checkpoint")["epoch"] == 1
    assert all(torch.equal(v, before[k]) for k, v in ckpt.load_task(tmp_path, "checkpoint").model.state_dict().items())

    notices: list[str] = []
    changed = TrainConfig(**{**config.to_dict(), "epochs": 2, "lr": 0.05, "momentum": 0.9, "monitor": "accuracy_known"})
    trainer = _fit(tmp_path, changed, resume=True, log=notices.append)
    assert any("epochs 1 -> 2" in n and "lr 0.1 -> 0.05" in n and "momentum 0.0 -> 0.9" in n for n in notices), notices
    assert any("monitored dev metric is now accuracy_known (was accuracy)" in n for n in notices), notices
    assert trainer.optimizer.param_groups[0]["momentum"] == 0.9  # the change took effect, not the saved value
    assert ckpt.read_state(tmp_path / "checkpoint")["train_config"]["momentum"] == 0.9

    with pytest.warns(UserWarning, match="epochs 2 -> 3"):  # without ``log``: a warning
        _fit(tmp_path, TrainConfig(**{**changed.to_dict(), "epochs": 3}), resume=True)


def test_nothing_is_unpickled_when_a_run_is_loaded_resumed_or_predicted_with(tmp_path, monkeypatch):
    """No module of birnn reaches pickle or torch.load, and loading, resuming and predicting call neither."""
    import pickle
    import re

    import birnn

    source = re.compile(r"\bimport pickle\b|\bpickle\.|\bcloudpickle\b|\bdill\b|torch\.load\(|allow_pickle\s*=\s*True")
    package = Path(TESTS).parent / "src" / "birnn"
    found = [str(path) for path in package.rglob("*.py") if source.search(path.read_text())]
    assert found == [] and len(list(package.rglob("*.py"))) > 50, found
    _fit(tmp_path, TrainConfig(epochs=1, batch_size=8))

    def refused(*args, **kwargs):
        raise AssertionError("something was unpickled")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(module, name, refused)
    assert load_task(tmp_path).kind == "tagging"
    assert len(birnn.load(tmp_path).predict([["w1", "w2"]])[0]) == 2
    assert _fit(tmp_path, TrainConfig(epochs=2, batch_size=8), resume=True, log=lambda message: None).epoch == 2
