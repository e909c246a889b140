"""Recurrent cells as pure NumPy function pairs: each forward step next to its backward step.

A state is a tuple, (h,) for RNN and GRU, (h, c) for LSTM, each (B, H); a cell
has G gates. The matrix products of a step belong to the direction's loop
(``layer.py``, docs/derivation.md §2), so a cell is only its elementwise
equations. Its forward step receives

    xp_t = x_t W_ihᵀ + b_ih          (B, G·H), the input projection
    hp_t = h_{t-1} W_hhᵀ + b_hh      (B, G·H), the recurrent projection

and the previous state, and returns the new state and what its backward step
needs. The backward step receives the gradient of the new state and returns

    dxp_t, dhp_t                     (B, G·H)
    d_direct                         the previous state's gradient that bypasses W_hh

(for h, None where there is no such part); the loop completes
dh_{t-1} = d_direct_h + dhp_t W_hh.
"""

from __future__ import annotations

import numpy as np

State = tuple[np.ndarray, ...]


def sigmoid(a: np.ndarray) -> np.ndarray:
    """σ(a) = 1 / (1 + e^{-a}) = (1 + tanh(a/2)) / 2, elementwise.

    The tanh form cannot overflow, for any a.
    """
    return 0.5 * np.tanh(0.5 * a) + 0.5


def _split(a: np.ndarray, parts: int) -> list[np.ndarray]:
    """(B, parts·H) -> parts views of (B, H), in the gate order of the weights."""
    return np.split(a, parts, axis=-1)


# ----- Elman RNN -------------------------------------------------------------------------------


def rnn_step_forward(xp: np.ndarray, hp: np.ndarray, state: State, nonlinearity: str = "tanh"):
    """h_t = φ(a_t),  a_t = xp_t + hp_t,  φ = tanh or relu.

    xp, hp: (B, H); state: (h_{t-1},) -> (h_t,), cache
    """
    a = xp + hp
    h = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
    return (h,), (a, h, nonlinearity)


def rnn_step_backward(d_state: State, cache):
    """da_t = dh_t ⊙ φ'(a_t),  φ' = 1 - h_t² (tanh) or [a_t > 0] (relu);  dxp_t = dhp_t = da_t.

    -> dxp, dhp (B, H), d_direct = (None,): all of dh_{t-1} = da_t W_hh goes through W_hh.
    """
    (dh,) = d_state
    a, h, nonlinearity = cache
    da = dh * (1 - h * h) if nonlinearity == "tanh" else dh * (a > 0)
    return da, da, (None,)


# ----- GRU (PyTorch's formulation) -------------------------------------------------------------


def gru_step_forward(xp: np.ndarray, hp: np.ndarray, state: State):
    """PyTorch's GRU, gates ordered (r, z, n):

        [xr, xz, xn] = xp_t,   [hr, hz, hn] = hp_t = h_{t-1} W_hhᵀ + b_hh
        r = σ(xr + hr),  z = σ(xz + hz),  n = tanh(xn + r ⊙ hn)
        h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

    xp, hp: (B, 3H); state: (h_{t-1},) -> (h_t,), cache
    """
    (h_prev,) = state
    xr, xz, xn = _split(xp, 3)
    hr, hz, hn = _split(hp, 3)
    r = sigmoid(xr + hr)
    z = sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    h = (1 - z) * n + z * h_prev
    return (h,), (h_prev, r, z, n, hn)


def gru_step_backward(d_state: State, cache):
    """Backward of ``gru_step_forward``:

        dn = dh ⊙ (1 - z),   dz = dh ⊙ (h_{t-1} - n)
        da_n = dn ⊙ (1 - n²),   da_r = da_n ⊙ hn ⊙ r(1 - r),   da_z = dz ⊙ z(1 - z)
        dxp = [da_r, da_z, da_n],   dhp = [da_r, da_z, da_n ⊙ r]
        dh_{t-1} = dh ⊙ z + dhp W_hh

    -> dxp, dhp (B, 3H), d_direct = (dh ⊙ z,)
    """
    (dh,) = d_state
    h_prev, r, z, n, hn = cache
    dn = dh * (1 - z)
    dz = dh * (h_prev - n)
    da_n = dn * (1 - n * n)
    da_r = da_n * hn * r * (1 - r)
    da_z = dz * z * (1 - z)
    dxp = np.concatenate([da_r, da_z, da_n], axis=-1)
    dhp = np.concatenate([da_r, da_z, da_n * r], axis=-1)
    return dxp, dhp, (dh * z,)


# ----- LSTM ------------------------------------------------------------------------------------


def lstm_step_forward(xp: np.ndarray, hp: np.ndarray, state: State):
    """LSTM, gates ordered (i, f, g, o) as in PyTorch:

        [a_i, a_f, a_g, a_o] = xp_t + hp_t
        i = σ(a_i),  f = σ(a_f),  g = tanh(a_g),  o = σ(a_o)
        c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)

    xp, hp: (B, 4H); state: (h_{t-1}, c_{t-1}) -> (h_t, c_t), cache
    """
    _, c_prev = state
    a_i, a_f, a_g, a_o = _split(xp + hp, 4)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h = o * tanh_c
    return (h, c), (c_prev, i, f, g, o, tanh_c)


def lstm_step_backward(d_state: State, cache):
    """Backward of ``lstm_step_forward``:

        do = dh_t ⊙ tanh(c_t),   dc = dc_t + dh_t ⊙ o ⊙ (1 - tanh²(c_t))
        di = dc ⊙ g,   df = dc ⊙ c_{t-1},   dg = dc ⊙ i,   dc_{t-1} = dc ⊙ f
        dxp = dhp = [di ⊙ i(1-i), df ⊙ f(1-f), dg ⊙ (1-g²), do ⊙ o(1-o)]

    -> dxp, dhp (B, 4H), d_direct = (None, dc_{t-1}): dh_{t-1} = dhp W_hh entirely.
    """
    dh, dc_next = d_state
    c_prev, i, f, g, o, tanh_c = cache
    do = dh * tanh_c
    dc = dc_next + dh * o * (1 - tanh_c * tanh_c)
    di, df, dg = dc * g, dc * c_prev, dc * i
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], axis=-1)
    return da, da, (None, dc * f)


def step_forward(cell: str, xp: np.ndarray, hp: np.ndarray, state: State):
    """One forward step of ``cell`` ("rnn_tanh", "rnn_relu", "gru", "lstm"). -> new state, cache"""
    if cell == "lstm":
        return lstm_step_forward(xp, hp, state)
    if cell == "gru":
        return gru_step_forward(xp, hp, state)
    return rnn_step_forward(xp, hp, state, "tanh" if cell == "rnn_tanh" else "relu")


def step_backward(cell: str, d_state: State, cache):
    """One backward step of ``cell``. -> dxp, dhp, d_direct"""
    if cell == "lstm":
        return lstm_step_backward(d_state, cache)
    if cell == "gru":
        return gru_step_backward(d_state, cache)
    return rnn_step_backward(d_state, cache)
