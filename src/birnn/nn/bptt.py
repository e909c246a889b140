"""Both directions of one recurrent layer in one loop, with hand-written BPTT.

Pure functions on the *sorted packed* layout that ``bilayer.py`` builds:
sequences sorted by length (longest first), step t holds the first
``sizes[t]`` of them, stored one block after another, so that the rows of
step t are ``[off_t, off_t + sizes[t])`` and every row of step t was also
active at step t-1. The two directions share this layout: direction 0 reads
x[b, t], direction 1 reads x[b, len_b - 1 - t] (``reverse_padded``), so both
advance in the same loop step and padding is never computed at all.

Shapes: D = 2 directions, N = Σ_t sizes[t] = Σ_b len_b packed rows,
G gates (LSTM 4, GRU 3, Elman 1). Inputs:

    xp: (D, N, G·H)  input projection x W_ihᵀ + b_ih (+ b_hh, except for the GRU)
    h0, c0: (D, B, H) initial states in sorted order
    w_hh: (D, G·H, H); b_hh: (D, G·H) (used by the GRU only)

Each ``*_forward`` returns (out (D, N, H), cache); each ``*_backward`` takes
the output gradient dout (D, N, H) and the final-state gradients (D, B, H) in
sorted order and returns (dxp (D, N, G·H), dhp (D, N, G·H), dh0, dc0) with
dhp the gradient of the recurrent pre-activation hp_t = h_{t-1} W_hhᵀ + b_hh.
The weight gradients are then one matrix product over all steps
(``bilayer.py``): dW_hh = Σ_t dhp_tᵀ h_{t-1}, dW_ih = Σ_t dxp_tᵀ x_t.

A sequence's final-state gradient enters at its last step: the carried
gradient ``dh`` (D, B, H) starts as d(final), and rows that are not yet
active (t ≥ len_b, going backward) are left untouched until they are.
Equations: docs/derivation.md §2–3.
"""

from __future__ import annotations

import torch

Cache = dict[str, torch.Tensor]


def offsets(sizes: list[int]) -> list[int]:
    """Start row of each step's block: off_t = Σ_{s<t} sizes[s]."""
    result, total = [], 0
    for n in sizes:
        result.append(total)
        total += n
    return result


def _previous(out: torch.Tensor, h0: torch.Tensor, starts: list[int], t: int, n: int) -> torch.Tensor:
    """h_{t-1} of the first n sequences: (D, n, H), h0 at t = 0."""
    return h0[:, :n] if t == 0 else out[:, starts[t - 1] : starts[t - 1] + n]


_ONE = torch.ones(())


def _one_minus_square(a: torch.Tensor) -> torch.Tensor:
    """1 - a² (the derivative of tanh at its output a)."""
    return torch.addcmul(_ONE.to(a), a, a, value=-1)


