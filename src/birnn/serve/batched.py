"""``SortedBatches``: the list-in, list-out interface every inference engine shares (torch-free).

Sentences of any lengths are sorted by length, cut into batches of ``batch_size`` (little
padding), handed to the engine's ``_predict_batch`` and returned in input order; ``stream`` does
the same over an iterable of any size in bounded memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

METHODS = ("predict", "predict_proba", "predict_with_proba", "embed")


class SortedBatches(ABC):
    """Base of ``Predictor`` (torch) and ``OnnxPredictor`` (onnxruntime); an engine implements
    ``_predict_batch(method, sentences) -> one result per sentence`` and ``labels``."""

    def __init__(self, batch_size: int = 256) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
        self.batch_size = batch_size

    @property
    @abstractmethod
    def labels(self) -> list[str]:
        """The names of the columns of ``predict_proba``."""

    @abstractmethod
    def _predict_batch(self, method: str, sentences: list[list[str]]) -> list[Any]:
        """``method`` over one batch of sentences: one result per sentence."""

    def _run(self, method: str, sentences: Sequence[Sequence[str]]) -> list[Any]:
        sentences = list(sentences)
        for number, tokens in enumerate(sentences):
            if isinstance(tokens, str) or not len(tokens):
                raise ValueError(f"sentences[{number}] must be a non-empty list of tokens; got {tokens!r}")
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        results: list[Any] = [None] * len(sentences)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            predicted = self._predict_batch(method, [list(sentences[i]) for i in chunk])
            for i, result in zip(chunk, predicted, strict=True):
                results[i] = result
        return results

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[Any]:
        """One prediction per sentence (a tagger: its list of tags)."""
        return self._run("predict", sentences)

    def predict_proba(self, sentences: Sequence[Sequence[str]]) -> list[Any]:
        """One probability table per sentence (a tagger: (length, len(labels)), columns ``labels``)."""
        return self._run("predict_proba", sentences)

    def predict_with_proba(self, sentences: Sequence[Sequence[str]]) -> list[Any]:
        """``(predict, predict_proba)`` of every sentence from one pass of the network."""
        return self._run("predict_with_proba", sentences)

    def embed(self, sentences: Sequence[Sequence[str]]) -> list[Any]:
        """One feature table per sentence (a tagger: its encoder's (length, 2H) token features)."""
        return self._run("embed", sentences)

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
