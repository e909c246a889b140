"""Validation of user input shared by every layer.

Errors name the argument, what was expected and what came (STYLE.md §10).
These helpers only check; they never move data between devices or dtypes
beyond what they document.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def shape_of(value: Any) -> tuple[int, ...]:
    """The shape of a NumPy array or torch tensor as a plain tuple."""
    return tuple(int(s) for s in value.shape)


def check_lengths_array(lengths: Any, batch: int, steps: int, name: str = "lengths") -> np.ndarray:
    """Validate sequence lengths and return them as an int64 NumPy array.

    lengths: (B,) integers in [1, T] (NumPy, torch or a list) -> (B,) int64.
    """
    if hasattr(lengths, "detach"):
        lengths = lengths.detach().cpu().numpy()
    arr = np.asarray(lengths)
    if arr.ndim != 1 or arr.shape[0] != batch:
        raise ValueError(f"{name} must have shape ({batch},) (one length per sequence); got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers; got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 1 or arr.max() > steps):
        raise ValueError(f"{name} must lie in [1, T={steps}]; got min {int(arr.min())}, max {int(arr.max())}")
    return arr
