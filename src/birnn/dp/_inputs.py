"""Validation shared by the chain dynamic programmes: each error names the argument, what it expects and what came."""

from __future__ import annotations

import torch

from birnn.spec import check_lengths


def check_chain(
    log_start: torch.Tensor,
    log_trans: torch.Tensor,
    log_unary: torch.Tensor,
    lengths: torch.Tensor | None,
) -> torch.Tensor:
    """Check the scores of a linear chain and return the lengths as an int64 tensor.

    log_start: (K,); log_trans: (K, K) from row to column; log_unary: (B, T, K);
    lengths: (B,) in [1, T] or None (every sequence has length T) -> (B,) int64.
    """
    for name, value in (("log_start", log_start), ("log_trans", log_trans), ("log_unary", log_unary)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a float tensor (log scores); got dtype {value.dtype}")
        if torch.isnan(value).any():
            raise ValueError(f"{name} contains NaN")
    if log_unary.dim() != 3:
        raise ValueError(f"log_unary must have shape (B, T, K); got {tuple(log_unary.shape)}")
    batch, steps, k = log_unary.shape
    if batch < 1 or steps < 1 or k < 1:
        raise ValueError(f"log_unary must be non-empty; got shape {tuple(log_unary.shape)}")
    if tuple(log_start.shape) != (k,):
        raise ValueError(f"log_start must have shape (K={k},) to match log_unary; got {tuple(log_start.shape)}")
    if tuple(log_trans.shape) != (k, k):
        raise ValueError(
            f"log_trans must have shape (K, K) = ({k}, {k}) to match log_unary; got {tuple(log_trans.shape)}"
        )
    if lengths is None:
        return torch.full((batch,), steps, dtype=torch.int64, device=log_unary.device)
    checked = check_lengths(lengths, batch, steps)
    return torch.as_tensor(checked, device=log_unary.device)

