"""Vocabulary: symbols <-> ids, with padding (id 0) and unknown (id 1), saved as JSON."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

PAD, UNK = "<pad>", "<unk>"


class Vocab:
    """Ids for tokens (characters, words or tags).

    ``Vocab.build(sequences, min_freq=1)`` counts symbols; ids 0 and 1 are
    ``<pad>`` and ``<unk>`` unless ``specials=False`` (for tag sets, where every
    id is a class; then index 0 is still the padding target never scored).
    """

    def __init__(self, symbols: Sequence[str], specials: bool = True) -> None:
        self.specials = specials
        self.itos: list[str] = ([PAD, UNK] if specials else []) + [s for s in symbols if s not in (PAD, UNK)]
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("symbols must be unique")

    @classmethod
    def build(cls, sequences: Iterable[Iterable[str]], min_freq: int = 1, specials: bool = True) -> Vocab:
        """Symbols seen at least ``min_freq`` times, most frequent first (ties alphabetical)."""
        counts = Counter(symbol for sequence in sequences for symbol in sequence)
        kept = sorted((s for s, c in counts.items() if c >= min_freq), key=lambda s: (-counts[s], s))
        return cls(kept, specials)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self.stoi

    def encode(self, symbols: Iterable[str]) -> list[int]:
        """Unknown symbols map to <unk> (or raise for a vocabulary without specials)."""
        if self.specials:
            return [self.stoi.get(s, 1) for s in symbols]
        try:
            return [self.stoi[s] for s in symbols]
        except KeyError as exc:
            raise ValueError(f"unknown symbol {exc.args[0]!r}; known: {self.itos[:20]}") from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    def to_dict(self) -> dict:
        return {"symbols": self.itos[2:] if self.specials else self.itos, "specials": self.specials}

    @classmethod
    def from_dict(cls, payload: dict) -> Vocab:
        return cls(payload["symbols"], payload["specials"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        return cls.from_dict(json.loads(Path(path).read_text()))
