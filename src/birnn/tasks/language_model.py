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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from birnn.data import Batch, Vocab, collate
from birnn.data.streams import windows
from birnn.nn import BiRNN
from birnn.tasks.tagging import MODELS
from birnn.train import checkpoint

_TORCH = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN}
PARTITIONS = ("random", "sequential")


@dataclass(frozen=True)
class LMConfig:
    """hidden is per direction, as d2l's ``nn.LSTM(len(vocab), 256, 2, bidirectional=True)``;
    ``embedding=0`` feeds one-hot vectors as d2l does."""

    model: str = "lstm"
    hidden: int = 256
    layers: int = 2
    embedding: int = 0
    seed: int = 0
    partition: str = "random"

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}; got {self.model!r}")
        if self.partition not in PARTITIONS:
            raise ValueError(f"partition must be one of {PARTITIONS}; got {self.partition!r}")
        if self.hidden < 1 or self.layers < 1 or self.embedding < 0:
            raise ValueError(
                f"hidden, layers must be >= 1 and embedding >= 0; got {self.hidden}, {self.layers}, {self.embedding}"
            )


class CharModel(nn.Module):
    """inputs (B, T) ids, lengths (B,), state -> (logits (B, T, V) over the vocabulary, final state).

    state: None (zeros) or the final state of a previous call with the same batch size.
    """

    def __init__(self, config: LMConfig, vocab_size: int) -> None:
        super().__init__()
        cell, self.bidirectional = MODELS[config.model]
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, config.embedding) if config.embedding else None
        width = config.embedding or vocab_size
        if self.bidirectional:
            self.encoder: nn.Module = BiRNN(width, config.hidden, config.layers, cell)
            out = 2 * config.hidden
        else:
            self.encoder = _TORCH[cell](width, config.hidden, config.layers, batch_first=True)
            out = config.hidden
        self.output = nn.Linear(out, vocab_size)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        if self.embedding is not None:
            x = self.embedding(inputs)
        else:
            x = nn.functional.one_hot(inputs, self.vocab_size).float()
        if self.bidirectional:
            h, final = self.encoder(x, lengths, state)
        else:
            h, final = self.encoder(x, state)
        return self.output(h), final


def _detach(state: Any) -> Any:
    """The same state without its autograd history (truncated BPTT between batches)."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(_detach(s) for s in state)


class LanguageModelTask:
    """Next-character prediction; metrics: perplexity and next-character accuracy."""

    def __init__(self, config: LMConfig, vocab: Vocab) -> None:
        self.config, self.vocab = config, vocab
        self._carried: Any = None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = CharModel(config, len(vocab))

    @classmethod
    def for_text(cls, config: LMConfig, text: str) -> LanguageModelTask:
        return cls(config, Vocab.build([text]))

    def start_epoch(self, epoch: int) -> None:
        """Every epoch starts from a zero state (sequential partitioning carries it within one)."""
        self._carried = None

    def loss(self, batch: Batch) -> torch.Tensor:
        sequential = self.config.partition == "sequential"
        state = self._carried if sequential and _batch_size(self._carried) == batch.inputs.shape[0] else None
        logits, final = self.model(batch.inputs, batch.lengths, state)
        if sequential:
            self._carried = _detach(final)
        valid = torch.arange(batch.inputs.shape[1])[None] < batch.lengths[:, None]
        return nn.functional.cross_entropy(logits[valid], batch.targets[valid])

    def predict(self, batch: Batch) -> tuple[float, int, int]:
        """Summed negative log-likelihood, correct predictions and token count of a batch."""
        logits, _ = self.model(batch.inputs, batch.lengths)
        valid = torch.arange(batch.inputs.shape[1])[None] < batch.lengths[:, None]
        nll = nn.functional.cross_entropy(logits[valid], batch.targets[valid], reduction="sum")
        correct = (logits[valid].argmax(-1) == batch.targets[valid]).sum()
        return float(nll), int(correct), int(valid.sum())

    def metrics(self, predictions: list[tuple[float, int, int]], batches: list[Batch]) -> dict[str, float]:
        nll, correct, tokens = (sum(p[i] for p in predictions) for i in range(3))
        return {"perplexity": math.exp(nll / tokens), "accuracy": correct / tokens}

    def describe(self) -> dict[str, Any]:
        return {"kind": "language_model", "config": asdict(self.config), "vocab": self.vocab.to_dict()}

    @classmethod
    def from_run(cls, run_dir: str | Path, which: str = "checkpoint") -> LanguageModelTask:
        directory = Path(run_dir) / which
        state = checkpoint.read_state(directory)
        description = state["task"]
        if description.get("kind") != "language_model":
            raise ValueError(f"{run_dir}: not a language-model run (kind {description.get('kind')!r})")
        task = cls(LMConfig(**description["config"]), Vocab.from_dict(description["vocab"]))
        checkpoint.load(directory, task.model)
        task.model.eval()
        return task

    # ----- what a bidirectional LM can and cannot do ------------------------------------------------
    @torch.no_grad()
    def causal_perplexity(self, ids: list[int], steps: int = 35) -> float:
        """Perplexity when every prediction sees only its prefix within a window of ``steps``:
        all prefixes of a window run as one padded batch and each is read at its last position."""
        self.model.eval()
        nll, count = 0.0, 0
        for inputs, targets in windows(ids, steps):
            prefixes = [(inputs[: n + 1], targets[: n + 1]) for n in range(len(inputs))]
            batch = collate(prefixes)
            logits, _ = self.model(batch.inputs, batch.lengths)  # (steps, steps, V)
            last = logits[torch.arange(len(prefixes)), batch.lengths - 1]  # prediction after each prefix
            nll += float(nn.functional.cross_entropy(last, torch.tensor(targets), reduction="sum"))
            count += len(targets)
        return math.exp(nll / count)

    @torch.no_grad()
    def generate(self, prefix: str, chars: int, temperature: float = 0.0, seed: int = 0) -> str:
        """Continue ``prefix`` by ``chars`` characters: greedy (temperature 0) or sampled."""
        if not prefix:
            raise ValueError("prefix must hold at least one character")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0; got {temperature}")
        self.model.eval()
        rng = np.random.default_rng(seed)
        ids = self.vocab.encode(prefix)
        for _ in range(chars):
            inputs = torch.tensor([ids])
            logits = self.model(inputs, torch.tensor([len(ids)]))[0][0, -1]
            logits[:2] = -math.inf  # never <pad> or <unk>
            if temperature == 0:
                ids.append(int(logits.argmax()))
            else:
                p = torch.softmax(logits / temperature, -1).double().numpy()
                ids.append(int(rng.choice(len(p), p=p / p.sum())))
        return "".join(self.vocab.decode(ids))


def _batch_size(state: Any) -> int | None:
    """B of a carried state: (L, B, H), a pair (h, c) of those, or a pair of directions."""
    while state is not None and not isinstance(state, torch.Tensor):
        state = state[0]
    return None if state is None else state.shape[1]
