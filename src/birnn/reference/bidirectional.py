"""The bidirectional stack in NumPy, with a hand-written backward pass.

Layer l, for the forward (→) and backward (←) direction, each with its own parameters:

    →H = run(X_l),   ←H = reverse_padded(run(reverse_padded(X_l)))
    X_{l+1} = merge(→H, ←H)      concat [→H ; ←H] | sum →H + ←H | mul →H ⊙ ←H | ave (→H + ←H)/2

``run`` is ``layer.direction_forward``; the two runs are independent until the
merge, and ``schedule`` (schedule.py) decides whether they share the CPU as two
threads or run one after the other.

Backward through the merge (dM the gradient of the merged output):

    concat: d→H, d←H = split(dM)   sum: dM, dM   mul: dM ⊙ ←H, dM ⊙ →H   ave: dM/2, dM/2

and through the reversal, which is its own inverse: d(input of ←) = reverse_padded(dx of ←).
Parameters are keyed by torch's names (``weight_ih_l0``, ``bias_hh_l1_reverse``, …) and
shaped and initialised as ``birnn.spec.StackSpec`` says.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from birnn.reference.inputs import check_input
from birnn.reference.layer import direction_backward, direction_forward, reverse_padded
from birnn.reference.schedule import check_schedule, run_directions
from birnn.spec import DIRECTIONS, MERGES, StackSpec, padding_mask

_SHORT = ("w_ih", "w_hh", "b_ih", "b_hh")  # spec.WEIGHT_NAMES, as the math (layer.py) calls them


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
    ``merge`` is one of ``spec.MERGES`` (no pair, no callable: the backward pass is written out).
    ``schedule``: "threads" | "sequential" | None (chosen by the number of usable CPUs; schedule.py).
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
        if not isinstance(merge, str) or merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES} in the NumPy engine; got {merge!r}")
        self.spec = StackSpec.build(
            input_size, hidden_size, num_layers, cell, merge, backward_hidden_size=backward_hidden_size, bias=bias
        )
        self.cell, self.merge, self.bias = self.spec.cell, merge, self.spec.bias
        self.input_size, self.num_layers = self.spec.input_size, self.spec.num_layers
        self.sizes = {suffix: self.spec.direction_size(suffix) for suffix in DIRECTIONS}
        self.schedule = check_schedule(schedule)
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        self.params: dict[str, np.ndarray] = {}
        for name, shape in self.spec.parameter_shapes().items():
            bound = self.spec.init_bound(name)
            self.params[name] = rng.uniform(-bound, bound, shape).astype(self.dtype)
        self._cache: dict[str, Any] | None = None

    @property
    def output_size(self) -> int:
        return self.spec.output_size

    def _direction_names(self, layer: int, suffix: str) -> dict[str, str]:
        """{w_ih: "weight_ih_l{layer}{suffix}", …}; without biases only the weights."""
        return dict(zip(_SHORT, self.spec.parameter_names(layer, suffix), strict=False))

    def _direction_params(self, layer: int, suffix: str) -> dict[str, np.ndarray]:
        """{w_ih, w_hh, b_ih, b_hh} of one direction; zero biases when the model has none."""
        params = {short: self.params[name] for short, name in self._direction_names(layer, suffix).items()}
        zeros = np.zeros(params["w_hh"].shape[0], dtype=self.dtype)
        return {"b_ih": zeros, "b_hh": zeros} | params

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
        valid = padding_mask(lengths, steps)  # (B, T)
        initial = initial or {}
        layers, finals = [], {}
        layer_input = x
        for layer in range(self.num_layers):
            seen = {"": layer_input, "_reverse": reverse_padded(layer_input, lengths)}  # (B, T, I) each
            jobs = [
                partial(
                    direction_forward,
                    self.cell,
                    seen[suffix],
                    valid,
                    initial.get((layer, suffix)) or self._zero_state(batch, self.sizes[suffix]),
                    self._direction_params(layer, suffix),
                    keep_cache,
                )
                for suffix in DIRECTIONS
            ]
            outs, caches = {}, {}
            for suffix, (out, final, cache) in zip(DIRECTIONS, run_directions(self.schedule, jobs), strict=True):
                outs[suffix], finals[(layer, suffix)], caches[suffix] = out, final, cache
            outs["_reverse"] = reverse_padded(outs["_reverse"], lengths)
            layers.append((outs, caches))
            layer_input = _merge(self.merge, outs[""], outs["_reverse"])
        self._cache = {"layers": layers, "lengths": lengths, "finals": finals, "shape": (batch, steps)}
        self._cache["backward_ready"] = keep_cache
        return layer_input

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

        d_summary: (B, Hf + Hb), the gradient of ``summary()``.
        input_grad=False: dx is not computed (one matrix product per direction less) and None is returned.
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
        d_merged: np.ndarray | None = d_out
        for layer in range(self.num_layers - 1, -1, -1):
            outs, caches = layers[layer]
            assert d_merged is not None  # every layer above the first asks for its input's gradient
            d_fwd, d_bwd = _merge_backward(self.merge, d_merged, outs[""], outs["_reverse"])
            d_seen = {"": d_fwd, "_reverse": reverse_padded(d_bwd, lengths)}  # (B, T, H) each
            needs_dx = input_grad or layer > 0
            jobs = [
                partial(
                    direction_backward,
                    self.cell,
                    d_seen[suffix],
                    self._final_gradient(layer, suffix, batch, d_summary),
                    caches[suffix],
                    self._direction_params(layer, suffix),
                    needs_dx,
                )
                for suffix in DIRECTIONS
            ]
            results = run_directions(self.schedule, jobs)
            for suffix, (_, direction_grads, _) in zip(DIRECTIONS, results, strict=True):
                for short, name in self._direction_names(layer, suffix).items():
                    grads[name] = direction_grads[short]
            d_merged = None
            if needs_dx:
                (dx_fwd, _, _), (dx_bwd, _, _) = results
                assert dx_fwd is not None and dx_bwd is not None  # asked for with needs_dx
                d_merged = dx_fwd + reverse_padded(dx_bwd, lengths)
        return d_merged, grads

    def _final_gradient(self, layer: int, suffix: str, batch: int, d_summary: np.ndarray | None):
        """Gradient of a direction's final state: its part of d_summary at the top layer, else zero."""
        d_final = self._zero_state(batch, self.sizes[suffix])
        if d_summary is None or layer != self.num_layers - 1:
            return d_final
        forward_size = self.sizes[""]
        d_h = d_summary[:, :forward_size] if suffix == "" else d_summary[:, forward_size:]
        return (np.asarray(d_h, dtype=self.dtype), *d_final[1:])

    # ----- conversion to and from torch (imported lazily) --------------------------------------
    @classmethod
    def from_torch(cls, module: Any, dtype: Any = np.float64) -> BiRNN:
        from birnn.reference.convert import from_torch

        return from_torch(cls, module, dtype)

    def to_torch(self) -> Any:
        from birnn.reference.convert import to_torch

        return to_torch(self)
