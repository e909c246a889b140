"""Ensembles (`birnn ensemble`): a product of experts checked against brute-force enumeration of
every tag path, an ensemble of one model with itself equal to the model, the saved run standing
alone, and every refusal in one line."""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pytest
import torch

import birnn
from birnn.cli import main
from birnn.data import Vocab
from birnn.tasks import ClassificationTask, ClassifierConfig, TaggerConfig, TaggingTask
from birnn.tasks.ensemble import ensemble, mean_crf
from birnn.train import TrainConfig, Trainer, load_task
from birnn.train.ensemble import save_ensemble
from test_classify import polarity
from train_helpers import write_conll

NER = [
    (["Ann", "Lee", "met", "Bob", "in", "Paris"], ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"]),
    (["Paris", "is", "nice"], ["B-LOC", "O", "O"]),
    (["Bob", "left"], ["B-PER", "O"]),
]


def _tagger(tmp_path, name: str, seed: int, crf: bool = True, sentences=NER, **settings) -> TaggingTask:
    config = TaggerConfig(hidden=6, embedding=6, chars="lstm", char_hidden=3, crf=crf, seed=seed, **settings)
    task = TaggingTask.for_data(config, sentences)
    data = task.encode(sentences * 4)
    Trainer(task, data, data[:3], TrainConfig(epochs=2, lr=2e-2, batch_size=4, seed=seed), tmp_path / name,
            progress=False).fit()
    return task


@pytest.fixture(scope="module")
def crf_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    for seed in range(3):
        _tagger(root, f"crf{seed}", seed)
    return root


def _path_log_probs(task, tokens) -> dict[tuple[int, ...], float]:
    """log p(y | x) of every internal tag path, by enumeration of the CRF's path scores."""
    batch = task.collate([task.encode_input(tokens)])
    with torch.no_grad():
        emissions, crf = task._scores(batch)
        emissions = emissions.double()
        paths = list(itertools.product(range(emissions.shape[-1]), repeat=len(tokens)))
        tags = torch.tensor(paths)
        scores = crf.score(emissions.expand(len(paths), -1, -1), tags).numpy()
    finite = np.isfinite(scores)
    log_z = np.log(np.exp(scores[finite] - scores[finite].max()).sum()) + scores[finite].max()
    return {p: s - log_z for p, s, ok in zip(paths, scores, finite, strict=True) if ok}


def test_a_crf_ensemble_is_the_normalised_geometric_mean_of_its_members(crf_runs):
    """p_ens(y | x) ∝ Π_m p_m(y | x)^(1/M), checked over every path of a 3-token sentence; its
    marginals and Viterbi path are those of that distribution."""
    members = [load_task(crf_runs / f"crf{seed}") for seed in range(3)]
    both = ensemble(members)
    tokens = ["Bob", "met", "Ann"]
    per_member = [_path_log_probs(m, tokens) for m in members]
    ours = _path_log_probs(both, tokens)
    assert set(ours) == set(per_member[0])  # the same constraints: the same allowed paths
    geometric = {p: np.mean([lp[p] for lp in per_member]) for p in ours}
    log_z = np.log(sum(np.exp(v) for v in geometric.values()))
    for path, log_p in ours.items():
        assert log_p == pytest.approx(geometric[path] - log_z, abs=1e-5)
    best = max(ours, key=ours.__getitem__)
    assert both.predict_ids(both.collate([both.encode_input(tokens)]))[0] == list(best)
    marginals = np.zeros((len(tokens), len(both.tags)))
    for path, log_p in ours.items():
        marginals[np.arange(len(tokens)), list(path)] += np.exp(log_p)
    with torch.no_grad():
        p = both.probabilities(both.collate([both.encode_input(tokens)]))[0].numpy()
    assert np.allclose(p, marginals, atol=1e-5)


def test_mean_crf_averages_the_scores_and_keeps_the_constraints(crf_runs):
    crfs = [load_task(crf_runs / f"crf{seed}").network.crf for seed in range(3)]
    mean = mean_crf(crfs)
    assert torch.allclose(mean.transitions, torch.stack([c.transitions for c in crfs]).mean(0))
    assert torch.equal(mean.trans_allowed, crfs[0].trans_allowed) and not bool(mean.trans_allowed.all())


def test_a_model_with_itself_predicts_as_the_model(crf_runs, tmp_path):
    """Averaging identical scores changes nothing: tags and marginals equal the member's."""
    run = crf_runs / "crf0"
    save_ensemble([run, run], tmp_path / "twice")
    alone, twice = birnn.load(run), birnn.load(tmp_path / "twice")
    sentences = [tokens for tokens, _ in NER] + [["Zed", "in", "Rome", "met", "Ann"]]
    assert twice.predict(sentences) == alone.predict(sentences)
    for a, b in zip(alone.predict_proba(sentences), twice.predict_proba(sentences), strict=True):
        assert np.allclose(a, b, atol=1e-6)


def _renumbered(twin: TaggingTask) -> TaggingTask:
    """``twin`` (changed in place) with its tags numbered in reverse: output rows and CRF scores permuted."""
    order = torch.arange(len(twin.tags) - 1, -1, -1)  # new id k is old id order[k]
    twin.tags = Vocab([twin.tags.itos[int(i)] for i in order], specials=False)
    with torch.no_grad():
        output, crf = twin.network.output, twin.network.crf
        output.weight.copy_(output.weight[order])
        output.bias.copy_(output.bias[order])
        for name in ("start", "end", "start_allowed", "end_allowed"):
            getattr(crf, name).copy_(getattr(crf, name)[order])
        for name in ("transitions", "trans_allowed"):
            getattr(crf, name).copy_(getattr(crf, name)[order][:, order])
    return twin


def test_members_that_number_the_tags_differently_are_put_in_one_order(crf_runs):
    """A tagger and its twin with the tags renumbered (as training on other data can do) make an
    ensemble that predicts as the tagger alone, marginals included."""
    alone = load_task(crf_runs / "crf0")
    twin = _renumbered(load_task(crf_runs / "crf0"))
    assert twin.tags.itos != alone.tags.itos
    both = ensemble([alone, twin])
    sentences = [tokens for tokens, _ in NER] + [["Zed", "in", "Rome", "met", "Ann"]]
    with torch.no_grad():
        for tokens in sentences:
            expected = alone.predict_with_proba(alone.collate([alone.encode_input(tokens)]))[0]
            assert twin.predict(twin.collate([twin.encode_input(tokens)]))[0] == expected[0]
            tags, p = both.predict_with_proba(both.collate([both.encode_input(tokens)]))[0]
            assert tags == expected[0] and np.allclose(p, expected[1], atol=1e-6)


def test_softmax_taggers_average_log_probabilities(tmp_path):
    members = [_tagger(tmp_path, f"soft{seed}", seed, crf=False) for seed in range(2)]
    both = ensemble(members)
    batch = both.collate([both.encode_input(tokens) for tokens, _ in NER])
    with torch.no_grad():
        p = [torch.softmax(m._emissions(b), -1) for m, b in zip(members, batch.members, strict=True)]
        geometric = (p[0] * p[1]).sqrt()
        expected = geometric / geometric.sum(-1, keepdim=True)
        got = both.probabilities(batch)
    valid = batch.lengths[:, None] > torch.arange(batch.inputs.shape[1])[None, :]
    assert torch.allclose(got[valid], expected[valid], atol=1e-6)


def test_members_may_differ_in_vocabulary_and_size(tmp_path):
    """A member trained on other sentences (another word vocabulary) with other sizes joins, as long
    as the tags are the same; each reads the sentence through its own vocabulary."""
    small = _tagger(tmp_path, "a", 0)
    other = [(["Eve", "saw", "Ann"], ["B-PER", "O", "B-PER"]), (["Rome", "and", "Lee", "Paris"],
                                                                 ["B-LOC", "O", "B-PER", "I-PER"])]
    wide = _tagger(tmp_path, "b", 1, sentences=NER + other, shape_embedding=4)
    assert wide.tags.itos == small.tags.itos and wide.words.itos != small.words.itos
    task = save_ensemble([tmp_path / "a", tmp_path / "b"], tmp_path / "ens")
    assert len(task.members) == 2
    predicted = birnn.load(tmp_path / "ens").predict([["Eve", "saw", "Paris"], ["Bob"]])
    assert [len(tags) for tags in predicted] == [3, 1]


def test_the_saved_ensemble_stands_alone_and_evaluates(crf_runs, tmp_path, capsys):
    copies = []
    for seed in range(2):
        shutil.copytree(crf_runs / f"crf{seed}", tmp_path / f"m{seed}", symlinks=True)
        copies.append(str(tmp_path / f"m{seed}"))
    data = tmp_path / "dev.conll"
    write_conll(data, NER)
    assert main(["ensemble", *copies, "--out", str(tmp_path / "ens")]) == 0
    assert "an ensemble of 2 taggers" in capsys.readouterr().out
    for member in copies:
        shutil.rmtree(member)  # the ensemble holds its members' weights
    assert main(["evaluate", str(tmp_path / "ens"), "--data", str(data)]) == 0
    assert "f1" in capsys.readouterr().out
    text = tmp_path / "in.txt"
    text.write_text("Ann met Bob\n")
    assert main(["predict", str(tmp_path / "ens"), str(text)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


@pytest.mark.parametrize("nb_ngrams", [(0, 0), (0, 2)])  # the second: a member with Naive Bayes scores
def test_a_classifier_ensemble_averages_log_probabilities(tmp_path, nb_ngrams):
    data = polarity(30)
    for seed in range(2):
        config = ClassifierConfig(hidden=6, embedding=6, seed=seed, nb_ngrams=nb_ngrams[seed])
        task = ClassificationTask.for_data(config, data)
        examples = task.encode(data)
        Trainer(task, examples, examples[:4], TrainConfig(epochs=1, batch_size=8, seed=seed), tmp_path / f"c{seed}",
                progress=False).fit()
    members = [load_task(tmp_path / f"c{seed}") for seed in range(2)]
    both = save_ensemble([tmp_path / "c0", tmp_path / "c1"], tmp_path / "ens")
    batch = both.collate([both.encode_input(tokens) for tokens, _ in data[:5]])
    with torch.no_grad():
        p = [torch.softmax(m._logits(b), -1) for m, b in zip(members, batch.members, strict=True)]
        geometric = (p[0] * p[1]).sqrt()
        assert torch.allclose(both.probabilities(batch), geometric / geometric.sum(-1, keepdim=True), atol=1e-6)
    loaded = birnn.load(tmp_path / "ens")
    assert loaded.kind == "classify" and len(loaded.predict([tokens for tokens, _ in data[:3]])) == 3


def test_refusals_are_one_line(crf_runs, tmp_path, capsys):
    run = str(crf_runs / "crf0")
    with pytest.raises(ValueError, match="at least two members"):
        ensemble([load_task(run)])
    pos = _tagger(tmp_path, "pos", 0, sentences=[(["a", "b"], ["X", "Y"])])
    with pytest.raises(ValueError, match="share their tags"):
        ensemble([load_task(run), pos])
    with pytest.raises(ValueError, match="all have a CRF output or all a softmax"):
        ensemble([load_task(run), _tagger(tmp_path, "soft", 0, crf=False)])
    save_ensemble([run, run], tmp_path / "ens")
    with pytest.raises(ValueError, match="cannot itself be an ensemble"):
        ensemble([load_task(tmp_path / "ens"), load_task(run)])
    cases = [
        (["ensemble", run, run, "--out", str(tmp_path / "ens")], "already holds a run"),
        (["ensemble", run, str(tmp_path / "missing"), "--out", str(tmp_path / "e2")], "no such run directory"),
        (["export", str(tmp_path / "ens"), "--to", str(tmp_path / "e.onnx")],
         "ensemble of 2 models cannot be exported"),
        (["ensemble", "--out", str(tmp_path / "e3")], "Missing argument"),
    ]
    for arguments, message in cases:
        assert main(arguments) == 2, arguments
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
