"""Finite-difference check of the hand-written backward pass.

For a random projection R of the output, the loss L = Σ out ⊙ R has the
analytic gradients ``model.backward(R)``; each parameter entry and input entry
is compared with the central difference

    ∂L/∂θ ≈ (L(θ + ε) - L(θ - ε)) / 2ε.

The error per tensor is ‖analytic - numeric‖ / max(‖analytic‖ + ‖numeric‖, 1e-12).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def gradcheck(
    model: Any,
    x: np.ndarray,
    lengths: np.ndarray | None = None,
    epsilon: float = 1e-6,
    seed: int = 0,
    layout: str = "steps",
) -> dict[str, float]:
    """Relative error of every parameter's gradient and of the input gradient ("x").

    layout: which outputs the loss reads — "steps" (every step, tagging),
    "first_last" (only t = 0 and t = len-1, the textbook layout) or "summary"
    ([→h_{len-1} ; ←h_0], through the final states).
    """
    if model.dtype != np.float64:
        raise ValueError(f"gradcheck needs a float64 model; got {model.dtype}")
    x = np.asarray(x, dtype=np.float64).copy()
    rng = np.random.default_rng(seed)
    if layout not in ("steps", "first_last", "summary"):
        raise ValueError(f"layout must be 'steps', 'first_last' or 'summary'; got {layout!r}")
    projection = rng.standard_normal((*x.shape[:2], model.output_size))
    summary_projection = None
    if layout == "first_last":
        ends = np.full(x.shape[0], x.shape[1]) if lengths is None else np.asarray(lengths)
        keep = np.zeros(x.shape[:2], dtype=bool)
        keep[:, 0] = True
        keep[np.arange(x.shape[0]), ends - 1] = True
        projection *= keep[..., None]
    elif layout == "summary":
        projection[:] = 0.0

    def loss() -> float:
        value = float((model.forward(x, lengths) * projection).sum())
        if summary_projection is not None:
            value += float((model.summary() * summary_projection).sum())
        return value

    model.forward(x, lengths)
    if layout == "summary":
        summary_projection = rng.standard_normal(model.summary().shape)
    dx, grads = model.backward(projection, d_summary=summary_projection)
    errors = {}
    for name, tensor in [*model.params.items(), ("x", x)]:
        numeric = np.zeros_like(tensor)
        for index in np.ndindex(tensor.shape):
            saved = tensor[index]
            tensor[index] = saved + epsilon
            plus = loss()
            tensor[index] = saved - epsilon
            minus = loss()
            tensor[index] = saved
            numeric[index] = (plus - minus) / (2 * epsilon)
        analytic = dx if name == "x" else grads[name]
        scale = max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-12)
        errors[name] = float(np.linalg.norm(analytic - numeric) / scale)
    return errors
