"""Linear-chain CRF on ``birnn.dp``: negative log-likelihood, true marginals, Viterbi and n-best decoding.

For emissions x (B, T, K) from an encoder and a tag path y_0 … y_{n-1} of a
sequence of length n = lengths[b],

    score(y) = start[y_0] + Σ_{t<n} x[t, y_t] + Σ_{1≤t<n} trans[y_{t-1}, y_t] + end[y_{n-1}]
    log Z    = log Σ_y exp score(y)                 (forward algorithm, O(T K²))
    nll(y)   = log Z - score(y) = -log p(y | x)
    p(y_t = k | x) = Σ_{y : y_t = k} exp(score(y) - log Z)   (forward–backward)

``trans[i, j]`` scores tag i followed by tag j (row to column). The end score
is folded into the unary score of each sequence's last valid step,

    u[t, k] = x[t, k] + end[k]   if t = n - 1
    u[t, k] = x[t, k]            if t < n - 1
    u[t, k] = 0                  if t ≥ n (padding: never read; junk or NaN there is harmless)

so the chain of ``birnn.dp`` with log_start = start, log_trans = trans and
log_unary = u scores every path exactly as score(y) does, and its log Z,
marginals and Viterbi path are the CRF's. Disallowed starts, transitions and
ends (BIO/BIOES constraints) are -inf, which dp handles without NaN.

The functions below are the math (tensors in, tensors out, no tag strings);
``CRF`` is the module that holds the learned scores and the constraint masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from birnn import dp
from birnn.spec import check_lengths, padding_mask

__all__ = ["CRF", "chain_unary", "log_partition", "marginals", "nbest_viterbi", "path_score", "viterbi"]

_REDUCTIONS = ("none", "sum", "mean", "token_mean")


def _lengths(lengths: Any, emissions: torch.Tensor) -> torch.Tensor:
    """lengths (B,) in [1, T] or None -> (B,) int64 on the emissions' device."""
    batch, steps = emissions.shape[:2]
    if lengths is None:
        return torch.full((batch,), steps, dtype=torch.int64, device=emissions.device)
    return torch.as_tensor(check_lengths(lengths, batch, steps), device=emissions.device)


