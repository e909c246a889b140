"""Calls into torch's fused recurrent kernels (oneDNN/cuDNN) on padded or packed input.

These are the same ATen ops that ``nn.LSTM``/``nn.GRU``/``nn.RNN`` call, taking
the weights as a flat list in torch's order (per layer and direction:
weight_ih, weight_hh, bias_ih, bias_hh). Shapes: x (B, T, I); hidden states
(L·D, B, H) with D = 2 when ``bidirectional``.
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
_OPS = {"lstm": torch.lstm, "gru": torch.gru, "rnn_tanh": torch.rnn_tanh, "rnn_relu": torch.rnn_relu}

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def zero_state(cell: str, layers: int, batch: int, hidden: int, like: torch.Tensor) -> State:
    """Zero initial state (L·D, B, H), a pair (h, c) for LSTMs."""
    h = like.new_zeros(layers, batch, hidden)
    return (h, h.clone()) if cell == "lstm" else h


def _split(cell: str, result: tuple) -> tuple[torch.Tensor, State]:
    if cell == "lstm":
        output, h, c = result
        return output, (h, c)
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
        return tuple(s.index_select(1, index) for s in state)  # type: ignore[return-value]
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
    state = _permute(state, packed.sorted_indices)
    result = _OPS[cell](
        packed.data, packed.batch_sizes, state, weights, has_biases, layers, dropout, training, bidirectional
    )
    data, final = _split(cell, result)
    repacked = packed._replace(data=data)
    output, _ = pad_packed_sequence(repacked, batch_first=True, total_length=x.shape[1])
    return output, _permute(final, packed.unsorted_indices)
