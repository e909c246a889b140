"""Character encoders: one vector per word from its characters, for every word of a batch at once.

Both map ``(chars (B, T, C) int64, char_lengths (B, T) int64) -> (B, T, D)``,
with zeros at padding words (``char_lengths == 0``). The N real words are
gathered into one ``(N, C')`` batch (C' = their longest length), reduced to
the distinct ones (a batch repeats "the", ",", "."; not while dropout draws a
mask per occurrence), encoded in one call, and scattered back: no Python loop
over words, and a word's vector does not depend on the other words in the batch
or on how much padding surrounds it.

- ``CharBiLSTM`` (Lample et al. 2016; Plank et al. 2016): r = [→h after the last
  character ; ←h after the first], D = 2·hidden.
- ``CharCNN`` (Ma & Hovy 2016): a width-w convolution over the characters and a max
  over the valid positions, D = filters.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from birnn.nn import BiRNN


def select_words(chars: torch.Tensor, char_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The real words of a padded batch, as one batch of character sequences.

    chars: (B, T, C) int64; char_lengths: (B, T) int64 ->
    words (N, C') int64, lengths (N,) int64 in [1, C'], mask (B, T) bool (True at the N real words),
    where C' = max(lengths) <= C.
    """
    if chars.dim() != 3:
        raise ValueError(f"chars must have shape (B, T, C); got {tuple(chars.shape)}")
    if char_lengths.shape != chars.shape[:2]:
        raise ValueError(
            f"char_lengths must have shape (B, T) = {tuple(chars.shape[:2])} to match chars; "
            f"got {tuple(char_lengths.shape)}"
        )
    if char_lengths.numel() and (int(char_lengths.min()) < 0 or int(char_lengths.max()) > chars.shape[2]):
        raise ValueError(
            f"char_lengths must lie in [0, C={chars.shape[2]}]; "
            f"got min {int(char_lengths.min())}, max {int(char_lengths.max())}"
        )
    mask = char_lengths > 0  # (B, T)
    lengths = char_lengths[mask]  # (N,)
    width = int(lengths.max()) if lengths.numel() else 1
    return chars[mask][:, :width], lengths, mask


