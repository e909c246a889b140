"""`BiRNN`: a stack of bidirectional layers with torch's parameter names and fused kernels.

Layer l reads the merged output of layer l-1 (dropout between layers, as
torch). Parameters are named exactly as in ``nn.LSTM(bidirectional=True)``
(``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0`` and the
``_reverse`` twins), so its ``state_dict`` loads into torch's module and back.

Kernels (``KERNELS``; ``explain()`` says which ran and why):

- ``fused``: one bidirectional fused call for the whole stack (every length
  equals T; the directions have equal sizes; the layers are joined by
  concatenation, or there is one layer);
- ``fused-packed``: the same on packed input (varying lengths);
- ``hand-bptt`` (CPU, float32/float64, equal sizes): one ``autograd.Function``
  per layer running both directions in one loop over a sorted packed layout
  (padding is never computed) with hand-written BPTT and weight gradients as
  one GEMM over all steps (``bilayer.py``, ``bptt.py``);
- ``per-direction``: one fused call per layer and direction, the backward one
  on ``reverse_padded`` input (``kernels.run_direction``: exact finals, an
  LSTM's c included); the only kernel for directions of different sizes.

On CPU the kernel is chosen by measurement (``tuning.py``): the first call of
a configuration times every kernel that is correct for it — ``fused`` only
where every length is T — and the fastest is kept, in memory and in a cache
file for later processes. ``BIRNN_KERNEL_TUNING=off``, other devices, and calls
being compiled or traced use a fixed rule instead (``_rule``: fused calls
where they apply, ``hand-bptt`` for GRUs and Elman RNNs on CPU and for LSTM
training on varying lengths). ``force_kernel`` (None or one of ``KERNELS``)
overrides both, for tests and benchmarks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from birnn.nn import bilayer, kernels, tuning
from birnn.nn.bidirectional import BiOutput, Final
from birnn.nn.deferred import Deferred, resolve
from birnn.nn.functional import (
    Merge,
    check_sequence_input,
    merge_directions,
    merge_then_zero,
    reversal_rows,
    reverse_rows,
    zero_padding,
)
from birnn.nn.kernels import LSTMState
from birnn.spec import DIRECTIONS, StackSpec

KERNELS = ("fused", "fused-packed", "per-direction", "hand-bptt")


class BiRNN(nn.Module):
    """Bidirectional RNN/GRU/LSTM stack.

    ``BiRNN(input_size, hidden_size, num_layers=1, cell="lstm", merge="concat", dropout=0.0,
    backward_hidden_size=None, bias=True)``, validated by ``birnn.spec.StackSpec``; call
    ``(x (B, T, I), lengths (B,) = None, initial=None) -> BiOutput(output (B, T, D), Final(fwd, bwd))``
    where fwd and bwd are (L, B, H) per direction (``LSTMState(h, c)`` for LSTMs, which
    ``nn.LSTM`` takes as ``hx``), the state after each sequence's last valid step (forward)
    or its first step (backward).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "lstm",
        merge: Merge = "concat",
        dropout: float = 0.0,
        backward_hidden_size: int | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        spec = StackSpec.build(input_size, hidden_size, num_layers, cell, merge, dropout, backward_hidden_size, bias)
        self.spec = spec
        self.input_size, self.hidden_size, self.num_layers = spec.input_size, spec.hidden_size, spec.num_layers
        self.backward_hidden_size = spec.backward_hidden_size
        self.cell, self.merge, self.dropout, self.bias = spec.cell, spec.merge, spec.dropout, spec.bias
        for name, shape in spec.parameter_shapes().items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape)))
        self.reset_parameters()
        self.kernel = "not run yet"
        self._reason = ""
        self.force_kernel: str | None = None
        self.tuning: tuning.Decision | None = None  # the measurement behind the last call's kernel, if any

    def reset_parameters(self) -> None:
        """U(-1/√H, 1/√H) for every weight, H of its direction, as torch initialises its RNNs."""
        for name, parameter in self.named_parameters():
            bound = self.spec.init_bound(name)
            nn.init.uniform_(parameter, -bound, bound)

    def _weights(self, layer: int, suffix: str) -> list[torch.Tensor]:
        return [getattr(self, name) for name in self.spec.parameter_names(layer, suffix)]

    def explain(self) -> str:
        """Which kernel the last call used and why: the measured times of the candidates, or the rule."""
        return f"{self.kernel}: {self._reason}"

    def candidates(self, lengths: torch.Tensor | None, x: torch.Tensor) -> list[str]:
        """The kernels that compute this call correctly. lengths: (B,) or None (every length T); x: (B, T, I)."""
        if self.hidden_size != self.backward_hidden_size:
            return ["per-direction"]
        result = []
        if self.num_layers == 1 or self.merge == "concat":  # torch's stack can only concatenate
            result.append("fused" if lengths is None else "fused-packed")  # padded fused is wrong on varying lengths
        if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
            result.append("hand-bptt")
        return [*result, "per-direction"]

    def _select(self, lengths: torch.Tensor | None, x: torch.Tensor) -> tuple[str, str]:
        """(kernel, reason): forced, measured (``tuning.choose``) or by the fixed rule."""
        self.tuning = None
        if self.force_kernel is not None:
            return self._forced(lengths)
        rule, reason = self._rule(lengths, x)
        candidates = self.candidates(lengths, x)
        if len(candidates) < 2 or not tuning.may_measure(x):
            return rule, reason
        key, step = self._measurement(lengths, x)
        ordered = [rule, *(kernel for kernel in candidates if kernel != rule)]
        self.tuning = tuning.choose(key, ordered, step)
        return self.tuning.kernel, f"fastest correct kernel for {key.text()}: {self.tuning.describe()}"

    def _measurement(self, lengths: torch.Tensor | None, x: torch.Tensor) -> tuple[tuning.Key, Any]:
        """The tuning key of this call and one step of it (forward, and backward when training) per kernel.

        The step runs on a detached copy of x and takes gradients with ``autograd.grad``
        (no ``.grad`` is touched); the random state (dropout) is restored after it.
        """
        weights = [p for p in self.parameters() if p.requires_grad]
        training = torch.is_grad_enabled() and (x.requires_grad or bool(weights))
        merge = self.merge if isinstance(self.merge, str) else ("none" if self.merge is None else "callable")
        key = tuning.Key(
            self.cell, self.input_size, self.hidden_size, self.backward_hidden_size, self.num_layers, merge,
            str(x.dtype).removeprefix("torch."), training, training and x.requires_grad, lengths is not None,
            tuning.bucket(x.shape[0]), tuning.bucket(x.shape[1]), torch.get_num_threads(),
        )  # fmt: skip
        probe = x.detach().requires_grad_(key.input_grad)
        inputs = [*weights, probe] if key.input_grad else weights

        def step(kernel: str) -> None:
            with torch.random.fork_rng(devices=[]):
                output, _ = self._run(kernel, probe, lengths, None)
                if training:
                    torch.autograd.grad(output.sum(), inputs, allow_unused=True)

        return key, step

    def _rule(self, lengths: torch.Tensor | None, x: torch.Tensor) -> tuple[str, str]:
        """(kernel, reason) by fixed rules, for when kernels are not measured."""
        uniform = lengths is None
        hand = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
        if self.hidden_size != self.backward_hidden_size:
            return "per-direction", "the directions have different hidden sizes"
        if self.num_layers > 1 and self.merge != "concat":
            if hand:
                return "hand-bptt", f"layers are joined by merge={self.merge!r}, which torch's stack cannot do"
            return "per-direction", f"layers are joined by merge={self.merge!r}, which torch's stack cannot do"
        if not hand:
            if uniform:
                return "fused", "every sequence has length T: one bidirectional fused call (cuDNN off CPU)"
            if not torch.is_grad_enabled():
                return "fused-packed", "varying lengths without autograd: packing skips the padding"
            return "per-direction", "varying lengths with autograd off CPU: padded calls + reverse_padded"
        if torch.is_grad_enabled():
            if self.cell != "lstm":
                return "hand-bptt", (
                    f"training a {self.cell} on CPU: torch has no oneDNN kernel for it, and one loop over both "
                    "directions with hand-written BPTT (weight gradients as one GEMM) is faster"
                )
            if not uniform:
                return "hand-bptt", (
                    "training an LSTM on varying lengths on CPU: hand-written BPTT skips the padding and beats "
                    "both the padded oneDNN kernel and packing's backward"
                )
            return "fused", "training an LSTM on equal lengths on CPU: oneDNN's fused LSTM is faster"
        if uniform:
            return "fused", "every sequence has length T: one bidirectional fused call"
        if self.cell in ("rnn_tanh", "rnn_relu"):
            return "hand-bptt", (
                "an Elman RNN on varying lengths without autograd: one loop over both directions on the "
                "sorted packed layout beats torch's packed kernel"
            )
        return "fused-packed", "varying lengths without autograd: packing skips the padding"

    def _forced(self, lengths: torch.Tensor | None) -> tuple[str, str]:
        choice = self.force_kernel
        if choice not in KERNELS:
            raise ValueError(f"force_kernel must be None or one of {KERNELS}; got {choice!r}")
        if choice == "fused" and lengths is not None:
            choice = "fused-packed"
        if choice in ("fused", "fused-packed", "hand-bptt") and self.hidden_size != self.backward_hidden_size:
            raise ValueError(f"force_kernel={choice!r} needs directions of equal size; use 'per-direction'")
        return choice, f"forced by force_kernel={self.force_kernel!r}"

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None, initial: Any = None) -> BiOutput:
        lengths = check_sequence_input(x, lengths, self.input_size, self)  # None when all T
        self.kernel, self._reason = self._select(lengths, x)
        output, final = self._run(self.kernel, x, lengths, initial)
        if self.merge != "concat":  # the directions are zero at padding; a callable may write there
            output = merge_directions(self.merge, output[..., : self.hidden_size], output[..., self.hidden_size :])
            if callable(self.merge):
                output = zero_padding(output, lengths)
        return BiOutput(output, final)

    def _run(self, kernel: str, x: torch.Tensor, lengths: torch.Tensor | None, initial: Any) -> tuple[Any, Final]:
        """One call with ``kernel``. -> output (B, T, Hf+Hb) before the last merge, Final(fwd, bwd)."""
        batch = x.shape[0]
        init_fwd = (
            initial[0]
            if initial is not None
            else kernels.zero_state(self.cell, self.num_layers, batch, self.hidden_size, x)
        )
        init_bwd = (
            initial[1]
            if initial is not None
            else kernels.zero_state(self.cell, self.num_layers, batch, self.backward_hidden_size, x)
        )
        if kernel == "per-direction":
            return self._per_direction(x, lengths, init_fwd, init_bwd)
        if kernel == "hand-bptt":
            return self._hand_bptt(x, lengths, init_fwd, init_bwd)
        return self._fused(x, lengths, init_fwd, init_bwd)

    def _fused(self, x, lengths, init_fwd, init_bwd) -> tuple[torch.Tensor, Final]:
        weights = [w for layer in range(self.num_layers) for s in DIRECTIONS for w in self._weights(layer, s)]
        state = _interleave(init_fwd, init_bwd)
        args = (weights, self.num_layers, self.dropout, self.training, True)
        if lengths is None:
            output, final = kernels.run_padded(self.cell, x, state, *args)
        else:
            output, final = kernels.run_packed(self.cell, x, lengths, state, *args)
        return output, _split_directions(final)

    def _per_direction(self, x, lengths, init_fwd, init_bwd) -> tuple[torch.Tensor, Final]:
        finals_fwd, finals_bwd = [], []
        layer_input = x
        reversal = reversal_rows(lengths, x.shape[1])  # shared by every reversal
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:  # batch-major, so that a seed draws hand-bptt's masks
                layer_input = nn.functional.dropout(layer_input.contiguous(), self.dropout, self.training)
            out_fwd, final_fwd = self._direction(layer_input, lengths, _layer(init_fwd, layer), layer, "")
            reversed_input = reverse_rows(layer_input, reversal)
            out_rev, final_bwd = self._direction(reversed_input, lengths, _layer(init_bwd, layer), layer, "_reverse")
            out_bwd = reverse_rows(out_rev, reversal)
            finals_fwd.append(final_fwd)
            finals_bwd.append(final_bwd)
            merge = "concat" if layer == self.num_layers - 1 else self.merge
            layer_input = merge_then_zero(merge, out_fwd, out_bwd, lengths)
        return layer_input, Final(_stack_layers(finals_fwd), _stack_layers(finals_bwd))

    def _hand_bptt(self, x, lengths, init_fwd, init_bwd) -> tuple[torch.Tensor, Final]:
        plan = bilayer.make_plan(lengths, x.shape[0], x.shape[1], x.device)
        lstm = self.cell == "lstm"
        finals: list[tuple] = []
        layer_input = x
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                layer_input = nn.functional.dropout(layer_input, self.dropout, self.training)
            h0 = torch.stack([(init_fwd[0] if lstm else init_fwd)[layer], (init_bwd[0] if lstm else init_bwd)[layer]])
            c0 = torch.stack([init_fwd[1][layer], init_bwd[1][layer]]) if lstm else None
            out, h, c = bilayer.bidirectional_layer(
                self.cell, layer_input, plan, h0, c0, self._weights(layer, ""), self._weights(layer, "_reverse")
            )
            finals.append((h, c))
            if layer < self.num_layers - 1 and self.merge != "concat":
                out = merge_directions(self.merge, out[..., : self.hidden_size], out[..., self.hidden_size :])
            layer_input = out
        h = torch.stack([f[0] for f in finals], dim=1)  # (2, L, B, H)
        if not lstm:
            return layer_input, Final(h[0], h[1])
        c = torch.stack([f[1] for f in finals], dim=1)
        return layer_input, Final(LSTMState(h[0], c[0]), LSTMState(h[1], c[1]))

    def _direction(self, x, lengths, state, layer: int, suffix: str) -> tuple[torch.Tensor, Any]:
        """One layer, one direction. -> out (B, T, H) (anything at padding), final (1, B, H) or an LSTMState."""
        return kernels.run_direction(self.cell, x, lengths, state, self._weights(layer, suffix), 1, 0.0, self.training)


