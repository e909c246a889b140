"""birnn.data: vocabularies, readers (real corpora when present, generated files always), batching, registry."""

from __future__ import annotations

import gzip

import pytest
import torch

from birnn.data import (
    Vocab,
    batch_indices,
    collate,
    read_columns,
    read_conllu,
    read_symbol_sequences,
    read_tagged,
    read_text,
    resolve,
)
from birnn.data.registry import NAMED, sha1_of
from conftest import SHARED_DATA

CONLLU = """# sent_id = 1
# text = I can't go
1	I	I	PRON	PRP	_	2	nsubj	_	_
2-3	can't	_	_	_	_	_	_	_	_
2	ca	can	AUX	MD	_	4	aux	_	_
3	n't	not	PART	RB	_	4	advmod	_	_
4	go	go	VERB	VB	_	0	root	_	_
4.1	went	go	VERB	VBD	_	_	_	_	_

# sent_id = 2
1	Yes	yes	INTJ	UH	_	0	root	_	_

"""


def test_vocab_round_trip_and_unknowns(tmp_path):
    vocab = Vocab.build([["a", "b", "a"], ["c"]], min_freq=1)
    assert vocab.itos[:3] == ["<pad>", "<unk>", "a"]
    assert vocab.encode(["a", "zzz"]) == [2, 1]
    assert Vocab.build([["a", "b", "a"]], min_freq=2).itos == ["<pad>", "<unk>", "a"]
    vocab.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json").itos == vocab.itos
    tags = Vocab(["O", "B-x"], specials=False)
    assert tags.encode(["B-x"]) == [1]
    with pytest.raises(ValueError, match="unknown symbol 'I-y'"):
        tags.encode(["I-y"])


def test_conllu_reader_skips_ranges_and_empty_nodes(tmp_path):
    path = tmp_path / "a.conllu.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(CONLLU)
    sentences = read_tagged(path)
    assert sentences == [(["I", "ca", "n't", "go"], ["PRON", "AUX", "PART", "VERB"]), (["Yes"], ["INTJ"])]
    assert read_conllu(path, "xpos")[0][1] == ["PRP", "MD", "RB", "VB"]


def test_column_reader_treats_whitespace_lines_as_breaks(tmp_path):
    path = tmp_path / "ner.conll"
    path.write_text("Paris\tB-location\nis\tO\n\t\nNice\tB-location\n\n\n")
    assert read_columns(path) == [(["Paris", "is"], ["B-location", "O"]), (["Nice"], ["B-location"])]
    bad = tmp_path / "bad.conll"
    bad.write_text("Paris\tB-location\nlonely\n")
    with pytest.raises(ValueError, match=r"bad.conll:2: expected 'token tag' columns"):
        read_columns(bad)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_columns(tmp_path / "missing.conll")


@pytest.mark.skipif(not (SHARED_DATA / "ud_english_ewt").is_dir(), reason="no shared corpora")
def test_real_corpora_counts_match_their_documentation():
    dev = read_tagged(SHARED_DATA / "ud_english_ewt" / "en_ewt-ud-dev.conllu.gz")
    assert (len(dev), sum(len(t) for t, _ in dev)) == (2001, 25147)
    assert len({tag for _, tags in dev for tag in tags}) == 17
    train = read_columns(SHARED_DATA / "wnut17" / "wnut17train.conll")
    assert (len(train), sum(len(t) for t, _ in train)) == (3394, 62730)


def test_batches_pad_and_are_deterministic_per_epoch():
    batch = collate([([5, 6, 7], [1, 2, 3]), ([8], [4])])
    assert batch.inputs.tolist() == [[5, 6, 7], [8, 0, 0]] and batch.lengths.tolist() == [3, 1]
    assert batch.tokens == 4
    lengths = [int(n) for n in torch.randint(1, 30, (200,), generator=torch.Generator().manual_seed(0))]
    first = batch_indices(lengths, 16, seed=3, epoch=2)
    assert first == batch_indices(lengths, 16, seed=3, epoch=2)
    assert first != batch_indices(lengths, 16, seed=3, epoch=3)
    assert sorted(i for b in first for i in b) == list(range(200))

    # bucketing: less padding than random batches
    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    assert padding(first) < padding(batch_indices(lengths, 16, seed=3, epoch=2, bucket=False)) / 2


def test_registry_checks_the_checksum_and_never_uses_a_bad_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BIRNN_DATA", str(tmp_path))
    (tmp_path / "timemachine.txt").write_text("not the time machine")
    with pytest.raises(ValueError, match="SHA-1 .* does not match the expected 090b5e7e"):
        resolve("timemachine")
    with pytest.raises(FileNotFoundError, match="not a known dataset name"):
        resolve("no-such-corpus")


