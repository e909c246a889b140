"""HMM inference on padded batches: filter, smoother, pairwise posteriors, Viterbi.

Pure NumPy functions of the parameters (start π (K,), transition A (K, K),
emission E (K, V)) and padded observations obs (B, T) with lengths (B,).
Outputs are zero at padding positions.

A sequence of probability 0 (some x_t impossible after x_<t) has log c_t = -inf
from that step on, so log p(x) = -inf; conditional probabilities given it are
undefined, and ``smooth`` (and all built on it) raises ``check_possible``'s ValueError.

Two engines compute the same scaled recursions (Rabiner 1989):
``kernels`` (numba-compiled loops, one sequence per thread) where per-step
overhead dominates, i.e. few states; ``recursions`` (one BLAS product per step
for the whole batch) for many states and batches (``use_blas``).
"""

from __future__ import annotations

import numba
import numpy as np

from birnn.hmm import kernels, recursions
from birnn.spec import padding_mask


def use_blas(batch: int, states: int) -> bool:
    """Batched matrix products beat compiled per-sequence loops for K ≥ 64 states and B ≥ 8."""
    return states >= 64 and batch >= 8


def emission_table(emission: np.ndarray, obs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """e[b, t, k] = P(x_t = obs[b, t] | h_t = k), and 1 at padding. -> (B, T, K)."""
    table = emission.T[obs]  # (B, T, K)
    table[~padding_mask(lengths, obs.shape[1])] = 1.0
    return table


def forward(start, trans, emission, obs, lengths) -> tuple[np.ndarray, np.ndarray]:
    """Filter α̂_t = p(h_t | x_1..t) and log c_t = log p(x_t | x_<t). -> (B, T, K), (B, T); 0 at padding."""
    if use_blas(obs.shape[0], start.shape[0]):
        alpha, log_c = recursions.forward(start, trans, emission_table(emission, obs, lengths))
        invalid = ~padding_mask(lengths, obs.shape[1])
        alpha[invalid], log_c[invalid] = 0.0, 0.0
        return alpha, log_c
    alpha, log_c = np.zeros((*obs.shape, start.shape[0])), np.zeros(obs.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernels.forward(start, trans, emission, obs, lengths, alpha, log_c)
    return alpha, log_c


def backward(trans, emission, obs, lengths, log_c) -> np.ndarray:
    """β̂_t = p(x_{t+1..T} | h_t) / Π_{s>t} c_s. -> (B, T, K), 0 at padding."""
    if use_blas(obs.shape[0], trans.shape[0]):
        beta = recursions.backward(trans, emission_table(emission, obs, lengths), log_c)
        beta[~padding_mask(lengths, obs.shape[1])] = 0.0
        return beta
    beta = np.zeros((*obs.shape, trans.shape[0]))
    kernels.backward(trans, emission, obs, lengths, log_c, beta)
    return beta


def check_possible(log_c: np.ndarray) -> None:
    """ValueError naming each sequence b of probability 0 (log c_t = -inf) and its first impossible step t.

    log_c: (B, T) from ``forward``.
    """
    impossible = np.isneginf(log_c)
    if not impossible.any():
        return
    rows = np.flatnonzero(impossible.any(axis=1))
    first = impossible[rows].argmax(axis=1)
    shown = ", ".join(f"sequence {b} (x_t impossible at t={t})" for b, t in zip(rows[:5], first[:5], strict=True))
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    raise ValueError(
        f"obs has probability 0 under this HMM for {shown}{more}: p(h | x) is undefined there "
        "(log_likelihood gives -inf)"
    )


def smooth(start, trans, emission, obs, lengths):
    """Forward–backward: p(h_t | x_1..T) = α̂_t ⊙ β̂_t.

    -> posterior (B, T, K), filter α̂ (B, T, K), β̂ (B, T, K), log c (B, T); 0 at padding.
    ValueError for a sequence of probability 0 (``check_possible``).
    """
    alpha, log_c = forward(start, trans, emission, obs, lengths)
    check_possible(log_c)
    beta = backward(trans, emission, obs, lengths, log_c)
    return alpha * beta, alpha, beta, log_c


def pairwise(trans, emission, obs, lengths, alpha, beta, log_c) -> np.ndarray:
    """ξ_t(i, j) = p(h_t = i, h_{t+1} = j | x) = α̂_t(i) A(i, j) e_{t+1}(j) β̂_{t+1}(j) / c_{t+1}.

    -> (B, T-1, K, K), 0 where t+1 is padding.
    """
    following = emission_table(emission, obs, lengths)[:, 1:] * beta[:, 1:] * np.exp(-log_c[:, 1:, None])
    xi = alpha[:, :-1, :, None] * trans * following[:, :, None, :]
    xi[~padding_mask(lengths, obs.shape[1])[:, 1:]] = 0.0
    return xi


def expected_transitions(trans, emission, obs, lengths, alpha, beta, log_c) -> np.ndarray:
    """Σ_b Σ_t ξ_t(i, j) without materialising (B, T-1, K, K). -> (K, K)."""
    valid_next = padding_mask(lengths, obs.shape[1])[:, 1:, None]
    following = emission_table(emission, obs, lengths)[:, 1:] * beta[:, 1:] * np.exp(-log_c[:, 1:, None])
    following = np.where(valid_next, following, 0.0)
    k = trans.shape[0]
    return trans * (alpha[:, :-1].reshape(-1, k).T @ following.reshape(-1, k))


def viterbi(start, trans, emission, obs, lengths) -> tuple[np.ndarray, np.ndarray]:
    """Most probable state path by max-product in log space. -> paths (B, T) (0 at padding), log p(x, h*) (B,).

    Always the compiled loops: a max-plus product has no BLAS to win with.
    """
    with np.errstate(divide="ignore"):
        log_start, log_trans, log_emission = np.log(start), np.log(trans), np.log(emission)
    workers = min(obs.shape[0], numba.get_num_threads())
    deltas = np.empty((workers, obs.shape[1], start.shape[0]))  # δ of the sequence each worker decodes
    return kernels.viterbi(log_start, log_trans, log_emission, obs, lengths, deltas)
