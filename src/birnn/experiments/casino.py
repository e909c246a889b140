"""Durbin's occasionally dishonest casino: sample rolls, decode the die three ways, compare.

Viterbi (the most probable die sequence), posterior decoding (forward–backward: the most
probable die at each roll given all rolls) and filtering (forward only: given the rolls so
far), printed in Durbin's aligned blocks of 60 with each method's accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from birnn.hmm import casino
from birnn.hmm.report import accuracy, aligned_blocks, plot_state_probability
from birnn.spec import check_memory

# obs, states, paths (int64), posterior, filter, forward and backward tables ((T, 2) float64), text
_BYTES_PER_ROLL = 4 * 8 + 4 * 16 + 40


def _letters(alphabet: bytes, indices: np.ndarray) -> str:
    """(T,) indices -> the string of alphabet[i] for each, without a per-item Python loop."""
    return np.frombuffer(alphabet, dtype=np.uint8)[indices].tobytes().decode("ascii")


def casino_report(rolls: int, seed: int, plot: Path | None = None) -> str:
    """The aligned blocks and accuracies as text; with ``plot`` also a PNG of P(loaded)."""
    check_memory(rolls * _BYTES_PER_ROLL, f"the casino report of {rolls:,} rolls")
    hmm = casino()
    obs, states = hmm.sample(1, rolls, seed=seed)
    obs, states = obs[0], states[0]
    smoothed, filtered = hmm.posterior(obs), hmm.filter(obs)
    viterbi_path, _ = hmm.viterbi(obs)
    posterior_path = smoothed.argmax(-1)
    rows = [
        ("Rolls", _letters(b"123456", obs)),
        ("Die", _letters(b"FL", states)),
        ("Viterbi", _letters(b"FL", viterbi_path)),
        ("Posterior", _letters(b"FL", posterior_path)),
    ]
    lines = [
        aligned_blocks(rows),
        "",
        f"log p(rolls)                            {hmm.log_likelihood(obs):10.3f}",
        f"accuracy, Viterbi path                  {accuracy(viterbi_path, states):10.3f}",
        f"accuracy, posterior decoding (fwd–bwd)  {accuracy(posterior_path, states):10.3f}",
        f"accuracy, filtering (forward only)      {accuracy(filtered.argmax(-1), states):10.3f}",
    ]
    if plot is not None:
        plot_state_probability(plot, smoothed, filtered, states)
        lines.append(f"wrote {plot}")
    return "\n".join(lines)
