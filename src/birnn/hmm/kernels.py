"""Compiled per-sequence HMM recursions (numba), parallel over the sequences of a batch.

For small K the cost of an HMM recursion is per-step overhead, not
arithmetic: a NumPy step costs microseconds whatever K is. These loops are
compiled to machine code by numba, run one sequence per thread (``prange``),
and implement exactly the scaled recursions of ``inference`` (Rabiner 1989):

    α̂_t(j) = e_t(j) Σ_i α̂_{t-1}(i) A(i, j) / c_t,       log p(x) = Σ_t log c_t
    β̂_t(i) = Σ_j A(i, j) e_{t+1}(j) β̂_{t+1}(j) / c_{t+1},  β̂_{len-1} = 1
    p(h_t | x) = α̂_t ⊙ β̂_t
    c_t = 0 (x_t impossible after x_<t): α̂_t = 0, log c_t = -inf, and so on to the end
    δ_t(j) = log e_t(j) + max_i (δ_{t-1}(i) + log A(i, j))   (Viterbi, with backtrace)

Shapes: start (K,), trans (K, K), emission (K, V), obs (B, T) int64, lengths (B,).

The large outputs and work arrays come from the caller (``out`` arguments,
filled in place): NumPy asks Linux for huge pages on large allocations and
numba's allocator does not.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

# Reassociating sums lets LLVM vectorise the inner products; no assumption about NaN or inf is made.
_FAST = {"reassoc", "contract"}


@njit(cache=True, parallel=True, fastmath=_FAST)
def forward(start, trans, emission, obs, lengths, alpha, log_c):  # pragma: no cover - compiled
    """Fill filter α̂ (B, T, K) and log c (B, T), both given as zeros (left 0 at padding)."""
    k = start.shape[0]
    trans_t = np.ascontiguousarray(trans.T)
    emission_t = np.ascontiguousarray(emission.T)  # (V, K): row x_t is contiguous
    for b in prange(obs.shape[0]):
        total = 0.0
        for j in range(k):
            alpha[b, 0, j] = start[j] * emission_t[obs[b, 0], j]
            total += alpha[b, 0, j]
        _normalise(alpha, log_c, b, 0, total)
        for t in range(1, lengths[b]):
            total = 0.0
            symbol = obs[b, t]
            for j in range(k):
                s = 0.0
                for i in range(k):
                    s += alpha[b, t - 1, i] * trans_t[j, i]
                s *= emission_t[symbol, j]
                alpha[b, t, j] = s
                total += s
            _normalise(alpha, log_c, b, t, total)


@njit(cache=True, fastmath=_FAST)
def _normalise(alpha, log_c, b, t, total):  # pragma: no cover - compiled
    """α̂_t = α_t / c_t and log c_t, with c_t = total; an impossible step (c_t = 0) leaves α̂_t = 0, log c_t = -inf."""
    if total > 0.0:
        for j in range(alpha.shape[2]):
            alpha[b, t, j] /= total
        log_c[b, t] = np.log(total)
    else:
        log_c[b, t] = -np.inf


@njit(cache=True, parallel=True, fastmath=_FAST)
def backward(trans, emission, obs, lengths, log_c, beta):  # pragma: no cover - compiled
    """Fill β̂ (B, T, K), given as zeros (left 0 at padding), scaled by the forward pass's c_t."""
    k = trans.shape[0]
    emission_t = np.ascontiguousarray(emission.T)
    for b in prange(obs.shape[0]):
        last = lengths[b] - 1
        local = np.empty(k)
        for i in range(k):
            beta[b, last, i] = 1.0
        for t in range(last - 1, -1, -1):
            symbol = obs[b, t + 1]
            scale = np.exp(-log_c[b, t + 1])
            for j in range(k):
                local[j] = emission_t[symbol, j] * beta[b, t + 1, j] * scale
            for i in range(k):
                s = 0.0
                for j in range(k):
                    s += trans[i, j] * local[j]
                beta[b, t, i] = s


