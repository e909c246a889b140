"""`Bidirectional`: two recurrent modules over the same padded batch, one reading right to left.

    →h_t = f(x_t, →h_{t-1})                       (the forward module on x)
    ←h_t = g(x_t, ←h_{t+1})                       (the backward module on reverse_padded(x))
    out_t = merge(→h_t, ←h_t)

The backward module reads each sequence from its last real token
(``reverse_padded``), never from padding; the final states are the forward
state after x[b, lengths[b]-1] and the backward state after x[b, 0], and
``summary`` = [→h_final ; ←h_final] is the whole-sequence encoding (not
``out[:, -1]``, whose backward half has seen one token).
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import torch
from torch import nn

from birnn.nn import kernels
from birnn.nn.functional import (
    Merge,
    check_merge,
    check_sequence_input,
    last_valid,
    lstm_cell_state,
    merge_then_zero,
    reversal_rows,
    reverse_rows,
)
from birnn.nn.recurrent import Recurrent

_CELLS = {nn.LSTM: "lstm", nn.GRU: "gru"}


class LSTMState:
    """An LSTM state (h, c) that unpacks like a pair; ``c`` may be computed on first access.

    On varying lengths the fast padded path knows every h but not the final c;
    ``c`` is then recomputed from the outputs (``lstm_cell_state``) only if asked for.
    """

    def __init__(self, h: torch.Tensor, c: torch.Tensor | None = None, compute_c: Any = None) -> None:
        self.h = h
        self._c = c
        self._compute_c = compute_c

    @property
    def c(self) -> torch.Tensor:
        if self._c is None:
            self._c = self._compute_c()
        return self._c

    def __iter__(self):
        yield self.h
        yield self.c

    def __getitem__(self, index: int) -> torch.Tensor:
        if index in (0, -2):
            return self.h
        if index in (1, -1):
            return self.c
        raise IndexError(f"an LSTM state holds 2 tensors (h, c); got index {index}")

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:
        return f"LSTMState(h={tuple(self.h.shape)}, c={'pending' if self._c is None else tuple(self._c.shape)})"


def as_state(state: Any) -> Any:
    """Kernel results (h, c) as an LSTMState; plain hidden states unchanged."""
    return LSTMState(*state) if isinstance(state, tuple) else state


class Final(NamedTuple):
    """Final states of the two directions; for LSTMs each is a pair (h, c)."""

    fwd: Any
    bwd: Any


class BiOutput(NamedTuple):
    """``out, (final_fwd, final_bwd) = bi(x, lengths)``; ``.summary`` is [→h_final ; ←h_final]."""

    output: Any
    final: Final

    @property
    def summary(self) -> torch.Tensor:
        """(B, Hf + Hb): the top layer's final forward and backward hidden states."""
        return torch.cat([_top_hidden(self.final.fwd), _top_hidden(self.final.bwd)], dim=-1)


def _top_hidden(state: Any) -> torch.Tensor:
    h = state.h if isinstance(state, LSTMState) else state[0] if isinstance(state, tuple) else state
    return h[-1] if h.dim() == 3 else h


def _cell_name(module: nn.RNNBase) -> str:
    if isinstance(module, nn.RNN):
        return "rnn_" + module.nonlinearity
    return _CELLS[type(module)]


def _check_direction(module: nn.Module, name: str) -> None:
    if isinstance(module, nn.RNNBase):
        if module.bidirectional:
            raise ValueError(
                f"{name} must be unidirectional; got {type(module).__name__}(bidirectional=True) "
                "(Bidirectional builds the reverse direction itself)"
            )
        if not module.batch_first:
            raise ValueError(f"{name} must have batch_first=True; got {type(module).__name__}(batch_first=False)")
        if getattr(module, "proj_size", 0):
            raise ValueError(f"{name}: LSTMs with proj_size are not supported; got proj_size={module.proj_size}")
    elif not isinstance(module, Recurrent):
        raise TypeError(
            f"{name} must be nn.RNN/nn.GRU/nn.LSTM (batch_first=True) or birnn.nn.Recurrent; "
            f"got {type(module).__name__}"
        )


def _fresh_copy(module: nn.Module) -> nn.Module:
    """A deep copy with newly initialised weights."""
    clone = copy.deepcopy(module)
    for child in clone.modules():
        if hasattr(child, "reset_parameters"):
            child.reset_parameters()
    return clone


