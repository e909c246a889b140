"""Cutting one long token stream into (input, next-token target) windows, as d2l partitions it.

A language model reads the corpus x_0 x_1 … x_{N-1} in windows of ``steps``
tokens; the target of position t is x_{t+1}. d2l (v0.17, §8.3.4) offers two
ways to cut the stream, both starting at a random offset in [0, steps) drawn
anew every epoch so that every epoch sees different window boundaries:

- random partitioning: the windows are independent, their order shuffled; a
  model starts every window from a zero state;
- sequential partitioning: row j of batch i+1 continues row j of batch i in
  the text, so a model may carry its state from one batch to the next.

The functions return the examples of one epoch in the order the trainer
should batch them (for sequential partitioning: batch by batch, row by row,
with shuffling off).
"""

from __future__ import annotations

import numpy as np

Window = tuple[list[int], list[int]]


def windows(ids: list[int], steps: int, offset: int = 0) -> list[Window]:
    """Non-overlapping windows of ``steps`` tokens starting at ``offset``.

    ids: (N,) -> [(x[s : s+steps], x[s+1 : s+steps+1]) for s = offset, offset+steps, …]
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0; got {offset}")
    starts = range(offset, len(ids) - steps, steps)
    return [(ids[s : s + steps], ids[s + 1 : s + steps + 1]) for s in starts]


def epoch_offset(steps: int, seed: int, epoch: int) -> int:
    """d2l's random start in [0, steps), a function of (seed, epoch) only, so a resumed run sees the same."""
    return int(np.random.default_rng([seed, epoch, 1]).integers(steps))


def random_partition(ids: list[int], steps: int, seed: int, epoch: int) -> list[Window]:
    """One epoch of random partitioning: windows from a random offset (the trainer shuffles their order)."""
    return windows(ids, steps, epoch_offset(steps, seed, epoch))


def sequential_partition(ids: list[int], batch_size: int, steps: int, seed: int, epoch: int) -> list[Window]:
    """One epoch of sequential partitioning, in batch order.

    From a random offset o, the stream x[o:] is cut into ``batch_size`` rows of
    equal length; batch i holds window i of every row:
    example index i·batch_size + j = row j, steps [i·steps, (i+1)·steps).
    Batched in this order without shuffling, row j of batch i+1 continues
    row j of batch i in the text.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    offset = epoch_offset(steps, seed, epoch)
    row_length = (len(ids) - offset - 1) // batch_size
    per_row = row_length // steps
    if per_row < 1:
        raise ValueError(
            f"the text ({len(ids)} tokens) is too short for batch_size={batch_size} rows of steps={steps} tokens"
        )
    out = []
    for i in range(per_row):
        for j in range(batch_size):
            start = offset + j * row_length + i * steps
            out.append((ids[start : start + steps], ids[start + 1 : start + steps + 1]))
    return out
