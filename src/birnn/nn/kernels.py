"""Calls into torch's fused recurrent kernels (oneDNN/cuDNN) on padded or packed input.

These are the same ATen ops that ``nn.LSTM``/``nn.GRU``/``nn.RNN`` call, taking
the weights as a flat list in torch's order (per layer and direction:
weight_ih, weight_hh, bias_ih, bias_hh). Shapes: x (B, T, I); hidden states
(L·D, B, H) with D = 2 when ``bidirectional``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from birnn.nn.deferred import Deferred
from birnn.nn.functional import last_valid, lstm_cell_state

_OPS: dict[str, Any] = {"lstm": torch.lstm, "gru": torch.gru, "rnn_tanh": torch.rnn_tanh, "rnn_relu": torch.rnn_relu}


class LSTMState(NamedTuple):
    """An LSTM's state: hidden and cell state, each (L, B, H) (or (B, H) for one step).

    A plain pair, so ``nn.LSTM`` accepts it as ``hx``.
    """

    h: torch.Tensor
    c: torch.Tensor


State = torch.Tensor | LSTMState


def zero_state(cell: str, layers: int, batch: int, hidden: int, like: torch.Tensor) -> State:
    """Zero initial state (L·D, B, H), a pair (h, c) for LSTMs."""
    h = like.new_zeros(layers, batch, hidden)
    return LSTMState(h, h.clone()) if cell == "lstm" else h


def _split(cell: str, result: tuple) -> tuple[torch.Tensor, State]:
    if cell == "lstm":
        output, h, c = result
        return output, LSTMState(h, c)
    output, h = result
    return output, h


def run_padded(
    cell: str,
    x: torch.Tensor,
    state: State,
    weights: list[torch.Tensor],
    layers: int,
    dropout: float,
    training: bool,
    bidirectional: bool,
) -> tuple[torch.Tensor, State]:
    """One fused call over every step of a padded batch. -> output (B, T, D·H), final (L·D, B, H)."""
    has_biases = len(weights) == 4 * layers * (2 if bidirectional else 1)
    result = _OPS[cell](x, state, weights, has_biases, layers, dropout, training, bidirectional, True)
    return _split(cell, result)


def _permute(state: State, index: torch.Tensor) -> State:
    if isinstance(state, tuple):
        return LSTMState(*(s.index_select(1, index) for s in state))
    return state.index_select(1, index)


def run_packed(
    cell: str,
    x: torch.Tensor,
    lengths: torch.Tensor,
    state: State,
    weights: list[torch.Tensor],
    layers: int,
    dropout: float,
    training: bool,
    bidirectional: bool,
) -> tuple[torch.Tensor, State]:
    """One fused call on packed input: exact final states for every length.

    -> output (B, T, D·H) with zeros at padding, final (L·D, B, H) after each
    sequence's last valid step (forward) or its first step (reverse direction).
    """
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    has_biases = len(weights) == 4 * layers * (2 if bidirectional else 1)
    assert packed.sorted_indices is not None and packed.unsorted_indices is not None  # enforce_sorted=False
    state = _permute(state, packed.sorted_indices)
    result = _OPS[cell](
        packed.data, packed.batch_sizes, state, weights, has_biases, layers, dropout, training, bidirectional
    )
    data, final = _split(cell, result)
    repacked = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
    output, _ = pad_packed_sequence(repacked, batch_first=True, total_length=x.shape[1])
    return output, _permute(final, packed.unsorted_indices)


def run_direction(
    cell: str,
    x: torch.Tensor,
    lengths: torch.Tensor | None,
    state: State,
    weights: list[torch.Tensor],
    layers: int,
    dropout: float,
    training: bool,
    packed: bool = False,
) -> tuple[torch.Tensor, State]:
    """One direction left to right over a padded batch, with exact final states.

    x: (B, T, I); lengths: (B,) int64 or None (all T); state: (L, B, H), a pair for LSTMs
    -> out (B, T, H), anything at padding (callers zero it after the merge); final (L, B, H)
    after each sequence's last valid step (for an LSTM a pair, whose c may be a ``Deferred``).

    ``packed``: one packed call on varying lengths, which skips the padding. Otherwise
    trailing padding cannot reach a valid step, so one padded call gives every
    valid output, and the final h is the output at lengths-1. For stacked layers
    the lower layers' finals stay inside the fused call, so those always run packed. An
    LSTM's cell state after step lengths-1 is recomputed from the outputs
    (``lstm_cell_state``, two GEMMs over the valid tokens) when it is first read:
    ``c`` is a ``Deferred``, resolved by ``Final``.
    """
    args = (weights, layers, dropout, training, False)
    if lengths is None:
        return run_padded(cell, x, state, *args)
    if layers > 1 or packed:
        return run_packed(cell, x, lengths, state, *args)
    out, _ = run_padded(cell, x, state, *args)
    h = last_valid(out, lengths).unsqueeze(0)  # (1, B, H)
    if cell != "lstm":
        return out, h
    h0, c0 = state[0][0], state[1][0]
    c = Deferred(lambda: lstm_cell_state(x, out, h0, c0, weights, lengths).unsqueeze(0))
    return out, LSTMState(h, c)  # type: ignore[arg-type]  # resolved by Final when read
