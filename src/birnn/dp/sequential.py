"""The T-step recursions of a linear chain, in log space (torch, batched).

A chain over hidden labels h_0..h_{T-1} scores a path as

    s(h) = log_start[h_0] + Σ_t log_unary[t, h_t] + Σ_{t≥1} log_trans[h_{t-1}, h_t].

For an HMM, log_unary[t, k] = log P(x_t | k), log_trans = log P(h_t | h_{t-1})
and log_start = log P(h_0); for a CRF they are arbitrary scores.

Padding: positions t >= lengths[b] never change a result for sequence b.
There log α and log β are -inf and the recursions hold their last valid state.
"""

from __future__ import annotations

import torch

from birnn.dp.semiring import log_matvec, log_vecmat, logsumexp
from birnn.spec import padding_mask


def forward(
    log_start: torch.Tensor, log_trans: torch.Tensor, log_unary: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward recursion (the "unidirectional RNN" of the chain).

        log α_0(k) = log_start[k] + log_unary[0, k]
        log α_t(k) = log_unary[t, k] + log Σ_i exp(log α_{t-1}(i) + log_trans[i, k])
        log Z      = log Σ_k exp(log α_{len-1}(k))

    log_start: (K,); log_trans: (K, K); log_unary: (B, T, K); lengths: (B,) int64
    -> log_alpha: (B, T, K) (-inf at padding), log_z: (B,)
    """
    steps = log_unary.shape[1]
    valid = padding_mask(lengths, steps)  # (B, T)
    alpha = log_start + log_unary[:, 0]  # (B, K)
    alphas = [alpha]
    for t in range(1, steps):
        candidate = log_vecmat(alpha, log_trans) + log_unary[:, t]
        alpha = torch.where(valid[:, t, None], candidate, alpha)
        alphas.append(candidate)
    log_alpha = torch.stack(alphas, dim=1).masked_fill(~valid[..., None], -torch.inf)
    return log_alpha, logsumexp(alpha, dim=-1)


def backward(log_trans: torch.Tensor, log_unary: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Backward recursion (the chain read right to left).

        log β_{len-1}(k) = 0
        log β_t(k)       = log Σ_j exp(log_trans[k, j] + log_unary[t+1, j] + log β_{t+1}(j))

    log_trans: (K, K); log_unary: (B, T, K); lengths: (B,) int64 -> log_beta: (B, T, K)
    (-inf at padding).
    """
    batch, steps, k = log_unary.shape
    valid = padding_mask(lengths, steps)
    beta = log_unary.new_zeros(batch, k)
    betas = [beta]
    for t in range(steps - 2, -1, -1):
        candidate = log_matvec(log_trans, beta + log_unary[:, t + 1])
        # A sequence whose last valid step is t starts here from log β = 0.
        beta = torch.where(valid[:, t + 1, None], candidate, torch.zeros_like(beta))
        betas.append(beta)
    log_beta = torch.stack(betas[::-1], dim=1)
    return log_beta.masked_fill(~valid[..., None], -torch.inf)


def viterbi(
    log_start: torch.Tensor, log_trans: torch.Tensor, log_unary: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Max-product recursion with backtrace.

        δ_0(k)  = log_start[k] + log_unary[0, k]
        δ_t(k)  = log_unary[t, k] + max_i (δ_{t-1}(i) + log_trans[i, k]),  ψ_t(k) = argmax_i
        h_{len-1} = argmax_k δ_{len-1}(k),  h_{t-1} = ψ_t(h_t)

    -> paths: (B, T) int64 (0 at padding), scores: (B,) the best path's score.
    """
    batch, steps, _ = log_unary.shape
    valid = padding_mask(lengths, steps)
    delta = log_start + log_unary[:, 0]  # (B, K)
    pointers = []
    for t in range(1, steps):
        scores, best_prev = (delta.unsqueeze(-1) + log_trans).max(dim=-2)  # (B, K) each
        pointers.append(best_prev)
        delta = torch.where(valid[:, t, None], scores + log_unary[:, t], delta)
    best_score, last = delta.max(dim=-1)
    paths = torch.zeros(batch, steps, dtype=torch.int64, device=log_unary.device)
    current = last
    for t in range(steps - 1, -1, -1):
        at_end = lengths - 1 == t
        inside = t < lengths - 1
        if t < steps - 1:
            previous = pointers[t].gather(1, current[:, None]).squeeze(1)
            current = torch.where(inside, previous, current)
        current = torch.where(at_end, last, current)
        paths[:, t] = torch.where(valid[:, t], current, torch.zeros_like(current))
    return paths, best_score
