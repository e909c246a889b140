"""`Bidirectional`: two recurrent modules over the same padded batch, one reading right to left.

    →h_t = f(x_t, →h_{t-1})                       (the forward module on x)
    ←h_t = g(x_t, ←h_{t+1})                       (the backward module on reverse_padded(x))
    out_t = merge(→h_t, ←h_t)

The backward module reads each sequence from its last real token
(``reverse_padded``), never from padding. A one-layer torch module on varying
lengths runs as one padded call or one packed call (which skips the padding),
whichever measured faster for its configuration (``direction_kernel``). The
final states are the forward state after x[b, lengths[b]-1] and the backward
state after x[b, 0], and ``summary`` = [→h_final ; ←h_final] is the
whole-sequence encoding (not ``out[:, -1]``, whose backward half has seen one
token).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
from torch import nn

from birnn.nn import kernels, tuning
from birnn.nn.deferred import Deferred, resolve
from birnn.nn.functional import Merge, check_sequence_input, merge_then_zero, reversal_rows, reverse_rows
from birnn.nn.kernels import LSTMState
from birnn.nn.recurrent import Recurrent
from birnn.spec import cell_name, check_merge

__all__ = ["DIRECTION_KERNELS", "BiOutput", "Bidirectional", "Final", "LSTMState", "direction_kernel", "run_direction"]

DIRECTION_KERNELS = ("padded", "packed")


class Final:
    """Final states of the two directions, each in its module's own convention (what it takes as initial state).

    ``nn.RNN``/``nn.GRU``: (L, B, H); ``nn.LSTM`` and ``BiRNN(cell="lstm")``: ``LSTMState(h, c)`` of
    (L, B, H) each; ``Recurrent(cell)``: the cell's state, e.g. (h, c) of (B, H) for ``nn.LSTMCell``.

    A pair: ``fwd, bwd = final`` and ``final[0]`` work. States that cost extra work on a padded
    batch (an LSTM's cell state behind a fused kernel, ``kernels.run_direction``) are computed
    when first read (``deferred``), so a caller that reads only the output never pays for them.
    """

    __slots__ = ("_fwd", "_bwd")

    def __init__(self, fwd: Any, bwd: Any) -> None:
        self._fwd, self._bwd = fwd, bwd

    @property
    def fwd(self) -> Any:
        self._fwd = resolve(self._fwd)
        return self._fwd

    @property
    def bwd(self) -> Any:
        self._bwd = resolve(self._bwd)
        return self._bwd

    def top_hidden(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The top layer's final hidden state of each direction, (B, Hf) and (B, Hb); an LSTM's
        deferred cell state stays uncomputed."""
        return _top_hidden(self._fwd), _top_hidden(self._bwd)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.fwd, self.bwd))

    def __getitem__(self, index: int) -> Any:
        return (self.fwd, self.bwd)[index]

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:
        return f"Final(fwd={self.fwd!r}, bwd={self.bwd!r})"


class BiOutput(NamedTuple):
    """``out, (final_fwd, final_bwd) = bi(x, lengths)``; ``.summary`` is [→h_final ; ←h_final]."""

    output: Any
    final: Final

    @property
    def summary(self) -> torch.Tensor:
        """(B, Hf + Hb): the top layer's final forward and backward hidden states."""
        return torch.cat(self.final.top_hidden(), dim=-1)


def _top_hidden(state: Any) -> torch.Tensor:
    """The top layer's h of a final state; a deferred c in a pair is left alone."""
    state = resolve(state) if isinstance(state, Deferred) else state
    h = resolve(state[0]) if isinstance(state, tuple) else state
    return h[-1] if h.dim() == 3 else h


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
        reset = getattr(child, "reset_parameters", None)
        if callable(reset):
            reset()
    return clone


def run_direction(
    module: Any, x: torch.Tensor, lengths: torch.Tensor | None, initial: Any, kernel: str = "padded"
) -> tuple[torch.Tensor, Any]:
    """Run one unidirectional module left to right. -> out (B, T, H), final state.

    ``out`` may hold anything at padding positions: the caller zeroes them after
    the merge (``merge_then_zero``). nn.RNNBase modules run torch's fused kernel
    (``kernels.run_direction``) as one padded or, with ``kernel="packed"``, one packed
    call, and return torch's final (L, B, H), a pair for LSTMs.
    """
    if isinstance(module, Recurrent):
        return module(x, initial, lengths)
    cell = cell_name(module.mode.lower())
    layers = module.num_layers
    if initial is None:
        state = kernels.zero_state(cell, layers, x.shape[0], module.hidden_size, x)
    else:
        state = _with_layer_dim(initial)
    weights = module._flat_weights
    return kernels.run_direction(
        cell, x, lengths, state, weights, layers, module.dropout, module.training, packed=kernel == "packed"
    )


