"""Readers for the corpora birnn trains on; bad input is reported with file and line.

- ``read_text``: plain text;
- ``read_conllu``: CoNLL-U (via the ``conllu`` package), one column as tags (UPOS or XPOS);
- ``read_symbol_sequences``: integer symbol sequences, one per line (HMM data);
- ``read_columns``: CoNLL-style "token<whitespace>tag" lines, blank or whitespace-only lines
  ending a sentence (as in WNUT-17, whose separators are sometimes a lone TAB).
Gzip files (``.gz``) are read transparently.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

Sentence = tuple[list[str], list[str]]  # tokens, tags


def _open(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def read_text(path: str | Path) -> str:
    """The whole file as text."""
    with _open(path) as handle:
        try:
            return handle.read()
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_columns(path: str | Path, token_column: int = 0, tag_column: int = -1) -> list[Sentence]:
    """Sentences from a whitespace-separated column file (e.g. CoNLL-2003/WNUT-17 BIO)."""
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    with _open(path) as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                if tokens:
                    sentences.append((tokens, tags))
                    tokens, tags = [], []
                continue
            if fields[0] == "-DOCSTART-":
                continue
            if len(fields) < 2:
                raise ValueError(f"{path}:{number}: expected 'token tag' columns; got {line.rstrip()!r}")
            tokens.append(fields[token_column])
            tags.append(fields[tag_column])
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise ValueError(f"{path}: no sentences found")
    return sentences


def read_conllu(path: str | Path, column: str = "upos") -> list[Sentence]:
    """Sentences of a CoNLL-U file with ``column`` ("upos" or "xpos") as tags.

    Multiword-token ranges (3-4) and empty nodes (8.1) are skipped: tags live on syntactic words.
    """
    import conllu

    if column not in ("upos", "xpos"):
        raise ValueError(f"column must be 'upos' or 'xpos'; got {column!r}")
    sentences: list[Sentence] = []
    with _open(path) as handle:
        try:
            for sentence in conllu.parse_incr(handle):
                words = [t for t in sentence if isinstance(t["id"], int)]
                tokens = [t["form"] for t in words]
                tags = [t[column] if t[column] is not None else "_" for t in words]
                if tokens:
                    sentences.append((tokens, tags))
        except conllu.exceptions.ParseException as exc:
            raise ValueError(f"{path}: not valid CoNLL-U ({exc})") from None
    if not sentences:
        raise ValueError(f"{path}: no sentences found")
    return sentences


def read_tagged(path: str | Path, format: str = "auto", column: str = "upos") -> list[Sentence]:
    """CoNLL-U (``.conllu``/``.conllu.gz`` or format="conllu") or column files (format="conll")."""
    name = Path(path).name
    if format == "auto":
        format = "conllu" if ".conllu" in name else "conll"
    if format == "conllu":
        return read_conllu(path, column)
    if format == "conll":
        return read_columns(path)
    raise ValueError(f"format must be 'auto', 'conllu' or 'conll'; got {format!r}")


def read_symbol_sequences(path: str | Path) -> list[np.ndarray]:
    """One sequence of whitespace-separated non-negative integer symbols per non-blank line -> int64 arrays."""
    sequences = []
    with _open(path) as handle:
        for number, line in enumerate(handle, start=1):
            tokens = line.split()
            if not tokens:
                continue
            bad = next((token for token in tokens if not (token.isascii() and token.isdigit())), None)
            if bad is not None:
                raise ValueError(f"{path}:{number}: expected non-negative integer symbols; got {bad!r}")
            sequences.append(np.array([int(token) for token in tokens], dtype=np.int64))
    if not sequences:
        raise ValueError(f"{path}: no sequences (expected one line of symbols per sequence)")
    return sequences
