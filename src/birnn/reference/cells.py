"""Recurrent cells as pure NumPy function pairs: each forward step next to its backward step.

Conventions (PyTorch's): the input projection xp_t = x_t W_ihᵀ + b_ih is
computed for all steps at once outside the step; a state is a tuple, (h,) for
RNN and GRU, (h, c) for LSTM; W_hh: (G·H, H), b_hh: (G·H,) with G gates.
Each backward step takes the gradient of the loss with respect to the new
state and returns the gradients with respect to xp_t, the previous state and
the recurrent pre-activation hp_t = h_{t-1} W_hhᵀ + b_hh; the weight gradients
dW_hh = Σ_t dhp_tᵀ h_{t-1} and db_hh = Σ_t dhp_t are then one GEMM over all
steps (``layer.direction_backward``).
"""

from __future__ import annotations

import numpy as np

State = tuple[np.ndarray, ...]


def sigmoid(a: np.ndarray) -> np.ndarray:
    """σ(a) = 1 / (1 + e^{-a}) = (1 + tanh(a/2)) / 2, the second form never overflowing."""
    return 0.5 + 0.5 * np.tanh(0.5 * a)


# ----- Elman RNN -------------------------------------------------------------------------------


def rnn_step_forward(xp, state, w_hh, b_hh, nonlinearity="tanh"):
    """h_t = φ(xp_t + h_{t-1} W_hhᵀ + b_hh), φ = tanh or relu.

    xp: (B, H); state: (h_{t-1},) -> (h_t,), cache
    """
    (h_prev,) = state
    a = xp + h_prev @ w_hh.T + b_hh
    h = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
    return (h,), (h_prev, a, h, w_hh, nonlinearity)


def rnn_step_backward(d_state, cache):
    """da = dh ⊙ φ'(a);  dxp = dhp = da;  dh_{t-1} = da W_hh.

    φ'(a) = 1 - h² for tanh, [a > 0] for relu. -> dxp, (dh_{t-1},), dhp
    """
    (dh,) = d_state
    _, a, h, w_hh, nonlinearity = cache
    da = dh * (1 - h * h) if nonlinearity == "tanh" else dh * (a > 0)
    return da, (da @ w_hh,), da


# ----- GRU (PyTorch's formulation) -------------------------------------------------------------


def gru_step_forward(xp, state, w_hh, b_hh):
    """PyTorch's GRU, gates ordered (r, z, n):

        [xr, xz, xn] = xp_t,   [hr, hz, hn] = h_{t-1} W_hhᵀ + b_hh
        r = σ(xr + hr),  z = σ(xz + hz),  n = tanh(xn + r ⊙ hn)
        h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

    xp: (B, 3H); state: (h_{t-1},) -> (h_t,), cache
    """
    (h_prev,) = state
    xr, xz, xn = np.split(xp, 3, axis=-1)
    hp = h_prev @ w_hh.T + b_hh
    hr, hz, hn = np.split(hp, 3, axis=-1)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    h = (1 - z) * n + z * h_prev
    return (h,), (h_prev, r, z, n, hn, w_hh)


def gru_step_backward(d_state, cache):
    """Backward of ``gru_step_forward``:

    dn = dh ⊙ (1 - z),  dz = dh ⊙ (h_{t-1} - n),  dh_{t-1} = dh ⊙ z + dhp W_hh
    da_n = dn ⊙ (1 - n²),  dr = da_n ⊙ hn,  da_r = dr ⊙ r(1 - r),  da_z = dz ⊙ z(1 - z)
    dxp = [da_r, da_z, da_n],  dhp = [da_r, da_z, da_n ⊙ r]
    dW_hh = dhpᵀ h_{t-1},  db_hh = Σ_b dhp
    """
    (dh,) = d_state
    h_prev, r, z, n, hn, w_hh = cache
    dn = dh * (1 - z)
    dz = dh * (h_prev - n)
    da_n = dn * (1 - n * n)
    da_r = da_n * hn * r * (1 - r)
    da_z = dz * z * (1 - z)
    dxp = np.concatenate([da_r, da_z, da_n], axis=-1)
    dhp = np.concatenate([da_r, da_z, da_n * r], axis=-1)
    return dxp, (dh * z + dhp @ w_hh,), dhp


# ----- LSTM ------------------------------------------------------------------------------------


def lstm_step_forward(xp, state, w_hh, b_hh):
    """LSTM, gates ordered (i, f, g, o) as in PyTorch:

        [a_i, a_f, a_g, a_o] = xp_t + h_{t-1} W_hhᵀ + b_hh
        i = σ(a_i),  f = σ(a_f),  g = tanh(a_g),  o = σ(a_o)
        c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)

    xp: (B, 4H); state: (h_{t-1}, c_{t-1}) -> (h_t, c_t), cache
    """
    h_prev, c_prev = state
    a = xp + h_prev @ w_hh.T + b_hh
    hidden = c_prev.shape[-1]
    # One tanh for all four gates: σ(a) = (1 + tanh(a/2)) / 2 for i, f, o.
    a[:, : 2 * hidden] *= 0.5
    a[:, 3 * hidden :] *= 0.5
    squashed = np.tanh(a)
    gates = 0.5 + 0.5 * squashed
    i, f, o = gates[:, :hidden], gates[:, hidden : 2 * hidden], gates[:, 3 * hidden :]
    g = squashed[:, 2 * hidden : 3 * hidden]
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    return (o * tanh_c, c), (h_prev, c_prev, i, f, g, o, tanh_c, w_hh)


def lstm_step_backward(d_state, cache):
    """Backward of ``lstm_step_forward``:

    do = dh ⊙ tanh(c_t),   dc = dc_t + dh ⊙ o ⊙ (1 - tanh²(c_t))
    di = dc ⊙ g,  df = dc ⊙ c_{t-1},  dg = dc ⊙ i,  dc_{t-1} = dc ⊙ f
    da = [di ⊙ i(1-i), df ⊙ f(1-f), dg ⊙ (1-g²), do ⊙ o(1-o)]
    dxp = da,  dh_{t-1} = da W_hh,  dW_hh = daᵀ h_{t-1},  db_hh = Σ_b da
    """
    dh, dc_next = d_state
    _, c_prev, i, f, g, o, tanh_c, w_hh = cache
    do = dh * tanh_c
    dc = dc_next + dh * o * (1 - tanh_c * tanh_c)
    da = np.concatenate(
        [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g), do * o * (1 - o)], axis=-1
    )
    return da, (da @ w_hh, dc * f), da


GATES = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}


def step_forward(cell: str, xp, state, w_hh, b_hh):
    """Dispatch one forward step of ``cell`` ("rnn_tanh", "rnn_relu", "gru", "lstm")."""
    if cell == "lstm":
        return lstm_step_forward(xp, state, w_hh, b_hh)
    if cell == "gru":
        return gru_step_forward(xp, state, w_hh, b_hh)
    return rnn_step_forward(xp, state, w_hh, b_hh, "tanh" if cell == "rnn_tanh" else "relu")


def step_backward(cell: str, d_state, cache):
    """Dispatch one backward step of ``cell``."""
    if cell == "lstm":
        return lstm_step_backward(d_state, cache)
    if cell == "gru":
        return gru_step_backward(d_state, cache)
    return rnn_step_backward(d_state, cache)
