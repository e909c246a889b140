"""Sentence classification: pooling by value and padding invariance, the classifier learns, readers,
stratified folds, metrics against scikit-learn, `birnn train classify` with and without --cv, and a
classifier reading a frozen biLM (`--bilm RUN`)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import birnn
from birnn.cli import main
from birnn.data.textclass import decode, read_labelled, tokenize
from birnn.experiments import classify as classify_experiment
from birnn.experiments.bilm import load_embedder
from birnn.experiments.classify import ClassifyRun, stratified_folds, stratified_split
from birnn.nn import BiRNN
from birnn.nn.pooling import POOLS, attention_pool, max_pool, mean_pool, summary_pool
from birnn.tasks import (
    BiLMConfig,
    BiLMTask,
    ClassificationTask,
    ClassifierConfig,
    TaggerConfig,
    TaggingTask,
    from_description,
)
from birnn.tasks.classifier import confusion_scores
from birnn.tasks.exportable import onnx_graph
from birnn.train import TrainConfig, Trainer, evaluate, load_task
from birnn.train.checkpoint import exists
from train_helpers import tagged_sentences

SMALL = {"hidden": 8, "embedding": 8, "dropout": 0.0}


def polarity(n: int, seed: int = 0) -> list[tuple[list[str], str]]:
    """Random filler sentences; the label is the polar word ("good"/"bad") placed anywhere in them."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = [f"w{int(v)}" for v in rng.integers(0, 12, size=int(rng.integers(2, 9)))]
        label = "pos" if rng.random() < 0.5 else "neg"
        words.insert(int(rng.integers(0, len(words) + 1)), "good" if label == "pos" else "bad")
        out.append((words, label))
    return out


# ----- pooling ---------------------------------------------------------------------------------------
def _padded(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(3, 6, 4, generator=g, dtype=torch.float64)
    return h, torch.tensor([6, 2, 4])


def test_pools_equal_their_definition_on_each_unpadded_sequence():
    h, lengths = _padded()
    scores = torch.randn(3, 6, dtype=torch.float64)
    garbage = h.clone()
    for b, n in enumerate(lengths.tolist()):
        garbage[b, n:] = 1e6  # padding must never reach a result
    for b, n in enumerate(lengths.tolist()):
        seq = h[b, :n]
        alpha = torch.exp(scores[b, :n]) / torch.exp(scores[b, :n]).sum()
        expected = {
            "summary": torch.cat([seq[-1, :2], seq[0, 2:]]),
            "mean": seq.sum(0) / n,
            "max": torch.tensor([max(seq[:, d].tolist()) for d in range(4)], dtype=torch.float64),
            "attention": (alpha[:, None] * seq).sum(0),
        }
        got = {
            "summary": summary_pool(garbage, lengths, 2)[b],
            "mean": mean_pool(garbage, lengths)[b],
            "max": max_pool(garbage, lengths)[b],
            "attention": attention_pool(garbage, lengths, scores)[b],
        }
        for name, value in expected.items():
            torch.testing.assert_close(got[name], value, msg=name)


def test_summary_pool_is_the_birnn_final_states():
    torch.manual_seed(0)
    rnn = BiRNN(3, 5)
    x, lengths = torch.randn(3, 7, 3), torch.tensor([7, 3, 5])
    out = rnn(x, lengths)
    torch.testing.assert_close(summary_pool(out.output, lengths, 5), out.summary)


def test_attention_pool_gradient_by_finite_differences():
    h, lengths = _padded(1)
    h.requires_grad_(True)
    scores = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, s: attention_pool(a, lengths, s), (h, scores))


def test_pool_errors_name_the_argument():
    h, _ = _padded()
    with pytest.raises(ValueError, match="lengths must lie in"):
        mean_pool(h, torch.tensor([7, 1, 1]))
    with pytest.raises(ValueError, match="pool must be one of"):
        ClassifierConfig(pool="first")


# ----- the network -------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["bilstm", "lstm"])
@pytest.mark.parametrize("pool", POOLS)
def test_a_sentence_scores_the_same_alone_and_in_a_padded_batch(model, pool):
    sentences = polarity(20)
    task = ClassificationTask.for_data(ClassifierConfig(model=model, pool=pool, chars="lstm", char_hidden=4, **SMALL),
                                       sentences)
    task.model.eval()
    short, long = ["w1", "good", "w2"], ["w3"] * 8
    alone = task.probabilities(task.collate([task.encode_input(short)]))[0]
    batched = task.probabilities(task.collate([task.encode_input(long), task.encode_input(short)]))[1]
    if pool == "last":  # reads the padding column (zeros) in the batch: the mistake it shows
        assert not torch.allclose(alone, batched, atol=1e-4)
    else:
        torch.testing.assert_close(alone, batched, atol=1e-6, rtol=1e-5)


