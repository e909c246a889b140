"""Naive Bayes log-count ratios and sentence scores: the counts and ratios against a direct recount
in plain Python, leave-one-out against the counts of the data without the sentence, the scores
against scikit-learn's MultinomialNB, and a classifier that adds them
(trains leave-one-out, keeps its counts through saving, predicts alike in any batch)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import birnn
from birnn.data.textclass import NGRAM_JOIN, ngrams
from birnn.tasks import ClassificationTask, ClassifierConfig, from_description
from birnn.tasks.log_count_ratios import (
    calibrated_scale,
    distinct_ids,
    ratios_of_ids,
    sentence_counts,
    sentence_scores,
)
from birnn.train import TrainConfig, Trainer, evaluate

SENTENCES = [[2, 3, 3, 4], [2, 5], [4, 6, 1], [5, 5, 6, 2], [3, 6], [7]]  # ids; 1 is <unk>, 0 <pad>
LABELS = [0, 1, 2, 1, 0, 2]
V, K = 8, 3


def recount(sentences, labels):
    """n[w][k] by looping over sets of words, as the definition reads."""
    n = [[0] * K for _ in range(V)]
    for ids, label in zip(sentences, labels, strict=True):
        for w in set(ids) - {0, 1}:
            n[w][label] += 1
    return n


def ratio_by_definition(n, w, k, alpha):
    words = range(2, V)
    n_k, rest = n[w][k], sum(n[w][j] for j in range(K) if j != k)
    total = sum(n[v][k] for v in words)
    rest_total = sum(n[v][j] for v in words for j in range(K) if j != k)
    smoothing = alpha * (V - 2)
    return math.log((alpha + n_k) / (smoothing + total)) - math.log((alpha + rest) / (smoothing + rest_total))


def padded(sentences):
    width = max(map(len, sentences))
    return torch.tensor([ids + [0] * (width - len(ids)) for ids in sentences])


def test_counts_are_sentences_per_class_that_contain_the_word():
    np.testing.assert_array_equal(sentence_counts(SENTENCES, LABELS, V, K), np.asarray(recount(SENTENCES, LABELS)))


@pytest.mark.parametrize("alpha", [1.0, 0.25])
def test_ratios_equal_the_definition_and_are_zero_at_pad_and_unk(alpha):
    table = torch.from_numpy(sentence_counts(SENTENCES, LABELS, V, K))
    words = padded(SENTENCES)
    got = ratios_of_ids(table, words, alpha)
    n = recount(SENTENCES, LABELS)
    for b, ids in enumerate(words.tolist()):
        for t, w in enumerate(ids):
            want = [0.0] * K if w < 2 else [ratio_by_definition(n, w, k, alpha) for k in range(K)]
            np.testing.assert_allclose(got[b, t].numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_leave_one_out_equals_the_ratios_of_the_data_without_the_sentence(alpha):
    table = torch.from_numpy(sentence_counts(SENTENCES, LABELS, V, K))
    words = padded(SENTENCES)
    got = ratios_of_ids(table, words, alpha, torch.tensor(LABELS))
    for b, ids in enumerate(SENTENCES):
        others = [s for i, s in enumerate(SENTENCES) if i != b]
        n = recount(others, [y for i, y in enumerate(LABELS) if i != b])
        for t, w in enumerate(ids):
            want = [0.0] * K if w < 2 else [ratio_by_definition(n, w, k, alpha) for k in range(K)]
            np.testing.assert_allclose(got[b, t].numpy(), want, rtol=1e-12, atol=1e-12)
        assert not got[b, len(ids):].any()


def test_distinct_ids_skip_padding_unknown_and_repeats():
    assert distinct_ids(padded(SENTENCES)).tolist() == [3, 2, 2, 3, 2, 1]


def test_leave_one_out_never_gives_nan_for_sentences_that_were_not_counted():
    table = torch.from_numpy(sentence_counts(SENTENCES[:1], LABELS[:1], V, K))
    assert torch.isfinite(ratios_of_ids(table, padded(SENTENCES), 1.0, torch.tensor(LABELS))).all()


def test_ngrams_are_the_distinct_one_to_n_grams():
    assert ngrams(["a", "b", "a", "b"], 2) == sorted({"a", "b", f"a{NGRAM_JOIN}b", f"b{NGRAM_JOIN}a"})
    assert ngrams(["a"], 3) == ["a"]


def test_two_class_scores_are_multinomial_naive_bayes_log_odds_without_the_prior():
    naive_bayes = pytest.importorskip("sklearn.naive_bayes")
    rng = np.random.default_rng(1)
    sentences = [sorted(set(rng.integers(2, 12, size=int(rng.integers(1, 7))).tolist())) for _ in range(40)]
    labels = rng.integers(0, 2, 40).tolist()
    present = np.zeros((40, 12))
    for row, ids in enumerate(sentences):
        present[row, ids] = 1
    model = naive_bayes.MultinomialNB(alpha=0.5).fit(present[:, 2:], labels)
    log_odds = (present[:, 2:] @ (model.feature_log_prob_[1] - model.feature_log_prob_[0]))
    table = torch.from_numpy(sentence_counts(sentences, labels, 12, 2))
    scores = sentence_scores(table, padded(sentences), 0.5)
    np.testing.assert_allclose(scores[:, 1].numpy(), log_odds, rtol=1e-10)
    np.testing.assert_allclose(scores[:, 0].numpy(), -log_odds, rtol=1e-10)


def test_the_calibrated_scale_recovers_the_temperature_the_labels_were_drawn_with():
    g = torch.Generator().manual_seed(0)
    scores = 4 * torch.randn(20000, 3, generator=g, dtype=torch.float64)
    labels = torch.multinomial(torch.softmax(0.3 * scores, -1), 1, generator=g)[:, 0]
    assert calibrated_scale(scores, labels) == pytest.approx(0.3, rel=0.05)


def lexical(n: int, seed: int = 0) -> list[tuple[list[str], str]]:
    """Sentences of filler words in which one of 6 rare polar words decides the label."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        label = "pos" if rng.random() < 0.5 else "neg"
        words = [f"w{int(v)}" for v in rng.integers(0, 30, size=int(rng.integers(3, 9)))]
        words.insert(int(rng.integers(0, len(words) + 1)), f"{label}{int(rng.integers(0, 6))}")
        out.append((words, label))
    return out


