"""One bidirectional layer as a single ``autograd.Function`` with hand-written BPTT (``hand-bptt``).

The math lives in ``bptt.py``; this module only moves data in and out of its
sorted packed layout and turns the per-step gradients into weight gradients
with one matrix product over all steps:

    xp = X W_ihᵀ + b_ih (+ b_hh)               one bmm for both directions, X: (D, N, I)
    dW_ih = dxpᵀ X,  db_ih = Σ dxp,  dX = dxp W_ih
    dW_hh = dhpᵀ H_prev,  db_hh = Σ dhp        H_prev: (D, N, H), h_{t-1} of every packed row

Direction 0 reads x[b, t], direction 1 reads x[b, len_b - 1 - t]; the output
is scattered back to (B, T, 2H) with zeros at padding, the final states are
read at each sequence's last packed row.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.autograd.function import once_differentiable

from birnn.nn import bptt
from birnn.spec import padding_mask


class Plan(NamedTuple):
    """Index plan of the sorted packed layout for one batch (shared by every layer).

    sizes: active sequences per step, non-increasing (python ints, the loop bounds);
    order: (B,) batch index of each sorted rank; rows: (D·N,) row of x.view(B·T, I)
    read by each packed row of direction 0 then 1; out_rows: (D·N,) row of the output
    viewed as (B·T·D, H); final: (B,) packed row of each sequence's last step (batch
    order); previous: (N,) row of [h0 ; out] holding h_{t-1} (h0 rows first).
    """

    sizes: list[int]
    order: torch.Tensor
    rows: torch.Tensor
    out_rows: torch.Tensor
    final: torch.Tensor
    previous: torch.Tensor
    batch: int
    steps: int


def make_plan(lengths: torch.Tensor | None, batch: int, steps: int, device: torch.device) -> Plan:
    """lengths: (B,) int64 in [1, T] or None (all T) -> Plan."""
    if lengths is None:
        lengths = torch.full((batch,), steps, dtype=torch.int64, device=device)
    sorted_lengths, order = torch.sort(lengths, descending=True, stable=True)
    active = padding_mask(sorted_lengths, steps).T  # (T, B)
    counts = active.sum(1)
    sizes = [n for n in counts.tolist() if n > 0]
    t, rank = active.nonzero(as_tuple=True)  # row-major: step by step, longest sequences first
    b, length = order[rank], sorted_lengths[rank]
    rows = torch.stack([b * steps + t, b * steps + length - 1 - t])  # (D, N)
    out_rows = (rows * 2 + torch.arange(2, device=device)[:, None]).reshape(-1)
    start = torch.cumsum(counts, 0) - counts  # off_t
    last = start[sorted_lengths - 1] + torch.arange(batch, device=device)  # sorted rank -> packed row
    final = torch.empty_like(last)
    final[order] = last
    previous = torch.where(t == 0, rank, batch + start[(t - 1).clamp(min=0)] + rank)
    return Plan(sizes, order, rows.reshape(-1), out_rows, final, previous, batch, steps)


def _forward(cell: str, xp, h0, c0, w_hh, b_hh, sizes):
    if cell == "lstm":
        return bptt.lstm_forward(xp, h0, c0, w_hh, sizes)
    if cell == "gru":
        return bptt.gru_forward(xp, h0, w_hh, b_hh, sizes)
    return bptt.rnn_forward(xp, h0, w_hh, sizes, relu=cell == "rnn_relu")


def _backward(cell: str, dout, dh, dc, cache, h0, c0, w_hh, sizes):
    if cell == "lstm":
        return bptt.lstm_backward(dout, dh, dc, cache, h0, c0, w_hh, sizes)
    if cell == "gru":
        return bptt.gru_backward(dout, dh, cache, h0, w_hh, sizes)
    return bptt.rnn_backward(dout, dh, cache, h0, w_hh, sizes, relu=cell == "rnn_relu")


class BiLayerFunction(torch.autograd.Function):
    """(x (B, T, I), h0 (D, B, H), c0 or None, w_ih (D, G·H, I), w_hh (D, G·H, H), b_ih, b_hh (D, G·H))
    -> out (B, T, D·H) zero at padding, h_final (D, B, H), c_final (D, B, H) (LSTM; else h_final again).
    """

    @staticmethod
    def forward(ctx, cell, plan, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        directions, hidden = w_hh.shape[0], w_hh.shape[2]
        sizes, total = plan.sizes, plan.rows.shape[0] // 2
        inputs = x.reshape(-1, x.shape[-1]).index_select(0, plan.rows).view(directions, total, -1)  # (D, N, I)
        bias = b_ih if cell == "gru" else b_ih + b_hh
        xp = torch.baddbmm(bias.unsqueeze(1), inputs, w_ih.transpose(1, 2))  # (D, N, G·H)
        h0s = h0.index_select(1, plan.order)
        c0s = c0.index_select(1, plan.order) if cell == "lstm" else None
        packed, cache = _forward(cell, xp, h0s, c0s, w_hh, b_hh, sizes)
        out = packed.new_zeros(plan.batch * plan.steps * directions, hidden)
        out.index_copy_(0, plan.out_rows, packed.reshape(-1, hidden))
        h_final = packed.index_select(1, plan.final)
        c_final = cache["cells"].index_select(1, plan.final) if cell == "lstm" else h_final.new_empty(0)
        ctx.cell, ctx.plan, ctx.cache = cell, plan, cache
        ctx.save_for_backward(inputs, h0s, c0s, w_ih, w_hh)
        if cell != "lstm":
            ctx.mark_non_differentiable(c_final)
        return out.view(plan.batch, plan.steps, directions * hidden), h_final, c_final

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dh_final, dc_final):
        inputs, h0s, c0s, w_ih, w_hh = ctx.saved_tensors
        cell, plan, cache = ctx.cell, ctx.plan, ctx.cache
        directions, hidden = w_hh.shape[0], w_hh.shape[2]
        dpacked = dout.reshape(-1, hidden).index_select(0, plan.out_rows).view(directions, -1, hidden)
        dh = dh_final.index_select(1, plan.order)
        dc = dc_final.index_select(1, plan.order) if cell == "lstm" else None
        dxp, dhp, dh0, dc0 = _backward(cell, dpacked, dh, dc, cache, h0s, c0s, w_hh, plan.sizes)
        previous = torch.cat([h0s, cache["out"]], dim=1).index_select(1, plan.previous)  # (D, N, H)
        dw_hh = torch.bmm(dhp.transpose(1, 2), previous)
        db_hh = dhp.sum(1)
        dw_ih = torch.bmm(dxp.transpose(1, 2), inputs)
        db_ih = dxp.sum(1)
        dx = dh0_batch = dc0_batch = None
        needs = ctx.needs_input_grad
        if needs[2]:
            dinputs = torch.bmm(dxp, w_ih)  # (D, N, I)
            dx = dinputs.new_zeros(plan.batch * plan.steps, dinputs.shape[-1])
            dx.index_add_(0, plan.rows, dinputs.reshape(-1, dinputs.shape[-1]))
            dx = dx.view(plan.batch, plan.steps, -1)
        inverse = torch.empty_like(plan.order)
        inverse[plan.order] = torch.arange(plan.batch, device=plan.order.device)
        if needs[3]:
            dh0_batch = dh0.index_select(1, inverse)
        if needs[4] and dc0 is not None:
            dc0_batch = dc0.index_select(1, inverse)
        return None, None, dx, dh0_batch, dc0_batch, dw_ih, dw_hh, db_ih, db_hh


def bidirectional_layer(
    cell: str,
    x: torch.Tensor,
    plan: Plan,
    h0: torch.Tensor,
    c0: torch.Tensor | None,
    forward_weights: list[torch.Tensor],
    backward_weights: list[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Both directions of one layer.

    x: (B, T, I); h0, c0: (2, B, H) [forward, backward]; weights: [W_ih (G·H, I), W_hh (G·H, H),
    b_ih, b_hh (G·H,)] per direction (biases optional)
    -> out (B, T, 2H) zero at padding, h_final (2, B, H), c_final (2, B, H) or None
    """
    stacked = [torch.stack(pair) for pair in zip(forward_weights, backward_weights, strict=True)]
    if len(stacked) == 2:
        zeros = stacked[1].new_zeros(2, stacked[1].shape[1])
        stacked += [zeros, zeros]
    out, h_final, c_final = BiLayerFunction.apply(cell, plan, x, h0, c0, *stacked)
    return out, h_final, c_final if cell == "lstm" else None
