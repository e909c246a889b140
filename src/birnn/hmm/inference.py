"""HMM inference on padded batches: filter, smoother, pairwise posteriors, Viterbi.

Pure NumPy functions of the parameters (start π (K,), transition A (K, K),
emission E (K, V)) and padded observations obs (B, T) with lengths (B,).
Outputs are zero at padding positions.

Two engines compute the same scaled recursions (Rabiner 1989):
``kernels`` (numba-compiled loops, one sequence per thread) where per-step
overhead dominates, i.e. few states; ``recursions`` (one BLAS product per step
for the whole batch) for many states and batches (``use_blas``).
"""

from __future__ import annotations

import numba
import numpy as np

from birnn.hmm import kernels, recursions


def use_blas(batch: int, states: int) -> bool:
    """Batched matrix products beat compiled per-sequence loops for K ≥ 64 states and B ≥ 8."""
    return states >= 64 and batch >= 8


def _valid(lengths: np.ndarray, steps: int) -> np.ndarray:
    return np.arange(steps)[None, :] < lengths[:, None]  # (B, T)


def emission_table(emission: np.ndarray, obs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """e[b, t, k] = P(x_t = obs[b, t] | h_t = k), and 1 at padding. -> (B, T, K)."""
    table = emission.T[obs]  # (B, T, K)
    table[~_valid(lengths, obs.shape[1])] = 1.0
    return table


def forward(start, trans, emission, obs, lengths) -> tuple[np.ndarray, np.ndarray]:
    """Filter α̂_t = p(h_t | x_1..t) and log c_t = log p(x_t | x_<t). -> (B, T, K), (B, T); 0 at padding."""
    if use_blas(*obs.shape[:1], start.shape[0]):
        alpha, log_c = recursions.forward(start, trans, emission_table(emission, obs, lengths))
        invalid = ~_valid(lengths, obs.shape[1])
        alpha[invalid], log_c[invalid] = 0.0, 0.0
        return alpha, log_c
    alpha, log_c = np.zeros((*obs.shape, start.shape[0])), np.zeros(obs.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernels.forward(start, trans, emission, obs, lengths, alpha, log_c)
    return alpha, log_c


def backward(trans, emission, obs, lengths, log_c) -> np.ndarray:
    """β̂_t = p(x_{t+1..T} | h_t) / Π_{s>t} c_s. -> (B, T, K), 0 at padding."""
    if use_blas(*obs.shape[:1], trans.shape[0]):
        beta = recursions.backward(trans, emission_table(emission, obs, lengths), log_c)
        beta[~_valid(lengths, obs.shape[1])] = 0.0
        return beta
    beta = np.zeros((*obs.shape, trans.shape[0]))
    kernels.backward(trans, emission, obs, lengths, log_c, beta)
    return beta


def smooth(start, trans, emission, obs, lengths):
    """Forward–backward: p(h_t | x_1..T) = α̂_t ⊙ β̂_t.

    -> posterior (B, T, K), filter α̂ (B, T, K), β̂ (B, T, K), log c (B, T); 0 at padding.
    """
    alpha, log_c = forward(start, trans, emission, obs, lengths)
    beta = backward(trans, emission, obs, lengths, log_c)
    return alpha * beta, alpha, beta, log_c


def pairwise(trans, emission, obs, lengths, alpha, beta, log_c) -> np.ndarray:
    """ξ_t(i, j) = p(h_t = i, h_{t+1} = j | x) = α̂_t(i) A(i, j) e_{t+1}(j) β̂_{t+1}(j) / c_{t+1}.

    -> (B, T-1, K, K), 0 where t+1 is padding.
    """
    following = emission_table(emission, obs, lengths)[:, 1:] * beta[:, 1:] * np.exp(-log_c[:, 1:, None])
    xi = alpha[:, :-1, :, None] * trans * following[:, :, None, :]
    xi[~_valid(lengths, obs.shape[1])[:, 1:]] = 0.0
    return xi


def expected_transitions(trans, emission, obs, lengths, alpha, beta, log_c) -> np.ndarray:
    """Σ_b Σ_t ξ_t(i, j) without materialising (B, T-1, K, K). -> (K, K)."""
    valid_next = _valid(lengths, obs.shape[1])[:, 1:, None]
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
