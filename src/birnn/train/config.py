"""Training configuration: one frozen dataclass, from which the CLI options are derived."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class TrainConfig:
    """How to train, independent of the task.

    lr_decay multiplies the learning rate after every epoch; patience stops
    after that many epochs without a better dev ``monitor`` value (None: never).
    shuffle=False batches the examples in the order given (no bucketing): the
    sequential partitioning of a text stream needs its batches in text order.
    """

    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 1e-3
    clip: float | None = 5.0
    lr_decay: float = 1.0
    patience: int | None = None
    monitor: str = "accuracy"
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
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0; got {self.lr}")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip must be > 0 or None; got {self.clip}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in known})
