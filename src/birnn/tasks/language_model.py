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
from birnn.nn import BiRNN
from birnn.tasks.tagging import MODELS
from birnn.train import checkpoint

_TORCH = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN}


@dataclass(frozen=True)
class LMConfig:
    """hidden is per direction, as d2l's ``nn.LSTM(len(vocab), 256, 2, bidirectional=True)``;
    ``embedding=0`` feeds one-hot vectors as d2l does."""

    model: str = "lstm"
    hidden: int = 256
    layers: int = 2
    embedding: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}; got {self.model!r}")
        if self.hidden < 1 or self.layers < 1 or self.embedding < 0:
            raise ValueError(
                f"hidden, layers must be >= 1 and embedding >= 0; got {self.hidden}, {self.layers}, {self.embedding}"
            )


class CharModel(nn.Module):
    """inputs (B, T) ids, lengths (B,) -> logits (B, T, V) over the vocabulary."""

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

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.embedding is not None:
            x = self.embedding(inputs)
        else:
            x = nn.functional.one_hot(inputs, self.vocab_size).float()
        h = self.encoder(x, lengths).output if self.bidirectional else self.encoder(x)[0]
        return self.output(h)


def windows(ids: list[int], steps: int, offset: int = 0) -> list[tuple[list[int], list[int]]]:
    """Non-overlapping (input, next-token target) windows of ``steps`` tokens, starting at ``offset``
    (d2l's partitioning; the trainer shuffles their order every epoch)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    starts = range(offset, len(ids) - steps, steps)
    return [(ids[s : s + steps], ids[s + 1 : s + steps + 1]) for s in starts]


class LanguageModelTask:
    """Next-character prediction; metrics: perplexity and next-character accuracy."""

    def __init__(self, config: LMConfig, vocab: Vocab) -> None:
        self.config, self.vocab = config, vocab
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = CharModel(config, len(vocab))

    @classmethod
    def for_text(cls, config: LMConfig, text: str) -> LanguageModelTask:
        return cls(config, Vocab.build([text]))

    def loss(self, batch: Batch) -> torch.Tensor:
        logits = self.model(batch.inputs, batch.lengths)
        valid = torch.arange(batch.inputs.shape[1])[None] < batch.lengths[:, None]
        return nn.functional.cross_entropy(logits[valid], batch.targets[valid])

    def predict(self, batch: Batch) -> tuple[float, int, int]:
        """Summed negative log-likelihood, correct predictions and token count of a batch."""
        logits = self.model(batch.inputs, batch.lengths)
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
            logits = self.model(batch.inputs, batch.lengths)  # (steps, steps, V)
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
            logits = self.model(inputs, torch.tensor([len(ids)]))[0, -1]
            logits[:2] = -math.inf  # never <pad> or <unk>
            if temperature == 0:
                ids.append(int(logits.argmax()))
            else:
                p = torch.softmax(logits / temperature, -1).double().numpy()
                ids.append(int(rng.choice(len(p), p=p / p.sum())))
        return "".join(self.vocab.decode(ids))
