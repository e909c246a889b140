"""Compiled per-sequence HMM recursions (numba), parallel over the sequences of a batch.

For small K the cost of an HMM recursion is per-step overhead, not
arithmetic: a NumPy step costs microseconds whatever K is. These loops are
compiled to machine code by numba, run one sequence per thread (``prange``),
and implement exactly the scaled recursions of ``inference`` (Rabiner 1989):

    α̂_t(j) = e_t(j) Σ_i α̂_{t-1}(i) A(i, j) / c_t,       log p(x) = Σ_t log c_t
    β̂_t(i) = Σ_j A(i, j) e_{t+1}(j) β̂_{t+1}(j) / c_{t+1},  β̂_{len-1} = 1
    p(h_t | x) = α̂_t ⊙ β̂_t
    δ_t(j) = log e_t(j) + max_i (δ_{t-1}(i) + log A(i, j))   (Viterbi, with backtrace)

Shapes: start (K,), trans (K, K), emission (K, V), obs (B, T) int64, lengths (B,).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# Reassociating sums lets LLVM vectorise the inner products; no assumption about NaN or inf is made.
_FAST = {"reassoc", "contract"}


@njit(cache=True, parallel=True, fastmath=_FAST)
def forward(start, trans, emission, obs, lengths):  # pragma: no cover - compiled
    """-> filter α̂ (B, T, K) (0 at padding), log c (B, T) (0 at padding)."""
    batch, steps = obs.shape
    k = start.shape[0]
    trans_t = np.ascontiguousarray(trans.T)
    alpha = np.zeros((batch, steps, k))
    log_c = np.zeros((batch, steps))
    for b in prange(batch):
        total = 0.0
        for j in range(k):
            alpha[b, 0, j] = start[j] * emission[j, obs[b, 0]]
            total += alpha[b, 0, j]
        for j in range(k):
            alpha[b, 0, j] /= total
        log_c[b, 0] = np.log(total)
        for t in range(1, lengths[b]):
            total = 0.0
            symbol = obs[b, t]
            for j in range(k):
                s = 0.0
                for i in range(k):
                    s += alpha[b, t - 1, i] * trans_t[j, i]
                s *= emission[j, symbol]
                alpha[b, t, j] = s
                total += s
            for j in range(k):
                alpha[b, t, j] /= total
            log_c[b, t] = np.log(total)
    return alpha, log_c


@njit(cache=True, parallel=True, fastmath=_FAST)
def backward(trans, emission, obs, lengths, log_c):  # pragma: no cover - compiled
    """-> β̂ (B, T, K), scaled by the forward pass's c_t (0 at padding)."""
    batch, steps = obs.shape
    k = trans.shape[0]
    beta = np.zeros((batch, steps, k))
    for b in prange(batch):
        last = lengths[b] - 1
        local = np.empty(k)
        for i in range(k):
            beta[b, last, i] = 1.0
        for t in range(last - 1, -1, -1):
            symbol = obs[b, t + 1]
            scale = np.exp(-log_c[b, t + 1])
            for j in range(k):
                local[j] = emission[j, symbol] * beta[b, t + 1, j] * scale
            for i in range(k):
                s = 0.0
                for j in range(k):
                    s += trans[i, j] * local[j]
                beta[b, t, i] = s
    return beta


@njit(cache=True, parallel=True, fastmath={"nnan", "reassoc"})
def viterbi(log_start, log_trans, log_emission, obs, lengths):  # pragma: no cover - compiled
    """-> paths (B, T) int64 (0 at padding), log p(x, h*) (B,). Ties go to the lowest index.

    The forward pass keeps only maxima (a reduction LLVM vectorises); the
    backtrace recomputes the one argmax it needs per step from the stored δ:
    h_{t-1} = argmax_i δ_{t-1}(i) + log A(i, h_t). Inputs hold no NaN (the
    parameters are validated), which the ``nnan`` flag relies on; -inf is fine.
    """
    batch, steps = obs.shape
    k = log_start.shape[0]
    log_trans_t = np.ascontiguousarray(log_trans.T)
    paths = np.zeros((batch, steps), dtype=np.int64)
    scores = np.empty(batch)
    for b in prange(batch):
        n = lengths[b]
        deltas = np.empty((n, k))
        for j in range(k):
            deltas[0, j] = log_start[j] + log_emission[j, obs[b, 0]]
        for t in range(1, n):
            symbol = obs[b, t]
            for j in range(k):
                best = -np.inf
                for i in range(k):
                    best = max(best, deltas[t - 1, i] + log_trans_t[j, i])
                deltas[t, j] = best + log_emission[j, symbol]
        arg = 0
        for j in range(1, k):
            if deltas[n - 1, j] > deltas[n - 1, arg]:
                arg = j
        scores[b] = deltas[n - 1, arg]
        paths[b, n - 1] = arg
        for t in range(n - 1, 0, -1):
            previous = 0
            best = deltas[t - 1, 0] + log_trans_t[arg, 0]
            for i in range(1, k):
                v = deltas[t - 1, i] + log_trans_t[arg, i]
                if v > best:
                    best, previous = v, i
            arg = previous
            paths[b, t - 1] = arg
    return paths, scores
