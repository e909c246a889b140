"""Every reader on arbitrary bytes, other encodings, BOM, CRLF, truncation and gzip: a clean
result or an error naming the file -- never another exception."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import numpy as np
from _fuzz import FUZZ, clean_or_named
from hypothesis import given
from hypothesis import strategies as st

from birnn.data import read_columns, read_conllu, read_symbol_sequences, read_tagged, read_text
from birnn.hmm import HMM

_FIELDS = st.sampled_from(
    ["1", "2", "2-3", "4.1", "0", "x", "_", "NOUN", "B-loc", "O", "a b", "", " ", "#", "18446744073709551616"]
)
_LINES = st.one_of(
    st.lists(_FIELDS, max_size=12).map("\t".join),
    st.lists(_FIELDS, max_size=4).map(" ".join),
    st.text(max_size=30),
    st.sampled_from(["# sent_id = 1", "-DOCSTART- O", "", "\t", "word\tB-x", "1\tI\tI\tPRON\tPRP\t_\t2\tnsubj\t_\t_"]),
)
_TEXT = st.lists(_LINES, max_size=25).map("\n".join)


@st.composite
def file_bytes(draw) -> bytes:
    """Text in some encoding (or raw bytes), maybe with a BOM and CRLF, maybe cut short."""
    if draw(st.booleans()):
        text = draw(_TEXT)
        if draw(st.booleans()):
            text = text.replace("\n", "\r\n")
        encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"]))
        data = text.encode(encoding, errors="replace")
    else:
        data = draw(st.binary(max_size=400))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return data


@st.composite
def written(draw, suffixes=(".txt", ".conll", ".conllu")) -> Path:
    data, suffix = draw(file_bytes()), draw(st.sampled_from(suffixes))
    if draw(st.booleans()):
        data = gzip.compress(data)
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
        suffix += ".gz"
    path = Path(tempfile.mkdtemp(prefix="birnn-fuzz-")) / f"data{suffix}"
    path.write_bytes(data)
    return path


def _check_sentences(sentences):
    assert sentences and all(len(tokens) == len(tags) > 0 for tokens, tags in sentences)
    assert all(token and tag for tokens, tags in sentences for token, tag in zip(tokens, tags, strict=True))


@FUZZ
@given(written(), st.sampled_from(["auto", "conll", "conllu"]), st.sampled_from(["upos", "xpos"]), st.booleans())
def test_tagged_readers(path, file_format, column, require_tags):
    sentences = clean_or_named(lambda: read_tagged(path, file_format, column, require_tags), str(path))
    if sentences is not None:
        _check_sentences(sentences)
        if require_tags:
            assert any(tag != "_" for _, tags in sentences for tag in tags)


@FUZZ
@given(written(), st.integers(-3, 3), st.integers(-3, 3))
def test_column_reader_any_columns(path, token_column, tag_column):
    sentences = clean_or_named(lambda: read_columns(path, token_column, tag_column), str(path))
    if sentences is not None:
        _check_sentences(sentences)
        assert not any(any(c.isspace() for c in token) for tokens, _ in sentences for token in tokens)


@FUZZ
@given(written())
def test_conllu_reader(path):
    sentences = clean_or_named(lambda: read_conllu(path), str(path))
    if sentences is not None:
        _check_sentences(sentences)


@FUZZ
@given(written((".txt",)))
def test_text_reader(path):
    text = clean_or_named(lambda: read_text(path), str(path))
    assert text is None or ("\r" not in text and not text.startswith("\ufeff"))


@FUZZ
@given(written((".txt",)))
def test_symbol_reader(path):
    sequences = clean_or_named(lambda: read_symbol_sequences(path), str(path))
    if sequences is not None:
        assert all(s.dtype == np.int64 and s.size and s.min() >= 0 for s in sequences)


_NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3), st.just(0.5), st.booleans(),
                    st.text(max_size=3), st.none())
_JSON = st.recursive(_NUMBER, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                            max_size=3), max_leaves=20)


@st.composite
def hmm_documents(draw) -> bytes:
    """A valid model, one with a part replaced by anything, or bytes."""
    document = HMM([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.5, 0.0], [0.1, 0.1, 0.8]]).to_dict()
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(file_bytes())
    if choice == 1:
        return ("[" * draw(st.integers(1, 100_000))).encode()  # deep nesting
    key = draw(st.sampled_from(["format", "version", "start", "transition", "emission", "extra"]))
    if draw(st.booleans()):
        document.pop(key, None)
    else:
        document[key] = draw(_JSON)
    return json.dumps(document).encode()


@FUZZ
@given(hmm_documents())
def test_hmm_json_reader(document):
    path = Path(tempfile.mkdtemp(prefix="birnn-fuzz-")) / "model.json"
    path.write_bytes(document)
    hmm = clean_or_named(lambda: HMM.load(path), str(path))
    if hmm is not None:
        assert np.allclose(hmm.transition.sum(1), 1) and np.isfinite(hmm.emission).all()
