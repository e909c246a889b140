"""The directions of one layer over time, advanced together, with lengths, and their backpropagation through time.

The input projection of every step is one GEMM per direction (xp = x W_ihᵀ +
b_ih for all t at once); the loop then runs only the recurrent part, for all
directions in the same step: the ← direction reads ``reverse_padded(x)``, so
both walk t = 0 … T-1 together and share the mask m_t = [t < len]. Arrays are
time-major with a leading direction axis, x: (D, T, B, I), so that step t of
every direction is ``xp[:, t]``: (D, B, G·H) and the recurrent products of all
directions are one batched ``matmul``, hp_t = h_{t-1} W_hhᵀ, here; the cells
(cells.py) are the elementwise rest. Past each sequence's end the state is
frozen and the output is zero:

    s_t = m_t ⊙ cell(xp_t, s_{t-1}) + (1 - m_t) ⊙ s_{t-1},   out_t = m_t ⊙ h_t

so backpropagation through time splits the state gradient at each step:

    d(new state)_t = m_t ⊙ ds_t (+ m_t ⊙ dout_t on h),   ds_{t-1} = (1 - m_t) ⊙ ds_t + d(prev)_t

and the weights' gradients are sums over steps, each one GEMM per direction after the loop:

    dW_ih = Σ_t dxp_tᵀ x_t,  db_ih = Σ_t dxp_t,  dW_hh = Σ_t dhp_tᵀ h_{t-1},  db_hh = Σ_t dhp_t
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np

from birnn.reference.cells import State, step_backward, step_forward

ALONE = nullcontext()  # the default turn: nobody to take turns with


def reverse_padded(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Reverse each sequence's valid prefix, keep padding in place. x: (B, T, ...) -> (B, T, ...)."""
    steps = x.shape[1]
    if np.all(lengths == steps):
        return x[:, ::-1]
    t = np.arange(steps)[None, :]
    index = np.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T)
    return np.take_along_axis(x, index.reshape(*index.shape, *([1] * (x.ndim - 2))), axis=1)


@dataclass
class DirectionsCache:
    """What the backward pass of the directions needs."""

    x: np.ndarray  # (D, T, B, I) the input each direction read (already reversed for ←)
    mask: np.ndarray | None  # (T, B, 1) float mask, None without padding
    all_valid: np.ndarray  # (T,) bool: no padding at step t (the mask can be skipped)
    h: np.ndarray  # (D, T+1, B, H): h_0 (initial), h_1 … h_T, the states the steps read
    steps: list  # per-step caches of the cell


