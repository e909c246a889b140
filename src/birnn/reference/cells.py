"""Recurrent cells as pure NumPy function pairs: each forward step next to its backward step.

Conventions (PyTorch's): a state is a tuple, (h,) for RNN and GRU, (h, c) for
LSTM; G gates per cell. The two matrix products of a step are the layer's
(``layer.py``), so a cell is only its elementwise equations. It receives

    xp_t = x_t W_ihᵀ + b_ih          the input projection, one GEMM for all steps
    hp_t = h_{t-1} W_hhᵀ (+ b_hh)    the recurrent product, one GEMM per step

and each backward step takes the gradient of the new state and returns the
gradients with respect to xp_t and hp_t and the part of the previous state's
gradient that does not pass through W_hh (``d_direct``; None where there is
none). The layer completes dh_{t-1} = d_direct_h + dhp_t W_hh and takes the
weight gradients dW_hh = Σ_t dhp_tᵀ h_{t-1}, db_hh = Σ_t dhp_t as one GEMM
over all steps (``layer.directions_backward``).

Direction axis. The layer may advance both directions of a bidirectional layer
in the same step, so every array carries a leading axis D over directions
(D = 2, or D = 1):

    xp, hp: (D, B, G·H),  state arrays: (D, B, H)

The RNN and LSTM use b_hh only through the sum xp_t + hp_t, so the layer adds
it to xp once for all steps; the GRU cannot (b_hn sits inside r ⊙ hn), and its
hp includes b_hh. The cells work in place on hp, which the layer does not reuse.
Nothing mixes the directions, so the functions work unchanged without the D axis.
"""

from __future__ import annotations

import numpy as np

State = tuple[np.ndarray, ...]


