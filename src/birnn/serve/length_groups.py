"""``length_groups``: cut a length-sorted batch into runs that waste the least padded work (torch-free).

An engine that computes every step of every row of a padded batch (onnxruntime's LSTM and GRU
do, whatever ``sequence_lens`` says) pays for ``rows × longest`` cells, so one batch of lengths
23…46 does half again the work its tokens need. Cutting the sorted batch into contiguous groups
trades that padding for per-step and per-call overheads; with lengths ``L_0 ≤ … ≤ L_{n-1}`` and
groups ``[i, j)``, the cost is

    cost([i, j)) = L_{j-1} · (j − i + step_rows) + call_cells

(``step_rows``: a step's fixed cost in rows; ``call_cells``: a call's fixed cost in cells), and
the cut minimising the sum is found by dynamic programming over the cut points,

    best[0] = 0,   best[j] = min_{0 ≤ i < j} best[i] + cost([i, j)),

where a cut inside a run of equal lengths moves to the run's end at no extra cost, so only the
run ends are candidate cuts: O(k²) work for k distinct lengths.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def length_groups(lengths: Sequence[int] | np.ndarray, step_rows: float, call_cells: float) -> list[tuple[int, int]]:
    """lengths: (n,) non-decreasing, n >= 1 -> the groups ``[(0, j_1), (j_1, j_2), …, (j_k, n)]``
    of least total ``cost`` (the module docstring's equation); of equal costs, the larger last group."""
    sizes = np.asarray(lengths, dtype=np.float64)
    if sizes.ndim != 1 or len(sizes) == 0:
        raise ValueError(f"lengths must be a non-empty 1-d sequence; got shape {sizes.shape}")
    if np.any(np.diff(sizes) < 0):
        raise ValueError("lengths must be sorted in non-decreasing order")
    if step_rows < 0 or call_cells < 0:
        raise ValueError(f"step_rows and call_cells must be >= 0; got {step_rows} and {call_cells}")
    # a cut inside a run of equal lengths moves to the run's end at no extra cost, so only the
    # run ends are candidate cuts: k + 1 of them for k distinct lengths
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(sizes)) + 1, [len(sizes)]])  # (k+1,)
    best = np.zeros(len(cuts))
    start_of = np.zeros(len(cuts), dtype=np.int64)  # start_of[j]: the candidate where the best cut's last group starts
    for j in range(1, len(cuts)):
        rows = cuts[j] - cuts[:j]  # (j,) the rows of the group [cuts[i], cuts[j]) for each i < j
        costs = best[:j] + sizes[cuts[j] - 1] * (rows + step_rows) + call_cells
        start_of[j] = int(np.argmin(costs))  # the first minimum: the earliest start, the largest group
        best[j] = costs[start_of[j]]
    groups = []
    j = len(cuts) - 1
    while j > 0:
        groups.append((int(cuts[start_of[j]]), int(cuts[j])))
        j = int(start_of[j])
    return groups[::-1]
