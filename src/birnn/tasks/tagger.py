"""The tagger network: a token representation, a (Bi)RNN encoder, and a softmax or CRF output.

    r_t = [ e(w_t) ; c(chars of w_t) ; s(shape of w_t) ; b_t ]       word ⊕ character ⊕ shape ⊕ biLM
    h   = Encoder(dropout(r))                                         (B, T, 2H)
    u_t = W dropout(h_t) + b                                          emission scores (B, T, K)

    softmax:  p(y_t | x) = softmax(u_t),   loss = mean_t -log p(y_t | x)
    CRF:      p(y | x) ∝ exp(Σ_t u_t[y_t] + Σ_t A[y_{t-1}, y_t] + start + end),  loss = -log p(y | x) per token

The character encoder is a character BiLSTM (Lample et al. 2016, Plank et al. 2016)
or a character CNN (Ma & Hovy 2016). Dropout (Srivastava et al.) is applied to the
token representation and to the encoder output; with ``locked`` dropout one mask is
shared by all steps of a sentence (Gal & Ghahramani's variational dropout). With a biLM,
b_t is its frozen contextual vector of the token (``tasks.bilm``, Akbik et al. 2018), computed
by the task and handed to ``features`` as ``context``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from birnn.data.characters import WORD_SHAPES
from birnn.data.tagschemes import SCHEMES
from birnn.nn.chars import CharBiLSTM, CharCNN
from birnn.nn.crf import CRF
from birnn.tasks.bilm import BiLMEmbedder
from birnn.tasks.encoders import Encoder, check_model

CHAR_ENCODERS = ("lstm", "cnn", "none")


@dataclass(frozen=True)
class TaggerConfig:
    """model: one of ``encoders.MODELS``; hidden: units per direction (encoders.py);
    embedding: word vector size (words looked up ``lowercase`` or as written);
    chars: "lstm" | "cnn" | "none", with ``char_hidden`` units per direction (the CNN gets
    2·char_hidden filters); shape_embedding: size of the case/shape feature vector (0: off);
    dropout: on the token representation, between layers and on the encoder output
    (``locked``: one mask per sentence); word_dropout: probability that a training singleton
    is read as <unk>; crf: a CRF output layer (constrained to valid chunk sequences when the
    tags are BIO/BIOES); scheme: "bioes" trains BIO data as BIOES (converted back on output);
    bilm: the run directory of a biLM whose frozen token vectors join the representation."""

    model: str = "bilstm"
    embedding: int = 100
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.0
    locked: bool = False
    chars: str = "none"
    char_embedding: int = 30
    char_hidden: int = 50
    shape_embedding: int = 0
    lowercase: bool = False
    word_dropout: float = 0.0
    crf: bool = False
    scheme: str | None = None
    bilm: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_model(self.model)
        for name in ("embedding", "hidden", "layers", "char_embedding", "char_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.shape_embedding < 0:
            raise ValueError(f"shape_embedding must be >= 0; got {self.shape_embedding}")
        for name in ("dropout", "word_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1); got {getattr(self, name)}")
        if self.chars not in CHAR_ENCODERS:
            raise ValueError(f"chars must be one of {CHAR_ENCODERS}; got {self.chars!r}")
        if self.scheme not in (None, *SCHEMES):
            raise ValueError(f"scheme must be None or one of {SCHEMES}; got {self.scheme!r}")


class SharedDropout(nn.Module):
    """Dropout whose mask is drawn once per sentence and shared by its steps. x: (B, T, F) -> (B, T, F)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty(x.shape[0], 1, x.shape[2], device=x.device, dtype=x.dtype).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Tagger(nn.Module):
    """``tagger(words (B, T), lengths (B,), chars (B, T, C), char_lengths (B, T), shapes (B, T),
    context (B, T, D)) -> emission scores (B, T, K)`` (zero-length words and shape 0 at padding).

    ``bilm``: the frozen embedder whose vectors ``context`` holds; kept here so that its weights
    are saved with the tagger's."""

    def __init__(self, config: TaggerConfig, n_words: int, n_chars: int, n_tags: int, allowed=None,
                 bilm: BiLMEmbedder | None = None) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_words, config.embedding, padding_idx=0)
        width = config.embedding
        self.chars: nn.Module | None = None
        if config.chars == "lstm":
            self.chars = CharBiLSTM(n_chars, config.char_embedding, config.char_hidden)
            width += 2 * config.char_hidden
        elif config.chars == "cnn":
            self.chars = CharCNN(n_chars, config.char_embedding, 2 * config.char_hidden)
            width += 2 * config.char_hidden
        self.shapes = nn.Embedding(len(WORD_SHAPES), config.shape_embedding, padding_idx=0) if (
            config.shape_embedding) else None
        width += config.shape_embedding
        self.bilm = bilm
        width += bilm.dim if bilm is not None else 0
        drop = SharedDropout if config.locked else nn.Dropout
        self.input_dropout, self.output_dropout = drop(config.dropout), drop(config.dropout)
        self.encoder = Encoder(config.model, width, config.hidden, config.layers, config.dropout)
        self.output = nn.Linear(self.encoder.output_size, n_tags)
        self.crf = CRF(n_tags, allowed) if config.crf else None

    def forward(self, words, lengths, chars=None, char_lengths=None, shapes=None, context=None) -> torch.Tensor:
        return self.output(self.output_dropout(self.features(words, lengths, chars, char_lengths, shapes, context)))

    def features(self, words, lengths, chars=None, char_lengths=None, shapes=None, context=None) -> torch.Tensor:
        """The encoder's output h: contextual token features (B, T, 2H), zero at padding."""
        parts = [self.embedding(words)]  # (B, T, E)
        if self.chars is not None:
            parts.append(self.chars(chars, char_lengths))  # (B, T, 2·Hc)
        if self.shapes is not None:
            parts.append(self.shapes(shapes))  # (B, T, S)
        if self.bilm is not None:
            if context is None:
                raise ValueError("this tagger reads biLM vectors: pass context (B, T, D)")
            parts.append(context)  # (B, T, D)
        x = self.input_dropout(torch.cat(parts, dim=-1))
        h, _ = self.encoder(x, lengths)  # (B, T, 2H)
        return h
