"""Naive Bayes log-count ratios of a sentence's n-grams (the r of Wang & Manning 2012's NBSVM) and
their sum, the binarised multinomial Naive Bayes log-odds of the sentence.

With n_k(w) the number of training sentences of class k that contain n-gram w (binarised counts),
N_k = Σ_w n_k(w), the rest of the classes n̄_k = Σ_{j≠k} n_j, N̄_k = Σ_{j≠k} N_j, V n-grams and
add-α smoothing, each class against the rest:

    r_k(w) = log (α + n_k(w)) / (αV + N_k)  −  log (α + n̄_k(w)) / (αV + N̄_k)        (K values per n-gram)
    s_k(x) = Σ_{w ∈ set(ngrams(x))} r_k(w)

For two classes s_k is the log-odds of class k under binarised multinomial Naive Bayes, up to the
log prior. A training sentence reads its ratios leave-one-out, from the counts without it:
n_y(w) − 1 for each of its n-grams and N_y − u for its u distinct n-grams, y its label. Otherwise
an n-gram seen in few sentences would spell out their labels, and a model trained on the scores
would trust them far more than they deserve on sentences it has not seen. Summed over tens of
n-grams, s(x) is overconfident; ``calibrated_scale`` finds the γ for which softmax(γ s) best
predicts the labels from the leave-one-out scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

FIRST_ID = 2  # ids 0 and 1 are <pad> and <unk>: no ratios (zero features)


def sentence_counts(sentences: Sequence[Sequence[int]], labels: Sequence[int], n_ids: int,
                    n_classes: int) -> np.ndarray:
    """n (V, K) float64: n[w, k] = how many sentences of class k contain n-gram id w (once each);
    <pad> and <unk> are not counted."""
    counts = np.zeros((n_ids, n_classes), dtype=np.float64)
    for ids, label in zip(sentences, labels, strict=True):
        distinct = np.unique(np.asarray(ids, dtype=np.int64))
        counts[distinct[distinct >= FIRST_ID], label] += 1
    return counts


def ratios(counts: torch.Tensor, totals: torch.Tensor, alpha: float, n_ids: int) -> torch.Tensor:
    """r_k(w) from gathered counts n (..., K) and totals N (..., K) (broadcast against n), over a
    vocabulary of ``n_ids`` n-grams -> (..., K), the equation of the module docstring."""
    rest, rest_totals = counts.sum(-1, keepdim=True) - counts, totals.sum(-1, keepdim=True) - totals
    smoothing = alpha * n_ids
    return (torch.log(alpha + counts) - torch.log(smoothing + totals)
            - torch.log(alpha + rest) + torch.log(smoothing + rest_totals))


def ratios_of_ids(table: torch.Tensor, ids: torch.Tensor, alpha: float,
                  own_labels: torch.Tensor | None = None) -> torch.Tensor:
    """The ratios of n-gram ids (B, F) from the counts ``table`` (V, K) -> (B, F, K), zero at <pad> and
    <unk>. ``own_labels`` (B,): the sentences are among those counted, with these labels, and are
    read leave-one-out (module docstring); their ids must be those that were counted."""
    n_ids = table.shape[0] - FIRST_ID
    counts, totals = table[ids], table.sum(0)  # (B, F, K), (K,)
    real = ids >= FIRST_ID  # (B, F)
    if own_labels is not None:
        own = torch.nn.functional.one_hot(own_labels, table.shape[1]).to(table.dtype)  # (B, K)
        counts = (counts - own[:, None, :] * real[..., None]).clamp(min=0)
        totals = (totals - distinct_ids(ids)[:, None] * own).clamp(min=0)[:, None, :]  # (B, 1, K)
    return ratios(counts, totals, alpha, n_ids) * real[..., None]


def distinct_ids(ids: torch.Tensor) -> torch.Tensor:
    """How many distinct ids ≥ 2 each row of (B, F) holds -> (B,) float."""
    ordered, _ = torch.sort(ids, dim=1)
    new = torch.ones_like(ordered, dtype=torch.bool)
    new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    return (new & (ordered >= FIRST_ID)).sum(1).to(torch.get_default_dtype())


def sentence_scores(table: torch.Tensor, features: torch.Tensor, alpha: float,
                    own_labels: torch.Tensor | None = None) -> torch.Tensor:
    """s(x) of sentences given as n-gram ids (B, F), 0-padded, from the counts ``table`` (V, K) -> (B, K);
    ``own_labels`` as in ``ratios_of_ids``."""
    return ratios_of_ids(table, features, alpha, own_labels).sum(1)


def calibrated_scale(scores: torch.Tensor, labels: torch.Tensor, grid: int = 200) -> float:
    """argmin_γ mean_i −log softmax(γ s(x_i))_{y_i} over γ on a log-spaced grid in [1e-3, 10],
    from scores (N, K) (leave-one-out for training data) and labels (N,)."""
    gammas = torch.logspace(-3, 1, grid, dtype=scores.dtype)
    losses = [torch.nn.functional.cross_entropy(g * scores, labels).item() for g in gammas]
    return float(gammas[int(np.argmin(losses))])
