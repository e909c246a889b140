"""Observation sequences as users hand them in, and results handed back alike.

Accepted: one 1-D sequence (unbatched results), a padded 2-D batch with
optional ``lengths``, or a list of 1-D sequences of different lengths; as
NumPy arrays, torch tensors or lists. Results come back as the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from birnn.spec import check_lengths, padding_mask


@dataclass(frozen=True)
class Observations:
    """obs: (B, T) int64 with zeros at padding; lengths: (B,) int64."""

    obs: np.ndarray
    lengths: np.ndarray
    unbatched: bool
    torch_like: Any  # a torch tensor whose kind results follow, or None

    def give_back(self, array: np.ndarray) -> Any:
        """Return ``array`` (batch first) unbatched and as a torch tensor when the input was."""
        out = array[0] if self.unbatched else array
        if self.torch_like is None:
            return out
        import torch

        return torch.as_tensor(np.array(out), device=self.torch_like.device)


def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch")


def _to_numpy(value: Any, name: str) -> np.ndarray:
    if _is_torch(value):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype == object:
        raise ValueError(f"{name} must be a rectangular array of integer symbols; got ragged nested lists")
    return array


def as_observations(obs: Any, lengths: Any, n_symbols: int, name: str = "obs") -> Observations:
    """Validate observations against an alphabet of ``n_symbols`` symbols."""
    torch_like = obs if _is_torch(obs) else None
    ragged = isinstance(obs, (list, tuple)) and obs and all(np.ndim(item) == 1 for item in obs)
    if ragged and lengths is None:
        sequences = [_to_numpy(item, f"{name}[{i}]") for i, item in enumerate(obs)]
        if any(_is_torch(item) for item in obs):
            torch_like = next(item for item in obs if _is_torch(item))
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        if lengths.min() == 0:
            raise ValueError(f"{name} holds an empty sequence at index {int(lengths.argmin())}")
        padded = np.zeros((len(sequences), int(lengths.max())), dtype=np.int64)
        for i, sequence in enumerate(sequences):
            padded[i, : len(sequence)] = _check_symbols(sequence, n_symbols, f"{name}[{i}]")
        return Observations(padded, lengths, False, torch_like)
    array = _to_numpy(obs, name)
    if array.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (T,) or 2-D (B, T); got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); need at least one symbol")
    unbatched = array.ndim == 1
    array = array[None] if unbatched else array
    batch, steps = array.shape
    if lengths is None:
        checked = np.full(batch, steps, dtype=np.int64)
    else:
        checked = check_lengths(np.atleast_1d(_to_numpy(lengths, "lengths")), batch, steps)
    valid = padding_mask(checked, steps)
    symbols = _check_symbols(array, n_symbols, name, valid)
    return Observations(np.where(valid, symbols, 0), checked, unbatched, torch_like)


def _check_symbols(array: np.ndarray, n_symbols: int, name: str, valid: np.ndarray | None = None) -> np.ndarray:
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if np.issubdtype(array.dtype, np.floating) and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            array = array.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer symbols in [0, {n_symbols}); got dtype {array.dtype}")
    used = array if valid is None else array[valid]
    if used.size and (used.min() < 0 or used.max() >= n_symbols):
        raise ValueError(
            f"{name} symbols must lie in [0, V={n_symbols}); got min {int(used.min())}, max {int(used.max())}"
        )
    return array.astype(np.int64, copy=False)
