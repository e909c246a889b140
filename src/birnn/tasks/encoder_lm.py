"""Language-model pretraining of a classifier's encoder on unlabelled text (Dai & Le 2015, with
the two directions of ELMo, Peters et al. 2018).

The network is a ``Classifier`` of the same configuration (word embedding, optional character
and biLM input, encoder) with a next-word head on the forward features and a previous-word head
on the backward ones. For a sentence w_0 … w_{n-1} and the boundary symbol </s>,

    p(w_{t+1} | w_{≤t}) = softmax(F →h_t)      (w_n = </s>)
    p(w_{t-1} | w_{≥t}) = softmax(G ←h_t)      (w_{-1} = </s>)
    loss = (1/2n) Σ_t [-log p(w_{t+1} | w_{≤t}) - log p(w_{t-1} | w_{≥t})]

Each direction predicts a word it has not read: →h_t has read w_{≤t}, ←h_t has read w_{≥t}
(a one-directional encoder has only the forward head, over all its features). Targets are the
words as the vocabulary knows them (<unk> for the rare ones). ``transfer`` then starts a new
classifier from the pretrained encoder, character encoder and the vectors of every word both
vocabularies hold; its output layer (and the pooling's attention, if any) starts fresh.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from birnn.data import Vocab
from birnn.data.characters import char_vocab, singleton_word_dropout
from birnn.spec import padding_mask
from birnn.tasks.bilm import BiLMEmbedder
from birnn.tasks.classifier import ClassificationBatch, ClassificationTask, Classifier, ClassifierConfig
from birnn.tasks.encoders import is_bidirectional

TEXT = "text"  # the one placeholder label of unlabelled sentences
# the settings that shape the token representation and the encoder: equal for a transfer
SHAPING = ("model", "embedding", "hidden", "layers", "chars", "char_embedding", "char_hidden", "lowercase", "bilm")


class EncoderLM(nn.Module):
    """``EncoderLM(classifier, n_words)``: the classifier's features h (B, T, 2H) -> next-word scores
    of →h (B, T, V+1) and previous-word scores of ←h (or None for a one-directional encoder);
    index V is the boundary </s>."""

    def __init__(self, classifier: Classifier, n_words: int, config: ClassifierConfig) -> None:
        super().__init__()
        self.classifier = classifier
        size = classifier.encoder.output_size
        self.forward_size = config.hidden if is_bidirectional(config.model) else size
        self.next_word = nn.Linear(self.forward_size, n_words + 1)
        backward = size - self.forward_size
        self.previous_word = nn.Linear(backward, n_words + 1) if backward else None
        self.dropout = nn.Dropout(config.dropout)

    @property
    def bilm(self) -> BiLMEmbedder | None:
        return self.classifier.bilm

    def forward(self, words, lengths, chars=None, char_lengths=None, context=None):
        h = self.dropout(self.classifier.features(words, lengths, chars, char_lengths, context))
        following = self.next_word(h[..., : self.forward_size])
        preceding = self.previous_word(h[..., self.forward_size :]) if self.previous_word is not None else None
        return following, preceding


def neighbour_targets(words: torch.Tensor, lengths: torch.Tensor, boundary: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The word after and the word before each position, ``boundary`` past either end.
    words (B, T) int64, lengths (B,) -> (following (B, T), preceding (B, T)); padding positions hold junk."""
    batch = words.shape[0]
    fill = words.new_full((batch, 1), boundary)
    following = torch.cat([words[:, 1:], fill], dim=1)
    following[torch.arange(batch, device=words.device), lengths - 1] = boundary
    preceding = torch.cat([fill, words[:, :-1]], dim=1)
    return following, preceding


