"""One direction of a layer over time, with lengths, and its backpropagation through time.

A direction reads its input left to right; the ← direction of a bidirectional
layer is the same loop over ``reverse_padded(x)`` (bidirectional.py). Inside,
arrays are time-major, (T, B, ·), so that step t is the block ``x[t]``. The
input projection of every step is one matrix product before the loop,

    xp = x W_ihᵀ + b_ih                      (T, B, G·H)

and the loop runs the recurrence, with m_t = [t < len] (docs/derivation.md §3):

    hp_t = h_{t-1} W_hhᵀ + b_hh,   s_t = m_t ⊙ cell(xp_t, hp_t, s_{t-1}) + (1 - m_t) ⊙ s_{t-1},   out_t = m_t ⊙ h_t

Past each sequence's end the state is frozen and the output is zero (at a step
where no sequence has ended, m_t = 1 and there is nothing to freeze). Going
backward, the state gradient splits at each step,

    d(new)_t = m_t ⊙ ds_t (+ m_t ⊙ dout_t on h),   ds_{t-1} = (1 - m_t) ⊙ ds_t + d(prev)_t

and the weights' gradients are sums over steps, one matrix product each after the loop:

    dW_ih = Σ_t dxp_tᵀ x_t,  db_ih = Σ_t dxp_t,  dW_hh = Σ_t dhp_tᵀ h_{t-1},  db_hh = Σ_t dhp_t,  dx_t = dxp_t W_ih
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birnn.reference.cells import State, step_backward, step_forward
from birnn.spec import padding_mask


def reverse_padded(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Reverse each sequence's valid prefix, keep padding in place. x: (B, T, ...) -> (B, T, ...)."""
    steps = x.shape[1]
    if np.all(lengths == steps):
        return x[:, ::-1]
    t = np.arange(steps)[None, :]
    index = np.where(padding_mask(lengths, steps), lengths[:, None] - 1 - t, t)  # (B, T)
    return np.take_along_axis(x, index.reshape(*index.shape, *([1] * (x.ndim - 2))), axis=1)


@dataclass
class DirectionCache:
    """What ``direction_backward`` needs from ``direction_forward`` (time-major, as the loop reads them)."""

    x: np.ndarray  # (T, B, I) the input the direction read
    mask: np.ndarray  # (T, B, 1) bool, m_t
    padded: np.ndarray  # (T,) bool: some sequence has ended by step t
    h: np.ndarray  # (T+1, B, H): h_0 (initial), h_1 … h_T
    steps: list  # the cell's cache of every step


def _freeze(m_t: np.ndarray, new: State, old: State) -> State:
    """m_t ⊙ new + (1 - m_t) ⊙ old for every array of a state; m_t: (B, 1) bool."""
    return tuple(np.where(m_t, n, o) for n, o in zip(new, old, strict=True))


def _flat(a: np.ndarray) -> np.ndarray:
    """(T, B, F) -> (T·B, F): a sum over steps and sequences as one matrix product."""
    return a.reshape(-1, a.shape[-1])


def direction_forward(
    cell: str,
    x: np.ndarray,
    valid: np.ndarray,
    initial: State,
    params: dict[str, np.ndarray],
    keep_cache: bool = True,
) -> tuple[np.ndarray, State, DirectionCache | None]:
    """Run one direction left to right.

    x: (B, T, I); valid: (B, T) bool; initial: state tuple of (B, H);
    params: w_ih (G·H, I), w_hh (G·H, H), b_ih, b_hh (G·H,)
    -> out (B, T, H) zero at padding, final state, cache (None unless keep_cache).
    """
    x = np.ascontiguousarray(x.swapaxes(0, 1))  # (T, B, I): step t is the block x[t]
    steps, batch, _ = x.shape
    xp = _flat(x) @ params["w_ih"].T  # (T·B, G·H)
    xp += params["b_ih"]
    xp = xp.reshape(steps, batch, -1)  # (T, B, G·H)
    w_hh_t, b_hh = np.ascontiguousarray(params["w_hh"].T), params["b_hh"]  # W_hhᵀ: (H, G·H)
    mask = valid.T[..., None]  # (T, B, 1)
    padded = np.asarray(~valid.all(axis=0))  # (T,)
    state, hs, caches = initial, [initial[0]], []
    for t in range(steps):
        hp = state[0] @ w_hh_t  # (B, G·H)
        hp += b_hh
        new, cache = step_forward(cell, xp[t], hp, state)
        state = _freeze(mask[t], new, state) if padded[t] else new
        hs.append(state[0])
        if keep_cache:
            caches.append(cache)
    h = np.stack(hs)  # (T+1, B, H)
    out = h[1:] * mask if padded.any() else h[1:]  # out_t = m_t ⊙ h_t
    cache = DirectionCache(x, mask, padded, h, caches) if keep_cache else None
    return out.swapaxes(0, 1), state, cache


def direction_backward(
    cell: str,
    d_out: np.ndarray,
    d_final: State,
    cache: DirectionCache,
    params: dict[str, np.ndarray],
    input_grad: bool = True,
) -> tuple[np.ndarray | None, dict[str, np.ndarray], State]:
    """Backpropagation through time for ``direction_forward``.

    d_out: (B, T, H); d_final: gradient of the final state, tuple of (B, H)
    -> dx (B, T, I) (None unless ``input_grad``), gradients {w_ih, w_hh, b_ih, b_hh},
    gradient of the initial state.
    """
    d_out = d_out.swapaxes(0, 1)  # (T, B, H)
    w_hh, mask, padded = params["w_hh"], cache.mask, cache.padded
    d_state, dxp_steps, dhp_steps = d_final, [], []
    for t in range(d_out.shape[0] - 1, -1, -1):
        d_new = (d_state[0] + d_out[t], *d_state[1:])
        if padded[t]:
            d_new = tuple(np.where(mask[t], d, 0) for d in d_new)  # m_t ⊙ (ds_t + dout_t)
        dxp_t, dhp_t, d_direct = step_backward(cell, d_new, cache.steps[t])
        dh_prev = dhp_t @ w_hh  # (B, H): dh_{t-1} through W_hh
        if d_direct[0] is not None:
            dh_prev = dh_prev + d_direct[0]
        d_prev = (dh_prev, *d_direct[1:])
        d_state = _freeze(mask[t], d_prev, d_state) if padded[t] else d_prev  # d(prev)_t is 0 where m_t = 0
        dxp_steps.append(dxp_t)
        dhp_steps.append(dhp_t)
    d_xp = np.stack(dxp_steps[::-1])  # (T, B, G·H), t ascending
    d_hp = np.stack(dhp_steps[::-1]) if cell == "gru" else d_xp  # dhp = dxp but for the GRU
    grads = {
        "w_ih": _flat(d_xp).T @ _flat(cache.x),
        "w_hh": _flat(d_hp).T @ _flat(cache.h[:-1]),
        "b_ih": _flat(d_xp).sum(axis=0),
        "b_hh": _flat(d_hp).sum(axis=0),
    }
    dx = (_flat(d_xp) @ params["w_ih"]).reshape(*d_xp.shape[:2], -1).swapaxes(0, 1) if input_grad else None
    return dx, grads, d_state
