"""`Recurrent(cell)`: run any recurrent cell over time, honouring sequence lengths.

A cell maps one step ``(x_t (B, I), state) -> state`` where ``state`` is a
tensor (B, H) or a tuple whose first element is the output h (B, H), as
``nn.RNNCell``, ``nn.GRUCell`` and ``nn.LSTMCell`` do; ``state=None`` asks the
cell for its own initial state. Past each sequence's end the state is frozen:

    s_t = cell(x_t, s_{t-1})  if t < lengths[b]   else   s_{t-1}
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from birnn.nn.functional import check_sequence_input
from birnn.spec import padding_mask


def _output(state: Any) -> torch.Tensor:
    return state[0] if isinstance(state, tuple) else state


def _select(keep: torch.Tensor, new: Any, old: Any) -> Any:
    """keep: (B, 1) bool; elementwise choice for a tensor or a tuple of tensors."""
    if isinstance(new, tuple):
        return tuple(torch.where(keep, n, o) for n, o in zip(new, old, strict=True))
    return torch.where(keep, new, old)


class Recurrent(nn.Module):
    """A thin shell that turns a cell into a sequence module with torch's calling convention.

    ``Recurrent(cell)(x (B, T, I), state=None, lengths=None) -> (out (B, T, H), final state)``;
    out is zero at padding; final is the state after x[b, lengths[b] - 1].
    """

    def __init__(self, cell: nn.Module, hidden_size: int | None = None, input_size: int | None = None) -> None:
        super().__init__()
        if not isinstance(cell, nn.Module):
            raise TypeError(f"cell must be an nn.Module mapping (x_t, state) -> state; got {type(cell).__name__}")
        self.cell = cell
        self.hidden_size = hidden_size if hidden_size is not None else getattr(cell, "hidden_size", None)
        self.input_size = input_size if input_size is not None else getattr(cell, "input_size", None)
        if self.hidden_size is None:
            raise ValueError("hidden_size is required: the cell has no hidden_size attribute")

    def forward(
        self, x: torch.Tensor, state: Any = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Any]:
        lengths = check_sequence_input(x, lengths, self.input_size, self)
        batch, steps, _ = x.shape
        valid = None if lengths is None else padding_mask(lengths, steps)
        outputs = []
        for t in range(steps):
            new = self.cell(x[:, t], state)
            state = new if valid is None or state is None else _select(valid[:, t, None], new, state)
            outputs.append(_output(new))
        out = torch.stack(outputs, dim=1)  # (B, T, H)
        if valid is not None:
            out = out * valid[..., None]
        return out, state