def distinct_words(words: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distinct rows of a batch of words, to encode each once.

    words: (N, C) int64; lengths: (N,) -> distinct (M, C), their lengths (M,), inverse (N,) int64
    with words = distinct[inverse]. A function f of one word's characters then has
    f(words)_n = f(distinct)_{inverse_n}, and its gradient sums over the repeats.

    Rows are told apart by a 64-bit polynomial hash, key = Σ_c words[:, c] · P^c (mod 2^64), and
    the result is checked (distinct[inverse] == words); on a collision the rows are compared
    whole (``torch.unique(dim=0)``, several times slower on a CPU).
    """
    powers = _hash_powers(words.shape[1], words.device)  # (C,)
    _, inverse = torch.unique((words * powers).sum(-1), return_inverse=True)  # (N,)
    count = int(inverse.max()) + 1 if inverse.numel() else 0
    positions = torch.arange(len(inverse), device=words.device)
    first = positions.new_full((count,), len(inverse)).scatter_reduce_(0, inverse, positions, reduce="amin")
    distinct = words[first]  # (M, C)
    if not torch.equal(distinct[inverse], words):  # a collision of two different words
        distinct, inverse = torch.unique(words, dim=0, return_inverse=True)
    distinct_lengths = lengths.new_zeros(distinct.shape[0]).scatter_(0, inverse, lengths)
    return distinct, distinct_lengths, inverse


def _hash_powers(width: int, device: torch.device) -> torch.Tensor:
    """(width,) int64: P^c mod 2^64 as signed 64-bit integers (P a large odd constant), so that
    int64 products and sums wrap around as the hash needs."""
    values, power = [], 1
    for _ in range(width):
        values.append(power - (1 << 64) if power >= 1 << 63 else power)
        power = power * 0x9E3779B97F4A7C15 % (1 << 64)
    return torch.tensor(values, dtype=torch.int64, device=device)


def encode_distinct(encode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], words: torch.Tensor,
                    lengths: torch.Tensor, dropout: nn.Dropout) -> torch.Tensor:
    """``encode(words, lengths)`` (N, D), computed once per distinct word — unless dropout is active,
    which must draw its own mask for every occurrence."""
    if dropout.training and dropout.p > 0:
        return encode(words, lengths)
    distinct, distinct_lengths, inverse = distinct_words(words, lengths)
    return encode(distinct, distinct_lengths)[inverse]


def scatter_words(vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """vectors: (N, D) for the True entries of mask (B, T) -> (B, T, D), zeros elsewhere."""
    out = vectors.new_zeros(*mask.shape, vectors.shape[-1])
    out[mask] = vectors
    return out


class CharBiLSTM(nn.Module):
    """A bidirectional LSTM over each word's characters; its final states are the word's vector.

    ``CharBiLSTM(n_chars, char_embedding=30, hidden=50, num_layers=1, cell="lstm", dropout=0.0)``;
    call ``(chars (B, T, C), char_lengths (B, T)) -> (B, T, 2·hidden)``.

    For a word with characters c_1..c_n:

        e_j = dropout(E[c_j])                        (n, char_embedding), E[0] = 0 (padding)
        →h_j = LSTM_f(e_j, →h_{j-1}),   ←h_j = LSTM_b(e_j, ←h_{j+1})
        r   = [→h_n ; ←h_1]                          (2·hidden,)

    ``encode(words (N, C), lengths (N,)) -> (N, 2·hidden)`` does the same for a flat batch of words.
    """

    def __init__(
        self,
        n_chars: int,
        char_embedding: int = 30,
        hidden: int = 50,
        num_layers: int = 1,
        cell: str = "lstm",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_sizes(n_chars=n_chars, char_embedding=char_embedding, hidden=hidden)
        self.embedding = nn.Embedding(n_chars, char_embedding, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.rnn = BiRNN(char_embedding, hidden, num_layers=num_layers, cell=cell)
        self.output_size = 2 * hidden

    def encode(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """words: (N, C) int64 (0 = padding); lengths: (N,) int64 in [1, C] -> (N, 2·hidden)."""
        x = self.dropout(self.embedding(words))  # (N, C, E)
        return self.rnn(x, lengths).summary  # (N, 2H)

    def forward(self, chars: torch.Tensor, char_lengths: torch.Tensor) -> torch.Tensor:
        """chars: (B, T, C) int64; char_lengths: (B, T) int64, 0 at padding words -> (B, T, 2·hidden)."""
        words, lengths, mask = select_words(chars, char_lengths)
        if words.shape[0] == 0:
            return self.embedding.weight.new_zeros(*mask.shape, self.output_size)
        return scatter_words(encode_distinct(self.encode, words, lengths, self.dropout), mask)


class CharCNN(nn.Module):
    """A convolution over each word's characters, max-pooled over its valid positions (Ma & Hovy 2016).

    ``CharCNN(n_chars, char_embedding=30, filters=50, width=3, dropout=0.0)``;
    call ``(chars (B, T, C), char_lengths (B, T)) -> (B, T, filters)``.

    For a word with characters c_1..c_n, k = (width - 1) / 2 and e_j = 0 outside 1..n:

        e_j = dropout(E[c_j])                               (char_embedding,), E[0] = 0
        h_j = W · [e_{j-k} ; … ; e_{j+k}] + b               (filters,),  j = 1..n
        r   = max_{j=1..n} h_j                              elementwise

    Positions beyond the word are set to -inf before the max, so padding never wins it.
    No nonlinearity follows (as in Ma & Hovy); a monotone one (tanh, ReLU) would
    commute with the max, so a caller may apply it to r.
    """

    def __init__(self, n_chars: int, char_embedding: int = 30, filters: int = 50, width: int = 3, dropout: float = 0.0):
        super().__init__()
        _check_sizes(n_chars=n_chars, char_embedding=char_embedding, filters=filters, width=width)
        if width % 2 == 0:
            raise ValueError(f"width must be odd, so each character has a centred window; got {width}")
        self.embedding = nn.Embedding(n_chars, char_embedding, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv1d(char_embedding, filters, width, padding=width // 2)
        self.output_size = filters

    def encode(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """words: (N, C) int64 (0 = padding); lengths: (N,) int64 in [1, C] -> (N, filters)."""
        valid = torch.arange(words.shape[1], device=words.device)[None, :] < lengths[:, None]  # (N, C)
        # Zero the embeddings at padding explicitly, so the windows at a word's end
        # see the same zeros as the convolution's own padding even if E[0] != 0.
        x = self.dropout(self.embedding(words)) * valid[..., None]  # (N, C, E)
        h = self.conv(x.transpose(1, 2))  # (N, F, C)
        return h.masked_fill(~valid[:, None, :], float("-inf")).amax(dim=-1)  # (N, F)

    def forward(self, chars: torch.Tensor, char_lengths: torch.Tensor) -> torch.Tensor:
        """chars: (B, T, C) int64; char_lengths: (B, T) int64, 0 at padding words -> (B, T, filters)."""
        words, lengths, mask = select_words(chars, char_lengths)
        if words.shape[0] == 0:
            return self.embedding.weight.new_zeros(*mask.shape, self.output_size)
        return scatter_words(encode_distinct(self.encode, words, lengths, self.dropout), mask)


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
