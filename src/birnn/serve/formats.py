"""Reading sentences to predict and writing predictions: plain text, CoNLL columns, CoNLL-U, JSON lines.

Everything here streams (one sentence in memory at a time, apart from the predictor's
chunk) and is torch-free, so the same code serves every engine.

Input formats:

- ``text``: one sentence per line, cut into tokens on whitespace or by the English tokenizer;
- ``conll``: one token per line (first column; other columns ignored), a blank line
  between sentences;
- ``conllu``: CoNLL-U; tokens are the FORMs of the word lines (integer IDs), comments,
  multiword ranges and empty nodes are carried through to ``conllu`` output.

A sentence is a ``Block``: its tokens and, for CoNLL-U, its raw lines.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple, cast

import numpy as np

from birnn.data.tagschemes import chunks, detect_scheme
from birnn.data.tokenizers import TOKENIZERS, tokenize

INPUTS = ("text", "conll", "conllu")
OUTPUTS = ("conll", "conllu", "json")
CONLLU_COLUMNS = {"upos": 3, "xpos": 4}


class Block(NamedTuple):
    tokens: list[str]
    lines: list[str]  # CoNLL-U only: the sentence's lines as read, without newlines


def _numbered_lines(stream: IO[bytes], name: str) -> Iterator[tuple[int, str]]:
    """(line number, text without the line break); a BOM is dropped, CRLF accepted; bad UTF-8
    or a damaged gzip stream is a ValueError naming ``name`` and the line."""
    number = 0
    try:
        for number, raw in enumerate(stream, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{name}:{number}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
            if number == 1:
                text = text.removeprefix("\ufeff")
            yield number, text.rstrip("\r\n")
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"{name}: damaged or truncated gzip data after line {number} ({exc})") from None


def open_lines(path: str | Path | None, stdin: IO[bytes] | None = None) -> Iterator[tuple[int, str]]:
    """Numbered lines of a file (``.gz`` decompressed) or, for ``None`` or ``"-"``, of ``stdin``."""
    if path is None or str(path) == "-":
        if stdin is None:
            raise ValueError("no input: give a file or pipe text to stdin")
        yield from _numbered_lines(stdin, "<stdin>")
        return
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"input file not found: {path}")
    with path.open("rb") as raw:
        stream = cast(IO[bytes], gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw)
        yield from _numbered_lines(stream, str(path))


def read_blocks(lines: Iterable[tuple[int, str]], input_format: str, name: str = "<input>",
                tokenizer: str = "whitespace") -> Iterator[Block]:
    """Sentences of numbered ``lines`` in ``input_format``; text is cut by ``tokenizer``
    (``birnn.data.tokenizers``) and an empty line is an empty sentence."""
    if input_format not in INPUTS:
        raise ValueError(f"input format must be one of {INPUTS}; got {input_format!r}")
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"tokenizer must be one of {TOKENIZERS}; got {tokenizer!r}")
    if input_format == "text":
        for _, text in lines:
            yield Block(tokenize(text, tokenizer), [])
        return
    tokens: list[str] = []
    kept: list[str] = []
    for number, text in lines:
        if not text.strip():
            if tokens or kept:
                yield Block(tokens, kept)
            tokens, kept = [], []
        elif input_format == "conll":
            tokens.append(text.split()[0])
        else:
            kept.append(text)
            if text.startswith("#"):
                continue
            fields = text.split("\t")
            if len(fields) != 10:
                raise ValueError(f"{name}:{number}: a CoNLL-U word line has 10 tab-separated fields; "
                                 f"got {len(fields)}")
            if fields[0].isdigit():
                tokens.append(fields[1])
    if tokens or kept:
        yield Block(tokens, kept)


def conll_lines(block: Block, tags: Sequence[str]) -> list[str]:
    """``token<TAB>tag`` per token, then a blank line."""
    return [f"{token}\t{tag}" for token, tag in zip(block.tokens, tags, strict=True)] + [""]


def conllu_lines(block: Block, tags: Sequence[str], column: str = "upos") -> list[str]:
    """The sentence's CoNLL-U lines with ``column`` (upos|xpos) of every word line set to its tag."""
    if not block.lines:
        raise ValueError("CoNLL-U output needs CoNLL-U input (--input conllu)")
    index, predicted, out = CONLLU_COLUMNS[column], iter(tags), []
    for text in block.lines:
        fields = text.split("\t")
        if not text.startswith("#") and fields[0].isdigit():
            fields[index] = next(predicted)
            text = "\t".join(fields)
        out.append(text)
    return out + [""]


def spans(tokens: Sequence[str], tags: Sequence[str]) -> list[dict[str, Any]]:
    """Chunks of BIO/BIOES ``tags`` as ``{"type", "start", "end", "text"}`` (end exclusive)."""
    return [{"type": kind, "start": start, "end": end, "text": " ".join(tokens[start:end])}
            for kind, start, end in chunks(list(tags))]


def json_record(block: Block, tags: Sequence[str], probabilities: np.ndarray | None,
                labels: Sequence[str], marginals: bool = False) -> dict[str, Any]:
    """One sentence as a JSON object: tokens, tags, ``p`` (the marginal probability of each chosen
    tag), with ``marginals`` the (length, K) distribution keyed by ``labels``, and ``spans`` for
    chunk tags."""
    record: dict[str, Any] = {"tokens": block.tokens, "tags": list(tags)}
    if probabilities is not None:
        column = {label: k for k, label in enumerate(labels)}
        record["p"] = [round(float(probabilities[t, column[tag]]), 6) for t, tag in enumerate(tags)]
        if marginals:
            record["marginals"] = [{label: round(float(p), 6) for label, p in zip(labels, row, strict=True)}
                                   for row in probabilities]
    if detect_scheme(labels) is not None:
        record["spans"] = spans(block.tokens, tags)
    return record


def format_block(output_format: str, block: Block, tags: Sequence[str], probabilities: np.ndarray | None,
                 labels: Sequence[str], marginals: bool = False, column: str = "upos") -> list[str]:
    """The output lines of one predicted sentence."""
    if output_format == "conll":
        return conll_lines(block, tags)
    if output_format == "conllu":
        return conllu_lines(block, tags, column)
    if output_format == "json":
        return [json.dumps(json_record(block, tags, probabilities, labels, marginals), ensure_ascii=False)]
    raise ValueError(f"output format must be one of {OUTPUTS}; got {output_format!r}")
