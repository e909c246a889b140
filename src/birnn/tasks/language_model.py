"""Character language modelling — and why a bidirectional one "cheats".

A language model predicts x_{t+1} from x_1..x_t. Trained the same way, a
bidirectional network's backward direction has already read x_{t+1} when it
predicts it, so its training perplexity collapses towards 1, yet it cannot
generate: at generation time the future is not there. ``causal_perplexity``
gives the honest number: each prediction sees only its prefix (the prefix is
fed alone and the prediction read at its last position).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from birnn.data import Batch, Vocab, collate
from birnn.data.streams import Window, random_partition, sequential_partition, windows
from birnn.spec import padding_mask
from birnn.tasks.encoders import Encoder, check_model, is_bidirectional, seeded

PARTITIONS = ("random", "sequential")


@dataclass(frozen=True)
class LMConfig:
    """hidden: units per direction (a one-directional model gets 2·hidden, encoders.py);
    ``embedding=0`` feeds one-hot vectors as d2l does; partition: how an epoch cuts the
    text (``data.streams``), "sequential" carrying the state from batch to batch."""

    model: str = "lstm"
    hidden: int = 128
    layers: int = 1
    embedding: int = 0
    seed: int = 0
    partition: str = "random"

    def __post_init__(self) -> None:
        check_model(self.model)
        if self.partition not in PARTITIONS:
            raise ValueError(f"partition must be one of {PARTITIONS}; got {self.partition!r}")
        if self.hidden < 1 or self.layers < 1 or self.embedding < 0:
            raise ValueError(
                f"hidden, layers must be >= 1 and embedding >= 0; got {self.hidden}, {self.layers}, {self.embedding}"
            )

    @classmethod
    def d2l(cls, model: str, **changes: Any) -> LMConfig:
        """d2l's chapter-8 network: 256 units (per direction for a BiLSTM, ``nn.LSTM(V, 256, 2,
        bidirectional=True)``), 2 layers, one-hot input, sequential partitioning."""
        check_model(model)
        hidden = 256 if is_bidirectional(model) else 128  # a one-directional model gets 2·hidden units
        return replace(cls(model=model, hidden=hidden, layers=2, embedding=0, partition="sequential"), **changes)


class CharModel(nn.Module):
    """inputs (B, T) ids, lengths (B,), state -> (logits (B, T, V) over the vocabulary, final state).

    state: None (zeros) or the final state of a previous call with the same batch size.
    """

    def __init__(self, config: LMConfig, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, config.embedding) if config.embedding else None
        width = config.embedding or vocab_size
        self.encoder = Encoder(config.model, width, config.hidden, config.layers)
        self.output = nn.Linear(self.encoder.output_size, vocab_size)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        if self.embedding is not None:
            x = self.embedding(inputs)
        else:
            x = nn.functional.one_hot(inputs, self.vocab_size).float()
        h, final = self.encoder(x, lengths, state)
        return self.output(h), final


def _detach(state: Any) -> Any:
    """The same state without its autograd history (truncated BPTT between batches)."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    parts = [_detach(s) for s in state]
    return type(state)(*parts) if hasattr(state, "_fields") else tuple(parts)


def split_heldout(text: str, train_chars: int, heldout_chars: int, steps: int) -> tuple[str, str]:
    """The first ``train_chars`` characters for training and the ``heldout_chars`` after them;
    when the text ends before a held-out window fits, the last 10% of the training text instead."""
    train, held = text[:train_chars], text[train_chars : train_chars + heldout_chars]
    if heldout_chars and len(held) <= steps:
        cut = int(0.9 * len(train))
        train, held = train[:cut], train[cut:]
    return train, held