def test_a_classifier_with_naive_bayes_scores_trains_leave_one_out_and_keeps_its_counts(tmp_path, monkeypatch):
    from birnn.tasks import classifier as module

    data = lexical(300)
    config = ClassifierConfig(hidden=8, embedding=8, dropout=0.1, nb_ngrams=2)
    task = ClassificationTask.for_data(config, data)
    features = [ngrams(s, 2) for s, _ in data]
    assert task.ngrams.itos[2:] == sorted({f for sentence in features for f in sentence})
    counts = sentence_counts([task.ngrams.encode(f) for f in features], [task.classes.stoi[y] for _, y in data],
                             len(task.ngrams), 2)
    np.testing.assert_array_equal(task.network.ngram_counts.numpy(), counts)
    own = sentence_scores(task.network.ngram_counts, padded([task.ngrams.encode(f) for f in features]), 1.0,
                          torch.tensor([task.classes.stoi[y] for _, y in data]))
    assert task.network.nb_scale.tolist() == [pytest.approx(calibrated_scale(own, torch.tensor(
        [task.classes.stoi[y] for _, y in data])))] * 2

    seen = []
    scores_of = module.sentence_scores

    def recording(table, ids, alpha, own=None):
        seen.append(own is not None)
        return scores_of(table, ids, alpha, own)

    monkeypatch.setattr(module, "sentence_scores", recording)
    examples = task.encode(data)
    Trainer(task, examples[:240], examples[240:], TrainConfig(epochs=3, lr=1e-2, batch_size=16), tmp_path,
            progress=False).fit()
    assert seen.count(True) == 3 * math.ceil(240 / 16)  # every training batch leave-one-out
    assert not all(seen)  # evaluation reads the scores of the full counts
    assert evaluate(task, examples[240:])["accuracy"] > 0.9

    monkeypatch.undo()
    model = birnn.load(tmp_path)
    np.testing.assert_array_equal(model.task.network.ngram_counts.numpy(), counts)
    rebuilt = from_description(json.loads(json.dumps(model.task.describe())))
    assert rebuilt.ngrams.itos == task.ngrams.itos
    assert not rebuilt.network.ngram_counts.any()  # the counts come with the weights, not the description
    sentences = [s for s, _ in data[240:260]] + [["never", "seen", "words"]]
    alone = [model.predict_proba([s])[0] for s in sentences]
    np.testing.assert_allclose(np.stack(model.predict_proba(sentences)), np.stack(alone), atol=1e-6)


def test_nb_settings_are_checked():
    with pytest.raises(ValueError, match="nb_alpha must be > 0; got 0"):
        ClassifierConfig(nb_ngrams=1, nb_alpha=0)
    with pytest.raises(ValueError, match="nb_ngrams must be >= 0"):
        ClassifierConfig(nb_ngrams=-1)


def test_train_classify_with_nb_ngrams_predicts_from_torch_and_from_onnx_alike(tmp_path, capsys):
    from birnn.cli import main

    lines = [f"{label}\t{' '.join(words)}" for words, label in lexical(120, seed=3)]
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n")
    assert main(["train", "classify", "--train", str(tmp_path / "train.tsv"), "--nb-ngrams", "2", "--hidden", "4",
                 "--embedding", "4", "--epochs", "2", "--quiet", "--out", str(tmp_path / "run")]) == 0
    (tmp_path / "in.txt").write_text("pos1 w3 w4\nneg2 w1\nunseen words only\n")
    assert main(["export", str(tmp_path / "run"), "--to", str(tmp_path / "model.onnx")]) == 0
    capsys.readouterr()
    outputs = []
    for engine in ("torch", "onnx"):
        where = tmp_path / ("run" if engine == "torch" else "model.onnx")
        assert main(["predict", str(where), str(tmp_path / "in.txt"), "--engine", engine, "--format", "json"]) == 0
        outputs.append([json.loads(line) for line in capsys.readouterr().out.splitlines()])
    assert [r["label"] for r in outputs[0]] == [r["label"] for r in outputs[1]] and len(outputs[0]) == 3
    for eager, onnx in zip(*outputs, strict=True):
        for label in eager["p"]:
            assert onnx["p"][label] == pytest.approx(eager["p"][label], abs=1e-5)