def _top_layer(state: Any) -> Any:
    """(L, B, H) torch layout -> the top layer (B, H); pairs elementwise."""
    if isinstance(state, tuple):
        return tuple(s[-1] for s in state)
    return state[-1]


def run_direction(
    module: nn.Module, x: torch.Tensor, lengths: torch.Tensor | None, initial: Any
) -> tuple[torch.Tensor, Any]:
    """Run one unidirectional module left to right. -> out (B, T, H), final state.

    ``out`` may hold anything at padding positions: the caller zeroes them after
    the merge (``merge_then_zero``).

    nn.RNNBase modules use torch's fused kernel on the padded batch: trailing
    padding cannot reach valid steps, the final h is the output at lengths-1,
    and an LSTM's final c is recomputed from the outputs when first accessed.
    Packed input is used only for stacked LSTMs (whose lower layers' outputs,
    needed to recompute c, stay inside the fused call): on CPU the padded call
    is as fast or faster even in inference (B=64, T=50, lengths in [10, 50]:
    LSTM H=128 6.9 ms padded vs 7.7 ms packed, H=64 2.9 vs 4.1 ms).
    """
    if isinstance(module, Recurrent):
        return module(x, initial, lengths)
    cell = _cell_name(module)
    layers, batch = module.num_layers, x.shape[0]
    state = initial if initial is not None else kernels.zero_state(cell, layers, batch, module.hidden_size, x)
    state = _with_layer_dim(state)
    weights = module._flat_weights
    args = (weights, layers, module.dropout, module.training, False)
    if lengths is None or bool((lengths == x.shape[1]).all()):
        out, final = kernels.run_padded(cell, x, state, *args)
        return out, as_state(_top_layer(final))
    if cell == "lstm" and layers > 1:
        out, final = kernels.run_packed(cell, x, lengths, state, *args)
        return out, as_state(_top_layer(final))
    out, _ = kernels.run_padded(cell, x, state, *args)
    h = last_valid(out, lengths)
    if cell != "lstm":
        return out, h
    h0, c0 = state[0][0], state[1][0]
    return out, LSTMState(h, compute_c=lambda: lstm_cell_state(x, out, h0, c0, weights, lengths))


def _with_layer_dim(state: Any) -> Any:
    if isinstance(state, tuple):
        return tuple(_with_layer_dim(s) for s in state)
    return state.unsqueeze(0) if state.dim() == 2 else state


class Bidirectional(nn.Module):
    """Make any recurrent module bidirectional.

    forward, backward: unidirectional ``nn.RNN``/``nn.GRU``/``nn.LSTM`` with
    ``batch_first=True`` or ``Recurrent`` modules; they may differ in cell type
    and hidden size. ``backward=None`` copies ``forward`` with fresh weights.
    merge: "concat" | "sum" | "mul" | "ave" | None (return the pair) | callable.

    ``bi(x (B, T, I), lengths (B,) = None, initial=(fwd, bwd)) -> BiOutput``
    with output (B, T, D), zero at padding.
    """

    def __init__(self, forward: nn.Module, backward: nn.Module | None = None, merge: Merge = "concat") -> None:
        super().__init__()
        _check_direction(forward, "forward")
        backward = _fresh_copy(forward) if backward is None else backward
        _check_direction(backward, "backward")
        check_merge(merge, forward.hidden_size, backward.hidden_size)
        if forward.input_size is not None and backward.input_size not in (None, forward.input_size):
            raise ValueError(
                f"forward and backward must read the same input size; got {forward.input_size} "
                f"and {backward.input_size}"
            )
        self.forward_layer = forward
        self.backward_layer = backward
        self.merge = merge

    @property
    def input_size(self) -> int | None:
        return self.forward_layer.input_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None, initial: Any = None) -> BiOutput:
        lengths = check_sequence_input(x, lengths, self.input_size)
        initial_fwd, initial_bwd = (None, None) if initial is None else initial
        out_fwd, final_fwd = run_direction(self.forward_layer, x, lengths, initial_fwd)
        reversal = reversal_rows(lengths, x.shape[1])  # one index for both reversals
        out_rev, final_bwd = run_direction(self.backward_layer, reverse_rows(x, reversal), lengths, initial_bwd)
        out_bwd = reverse_rows(out_rev, reversal)
        return BiOutput(merge_then_zero(self.merge, out_fwd, out_bwd, lengths), Final(final_fwd, final_bwd))
