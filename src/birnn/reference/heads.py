"""Output layers on top of the bidirectional stack, forward next to backward.

Layouts: every valid step (tagging), chosen steps per sequence — among them
the textbook layout with outputs only at the first and the last step — and
the sequence summary [→h_{len-1} ; ←h_0] (``BiRNN.summary``).
"""

from __future__ import annotations

import numpy as np


def dense_forward(h: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, tuple]:
    """z = h Wᵀ + b.  h: (..., D); weight: (C, D); bias: (C,) -> z (..., C), cache."""
    return h @ weight.T + bias, (h, weight)


def dense_backward(dz: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dh = dz W;  dW = Σ dzᵀ h;  db = Σ dz  (sums over all leading axes)."""
    h, weight = cache
    flat_dz, flat_h = dz.reshape(-1, dz.shape[-1]), h.reshape(-1, h.shape[-1])
    return dz @ weight, flat_dz.T @ flat_h, flat_dz.sum(axis=0)


def softmax_cross_entropy(
    logits: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Mean of -log softmax(z)[y] over the (weighted) positions, and its gradient.

        p = softmax(z),   L = Σ_n w_n (-log p_{n, y_n}) / Σ_n w_n,   dL/dz_n = w_n (p_n - onehot(y_n)) / Σ w

    logits: (..., C); targets: (...) ints; weights: (...) (e.g. a padding mask) -> loss, dlogits.
    """
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    weights = np.ones(targets.shape, dtype=logits.dtype) if weights is None else weights.astype(logits.dtype)
    total = max(float(weights.sum()), 1e-12)
    picked = np.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0]
    loss = float(-(picked * weights).sum() / total)
    d_logits = np.exp(log_p)
    np.put_along_axis(d_logits, targets[..., None], np.take_along_axis(d_logits, targets[..., None], -1) - 1, -1)
    return loss, d_logits * (weights / total)[..., None]


def first_last_positions(lengths: np.ndarray) -> np.ndarray:
    """The textbook layout: outputs at t = 0 and t = lengths[b] - 1. -> (B, 2) int64."""
    return np.stack([np.zeros_like(lengths), lengths - 1], axis=1)


def select_steps(out: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """out[b, positions[b, k]]. out: (B, T, D); positions: (B, K) -> (B, K, D)."""
    return np.take_along_axis(out, positions[..., None], axis=1)


def select_steps_backward(d_selected: np.ndarray, positions: np.ndarray, steps: int) -> np.ndarray:
    """Scatter-add the gradient back to its steps. d_selected: (B, K, D) -> (B, T, D)."""
    batch, _, features = d_selected.shape
    d_out = np.zeros((batch, steps, features), dtype=d_selected.dtype)
    np.add.at(d_out, (np.arange(batch)[:, None], positions), d_selected)
    return d_out
