"""Validation of what users hand to the NumPy engine: errors name the argument, the expectation and what came."""

from __future__ import annotations

from typing import Any

import numpy as np

from birnn.spec import check_lengths


def check_input(x: Any, lengths: Any, input_size: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """x: (B, T, I) finite floats; lengths: (B,) in [1, T] or None -> (x as dtype, lengths int64)."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, T, I); got {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x must hold at least one step of one sequence; got shape {x.shape}")
    if x.shape[2] != input_size:
        raise ValueError(f"x must have {input_size} features (input_size); got {x.shape[2]} (shape {x.shape})")
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"x must hold numbers; got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or inf")
    if lengths is None:
        lengths = np.full(x.shape[0], x.shape[1], dtype=np.int64)
    else:
        lengths = check_lengths(lengths, x.shape[0], x.shape[1])
    return x.astype(dtype, copy=False), lengths
