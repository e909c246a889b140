"""Contextual token vectors from two one-directional character language models (ELMo; flair's
contextual string embeddings) — the honest bidirectional language representation.

Two separate LMs read the same character string s_0 … s_{n-1}, one in each direction; each
predicts only characters it has not read:

    →h_i = RNN_f(e_f(s_0), …, e_f(s_i)),         p(s_{i+1} | s_0..s_i)     = softmax(W_f →h_i + b_f)
    ←h_i = RNN_b(e_b(s_{n-1}), …, e_b(s_i)),     p(s_{i-1} | s_i..s_{n-1}) = softmax(W_b ←h_i + b_b)

A sentence is read as s = "\\n" + " ".join(tokens) + "\\n" (the markers are the line breaks
the LMs were trained across). A token spanning s[a..z] gets

    v = [ →h_z ; ←h_a ]                                              (Hf + Hb,)

the forward state after its last character and the backward state after its first character
read from the right: v depends on the token and its left context through →h, on the token and
its right context through ←h. Both are gathered for a whole batch at the token boundaries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from birnn.data import Vocab
from birnn.nn import reverse_padded
from birnn.spec import padding_mask
from birnn.tasks.encoders import seeded

MARK = "\n"
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
Example = tuple[list[int], list[int], list[int]]  # ids of the marked string, first and last character of each token


@dataclass(frozen=True)
class BiLMConfig:
    """cell: "lstm" | "gru"; hidden: units of each direction's LM (the token vector has 2·hidden);
    embedding: character vector size; dropout: on the LM outputs before the softmax (training only)."""

    cell: str = "lstm"
    hidden: int = 256
    layers: int = 1
    embedding: int = 32
    dropout: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}; got {self.cell!r}")
        for name in ("hidden", "layers", "embedding"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1); got {self.dropout}")


class CharLM(nn.Module):
    """One left-to-right character LM. ``states(ids (B, M)) -> (B, M, H)``, the top layer's h_i after
    reading ids[:, :i+1]; ``forward(ids) -> logits (B, M, V)`` of the next character.

    No packing: a left-to-right reader never sees trailing padding before a valid step.
    """

    def __init__(self, config: BiLMConfig, vocab_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, config.embedding, padding_idx=0)
        self.rnn = CELLS[config.cell](config.embedding, config.hidden, config.layers, batch_first=True)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.hidden, vocab_size)

    def states(self, ids: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.embedding(ids))
        return h

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.output(self.dropout(self.states(ids)))


class BiLM(nn.Module):
    """Two separate ``CharLM``: ``forward_lm`` reads the strings, ``backward_lm`` their reversal."""

    def __init__(self, config: BiLMConfig, vocab_size: int) -> None:
        super().__init__()
        self.forward_lm = CharLM(config, vocab_size)
        self.backward_lm = CharLM(config, vocab_size)
        self.dim = 2 * config.hidden


class BiLMBatch(NamedTuple):
    """ids: (B, N) marked strings, 0 at padding; lengths: (B,) string lengths n_b >= 2;
    firsts, lasts: (B, T) character positions in s of each token's first and last character
    (0 at padding tokens, T >= 1); token_lengths: (B,) tokens per sentence (0 for plain text)."""

    ids: torch.Tensor
    lengths: torch.Tensor
    firsts: torch.Tensor
    lasts: torch.Tensor
    token_lengths: torch.Tensor

    @property
    def tokens(self) -> int:
        """Characters each direction predicts."""
        return int((self.lengths - 1).sum())


def directions(ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward strings and their padding-aware reversals. (B, N), (B,) -> (B, N), (B, N):
    backward[b, j] = ids[b, n_b - 1 - j] for j < n_b."""
    return ids, reverse_padded(ids, lengths)


def token_vectors(
    forward: torch.Tensor, backward: torch.Tensor, lengths: torch.Tensor, firsts: torch.Tensor,
    lasts: torch.Tensor, token_lengths: torch.Tensor,
) -> torch.Tensor:
    """[→h_z ; ←h_a] of every token, gathered at its boundaries.

    forward: (B, M, Hf), state after reading s_0..s_i at i; backward: (B, M, Hb), state after reading
    s_{n-1}..s_{n-1-j} at j (so s_a is read at j = n - 1 - a); lengths: (B,) n_b; firsts, lasts:
    (B, T) a and z; token_lengths: (B,) -> (B, T, Hf + Hb), zero at padding tokens.
    """
    valid = padding_mask(token_lengths, firsts.shape[1])  # (B, T)
    at_backward = torch.where(valid, lengths[:, None] - 1 - firsts, 0)  # padding tokens: any valid index
    f = torch.gather(forward, 1, lasts[..., None].expand(-1, -1, forward.shape[2]))  # (B, T, Hf)
    b = torch.gather(backward, 1, at_backward[..., None].expand(-1, -1, backward.shape[2]))  # (B, T, Hb)
    return torch.cat([f, b], dim=-1) * valid[..., None]


