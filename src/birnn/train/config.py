"""Training configuration: one frozen dataclass, from which the CLI options are derived."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """How to train, independent of the task.

    lr_decay multiplies the learning rate after every epoch; patience stops
    after that many epochs without a better dev ``monitor`` value (None: never);
    monitor "auto" is the task's own choice (a tagger: span F1 for chunk tags, else accuracy);
    momentum applies to SGD.
    shuffle=False batches the examples in the order given (no bucketing): the
    sequential partitioning of a text stream needs its batches in text order.
    """

    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    clip: float | None = 5.0
    lr_decay: float = 1.0
    patience: int | None = None
    monitor: str = "auto"
    seed: int = 0
    bucket: bool = True
    shuffle: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1; got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {self.batch_size}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd'; got {self.optimizer!r}")
        for name in ("lr", "lr_decay") + (("clip",) if self.clip is not None else ()):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1); got {self.momentum}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None; got {self.patience}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in known})


def with_overrides(config: Any, **values: Any) -> Any:
    """A copy of a (nested) frozen dataclass with every field named in ``values`` replaced,
    wherever it lives: a field of ``config`` or of a dataclass field of it. ``None`` values
    are skipped (an option the user did not give); a name no dataclass has is an error."""
    values = {k: v for k, v in values.items() if v is not None}
    unused = set(values)
    result = _override(config, values, unused)
    if unused:
        raise ValueError(f"unknown setting(s) for {type(config).__name__}: {', '.join(sorted(unused))}")
    return result


def _override(config: Any, values: dict[str, Any], unused: set[str]) -> Any:
    changes: dict[str, Any] = {}
    for field in fields(config):
        current = getattr(config, field.name)
        if is_dataclass(current) and not isinstance(current, type):
            changes[field.name] = _override(current, values, unused)
        elif field.name in values:
            changes[field.name] = values[field.name]
            unused.discard(field.name)
    return replace(config, **changes)