@intrinsic
def _max(typingctx, a, b):  # pragma: no cover - compiled
    """max(a, b) of two float64 as LLVM's ``maxnum``, assuming neither is NaN.

    numba's ``max`` is a compare and select, which LLVM will not vectorise as
    a reduction; a ``maxnum`` reduction becomes packed ``vmaxpd``. Max is exact, so no
    rounding changes; -inf (log 0) behaves as the identity. ``nsz``: the sign
    of a zero maximum may be either, and -0.0 == 0.0 anyway.
    """

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        maxnum = builder.module.declare_intrinsic("llvm.maxnum", [double], ir.FunctionType(double, [double, double]))
        return builder.call(maxnum, args, fastmath=("nnan", "nsz"))

    return types.float64(types.float64, types.float64), codegen


@njit(cache=True, parallel=True)
def viterbi(log_start, log_trans, log_emission, obs, lengths, deltas):  # pragma: no cover - compiled
    """-> paths (B, T) int64 (0 at padding), log p(x, h*) (B,). Ties go to the lowest index.

    deltas: (W, T, K) work space, one slab per worker; worker w decodes
    sequences w, w + W, w + 2W, … The forward pass keeps only maxima (a
    reduction over the contiguous i of log Aᵀ, vectorised by ``_max``); the
    backtrace recomputes the one argmax it needs per step from the stored δ:
    h_{t-1} = argmax_i δ_{t-1}(i) + log A(i, h_t). Inputs hold no NaN (the
    parameters are validated); -inf is fine.
    """
    batch, steps = obs.shape
    workers, _, k = deltas.shape
    log_trans_t = np.ascontiguousarray(log_trans.T)
    log_emission_t = np.ascontiguousarray(log_emission.T)
    paths = np.zeros((batch, steps), dtype=np.int64)
    scores = np.empty(batch)
    for w in prange(workers):
        delta = deltas[w]
        for b in range(w, batch, workers):
            n = lengths[b]
            for j in range(k):
                delta[0, j] = log_start[j] + log_emission_t[obs[b, 0], j]
            for t in range(1, n):
                symbol = obs[b, t]
                for j in range(k):
                    best = -np.inf
                    for i in range(k):
                        best = _max(best, delta[t - 1, i] + log_trans_t[j, i])
                    delta[t, j] = best + log_emission_t[symbol, j]
            arg = 0
            for j in range(1, k):
                if delta[n - 1, j] > delta[n - 1, arg]:
                    arg = j
            scores[b] = delta[n - 1, arg]
            paths[b, n - 1] = arg
            for t in range(n - 1, 0, -1):
                previous = 0
                best = delta[t - 1, 0] + log_trans_t[arg, 0]
                for i in range(1, k):
                    v = delta[t - 1, i] + log_trans_t[arg, i]
                    if v > best:
                        best, previous = v, i
                arg = previous
                paths[b, t - 1] = arg
    return paths, scores


@njit(cache=True)
def _inverse_cdf(cumulative, u):  # pragma: no cover - compiled
    """#{k : u >= C[k]}, capped at K-1: the index k with C[k-1] <= u < C[k]."""
    count = 0
    for k in range(cumulative.shape[0]):
        if u >= cumulative[k]:
            count += 1
    return min(count, cumulative.shape[0] - 1)


@njit(cache=True)
def sample_chain(cumulative_start, cumulative_trans, uniforms, first, states):  # pragma: no cover - compiled
    """Fill states[:, first : first + S] from uniforms (S, n) by inverse-CDF sampling:
    h_0 from C_start, h_t from row h_{t-1} of C_trans (cumulative sums along the last axis)."""
    for s in range(uniforms.shape[0]):
        t = first + s
        for b in range(uniforms.shape[1]):
            if t == 0:
                states[b, 0] = _inverse_cdf(cumulative_start, uniforms[s, b])
            else:
                states[b, t] = _inverse_cdf(cumulative_trans[states[b, t - 1]], uniforms[s, b])


@njit(cache=True)
def sample_rows(cumulative, rows, uniforms, out):  # pragma: no cover - compiled
    """out[i] = inverse-CDF draw from row rows[i] of ``cumulative`` (R, V) with uniforms[i]."""
    for i in range(rows.shape[0]):
        out[i] = _inverse_cdf(cumulative[rows[i]], uniforms[i])
