"""Human-readable views of HMM decoding: Durbin-style aligned blocks and a posterior plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def aligned_blocks(rows: Sequence[tuple[str, str]], width: int = 60) -> str:
    """Print labelled strings of equal length in aligned blocks of ``width`` characters.

    rows: (label, text) pairs, e.g. ("Rolls", "315116246446...") -> one string.
    """
    lengths = {len(text) for _, text in rows}
    if len(lengths) != 1:
        raise ValueError(f"rows must hold texts of one length; got lengths {sorted(lengths)}")
    label_width = max(len(label) for label, _ in rows)
    total = lengths.pop()
    blocks = []
    for begin in range(0, total, width):
        lines = [f"{label:<{label_width}}  {text[begin : begin + width]}" for label, text in rows]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Share of positions where two label sequences agree."""
    return float(np.mean(np.asarray(predicted) == np.asarray(truth)))


def plot_state_probability(
    path: str | Path,
    smoothed: np.ndarray,
    filtered: np.ndarray,
    true_states: np.ndarray,
    state: int = 1,
    state_name: str = "loaded",
) -> None:
    """PNG of P(state | all observations) and P(state | observations so far) over time,
    with the stretches where the true hidden state is ``state`` shaded.

    smoothed, filtered: (T, K); true_states: (T,).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(len(true_states))
    figure, axes = plt.subplots(figsize=(12, 4))
    axes.fill_between(
        steps,
        0,
        1,
        where=np.asarray(true_states) == state,
        step="mid",
        color="0.85",
        label=f"truly {state_name}",
    )
    axes.plot(steps, smoothed[:, state], color="C0", label=f"P({state_name} | all rolls)  forward–backward")
    axes.plot(steps, filtered[:, state], color="C1", lw=1, label=f"P({state_name} | rolls so far)  forward only")
    axes.set(xlabel="roll", ylabel="probability", ylim=(0, 1), xlim=(0, len(steps) - 1))
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize=8, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
