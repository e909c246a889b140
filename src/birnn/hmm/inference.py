"""HMM inference on padded batches: filter, smoother, pairwise posteriors, Viterbi.

Pure NumPy functions of the parameters (start π (K,), transition A (K, K),
emission E (K, V)) and padded observations obs (B, T) with lengths (B,).
Outputs are zero at padding positions. Each function picks the chunked
recursion for long chains with few states (``recursions.use_chunks``).
"""

from __future__ import annotations

import numpy as np

from birnn.hmm.recursions import (
    propagate,
    propagate_chunked,
    propagate_max,
    propagate_max_chunked,
    use_chunks,
)


def _valid(lengths: np.ndarray, steps: int) -> np.ndarray:
    return np.arange(steps)[None, :] < lengths[:, None]  # (B, T)


def emission_table(emission: np.ndarray, obs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """e[b, t, k] = P(x_t = obs[b, t] | h_t = k), and 1 at padding. -> (B, T, K)."""
    table = emission.T[obs]  # (B, T, K)
    table[~_valid(lengths, obs.shape[1])] = 1.0
    return table


def _run(before: np.ndarray, trans: np.ndarray, emit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scaled recursion of steps 1..T-1 from the state at step 0. -> (B, T-1, K), (B, T-1)."""
    if use_chunks(emit.shape[1], emit.shape[2]):
        return propagate_chunked(before, trans, emit)
    states, log_norms = propagate(before[:, None, :], trans, emit)
    return states[:, :, 0], log_norms[:, :, 0]


def forward(start: np.ndarray, trans: np.ndarray, emit: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scaled forward pass.

        α̂_0 = π ⊙ e_0 / c_0,   α̂_t = (α̂_{t-1} @ A) ⊙ e_t / c_t,   log p(x) = Σ_t log c_t

    start: (K,); trans: (K, K); emit: (B, T, K) (1 at padding)
    -> filter α̂ (B, T, K), predicted p(h_t | x_<t) = α̂_{t-1} @ A (B, T, K), log c (B, T).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        first = start * emit[:, 0]  # (B, K)
        c0 = first.sum(axis=-1)
        first = first / c0[:, None]
        rest, log_c = _run(first, trans, emit[:, 1:])
    alpha = np.concatenate([first[:, None], rest], axis=1)
    predicted = np.concatenate([np.broadcast_to(start, first.shape)[:, None], alpha[:, :-1] @ trans], axis=1)
    with np.errstate(divide="ignore"):
        log_c = np.concatenate([np.log(c0)[:, None], log_c], axis=1)
    return alpha, predicted, log_c


def backward(trans: np.ndarray, emit: np.ndarray) -> np.ndarray:
    """Scaled backward pass in the form u_t = e_t ⊙ β_t (up to a positive factor per t).

        u_{T-1} = e_{T-1},   u_t = (u_{t+1} @ Aᵀ) ⊙ e_t   (the forward recursion, reversed, with Aᵀ)

    trans: (K, K); emit: (B, T, K) (1 at padding) -> u (B, T, K), each row summing to 1.
    """
    flipped = emit[:, ::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        last = flipped[:, 0] / flipped[:, 0].sum(axis=-1, keepdims=True)
        rest, _ = _run(last, np.ascontiguousarray(trans.T), np.ascontiguousarray(flipped[:, 1:]))
    return np.concatenate([last[:, None], rest], axis=1)[:, ::-1]


def _normalise(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return x / x.sum(axis=axes, keepdims=True)


def smooth(
    start: np.ndarray, trans: np.ndarray, emission: np.ndarray, obs: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Forward–backward.

        p(h_t | x_1..T) ∝ p(h_t | x_<t) ⊙ u_t = α_t ⊙ β_t

    -> posterior (B, T, K), filter (B, T, K), u (B, T, K), log-likelihood (B,); 0 at padding.
    """
    emit = emission_table(emission, obs, lengths)
    alpha, predicted, log_c = forward(start, trans, emit)
    u = backward(trans, emit)
    posterior = _normalise(predicted * u, (-1,))
    invalid = ~_valid(lengths, obs.shape[1])
    posterior[invalid] = 0.0
    alpha[invalid] = 0.0
    return posterior, alpha, u, log_c.sum(axis=1)


def pairwise(trans: np.ndarray, alpha: np.ndarray, u: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Pairwise posteriors from the filter and the backward pass.

        ξ_t(i, j) = p(h_t = i, h_{t+1} = j | x) ∝ α̂_t(i) A(i, j) u_{t+1}(j)

    alpha: (B, T, K) filter; u: (B, T, K) -> (B, T-1, K, K), 0 where t+1 is padding.
    """
    xi = _normalise(alpha[:, :-1, :, None] * trans * u[:, 1:, None, :], (-2, -1))
    xi[~_valid(lengths, alpha.shape[1])[:, 1:]] = 0.0
    return xi


def filter_only(
    start: np.ndarray, trans: np.ndarray, emission: np.ndarray, obs: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """p(h_t | x_1..t) and the log-likelihood. -> (B, T, K) (0 at padding), (B,)."""
    alpha, _, log_c = forward(start, trans, emission_table(emission, obs, lengths))
    alpha[~_valid(lengths, obs.shape[1])] = 0.0
    return alpha, log_c.sum(axis=1)


def viterbi(
    start: np.ndarray, trans: np.ndarray, emission: np.ndarray, obs: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Most probable state path by max-product in log space.

        δ_0 = log π + log e_0,  δ_t(j) = log e_t(j) + max_i (δ_{t-1}(i) + log A(i, j))

    -> paths (B, T) int64 (0 at padding), log p(x, h*) (B,).
    """
    batch, steps = obs.shape
    with np.errstate(divide="ignore"):
        log_emit = np.log(emission_table(emission, obs, lengths))
        log_trans = np.log(trans)
        delta0 = np.log(start) + log_emit[:, 0]
    valid = _valid(lengths, steps)
    if steps == 1:
        return delta0.argmax(axis=-1)[:, None], delta0.max(axis=-1)
    if use_chunks(steps, start.shape[0]):
        final, rest = propagate_max_chunked(delta0, log_trans, log_emit[:, 1:], valid[:, 1:])
    else:
        deltas, pointers = propagate_max(delta0[:, None], log_trans, log_emit[:, 1:], valid[:, 1:])
        final = deltas[:, -1, 0]
        rest = np.empty((batch, steps - 1), dtype=np.int64)
        current = final.argmax(axis=-1)
        rows = np.arange(batch)
        for t in range(steps - 2, -1, -1):
            rest[:, t] = current
            current = pointers[rows, t, 0, current]
    # The state at step 0 is the one that the step-1 pointer came from.
    first = _first_state(delta0, log_trans, rest[:, 0], lengths)
    paths = np.concatenate([first[:, None], rest], axis=1)
    paths[~valid] = 0
    return paths, final.max(axis=-1)


def _first_state(delta0: np.ndarray, log_trans: np.ndarray, second: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """h_0 = argmax_i δ_0(i) + log A(i, h_1), or argmax δ_0 for chains of length 1."""
    towards_second = (delta0 + log_trans[:, second].T).argmax(axis=-1)
    return np.where(lengths > 1, towards_second, delta0.argmax(axis=-1))
