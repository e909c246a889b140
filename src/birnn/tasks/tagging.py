"""Sequence tagging (POS, chunking, NER): embeddings -> (Bi)RNN encoder -> a tag per token.

    logits_t = W [→h_t ; ←h_t] + b,   loss = mean over valid tokens of -log softmax(logits_t)[y_t]

Tag strings live here and in the data layer only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from birnn.data import Batch, Vocab
from birnn.spec import padding_mask
from birnn.tasks.encoders import Encoder, check_model, seeded

Sentence = tuple[list[str], list[str]]


@dataclass(frozen=True)
class TaggerConfig:
    """model: one of ``encoders.MODELS``; hidden: units per direction (encoders.py);
    embedding: word vector size; dropout: between stacked layers."""

    model: str = "bilstm"
    embedding: int = 100
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_model(self.model)
        for name in ("embedding", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1); got {self.dropout}")


class Tagger(nn.Module):
    """inputs (B, T) ids, lengths (B,) -> logits (B, T, n_tags)."""

    def __init__(self, config: TaggerConfig, n_words: int, n_tags: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_words, config.embedding, padding_idx=0)
        self.encoder = Encoder(config.model, config.embedding, config.hidden, config.layers, config.dropout)
        self.output = nn.Linear(self.encoder.output_size, n_tags)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h, _ = self.encoder(self.embedding(inputs), lengths)  # (B, T, 2H)
        return self.output(h)  # (B, T, n_tags)


class TaggingTask:
    """What the trainer runs for tagging, and what a trained tagger predicts."""

    kind = "tagging"

    def __init__(self, config: TaggerConfig, words: Vocab, tags: Vocab) -> None:
        self.config, self.words, self.tags = config, words, tags
        self.model = seeded(config.seed, lambda: Tagger(config, len(words), len(tags)))

    @classmethod
    def for_data(cls, config: TaggerConfig, sentences: list[Sentence]) -> TaggingTask:
        words = Vocab.build(tokens for tokens, _ in sentences)
        tags = Vocab.build((tags for _, tags in sentences), specials=False)
        return cls(config, words, tags)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": asdict(self.config), "words": self.words.to_dict(),
                "tags": self.tags.to_dict()}

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> TaggingTask:
        return cls(TaggerConfig(**description["config"]), Vocab.from_dict(description["words"]),
                   Vocab.from_dict(description["tags"]))

    # ----- data ----------------------------------------------------------------------------------
    def encode(self, sentences: list[Sentence], source: str = "data") -> list[tuple[list[int], list[int]]]:
        """Token and tag strings -> id pairs; tags unseen in training are an error naming ``source``."""
        unknown = sorted({tag for _, tags in sentences for tag in tags if tag not in self.tags})
        if unknown:
            raise ValueError(f"{source}: tags not seen in training: {', '.join(unknown[:10])}")
        return [(self.words.encode(tokens), self.tags.encode(tags)) for tokens, tags in sentences]

    def encode_input(self, tokens: list[str]) -> list[int]:
        return self.words.encode(tokens)

    # ----- training and evaluation ---------------------------------------------------------------
    def loss(self, batch: Batch) -> torch.Tensor:
        logits = self.model(batch.inputs, batch.lengths)
        valid = padding_mask(batch.lengths, batch.inputs.shape[1])
        return nn.functional.cross_entropy(logits[valid], batch.targets[valid])

    def evaluate_batch(self, batch: Batch) -> list[tuple[list[int], list[int]]]:
        """(predicted, gold) tag ids of every sentence in the batch."""
        gold = [row[:n].tolist() for row, n in zip(batch.targets, batch.lengths.tolist(), strict=True)]
        return list(zip(self.predict_ids(batch), gold, strict=True))

    def metrics(self, outcomes: list[list[tuple[list[int], list[int]]]]) -> dict[str, float]:
        """Token accuracy; with BIO tags also seqeval's span F1 (micro)."""
        pairs = [pair for batch in outcomes for pair in batch]
        predicted = [self.tags.decode(p) for p, _ in pairs]
        gold = [self.tags.decode(g) for _, g in pairs]
        correct = sum(p == g for ps, gs in zip(predicted, gold, strict=True) for p, g in zip(ps, gs, strict=True))
        result = {"accuracy": correct / max(1, sum(len(g) for g in gold))}
        if any(tag[:2] in ("B-", "I-") for tag in self.tags.itos):
            from seqeval.metrics import f1_score

            result["f1"] = float(f1_score(gold, predicted))
        return result

    # ----- prediction ----------------------------------------------------------------------------
    def predict_ids(self, batch: Batch) -> list[list[int]]:
        best = self.model(batch.inputs, batch.lengths).argmax(-1)
        return [row[:n].tolist() for row, n in zip(best, batch.lengths.tolist(), strict=True)]

    def predict(self, batch: Batch) -> list[list[str]]:
        """The tag strings of every sentence in the batch."""
        return [self.tags.decode(ids) for ids in self.predict_ids(batch)]

    def probabilities(self, batch: Batch) -> torch.Tensor:
        """p(tag | sentence) per token. -> (B, T, n_tags), zero at padding."""
        p = torch.softmax(self.model(batch.inputs, batch.lengths), dim=-1)
        return p * padding_mask(batch.lengths, batch.inputs.shape[1])[..., None]

    def predict_proba(self, batch: Batch) -> list[np.ndarray]:
        """Per sentence: a (length, n_tags) array of tag probabilities (columns in ``tags.itos`` order)."""
        p = self.probabilities(batch)
        return [row[:n].cpu().numpy() for row, n in zip(p, batch.lengths.tolist(), strict=True)]
