"""One direction of one layer over time, with lengths, and its backpropagation through time.

The input projection of every step is one GEMM (xp = x W_ihᵀ + b_ih for all
t at once); the loop then runs only the recurrent part. Past each sequence's
end the state is frozen and the output is zero:

    s_t = m_t ⊙ cell(xp_t, s_{t-1}) + (1 - m_t) ⊙ s_{t-1},   out_t = m_t ⊙ h_t,   m_t = [t < len]

so backpropagation through time splits the state gradient at each step:

    d(new state)_t = m_t ⊙ ds_t (+ m_t ⊙ dout_t on h),   ds_{t-1} = (1 - m_t) ⊙ ds_t + d(prev)_t

and the weights' gradients are sums over steps, each one GEMM after the loop:

    dW_ih = Σ_t dxp_tᵀ x_t,  db_ih = Σ_t dxp_t,  dW_hh = Σ_t dhp_tᵀ h_{t-1},  db_hh = Σ_t dhp_t
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birnn.reference.cells import State, step_backward, step_forward


def reverse_padded(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Reverse each sequence's valid prefix, keep padding in place. x: (B, T, ...) -> (B, T, ...)."""
    steps = x.shape[1]
    if np.all(lengths == steps):
        return x[:, ::-1]
    t = np.arange(steps)[None, :]
    index = np.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T)
    return np.take_along_axis(x, index.reshape(*index.shape, *([1] * (x.ndim - 2))), axis=1)


@dataclass
class DirectionCache:
    """What the backward pass of one direction needs."""

    x: np.ndarray  # (B, T, I) the input this direction read (already reversed for ←)
    valid: np.ndarray  # (B, T, 1) float mask
    all_valid: np.ndarray  # (T,) bool: no padding at step t (the mask can be skipped)
    steps: list  # per-step caches of the cell, each starting with h_{t-1}


def direction_forward(
    cell: str, x: np.ndarray, valid: np.ndarray, initial: State, params: dict[str, np.ndarray]
) -> tuple[np.ndarray, State, DirectionCache]:
    """Run one direction left to right over its input.

    x: (B, T, I); valid: (B, T) bool; initial: state tuple of (B, H);
    params: w_ih (G·H, I), w_hh (G·H, H), b_ih, b_hh (G·H,) -> out (B, T, H), final state, cache.
    """
    xp = x @ params["w_ih"].T + params["b_ih"]  # (B, T, G·H), one GEMM for all steps
    mask = valid[..., None].astype(x.dtype)
    batch, steps, _ = x.shape
    hidden = params["w_hh"].shape[1]
    out = np.zeros((batch, steps, hidden), dtype=x.dtype)
    all_valid = valid.all(axis=0)
    state, caches = initial, []
    for t in range(steps):
        new, cache = step_forward(cell, xp[:, t], state, params["w_hh"], params["b_hh"])
        if all_valid[t]:
            state = new
            out[:, t] = new[0]
        else:
            m = mask[:, t]
            state = tuple(m * n + (1 - m) * s for n, s in zip(new, state, strict=True))
            out[:, t] = m * new[0]
        caches.append(cache)
    return out, state, DirectionCache(x, mask, all_valid, caches)


def direction_backward(
    cell: str, d_out: np.ndarray, d_final: State, cache: DirectionCache, params: dict[str, np.ndarray]
) -> tuple[np.ndarray, dict[str, np.ndarray], State]:
    """Backpropagation through time for ``direction_forward``.

    d_out: (B, T, H); d_final: gradient of the final state -> dx (B, T, I),
    parameter gradients {w_ih, w_hh, b_ih, b_hh}, gradient of the initial state.
    """
    batch, steps, _ = d_out.shape
    gates = params["w_hh"].shape[0]
    d_xp = np.empty((batch, steps, gates), dtype=d_out.dtype)
    d_hp = d_xp if cell != "gru" else np.empty_like(d_xp)  # GRU: r ⊙ hn makes them differ
    d_state = d_final
    for t in range(steps - 1, -1, -1):
        m = cache.valid[:, t]
        if cache.all_valid[t]:
            d_new = list(d_state)
        else:
            d_new = [m * ds for ds in d_state]
        d_new[0] = d_new[0] + m * d_out[:, t]
        d_xp[:, t], d_prev, d_hp[:, t] = step_backward(cell, tuple(d_new), cache.steps[t])
        if cache.all_valid[t]:
            d_state = d_prev
        else:
            d_state = tuple((1 - m) * ds + dp for ds, dp in zip(d_state, d_prev, strict=True))
    h_prev = np.stack([step[0] for step in cache.steps], axis=1)  # (B, T, H)
    flat_d_hp = d_hp.reshape(-1, gates)
    grads = {
        "w_ih": d_xp.reshape(-1, gates).T @ cache.x.reshape(-1, cache.x.shape[-1]),
        "w_hh": flat_d_hp.T @ h_prev.reshape(-1, h_prev.shape[-1]),
        "b_ih": d_xp.sum(axis=(0, 1)),
        "b_hh": flat_d_hp.sum(axis=0),
    }
    return d_xp @ params["w_ih"], grads, d_state
