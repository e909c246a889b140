"""Independent truth for chain dynamic programming: enumerate all K^T paths.

Only for tiny problems (K <= 4, T <= 7). Written as plainly as possible so
that it can be trusted without being tested itself.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Enumeration:
    log_z: float  # log sum over all paths of exp(score)
    unary: np.ndarray  # (T, K) p(h_t = k)
    pairwise: np.ndarray  # (T-1, K, K) p(h_t = i, h_{t+1} = j)
    best_path: np.ndarray  # (T,) argmax path
    best_score: float  # its score


def path_score(path, log_start, log_trans, log_unary) -> float:
    """score(h) = log_start[h_0] + sum_t log_unary[t, h_t] + sum_t log_trans[h_{t-1}, h_t]."""
    score = log_start[path[0]] + log_unary[0, path[0]]
    for t in range(1, len(path)):
        score += log_trans[path[t - 1], path[t]] + log_unary[t, path[t]]
    return float(score)


def enumerate_paths(log_start, log_trans, log_unary) -> Enumeration:
    """log_start: (K,), log_trans: (K, K), log_unary: (T, K), all float64 log scores."""
    log_start = np.asarray(log_start, dtype=np.float64)
    log_trans = np.asarray(log_trans, dtype=np.float64)
    log_unary = np.asarray(log_unary, dtype=np.float64)
    steps, k = log_unary.shape
    paths = list(itertools.product(range(k), repeat=steps))
    scores = np.array([path_score(p, log_start, log_trans, log_unary) for p in paths])
    top = scores.max()
    log_z = float(top + np.log(np.exp(scores - top).sum())) if np.isfinite(top) else -np.inf
    weights = np.exp(scores - log_z) if np.isfinite(log_z) else np.zeros_like(scores)
    unary = np.zeros((steps, k))
    pairwise = np.zeros((max(steps - 1, 0), k, k))
    for path, w in zip(paths, weights, strict=True):
        for t in range(steps):
            unary[t, path[t]] += w
        for t in range(steps - 1):
            pairwise[t, path[t], path[t + 1]] += w
    best = int(np.argmax(scores))
    return Enumeration(log_z, unary, pairwise, np.array(paths[best]), float(scores[best]))


def hmm_log_unary(emission, obs) -> np.ndarray:
    """log P(x_t | h) for an observed symbol sequence: emission (K, V), obs (T,) -> (T, K)."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(emission, dtype=np.float64)[:, np.asarray(obs)].T)
