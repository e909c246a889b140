"""The bidirectional stack in NumPy, with a hand-written backward pass.

Layer l, for the forward (→) and backward (←) direction, each with its own parameters:

    →H = run(X_l),   ←H = reverse_padded(run(reverse_padded(X_l)))
    X_{l+1} = merge(→H, ←H)      concat [→H ; ←H] | sum →H + ←H | mul →H ⊙ ←H | ave (→H + ←H)/2

The two runs are independent until the merge. ``schedule`` says how they share
the machine (schedule.py): "threads" runs each on its own thread (D = 1 each),
"lockstep" advances both in the same loop, stacked on a direction axis D = 2
(``layer.directions_forward``); with different sizes Hf ≠ Hb "lockstep" runs
them one after the other.

Backward through the merge (dM the gradient of the merged output):

    concat: d→H, d←H = split(dM)   sum: dM, dM   mul: dM ⊙ ←H, dM ⊙ →H   ave: dM/2, dM/2

and through the reversal, which is its own inverse: d(input of ←) = reverse_padded(dx of ←).
Parameters are keyed by torch's names (``weight_ih_l0``, ``bias_hh_l1_reverse``, …).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from birnn.reference.cells import GATES
from birnn.reference.inputs import check_input
from birnn.reference.layer import directions_backward, directions_forward, reverse_padded
from birnn.reference.schedule import check_schedule, elementwise_turn, run_jobs

CELLS = {"lstm": "lstm", "gru": "gru", "rnn": "rnn_tanh", "rnn_tanh": "rnn_tanh", "rnn_relu": "rnn_relu"}
MERGES = ("concat", "sum", "mul", "ave")
_TORCH_NAMES = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}


def _merge(merge: str, fwd: np.ndarray, bwd: np.ndarray) -> np.ndarray:
    if merge == "concat":
        return np.concatenate([fwd, bwd], axis=-1)
    if merge == "sum":
        return fwd + bwd
    if merge == "mul":
        return fwd * bwd
    return (fwd + bwd) / 2


def _merge_backward(merge: str, d: np.ndarray, fwd: np.ndarray, bwd: np.ndarray):
    if merge == "concat":
        return d[..., : fwd.shape[-1]], d[..., fwd.shape[-1] :]
    if merge == "sum":
        return d, d
    if merge == "mul":
        return d * bwd, d * fwd
    return d / 2, d / 2


class BiRNN:
    """A NumPy bidirectional RNN/GRU/LSTM stack with backpropagation written out by hand.

    ``out = model.forward(x (B, T, I), lengths (B,) = None)`` -> (B, T, D), zero at padding;
    ``dx, grads = model.backward(dout (B, T, D))`` -> (B, T, I) and {torch name: gradient};
    ``input_grad=False`` skips dx (None), as torch does for an input that needs no gradient.
    ``model.summary()`` is [→h after x[b, len-1] ; ←h after x[b, 0]] of the top layer,
    and ``backward(dout, d_summary=...)`` accepts its gradient too.
    ``schedule``: "threads" | "lockstep" | None (chosen by the number of usable CPUs; schedule.py).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "lstm",
        merge: str = "concat",
        backward_hidden_size: int | None = None,
        bias: bool = True,
        dtype: Any = np.float64,
        seed: int | np.random.Generator | None = 0,
        schedule: str | None = None,
    ) -> None:
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}; got {cell!r}")
        if merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}; got {merge!r}")
        for name, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        backward_hidden_size = hidden_size if backward_hidden_size is None else backward_hidden_size
        if merge != "concat" and backward_hidden_size != hidden_size:
            raise ValueError(
                f"merge={merge!r} needs directions of equal size; got {hidden_size} and {backward_hidden_size}"
            )
        self.cell, self.merge, self.bias = CELLS[cell], merge, bias
        self.schedule = check_schedule(schedule)
        self.input_size, self.num_layers = input_size, num_layers
        self.sizes = {"": hidden_size, "_reverse": backward_hidden_size}
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        gates = GATES[self.cell]
        self.params: dict[str, np.ndarray] = {}
        layer_input = input_size
        for layer in range(num_layers):
            for suffix, size in self.sizes.items():
                bound = 1 / np.sqrt(size)
                shapes = {"weight_ih": (gates * size, layer_input), "weight_hh": (gates * size, size)}
                if bias:
                    shapes |= {"bias_ih": (gates * size,), "bias_hh": (gates * size,)}
                for name, shape in shapes.items():
                    self.params[f"{name}_l{layer}{suffix}"] = rng.uniform(-bound, bound, shape).astype(self.dtype)
            layer_input = hidden_size + backward_hidden_size if merge == "concat" else hidden_size
        self._cache: dict[str, Any] | None = None

    @property
    def output_size(self) -> int:
        return sum(self.sizes.values()) if self.merge == "concat" else self.sizes[""]

    def _direction_params(self, layer: int, suffix: str) -> dict[str, np.ndarray]:
        w_ih = self.params[f"weight_ih_l{layer}{suffix}"]
        zeros = np.zeros(w_ih.shape[0], dtype=self.dtype)
        return {
            "w_ih": w_ih,
            "w_hh": self.params[f"weight_hh_l{layer}{suffix}"],
            "b_ih": self.params.get(f"bias_ih_l{layer}{suffix}", zeros),
            "b_hh": self.params.get(f"bias_hh_l{layer}{suffix}", zeros),
        }

    def _groups(self) -> list[tuple[str, ...]]:
        """Directions advanced together: both in lockstep when their sizes are equal, else one per job."""
        if self.schedule == "lockstep" and self.sizes[""] == self.sizes["_reverse"]:
            return [("", "_reverse")]
        return [("",), ("_reverse",)]

    def _zero_state(self, batch: int, size: int) -> tuple[np.ndarray, ...]:
        h = np.zeros((batch, size), dtype=self.dtype)
        return (h, h.copy()) if self.cell == "lstm" else (h,)

    def forward(
        self, x: np.ndarray, lengths: np.ndarray | None = None, initial: Any = None, keep_cache: bool = True
    ) -> np.ndarray:
        """x: (B, T, I); lengths: (B,) in [1, T]; initial: {(layer, suffix): state tuple of (B, H)} -> (B, T, D).

        keep_cache=False is for inference (as under ``torch.no_grad()``): the steps' caches
        are not stored and ``backward`` cannot follow; ``finals``/``summary`` still work.
        """
        x, lengths = check_input(x, lengths, self.input_size, self.dtype)
        batch, steps, _ = x.shape
        valid = np.arange(steps)[:, None] < lengths[None, :]  # (T, B)
        layers, finals = [], {}
        layer_input = x
        for layer in range(self.num_layers):
            seen = {"": layer_input, "_reverse": reverse_padded(layer_input, lengths)}  # (B, T, I) each
            groups = self._groups()
            jobs = [
                partial(self._forward_group, group, layer, seen, valid, initial or {}, keep_cache) for group in groups
            ]
            outs, caches = {}, {}
            for group, (group_outs, group_finals, cache) in zip(groups, run_jobs(self.schedule, jobs), strict=True):
                outs |= group_outs
                finals |= group_finals
                caches[group] = cache
            outs["_reverse"] = reverse_padded(outs["_reverse"], lengths)
            layers.append((outs, caches))
            layer_input = _merge(self.merge, outs[""], outs["_reverse"])
        self._cache = {"layers": layers, "lengths": lengths, "finals": finals, "shape": (batch, steps)}
        self._cache["backward_ready"] = keep_cache
        return layer_input

    def _forward_group(self, group, layer, seen, valid, initial, keep_cache):
        """Run the directions in ``group`` (suffixes) of ``layer`` together.

        -> their outputs {suffix: (B, T, H)}, finals {(layer, suffix): state}, cache.
        """
        batch = valid.shape[1]
        x_group = np.stack([seen[suffix] for suffix in group]).transpose(0, 2, 1, 3)  # (D, T, B, I) time-major
        size = self.sizes[group[0]]
        starts = [initial.get((layer, suffix)) or self._zero_state(batch, size) for suffix in group]
        start = tuple(np.stack(parts) for parts in zip(*starts, strict=True))  # each (D, B, H)
        params = [self._direction_params(layer, suffix) for suffix in group]
        out, final, cache = directions_forward(
            self.cell, np.ascontiguousarray(x_group), valid, start, params, keep_cache
        )
        outs = {suffix: out[d].transpose(1, 0, 2) for d, suffix in enumerate(group)}  # (B, T, H)
        finals = {(layer, suffix): tuple(s[d] for s in final) for d, suffix in enumerate(group)}
        return outs, finals, cache

    def finals(self) -> dict[tuple[int, str], tuple[np.ndarray, ...]]:
        """Final states of the last forward call, keyed by (layer, "" or "_reverse")."""
        if self._cache is None:
            raise RuntimeError("call forward before finals()")
        return self._cache["finals"]

    def summary(self) -> np.ndarray:
        """(B, Hf + Hb): [→h after x[b, len-1] ; ←h after x[b, 0]] of the top layer."""
        top = self.num_layers - 1
        return np.concatenate([self.finals()[(top, "")][0], self.finals()[(top, "_reverse")][0]], axis=-1)

    def backward(
        self, d_out: np.ndarray, d_summary: np.ndarray | None = None, input_grad: bool = True
    ) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
        """Backpropagation through the whole stack. d_out: (B, T, D) -> dx (B, T, I), {name: gradient}.

        input_grad=False: dx is not computed (one GEMM per direction less) and None is returned.
        """
        if self._cache is None:
            raise RuntimeError("call forward before backward")
        if not self._cache["backward_ready"]:
            raise RuntimeError("backward needs forward(..., keep_cache=True), the default")
        layers, lengths = self._cache["layers"], self._cache["lengths"]
        d_out = np.asarray(d_out, dtype=self.dtype)
        batch, steps = self._cache["shape"]
        expected = (batch, steps, self.output_size)
        if d_out.shape != expected:
            raise ValueError(f"d_out must have the output's shape {expected}; got {d_out.shape}")
        grads: dict[str, np.ndarray] = {}
        d_merged = d_out
        for layer in range(self.num_layers - 1, -1, -1):
            outs, caches = layers[layer]
            d_fwd, d_bwd = _merge_backward(self.merge, d_merged, outs[""], outs["_reverse"])
            d_seen = {"": d_fwd, "_reverse": reverse_padded(d_bwd, lengths)}  # (B, T, H) each
            groups = list(caches)  # as the forward pass ran them
            needs_dx = input_grad or layer > 0
            jobs = [
                partial(self._backward_group, group, layer, d_seen, caches[group], d_summary, needs_dx)
                for group in groups
            ]
            d_input = 0.0 if needs_dx else None
            for group, (dx, direction_grads) in zip(groups, run_jobs(self.schedule, jobs), strict=True):
                for d, suffix in enumerate(group):
                    if needs_dx:
                        dx_d = dx[d].transpose(1, 0, 2)  # (B, T, I)
                        d_input = d_input + (dx_d if suffix == "" else reverse_padded(dx_d, lengths))
                    for short, name in _TORCH_NAMES.items():
                        key = f"{name}_l{layer}{suffix}"
                        if key in self.params:
                            grads[key] = direction_grads[d][short]
            d_merged = d_input
        return d_merged, grads

    def _backward_group(self, group, layer, d_seen, cache, d_summary, input_grad):
        """BPTT of the directions in ``group`` of ``layer``. -> dx (D, T, B, I), their parameter gradients."""
        size = self.sizes[group[0]]
        batch = d_seen[""].shape[0]
        d_final = tuple(np.zeros((len(group), *s.shape), self.dtype) for s in self._zero_state(batch, size))
        if d_summary is not None and layer == self.num_layers - 1:
            d_top = {"": d_summary[:, : self.sizes[""]], "_reverse": d_summary[:, self.sizes[""] :]}
            for d, suffix in enumerate(group):
                d_final[0][d] = d_top[suffix]
        d_group = np.stack([d_seen[suffix] for suffix in group]).transpose(0, 2, 1, 3)  # (D, T, B, H)
        params = [self._direction_params(layer, suffix) for suffix in group]
        dx, direction_grads, _ = directions_backward(
            self.cell, d_group, d_final, cache, params, input_grad, elementwise_turn(self.schedule)
        )
        return dx, direction_grads

    # ----- conversion to and from torch (imported lazily) --------------------------------------
    @classmethod
    def from_torch(cls, module: Any, dtype: Any = np.float64) -> BiRNN:
        from birnn.reference.convert import from_torch

        return from_torch(cls, module, dtype)

    def to_torch(self) -> Any:
        from birnn.reference.convert import to_torch

        return to_torch(self)
