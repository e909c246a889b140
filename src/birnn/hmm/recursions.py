"""The scaled forward and backward recursions of ``kernels``, vectorised over the batch in NumPy.

Each step is one (B, K) × (K, K) matrix product, so for many states (K ≳ 64)
BLAS does the work and this beats the per-sequence compiled loops. Padding
positions carry e_t = 1 and c_t = 1, which leaves every valid position's
result unchanged (α̂ @ A sums to 1; β̂ stays 1 past the end).
"""

from __future__ import annotations

import numpy as np


def forward(start: np.ndarray, trans: np.ndarray, emit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """α̂_0 = π ⊙ e_0 / c_0,  α̂_t = (α̂_{t-1} @ A) ⊙ e_t / c_t.

    A step that is impossible (c_t = 0) gives α̂_t = 0 and log c_t = -inf, and so do all after it.
    start: (K,); trans: (K, K); emit: (B, T, K) -> α̂ (B, T, K), log c (B, T).
    """
    batch, steps, k = emit.shape
    alpha = np.empty((batch, steps, k))
    log_c = np.empty((batch, steps))
    state = np.broadcast_to(start, (batch, k))
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in range(steps):
            state = (state if t == 0 else state @ trans) * emit[:, t]
            total = state.sum(axis=-1, keepdims=True)
            state = state / np.where(total > 0, total, 1.0)  # an impossible step stays 0
            alpha[:, t] = state
            log_c[:, t] = np.log(total[:, 0])
    return alpha, log_c


def backward(trans: np.ndarray, emit: np.ndarray, log_c: np.ndarray) -> np.ndarray:
    """β̂_{T-1} = 1,  β̂_t = (e_{t+1} ⊙ β̂_{t+1} / c_{t+1}) @ Aᵀ.  -> β̂ (B, T, K)."""
    batch, steps, k = emit.shape
    beta = np.empty((batch, steps, k))
    beta[:, -1] = 1.0
    scale = np.exp(-log_c)
    for t in range(steps - 2, -1, -1):
        beta[:, t] = (emit[:, t + 1] * beta[:, t + 1] * scale[:, t + 1, None]) @ trans.T
    return beta
