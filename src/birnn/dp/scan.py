"""Parallel-in-time chain inference: associative scans over semiring matrix products.

Särkkä & García-Fernández, "Temporal parallelization of Bayesian smoothers"
(IEEE TAC, 2021). Write the forward recursion as a product of per-step
matrices in the log semiring,

    M_0[i, j] = log_start[j] + log_unary[0, j]          (every row alike)
    M_t[i, j] = log_trans[i, j] + log_unary[t, j]        (1 <= t < len)
    M_t       = I_⊗ (0 on the diagonal, -inf elsewhere)  (padding: t >= len)

so that log α_t = row 0 of M_0 ⊗ M_1 ⊗ … ⊗ M_t, and
log β_t = (M_{t+1} ⊗ … ⊗ M_{T-1}) ⊗ 0. Matrix products are associative,
so all prefixes (suffixes) come from a scan of depth ⌈log2 T⌉ instead of T
sequential steps, for O(T K³ log T) work. The same holds in the max-plus
semiring, which gives Viterbi max-marginals.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from birnn.dp.semiring import log_matmul, logsumexp, max_matmul
from birnn.spec import padding_mask

Product = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def step_matrices(
    log_start: torch.Tensor, log_trans: torch.Tensor, log_unary: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """The per-step matrices M_t defined in the module docstring. -> (B, T, K, K)."""
    batch, steps, k = log_unary.shape
    matrices = log_trans + log_unary.unsqueeze(-2)  # (B, T, K, K)
    first = (log_start + log_unary[:, 0]).unsqueeze(-2).expand(batch, k, k)
    matrices = torch.cat([first.unsqueeze(1), matrices[:, 1:]], dim=1)
    identity = torch.full((k, k), -torch.inf, dtype=log_unary.dtype, device=log_unary.device)
    identity.fill_diagonal_(0.0)
    padding = ~padding_mask(lengths, steps)
    return torch.where(padding[..., None, None], identity, matrices)


def inclusive_scan(elements: torch.Tensor, product: Product, reverse: bool = False) -> torch.Tensor:
    """All prefix products along dim 1 (Hillis–Steele), depth ⌈log2 T⌉.

    elements: (B, T, K, K) -> (B, T, K, K) with out[:, t] = e_0 ⊗ … ⊗ e_t,
    or with ``reverse`` out[:, t] = e_t ⊗ … ⊗ e_{T-1}.
    """
    steps = elements.shape[1]
    out = elements
    offset = 1
    while offset < steps:
        combined = product(out[:, :-offset], out[:, offset:])  # e[t] ⊗ e[t + offset]
        if reverse:
            out = torch.cat([combined, out[:, steps - offset :]], dim=1)
        else:
            out = torch.cat([out[:, :offset], combined], dim=1)
        offset *= 2
    return out


def forward_backward(
    log_start: torch.Tensor, log_trans: torch.Tensor, log_unary: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log α, log β and log Z by two scans. -> (B, T, K), (B, T, K), (B,)."""
    steps = log_unary.shape[1]
    matrices = step_matrices(log_start, log_trans, log_unary, lengths)
    prefix = inclusive_scan(matrices, log_matmul)
    log_alpha = prefix[:, :, 0, :]  # (B, T, K)
    log_z = logsumexp(log_alpha[:, -1], dim=-1)  # padding holds α_{len-1}
    suffix = inclusive_scan(matrices[:, 1:], log_matmul, reverse=True)  # (B, T-1, K, K)
    log_beta_inner = logsumexp(suffix, dim=-1)  # ⊗ with the all-zero vector
    log_beta = torch.cat([log_beta_inner, torch.zeros_like(log_alpha[:, :1])], dim=1)
    padding = ~padding_mask(lengths, steps)[..., None]
    return log_alpha.masked_fill(padding, -torch.inf), log_beta.masked_fill(padding, -torch.inf), log_z


def viterbi(
    log_start: torch.Tensor, log_trans: torch.Tensor, log_unary: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Viterbi from max-marginals computed by two max-plus scans.

        μ_t(k) = max over paths with h_t = k of s(h) = δ_t(k) + γ_t(k),

    where δ are forward and γ backward max-messages. Where the best path is
    unique, h*_t = argmax_k μ_t(k) and its score is max_k μ_0(k).
    -> paths (B, T) int64 (0 at padding), scores (B,).
    """
    steps = log_unary.shape[1]
    matrices = step_matrices(log_start, log_trans, log_unary, lengths)
    delta = inclusive_scan(matrices, max_matmul)[:, :, 0, :]  # (B, T, K)
    suffix = inclusive_scan(matrices[:, 1:], max_matmul, reverse=True)
    gamma = torch.cat([suffix.amax(dim=-1), torch.zeros_like(delta[:, :1])], dim=1)
    max_marginals = delta + gamma
    paths = max_marginals.argmax(dim=-1).masked_fill(~padding_mask(lengths, steps), 0)
    return paths, max_marginals[:, 0].amax(dim=-1)
