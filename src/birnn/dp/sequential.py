"""The T-step recursions of a linear chain (torch, batched), scaled in exp space.

A chain over hidden labels h_0..h_{T-1} scores a path as

    s(h) = log_start[h_0] + Σ_t log_unary[t, h_t] + Σ_{t≥1} log_trans[h_{t-1}, h_t].

For an HMM, log_unary[t, k] = log P(x_t | k), log_trans = log P(h_t | h_{t-1})
and log_start = log P(h_0); for a CRF they are arbitrary scores.

The messages are carried as Rabiner's scaled ones: â_t = exp(log α_t - c_t) with max_k â_t(k) = 1
and the log scale c_t beside them, so each step is one (B, K) × (K, K) product with
E = exp(log_trans - s) (s: the column maxima, ``semiring.exp_shifted``) and a few (B, K)
operations, in float64 (``semiring.wide``): results are exact up to underflow of paths ~708
below the best, and -inf (never NaN) where no path is possible.

Padding: positions t >= lengths[b] never change a result for sequence b; there log α and
log β are -inf.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from birnn.dp.semiring import exp_shifted, finite_or_zero, safe_log
from birnn.spec import padding_mask


def _scaled_scores(
    log_trans: torch.Tensor, log_unary: torch.Tensor, valid: torch.Tensor, log_start: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The factors of the scaled recursions: E (K, K) and Ŵ (B, T, K) in the wide dtype, w (B, T).

        W_0 = log_start + log_unary[0],   W_t = log_unary[t] + s  (t >= 1; 0 at padding)

    (the backward recursion never reads W_0: without ``log_start`` it is log_unary[0])
        w_t = max_k W_t(k),   Ŵ_t = exp(W_t - w_t),   E = exp(log_trans - s)

    so that log Σ_i exp(log α_{t-1}(i) + log_trans[i, k]) + log_unary[t, k]
          = c_{t-1} + w_t + log ((â_{t-1} E)(k) Ŵ_t(k)).
    """
    exp_trans, shift = exp_shifted(log_trans, dim=0)  # (K, K), (1, K)
    first = log_unary[:, :1] if log_start is None else (log_start + log_unary[:, 0])[:, None]
    scores = torch.cat([first, log_unary[:, 1:] + shift], dim=1)  # (B, T, K)
    scores = torch.where(valid[..., None], scores, torch.zeros_like(scores))
    top = finite_or_zero(scores.amax(dim=-1, keepdim=True).detach())  # (B, T, 1)
    return exp_trans, torch.exp(scores - top).to(exp_trans.dtype), top[..., 0]


def _normalised(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, K) >= 0 -> (x / n, n), n = max_k x(k) (the smallest normal number where x is all 0,
    so an impossible row stays 0 rather than NaN)."""
    top = x.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    return x / top, top[:, 0]


class Scaled(NamedTuple):
    """The scaled forward pass of a batch: â (B, T, K) and c (B, T) in the wide dtype (garbage at
    padding), with the factors E (K, K), Ŵ (B, T, K), w (B, T) and the mask valid (B, T)."""

    alphas: torch.Tensor
    scale: torch.Tensor
    exp_trans: torch.Tensor
    factors: torch.Tensor
    top: torch.Tensor
    valid: torch.Tensor


def scaled_forward(
    log_start: torch.Tensor, log_trans: torch.Tensor, log_unary: torch.Tensor, lengths: torch.Tensor
) -> Scaled:
    """â_0 = Ŵ_0 / n_0,  â_t = (â_{t-1} E) ⊙ Ŵ_t / n_t,  c_t = Σ_{τ<=t} w_τ + log n_τ, so that
    log α_t = log â_t + c_t (``_scaled_scores``)."""
    valid = padding_mask(lengths, log_unary.shape[1])  # (B, T)
    exp_trans, factors, top = _scaled_scores(log_trans, log_unary, valid, log_start)
    alpha, norm = _normalised(factors[:, 0])
    alphas, norms = [alpha], [norm]
    for t in range(1, log_unary.shape[1]):
        alpha, norm = _normalised((alpha @ exp_trans) * factors[:, t])
        alphas.append(alpha)
        norms.append(norm)
    scale = torch.cumsum(top.to(exp_trans.dtype) + torch.log(torch.stack(norms, dim=1)), dim=1)
    return Scaled(torch.stack(alphas, dim=1), scale, exp_trans, factors, top, valid)


def _at_last_step(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x (B, T, ...) -> x[b, lengths[b] - 1] (B, ...)."""
    index = (lengths - 1).view(-1, 1, *([1] * (x.dim() - 2))).expand(-1, 1, *x.shape[2:])
    return x.gather(1, index)[:, 0]


def scaled_log_z(scaled: Scaled, lengths: torch.Tensor) -> torch.Tensor:
    """log Z = log Σ_k â_{len-1}(k) + c_{len-1}. -> (B,) in the wide dtype; -inf, with no gradient
    into the scale, on a sequence with no possible path."""
    total = _at_last_step(scaled.alphas, lengths).sum(-1)  # (B,)
    log_z = safe_log(total) + _at_last_step(scaled.scale, lengths)
    return torch.where(total > 0, log_z, torch.full_like(log_z, -torch.inf))


