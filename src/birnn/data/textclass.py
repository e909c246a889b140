"""Labelled sentences for classification: readers, robust decoding and tokenisers.

``read_labelled(paths, format="auto", text_field="text", label_field="label", tokenizer="whitespace")``
-> ``Labelled(examples, encodings)`` where ``examples`` are ``(tokens, label)`` pairs in file order and
``encodings`` the codec each file was decoded with. Formats:

- ``tsv``: one ``label<TAB>text`` line per example (blank lines skipped);
- ``classes``: one file per class, one example per line; a folder stands for its files (hidden
  files and README/LICENSE/SOURCES files skipped). The label is the file's suffix when all files
  share one stem (``rt-polarity.pos`` / ``rt-polarity.neg`` -> pos, neg), else its stem
  (``pos.txt`` / ``neg.txt`` -> pos, neg);
- ``csv`` (with a header row) and ``jsonl`` (one object per line): the ``text_field`` and
  ``label_field`` columns or keys.

``ngrams(tokens, n)``: a sentence's distinct 1- to n-grams, the features of Naive Bayes
(``tasks.log_count_ratios``).

``auto`` picks ``classes`` for a folder or several files, ``csv`` for ``.csv``, ``jsonl`` for
``.jsonl``/``.ndjson`` and ``tsv`` otherwise. Files may be gzip'ed (``.gz``).

Decoding: UTF-8 (a BOM is dropped); a file that is not valid UTF-8 is read as Windows-1252,
the superset of Latin-1 that the original Cornell MR files use (its 0x85 is "…", not the NEL
line break that a Latin-1 reading would put inside a sentence); the few bytes cp1252 leaves
undefined fall back to Latin-1. Lines end at "\\n" only. Every error names the file and line.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

FORMATS = ("auto", "tsv", "classes", "csv", "jsonl")
TOKENIZERS = ("whitespace", "regex")
_SKIPPED = ("readme", "license", "licence", "sources")
# numbers with separators (3.5, 1,000), words (with inner ' or -: don't, well-known), or one other symbol
_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|\w+(?:['’-]\w+)*|[^\w\s]")

Example = tuple[list[str], str]  # tokens, label


class Labelled(NamedTuple):
    """examples: (tokens, label) pairs in file order; encodings: file -> the codec it was read with."""

    examples: list[Example]
    encodings: dict[str, str]


def tokenize(text: str, tokenizer: str = "whitespace") -> list[str]:
    """``whitespace``: ``text.split()``; ``regex``: words (inner ' and - kept), numbers, single symbols.

    >>> tokenize("It's a well-made, 2.5-hour film!", "regex")
    ["It's", 'a', 'well-made', ',', '2.5', '-', 'hour', 'film', '!']
    """
    if tokenizer == "whitespace":
        return text.split()
    if tokenizer == "regex":
        return _TOKEN.findall(text)
    raise ValueError(f"tokenizer must be one of {TOKENIZERS}; got {tokenizer!r}")


NGRAM_JOIN = "\x1f"  # between the words of an n-gram (no tokeniser leaves it inside a token)


def ngrams(tokens: Sequence[str], n: int) -> list[str]:
    """The distinct 1- to n-grams of a sentence, sorted; the words of one are joined by ``NGRAM_JOIN``."""
    return sorted({NGRAM_JOIN.join(tokens[i:i + size]) for size in range(1, n + 1)
                   for i in range(len(tokens) - size + 1)})


def decode(data: bytes) -> tuple[str, str]:
    """bytes -> (text, codec): UTF-8 (BOM dropped) if valid, else Windows-1252 (Latin-1 for its 5 undefined bytes)."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1").translate(_CP1252), "cp1252"


def _cp1252_table() -> dict[int, str]:
    """Latin-1 code point -> the Windows-1252 character of the same byte, where the two differ."""
    table = {}
    for byte in range(256):
        try:
            table[byte] = bytes([byte]).decode("cp1252")
        except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D: kept as Latin-1
            continue
    return {code: char for code, char in table.items() if char != chr(code)}


_CP1252 = _cp1252_table()


def read_lines(path: str | Path) -> tuple[list[str], str]:
    """The lines of a (gzip'ed) text file, split at "\\n" only, and the codec used (see ``decode``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: not a gzip file ({exc})") from None
    text, codec = decode(data)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines], codec


def class_files(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """(file, label) for the one-file-per-class format; a folder stands for its files."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                            and not p.name.lower().startswith(_SKIPPED))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    bare = [p.with_suffix("") if p.suffix == ".gz" else p for p in files]
    if len(files) < 2:
        raise ValueError(f"one file per class needs at least two class files; got {[str(p) for p in files]}")
    one_stem = len({p.stem for p in bare}) == 1 and all(p.suffix for p in bare)
    labels = [p.suffix[1:] if one_stem else p.stem for p in bare]
    if len(set(labels)) != len(labels):
        raise ValueError(f"class files must have distinct labels; {[str(p) for p in files]} give {labels}")
    return list(zip(files, labels, strict=True))


def read_labelled(
    paths: str | Path | Sequence[str | Path],
    format: str = "auto",
    text_field: str = "text",
    label_field: str = "label",
    tokenizer: str = "whitespace",
) -> Labelled:
    """Examples from one file, a folder, or several files (see the module docstring)."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}; got {format!r}")
    tokenize("", tokenizer)  # validates the name before any file is read
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ValueError("no input file given")
    if format == "auto":
        format = _guess_format(paths)
    if format == "classes":
        examples, encodings = [], {}
        for path, label in class_files(paths):
            lines, encodings[str(path)] = read_lines(path)
            examples += [(tokens, label) for tokens in _tokens_of(lines, path, tokenizer)]
        return Labelled(examples, encodings)
    if len(paths) != 1:
        raise ValueError(f"the {format} format reads one file; got {len(paths)}")
    path = Path(paths[0])
    lines, codec = read_lines(path)
    pairs = _FIELDS[format](lines, path, text_field, label_field)
    examples = []
    for number, label, text in pairs:
        tokens = tokenize(text, tokenizer)
        if not tokens:
            raise ValueError(f"{path}:{number}: the text is empty (label {label!r})")
        examples.append((tokens, label))
    if not examples:
        raise ValueError(f"{path}: no examples found")
    return Labelled(examples, {str(path): codec})


def _guess_format(paths: list[str | Path]) -> str:
    if len(paths) > 1 or Path(paths[0]).is_dir():
        return "classes"
    name = Path(paths[0]).name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    return "tsv"


def _tokens_of(lines: list[str], path: Path, tokenizer: str) -> list[list[str]]:
    """One token list per non-blank line of a class file."""
    found = [tokenize(line, tokenizer) for line in lines]
    found = [tokens for tokens in found if tokens]
    if not found:
        raise ValueError(f"{path}: no examples found (expected one sentence per line)")
    return found


def _tsv(lines: list[str], path: Path, text_field: str, label_field: str) -> list[tuple[int, str, str]]:
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        label, tab, text = line.partition("\t")
        if not tab or not label.strip():
            raise ValueError(f"{path}:{number}: expected 'label<TAB>text'; got {line[:60]!r}")
        pairs.append((number, label.strip(), text))
    return pairs


def _csv(lines: list[str], path: Path, text_field: str, label_field: str) -> list[tuple[int, str, str]]:
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    missing = [f for f in (text_field, label_field) if f not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}:1: no column {missing[0]!r} in the header; columns: {reader.fieldnames}")
    pairs = []
    try:
        for row in reader:
            number = reader.line_num
            text, label = row.get(text_field), row.get(label_field)
            if text is None or label is None or not label.strip():
                raise ValueError(f"{path}:{number}: a row without {text_field!r} or {label_field!r}: {row}")
            pairs.append((number, label.strip(), text))
    except csv.Error as exc:
        raise ValueError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None
    return pairs


def _jsonl(lines: list[str], path: Path, text_field: str, label_field: str) -> list[tuple[int, str, str]]:
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str) or (
                record.get(label_field) is None):
            raise ValueError(f"{path}:{number}: expected an object with a string {text_field!r} and a "
                             f"{label_field!r}; got {line[:60]!r}")
        pairs.append((number, str(record[label_field]).strip(), record[text_field]))
    return pairs


_FIELDS = {"tsv": _tsv, "csv": _csv, "jsonl": _jsonl}
