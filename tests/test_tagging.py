"""Tagging end to end: the task learns, and `birnn train tag` / `evaluate` / `predict` work from the CLI."""

from __future__ import annotations

import io
import json

import pytest

from birnn.cli import main
from birnn.tasks.tagging import TaggerConfig, TaggingTask
from birnn.train import TrainConfig, Trainer, evaluate
from train_helpers import tagged_sentences, write_conll


@pytest.mark.parametrize("model", ["bilstm", "gru", "bielman"])
def test_tagger_learns_generated_data(tmp_path, model):
    sentences = tagged_sentences(300)
    task = TaggingTask.for_data(TaggerConfig(model=model, hidden=16, embedding=8), sentences)
    data = task.encode(sentences)
    before = evaluate(task, data[250:])["accuracy"]
    Trainer(task, data[:250], data[250:], TrainConfig(epochs=4, lr=1e-2, batch_size=16), tmp_path, progress=False).fit()
    after = evaluate(task, data[250:])["accuracy"]
    assert after > before + 0.2 and after > 0.6


def test_span_f1_for_bio_tags():
    sentences = [(["Paris", "is", "nice"], ["B-loc", "O", "O"]), (["New", "York"], ["B-loc", "I-loc"])]
    task = TaggingTask.for_data(TaggerConfig(hidden=4, embedding=4), sentences)
    metrics = evaluate(task, task.encode(sentences))
    assert set(metrics) == {"accuracy", "f1"}


def test_cli_train_evaluate_predict(tmp_path, capsys, monkeypatch):
    train, dev = tmp_path / "train.conll", tmp_path / "dev.conll"
    write_conll(train, tagged_sentences(200, seed=1))
    write_conll(dev, tagged_sentences(40, seed=2))
    run = tmp_path / "run"
    args = ["train", "tag", "--train", str(train), "--dev", str(dev), "--test", str(dev), "--model", "bigru"]
    args += ["--hidden", "8", "--embedding", "8", "--epochs", "2", "--out", str(run), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "epoch 2: train loss" in out and "test accuracy" in out
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2
    assert main(args) == 2  # the run exists: refuse to overwrite
    assert "already holds a run" in capsys.readouterr().err
    assert main([*args[:-5], "--epochs", "3", "--out", str(run), "--quiet", "--resume"]) == 0
    assert json.loads((run / "summary.json").read_text())["epochs"] == 3
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(dev)]) == 0
    assert capsys.readouterr().out.startswith("accuracy ")
    monkeypatch.setattr("sys.stdin", io.StringIO("w0 w1 w3\n\nw2\n"))
    assert main(["predict", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and len(lines[0].split()) == 3 and lines[1] == "" and lines[2] in {"A", "B", "C"}


def test_cli_usage_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "tag", "--train", str(tmp_path / "none.conll")]) == 2
    assert main(["train", "tag", "--train", "x", "--model", "transformer"]) == 2
    assert main(["evaluate", str(tmp_path), "--data", str(tmp_path / "none.conll")]) == 2
    bad = tmp_path / "bad.conll"
    bad.write_text("word\n")
    assert main(["train", "tag", "--train", str(bad)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4 and all(e.startswith("birnn: error:") for e in errors)
    assert "bad.conll:1: expected 'token tag' columns" in errors[3]
