"""Cloze: fill in masked tokens from the context on both sides — the job a BiRNN is made for.

Windows of text have 15% of their tokens replaced by ``<mask>``; the model is
scored only at the masked positions. A left-to-right model (``lstm``) sees
only the left context of a blank, a bidirectional one both sides. Tokens are
characters (``unit="char"``, blanks written ``_``) or words (``unit="word"``,
blanks written ``[MASK]``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from birnn.data import Batch, Vocab, collate
from birnn.tasks.encoders import check_model, seeded
from birnn.tasks.tagger import Tagger, TaggerConfig

MASK = "<mask>"
BLANK = {"char": "_", "word": "[MASK]"}


@dataclass(frozen=True)
class ClozeConfig:
    unit: str = "char"
    model: str = "bilstm"
    hidden: int = 128
    embedding: int = 32
    layers: int = 1
    rate: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.unit not in BLANK:
            raise ValueError(f"unit must be 'char' or 'word'; got {self.unit!r}")
        check_model(self.model)
        if not 0 < self.rate < 1:
            raise ValueError(f"rate must lie in (0, 1); got {self.rate}")


def masked_examples(
    ids: list[int], mask_id: int, steps: int, rate: float, copies: int, seed: int
) -> list[tuple[list[int], list[int]]]:
    """Windows of ``steps`` tokens, each in ``copies`` differently masked versions.

    -> (input with <mask> at ~rate of positions (at least one), target = original id there, 0 elsewhere)
    """
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, len(ids) - steps + 1, steps):
        window = np.array(ids[start : start + steps])
        for _ in range(copies):
            chosen = rng.random(steps) < rate
            chosen[rng.integers(steps)] = True
            inputs = np.where(chosen, mask_id, window)
            targets = np.where(chosen, window, 0)
            out.append((inputs.tolist(), targets.tolist()))
    return out


class ClozeTask:
    """Predict masked tokens; metrics: accuracy on masked positions."""

    kind = "cloze"

    def __init__(self, config: ClozeConfig, vocab: Vocab) -> None:
        if MASK not in vocab:
            raise ValueError(f"the vocabulary must hold {MASK}")
        self.config, self.vocab = config, vocab
        self.mask_id = vocab.stoi[MASK]
        tagger = TaggerConfig(
            model=config.model, embedding=config.embedding, hidden=config.hidden, layers=config.layers, seed=config.seed
        )
        self.model = seeded(config.seed, lambda: Tagger(tagger, len(vocab), 1, len(vocab)), config)

    @classmethod
    def for_tokens(cls, config: ClozeConfig, tokens: list[str]) -> ClozeTask:
        return cls(config, Vocab([MASK, *Vocab.build([tokens]).itos[2:]]))

    def loss(self, batch: Batch) -> torch.Tensor:
        logits = self.model(batch.inputs, batch.lengths)
        scored = batch.targets > 0
        return nn.functional.cross_entropy(logits[scored], batch.targets[scored])

    def evaluate_batch(self, batch: Batch) -> tuple[int, int]:
        """Correct predictions and number of masked positions in the batch."""
        logits = self.model(batch.inputs, batch.lengths)
        scored = batch.targets > 0
        return int((logits[scored].argmax(-1) == batch.targets[scored]).sum()), int(scored.sum())

    def metrics(self, outcomes: list[tuple[int, int]]) -> dict[str, float]:
        correct, total = (sum(p[i] for p in outcomes) for i in range(2))
        return {"accuracy": correct / max(total, 1)}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": asdict(self.config), "vocab": self.vocab.to_dict()}

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> ClozeTask:
        return cls(ClozeConfig(**description["config"]), Vocab.from_dict(description["vocab"]))

    @torch.no_grad()
    def fill(self, text: str, top: int = 5) -> list[list[tuple[str, float]]]:
        """The ``top`` candidates with probabilities for each blank (``_`` or ``[MASK]``) in ``text``;
        at most every token of the vocabulary but <pad>, <unk> and <mask>, which are never proposed."""
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ValueError(f"top must be a positive integer; got {top!r}")
        excluded = sorted({0, 1, self.mask_id})  # <pad>, <unk>, <mask>
        top = min(top, len(self.vocab) - len(excluded))
        blank = BLANK[self.config.unit].lower()  # the text is lower-cased, as the corpus was
        tokens = list(text.lower()) if self.config.unit == "char" else text.lower().split()
        if blank not in tokens:
            raise ValueError(f"text must contain at least one blank {BLANK[self.config.unit]!r}; got {text!r}")
        ids = [self.mask_id if t == blank else self.vocab.encode([t])[0] for t in tokens]
        device = next(self.model.parameters()).device
        batch = Batch(*(t.to(device) for t in collate([(ids, [0] * len(ids))])))
        self.model.eval()
        probabilities = torch.softmax(self.model(batch.inputs, batch.lengths)[0], -1)
        probabilities[:, excluded] = 0.0
        probabilities = probabilities / probabilities.sum(-1, keepdim=True)
        answers = []
        for position, token in enumerate(tokens):
            if token == blank:
                p, index = probabilities[position].topk(top)
                answers.append([(self.vocab.itos[i], float(q)) for q, i in zip(p, index.tolist(), strict=True)])
        return answers


def matched_hidden(embedding: int, bidirectional_hidden: int) -> int:
    """``hidden`` for a left-to-right model (which gets 2·hidden units) whose recurrent parameters
    match a BiLSTM with ``bidirectional_hidden`` units per direction:

        4u(E + u) + 8u = 2 · (4h(E + h) + 8h),   u = 2·hidden
    """
    target = 2 * (4 * bidirectional_hidden * (embedding + bidirectional_hidden) + 8 * bidirectional_hidden)
    units = 1
    while 4 * units * (embedding + units) + 8 * units < target:
        units += 1
    return max(1, round(units / 2))
