"""``Deferred``: a tensor (or a state of tensors) computed when it is first read.

Some final states cost real work that most callers never read: an LSTM's cell
state after each sequence's last valid step, behind a fused kernel on a padded
batch, needs two GEMMs over every valid token (``functional.lstm_cell_state``).
A ``Deferred`` holds that computation; ``resolve`` runs it once, on first use,
in the autograd mode of the call that made it (so a state read after
``torch.no_grad()`` or ``torch.inference_mode()`` has ended is computed as it
would have been inside), and keeps the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["Deferred", "is_deferred", "resolve"]


class Deferred:
    """``Deferred(compute)``: ``compute()`` on the first ``resolve``, in the autograd mode of now."""

    __slots__ = ("_compute", "_grad", "_inference", "_value")

    def __init__(self, compute: Callable[[], Any]) -> None:
        self._compute: Callable[[], Any] | None = compute
        self._grad = torch.is_grad_enabled()
        self._inference = torch.is_inference_mode_enabled()
        self._value: Any = None

    def get(self) -> Any:
        if self._compute is not None:
            mode = torch.inference_mode() if self._inference else torch.set_grad_enabled(self._grad)
            with mode:
                self._value = resolve(self._compute())
            self._compute = None  # frees what the computation held
        return self._value

    def __repr__(self) -> str:
        return "Deferred(computed)" if self._compute is None else "Deferred(not yet computed)"


def is_deferred(value: Any) -> bool:
    """Whether ``value`` or any item of it (tuples, nested) is still a ``Deferred``."""
    if isinstance(value, Deferred):
        return True
    return isinstance(value, tuple) and any(is_deferred(item) for item in value)


def resolve(value: Any) -> Any:
    """``value`` with every ``Deferred`` in it (tuples and named tuples, nested) computed."""
    if isinstance(value, Deferred):
        return value.get()
    if isinstance(value, tuple) and is_deferred(value):
        items = [resolve(item) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    return value
