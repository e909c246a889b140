"""H. G. Wells' *The Time Machine* as d2l prepares it (Dive into Deep Learning, v0.17).

Each line becomes ``re.sub('[^A-Za-z]+', ' ', line).strip().lower()``; the
character corpus is the lines' characters concatenated (no separator between
lines), over a vocabulary of the 26 letters, the space and ``<unk>`` (28
symbols with d2l's ``<unk>``; birnn adds ``<pad>`` and, for cloze, ``<mask>``).
"""

from __future__ import annotations

import re
from pathlib import Path

from birnn.data.readers import read_text
from birnn.data.registry import resolve


def clean_lines(text: str) -> list[str]:
    """d2l's ``read_time_machine``: letters only, lower case, one string per line."""
    return [re.sub("[^A-Za-z]+", " ", line).strip().lower() for line in text.splitlines()]


def load_characters(source: str | Path = "timemachine", max_tokens: int | None = None) -> str:
    """The character corpus (d2l's ``load_corpus_time_machine``), cut to ``max_tokens`` if given."""
    corpus = "".join(clean_lines(read_text(resolve(source))))
    if max_tokens is not None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1; got {max_tokens}")
        corpus = corpus[:max_tokens]
    return corpus


def load_words(source: str | Path = "timemachine") -> list[str]:
    """The word corpus: the cleaned lines split on spaces."""
    return [word for line in clean_lines(read_text(resolve(source))) for word in line.split()]