class EncoderLMTask(ClassificationTask):
    """``EncoderLMTask.for_text(config, sentences, bilm=None)``: unlabelled token lists; the trainer
    minimises the loss of the module docstring and keeps the best held-out ``log_likelihood``
    (mean log p per predicted word over both directions)."""

    kind = "encoder_lm"
    monitor = "log_likelihood"

    def __init__(self, config: ClassifierConfig, words: Vocab, chars: Vocab, labels: Vocab,
                 singletons: list[int], bilm: BiLMEmbedder | None = None) -> None:
        super().__init__(config, words, chars, labels, singletons, bilm)
        classifier = self.model
        self.model = EncoderLM(classifier, len(words), config)

    @classmethod
    def for_text(cls, config: ClassifierConfig, sentences: Sequence[Any], bilm: BiLMEmbedder | None = None
                 ) -> EncoderLMTask:
        """``sentences``: token lists, or (tokens, label[, biLM vectors]) whose labels are ignored."""
        token_lists = [s[0] if isinstance(s, tuple) else s for s in sentences]
        words, singletons = cls.word_vocabulary(config, token_lists)
        return cls(config, words, char_vocab(token_lists), Vocab([TEXT], specials=False), singletons, bilm)

    def unlabelled(self, sentences: Sequence[Any], source: str = "data") -> list[Any]:
        """Examples of token lists or (tokens, label[, vectors]) tuples, labels ignored."""
        pairs = [(s[0], TEXT, *s[2:]) if isinstance(s, tuple) else (s, TEXT) for s in sentences]
        return self.encode(pairs, source)

    @property
    def network(self) -> EncoderLM:  # type: ignore[override]
        return getattr(self.model, "module", self.model)

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"kind": self.kind}

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> EncoderLMTask:
        bilm = BiLMEmbedder.from_description(d["bilm"]) if "bilm" in d else None
        return cls(ClassifierConfig(**d["config"]), Vocab.from_dict(d["words"]), Vocab.from_dict(d["chars"]),
                   Vocab.from_dict(d["labels"]), list(d["singletons"]), bilm)

    # ----- training and evaluation ---------------------------------------------------------------
    def _nll(self, batch: ClassificationBatch, words: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Summed NLL and correct predictions of each direction (zeros without a backward head)."""
        words = batch.inputs if words is None else words
        following, preceding = self.model(words, batch.lengths, batch.chars, batch.char_lengths, batch.context)
        valid = padding_mask(batch.lengths, batch.inputs.shape[1])
        after, before = neighbour_targets(batch.inputs, batch.lengths, len(self.words))
        results = []
        for scores, targets in ((following, after), (preceding, before)):
            if scores is None:
                zero = following.new_zeros(())
                results += [zero, zero]
                continue
            chosen, wanted = scores[valid], targets[valid]
            nll = nn.functional.cross_entropy(chosen, wanted, reduction="sum")
            results += [nll, (chosen.argmax(-1) == wanted).sum()]
        return tuple(results)

    def _directions(self) -> int:
        return 2 if self.network.previous_word is not None else 1

    def loss(self, batch: ClassificationBatch) -> torch.Tensor:  # type: ignore[override]
        words = batch.inputs
        if self.config.word_dropout and self.network.training:
            words = singleton_word_dropout(words, self._singleton_mask, 1, self.config.word_dropout, None)
        nll_f, _, nll_b, _ = self._nll(batch, words)
        return (nll_f + nll_b) / (self._directions() * batch.tokens)

    def evaluate_batch(self, batch: ClassificationBatch) -> tuple[float, float, int, int, int]:  # type: ignore[override]
        nll_f, correct_f, nll_b, correct_b = self._nll(batch)
        return float(nll_f), float(nll_b), int(correct_f), int(correct_b), batch.tokens

    def metrics(self, outcomes: list[Any]) -> dict[str, float]:
        """Perplexity per direction and log_likelihood, the mean log p per predicted word (higher is better)."""
        nll_f, nll_b, correct_f, correct_b, count = (sum(o[i] for o in outcomes) for i in range(5))
        result = {"perplexity_forward": math.exp(nll_f / count), "accuracy_forward": correct_f / count,
                  "log_likelihood": -(nll_f + nll_b) / (self._directions() * count)}
        if self._directions() == 2:
            result |= {"perplexity_backward": math.exp(nll_b / count), "accuracy_backward": correct_b / count}
        return result


def transfer(pretrained: EncoderLMTask, task: ClassificationTask) -> int:
    """Start ``task``'s new classifier from the pretrained one: encoder and character encoder as they
    are, the vector of every word both vocabularies hold. -> the number of word vectors copied.
    Both must have the same configuration (sizes, model, features); ValueError otherwise."""
    source, target = pretrained.network.classifier, task.network
    mine, theirs = asdict(task.config), asdict(pretrained.config)
    differ = [name for name in SHAPING if mine[name] != theirs[name]]
    if differ:
        raise ValueError("the pretrained encoder was built with other settings: "
                         + ", ".join(f"{name}={theirs[name]!r} (this classifier: {mine[name]!r})" for name in differ))
    target.encoder.load_state_dict(source.encoder.state_dict())
    if target.chars is not None and source.chars is not None:
        target.chars.load_state_dict(source.chars.state_dict())
    pairs = [(i, pretrained.words.stoi[w]) for i, w in enumerate(task.words.itos) if i > 1 and w in pretrained.words]
    if pairs:
        rows, source_rows = (torch.tensor(index) for index in zip(*pairs, strict=True))
        with torch.no_grad():
            target.embedding.weight[rows] = source.embedding.weight[source_rows].to(target.embedding.weight)
    return len(pairs)
