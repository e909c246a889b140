"""``CharVectorCache``: the character vectors of token strings, each distinct word encoded once (torch-free).

An exported network that reads characters has a character graph, chars (N, C) and char_lengths
(N,) -> char_vectors (N, D) (``tasks.exportable``). For a batch of sentences the cache finds each
token's row in the ``CharBatcher``'s word table, encodes only the rows it has not encoded before —
in chunks of at most ``chunk`` words of one length, so no step of the graph runs on padding — and
gathers the (B, T, D) vectors, zero at padding words. A word's vector depends on its characters
alone, so the result is what encoding every token would give.

Memory is bounded: once more than ``limit`` distinct words are held, the cache (with the
batcher's word table) is emptied before the next batch. Calls from several threads (a service
sharing one predictor) take turns on a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from birnn.data.characters import CharBatcher

Encoder = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (chars (N, C), char_lengths (N,)) -> (N, D)


class CharVectorCache:
    """``CharVectorCache(encode, batcher, size, limit=200_000, chunk=512)``; call
    ``(sentences, width) -> (B, width, size) float32``; ``clear()`` forgets every word."""

    def __init__(self, encode: Encoder, batcher: CharBatcher, size: int, limit: int = 200_000,
                 chunk: int = 512) -> None:
        for name, value in (("size", size), ("limit", limit), ("chunk", chunk)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        self.encode, self.batcher, self.size, self.limit, self.chunk = encode, batcher, size, limit, chunk
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Forget every encoded word (and the batcher's word table). Row 0, padding, is the zero vector."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self.batcher.clear_cache()
        self._vectors = np.zeros((1024, self.size), dtype=np.float32)  # (W, D) by batcher row
        self._encoded = np.zeros(1024, dtype=bool)
        self._encoded[0] = True

    def _reserve(self, rows: int) -> None:
        if rows > len(self._encoded):
            capacity = max(rows, 2 * len(self._encoded))
            self._vectors = np.concatenate([self._vectors, np.zeros((capacity - len(self._vectors), self.size),
                                                                    dtype=np.float32)])
            self._encoded = np.concatenate([self._encoded, np.zeros(capacity - len(self._encoded), dtype=bool)])

    def _chunks(self, rows: np.ndarray) -> list[np.ndarray]:
        """rows (M,) -> groups of at most ``chunk`` rows of one word length each, so no chunk pads."""
        lengths = self.batcher.words(rows)[1]
        order = np.argsort(lengths, kind="stable")
        rows, lengths = rows[order], lengths[order]
        edges = np.flatnonzero(np.diff(lengths)) + 1  # where the length changes
        return [group[start : start + self.chunk] for group in np.split(rows, edges)
                for start in range(0, len(group), self.chunk)]

    def __call__(self, sentences: Sequence[Sequence[str]], width: int | None = None) -> np.ndarray:
        """sentences: B lists of token strings -> (B, T, D) float32, T = ``width`` or the longest sentence."""
        with self._lock:
            return self._vectors_of(sentences, width)

    def _vectors_of(self, sentences: Sequence[Sequence[str]], width: int | None) -> np.ndarray:
        if self.batcher.size > self.limit:
            self._clear()
        rows = self.batcher.rows(sentences, width)  # (B, T)
        self._reserve(self.batcher.size)
        new = np.unique(rows[~self._encoded[rows]])  # (M,) rows never encoded
        for part in self._chunks(new) if len(new) else []:
            vectors = self.encode(*self.batcher.words(part))
            if vectors.shape != (len(part), self.size):
                raise ValueError(f"the character encoder returned shape {vectors.shape}; "
                                 f"expected ({len(part)}, {self.size})")
            self._vectors[part] = vectors
        self._encoded[new] = True
        return self._vectors[rows]  # (B, T, D)