def sentence_example(vocab: Vocab, tokens: Sequence[str]) -> Example:
    """The marked string of a sentence and each token's first and last character position in it."""
    if isinstance(tokens, str) or not len(tokens):
        raise ValueError(f"a sentence must be a non-empty list of tokens; got {tokens!r}")
    sizes = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    if int(sizes.min()) < 1:
        raise ValueError(f"tokens must be non-empty strings; got {list(tokens)!r}")
    firsts = 1 + np.concatenate([[0], np.cumsum(sizes + 1)[:-1]])  # s = MARK t_1 " " t_2 … MARK
    lasts = firsts + sizes - 1
    ids = vocab.encode(MARK + " ".join(tokens) + MARK)
    return ids, firsts.tolist(), lasts.tolist()


def text_examples(vocab: Vocab, line: str, steps: int) -> list[Example]:
    """A line of raw text as training examples: its marked string, cut into pieces of at most
    ``steps`` + 1 characters that overlap by one (every character is predicted once per direction)."""
    ids = vocab.encode(MARK + line + MARK)
    return [(ids[start : start + steps + 1], [], []) for start in range(0, len(ids) - 1, steps)]


def collate(examples: Sequence[Example]) -> BiLMBatch:
    lengths = np.array([len(ids) for ids, _, _ in examples], dtype=np.int64)
    if len(examples) == 0 or int(lengths.min()) < 2:
        raise ValueError("every example must hold at least two characters")
    token_lengths = np.array([len(f) for _, f, _ in examples], dtype=np.int64)
    ids = np.zeros((len(examples), int(lengths.max())), dtype=np.int64)
    firsts = np.zeros((len(examples), max(int(token_lengths.max()), 1)), dtype=np.int64)
    lasts = np.zeros_like(firsts)
    for row, (chars, first, last) in enumerate(examples):
        ids[row, : len(chars)] = chars
        firsts[row, : len(first)] = first
        lasts[row, : len(last)] = last
    return BiLMBatch(*(torch.from_numpy(a) for a in (ids, lengths, firsts, lasts, token_lengths)))