def test_last_differs_from_summary_for_a_bidirectional_encoder_even_without_padding():
    task = ClassificationTask.for_data(ClassifierConfig(pool="summary", **SMALL), polarity(20))
    batch = task.collate([task.encode_input(["w1", "good", "w2", "w3"])])
    h, _ = task.network.encoder(task.network.embedding(batch.inputs), batch.lengths)
    summary = summary_pool(h, batch.lengths, 8)
    torch.testing.assert_close(summary[:, :8], h[:, -1, :8])  # forward halves agree on a full row
    assert not torch.allclose(summary[:, 8:], h[:, -1, 8:])  # ←h at the last step has read one token


@pytest.mark.parametrize("pool", ["summary", "attention"])
def test_gradient_reaches_every_parameter(pool):
    task = ClassificationTask.for_data(ClassifierConfig(pool=pool, chars="cnn", char_hidden=4, word_dropout=0.5,
                                                        **SMALL), polarity(20))
    task.loss(task.collate(task.encode(polarity(8, seed=1)))).backward()
    missing = [name for name, p in task.model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_the_classifier_learns_and_round_trips(tmp_path, capsys):
    data = polarity(400)
    task = ClassificationTask.for_data(ClassifierConfig(pool="max", hidden=16, embedding=16, dropout=0.1), data)
    examples = task.encode(data)
    before = evaluate(task, examples[300:])["accuracy"]
    Trainer(task, examples[:300], examples[300:], TrainConfig(epochs=4, lr=1e-2, batch_size=16), tmp_path,
            progress=False).fit()
    metrics = evaluate(task, examples[300:])
    assert metrics["accuracy"] > 0.95 > before + 0.2 and metrics["macro_f1"] > 0.95

    model = birnn.load(tmp_path)
    assert model.kind == "classify" and model.labels == ["neg", "pos"]
    sentences = [["w1", "good"], ["bad", "w2", "w3", "w4", "w5", "w6"], ["w3", "w4", "bad"], ["good"]]
    assert model.predict(sentences) == ["pos", "neg", "neg", "pos"]  # input order, lengths mixed
    p = np.stack(model.predict_proba(sentences))
    assert p.shape == (4, 2) and np.allclose(p.sum(1), 1) and (p.argmax(1) == [1, 0, 0, 1]).all()
    (tmp_path / "in.txt").write_text("w1 good\n\nbad w2 w3\n")
    assert main(["predict", str(tmp_path), str(tmp_path / "in.txt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["pos", "", "neg"] and 0.5 < float(lines[0].split("\t")[1]) <= 1
    assert main(["predict", str(tmp_path), str(tmp_path / "in.txt"), "--format", "json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert records[1]["label"] == "neg" and set(records[1]["p"]) == {"neg", "pos"}
    assert records[1]["p"]["neg"] == pytest.approx(model.predict_proba([["bad", "w2", "w3"]])[0][0], abs=1e-5)

    rebuilt = from_description(json.loads(json.dumps(task.describe())))
    rebuilt.model.load_state_dict(task.model.state_dict())
    rebuilt.model.eval(), task.model.eval()
    batch = task.collate(task.encode(data[:5]))
    torch.testing.assert_close(rebuilt.probabilities(batch), task.probabilities(batch))


def test_unknown_labels_name_the_source():
    task = ClassificationTask.for_data(ClassifierConfig(**SMALL), polarity(10))
    with pytest.raises(ValueError, match="dev.tsv: labels not seen in training: neutral"):
        task.encode([(["x"], "neutral")], "dev.tsv")


# ----- metrics and splits ------------------------------------------------------------------------
def test_confusion_scores_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    gold, predicted = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    predicted[predicted == 3] = 2  # a label never predicted: F1 0
    matrix = metrics.confusion_matrix(gold, predicted, labels=range(4))
    scores = confusion_scores(matrix)
    assert scores["accuracy"] == pytest.approx(metrics.accuracy_score(gold, predicted))
    np.testing.assert_allclose(scores["f1"], metrics.f1_score(gold, predicted, average=None, labels=range(4),
                                                              zero_division=0))


def test_stratified_folds_cover_every_example_once_and_keep_the_class_balance():
    labels = ["a"] * 31 + ["b"] * 9 + ["c"] * 3
    folds = stratified_folds(labels, 5, seed=3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(labels)))
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    for label, count in (("a", 31), ("b", 9)):
        per_fold = [sum(labels[i] == label for i in fold) for fold in folds]
        assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == count
    assert [f.tolist() for f in folds] == [f.tolist() for f in stratified_folds(labels, 5, seed=3)]
    kept, held = stratified_split(labels, 0.2, seed=0)
    assert sorted([*kept, *held]) == list(range(43)) and sum(labels[i] == "a" for i in held) == 6


# ----- readers -------------------------------------------------------------------------------------
def test_readers_for_every_format(tmp_path):
    (tmp_path / "tsv").write_text("pos\tA fine film .\n\nneg\tdull\n")
    (tmp_path / "d.csv").write_text('label,text\npos,"fine, really"\nneg,dull\n')
    (tmp_path / "d.jsonl").write_text('{"text": "fine film", "y": 1}\n{"text": "dull", "y": 0}\n')
    folder = tmp_path / "polarity"
    folder.mkdir()
    (folder / "rt.pos").write_bytes(b"caf\xe9 fine \x85 film\n")  # cp1252, as the original MR files
    (folder / "rt.neg").write_text("dull\nvery dull\n")
    (folder / "README.txt").write_text("not a class\n")
    assert read_labelled(tmp_path / "tsv").examples == [(["A", "fine", "film", "."], "pos"), (["dull"], "neg")]
    assert read_labelled(tmp_path / "d.csv", tokenizer="regex").examples[0] == (["fine", ",", "really"], "pos")
    assert read_labelled(tmp_path / "d.jsonl", label_field="y").examples[1] == (["dull"], "0")
    data = read_labelled(folder)
    assert data.examples == [(["dull"], "neg"), (["very", "dull"], "neg"), (["café", "fine", "…", "film"], "pos")]
    assert data.encodings == {str(folder / "rt.neg"): "utf-8", str(folder / "rt.pos"): "cp1252"}
    assert read_labelled([folder / "rt.pos", folder / "rt.neg"]).examples[0][1] == "pos"


def test_decode_keeps_nel_out_of_line_breaks_and_tokenize_regex():
    text, codec = decode(b"one \x85 two\x81\nthree")
    assert codec == "cp1252" and text.split("\n") == ["one \u2026 two\x81", "three"]
    assert tokenize("It's 2.5 hours, well-made!", "regex") == ["It's", "2.5", "hours", ",", "well-made", "!"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.tsv", "pos\tfine\nno tab here\n", r"bad.tsv:2: expected 'label<TAB>text'"),
        ("bad.jsonl", '{"text": "a", "label": 1}\n{oops\n', r"bad.jsonl:2: not valid JSON"),
        ("bad.csv", "label,words\npos,a\n", r"bad.csv:1: no column 'text'"),
        ("empty.tsv", "pos\t   \n", r"empty.tsv:1: the text is empty"),
    ],
)
def test_reader_errors_name_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message):
        read_labelled(tmp_path / name)


# ----- the command line ----------------------------------------------------------------------------
def _write_tsv(path, pairs) -> None:
    path.write_text("".join(f"{label}\t{' '.join(tokens)}\n" for tokens, label in pairs))


def test_train_classify_once_with_test_file(tmp_path, capsys):
    _write_tsv(tmp_path / "train.tsv", polarity(200))
    _write_tsv(tmp_path / "test.tsv", polarity(60, seed=1))
    args = ["train", "classify", "--train", str(tmp_path / "train.tsv"), "--test", str(tmp_path / "test.tsv"),
            "--hidden", "8", "--embedding", "8", "--epochs", "3", "--lr", "0.01", "--out", str(tmp_path / "run"),
            "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "gold \\ predicted" in out
    assert (tmp_path / "run" / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_train_classify_cross_validation_resumes_by_skipping_finished_folds(tmp_path, capsys):
    _write_tsv(tmp_path / "train.tsv", polarity(120))
    out = tmp_path / "cv"
    args = ["train", "classify", "--train", str(tmp_path / "train.tsv"), "--cv", "3", "--hidden", "4",
            "--embedding", "4", "--epochs", "1", "--out", str(out), "--quiet"]
    assert main(args) == 0
    summary = json.loads((out / "cv.json").read_text())
    assert len(summary["folds"]) == 3 and 0 <= summary["accuracy_sd"] and (out / "confusion.png").is_file()
    assert sum(np.sum(f["confusion"]) for f in summary["folds"]) == 120
    assert "3-fold accuracy" in capsys.readouterr().out
    assert main(args) == 2  # an existing cross-validation is not silently redone
    (out / "fold-03" / "result.json").unlink()
    assert main([*args, "--resume"]) == 0
    log = capsys.readouterr().out
    assert log.count("finished earlier") == 2 and "fold 3/3: test accuracy" in log


def test_device_is_where_the_classifier_trains_and_a_missing_one_is_one_line(tmp_path, capsys, monkeypatch):
    _write_tsv(tmp_path / "train.tsv", polarity(60))
    args = ["train", "classify", "--train", str(tmp_path / "train.tsv"), "--hidden", "4", "--embedding", "4",
            "--epochs", "1", "--quiet"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([*args, "--device", "cuda", "--out", str(tmp_path / "gpu")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torch sees no CUDA device" in err and not (tmp_path / "gpu").exists()
    assert main([*args, "--device", "cpu", "--out", str(tmp_path / "cpu")]) == 0
    assert main([*args, "--device", "auto", "--out", str(tmp_path / "auto"), "--cv", "2"]) == 0


def test_bad_settings_exit_2(tmp_path, capsys):
    _write_tsv(tmp_path / "train.tsv", polarity(20))
    assert main(["train", "classify", "--train", str(tmp_path / "train.tsv"), "--cv", "1"]) == 2
    assert main(["train", "classify", "--train", str(tmp_path / "nothing.tsv")]) == 2
    assert "nothing.tsv: no such file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no test file with cv"):
        ClassifyRun.build([tmp_path / "train.tsv"], cv=3, test_file=tmp_path / "x")


# ----- a frozen biLM (--bilm RUN) ------------------------------------------------------------------
def _untrained_embedder(sentences):
    return BiLMTask.for_text(BiLMConfig(hidden=5, embedding=4), [" ".join(t) for t in sentences]).embedder()


@pytest.fixture(scope="module")
def bilm_run(tmp_path_factory):
    """A tiny biLM run, trained for one epoch on the text of the generated sentences."""
    lines = [" ".join(tokens) for tokens, _ in polarity(120, seed=5)]
    task = BiLMTask.for_text(BiLMConfig(hidden=6, embedding=4), lines)
    out = tmp_path_factory.mktemp("bilm") / "run"
    Trainer(task, task.text_examples(lines, 100), None, TrainConfig(epochs=1, batch_size=32), out,
            progress=False).fit()
    return out


def _bilm_args(train, out, bilm, *more: str) -> list[str]:
    return ["train", "classify", "--train", str(train), "--bilm", str(bilm), "--hidden", "6", "--embedding", "6",
            "--lr", "0.01", "--out", str(out), "--quiet", *more]


def test_a_classifier_with_a_bilm_trains_from_the_cli_and_runs_without_the_bilm_run(tmp_path, bilm_run, capsys):
    bilm = tmp_path / "bilm"
    shutil.copytree(bilm_run, bilm)
    _write_tsv(tmp_path / "train.tsv", polarity(120))
    test = polarity(40, seed=1)
    _write_tsv(tmp_path / "test.tsv", test)
    run = tmp_path / "run"
    assert main(_bilm_args(tmp_path / "train.tsv", run, bilm, "--test", str(tmp_path / "test.tsv"),
                           "--epochs", "1")) == 0
    printed = capsys.readouterr().out.split("test accuracy ")[1].split(",")[0]
    frozen = load_embedder(bilm).state_dict()
    model = birnn.load(run)
    assert model.task.describe()["config"]["bilm"] == str(bilm) and model.task.network.bilm.dim == 12
    for name, value in model.task.network.bilm.state_dict().items():
        assert torch.equal(value, frozen[name]), name  # saved in the classifier's checkpoint, unchanged by training
    sentences = [tokens for tokens, _ in polarity(30, seed=2)]
    labels, p = model.predict(sentences), np.stack(model.predict_proba(sentences))

    shutil.rmtree(bilm)  # from here on, only the classifier's run directory
    again = birnn.load(run)
    assert again.predict(sentences) == labels
    np.testing.assert_array_equal(np.stack(again.predict_proba(sentences)), p)
    assert f"{evaluate(again.task, again.task.encode(test))['accuracy']:.4f}" == printed
    (tmp_path / "in.txt").write_text("\n".join(" ".join(tokens) for tokens in sentences[:3]) + "\n")
    assert main(["predict", str(run), str(tmp_path / "in.txt")]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == labels[:3]
    assert main(_bilm_args(tmp_path / "train.tsv", run, bilm, "--epochs", "2", "--resume")) == 0
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2

    assert main(["export", str(run), "--to", str(tmp_path / "model.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "classifier that reads biLM vectors cannot be exported" in err
    assert main(_bilm_args(tmp_path / "train.tsv", tmp_path / "other", run)) == 2  # a classifier is no biLM
    assert "a classify run, not a biLM" in capsys.readouterr().err


@pytest.mark.parametrize("pool", ["summary", "max", "attention"])
def test_a_classifier_with_a_bilm_scores_a_sentence_the_same_alone_and_in_a_padded_batch(pool):
    data = polarity(20)
    task = ClassificationTask.for_data(ClassifierConfig(pool=pool, bilm="untrained", **SMALL), data,
                                       _untrained_embedder([t for t, _ in data]))
    task.model.eval()
    short, middle, long = ["w1", "good", "w2"], ["bad", "w4"] * 3, ["w3"] * 9
    alone = task.probabilities(task.collate([task.encode_input(short)]))[0]
    batch = task.collate([task.encode_input(long), task.encode_input(short), task.encode_input(middle)])
    assert batch.context.shape == (3, 9, 10)
    torch.testing.assert_close(task.probabilities(batch)[1], alone, atol=1e-6, rtol=1e-5)
    encoded = task.encode([(long, "neg"), (short, "pos"), (middle, "neg")])
    assert [e[3].shape for e in encoded] == [(9, 10), (3, 10), (6, 10)]  # computed once, at encode
    carried = task.collate(encoded)
    torch.testing.assert_close(carried.context, batch.context, atol=1e-6, rtol=0)
    zeroed = task.model(batch.inputs, batch.lengths, context=torch.zeros_like(batch.context))
    assert not torch.allclose(torch.softmax(zeroed, -1), task.probabilities(batch))  # the vectors are read


def test_a_bilm_stays_frozen_and_every_other_parameter_learns():
    data = polarity(20)
    with pytest.raises(ValueError, match="bilm"):
        ClassificationTask.for_data(ClassifierConfig(bilm="somewhere", **SMALL), data)
    task = ClassificationTask.for_data(ClassifierConfig(pool="attention", bilm="untrained", **SMALL), data,
                                       _untrained_embedder([t for t, _ in data]))
    with pytest.raises(ValueError, match=r"examples\[0\]: biLM vectors must be \(2, 10\)"):
        task.encode([(["w1", "good"], "pos", torch.zeros(3, 10))])
    task.model.train()
    assert not task.network.bilm.training
    task.loss(task.collate(task.encode(polarity(8, seed=1)))).backward()
    named = dict(task.model.named_parameters())
    assert all(named[n].grad is None for n in named if n.startswith("bilm."))
    missing = [n for n, p in named.items() if not n.startswith("bilm.") and (p.grad is None or not p.grad.abs().sum())]
    assert not missing, missing


def test_cross_validation_loads_the_bilm_once_and_resumed_folds_need_none(tmp_path, bilm_run, monkeypatch):
    loads, embedded = [], []

    def load_counted(path):
        embedder = load_embedder(path)
        vectors_of = embedder.vectors_of
        embedder.vectors_of = lambda sentences, *more: embedded.extend(sentences) or vectors_of(sentences, *more)
        loads.append(path)
        return embedder

    monkeypatch.setattr(classify_experiment, "load_embedder", load_counted)
    _write_tsv(tmp_path / "train.tsv", polarity(60))
    out = tmp_path / "cv"
    args = _bilm_args(tmp_path / "train.tsv", out, bilm_run, "--cv", "3", "--epochs", "1")
    assert main(args) == 0 and loads == [str(bilm_run)]
    assert len(embedded) == 60  # every sentence through the biLM once, for all three folds
    assert load_task(out / "fold-02").describe()["bilm"]["kind"] == "bilm"
    (out / "fold-03" / "result.json").unlink()
    assert main([*args, "--resume"]) == 0 and len(loads) == 1  # fold 3 continues its checkpoint, biLM inside


@pytest.mark.parametrize("cv", [[], ["--cv", "2"]])
def test_a_bad_bilm_path_is_one_line_and_exit_2_before_training(tmp_path, capsys, cv):
    _write_tsv(tmp_path / "train.tsv", polarity(20))
    out = tmp_path / "run"
    assert main(_bilm_args(tmp_path / "train.tsv", out, tmp_path / "nowhere", "--epochs", "1", *cv)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere" in err
    assert not exists(out / "checkpoint") and not list(out.glob("fold-*"))


def test_a_tagger_with_a_bilm_is_refused_by_export_as_a_classifier_is():
    sentences = tagged_sentences(10)
    task = TaggingTask.for_data(TaggerConfig(hidden=4, embedding=4, bilm="untrained"), sentences,
                                _untrained_embedder([t for t, _ in sentences]))
    with pytest.raises(ValueError, match="a tagger that reads biLM vectors cannot be exported"):
        onnx_graph(task)
