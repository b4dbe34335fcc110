"""Training utilities for ``examples/train.py``: recipes, resumable task-rotating data streams, crash-safe
checkpoints. No checkpoint needs this code, so it lives outside the flat model files."""

from .checkpointing import CheckpointManager
from .recipe import load_recipe, merge_options
from .sampling import ResumableBatchSampler, TaskRotation

__all__ = ["CheckpointManager", "load_recipe", "merge_options", "ResumableBatchSampler", "TaskRotation"]
