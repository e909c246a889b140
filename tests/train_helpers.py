"""Small generated tagging data for trainer and CLI tests (no corpus needed)."""

from __future__ import annotations

import numpy as np

from birnn.hmm import HMM


def tagged_sentences(n: int, seed: int = 0, length: int = 12) -> list[tuple[list[str], list[str]]]:
    """Sentences from a 3-state HMM whose states are the tags ("A", "B", "C")."""
    hmm = HMM(
        [1 / 3] * 3,
        [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]],
        [[0.6, 0.2, 0.1, 0.1], [0.1, 0.6, 0.2, 0.1], [0.1, 0.1, 0.2, 0.6]],
    )
    obs, states = hmm.sample(n, length, seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for o, s in zip(obs, states, strict=True):
        cut = int(rng.integers(3, length + 1))
        out.append(([f"w{v}" for v in o[:cut]], ["ABC"[k] for k in s[:cut]]))
    return out


def write_conll(path, sentences) -> None:
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(*s, strict=True)) for s in sentences) + "\n")
