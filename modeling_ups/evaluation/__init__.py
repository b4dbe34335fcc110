"""Evaluation metrics for UPS (plain numpy; no checkpoint imports this subpackage).

The ``evaluate`` metric scripts in ``metrics/`` and the training loop both call these functions, so every
reported number comes from one implementation.
"""

from .metrics import (
    OBSERVATION_RATIOS,
    confusion_matrix,
    early_prediction_curve,
    mean_class_accuracy,
    mean_velocity_error,
    mpjpe,
    n_mpjpe,
    observed_frames,
    p_mpjpe,
    per_group_mean,
    procrustes_align,
    topk_accuracy,
)

__all__ = [
    "OBSERVATION_RATIOS",
    "mpjpe",
    "procrustes_align",
    "p_mpjpe",
    "n_mpjpe",
    "mean_velocity_error",
    "per_group_mean",
    "topk_accuracy",
    "confusion_matrix",
    "mean_class_accuracy",
    "early_prediction_curve",
    "observed_frames",
]
