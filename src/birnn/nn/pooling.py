"""From per-step encoder outputs to one vector per sequence, correct on padded batches.

Every function maps ``h: (B, T, D)`` with ``lengths: (B,)`` (valid steps ``t < lengths[b]``) to
``(B, D)``; the result for a sequence does not depend on how much padding follows it, except
for ``last_pool``, which shows the common mistake.

    summary:    v = [→h_{n-1} ; ←h_0]                  (the two final states of a BiRNN; n = length)
    mean:       v = (1/n) Σ_{t<n} h_t
    max:        v_d = max_{t<n} h_{t,d}
    attention:  α = softmax_{t<n}(s_t),  v = Σ_{t<n} α_t h_t      (scores s: (B, T), e.g. additive)
    last:       v = h_{T-1}                              (padding, or a backward state that read one token)
"""

from __future__ import annotations

import torch
from torch import nn

from birnn.spec import padding_mask

POOLS = ("summary", "mean", "max", "attention", "last")


def _check(h: torch.Tensor, lengths: torch.Tensor) -> None:
    if h.dim() != 3:
        raise ValueError(f"h must have shape (B, T, D); got {tuple(h.shape)}")
    if lengths.shape != (h.shape[0],):
        raise ValueError(f"lengths must have shape (B,) = ({h.shape[0]},); got {tuple(lengths.shape)}")
    if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > h.shape[1]):
        raise ValueError(f"lengths must lie in [1, T={h.shape[1]}]; got min {int(lengths.min())}, "
                         f"max {int(lengths.max())}")


def summary_pool(h: torch.Tensor, lengths: torch.Tensor, forward_size: int) -> torch.Tensor:
    """[→h at the last valid step ; ←h at step 0]. h: (B, T, D) whose first ``forward_size`` features
    are the forward direction (D itself for a one-directional encoder) -> (B, D)."""
    _check(h, lengths)
    if not 0 < forward_size <= h.shape[2]:
        raise ValueError(f"forward_size must lie in [1, D={h.shape[2]}]; got {forward_size}")
    rows = torch.arange(h.shape[0], device=h.device)
    last = h[rows, lengths.to(h.device) - 1]  # (B, D)
    return torch.cat([last[:, :forward_size], h[:, 0, forward_size:]], dim=-1)  # (B, D)


def mean_pool(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(1/n) Σ_{t<n} h_t. h: (B, T, D) -> (B, D)."""
    _check(h, lengths)
    valid = padding_mask(lengths.to(h.device), h.shape[1])[..., None]  # (B, T, 1)
    return (h * valid).sum(1) / lengths.to(h.device, h.dtype)[:, None]


def max_pool(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """max_{t<n} h_t per feature (padding set to -inf first). h: (B, T, D) -> (B, D)."""
    _check(h, lengths)
    valid = padding_mask(lengths.to(h.device), h.shape[1])[..., None]  # (B, T, 1)
    return h.masked_fill(~valid, float("-inf")).amax(1)


def attention_pool(h: torch.Tensor, lengths: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Σ_t α_t h_t with α = softmax of ``scores`` (B, T) over the valid steps (0 at padding). -> (B, D)."""
    _check(h, lengths)
    if scores.shape != h.shape[:2]:
        raise ValueError(f"scores must have shape (B, T) = {tuple(h.shape[:2])}; got {tuple(scores.shape)}")
    weights = attention_weights(scores, lengths)  # (B, T)
    return torch.einsum("bt,btd->bd", weights, h)


def attention_weights(scores: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """α_t = exp(s_t) / Σ_{u<n} exp(s_u) for t < n, 0 for t >= n. scores: (B, T) -> (B, T)."""
    valid = padding_mask(lengths.to(scores.device), scores.shape[1])
    return torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=-1)


def last_pool(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """h_{T-1}: the last column of the batch, whatever the lengths. h: (B, T, D) -> (B, D).

    Kept to show the mistake: on a padded batch it reads padding (zeros from birnn's encoders),
    and for a bidirectional encoder its backward half has read one token even without padding.
    """
    _check(h, lengths)
    return h[:, -1]


class AdditiveScores(nn.Module):
    """s_t = vᵀ tanh(W h_t + b) (Bahdanau et al. 2015; Yang et al. 2016). h: (B, T, D) -> (B, T)."""

    def __init__(self, size: int, hidden: int) -> None:
        super().__init__()
        self.project = nn.Linear(size, hidden)
        self.context = nn.Linear(hidden, 1, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.context(torch.tanh(self.project(h))).squeeze(-1)


class Pool(nn.Module):
    """``Pool(kind, size, forward_size)``: one of ``POOLS`` as a module; ``(h (B, T, D), lengths (B,)) -> (B, D)``.
    ``forward_size``: features of the forward direction in h (D for a one-directional encoder)."""

    def __init__(self, kind: str, size: int, forward_size: int) -> None:
        super().__init__()
        if kind not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}; got {kind!r}")
        self.kind, self.forward_size = kind, forward_size
        self.scores = AdditiveScores(size, size) if kind == "attention" else None

    def forward(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.kind == "summary":
            return summary_pool(h, lengths, self.forward_size)
        if self.kind == "mean":
            return mean_pool(h, lengths)
        if self.kind == "max":
            return max_pool(h, lengths)
        if self.kind == "attention":
            assert self.scores is not None
            return attention_pool(h, lengths, self.scores(h))
        return last_pool(h, lengths)