def direction_kernel(module: Any, x: torch.Tensor, lengths: torch.Tensor | None) -> tuple[str, str]:
    """(kernel, reason) for one direction's call on x (B, T, I): "padded" or "packed".

    The two differ only for a one-layer torch module on varying lengths (stacked layers
    run packed either way, equal lengths padded); there, on CPU, both are timed the first
    time the configuration is seen (``tuning.choose``, cached like ``BiRNN``'s choices),
    forward and backward when autograd is on, and the faster is kept.
    """
    if isinstance(module, Recurrent):
        return "padded", "a Recurrent module runs its cell step by step"
    if lengths is None:
        return "padded", "every sequence has length T: one padded call"
    if module.num_layers > 1:
        return "packed", "stacked layers run packed (the lower layers' final states)"
    if not tuning.may_measure(x):
        return "padded", "kernels are not measured here: one padded call"
    weights = [p for p in module.parameters() if p.requires_grad]
    training = torch.is_grad_enabled() and (x.requires_grad or bool(weights))
    key = tuning.Key(
        cell_name(module.mode.lower()), module.input_size, module.hidden_size, 0, 1, "one-direction",
        str(x.dtype).removeprefix("torch."), training, training and x.requires_grad, True,
        tuning.bucket(x.shape[0]), tuning.bucket(x.shape[1]), torch.get_num_threads(),
    )  # fmt: skip
    probe = x.detach().requires_grad_(key.input_grad)
    inputs = [*weights, probe] if key.input_grad else weights

    def step(kernel: str) -> None:
        output, _ = run_direction(module, probe, lengths, None, kernel)
        if training:
            torch.autograd.grad(output.sum(), inputs, allow_unused=True)

    decision = tuning.choose(key, DIRECTION_KERNELS, step)
    return decision.kernel, f"fastest for {key.text()}: {decision.describe()}"


def _with_layer_dim(state: Any) -> Any:
    """An initial state given per sequence (B, H) as torch's (1, B, H); pairs elementwise."""
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
    with output (B, T, D), zero at padding, and ``Final(fwd, bwd)`` in each module's
    own state convention, so that a final can be handed to the same kind of module.

    ``kernels`` holds the last call's kernel of each direction (``direction_kernel``),
    ``explain()`` why; ``force_kernel`` ("padded" or "packed") fixes both.
    """

    def __init__(self, forward: Any, backward: Any = None, merge: Merge = "concat") -> None:
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
        self.force_kernel: str | None = None
        self.kernels: tuple[str, str] | None = None  # (forward, backward) of the last call
        self._reasons = ("", "")

    def explain(self) -> str:
        """Each direction's kernel in the last call and why: the measured times, or the rule."""
        if self.kernels is None:
            return "not called yet"
        return "; ".join(
            f"{name}: {kernel}: {reason}"
            for name, kernel, reason in zip(("forward", "backward"), self.kernels, self._reasons, strict=True)
        )

    def _kernel(self, module: Any, x: torch.Tensor, lengths: torch.Tensor | None) -> tuple[str, str]:
        if self.force_kernel is None or isinstance(module, Recurrent):
            return direction_kernel(module, x, lengths)
        if self.force_kernel not in DIRECTION_KERNELS:
            raise ValueError(f"force_kernel must be None or one of {DIRECTION_KERNELS}; got {self.force_kernel!r}")
        return self.force_kernel, f"forced by force_kernel={self.force_kernel!r}"

    @property
    def input_size(self) -> int | None:
        size: int | None = getattr(self.forward_layer, "input_size", None)
        return size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None, initial: Any = None) -> BiOutput:
        lengths = check_sequence_input(x, lengths, self.input_size, self)  # None when all T
        initial_fwd, initial_bwd = (None, None) if initial is None else initial
        reversal = reversal_rows(lengths, x.shape[1])  # one index for both reversals
        reversed_x = reverse_rows(x, reversal)
        (kernel_fwd, why_fwd), (kernel_bwd, why_bwd) = (
            self._kernel(self.forward_layer, x, lengths),
            self._kernel(self.backward_layer, reversed_x, lengths),
        )
        self.kernels, self._reasons = (kernel_fwd, kernel_bwd), (why_fwd, why_bwd)
        out_fwd, final_fwd = run_direction(self.forward_layer, x, lengths, initial_fwd, kernel_fwd)
        out_rev, final_bwd = run_direction(self.backward_layer, reversed_x, lengths, initial_bwd, kernel_bwd)
        out_bwd = reverse_rows(out_rev, reversal)
        return BiOutput(merge_then_zero(self.merge, out_fwd, out_bwd, lengths), Final(final_fwd, final_bwd))
