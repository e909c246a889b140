"""Baum–Welch: expectation–maximisation for a discrete HMM (Rabiner 1989, §III.C).

E-step (forward–backward, ``inference.smooth``):
    γ_t(k)   = p(h_t = k | x)
    Σ_t ξ_t(i, j) = A(i, j) Σ_t α̂_t(i) e_{t+1}(j) β̂_{t+1}(j) / c_{t+1}
M-step:
    π(k) ∝ Σ_b γ_0(k),  A(i, j) ∝ Σ ξ_t(i, j),  E(k, v) ∝ Σ_{t: x_t = v} γ_t(k)

Each iteration cannot decrease the log-likelihood (EM's guarantee).
"""

from __future__ import annotations

import numpy as np

from birnn.hmm.inference import expected_transitions, smooth
from birnn.spec import padding_mask


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    total = x.sum(axis=-1, keepdims=True)
    uniform = np.full_like(x, 1.0 / x.shape[-1])
    return np.where(total > 0, x / np.where(total > 0, total, 1.0), uniform)


def em_step(
    start: np.ndarray, trans: np.ndarray, emission: np.ndarray, obs: np.ndarray, lengths: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], float]:
    """One Baum–Welch iteration. -> (new start, new transition, new emission), log-likelihood before it."""
    posterior, alpha, beta, log_c = smooth(start, trans, emission, obs, lengths)
    new_start = _normalise_rows(posterior[:, 0].sum(axis=0))
    new_trans = _normalise_rows(expected_transitions(trans, emission, obs, lengths, alpha, beta, log_c))
    counts = np.zeros((emission.shape[1], emission.shape[0]))  # (V, K)
    valid = padding_mask(lengths, obs.shape[1])
    np.add.at(counts, obs[valid], posterior[valid])
    new_emission = _normalise_rows(counts.T)
    return (new_start, new_trans, new_emission), float(log_c.sum())


def random_parameters(
    n_states: int, n_symbols: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dirichlet(1) rows, a common starting point for Baum–Welch."""
    return (
        rng.dirichlet(np.ones(n_states)),
        rng.dirichlet(np.ones(n_states), size=n_states),
        rng.dirichlet(np.ones(n_symbols), size=n_states),
    )


def baum_welch(
    params: tuple[np.ndarray, np.ndarray, np.ndarray],
    obs: np.ndarray,
    lengths: np.ndarray,
    n_iter: int,
    tol: float,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], list[float]]:
    """Iterate ``em_step`` until the log-likelihood gains less than ``tol`` or ``n_iter`` is reached.

    -> fitted (start, transition, emission), log-likelihood history (one entry
    per parameter set visited, the last for the returned parameters).
    """
    history: list[float] = []
    for _ in range(n_iter):
        candidate, log_likelihood = em_step(*params, obs, lengths)
        history.append(log_likelihood)
        if len(history) > 1 and history[-1] - history[-2] < tol:
            return params, history
        params = candidate
    history.append(float(smooth(*params, obs, lengths)[3].sum()))  # log-likelihood = Σ log c
    return params, history
