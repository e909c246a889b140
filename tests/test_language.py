"""The Time Machine experiments on small generated text: the LM learns, a BiLSTM "cheats", cloze fills."""

from __future__ import annotations

import functools
import json
import math

import pytest

from birnn.cli import main
from birnn.data.streams import sequential_partition, windows
from birnn.data.timemachine import clean_lines, load_characters
from birnn.tasks.cloze import ClozeConfig, ClozeTask, masked_examples, matched_hidden
from birnn.tasks.language_model import LanguageModelTask, LMConfig
from birnn.train import TrainConfig, Trainer, evaluate
from conftest import SHARED_DATA

TEXT = "the time traveller for so it will be convenient to speak of him was expounding a recondite matter to us " * 4


def _train_lm(model: str, tmp_path, epochs: int = 25):
    task = LanguageModelTask.for_text(LMConfig(model=model, hidden=32, layers=1, embedding=16), TEXT)
    ids = task.vocab.encode(TEXT)
    data = windows(ids, 20)
    before = evaluate(task, data)["perplexity"]
    config = TrainConfig(epochs=epochs, batch_size=8, lr=1e-2, clip=1.0)
    Trainer(task, data, None, config, tmp_path / model, progress=False).fit()
    return task, ids, before


def test_d2l_preprocessing():
    assert clean_lines("The Time Machine, by H. G. Wells [1898]\n\n I.") == ["the time machine by h g wells", "", "i"]


@pytest.mark.skipif(not (SHARED_DATA / "timemachine" / "timemachine.txt").is_file(), reason="no shared corpora")
def test_d2l_corpus_has_d2l_size():
    path = SHARED_DATA / "timemachine" / "timemachine.txt"
    corpus = load_characters(path)
    assert len(corpus) == 170_580 and set(corpus) <= set("abcdefghijklmnopqrstuvwxyz ")
    assert len(load_characters(path, max_tokens=10_000)) == 10_000


def test_bidirectional_lm_cheats_in_training_but_not_causally(tmp_path):
    uni, ids, uni_before = _train_lm("lstm", tmp_path)
    bi, _, _ = _train_lm("bilstm", tmp_path)
    uni_train, bi_train = evaluate(uni, windows(ids, 20))["perplexity"], evaluate(bi, windows(ids, 20))["perplexity"]
    assert uni_train < uni_before / 2  # the pipeline learns
    assert bi_train < uni_train  # the backward direction has read the answer
    assert bi_train < 1.5
    assert bi.causal_perplexity(ids, 20) > uni.causal_perplexity(ids, 20)  # with only the prefix it is worse
    assert uni.generate("the time tr", 10).startswith("the time traveller")


def test_fill_recovers_an_unambiguous_blank(tmp_path):
    tokens = list("abcdefgh" * 60)
    task = ClozeTask.for_tokens(ClozeConfig(hidden=16, embedding=8, rate=0.2), tokens)
    ids = task.vocab.encode(tokens)
    train = masked_examples(ids, task.mask_id, 16, 0.2, 4, seed=0)
    Trainer(task, train, None, TrainConfig(epochs=6, batch_size=16, lr=1e-2), tmp_path, progress=False).fit()
    (best, probability), *_ = task.fill("abc_efg")[0]
    assert best == "d" and probability > 0.5
    with pytest.raises(ValueError, match="at least one blank"):
        task.fill("abcdefg")
    every = task.fill("abc_efg", top=100_000)[0]  # at most all: the 8 letters, never <pad>, <unk>, <mask>
    assert sorted(token for token, _ in every) == list("abcdefgh") and len(task.vocab) == 11
    assert sum(p for _, p in every) == pytest.approx(1.0)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=rf"top must be a positive integer; got {bad!r}"):
            task.fill("abc_efg", top=bad)


def test_fill_in_word_mode_reads_mask_in_any_case(tmp_path):
    words = "the time traveller was one of those men who are too clever to be believed".split() * 30
    task = ClozeTask.for_tokens(ClozeConfig(unit="word", hidden=16, embedding=8, rate=0.2), words)
    ids = task.vocab.encode(words)
    train = masked_examples(ids, task.mask_id, 15, 0.2, 4, seed=0)
    Trainer(task, train, None, TrainConfig(epochs=8, batch_size=16, lr=1e-2), tmp_path, progress=False).fit()
    (best, _), *_ = task.fill("the time [MASK] was one of those")[0]
    assert best == "traveller"
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        task.fill("the time traveller")


