"""Tagging end to end: the task learns (with and without characters and a CRF), metrics by value,
tag schemes, prediction through ``birnn.load``, and `birnn train tag` / `evaluate` / `predict`."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import birnn
from birnn.cli import main
from birnn.data.tagschemes import is_valid
from birnn.tasks import TaggerConfig, TaggingTask
from birnn.train import TrainConfig, Trainer, evaluate
from train_helpers import tagged_sentences, write_conll


@pytest.mark.parametrize(
    "config",
    [
        TaggerConfig(model="bilstm", hidden=16, embedding=8),
        TaggerConfig(model="gru", hidden=16, embedding=8),
        TaggerConfig(model="bielman", hidden=16, embedding=8),
        TaggerConfig(hidden=16, embedding=8, chars="lstm", char_hidden=8, crf=True, word_dropout=0.3, dropout=0.1),
        TaggerConfig(hidden=16, embedding=8, chars="cnn", char_hidden=8, shape_embedding=4, locked=True, dropout=0.1),
    ],
    ids=["bilstm", "gru", "bielman", "chars-crf", "cnn-shapes"],
)
def test_tagger_learns_generated_data(tmp_path, config):
    sentences = tagged_sentences(300)
    task = TaggingTask.for_data(config, sentences)
    data = task.encode(sentences)
    before = evaluate(task, data[250:])["accuracy"]
    Trainer(task, data[:250], data[250:], TrainConfig(epochs=4, lr=1e-2, batch_size=16), tmp_path, progress=False).fit()
    after = evaluate(task, data[250:])["accuracy"]
    assert after > before + 0.2 and after > 0.6


def _ner_task(**changes):
    sentences = [
        (["Ann", "Lee", "met", "Bob", "in", "Paris"], ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"]),
        (["Paris", "is", "nice"], ["B-LOC", "O", "O"]),
    ]
    return TaggingTask.for_data(TaggerConfig(hidden=4, embedding=4, **changes), sentences), sentences


def test_span_metrics_by_value():
    """Strict spans: a PER cut short is wrong, the LOC is right: P = R = F1 = 1/2, f1_LOC 1, f1_PER 0."""
    task, _ = _ner_task()
    gold = task.tags.encode(["B-PER", "I-PER", "O", "B-LOC"])
    predicted = task.tags.encode(["B-PER", "O", "O", "B-LOC"])
    scores = task.metrics([[(predicted, gold, [False] * 4)]])
    assert task.monitor == "f1"
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["precision"] == pytest.approx(0.5) and scores["recall"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx(0.5)
    assert scores["f1_LOC"] == pytest.approx(1.0) and scores["f1_PER"] == pytest.approx(0.0)


def test_pos_metrics_split_known_and_unknown_words():
    sentences = [(["the", "cat", "sat"], ["DET", "NOUN", "VERB"])]
    task = TaggingTask.for_data(TaggerConfig(hidden=4, embedding=4), sentences)
    (words, gold, tokens), = task.encode([(["the", "dog", "sat"], ["DET", "NOUN", "VERB"])])
    assert words[1] == 1  # "dog" is unknown
    predicted = task.tags.encode(["DET", "VERB", "NOUN"])
    scores = task.metrics([[(predicted, gold, [w == 1 for w in words])]])
    assert task.monitor == "accuracy"
    assert scores == pytest.approx({"accuracy": 1 / 3, "accuracy_known": 0.5, "accuracy_unknown": 0.0})


def test_bioes_inside_bio_outside(tmp_path):
    """scheme="bioes": the network learns BIOES tags, predictions and metrics come back as valid BIO."""
    task, sentences = _ner_task(scheme="bioes", crf=True, chars="lstm", char_hidden=4)
    assert {"S-LOC", "E-PER", "S-PER"} <= set(task.tags.itos)
    data = task.encode(sentences * 20)
    Trainer(task, data, data[:2], TrainConfig(epochs=6, lr=2e-2, batch_size=4), tmp_path, progress=False).fit()
    predicted = birnn.load(tmp_path).predict([tokens for tokens, _ in sentences] + [["Bob", "in", "Rome", "x"]])
    assert predicted[:2] == [tags for _, tags in sentences]
    assert all(is_valid(tags, "bio") for tags in predicted)


def test_predictions_do_not_depend_on_batch_or_order(tmp_path):
    sentences = tagged_sentences(120, seed=3)
    config = TaggerConfig(hidden=8, embedding=8, chars="lstm", char_hidden=4, crf=True)
    task = TaggingTask.for_data(config, sentences)
    data = task.encode(sentences)
    Trainer(task, data, data[:20], TrainConfig(epochs=1, batch_size=16), tmp_path, progress=False).fit()
    model = birnn.load(tmp_path, batch_size=7)
    tokens = [t for t, _ in sentences[:30]]
    together = model.predict(tokens)
    alone = [model.predict([t])[0] for t in tokens]
    assert together == alone and [len(t) for t in together] == [len(t) for t in tokens]
    features = model.embed(tokens[:3])
    assert [f.shape for f in features] == [(len(t), 16) for t in tokens[:3]]
    assert np.allclose(features[1], model.embed([tokens[1]])[0], atol=1e-5)
    probabilities = model.predict_proba(tokens[:3])
    for p, t in zip(probabilities, tokens[:3], strict=True):
        assert p.shape == (len(t), len(model.labels)) and np.allclose(p.sum(-1), 1, atol=1e-5)


def test_cli_train_evaluate_predict(tmp_path, capsys, monkeypatch):
    train, dev = tmp_path / "train.conll", tmp_path / "dev.conll"
    write_conll(train, tagged_sentences(200, seed=1))
    write_conll(dev, tagged_sentences(40, seed=2))
    run = tmp_path / "run"
    args = ["train", "tag", "--train", str(train), "--dev", str(dev), "--test", str(dev), "--model", "bigru"]
    args += ["--hidden", "8", "--embedding", "8", "--chars", "cnn", "--epochs", "2", "--out", str(run), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "epoch 2: train loss" in out and "test accuracy" in out and "accuracy_unknown" in out
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2
    assert main(args) == 2  # the run exists: refuse to overwrite
    assert "already holds a run" in capsys.readouterr().err
    assert main([*args[:-5], "--epochs", "3", "--out", str(run), "--quiet", "--resume"]) == 0
    assert json.loads((run / "summary.json").read_text())["epochs"] == 3
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(dev)]) == 0
    assert capsys.readouterr().out.startswith("accuracy ")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"w0 w1 w3\n\nw2\n")))
    assert main(["predict", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["w0", "w1", "w3", "", "", "w2", ""]
    assert {line.split("\t")[1] for line in lines if line} <= {"A", "B", "C"}


def test_cli_usage_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "tag", "--train", str(tmp_path / "none.conll")]) == 2
    assert main(["train", "tag", "--train", "x", "--model", "transformer"]) == 2
    assert main(["evaluate", str(tmp_path), "--data", str(tmp_path / "none.conll")]) == 2
    bad = tmp_path / "bad.conll"
    bad.write_text("word\n")
    assert main(["train", "tag", "--train", str(bad)]) == 2
    good = tmp_path / "good.conll"
    write_conll(good, tagged_sentences(10))
    assert main(["train", "tag", "--train", str(good), "--test", str(tmp_path / "typo.conll")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 5 and all(e.startswith("birnn: error:") for e in errors)
    assert "bad.conll:1: expected 'token tag' columns" in errors[3]
    assert "typo.conll" in errors[4]
