"""``load(run_dir)`` and ``Predictor``: a trained task behind a list-in, list-out interface.

``predict`` and ``predict_proba`` take a list of token lists of any lengths, batch
them by length (less padding), run under ``torch.inference_mode`` and return one
result per input, in input order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from birnn.train import load_task
from birnn.train.trainer import batcher


class Predictor:
    """``Predictor(task, batch_size=256)``; ``.task`` is the trained task itself (e.g. a language
    model's ``generate`` or a cloze model's ``fill``)."""

    def __init__(self, task: Any, batch_size: int = 256) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        self.task, self.batch_size = task, batch_size
        self.task.model.eval()

    @property
    def kind(self) -> str:
        return self.task.kind

    def _run(self, method: str, sentences: Sequence[Sequence[str]]) -> list[Any]:
        if not hasattr(self.task, method):
            raise TypeError(f"a {self.kind} model has no {method}()")
        sentences = list(sentences)
        for number, tokens in enumerate(sentences):
            if isinstance(tokens, str) or not len(tokens):
                raise ValueError(
                    f"sentences[{number}] must be a non-empty list of tokens; got {tokens!r}"
                )
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        results: list[Any] = [None] * len(sentences)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                batch = batcher(self.task)([self.task.encode_input(list(sentences[i])) for i in chunk])
                for i, result in zip(chunk, getattr(self.task, method)(batch), strict=True):
                    results[i] = result
        return results

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[Any]:
        """One prediction per sentence (a tagger: its list of tags)."""
        return self._run("predict", sentences)

    def predict_proba(self, sentences: Sequence[Sequence[str]]) -> list[Any]:
        """One probability table per sentence (a tagger: (length, n_tags), columns ``labels``)."""
        return self._run("predict_proba", sentences)

    def embed(self, sentences: Sequence[Sequence[str]]) -> list[Any]:
        """One feature table per sentence (a tagger: its encoder's (length, 2H) token features)."""
        return self._run("embed", sentences)

    @property
    def labels(self) -> list[str]:
        """The names of the columns of ``predict_proba``."""
        return list(self.task.labels)

    def stream(self, sentences: Iterable[Sequence[str]], chunk: int = 4096, method: str = "predict",
               empty: Any = None) -> Iterator[Any]:
        """``method`` (``predict``, ``predict_proba``, ``predict_with_proba``…) over an iterable of any
        size in bounded memory (``chunk`` sentences at a time), yielding in input order; an empty
        sentence yields ``empty`` (default: an empty list)."""
        pending: list[Sequence[str]] = []
        for tokens in sentences:
            pending.append(tokens)
            if len(pending) == chunk:
                yield from self._run_keeping_empty(method, pending, empty)
                pending = []
        yield from self._run_keeping_empty(method, pending, empty)

    def _run_keeping_empty(self, method: str, sentences: list[Sequence[str]], empty: Any) -> list[Any]:
        results = iter(self._run(method, [tokens for tokens in sentences if len(tokens)]))
        return [next(results) if len(tokens) else ([] if empty is None else empty) for tokens in sentences]


def load(run_dir: str | Path, which: str = "best", batch_size: int = 256) -> Predictor:
    """The trained model of a run directory (``best`` weights, or ``checkpoint``) ready to predict."""
    return Predictor(load_task(run_dir, which), batch_size)