def _nll(lm: CharLM, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed -log p(ids[:, i+1] | ids[:, :i+1]) over valid i and the number of correct argmax predictions."""
    logits = lm(ids[:, :-1])  # (B, N-1, V)
    valid = padding_mask(lengths - 1, ids.shape[1] - 1)
    scores, targets = logits[valid], ids[:, 1:][valid]
    return nn.functional.cross_entropy(scores, targets, reduction="sum"), (scores.argmax(-1) == targets).sum()


class BiLMTask:
    """Trains both directions at once: loss = mean NLL of the forward LM + mean NLL of the backward LM.
    The two share no parameter, so each gets the gradient it would get alone (the trainer's gradient
    clipping acts on their joint norm)."""

    kind = "bilm"
    monitor = "log_likelihood"

    def __init__(self, config: BiLMConfig, vocab: Vocab) -> None:
        self.config, self.vocab = config, vocab
        self.model = seeded(config.seed, lambda: BiLM(config, len(vocab)), config)

    @classmethod
    def for_text(cls, config: BiLMConfig, lines: Sequence[str]) -> BiLMTask:
        """Characters of the lines (and the marker) form the vocabulary, most frequent first."""
        return cls(config, Vocab.build([MARK, *lines]))

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": asdict(self.config), "vocab": self.vocab.to_dict()}

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> BiLMTask:
        return cls(BiLMConfig(**description["config"]), Vocab.from_dict(description["vocab"]))

    # ----- data ----------------------------------------------------------------------------------
    def text_examples(self, lines: Sequence[str], steps: int) -> list[Example]:
        if steps < 1:
            raise ValueError(f"steps must be >= 1; got {steps}")
        return [example for line in lines for example in text_examples(self.vocab, line, steps)]

    def encode_input(self, tokens: Sequence[str]) -> Example:
        return sentence_example(self.vocab, tokens)

    def collate(self, examples: Sequence[Example]) -> BiLMBatch:
        return collate(examples)

    # ----- training and evaluation ---------------------------------------------------------------
    def _losses(self, batch: BiLMBatch) -> tuple[torch.Tensor, ...]:
        model = getattr(self.model, "module", self.model)
        forward, backward = directions(batch.ids, batch.lengths)
        return (*_nll(model.forward_lm, forward, batch.lengths), *_nll(model.backward_lm, backward, batch.lengths))

    def loss(self, batch: BiLMBatch) -> torch.Tensor:
        nll_f, _, nll_b, _ = self._losses(batch)
        return (nll_f + nll_b) / batch.tokens

    def evaluate_batch(self, batch: BiLMBatch) -> tuple[float, float, int, int, int]:
        """Summed NLL and correct predictions of each direction, and the characters per direction."""
        nll_f, correct_f, nll_b, correct_b = self._losses(batch)
        return float(nll_f), float(nll_b), int(correct_f), int(correct_b), batch.tokens

    def metrics(self, outcomes: list[tuple[float, float, int, int, int]]) -> dict[str, float]:
        """Perplexity and next-character accuracy per direction; log_likelihood: the mean log p per
        character over both directions (higher is better; the model-selection metric)."""
        nll_f, nll_b, correct_f, correct_b, count = (sum(o[i] for o in outcomes) for i in range(5))
        return {"perplexity_forward": math.exp(nll_f / count), "perplexity_backward": math.exp(nll_b / count),
                "accuracy_forward": correct_f / count, "accuracy_backward": correct_b / count,
                "log_likelihood": -(nll_f + nll_b) / (2 * count)}

    # ----- token vectors -------------------------------------------------------------------------
    def vectors(self, batch: BiLMBatch) -> torch.Tensor:
        """(B, T, 2·hidden) token vectors of a batch of sentences, zero at padding tokens."""
        model = getattr(self.model, "module", self.model)
        forward, backward = directions(batch.ids, batch.lengths)
        inputs = batch.ids.shape[1] - 1  # the last character is never read: every token ends before it
        states_f = model.forward_lm.states(forward[:, :inputs])
        states_b = model.backward_lm.states(backward[:, :inputs])
        return token_vectors(states_f, states_b, batch.lengths, batch.firsts, batch.lasts, batch.token_lengths)

    def embed(self, batch: BiLMBatch) -> list[np.ndarray]:
        """Per sentence a (length, 2·hidden) array of token vectors (``Predictor.embed``)."""
        v = self.vectors(batch)
        return [row[:n].cpu().numpy() for row, n in zip(v, batch.token_lengths.tolist(), strict=True)]

    def embedder(self) -> BiLMEmbedder:
        """These LMs as a frozen token embedder."""
        return BiLMEmbedder(self)


class BiLMEmbedder(nn.Module):
    """A trained biLM, frozen and always in eval mode.

    ``embedder(sentences) -> (vectors (B, T, D), lengths (B,))`` for B lists of token strings;
    D = ``dim`` = 2·hidden, the forward half first. ``vectors_of(sentences)`` -> one (n, D)
    tensor per sentence, in input order, computed in length-sorted batches.
    """

    def __init__(self, task: BiLMTask) -> None:
        super().__init__()
        self._task = task
        self.lm = task.model
        self.dim = task.model.dim
        for p in self.lm.parameters():
            p.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> BiLMEmbedder:
        return super().train(False)

    def describe(self) -> dict[str, Any]:
        return self._task.describe()

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> BiLMEmbedder:
        """The architecture only; the weights come from whatever checkpoint holds this module."""
        if description.get("kind") != BiLMTask.kind:
            raise ValueError(f"expected a bilm description; got kind {description.get('kind')!r}")
        return cls(BiLMTask.from_description(description))

    @torch.no_grad()
    def forward(self, sentences: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = collate([sentence_example(self._task.vocab, tokens) for tokens in sentences])
        device = next(self.lm.parameters()).device
        vectors = self._task.vectors(BiLMBatch(*(t.to(device) for t in batch)))
        return vectors, batch.token_lengths

    def vectors_of(self, sentences: Sequence[Sequence[str]], batch_size: int = 64) -> list[torch.Tensor]:
        """On the CPU, wherever the LMs run: task examples carry them until the trainer moves a batch."""
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        out: list[torch.Tensor] = [torch.empty(0)] * len(sentences)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            vectors, lengths = self([sentences[i] for i in chunk])
            for i, row, n in zip(chunk, vectors, lengths.tolist(), strict=True):
                out[i] = row[:n].to("cpu", copy=True)
        return out


# ----- what a task that reads biLM vectors shares (taggers, classifiers) ------------------------------
# A task example is a tuple whose third item is its tokens; with a biLM a fourth item holds their vectors.


def _vectors(embedder: BiLMEmbedder, examples: Sequence[tuple[Any, ...]]) -> list[torch.Tensor]:
    """Each example's (n, D) vectors: the ones it brings, computed in one length-sorted pass for the rest."""
    given = [e[3] if len(e) > 3 else None for e in examples]
    for number, (e, v) in enumerate(zip(examples, given, strict=True)):
        if v is not None and tuple(v.shape) != (len(e[2]), embedder.dim):
            raise ValueError(f"examples[{number}]: biLM vectors must be ({len(e[2])}, {embedder.dim}) for its "
                             f"{len(e[2])} tokens; got {tuple(v.shape)}")
    computed = iter(embedder.vectors_of([e[2] for e, v in zip(examples, given, strict=True) if v is None]))
    return [v if v is not None else next(computed) for v in given]


def with_vectors(embedder: BiLMEmbedder | None, examples: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The examples, each with its tokens' frozen biLM vectors (n, D) as a fourth item, computed here once
    (no autograd) so that no epoch runs the biLM again; examples that bring theirs keep them. Unchanged
    without a biLM."""
    if embedder is None:
        return list(examples)
    return [(*e[:3], v) for e, v in zip(examples, _vectors(embedder, examples), strict=True)]


def batch_context(embedder: BiLMEmbedder | None, examples: Sequence[tuple[Any, ...]]) -> torch.Tensor | None:
    """The biLM vectors of a batch of examples -> (B, T, D), zero at padding (None without a biLM): the
    vectors ``with_vectors`` attached, computed now for examples that bring none (those to predict)."""
    if embedder is None:
        return None
    return nn.utils.rnn.pad_sequence(_vectors(embedder, examples), batch_first=True)
