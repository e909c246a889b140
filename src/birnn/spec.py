"""Facts both engines share: cells, merges, torch's parameter names, shapes and initialisation,
constructor validation, sequence lengths and the padding mask.

Nothing here computes a network. ``birnn.nn`` (PyTorch) and ``birnn.reference``
(NumPy) build the same stack from these facts, so that a ``state_dict`` moves
between them and ``torch.nn.LSTM(bidirectional=True)`` unchanged.

A bidirectional stack of L layers has, per layer l and direction suffix
s ∈ {"", "_reverse"} (torch's names, G gates, H_s units of that direction):

    weight_ih_l{l}{s}: (G·H_s, I_l)     weight_hh_l{l}{s}: (G·H_s, H_s)
    bias_ih_l{l}{s}:   (G·H_s,)         bias_hh_l{l}{s}:   (G·H_s,)

with I_0 the input size and I_{l+1} the merged width of layer l; every entry is
drawn from U(-1/√H_s, 1/√H_s), as torch initialises its recurrent modules.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

CELL_ALIASES = {"lstm": "lstm", "gru": "gru", "rnn": "rnn_tanh", "rnn_tanh": "rnn_tanh", "rnn_relu": "rnn_relu"}
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
MERGES = ("concat", "sum", "mul", "ave")
DIRECTIONS = ("", "_reverse")
WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def cell_name(cell: str) -> str:
    """The canonical cell name ('rnn' is 'rnn_tanh'); ValueError for an unknown cell."""
    if cell not in CELL_ALIASES:
        raise ValueError(f"cell must be one of {sorted(CELL_ALIASES)}; got {cell!r}")
    return CELL_ALIASES[cell]


def check_positive(**sizes: Any) -> None:
    """Every keyword must be a positive integer; the error names the first that is not."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")


def check_merge(merge: Any, forward_size: int, backward_size: int) -> None:
    """Reject unknown merge names and elementwise merges of directions of unequal size.

    None (the pair) and callables are accepted; they are the torch engine's business.
    """
    if merge is None or callable(merge):
        return
    if merge not in MERGES:
        raise ValueError(f"merge must be one of {MERGES}, None or a callable; got {merge!r}")
    if merge != "concat" and forward_size != backward_size:
        raise ValueError(
            f"merge={merge!r} needs directions of equal size; got forward {forward_size}, "
            f"backward {backward_size} (use merge='concat')"
        )


def merged_size(merge: Any, forward_size: int, backward_size: int) -> int | None:
    """Feature width of the merged output; None when unknown (a callable) or a pair (None)."""
    if merge == "concat":
        return forward_size + backward_size
    if merge in ("sum", "mul", "ave"):
        return forward_size
    return None


