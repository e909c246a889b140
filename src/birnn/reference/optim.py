"""Optimisers for parameter dictionaries: SGD with global-norm clipping (as d2l trains RNNs), Adam."""

from __future__ import annotations

import numpy as np


def clip_by_global_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """g ← g · min(1, θ / ‖g‖) with ‖g‖ over all tensors together; returns ‖g‖ before clipping."""
    norm = float(np.sqrt(sum(float((g * g).sum()) for g in grads.values())))
    if norm > max_norm:
        for g in grads.values():
            g *= max_norm / norm
    return norm


class SGD:
    """θ ← θ - lr · clip(g)."""

    def __init__(self, params: dict[str, np.ndarray], lr: float, clip: float | None = None) -> None:
        self.params, self.lr, self.clip = params, lr, clip

    def step(self, grads: dict[str, np.ndarray]) -> None:
        if self.clip is not None:
            clip_by_global_norm(grads, self.clip)
        for name, g in grads.items():
            self.params[name] -= self.lr * g


class Adam:
    """Kingma & Ba (2015):  m ← β1 m + (1-β1) g,  v ← β2 v + (1-β2) g²,
    θ ← θ - lr · m̂ / (√v̂ + ε)  with bias-corrected m̂, v̂."""

    def __init__(
        self,
        params: dict[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        clip: float | None = None,
    ) -> None:
        self.params, self.lr, self.betas, self.eps, self.clip = params, lr, betas, eps, clip
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, grads: dict[str, np.ndarray]) -> None:
        if self.clip is not None:
            clip_by_global_norm(grads, self.clip)
        self.t += 1
        b1, b2 = self.betas
        for name, g in grads.items():
            self.m[name] = b1 * self.m[name] + (1 - b1) * g
            self.v[name] = b2 * self.v[name] + (1 - b2) * g * g
            m_hat = self.m[name] / (1 - b1**self.t)
            v_hat = self.v[name] / (1 - b2**self.t)
            self.params[name] -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
