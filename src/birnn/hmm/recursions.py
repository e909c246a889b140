"""Chain recursions of a discrete HMM in NumPy: scaled sum-product and max-product.

Both directions share one scaled recursion (the forward algorithm of Rabiner
1989 with per-step normalisation):

    s_t = normalise((s_{t-1} @ A) ⊙ e_t),        log n_t = log Σ_k ((s_{t-1} @ A) ⊙ e_t)_k

- forward:  s = α̂ (the filter p(h_t | x_1..t)), A the transition matrix, e_t = P(x_t | ·);
  then log n_t = log p(x_t | x_1..t-1) and log p(x) = Σ_t log n_t;
- backward: read time right to left with Aᵀ; then s_t ∝ u_t = e_t ⊙ β_t, and the
  posterior is p(h_t | x) ∝ (α̂_{t-1} @ A) ⊙ u_t (no division by e_t).

A state may be a vector (R = 1) or a matrix (R = K rows: the transfer matrix of
a stretch of steps). That lets a long chain be cut into C chunks of L steps:
(1) the chunks' transfer matrices are computed batched, (2) the chunk
boundaries are stitched sequentially, (3) the steps inside the chunks are
recomputed batched. Python loops then take about 2L + C steps instead of T,
which is what makes small-K HMMs fast; with K states the matrix pass costs K×
the arithmetic, so chunking is used for small K only (``use_chunks``).

Shapes: N chains (batch × chunks), L steps, R state rows, K states.
"""

from __future__ import annotations

import math

import numpy as np


def use_chunks(steps: int, states: int) -> bool:
    """Chunk a chain when per-step overhead dominates: few states, long chains."""
    return states <= 8 and steps >= 64