@pytest.mark.skipif(not (SHARED_DATA / "timemachine" / "timemachine.txt").is_file(), reason="no shared corpora")
def test_registry_accepts_the_real_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BIRNN_DATA", str(tmp_path))
    real = SHARED_DATA / "timemachine" / "timemachine.txt"
    assert sha1_of(real) == NAMED["timemachine"].sha1
    (tmp_path / "timemachine.txt").write_bytes(real.read_bytes())
    assert resolve("timemachine") == tmp_path / "timemachine.txt"


def test_column_reader_refuses_conllu_and_untagged_files(tmp_path):
    conllu_file = tmp_path / "ud.txt"  # a CoNLL-U file read as columns: comments and ranges are no tokens
    conllu_file.write_text(CONLLU)
    with pytest.raises(ValueError, match=r"ud.txt:3: a CoNLL-U line .*--format conllu"):
        read_tagged(conllu_file, format="conll")
    untagged = tmp_path / "untagged.conll"
    untagged.write_text("a\t_\nb\t_\n\nc\t_\n")
    with pytest.raises(ValueError, match=r"untagged.conll: every tag in the last column is '_'"):
        read_columns(untagged)
    assert read_columns(untagged, require_tags=False)[1] == (["c"], ["_"])
    tokens_only = tmp_path / "tokens.conll"
    tokens_only.write_text("a\nb\tB\n\nc\n")
    with pytest.raises(ValueError, match=r"tokens.conll:1: expected 'token tag' columns; got 'a'"):
        read_tagged(tokens_only)
    assert read_tagged(tokens_only, require_tags=False) == [(["a", "b"], ["_", "B"]), (["c"], ["_"])]
    no_xpos = tmp_path / "no_xpos.conllu"
    no_xpos.write_text(CONLLU.replace("\tPRP\t", "\t_\t").replace("\tMD\t", "\t_\t").replace("\tRB\t", "\t_\t")
                       .replace("\tVB\t", "\t_\t").replace("\tUH\t", "\t_\t"))
    with pytest.raises(ValueError, match=r"no_xpos.conllu: every tag in XPOS is '_'"):
        read_conllu(no_xpos, "xpos")
    assert read_conllu(no_xpos)[1] == (["Yes"], ["INTJ"])


def test_conllu_reader_names_the_bad_line(tmp_path):
    path = tmp_path / "bad.conllu"
    path.write_text(CONLLU.replace("3\tn't\tnot", "3\tn't not"))
    with pytest.raises(ValueError, match=r"bad.conllu:6: not valid CoNLL-U: expected 10 tab-separated columns; got 9"):
        read_conllu(path)
    path.write_text(CONLLU.replace("4\tgo\tgo", "four\tgo\tgo"))
    with pytest.raises(ValueError, match=r"bad.conllu:7: .*ID must be an integer.*got 'four'"):
        read_conllu(path)


def test_readers_accept_bom_and_crlf_and_name_bad_bytes(tmp_path):
    path = tmp_path / "bom.conll"
    path.write_bytes(b"\xef\xbb\xbfParis\tB-loc\r\nis\tO\r\n\r\nNice\tB-loc\r\n")
    assert read_columns(path) == [(["Paris", "is"], ["B-loc", "O"]), (["Nice"], ["B-loc"])]
    assert read_text(path).startswith("Paris\tB-loc\nis")
    path.write_bytes(b"Paris\tB-loc\nCaf\xe9\tO\n")  # Latin-1
    with pytest.raises(ValueError, match=r"bom.conll:2: not UTF-8 text \(byte 0xe9 at column 4\)"):
        read_columns(path)
    with pytest.raises(ValueError, match=r"bom.conll:2: not UTF-8"):
        read_text(path)


def test_a_truncated_gzip_file_is_named_not_an_interrupt(tmp_path, capsys):
    whole = gzip.compress(("Paris\tB-loc\nis\tO\n\n" * 200).encode())
    path = tmp_path / "train.conll.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"train.conll.gz: damaged or truncated gzip file"):
        read_columns(path)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"train.conll.gz: damaged or truncated gzip file"):
        read_columns(path)
    from birnn.cli import main

    assert main(["train", "tag", "--train", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"birnn: error: {path}: damaged or truncated gzip file (Not a gzipped file (b'no'))"
    ]


def test_symbol_reader_refuses_symbols_beyond_int64(tmp_path):
    path = tmp_path / "symbols.txt"
    path.write_text("0 1 2\n3 99999999999999999999\n")
    with pytest.raises(ValueError, match=r"symbols.txt:2: symbol 99999999999999999999 is too large"):
        read_symbol_sequences(path)
    path.write_text("0 1 2\n3 000000000000000000000000004\n")
    assert read_symbol_sequences(path)[1].tolist() == [3, 4]