def _check_scores(emissions: torch.Tensor, transitions: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> None:
    """Shapes of the CRF scores (the dp functions check the rest, NaN included)."""
    if emissions.dim() != 3 or 0 in emissions.shape:
        raise ValueError(f"emissions must have shape (B, T, K), all >= 1; got {tuple(emissions.shape)}")
    k = emissions.shape[-1]
    for name, value, shape in (("transitions", transitions, (k, k)), ("start", start, (k,)), ("end", end, (k,))):
        if tuple(value.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} to match emissions (K={k}); got {tuple(value.shape)}")


def _check_real_positions(emissions: torch.Tensor, valid: torch.Tensor) -> None:
    """NaN is refused where it would be read (valid (B, T) positions); padding may hold anything."""
    if bool(torch.isnan(emissions).any(-1).logical_and(valid).any()):
        b, t = (int(i) for i in torch.nonzero(torch.isnan(emissions).any(-1) & valid)[0])
        raise ValueError(f"emissions contains NaN at a real (unpadded) position, e.g. batch {b}, step {t}")


def chain_unary(emissions: torch.Tensor, end: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The unary scores u of the module docstring: end folded into the last valid step, 0 at padding.

    emissions: (B, T, K); end: (K,); lengths: (B,) int64 -> (B, T, K).
    ``torch.where`` rather than a 0/1 product, so that 0 · (-inf) never makes NaN.
    """
    steps = emissions.shape[1]
    positions = torch.arange(steps, device=emissions.device)
    valid = (positions[None, :] < lengths[:, None])[..., None]  # (B, T, 1)
    _check_real_positions(emissions, valid[..., 0])
    last = (positions[None, :] == lengths[:, None] - 1)[..., None]
    unary = torch.where(valid, emissions, torch.zeros_like(emissions))
    return torch.where(last, unary + end, unary)


def log_partition(
    emissions: torch.Tensor,
    transitions: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    lengths: Any = None,
    method: str = "auto",
) -> torch.Tensor:
    """log Z = log Σ_y exp score(y). emissions (B, T, K), transitions (K, K), start/end (K,) -> (B,).

    Its gradient with respect to ``emissions`` is ``marginals`` (zero at padding).
    """
    _check_scores(emissions, transitions, start, end)
    lengths = _lengths(lengths, emissions)
    return dp.log_partition(start, transitions, chain_unary(emissions, end, lengths), lengths, method)


def marginals(
    emissions: torch.Tensor,
    transitions: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    lengths: Any = None,
    method: str = "auto",
) -> torch.Tensor:
    """Per-token posteriors p(y_t = k | x) by forward–backward. -> (B, T, K), rows sum to 1, 0 at padding.

        p(y_t = k | x) = exp(log α_t(k) + log β_t(k) - log Z)
    """
    _check_scores(emissions, transitions, start, end)
    lengths = _lengths(lengths, emissions)
    return dp.marginals(start, transitions, chain_unary(emissions, end, lengths), lengths, method)


def path_score(
    emissions: torch.Tensor,
    tags: torch.Tensor,
    transitions: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    lengths: Any = None,
) -> torch.Tensor:
    """score(y) of the module docstring for given paths. tags: (B, T) int in [0, K) (any value at padding) -> (B,)."""
    _check_scores(emissions, transitions, start, end)
    if tags.shape != emissions.shape[:2]:
        raise ValueError(f"tags must have shape (B, T) = {tuple(emissions.shape[:2])}; got {tuple(tags.shape)}")
    if tags.is_floating_point() or tags.dtype == torch.bool:
        raise TypeError(f"tags must be an integer tensor; got dtype {tags.dtype}")
    lengths = _lengths(lengths, emissions)
    k = emissions.shape[-1]
    valid = padding_mask(lengths, emissions.shape[1])  # (B, T)
    _check_real_positions(emissions, valid)
    tags = tags.to(device=emissions.device, dtype=torch.int64).masked_fill(~valid, 0)
    if bool(((tags < 0) | (tags >= k)).any()):
        raise ValueError(
            f"tags must lie in [0, K={k}) at valid positions; got min {int(tags.min())}, max {int(tags.max())}"
        )
    zero = emissions.new_zeros(())
    emitted = torch.where(valid, emissions.gather(-1, tags[..., None]).squeeze(-1), zero).sum(1)
    moved = torch.where(valid[:, 1:], transitions[tags[:, :-1], tags[:, 1:]], zero).sum(1)
    last = tags.gather(1, (lengths - 1)[:, None]).squeeze(1)
    return start[tags[:, 0]] + emitted + moved + end[last]


def viterbi(
    emissions: torch.Tensor,
    transitions: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    lengths: Any = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """argmax_y score(y) by max-product with backtrace. -> paths (B, T) int64 (0 at padding), scores (B,).

    Always dp's sequential recursion: its backtrace returns one real path even
    when several tie, where the scan's max-marginals could mix tied paths into
    one that crosses a disallowed transition.
    """
    _check_scores(emissions, transitions, start, end)
    lengths = _lengths(lengths, emissions)
    return dp.viterbi(start, transitions, chain_unary(emissions, end, lengths), lengths, method="sequential")


def nbest_viterbi(
    emissions: torch.Tensor,
    transitions: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    lengths: Any,
    n: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The n highest-scoring distinct paths (list Viterbi). -> paths (B, n, T) int64 (0 at padding), scores (B, n).

    δ_t(k, r) is the r-th best score of a prefix y_0 … y_t with y_t = k; each step
    keeps the top n of the K·n candidates per tag,

        δ_t(k, ·) = top-n over (i, r) of δ_{t-1}(i, r) + trans[i, k],  then + u[t, k],

    with back-pointers to (i, r). Scores are sorted in descending order.
    When fewer than n paths have a finite score (K^lengths[b] < n, or the
    constraints forbid the rest), the remaining entries score -inf and their
    paths are unspecified.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1; got {n!r}")
    _check_scores(emissions, transitions, start, end)
    lengths = _lengths(lengths, emissions)
    unary = chain_unary(emissions, end, lengths)
    batch, steps, k = unary.shape
    valid = padding_mask(lengths, steps)  # (B, T)
    delta = unary.new_full((batch, k, n), -torch.inf)
    delta[:, :, 0] = start + unary[:, 0]  # ranks r >= 1 do not exist yet
    pointers = []
    for t in range(1, steps):
        candidates = (delta[:, :, :, None] + transitions[None, :, None, :]).reshape(batch, k * n, k)
        best, previous = candidates.topk(n, dim=1)  # (B, n, K) each; previous = i·n + r
        pointers.append(previous.transpose(1, 2).reshape(batch, k * n))  # state k·n + r -> state at t-1
        delta = torch.where(valid[:, t, None, None], best.transpose(1, 2) + unary[:, t, :, None], delta)
    scores, final = delta.reshape(batch, k * n).topk(n, dim=1)  # (B, n) each; final = k·n + r
    paths = torch.zeros(batch, n, steps, dtype=torch.int64, device=unary.device)
    current = final
    for t in range(steps - 1, -1, -1):
        if t < steps - 1:  # at padding (t >= lengths - 1) this follows junk; reset below or masked
            current = pointers[t].gather(1, current)
        current = torch.where((lengths - 1 == t)[:, None], final, current)
        paths[:, :, t] = torch.where(valid[:, t, None], torch.div(current, n, rounding_mode="floor"), 0)
    return paths, scores


def _check_allowed(allowed: Sequence[Any] | None, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if allowed is None:
        return torch.ones(k, dtype=torch.bool), torch.ones(k, k, dtype=torch.bool), torch.ones(k, dtype=torch.bool)
    if len(allowed) != 3:
        raise ValueError(f"allowed must be (start_allowed, trans_allowed, end_allowed); got {len(allowed)} items")
    masks = []
    for name, mask, shape in zip(
        ("start_allowed", "trans_allowed", "end_allowed"), allowed, ((k,), (k, k), (k,)), strict=True
    ):
        mask = torch.as_tensor(mask, device="cpu")  # checked where values exist, also while built on "meta"
        if mask.dtype != torch.bool:
            raise TypeError(f"{name} must be a bool array; got dtype {mask.dtype}")
        if tuple(mask.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for num_tags={k}; got {tuple(mask.shape)}")
        masks.append(mask.clone())
    for name, mask in (("start_allowed", masks[0]), ("end_allowed", masks[2])):
        if not bool(mask.any()):
            raise ValueError(f"{name} allows no tag: every path would be impossible")
    device = torch.get_default_device()
    return masks[0].to(device), masks[1].to(device), masks[2].to(device)


class CRF(nn.Module):
    """A linear-chain CRF layer over K tags (the equations are in the module docstring).

    Parameters: ``transitions`` (K, K) from row tag to column tag, ``start`` (K,),
    ``end`` (K,), initialised to zero (the emissions break the symmetry).
    ``allowed``: optional bool masks (start_allowed (K,), trans_allowed (K, K),
    end_allowed (K,)), e.g. from ``birnn.data.tagschemes.allowed_transitions``.
    They are kept as buffers (saved with the weights) and applied on every use,

        trans_used = transitions masked to -inf where not trans_allowed   (likewise start, end),

    in training and decoding alike; the masked entries get zero gradient, so a
    learned value can never make a disallowed transition possible again.

    Every method takes emissions (B, T, K) and lengths (B,) in [1, T] (None: all
    T); positions t >= lengths[b] are padding and never change a result.
    Parameters are cast to the emissions' dtype (float32 or float64).
    """

    start_allowed: torch.Tensor
    trans_allowed: torch.Tensor
    end_allowed: torch.Tensor

    def __init__(self, num_tags: int, allowed: Sequence[Any] | None = None) -> None:
        super().__init__()
        if isinstance(num_tags, bool) or not isinstance(num_tags, int) or num_tags < 1:
            raise ValueError(f"num_tags must be an integer >= 1; got {num_tags!r}")
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        start_allowed, trans_allowed, end_allowed = _check_allowed(allowed, num_tags)
        self.register_buffer("start_allowed", start_allowed)
        self.register_buffer("trans_allowed", trans_allowed)
        self.register_buffer("end_allowed", end_allowed)

    def extra_repr(self) -> str:
        disallowed = int((~self.trans_allowed).sum() + (~self.start_allowed).sum() + (~self.end_allowed).sum())
        return f"num_tags={self.num_tags}, disallowed={disallowed}"

    def constrained(self, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The scores in use: (transitions (K, K), start (K,), end (K,)), -inf where disallowed."""
        dtype = dtype or self.transitions.dtype
        return (
            self.transitions.to(dtype).masked_fill(~self.trans_allowed, -torch.inf),
            self.start.to(dtype).masked_fill(~self.start_allowed, -torch.inf),
            self.end.to(dtype).masked_fill(~self.end_allowed, -torch.inf),
        )

    def _scores(self, emissions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not isinstance(emissions, torch.Tensor) or not emissions.is_floating_point():
            raise TypeError(f"emissions must be a float tensor (B, T, K); got {type(emissions).__name__}")
        if emissions.dim() != 3 or emissions.shape[-1] != self.num_tags or 0 in emissions.shape[:2]:
            raise ValueError(
                f"emissions must have shape (B, T, K={self.num_tags}) with B, T >= 1; got {tuple(emissions.shape)}"
            )
        return self.constrained(emissions.dtype)

    def log_partition(self, emissions: torch.Tensor, lengths: Any = None) -> torch.Tensor:
        """log Z = log Σ_y exp score(y) (forward algorithm). -> (B,)."""
        return log_partition(emissions, *self._scores(emissions), lengths)

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, lengths: Any = None) -> torch.Tensor:
        """score(y) for tags (B, T) int (any value at padding). -> (B,); -inf for a disallowed path."""
        return path_score(emissions, tags, *self._scores(emissions), lengths)

    def nll(
        self, emissions: torch.Tensor, tags: torch.Tensor, lengths: Any = None, reduction: str = "mean"
    ) -> torch.Tensor:
        """Negative log-likelihood log Z - score(y) >= 0, the training loss.

        reduction: "none" -> (B,); "sum" -> Σ_b; "mean" -> Σ_b / B (per sequence);
        "token_mean" -> Σ_b / Σ_b lengths[b] (per token, the scale of a
        token-level cross-entropy; what a tagger's trainer wants).
        A gold path through a disallowed transition has nll = +inf (check the
        data with ``tagschemes.is_valid``; ``bioes_to_bio`` repairs IOB1).
        """
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}")
        transitions, start, end = self._scores(emissions)
        lengths = _lengths(lengths, emissions)
        losses = log_partition(emissions, transitions, start, end, lengths) - path_score(
            emissions, tags, transitions, start, end, lengths
        )
        if reduction == "none":
            return losses
        if reduction == "sum":
            return losses.sum()
        if reduction == "mean":
            return losses.mean()
        return losses.sum() / lengths.sum()

    def forward(
        self, emissions: torch.Tensor, tags: torch.Tensor, lengths: Any = None, reduction: str = "mean"
    ) -> torch.Tensor:
        """The loss: same as ``nll``."""
        return self.nll(emissions, tags, lengths, reduction)

    def marginals(self, emissions: torch.Tensor, lengths: Any = None) -> torch.Tensor:
        """True per-token posteriors p(y_t = k | x) (forward–backward). -> (B, T, K), 0 at padding."""
        return marginals(emissions, *self._scores(emissions), lengths)

    def decode(self, emissions: torch.Tensor, lengths: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Viterbi: the best path and its score. -> paths (B, T) int64 (0 at padding), scores (B,)."""
        return viterbi(emissions, *self._scores(emissions), lengths)

    def decode_nbest(self, emissions: torch.Tensor, lengths: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The n best distinct paths, best first. -> paths (B, n, T) int64 (0 at padding), scores (B, n).

        Entries beyond the number of possible paths score -inf (their paths are unspecified).
        """
        return nbest_viterbi(emissions, *self._scores(emissions), lengths, n)
