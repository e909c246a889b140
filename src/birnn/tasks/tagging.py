"""Sequence tagging (POS, chunking, NER): embeddings -> (Bi)RNN encoder -> a tag per token.

    logits_t = W [→h_t ; ←h_t] + b,   loss = mean over valid tokens of -log softmax(logits_t)[y_t]

The encoder is ``birnn.nn.BiRNN`` for bidirectional models and torch's own
unidirectional module otherwise (trailing padding cannot reach valid steps of
a left-to-right reader). Tag strings live here and in the data layer only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from birnn.data import Batch, Vocab
from birnn.nn import BiRNN
from birnn.train import checkpoint

MODELS = {
    "lstm": ("lstm", False),
    "bilstm": ("lstm", True),
    "gru": ("gru", False),
    "bigru": ("gru", True),
    "rnn": ("rnn_tanh", False),
    "birnn": ("rnn_tanh", True),
}
_TORCH = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN}


@dataclass(frozen=True)
class TaggerConfig:
    """model: one of MODELS; hidden: per direction (a unidirectional model gets 2·hidden, so
    both read features of the same width); embedding: input vector size."""

    model: str = "bilstm"
    embedding: int = 64
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}; got {self.model!r}")
        for name in ("embedding", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")


class Tagger(nn.Module):
    """inputs (B, T) ids, lengths (B,) -> logits (B, T, n_tags)."""

    def __init__(self, config: TaggerConfig, n_words: int, n_tags: int) -> None:
        super().__init__()
        cell, bidirectional = MODELS[config.model]
        self.bidirectional = bidirectional
        self.embedding = nn.Embedding(n_words, config.embedding, padding_idx=0)
        if bidirectional:
            self.encoder: nn.Module = BiRNN(
                config.embedding, config.hidden, config.layers, cell, dropout=config.dropout
            )
        else:
            self.encoder = _TORCH[cell](
                config.embedding, 2 * config.hidden, config.layers, batch_first=True, dropout=config.dropout
            )
        self.output = nn.Linear(2 * config.hidden, n_tags)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embedding(inputs)  # (B, T, E)
        h = self.encoder(x, lengths).output if self.bidirectional else self.encoder(x)[0]  # (B, T, 2H)
        return self.output(h)  # (B, T, n_tags)


def _valid(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    return torch.arange(steps)[None, :] < lengths[:, None]


class TaggingTask:
    """The task the trainer runs: loss, predictions and metrics for tagging."""

    def __init__(self, config: TaggerConfig, words: Vocab, tags: Vocab) -> None:
        self.config, self.words, self.tags = config, words, tags
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = Tagger(config, len(words), len(tags))

    @classmethod
    def for_data(cls, config: TaggerConfig, sentences: list[tuple[list[str], list[str]]]) -> TaggingTask:
        words = Vocab.build(tokens for tokens, _ in sentences)
        tags = Vocab.build((tags for _, tags in sentences), specials=False)
        return cls(config, words, tags)

    def encode(self, sentences: list[tuple[list[str], list[str]]]) -> list[tuple[list[int], list[int]]]:
        """Token and tag strings -> id pairs; unknown tags are an error naming the tag."""
        return [(self.words.encode(tokens), self.tags.encode(tags)) for tokens, tags in sentences]

    def loss(self, batch: Batch) -> torch.Tensor:
        logits = self.model(batch.inputs, batch.lengths)
        valid = _valid(batch.lengths, batch.inputs.shape[1])
        return nn.functional.cross_entropy(logits[valid], batch.targets[valid])

    def probabilities(self, batch: Batch) -> torch.Tensor:
        """p(tag | sentence) per token. -> (B, T, n_tags)."""
        return torch.softmax(self.model(batch.inputs, batch.lengths), dim=-1)

    def predict(self, batch: Batch) -> list[list[int]]:
        best = self.model(batch.inputs, batch.lengths).argmax(-1)
        return [row[:n].tolist() for row, n in zip(best, batch.lengths.tolist(), strict=True)]

    def metrics(self, predictions: list[list[list[int]]], batches: list[Batch]) -> dict[str, float]:
        """Token accuracy; with BIO tags also seqeval's span F1 (micro)."""
        predicted, gold = [], []
        for batch_predictions, batch in zip(predictions, batches, strict=True):
            for row, target, n in zip(batch_predictions, batch.targets, batch.lengths.tolist(), strict=True):
                predicted.append(self.tags.decode(row))
                gold.append(self.tags.decode(target[:n].tolist()))
        correct = sum(p == g for ps, gs in zip(predicted, gold, strict=True) for p, g in zip(ps, gs, strict=True))
        result = {"accuracy": correct / max(1, sum(len(g) for g in gold))}
        if any(tag[:2] in ("B-", "I-") for tag in self.tags.itos):
            from seqeval.metrics import f1_score

            result["f1"] = float(f1_score(gold, predicted))
        return result

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "tagging",
            "config": asdict(self.config),
            "words": self.words.to_dict(),
            "tags": self.tags.to_dict(),
        }

    @classmethod
    def from_run(cls, run_dir: str | Path, which: str = "best") -> TaggingTask:
        """Rebuild a trained tagger from a run directory (``best`` or ``checkpoint``)."""
        directory = Path(run_dir) / which
        if not directory.is_dir():
            directory = Path(run_dir) / "checkpoint"
        state = checkpoint.read_state(directory)
        description = state["task"]
        if description.get("kind") != "tagging":
            raise ValueError(f"{run_dir}: not a tagging run (kind {description.get('kind')!r})")
        task = cls(
            TaggerConfig(**description["config"]),
            Vocab.from_dict(description["words"]),
            Vocab.from_dict(description["tags"]),
        )
        checkpoint.load(directory, task.model)
        task.model.eval()
        return task
