"""Readers for the corpora birnn trains on; bad input is reported with file and line.

- ``read_text``: plain text;
- ``read_conllu``: CoNLL-U, one column as tags (UPOS or XPOS);
- ``read_symbol_sequences``: integer symbol sequences, one per line (HMM data);
- ``read_columns``: CoNLL-style "token<whitespace>tag" lines, blank or whitespace-only lines
  ending a sentence (as in WNUT-17, whose separators are sometimes a lone TAB).

Every file is UTF-8, with or without a byte-order mark, with LF or CRLF line ends; gzip
files (``.gz``) are read transparently. A file that is not UTF-8, a damaged or truncated
gzip file, a malformed line and a tag column that holds no tags raise a ValueError that
names the file (and the line).
"""

from __future__ import annotations

import codecs
import gzip
import re
import zlib
from pathlib import Path

import numpy as np

Sentence = tuple[list[str], list[str]]  # tokens, tags

_CONLLU_ID = re.compile(r"[0-9]+")
_CONLLU_SKIPPED = re.compile(r"[0-9]+-[0-9]+|[0-9]+\.[0-9]+")  # multiword-token range, empty node
_CONLLU_TAG_COLUMN = {"upos": 3, "xpos": 4}
_LARGEST_SYMBOL_DIGITS = 18  # every 18-digit integer fits int64


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"{path}: damaged or truncated gzip file ({exc})") from None


def _decoded(path: str | Path) -> str:
    """The file's text: UTF-8 (a leading BOM dropped), line ends normalised to "\\n"."""
    path = Path(path)
    data = _read_bytes(path)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValueError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at column {column}); "
            "convert the file to UTF-8"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _lines(path: str | Path) -> list[str]:
    return _decoded(path).split("\n")


def read_text(path: str | Path) -> str:
    """The whole file as text (UTF-8, line ends "\\n")."""
    return _decoded(path)


def _refuse_untagged(path: str | Path, sentences: list[Sentence], column: str) -> None:
    if all(tag == "_" for _, tags in sentences for tag in tags):
        raise ValueError(f"{path}: every tag in {column} is '_': the file holds no tags to learn or score")


def _conllu_word_line(line: str) -> bool:
    fields = line.split("\t")
    return len(fields) == 10 and bool(_CONLLU_ID.fullmatch(fields[0]) or _CONLLU_SKIPPED.fullmatch(fields[0]))


def read_columns(
    path: str | Path, token_column: int = 0, tag_column: int = -1, require_tags: bool = True
) -> list[Sentence]:
    """Sentences from a whitespace-separated column file (e.g. CoNLL-2003/WNUT-17 BIO).

    A CoNLL-U file is refused (read it with ``read_conllu``: its comments, ranges and empty
    nodes are not tokens); so is a tag column that is ``_`` throughout, unless ``require_tags``
    is False (only the tokens are wanted: then a line may also hold the token alone, its tag "_").
    """
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(_lines(path), start=1):
        fields = line.split()
        if not fields:
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        if fields[0] == "-DOCSTART-":
            continue
        if _conllu_word_line(line):
            raise ValueError(
                f"{path}:{number}: a CoNLL-U line (10 tab-separated columns, ID {line.split(chr(9))[0]!r}); "
                "read the file as CoNLL-U (--format conllu, format='conllu')"
            )
        alone = len(fields) == 1 and not require_tags  # a token without a tag column
        if len(fields) < 2 and not alone:
            raise ValueError(f"{path}:{number}: expected 'token tag' columns; got {line.rstrip()!r}")
        for name, index in (("token_column", token_column), ("tag_column", tag_column))[: 1 if alone else 2]:
            if not -len(fields) <= index < len(fields):
                raise ValueError(f"{path}:{number}: {name}={index} but the line has {len(fields)} columns")
        tokens.append(fields[token_column])
        tags.append("_" if alone else fields[tag_column])
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise ValueError(f"{path}: no sentences found")
    if require_tags:
        _refuse_untagged(path, sentences, "the last column" if tag_column == -1 else f"column {tag_column}")
    return sentences


def read_conllu(path: str | Path, column: str = "upos", require_tags: bool = True) -> list[Sentence]:
    """Sentences of a CoNLL-U file with ``column`` ("upos" or "xpos") as tags.

    Comment lines are skipped, and so are multiword-token ranges (3-4) and empty nodes (8.1):
    tags live on syntactic words. Every other line must hold 10 tab-separated columns with an
    integer ID and a non-empty form and tag. A tag column that is ``_`` throughout is refused
    unless ``require_tags`` is False.
    """
    if column not in _CONLLU_TAG_COLUMN:
        raise ValueError(f"column must be 'upos' or 'xpos'; got {column!r}")
    index = _CONLLU_TAG_COLUMN[column]
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise ValueError(
                f"{path}:{number}: not valid CoNLL-U: expected 10 tab-separated columns; got {len(fields)}"
            )
        if _CONLLU_SKIPPED.fullmatch(fields[0]):
            continue
        if not _CONLLU_ID.fullmatch(fields[0]):
            raise ValueError(
                f"{path}:{number}: not valid CoNLL-U: ID must be an integer, a range (3-4) or an empty node (8.1); "
                f"got {fields[0]!r}"
            )
        form, tag = fields[1].strip(), fields[index].strip()
        if not form or not tag:
            raise ValueError(f"{path}:{number}: not valid CoNLL-U: empty FORM or {column.upper()} (use '_')")
        tokens.append(form)
        tags.append(tag)
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise ValueError(f"{path}: no sentences found")
    if require_tags:
        _refuse_untagged(path, sentences, column.upper())
    return sentences


def read_tagged(path: str | Path, format: str = "auto", column: str = "upos", require_tags: bool = True
                ) -> list[Sentence]:
    """CoNLL-U (``.conllu``/``.conllu.gz`` or format="conllu") or column files (format="conll")."""
    name = Path(path).name
    if format == "auto":
        format = "conllu" if ".conllu" in name else "conll"
    if format == "conllu":
        return read_conllu(path, column, require_tags)
    if format == "conll":
        return read_columns(path, require_tags=require_tags)
    raise ValueError(f"format must be 'auto', 'conllu' or 'conll'; got {format!r}")


def read_symbol_sequences(path: str | Path) -> list[np.ndarray]:
    """One sequence of whitespace-separated non-negative integer symbols per non-blank line -> int64 arrays."""
    sequences = []
    for number, line in enumerate(_lines(path), start=1):
        tokens = line.split()
        if not tokens:
            continue
        bad = next((token for token in tokens if not (token.isascii() and token.isdigit())), None)
        if bad is not None:
            raise ValueError(f"{path}:{number}: expected non-negative integer symbols; got {bad[:40]!r}")
        large = next((token for token in tokens if len(token.lstrip("0")) > _LARGEST_SYMBOL_DIGITS), None)
        if large is not None:
            raise ValueError(f"{path}:{number}: symbol {large[:40]} is too large (at most 18 digits)")
        sequences.append(np.array([int(token) for token in tokens], dtype=np.int64))
    if not sequences:
        raise ValueError(f"{path}: no sequences (expected one line of symbols per sequence)")
    return sequences