def _tanh(a: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """tanh(a) = 2σ(2a) - 1, written to ``out`` (which may be ``a``): for ``out`` a column block
    of a gate buffer, where torch's CPU tanh runs element by element and its sigmoid is vectorised."""
    return torch.mul(a, 2, out=out).sigmoid_().mul_(2).sub_(1)


def _sigmoid_slope(s: torch.Tensor) -> torch.Tensor:
    """s (1 - s) (the derivative of σ at its output s)."""
    return torch.addcmul(s, s, s, value=-1)


# ----------------------------------------------------------------------------- Elman


def rnn_forward(
    xp: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor, sizes: list[int], relu: bool = False
) -> tuple[torch.Tensor, Cache]:
    """h_t = φ(xp_t + h_{t-1} W_hhᵀ),  φ = tanh or relu (b_hh is folded into xp).

    xp: (D, N, H); h0: (D, B, H); w_hh: (D, H, H) -> out (D, N, H), cache
    """
    out = xp.new_empty(xp.shape[0], xp.shape[1], h0.shape[2])
    w = w_hh.transpose(1, 2)
    starts, h = offsets(sizes), h0
    for t, n in enumerate(sizes):
        rows = slice(starts[t], starts[t] + n)
        pre = torch.baddbmm(xp[:, rows], h[:, :n], w)  # (D, n, H)
        h = out[:, rows]
        torch.clamp(pre, min=0, out=h) if relu else torch.tanh(pre, out=h)
    return out, {"out": out}


def rnn_backward(
    dout: torch.Tensor,
    dh_final: torch.Tensor,
    cache: Cache,
    h0: torch.Tensor,
    w_hh: torch.Tensor,
    sizes: list[int],
    relu: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
    """da_t = (dout_t + dh_t) ⊙ φ'(a_t),  dh_{t-1} = da_t W_hh;  dxp = dhp = da.

    φ' = 1 - h_t² (tanh) or [h_t > 0] (relu). dout: (D, N, H); dh_final: (D, B, H)
    -> dxp (D, N, H), dhp (the same tensor), dh0 (D, B, H), None
    """
    out, starts = cache["out"], offsets(sizes)
    da = torch.empty_like(out)
    dh = dh_final.clone()
    for t in range(len(sizes) - 1, -1, -1):
        n, rows = sizes[t], slice(starts[t], starts[t] + sizes[t])
        carried = dh[:, :n]
        carried.add_(dout[:, rows])
        h = out[:, rows]
        slope = (h > 0).to(h.dtype) if relu else _one_minus_square(h)
        step = da[:, rows]
        torch.mul(carried, slope, out=step)
        carried.copy_(torch.bmm(step, w_hh))
    return da, da, dh, None


# ----------------------------------------------------------------------------- GRU


def gru_forward(
    xp: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, sizes: list[int]
) -> tuple[torch.Tensor, Cache]:
    """torch's GRU, both directions per step:

        hp = h_{t-1} W_hhᵀ + b_hh = [hr, hz, hn]
        r = σ(xr + hr),  z = σ(xz + hz),  n = tanh(xn + r ⊙ hn),  h_t = n + z ⊙ (h_{t-1} - n)

    xp: (D, N, 3H) = x W_ihᵀ + b_ih; h0: (D, B, H); w_hh: (D, 3H, H); b_hh: (D, 3H)
    -> out (D, N, H), cache with gates (D, N, 4H) = [r, z, n, hn]
    """
    hidden = h0.shape[2]
    out = xp.new_empty(xp.shape[0], xp.shape[1], hidden)
    gates = xp.new_empty(xp.shape[0], xp.shape[1], 4 * hidden)
    w, bias = w_hh.transpose(1, 2), b_hh.unsqueeze(1)
    starts, h = offsets(sizes), h0
    for t, n in enumerate(sizes):
        rows = slice(starts[t], starts[t] + n)
        h = h[:, :n]
        hp = torch.baddbmm(bias, h, w)  # (D, n, 3H)
        g, x = gates[:, rows], xp[:, rows]
        rz, cand = g[..., : 2 * hidden], g[..., 2 * hidden : 3 * hidden]
        torch.add(x[..., : 2 * hidden], hp[..., : 2 * hidden], out=rz).sigmoid_()
        g[..., 3 * hidden :].copy_(hp[..., 2 * hidden :])
        _tanh(torch.addcmul(x[..., 2 * hidden :], rz[..., :hidden], hp[..., 2 * hidden :]), out=cand)
        h = torch.lerp(cand, h, rz[..., hidden:], out=out[:, rows])  # n + z ⊙ (h_{t-1} - n)
    return out, {"out": out, "gates": gates}


def gru_backward(
    dout: torch.Tensor,
    dh_final: torch.Tensor,
    cache: Cache,
    h0: torch.Tensor,
    w_hh: torch.Tensor,
    sizes: list[int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
    """dn = dh ⊙ (1 - z),  dz = dh ⊙ (h_{t-1} - n),  da_n = dn ⊙ (1 - n²),
    da_r = da_n ⊙ hn ⊙ r(1 - r),  da_z = dz ⊙ z(1 - z),
    dxp = [da_r, da_z, da_n],  dhp = [da_r, da_z, da_n ⊙ r],  dh_{t-1} = dh ⊙ z + dhp W_hh.

    dout: (D, N, H); dh_final: (D, B, H) -> dxp (D, N, 3H), dhp (D, N, 3H), dh0 (D, B, H), None
    """
    out, gates, starts = cache["out"], cache["gates"], offsets(sizes)
    hidden = out.shape[2]
    grads = torch.empty_like(gates)  # (D, N, 4H) = [da_r, da_z, da_n ⊙ r, da_n]
    dh = dh_final.clone()
    for t in range(len(sizes) - 1, -1, -1):
        n, rows = sizes[t], slice(starts[t], starts[t] + sizes[t])
        carried = dh[:, :n]
        carried.add_(dout[:, rows])
        g, d = gates[:, rows], grads[:, rows]
        r, z, cand, hn = (g[..., k * hidden : (k + 1) * hidden] for k in range(4))
        da_r, da_z, dhn, da_n = (d[..., k * hidden : (k + 1) * hidden] for k in range(4))
        through_z = carried * z  # dh ⊙ z, the part that skips the cell
        torch.mul(carried - through_z, _one_minus_square(cand), out=da_n)
        torch.mul(da_n, r, out=dhn)
        torch.mul(da_n, hn, out=da_r).mul_(_sigmoid_slope(r))
        h = _previous(out, h0, starts, t, n)
        torch.sub(h, cand, out=da_z).mul_(carried).mul_(_sigmoid_slope(z))
        carried.copy_(torch.baddbmm(through_z, d[..., : 3 * hidden], w_hh))
    dhp = grads[..., : 3 * hidden]
    dxp = torch.cat([grads[..., : 2 * hidden], grads[..., 3 * hidden :]], dim=-1)
    return dxp, dhp, dh, None


# ----------------------------------------------------------------------------- LSTM


def lstm_forward(
    xp: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w_hh: torch.Tensor, sizes: list[int]
) -> tuple[torch.Tensor, Cache]:
    """[i, f, g, o] = [σ, σ, tanh, σ](xp_t + h_{t-1} W_hhᵀ),  c_t = f ⊙ c_{t-1} + i ⊙ g,  h_t = o ⊙ tanh(c_t).

    xp: (D, N, 4H) with b_ih + b_hh folded in; h0, c0: (D, B, H); w_hh: (D, 4H, H)
    -> out (D, N, H), cache with gates (D, N, 4H) after their nonlinearities, c and tanh(c) (D, N, H)
    """
    hidden = h0.shape[2]
    out = xp.new_empty(xp.shape[0], xp.shape[1], hidden)
    cells, tanh_cells = torch.empty_like(out), torch.empty_like(out)
    gates = torch.empty_like(xp)
    w = w_hh.transpose(1, 2)
    starts, h, c = offsets(sizes), h0, c0
    for t, n in enumerate(sizes):
        rows = slice(starts[t], starts[t] + n)
        pre = torch.baddbmm(xp[:, rows], h[:, :n], w)  # (D, n, 4H)
        g = gates[:, rows]
        pre[..., 2 * hidden : 3 * hidden].mul_(2)  # one σ for all four gates: tanh(a) = 2σ(2a) - 1
        torch.sigmoid(pre, out=g)
        g[..., 2 * hidden : 3 * hidden].mul_(2).sub_(1)
        new_c = cells[:, rows]
        torch.mul(g[..., hidden : 2 * hidden], c[:, :n], out=new_c).addcmul_(
            g[..., :hidden], g[..., 2 * hidden : 3 * hidden]
        )
        h = out[:, rows]
        torch.mul(torch.tanh(new_c, out=tanh_cells[:, rows]), g[..., 3 * hidden :], out=h)
        c = new_c
    return out, {"out": out, "gates": gates, "cells": cells, "tanh_cells": tanh_cells}


def lstm_backward(
    dout: torch.Tensor,
    dh_final: torch.Tensor,
    dc_final: torch.Tensor,
    cache: Cache,
    h0: torch.Tensor,
    c0: torch.Tensor,
    w_hh: torch.Tensor,
    sizes: list[int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """do = dh ⊙ tanh(c_t),  dc = dc_t + dh ⊙ o ⊙ (1 - tanh²(c_t)),
    di = dc ⊙ g,  df = dc ⊙ c_{t-1},  dg = dc ⊙ i,  dc_{t-1} = dc ⊙ f,
    dxp = dhp = [di ⊙ i(1-i), df ⊙ f(1-f), dg ⊙ (1-g²), do ⊙ o(1-o)],  dh_{t-1} = dhp W_hh.

    dout: (D, N, H); dh_final, dc_final: (D, B, H) -> dxp (D, N, 4H), dhp (same), dh0, dc0 (D, B, H)
    """
    gates, cells, starts = cache["gates"], cache["cells"], offsets(sizes)
    hidden = cells.shape[2]
    grads = torch.empty_like(gates)
    dh, dc = dh_final.clone(), dc_final.clone()
    for t in range(len(sizes) - 1, -1, -1):
        n, rows = sizes[t], slice(starts[t], starts[t] + sizes[t])
        carried, carried_c = dh[:, :n], dc[:, :n]
        carried.add_(dout[:, rows])
        g, d = gates[:, rows], grads[:, rows]
        i, f, cand, o = (g[..., k * hidden : (k + 1) * hidden] for k in range(4))
        da_i, da_f, da_g, da_o = (d[..., k * hidden : (k + 1) * hidden] for k in range(4))
        tanh_c = cache["tanh_cells"][:, rows]
        torch.mul(carried, tanh_c, out=da_o)
        carried_c.addcmul_(carried * o, _one_minus_square(tanh_c))
        c_previous = _previous(cells, c0, starts, t, n)
        torch.mul(carried_c, cand, out=da_i)
        torch.mul(carried_c, c_previous, out=da_f)
        torch.mul(carried_c, i, out=da_g)
        slopes = _sigmoid_slope(g)  # σ(1-σ) for i, f, o; the g block becomes 1 - g²
        torch.addcmul(_ONE.to(cand), cand, cand, value=-1, out=slopes[..., 2 * hidden : 3 * hidden])
        d.mul_(slopes)
        carried_c.mul_(f)
        carried.copy_(torch.bmm(d, w_hh))
    return grads, grads, dh, dc