def propagate(before: np.ndarray, trans: np.ndarray, emit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scaled sum-product recursion over L steps.

    before: (N, R, K) row-normalised state before the first step; trans: (K, K);
    emit: (N, L, K) -> states (N, L, R, K) row-normalised, log_norms (N, L, R).

        s_t = (s_{t-1} @ A) ⊙ e_t / n_t,   n_t = Σ_k ((s_{t-1} @ A) ⊙ e_t)_k
    """
    n, steps, k = emit.shape
    states = np.empty((n, steps, before.shape[1], k), dtype=emit.dtype)
    log_norms = np.empty((n, steps, before.shape[1]), dtype=emit.dtype)
    state = before
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in range(steps):
            state = (state @ trans) * emit[:, t, None, :]  # (N, R, K)
            norm = state.sum(axis=-1, keepdims=True)
            state = state / norm
            states[:, t] = state
            log_norms[:, t] = np.log(norm[..., 0])
    return states, log_norms


def propagate_max(
    before: np.ndarray, log_trans: np.ndarray, log_emit: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Max-product recursion over L steps in log space, frozen where ``valid`` is False.

    before: (N, R, K); log_trans: (K, K); log_emit: (N, L, K); valid: (N, L) bool
    -> deltas (N, L, R, K), pointers (N, L, R, K) (identity where not valid).

        δ_t(j) = log e_t(j) + max_i (δ_{t-1}(i) + log A(i, j)),   ψ_t(j) = argmax_i
    """
    n, steps, k = log_emit.shape
    rows = before.shape[1]
    deltas = np.empty((n, steps, rows, k), dtype=log_emit.dtype)
    pointers = np.empty((n, steps, rows, k), dtype=np.int64)
    identity = np.broadcast_to(np.arange(k), (n, rows, k))
    delta = before
    for t in range(steps):
        candidates = delta[..., :, None] + log_trans  # (N, R, K_from, K_to)
        best = candidates.argmax(axis=-2)  # (N, R, K)
        step = np.take_along_axis(candidates, best[..., None, :], axis=-2)[..., 0, :] + log_emit[:, t, None]
        keep = valid[:, t, None, None]
        delta = np.where(keep, step, delta)
        deltas[:, t] = delta
        pointers[:, t] = np.where(keep, best, identity)
    return deltas, pointers


def _chunk(array: np.ndarray, length: int, fill: float) -> np.ndarray:
    """(B, T, ...) -> (B * C, L, ...) with the tail padded by ``fill``; C = ceil(T / L)."""
    batch, steps = array.shape[:2]
    chunks = math.ceil(steps / length)
    padded = np.full((batch, chunks * length, *array.shape[2:]), fill, dtype=array.dtype)
    padded[:, :steps] = array
    return padded.reshape(batch * chunks, length, *array.shape[2:])


def _chunk_length(steps: int) -> int:
    return max(1, math.isqrt(steps))


def propagate_chunked(before: np.ndarray, trans: np.ndarray, emit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``propagate`` with R = 1 in O(√T) Python steps (module docstring).

    before: (B, K); trans: (K, K); emit: (B, T, K) -> states (B, T, K), log_norms (B, T).
    Tail padding uses e = 1, which leaves every real step's result unchanged.
    """
    batch, steps, k = emit.shape
    length = _chunk_length(steps)
    pieces = _chunk(emit, length, 1.0)  # (B*C, L, K)
    chunks = pieces.shape[0] // batch
    # (1) transfer matrices G_c = Π_t A diag(e_t), rows normalised, with log row scales.
    eye = np.broadcast_to(np.eye(k, dtype=emit.dtype), (batch * chunks, k, k))
    transfer, log_rows = propagate(eye, trans, pieces)
    transfer = transfer[:, -1].reshape(batch, chunks, k, k)
    log_rows = log_rows.sum(axis=1).reshape(batch, chunks, k)
    # (2) stitch the state entering each chunk.
    entering = np.empty((batch, chunks, k), dtype=emit.dtype)
    state = before
    with np.errstate(divide="ignore", invalid="ignore"):
        for c in range(chunks):
            entering[:, c] = state
            shift = np.max(np.where(np.isfinite(log_rows[:, c]), log_rows[:, c], -np.inf), axis=-1)
            shift = np.where(np.isfinite(shift), shift, 0.0)
            weights = state * np.exp(log_rows[:, c] - shift[:, None])
            state = np.einsum("bi,bij->bj", weights, transfer[:, c])
            state = state / state.sum(axis=-1, keepdims=True)
    # (3) every step inside every chunk, batched.
    states, log_norms = propagate(entering.reshape(batch * chunks, 1, k), trans, pieces)
    states = states.reshape(batch, chunks * length, k)[:, :steps]
    return states, log_norms.reshape(batch, chunks * length)[:, :steps]


def propagate_max_chunked(
    before: np.ndarray, log_trans: np.ndarray, log_emit: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Viterbi over steps 1..T-1 in O(√T) Python steps; returns the best path's states.

    before: (B, K) δ_0; log_trans: (K, K); log_emit: (B, T, K); valid: (B, T)
    -> final δ (B, K) (at each chain's last valid step), path (B, T) int64 (the
    states after each step, ties broken towards the lowest index).
    """
    batch, steps, k = log_emit.shape
    length = _chunk_length(steps)
    pieces = _chunk(log_emit, length, 0.0)
    mask = _chunk(valid, length, False)
    chunks = pieces.shape[0] // batch
    zero_eye = np.where(np.eye(k, dtype=bool), 0.0, -np.inf).astype(log_emit.dtype)
    eye = np.broadcast_to(zero_eye, (batch * chunks, k, k))
    transfer, _ = propagate_max(eye, log_trans, pieces, mask)
    transfer = transfer[:, -1].reshape(batch, chunks, k, k)  # V_c[i, j]
    entering = np.empty((batch, chunks, k), dtype=log_emit.dtype)
    delta = before
    for c in range(chunks):
        entering[:, c] = delta
        delta = (delta[:, :, None] + transfer[:, c]).max(axis=1)
    _, pointers = propagate_max(entering.reshape(batch * chunks, 1, k), log_trans, pieces, mask)
    pointers = pointers[:, :, 0].reshape(batch, chunks, length, k)
    b, c = np.arange(batch)[:, None, None], np.arange(chunks)[None, :, None]
    # origin[b, c, j]: the state entering chunk c on the best path ending chunk c in j. Taken from
    # the same pointers as the backtrace below, so that exact ties are broken consistently.
    origin = np.broadcast_to(np.arange(k), (batch, chunks, k))
    for t in range(length - 1, -1, -1):
        origin = pointers[b, c, t, origin]
    # Chunk-level backtrace: the state at each chunk's end, from the last chunk back.
    ends = np.empty((batch, chunks), dtype=np.int64)
    current = delta.argmax(axis=-1)
    rows = np.arange(batch)
    for chunk in range(chunks - 1, -1, -1):
        ends[:, chunk] = current
        current = origin[rows, chunk, current]
    # Inside every chunk at once: h_{t-1} = ψ_t(h_t).
    path = np.empty((batch, chunks, length), dtype=np.int64)
    current = ends
    for t in range(length - 1, -1, -1):
        path[:, :, t] = current
        current = pointers[b[..., 0], c[..., 0], t, current]
    return delta, path.reshape(batch, chunks * length)[:, :steps]
