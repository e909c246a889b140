"""`birnn predict`: input formats (text, CoNLL columns, CoNLL-U carried through), output formats
(CoNLL, CoNLL-U with the column filled, JSON lines with marginals and spans), streaming, and the
probabilities of BIOES-trained taggers reported in the BIO labels of the data."""

from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pytest

import birnn
from birnn.cli import main
from birnn.serve.formats import Block, conllu_lines, json_record, open_lines, read_blocks, spans
from birnn.tasks import TaggerConfig, TaggingTask
from birnn.train import TrainConfig, Trainer
from train_helpers import tagged_sentences, write_conll

CONLLU = """# sent_id = 1
# text = Don't go.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No
3.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t3:ref\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def _lines(text: str):
    return enumerate(text.splitlines(), 1)


def test_conllu_blocks_keep_every_line_and_read_only_words():
    blocks = list(read_blocks(_lines(CONLLU), "conllu"))
    assert [b.tokens for b in blocks] == [["Do", "n't", "go", "."], ["Hi"]]
    out = conllu_lines(blocks[0], ["A", "B", "C", "D"])
    assert out[:3] == CONLLU.splitlines()[:3] and out[-1] == ""
    assert [line.split("\t")[3] for line in out[3:7]] == ["A", "B", "C", "VERB"]  # 3.1 keeps its UPOS
    assert out[7].split("\t")[3] == "D" and len(out) == 8 + 1
    assert conllu_lines(blocks[1], ["X"], "xpos")[0].split("\t")[3:5] == ["INTJ", "X"]


def test_text_and_conll_blocks():
    assert [b.tokens for b in read_blocks(_lines("a b\n\n c  d \n"), "text")] == [["a", "b"], [], ["c", "d"]]
    conll = "a\tX\nb\tY\n\n\nc\tZ\n"
    assert [b.tokens for b in read_blocks(_lines(conll), "conll")] == [["a", "b"], ["c"]]


def test_bad_conllu_line_names_file_and_line():
    with pytest.raises(ValueError, match=r"in\.conllu:2: .*10 tab-separated fields; got 2"):
        list(read_blocks(_lines("# c\n1\tDo\n"), "conllu", "in.conllu"))


def test_files_bom_crlf_bad_utf8_truncated_gzip(tmp_path):
    good = tmp_path / "in.txt"
    good.write_bytes(b"\xef\xbb\xbfa b\r\nc\r\n")
    assert [t for _, t in open_lines(good)] == ["a b", "c"]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nnot \xff utf-8\n")
    with pytest.raises(ValueError, match=r"bad\.txt:2: not UTF-8"):
        list(open_lines(bad))
    cut = tmp_path / "cut.txt.gz"
    whole = gzip.compress("".join(f"{i} {i * i}\n" for i in range(10_000)).encode())
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"cut\.txt\.gz: damaged or truncated gzip"):
        list(open_lines(cut))
    with pytest.raises(ValueError, match="input file not found"):
        list(open_lines(tmp_path / "missing.txt"))


def test_json_record_and_spans():
    block = Block(["Ann", "Lee", "in", "Rome"], [])
    labels = ["O", "B-PER", "I-PER", "B-LOC"]
    p = np.array([[0.1, 0.8, 0.1, 0.0], [0.1, 0.0, 0.9, 0.0], [0.7, 0.1, 0.1, 0.1], [0.2, 0.0, 0.0, 0.8]])
    tags = ["B-PER", "I-PER", "O", "B-LOC"]
    record = json_record(block, tags, p, labels, marginals=True)
    assert record["p"] == [0.8, 0.9, 0.7, 0.8]
    assert record["marginals"][1] == {"O": 0.1, "B-PER": 0.0, "I-PER": 0.9, "B-LOC": 0.0}
    assert record["spans"] == [{"type": "PER", "start": 0, "end": 2, "text": "Ann Lee"},
                               {"type": "LOC", "start": 3, "end": 4, "text": "Rome"}]
    assert spans(["a"], ["O"]) == []
    assert "spans" not in json_record(Block(["a"], []), ["NOUN"], None, ["NOUN", "VERB"])


def _ner(tmp_path, scheme: str):
    sentences = [
        (["Ann", "Lee", "met", "Bob", "in", "Paris"], ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"]),
        (["Paris", "is", "nice"], ["B-LOC", "O", "O"]),
    ]
    config = TaggerConfig(hidden=8, embedding=8, chars="lstm", char_hidden=4, crf=True, scheme=scheme)
    task = TaggingTask.for_data(config, sentences)
    data = task.encode(sentences * 20)
    Trainer(task, data, data[:2], TrainConfig(epochs=4, lr=2e-2, batch_size=4), tmp_path, progress=False).fit()
    return birnn.load(tmp_path), [tokens for tokens, _ in sentences]


def test_bioes_marginals_are_reported_in_bio_labels(tmp_path):
    """A BIOES-trained CRF: the columns are the data's BIO labels; each is the sum of the BIOES
    marginals that map to it (S-X -> B-X, E-X -> I-X), so rows still sum to 1."""
    model, tokens = _ner(tmp_path, "bioes")
    assert sorted(model.labels) == ["B-LOC", "B-PER", "I-PER", "O"]
    task = model.task
    emissions, crf = task._scores(task.collate([task.encode_input(tokens[0])]))
    internal = task._marginals(emissions, torch_lengths(tokens[0]), crf)
    bio = model.predict_proba(tokens[:1])[0]
    for j, label in enumerate(model.labels):
        parts = [k for k, tag in enumerate(task.tags.itos) if task._external_label(tag) == label]
        assert np.allclose(bio[:, j], internal[0, :, parts].sum(-1).detach().numpy(), atol=1e-6)
    assert np.allclose(bio.sum(-1), 1, atol=1e-5)
    both = model.task.predict_with_proba(task.collate([task.encode_input(t) for t in tokens]))
    assert [tags for tags, _ in both] == model.predict(tokens)
    assert all(np.allclose(p, q, atol=1e-6) for (_, p), q in zip(both, model.predict_proba(tokens), strict=True))


def torch_lengths(tokens):
    import torch

    return torch.tensor([len(tokens)])


def _stdin(monkeypatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))


def test_cli_formats(tmp_path, capsys, monkeypatch):
    model_dir = tmp_path / "ner"
    _ner(model_dir, "bio")
    _stdin(monkeypatch, "Ann Lee met Bob\nParis is nice\n")
    assert main(["predict", str(model_dir), "--format", "json", "--marginals"]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["tokens"] for r in records] == [["Ann", "Lee", "met", "Bob"], ["Paris", "is", "nice"]]
    assert all(len(r["p"]) == len(r["tags"]) == len(r["marginals"]) for r in records)
    assert all(sorted(r["marginals"][0]) == sorted(["B-LOC", "B-PER", "I-PER", "O"]) for r in records)
    assert all(isinstance(s["text"], str) for r in records for s in r["spans"])
    assert "2 sentences, 7 tokens in" in captured.err and "tokens/s" in captured.err

    pos_dir, conllu = tmp_path / "pos", tmp_path / "in.conllu"
    sentences = tagged_sentences(60, seed=4)
    train = tmp_path / "train.conll"
    write_conll(train, sentences)
    assert main(["train", "tag", "--train", str(train), "--hidden", "8", "--embedding", "8", "--epochs", "1",
                 "--out", str(pos_dir), "--quiet"]) == 0
    capsys.readouterr()
    conllu.write_text(CONLLU)
    assert main(["predict", str(pos_dir), str(conllu), "--format", "conllu"]) == 0
    out = capsys.readouterr().out.splitlines()
    source = CONLLU.splitlines()
    assert len(out) == len(source) + 1 and out[:3] == source[:3]
    assert {line.split("\t")[3] for line in out if line[:1].isdigit() and "-" not in line.split("\t")[0]
            and "." not in line.split("\t")[0]} <= {"A", "B", "C"}
    assert main(["predict", str(pos_dir), str(train), "--input", "conll"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in out if line] == [t for tokens, _ in sentences for t in tokens]


def test_cli_predict_usage_errors(tmp_path, capsys):
    assert main(["predict", str(tmp_path), "--format", "conllu", "--input", "text"]) == 2
    assert main(["predict", str(tmp_path), "--format", "yaml"]) == 2
    assert all(len(line) and "Traceback" not in line for line in capsys.readouterr().err.splitlines())


def test_evaluate_reports_precision_recall_f1_support_per_type():
    """Strict spans by value: gold PER(0-2), LOC(3); predicted PER cut short and LOC right."""
    from birnn.experiments.tagging import epoch_line, report_lines

    sentences = [(["Ann", "Lee", "in", "Rome"], ["B-PER", "I-PER", "O", "B-LOC"])]
    task = TaggingTask.for_data(TaggerConfig(hidden=4, embedding=4), sentences)
    gold = task.tags.encode(sentences[0][1])
    scores = task.metrics([[(task.tags.encode(["B-PER", "O", "O", "B-LOC"]), gold, [False] * 4)]])
    assert scores["support_PER"] == scores["support_LOC"] == 1
    assert (scores["precision_PER"], scores["recall_PER"], scores["precision_LOC"]) == (0, 0, 1)
    lines = report_lines(scores)
    assert lines[:4] == ["accuracy 0.7500", "precision 0.5000", "recall 0.5000", "f1 0.5000"]
    assert lines[4].split() == ["type", "precision", "recall", "f1", "support"]
    assert lines[5].split() == ["LOC", "1.0000", "1.0000", "1.0000", "1"]
    assert lines[6].split() == ["PER", "0.0000", "0.0000", "0.0000", "1"]
    line = epoch_line(3, {"train_loss": 0.5, "tokens_per_s": 10.0} | {f"dev_{k}": v for k, v in scores.items()})
    assert "dev_f1_PER 0.0000" in line and "precision_PER" not in line and "support" not in line


def test_english_tokenizer_for_text_input():
    lines = enumerate(["I can't go.", ""], 1)
    assert [b.tokens for b in read_blocks(lines, "text", tokenizer="english")] == [["I", "ca", "n't", "go", "."], []]
    with pytest.raises(ValueError, match="tokenizer must be one of"):
        list(read_blocks(enumerate(["a"], 1), "text", tokenizer="nltk"))