def forward(
    log_start: torch.Tensor, log_trans: torch.Tensor, log_unary: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward recursion (the "unidirectional RNN" of the chain).

        log α_0(k) = log_start[k] + log_unary[0, k]
        log α_t(k) = log_unary[t, k] + log Σ_i exp(log α_{t-1}(i) + log_trans[i, k])
        log Z      = log Σ_k exp(log α_{len-1}(k))

    computed scaled (``scaled_forward``).

    log_start: (K,); log_trans: (K, K); log_unary: (B, T, K); lengths: (B,) int64
    -> log_alpha: (B, T, K) (-inf at padding), log_z: (B,)
    """
    scaled = scaled_forward(log_start, log_trans, log_unary, lengths)
    log_alpha = (safe_log(scaled.alphas) + scaled.scale[..., None]).to(log_unary.dtype)
    log_z = scaled_log_z(scaled, lengths).to(log_unary.dtype)
    return log_alpha.masked_fill(~scaled.valid[..., None], -torch.inf), log_z


def _scaled_backward(scaled: Scaled) -> tuple[torch.Tensor, torch.Tensor]:
    """b̂_{len-1} = 1,  b̂_t = E (Ŵ_{t+1} ⊙ b̂_{t+1}) / m_t,  d_t = d_{t+1} + w_{t+1} + log m_t,
    so that log β_t = log b̂_t + d_t. -> b̂ (B, T, K), d (B, T), wide dtype."""
    exp_trans, factors, top, valid = scaled.exp_trans, scaled.factors, scaled.top, scaled.valid
    batch, steps, k = factors.shape
    beta = factors.new_ones(batch, k)
    betas, increments = [beta], [factors.new_zeros(batch)]
    for t in range(steps - 2, -1, -1):
        candidate, norm = _normalised((factors[:, t + 1] * beta) @ exp_trans.T)
        # a sequence whose last valid step is t starts here from b̂ = 1, d = 0
        beta = torch.where(valid[:, t + 1, None], candidate, torch.ones_like(beta))
        betas.append(beta)
        increments.append(torch.where(valid[:, t + 1], top[:, t + 1].to(norm.dtype) + torch.log(norm),
                                      torch.zeros_like(norm)))
    return torch.stack(betas[::-1], dim=1), torch.cumsum(torch.stack(increments, dim=1), dim=1).flip(1)


def backward(log_trans: torch.Tensor, log_unary: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Backward recursion (the chain read right to left).

        log β_{len-1}(k) = 0
        log β_t(k)       = log Σ_j exp(log_trans[k, j] + log_unary[t+1, j] + log β_{t+1}(j))

    computed scaled with the forward's factors (``_scaled_backward``).

    log_trans: (K, K); log_unary: (B, T, K); lengths: (B,) int64 -> log_beta: (B, T, K) (-inf at padding).
    """
    valid = padding_mask(lengths, log_unary.shape[1])
    exp_trans, factors, top = _scaled_scores(log_trans, log_unary, valid)
    empty = factors.new_zeros(0)
    betas, scale = _scaled_backward(Scaled(empty, empty, exp_trans, factors, top, valid))
    log_beta = (safe_log(betas) + scale[..., None]).to(log_unary.dtype)
    return log_beta.masked_fill(~valid[..., None], -torch.inf)


def log_z_gradients(
    scaled: Scaled, grad_z: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradient of Σ_b g_b log Z_b from the scaled messages (one backward recursion):

        ∂/∂log_unary[b, t, k] = g_b p_b(h_t = k),   p_b(h_t = k) = â_t(k) b̂_t(k) / Σ_k' â_t(k') b̂_t(k')
        ∂/∂log_trans[i, j]    = Σ_{b,t} g_b ξ_{b,t}(i, j),
            ξ_{b,t}(i, j) = â_t(i) E_ij Ŵ_{t+1}(j) b̂_{t+1}(j) / N_{b,t}  (N: its sum over i, j)
        ∂/∂log_start[k]       = Σ_b g_b p_b(h_0 = k)

    grad_z: (B,) -> (K,), (K, K), (B, T, K) in the dtype of grad_z; 0 at padding and on a
    sequence with no possible path.
    """
    betas, _ = _scaled_backward(scaled)
    alphas, exp_trans, valid = scaled.alphas, scaled.exp_trans, scaled.valid
    weight = grad_z.to(alphas.dtype)  # (B,)
    joint = alphas * betas  # (B, T, K) ∝ the marginals
    total = joint.sum(-1, keepdim=True)  # (B, T, 1)
    possible = valid[..., None] & (total > 0)
    unary = torch.where(possible, joint / torch.where(possible, total, torch.ones_like(total)), 0.0)
    d_unary = unary * weight[:, None, None]  # (B, T, K)
    ahead = scaled.factors[:, 1:] * betas[:, 1:]  # (B, T-1, K): Ŵ_{t+1} ⊙ b̂_{t+1}
    pair_total = (alphas[:, :-1] * (ahead @ exp_trans.T)).sum(-1)  # (B, T-1) N_{b,t}
    live = valid[:, 1:] & (pair_total > 0)
    rows = alphas[:, :-1] * torch.where(live, weight[:, None] / torch.where(live, pair_total, 1.0), 0.0)[..., None]
    d_trans = exp_trans * torch.einsum("bti,btj->ij", rows, ahead)  # (K, K)
    dtype = grad_z.dtype
    return d_unary[:, 0].sum(0).to(dtype), d_trans.to(dtype), d_unary.to(dtype)


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
