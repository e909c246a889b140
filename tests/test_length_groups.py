"""``length_groups`` against enumerating every way to cut a sorted batch into contiguous groups."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from birnn.serve.length_groups import length_groups


def _cost(lengths, groups, step_rows, call_cells):
    return sum(lengths[end - 1] * (end - start + step_rows) + call_cells for start, end in groups)


def _every_cut(n):
    for cuts in itertools.product([False, True], repeat=n - 1):
        edges = [0] + [i + 1 for i, cut in enumerate(cuts) if cut] + [n]
        yield list(itertools.pairwise(edges))


@pytest.mark.parametrize("seed", range(40))
def test_the_cut_costs_the_least_of_all_cuts(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 10))
    lengths = sorted(rng.integers(1, 12, n).tolist())
    step_rows, call_cells = float(rng.choice([0, 1, 3, 8])), float(rng.choice([0, 2, 8, 32]))
    groups = length_groups(lengths, step_rows, call_cells)
    assert groups[0][0] == 0 and groups[-1][1] == n
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(groups))
    assert all(start < end for start, end in groups)
    best = min(_cost(lengths, cut, step_rows, call_cells) for cut in _every_cut(n))
    assert _cost(lengths, groups, step_rows, call_cells) == pytest.approx(best)


def test_free_calls_give_one_group_per_length_and_dear_ones_a_single_group():
    lengths = [1, 1, 2, 5, 5, 5, 9]
    assert length_groups(lengths, 0, 0) == [(0, 2), (2, 3), (3, 6), (6, 7)]
    assert length_groups(lengths, 0, 1e6) == [(0, 7)]
    assert length_groups([4], 3, 8) == [(0, 1)]


def test_bad_lengths_are_named():
    with pytest.raises(ValueError, match="non-decreasing"):
        length_groups([3, 1], 0, 0)
    with pytest.raises(ValueError, match="non-empty"):
        length_groups([], 0, 0)
    with pytest.raises(ValueError, match="step_rows and call_cells"):
        length_groups([1], -1, 0)
