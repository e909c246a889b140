"""Training: one task-agnostic trainer, checkpoints (safetensors + JSON), configuration."""

from birnn.train.checkpoint import CheckpointError
from birnn.train.config import TrainConfig
from birnn.train.trainer import Trainer, TrainingDiverged, evaluate

__all__ = ["CheckpointError", "TrainConfig", "Trainer", "TrainingDiverged", "evaluate"]