def _layer(state: Any, layer: int) -> Any:
    """The (1, B, H) slice of layer ``layer`` from an (L, B, H) state or a pair."""
    if isinstance(state, tuple):
        return tuple(s[layer : layer + 1].contiguous() for s in state)
    return state[layer : layer + 1].contiguous()


def _stack_layers(finals: list[Any]) -> Any:
    """Per-layer (1, B, H) finals -> (L, B, H); pairs elementwise."""
    if isinstance(finals[0], tuple):
        return LSTMState(*(_concat_layers(parts) for parts in zip(*finals, strict=True)))
    return _concat_layers(finals)


def _concat_layers(parts: Any) -> Any:
    """torch.cat of per-layer states along dim 0; a ``Deferred`` while any part is one."""
    if any(isinstance(part, Deferred) for part in parts):
        return Deferred(lambda: torch.cat([resolve(part) for part in parts], dim=0))
    return torch.cat(parts, dim=0)


def _interleave(fwd: Any, bwd: Any) -> Any:
    """(L, B, H) per direction -> torch's (L·2, B, H) layout [l0 fwd, l0 bwd, l1 fwd, ...]."""
    if isinstance(fwd, tuple):
        return tuple(_interleave(f, b) for f, b in zip(fwd, bwd, strict=True))
    return torch.stack([fwd, bwd], dim=1).reshape(-1, *fwd.shape[1:])


def _split_directions(state: Any) -> Final:
    """torch's (L·2, B, H) layout -> Final((L, B, H), (L, B, H))."""
    if isinstance(state, tuple):
        h, c = (_split_directions(s) for s in state)
        return Final(LSTMState(h.fwd, c.fwd), LSTMState(h.bwd, c.bwd))
    return Final(state[0::2], state[1::2])
