"""Devices: which one a command asked for, where a model lives, and moving batches there.

``--device auto|cpu|cuda|cuda:N``: auto is the first CUDA device when torch sees one, else the CPU.
A task's model is moved once (``task.model.to(device)``); every batch follows it (``to_device``)
and the tasks build their masks and tables on the device of the tensors they are given.
"""

from __future__ import annotations

import re
from typing import Any

import torch

DEVICES = "auto | cpu | cuda | cuda:N"


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """"auto" (or None) -> cuda when available, else cpu; "cpu", "cuda", "cuda:N" -> that device,
    ValueError when CUDA (or device N) is not there."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec is None or spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(spec, str) or not re.fullmatch(r"cpu|meta|cuda(:\d+)?", spec):
        raise ValueError(f"device must be one of {DEVICES}; got {spec!r}")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r}: torch sees no CUDA device here (use --device cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (the CPU for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def to_device(batch: Any, device: torch.device) -> Any:
    """A tensor, or a (named) tuple or list of them and other values, with every tensor on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch if batch.device == device else batch.to(device, non_blocking=True)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(value, device) for value in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch
