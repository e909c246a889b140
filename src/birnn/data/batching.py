"""Padded batches with lengths, length bucketing and seeded shuffling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    """inputs: (B, T) int64 (0 = padding); targets: (B, T) int64; lengths: (B,) int64."""

    inputs: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor

    @property
    def tokens(self) -> int:
        return int(self.lengths.sum())


def pad(sequences: Sequence[Sequence[int]], value: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad integer sequences. -> (B, T) int64, lengths (B,) int64."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    if len(sequences) == 0 or int(lengths.min()) < 1:
        raise ValueError("every sequence must hold at least one token")
    out = torch.full((len(sequences), int(lengths.max())), value, dtype=torch.int64)
    for i, sequence in enumerate(sequences):
        out[i, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.int64)
    return out, lengths


def collate(examples: Sequence[tuple[Sequence[int], Sequence[int]]]) -> Batch:
    """(input ids, target ids) pairs of equal length -> one padded Batch."""
    inputs, lengths = pad([x for x, _ in examples])
    targets, _ = pad([y for _, y in examples])
    return Batch(inputs, targets, lengths)


def batch_indices(
    lengths: Sequence[int], batch_size: int, seed: int | None, epoch: int = 0, bucket: bool = True
) -> list[list[int]]:
    """Indices of each batch for one epoch.

    With ``bucket`` sequences of similar length go together (less padding):
    sort by length within windows of 50 batches, cut into batches, shuffle the
    batches. The order depends only on (seed, epoch), so a resumed run sees
    the same batches as an uninterrupted one. ``seed=None`` keeps file order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    order = np.arange(len(lengths))
    if seed is None:
        return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if bucket:
        window = 50 * batch_size
        lengths_array = np.asarray(lengths)
        order = (
            np.concatenate(
                [
                    chunk[np.argsort(lengths_array[chunk], kind="stable")]
                    for chunk in np.split(order, range(window, len(order), window))
                ]
            )
            if len(order)
            else order
        )
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