def _stack_recurrent(params: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """D directions' W_hh (G·H, H), b_hh (G·H,) -> w_hh_t (D, H, G·H), b_hh (D, 1, G·H)."""
    w_hh_t = np.stack([p["w_hh"].T for p in params])
    b_hh = np.stack([p["b_hh"] for p in params])[:, None, :]
    return w_hh_t, b_hh


def directions_forward(
    cell: str,
    x: np.ndarray,
    valid: np.ndarray,
    initial: State,
    params: list[dict[str, np.ndarray]],
    keep_cache: bool = True,
) -> tuple[np.ndarray, State, DirectionsCache | None]:
    """Run D directions of equal hidden size H left to right over their own inputs, in lockstep.

    x: (D, T, B, I) time-major; valid: (T, B) bool, shared by the directions; initial: state
    tuple of (D, B, H); params: per direction w_ih (G·H, I), w_hh (G·H, H), b_ih, b_hh (G·H,)
    -> out (D, T, B, H) zero at padding, final state tuple of (D, B, H), cache (None unless keep_cache).
    """
    n_dir, steps, batch, features = x.shape
    hidden = params[0]["w_hh"].shape[1]
    gates = params[0]["w_hh"].shape[0]
    xp = np.empty((n_dir, steps, batch, gates), dtype=x.dtype)
    w_hh_t, b_hh = _stack_recurrent(params)
    fold_b_hh = cell != "gru"  # add b_hh to xp here once, not at every step (cells.py)
    for d, p in enumerate(params):  # one GEMM per direction for all steps
        flat = xp[d].reshape(-1, gates)  # (T·B, G·H)
        np.matmul(x[d].reshape(-1, features), p["w_ih"].T, out=flat)
        flat += p["b_ih"] + p["b_hh"] if fold_b_hh else p["b_ih"]
    b_hh = None if fold_b_hh else b_hh
    all_valid = valid.all(axis=1)
    mask = None if all_valid.all() else valid[..., None].astype(x.dtype)  # (T, B, 1)
    h = np.empty((n_dir, steps + 1, batch, hidden), dtype=x.dtype)
    h[:, 0] = initial[0]
    state, caches = initial, []
    for t in range(steps):
        hp = state[0] @ w_hh_t  # (D, B, G·H)
        if b_hh is not None:
            hp += b_hh
        new, cache = step_forward(cell, xp[:, t], hp, state)
        if not all_valid[t]:
            m = mask[t]  # (B, 1), broadcast over directions and features
            new = tuple(m * n + (1 - m) * s for n, s in zip(new, state, strict=True))
        h[:, t + 1] = new[0]
        state = new
        if keep_cache:
            caches.append(cache)
    out = h[:, 1:] if mask is None else h[:, 1:] * mask
    return out, state, DirectionsCache(x, mask, all_valid, h, caches) if keep_cache else None


def directions_backward(
    cell: str,
    d_out: np.ndarray,
    d_final: State,
    cache: DirectionsCache,
    params: list[dict[str, np.ndarray]],
    input_grad: bool = True,
    turn: AbstractContextManager = ALONE,
) -> tuple[np.ndarray | None, list[dict[str, np.ndarray]], State]:
    """Backpropagation through time for ``directions_forward``.

    d_out: (D, T, B, H); d_final: gradient of the final state, tuple of (D, B, H)
    -> dx (D, T, B, I) (None if not ``input_grad``: its GEMM is skipped), per direction
    parameter gradients {w_ih, w_hh, b_ih, b_hh}, gradient of the initial state.
    ``turn`` is held around each step's elementwise parts, not its matrix product (schedule.py).
    """
    n_dir, steps, batch, hidden = d_out.shape
    gates = params[0]["w_hh"].shape[0]
    d_xp = np.empty((n_dir, steps, batch, gates), dtype=d_out.dtype)
    d_hp = d_xp if cell != "gru" else np.empty_like(d_xp)  # GRU: r ⊙ hn makes them differ
    w_hh = np.stack([p["w_hh"] for p in params])  # (D, G·H, H)
    mask = cache.mask
    if mask is not None:
        d_out = d_out * mask  # m_t ⊙ dout_t, for all steps at once
    d_state = d_final
    for t in range(steps - 1, -1, -1):
        with turn:
            m = None if cache.all_valid[t] else mask[t]
            if m is None:
                d_new = (d_state[0] + d_out[:, t], *d_state[1:])
            else:
                d_new = (m * d_state[0] + d_out[:, t], *(m * ds for ds in d_state[1:]))
            _, d_hp_t, d_direct = step_backward(cell, d_new, cache.steps[t], out=d_xp[:, t])
            if cell == "gru":
                d_hp[:, t] = d_hp_t
        dh_prev = d_hp_t @ w_hh  # (D, B, H): dh_{t-1} through W_hh
        with turn:
            if d_direct[0] is not None:
                dh_prev += d_direct[0]
            d_prev = (dh_prev, *d_direct[1:])
            if m is None:
                d_state = d_prev
            else:
                d_state = tuple((1 - m) * ds + dp for ds, dp in zip(d_state, d_prev, strict=True))
    features = cache.x.shape[-1]
    dx = np.empty((n_dir, steps, batch, features), dtype=d_out.dtype) if input_grad else None
    grads = []
    for d, p in enumerate(params):  # the sums over steps: one GEMM each
        flat_d_xp, flat_d_hp = d_xp[d].reshape(-1, gates), d_hp[d].reshape(-1, gates)  # (T·B, G·H)
        if input_grad:
            np.matmul(flat_d_xp, p["w_ih"], out=dx[d].reshape(-1, features))
        b_ih = flat_d_xp.sum(axis=0)
        grads.append(
            {
                "w_ih": flat_d_xp.T @ cache.x[d].reshape(-1, features),
                "w_hh": flat_d_hp.T @ cache.h[d, :-1].reshape(-1, hidden),
                "b_ih": b_ih,
                "b_hh": b_ih.copy() if cell != "gru" else flat_d_hp.sum(axis=0),
            }
        )
    return dx, grads, d_state
