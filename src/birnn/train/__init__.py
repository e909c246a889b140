"""Training: one task-agnostic trainer, checkpoints (safetensors + JSON), configuration.

``load_task(run_dir)`` rebuilds whatever task a run directory holds.
"""

from birnn.train.checkpoint import CheckpointError, load_task
from birnn.train.config import TrainConfig, with_overrides
from birnn.train.trainer import ResumeMismatch, RunExists, RunLocked, Trainer, TrainingDiverged, evaluate

__all__ = [
    "CheckpointError",
    "ResumeMismatch",
    "RunExists",
    "RunLocked",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "evaluate",
    "load_task",
    "with_overrides",
]