def sigmoid(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """σ(a) = 1 / (1 + e^{-a}), elementwise, into ``out`` if given (it may be ``a``).

    For a ≪ 0, e^{-a} overflows to inf and σ = 1 / inf = 0 exactly: no NaN, so the
    overflow warning is silenced. (One exp is cheaper than one tanh in NumPy, and
    ``divide(1, ·)`` than ``reciprocal``: 0.17 vs 0.29 ns per float32 element on AVX2.)
    """
    with np.errstate(over="ignore"):
        out = np.negative(a, out=out)
        np.exp(out, out=out)
        out += 1
        return np.divide(1, out, out=out)


# ----- Elman RNN -------------------------------------------------------------------------------


def rnn_step_forward(xp, hp, state, nonlinearity="tanh"):
    """h_t = φ(a_t),  a_t = xp_t + hp_t,  φ = tanh or relu.

    xp, hp: (D, B, H); state: (h_{t-1},) (read only through hp) -> (h_t,), cache
    """
    a = hp
    a += xp
    h = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
    return (h,), (a, h, nonlinearity)


def rnn_step_backward(d_state, cache, out=None):
    """da = dh ⊙ φ'(a);  dxp = dhp = da;  dh_{t-1} = da W_hh (the layer's product: no direct part).

    φ'(a) = 1 - h² for tanh, [a > 0] for relu. -> dxp (into ``out`` if given), dhp, d_direct = (None,)
    """
    (dh,) = d_state
    a, h, nonlinearity = cache
    if nonlinearity == "tanh":
        da = np.multiply(h, h, out=out)
        np.subtract(1, da, out=da)
        da *= dh
    else:
        da = np.multiply(dh, a > 0, out=out)
    return da, da, (None,)


# ----- GRU (PyTorch's formulation) -------------------------------------------------------------


def gru_step_forward(xp, hp, state):
    """PyTorch's GRU, gates ordered (r, z, n):

        [xr, xz, xn] = xp_t,   [hr, hz, hn] = h_{t-1} W_hhᵀ + b_hh
        r = σ(xr + hr),  z = σ(xz + hz),  n = tanh(xn + r ⊙ hn)
        h_t = (1 - z) ⊙ n + z ⊙ h_{t-1} = n + z ⊙ (h_{t-1} - n)

    xp, hp: (D, B, 3H); state: (h_{t-1},) -> (h_t,), cache
    """
    (h_prev,) = state
    hidden = h_prev.shape[-1]
    rz = hp[..., : 2 * hidden] + xp[..., : 2 * hidden]
    sigmoid(rz, out=rz)
    r, z = rz[..., :hidden], rz[..., hidden:]
    hn = hp[..., 2 * hidden :]
    n = r * hn
    n += xp[..., 2 * hidden :]
    np.tanh(n, out=n)
    h = h_prev - n
    h *= z
    h += n
    return (h,), (h_prev, r, z, n, hn)


def gru_step_backward(d_state, cache, out=None):
    """Backward of ``gru_step_forward``:

    dn = dh ⊙ (1 - z),  dz = dh ⊙ (h_{t-1} - n),  dh_{t-1} = dh ⊙ z + dhp W_hh
    da_n = dn ⊙ (1 - n²),  dr = da_n ⊙ hn,  da_r = dr ⊙ r(1 - r),  da_z = dz ⊙ z(1 - z)
    dxp = [da_r, da_z, da_n] (into ``out`` if given),  dhp = [da_r, da_z, da_n ⊙ r],  d_direct = (dh ⊙ z,)
    """
    (dh,) = d_state
    h_prev, r, z, n, hn = cache
    hidden = h_prev.shape[-1]
    dxp = np.empty((*dh.shape[:-1], 3 * hidden), dtype=dh.dtype) if out is None else out
    da_r, da_z, da_n = dxp[..., :hidden], dxp[..., hidden : 2 * hidden], dxp[..., 2 * hidden :]
    np.multiply(n, n, out=da_n)
    np.subtract(1, da_n, out=da_n)
    da_n *= dh - dh * z  # dn ⊙ (1 - n²)
    np.multiply(da_n, hn, out=da_r)
    da_r *= r - r * r
    np.subtract(h_prev, n, out=da_z)
    da_z *= dh
    da_z *= z - z * z
    dhp = dxp.copy()
    dhp[..., 2 * hidden :] *= r
    return dxp, dhp, (dh * z,)


# ----- LSTM ------------------------------------------------------------------------------------


def lstm_step_forward(xp, hp, state):
    """LSTM, gates ordered (i, f, g, o) as in PyTorch:

        [a_i, a_f, a_g, a_o] = xp_t + h_{t-1} W_hhᵀ + b_hh
        i = σ(a_i),  f = σ(a_f),  g = tanh(a_g) = 2σ(2a_g) - 1,  o = σ(a_o)
        c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)

    All four gates come from one σ over (D, B, 4H), computed in place in hp.
    xp, hp: (D, B, 4H); state: (h_{t-1}, c_{t-1}) -> (h_t, c_t), cache
    """
    _, c_prev = state
    hidden = c_prev.shape[-1]
    gates = hp  # the pre-activation a, then the gates in place
    gates += xp
    g = gates[..., 2 * hidden : 3 * hidden]
    g *= 2
    sigmoid(gates, out=gates)
    g *= 2
    g -= 1
    i, f, o = gates[..., :hidden], gates[..., hidden : 2 * hidden], gates[..., 3 * hidden :]
    c = f * c_prev
    c += i * g
    tanh_c = np.tanh(c)
    return (o * tanh_c, c), (c_prev, gates, tanh_c)


def lstm_step_backward(d_state, cache, out=None):
    """Backward of ``lstm_step_forward``:

    do = dh ⊙ tanh(c_t),   dc = dc_t + dh ⊙ o ⊙ (1 - tanh²(c_t))
    di = dc ⊙ g,  df = dc ⊙ c_{t-1},  dg = dc ⊙ i,  dc_{t-1} = dc ⊙ f
    da = [di ⊙ i(1-i), df ⊙ f(1-f), dg ⊙ (1-g²), do ⊙ o(1-o)]   (into ``out`` if given)
    dxp = dhp = da,  d_direct = (None, dc_{t-1}): dh_{t-1} = da W_hh is the layer's product
    """
    dh, dc_next = d_state
    c_prev, gates, tanh_c = cache
    hidden = c_prev.shape[-1]
    i, f, g, o = (gates[..., k * hidden : (k + 1) * hidden] for k in range(4))
    dc = tanh_c * tanh_c
    np.subtract(1, dc, out=dc)
    dc *= o
    dc *= dh
    dc += dc_next
    da = np.empty_like(gates) if out is None else out
    np.multiply(dc, g, out=da[..., :hidden])
    np.multiply(dc, c_prev, out=da[..., hidden : 2 * hidden])
    np.multiply(dc, i, out=da[..., 2 * hidden : 3 * hidden])
    np.multiply(dh, tanh_c, out=da[..., 3 * hidden :])
    slope = 1 - gates  # σ' = σ(1 - σ) for i, f, o;  tanh' = 1 - g² for g
    slope *= gates
    np.multiply(g, g, out=slope[..., 2 * hidden : 3 * hidden])
    np.subtract(1, slope[..., 2 * hidden : 3 * hidden], out=slope[..., 2 * hidden : 3 * hidden])
    da *= slope
    return da, da, (None, dc * f)


GATES = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}


def step_forward(cell: str, xp, hp, state):
    """Dispatch one forward step of ``cell`` ("rnn_tanh", "rnn_relu", "gru", "lstm")."""
    if cell == "lstm":
        return lstm_step_forward(xp, hp, state)
    if cell == "gru":
        return gru_step_forward(xp, hp, state)
    return rnn_step_forward(xp, hp, state, "tanh" if cell == "rnn_tanh" else "relu")


def step_backward(cell: str, d_state, cache, out=None):
    """Dispatch one backward step of ``cell``; ``out`` optionally receives dxp. -> dxp, dhp, d_direct"""
    if cell == "lstm":
        return lstm_step_backward(d_state, cache, out)
    if cell == "gru":
        return gru_step_backward(d_state, cache, out)
    return rnn_step_backward(d_state, cache, out)