def test_matched_hidden_equalises_recurrent_parameters():
    h = matched_hidden(32, 128)
    units = 2 * h
    uni = 4 * units * (32 + units) + 8 * units
    bi = 2 * (4 * 128 * (32 + 128) + 8 * 128)
    assert abs(uni - bi) / bi < 0.02


def test_cli_lm_generate_cloze_fill(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    lm = ["train", "lm", "--data", str(text), "--model", "bilstm", "--hidden", "16", "--epochs", "2"]
    assert main([*lm, "--steps", "10", "--out", str(tmp_path / "lm"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "training perplexity" in out and "causal held-out perplexity" in out
    assert main(["generate", str(tmp_path / "lm"), "--prefix", "the", "--chars", "5", "--temperature", "1"]) == 0
    assert len(capsys.readouterr().out.strip()) == 8
    cloze = ["train", "cloze", "--data", str(text), "--hidden", "8", "--epochs", "1", "--steps", "16"]
    assert main([*cloze, "--out", str(tmp_path / "cloze"), "--quiet"]) == 0
    assert "held-out masked-char accuracy" in capsys.readouterr().out
    assert main(["fill", str(tmp_path / "cloze"), "the ti_e", "--top", "3"]) == 0
    assert capsys.readouterr().out.startswith("blank 1: ")
    assert main(["fill", str(tmp_path / "cloze"), "the ti_e", "--top", "100000"]) == 0  # all candidates
    assert capsys.readouterr().out.count("'") == 2 * (len(ClozeTask.from_description(
        json.loads((tmp_path / "cloze" / "checkpoint" / "state.json").read_text())["task"]).vocab) - 3)
    assert main(["fill", str(tmp_path / "cloze"), "no blank here"]) == 2
    assert main(["generate", str(tmp_path / "cloze")]) == 2  # a cloze run is not a language model
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("birnn: error:") for e in errors)


@pytest.mark.slow
def test_d2l_reproduction(tmp_path):
    """d2l's setting: 10,000 characters, batch 32, 35 steps, hidden 256, 2 layers, SGD, clip 1, 500 epochs,
    sequential partitioning with the state carried across batches."""
    path = SHARED_DATA / "timemachine" / "timemachine.txt"
    if not path.is_file():
        pytest.skip("The Time Machine is not in ../shared/data")
    text = load_characters(path, 10_000)
    results = {}
    for model, lr in (("lstm", 2.0), ("bilstm", 1.0)):
        task = LanguageModelTask.for_text(LMConfig.d2l(model), text)
        ids = task.vocab.encode(text)
        config = TrainConfig(epochs=500, batch_size=32, optimizer="sgd", lr=lr, clip=1.0, shuffle=False)
        data = functools.partial(sequential_partition, ids, 32, 35, 0)
        summary = Trainer(task, data, None, config, tmp_path / model, progress=False).fit()
        trained = math.exp(summary["last"]["train_loss"])
        results[model] = (trained, task.causal_perplexity(ids, 35), task.generate("time traveller", 50))
    assert results["lstm"][0] < 1.2 and results["bilstm"][0] < 1.3  # d2l: 1.0 and 1.1
    assert results["lstm"][2].startswith("time traveller")
    assert results["bilstm"][1] > 5 * results["bilstm"][0]  # with only the prefix, the cheat is gone


def _generate_by_reading_everything(task, prefix, chars):
    """Greedy generation that feeds the whole text again for every character (quadratic, the definition)."""
    import torch

    ids = task.vocab.encode(prefix)
    for _ in range(chars):
        logits = task.model(torch.tensor([ids]), torch.tensor([len(ids)]))[0][0, -1]
        logits[:2] = -math.inf
        ids.append(int(logits.argmax()))
    return "".join(task.vocab.decode(ids))


@pytest.mark.parametrize("model", ["lstm", "gru", "bilstm"])
def test_generation_is_linear_and_equals_reading_everything(model, monkeypatch):
    task = LanguageModelTask.for_text(LMConfig(model=model, hidden=8, layers=2, embedding=4), TEXT)
    task.model.eval()
    expected = _generate_by_reading_everything(task, "the time", 40)
    fed = []
    forward = type(task.model).forward

    def counted(self, x, *rest):
        fed.append(x.numel())
        return forward(self, x, *rest)

    monkeypatch.setattr(type(task.model), "forward", counted)
    assert task.generate("the time", 40, context=60) == expected  # 48 characters: all within the context
    if model == "bilstm":
        assert max(fed) <= 60
        fed.clear()
        task.generate("the time", 200, context=30)
        assert max(fed) == 30 and len(fed) == 200  # each step reads at most `context` characters
    else:
        assert fed == [len("the time")] + [1] * 39  # the prefix once, then one character a step