class LanguageModelTask:
    """Next-character prediction; metrics: perplexity and next-character accuracy."""

    kind = "language_model"

    def __init__(self, config: LMConfig, vocab: Vocab) -> None:
        self.config, self.vocab = config, vocab
        self._carried: Any = None
        self.model = seeded(config.seed, lambda: CharModel(config, len(vocab)), config)

    @classmethod
    def for_text(cls, config: LMConfig, text: str) -> LanguageModelTask:
        return cls(config, Vocab.build([text]))

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": asdict(self.config), "vocab": self.vocab.to_dict()}

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> LanguageModelTask:
        return cls(LMConfig(**description["config"]), Vocab.from_dict(description["vocab"]))

    def epoch_examples(self, ids: list[int], batch_size: int, steps: int, seed: int) -> Callable[[int], list[Window]]:
        """``epoch -> windows`` of the configured partitioning; too short a text fails here, before training."""
        if self.config.partition == "sequential":
            sequential_partition(ids, batch_size, steps, seed, 0)
            return lambda epoch: sequential_partition(ids, batch_size, steps, seed, epoch)
        return lambda epoch: random_partition(ids, steps, seed, epoch)

    def start_epoch(self, epoch: int) -> None:
        """Every epoch starts from a zero state (sequential partitioning carries it within one)."""
        self._carried = None

    def loss(self, batch: Batch) -> torch.Tensor:
        sequential = self.config.partition == "sequential"
        state = self._carried if sequential and _batch_size(self._carried) == batch.inputs.shape[0] else None
        logits, final = self.model(batch.inputs, batch.lengths, state)
        if sequential:
            self._carried = _detach(final)
        valid = padding_mask(batch.lengths, batch.inputs.shape[1])
        return nn.functional.cross_entropy(logits[valid], batch.targets[valid])

    def evaluate_batch(self, batch: Batch) -> tuple[float, int, int]:
        """Summed negative log-likelihood, correct predictions and token count of a batch."""
        logits, _ = self.model(batch.inputs, batch.lengths)
        valid = padding_mask(batch.lengths, batch.inputs.shape[1])
        nll = nn.functional.cross_entropy(logits[valid], batch.targets[valid], reduction="sum")
        correct = (logits[valid].argmax(-1) == batch.targets[valid]).sum()
        return float(nll), int(correct), int(valid.sum())

    def metrics(self, outcomes: list[tuple[float, int, int]]) -> dict[str, float]:
        nll, correct, tokens = (sum(p[i] for p in outcomes) for i in range(3))
        return {"perplexity": math.exp(nll / tokens), "accuracy": correct / tokens}

    # ----- what a bidirectional LM can and cannot do ------------------------------------------------
    @torch.no_grad()
    def causal_perplexity(self, ids: list[int], steps: int = 35) -> float:
        """Perplexity when every prediction sees only its prefix within a window of ``steps``:
        all prefixes of a window run as one padded batch and each is read at its last position."""
        self.model.eval()
        device = next(self.model.parameters()).device
        nll, count = 0.0, 0
        for inputs, targets in windows(ids, steps):
            prefixes = [(inputs[: n + 1], targets[: n + 1]) for n in range(len(inputs))]
            batch = Batch(*(t.to(device) for t in collate(prefixes)))
            logits, _ = self.model(batch.inputs, batch.lengths)  # (steps, steps, V)
            last = logits[torch.arange(len(prefixes), device=device), batch.lengths - 1]  # after each prefix
            nll += float(nn.functional.cross_entropy(last, torch.tensor(targets, device=device), reduction="sum"))
            count += len(targets)
        return math.exp(nll / count)

    @torch.no_grad()
    def generate(self, prefix: str, chars: int, temperature: float = 0.0, seed: int = 0, context: int = 100) -> str:
        """Continue ``prefix`` by ``chars`` characters: greedy (temperature 0) or sampled; linear in ``chars``.

        A one-directional model reads the prefix once and then one character per step, carrying
        its state. A bidirectional one has no state to carry (its backward direction would have to
        read everything again), so each step re-reads the last ``context`` characters.
        """
        if not prefix:
            raise ValueError("prefix must hold at least one character")
        if temperature < 0 or not math.isfinite(temperature):
            raise ValueError(f"temperature must be finite and >= 0; got {temperature}")
        if context < 1:
            raise ValueError(f"context must be >= 1; got {context}")
        self.model.eval()
        device = next(self.model.parameters()).device
        rng = np.random.default_rng(seed)
        ids = self.vocab.encode(prefix)
        carried, state, unread = not is_bidirectional(self.config.model), None, ids
        for _ in range(chars):
            if carried:
                logits, state = self.model(torch.tensor([unread], device=device),
                                           torch.tensor([len(unread)], device=device), state)
            else:
                window = ids[-context:]
                logits, _ = self.model(torch.tensor([window], device=device),
                                       torch.tensor([len(window)], device=device))
            last = logits[0, -1]
            last[:2] = -math.inf  # never <pad> or <unk>
            if temperature == 0:
                ids.append(int(last.argmax()))
            else:
                p = torch.softmax(last / temperature, -1).double().cpu().numpy()
                ids.append(int(rng.choice(len(p), p=p / p.sum())))
            unread = ids[-1:]
        return "".join(self.vocab.decode(ids))


def _batch_size(state: Any) -> int | None:
    """B of a carried state: (L, B, H), a pair (h, c) of those, or a pair of directions."""
    while state is not None and not isinstance(state, torch.Tensor):
        state = state[0]
    return None if state is None else state.shape[1]