@dataclass(frozen=True)
class StackSpec:
    """A validated bidirectional stack: the constructor arguments both engines accept.

    ``StackSpec.build(input_size, hidden_size, num_layers, cell, merge, dropout,
    backward_hidden_size, bias)`` checks every argument and normalises the cell name.
    """

    input_size: int
    hidden_size: int
    num_layers: int
    cell: str
    merge: Any
    dropout: float
    backward_hidden_size: int
    bias: bool

    @classmethod
    def build(
        cls,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "lstm",
        merge: Any = "concat",
        dropout: float = 0.0,
        backward_hidden_size: int | None = None,
        bias: bool = True,
    ) -> StackSpec:
        canonical = cell_name(cell)
        check_positive(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        backward = hidden_size if backward_hidden_size is None else backward_hidden_size
        check_positive(backward_hidden_size=backward)
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout must lie in [0, 1); got {dropout!r}")
        check_merge(merge, hidden_size, backward)
        if num_layers > 1 and merged_size(merge, hidden_size, backward) is None:
            raise ValueError("stacked layers need merge 'concat', 'sum', 'mul' or 'ave' to size the next layer")
        return cls(int(input_size), int(hidden_size), int(num_layers), canonical, merge, float(dropout), int(backward),
                   bool(bias))

    @property
    def gates(self) -> int:
        return GATES[self.cell]

    def direction_size(self, suffix: str) -> int:
        """H of the direction named by its suffix ("" forward, "_reverse" backward)."""
        return self.backward_hidden_size if suffix == "_reverse" else self.hidden_size

    @property
    def output_size(self) -> int:
        """Width of the top layer's output: always concatenated at the top unless merged elementwise."""
        return merged_size(self.merge, self.hidden_size, self.backward_hidden_size) or (
            self.hidden_size + self.backward_hidden_size
        )

    def layer_input_size(self, layer: int) -> int:
        if layer == 0:
            return self.input_size
        return merged_size(self.merge, self.hidden_size, self.backward_hidden_size) or 0

    def parameter_names(self, layer: int, suffix: str) -> list[str]:
        """torch's names of one layer and direction, in torch's flat-weights order."""
        names = WEIGHT_NAMES if self.bias else WEIGHT_NAMES[:2]
        return [f"{name}_l{layer}{suffix}" for name in names]

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter's name and shape, layer by layer, forward before reverse (the module docstring)."""
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(self.num_layers):
            for suffix in DIRECTIONS:
                size, width = self.direction_size(suffix), self.layer_input_size(layer)
                rows = self.gates * size
                for name, shape in zip(
                    self.parameter_names(layer, suffix), ((rows, width), (rows, size), (rows,), (rows,)), strict=False
                ):
                    shapes[name] = shape
        return shapes

    def init_bound(self, name: str) -> float:
        """1/√H of the direction a parameter belongs to: entries are drawn from U(-bound, bound)."""
        return 1.0 / math.sqrt(self.direction_size("_reverse" if name.endswith("_reverse") else ""))


def check_lengths(lengths: Any, batch: int, steps: int, name: str = "lengths") -> np.ndarray:
    """Validate sequence lengths and return them as an int64 NumPy array.

    lengths: (B,) integers in [1, T] (NumPy, torch or a list) -> (B,) int64.
    """
    if hasattr(lengths, "detach"):  # a torch tensor on any device; spec imports no framework
        if getattr(lengths, "is_meta", False):
            raise ValueError(f"{name} must hold values; got a tensor on the meta device (shape only)")
        lengths = lengths.detach().cpu().numpy()
    arr = np.asarray(lengths)
    if arr.ndim != 1 or arr.shape[0] != batch:
        raise ValueError(f"{name} must have shape (B,) = ({batch},), one length per sequence; got {arr.shape}")
    if arr.size and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must hold integers; got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 1 or arr.max() > steps):
        raise ValueError(f"{name} must lie in [1, T={steps}]; got min {int(arr.min())}, max {int(arr.max())}")
    return arr


def padding_mask(lengths: Any, steps: int) -> Any:
    """lengths: (B,) -> (B, T) bool, True at valid positions t < lengths[b].

    The same function for NumPy arrays and torch tensors (on the tensor's device):
    the positions 0..T-1 are made by the array's own library.
    """
    if hasattr(lengths, "new_ones"):  # a torch tensor; spec imports no framework
        positions = lengths.new_ones(steps).cumsum(0) - 1
    else:
        lengths = np.asarray(lengths)
        positions = np.arange(steps)
    return positions[None, :] < lengths[:, None]


def available_memory() -> int | None:
    """Bytes a new allocation may take now: Linux's MemAvailable (else the free physical pages),
    capped by the address-space limit (``ulimit -v``); None when the system does not say."""
    found: int | None = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        found = None
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            found = None
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY and limit > 0:
            found = limit if found is None else min(found, limit)
    except (ImportError, ValueError, OSError):
        pass
    return found


def format_bytes(count: float) -> str:
    """1536 -> '1.5 KiB'; binary units up to EiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(count) < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} EiB"


def check_memory(needed: int, what: str, available: int | None = None) -> None:
    """Refuse up front what cannot be allocated: ValueError "``what`` needs N; M available".

    ``available`` defaults to ``available_memory()``; when that is unknown nothing is refused.
    """
    available = available_memory() if available is None else available
    if available is not None and needed > available:
        raise ValueError(
            f"{what} needs {format_bytes(needed)} of memory; {format_bytes(available)} is available"
        )
