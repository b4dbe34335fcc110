"""Evaluation numerics for the four UPS tasks: the one home of every metric formula in the package.

Pose estimation (Human3.6M protocols, inputs in any length unit, results in the same unit):

- ``mpjpe``: mean per-joint position error (protocol 1).
- ``p_mpjpe``: MPJPE after a per-sample similarity (Procrustes) alignment, rotation + uniform scale +
  translation, reflections excluded (protocol 2).
- ``n_mpjpe``: MPJPE after the least-squares uniform scale per sample (Rhodin et al., 2018).
- ``mean_velocity_error``: error of the first temporal derivative (MPJVE, units per frame).
- ``per_group_mean``: per-action tables.

Action recognition and early prediction: ``topk_accuracy``, ``mean_class_accuracy``, ``confusion_matrix``,
``early_prediction_curve``.

Everything here is plain numpy in float64 so training loops, the ``evaluate`` metric scripts in ``metrics/``
and the tests compute exactly the same numbers. Bad input (mismatched shapes, NaN/inf, labels out of range)
raises ``ValueError`` naming the problem instead of silently broadcasting.
"""

from typing import Dict, Hashable, Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..configuration_ups import observed_frames  # the early-prediction rule has one home: the task spec

RootJoint = Union[None, int, Sequence[int]]

# Observation ratios early action prediction is reported at (10 %, 20 %, ..., 100 % of the frames seen).
OBSERVATION_RATIOS: Tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 11))

_REDUCTIONS = ("mean", "sample", "none")


# ----------------------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------------------


def _check_finite(array: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")


def _as_pose_pair(predictions, references, metric: str) -> Tuple[np.ndarray, np.ndarray]:
    """Validated float64 copies of two pose arrays of identical shape (..., J, C)."""
    try:
        pred = np.asarray(predictions, dtype=np.float64)
        ref = np.asarray(references, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{metric}: predictions and references must be numeric arrays ({err})") from None
    if pred.shape != ref.shape:
        raise ValueError(
            f"{metric}: predictions and references must have the same shape, got {pred.shape} and {ref.shape}"
        )
    if pred.ndim < 2:
        raise ValueError(f"{metric}: expected poses of shape (..., J, C), got shape {pred.shape}")
    if pred.size == 0:
        raise ValueError(f"{metric}: got empty arrays of shape {pred.shape}")
    _check_finite(pred, f"{metric}: predictions")
    _check_finite(ref, f"{metric}: references")
    return pred, ref


def _root_indices(root_joint: RootJoint, num_joints: int, metric: str) -> Optional[list]:
    if root_joint is None:
        return None
    indices = [root_joint] if np.ndim(root_joint) == 0 else list(root_joint)
    if not indices:
        raise ValueError(f"{metric}: root_joint is an empty sequence; pass None for no root alignment")
    for index in indices:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"{metric}: root_joint must be None, an int or a sequence of ints, got {root_joint!r}")
        if not -num_joints <= index < num_joints:
            raise ValueError(f"{metric}: root_joint {index} is out of range for {num_joints} joints")
    return [int(i) for i in indices]


def _root_relative(poses: np.ndarray, root: Optional[list]) -> np.ndarray:
    """Subtract the mean of the root joints (the convention of ``SkeletonLayout.root``)."""
    if root is None:
        return poses
    return poses - poses[..., root, :].mean(axis=-2, keepdims=True)


def _as_mask(mask, batch_shape: Tuple[int, ...], metric: str) -> Optional[np.ndarray]:
    """Boolean joint mask broadcast to ``batch_shape`` = poses.shape[:-1] (..., J)."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        if not np.all(np.isin(mask, (0, 1))):
            raise ValueError(f"{metric}: mask must be boolean or 0/1, got values other than 0 and 1")
        mask = mask.astype(bool)
    try:
        mask = np.broadcast_to(mask, batch_shape)
    except ValueError:
        raise ValueError(
            f"{metric}: mask of shape {mask.shape} does not broadcast to the joint shape {batch_shape}"
        ) from None
    if not mask.any():
        raise ValueError(f"{metric}: mask selects no joint")
    return mask


def _reduce(errors: np.ndarray, mask: Optional[np.ndarray], reduction: str, metric: str):
    """Reduce per-joint errors (..., J): 'mean' -> float, 'sample' -> (...,) array, 'none' -> (..., J)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{metric}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if reduction == "none":
        return errors if mask is None else np.where(mask, errors, np.nan)
    if mask is None:
        return float(errors.mean()) if reduction == "mean" else errors.mean(axis=-1)
    if reduction == "mean":
        return float(errors[mask].mean())
    counts = mask.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        # A sample whose joints are all masked has no error: NaN rather than a misleading 0.
        return np.where(counts > 0, np.where(mask, errors, 0.0).sum(axis=-1) / np.maximum(counts, 1), np.nan)


# ----------------------------------------------------------------------------------------------------------
# pose estimation
# ----------------------------------------------------------------------------------------------------------


def mpjpe(predictions, references, root_joint: RootJoint = None, mask=None, reduction: str = "mean"):
    """Mean per-joint position error: the mean Euclidean distance between predicted and true joints.

    Args:
        predictions (`array-like` of shape `(..., J, C)`):
            Predicted joints, e.g. `(N, J, 3)` or `(N, T, J, 3)`; `C` is 3 (or 2 for image-plane errors).
        references (`array-like`, same shape as `predictions`):
            Ground-truth joints in the same unit (millimetres for Human3.6M).
        root_joint (`int` or `Sequence[int]`, *optional*):
            When given, both arrays are first made relative to the mean of these joints (protocol 1 on
            Human3.6M uses the pelvis, joint 0 of `h36m17`). `None` compares the arrays as they are.
        mask (`array-like` of bool, broadcastable to `(..., J)`, *optional*):
            Joints to score (e.g. to drop padded joints); the mean runs over the selected joints only.
        reduction (`str`, *optional*, defaults to `"mean"`):
            `"mean"`: one float; `"sample"`: the mean over joints, shape `(...)`; `"none"`: per-joint
            errors `(..., J)` (masked joints are NaN).

    Returns:
        `float` (or `np.ndarray` for `reduction != "mean"`) in the unit of the inputs.
    """
    pred, ref = _as_pose_pair(predictions, references, "mpjpe")
    root = _root_indices(root_joint, pred.shape[-2], "mpjpe")
    mask = _as_mask(mask, pred.shape[:-1], "mpjpe")
    errors = np.linalg.norm(_root_relative(pred, root) - _root_relative(ref, root), axis=-1)
    return _reduce(errors, mask, reduction, "mpjpe")


def procrustes_align(predictions, references, mask=None) -> np.ndarray:
    """Apply to each sample of `predictions` the similarity transform that best fits it to `references`.

    For every sample (the leading dimensions) it solves ``min_{s, R, t} sum_j ||s * p_j @ R + t - g_j||^2``
    over a scale ``s >= 0``, a rotation ``R`` (det +1) and a translation ``t`` (Umeyama, 1991): with the
    centred, Frobenius-normalised point sets ``X``, ``Y`` and the SVD ``X^T Y = U S V^T``, the optimum is
    ``R = U D V^T`` and ``s = trace(D S) * |Y| / |X|`` where ``D = diag(1, ..., 1, sign det(U V^T))``.
    The ``D`` correction turns a best-fitting reflection into the best proper rotation: a mirrored pose is
    not explained away by the alignment (the same convention as the Human3.6M protocol-2 code of
    VideoPose3D and MotionBERT).

    Args:
        predictions, references (`array-like` of shape `(..., J, C)`): the two point sets per sample.
        mask (`array-like` of bool broadcastable to `(..., J)`, *optional*): joints used to fit the transform.

    Returns:
        `np.ndarray` of shape `(..., J, C)`: the aligned predictions (all joints, masked ones included).
    """
    pred, ref = _as_pose_pair(predictions, references, "procrustes_align")
    mask = _as_mask(mask, pred.shape[:-1], "procrustes_align")
    shape = pred.shape
    num_joints, dim = shape[-2:]
    pred = pred.reshape(-1, num_joints, dim)
    ref = ref.reshape(-1, num_joints, dim)
    weights = np.ones(pred.shape[:2]) if mask is None else mask.reshape(-1, num_joints).astype(np.float64)
    weights = weights[..., None]  # (N, J, 1)
    counts = np.maximum(weights.sum(axis=1, keepdims=True), 1.0)

    mu_pred = (weights * pred).sum(axis=1, keepdims=True) / counts
    mu_ref = (weights * ref).sum(axis=1, keepdims=True) / counts
    x = (pred - mu_pred) * weights
    y = (ref - mu_ref) * weights
    norm_x = np.linalg.norm(x, axis=(1, 2), keepdims=True)
    norm_y = np.linalg.norm(y, axis=(1, 2), keepdims=True)
    # A collapsed point set (all joints equal) has no orientation: the best similarity maps it to the
    # reference centroid (scale 0), which the zero cross-covariance below yields once the norm is not 0.
    x = x / np.where(norm_x > 0, norm_x, 1.0)
    y = y / np.where(norm_y > 0, norm_y, 1.0)

    u, singular, vt = np.linalg.svd(np.swapaxes(x, 1, 2) @ y)  # (N, C, C), (N, C), (N, C, C)
    sign = np.sign(np.linalg.det(u @ vt))
    sign = np.where(sign == 0, 1.0, sign)
    u[:, :, -1] *= sign[:, None]
    singular[:, -1] *= sign
    rotation = u @ vt
    scale = (singular.sum(axis=1)[:, None, None] * norm_y / np.where(norm_x > 0, norm_x, 1.0))
    aligned = scale * ((pred - mu_pred) @ rotation) + mu_ref
    return aligned.reshape(shape)


def p_mpjpe(predictions, references, root_joint: RootJoint = None, mask=None, reduction: str = "mean"):
    """MPJPE after rigid alignment with scale (Procrustes, Human3.6M protocol 2), per sample.

    Each pose (the last two dimensions) is aligned to its reference by `procrustes_align` before the
    error is taken, so global rotation, uniform scale and translation are forgiven but a mirror image is not.

    Args:
        predictions, references, mask, reduction: as in `mpjpe`; the mask also restricts the joints the
            alignment is fitted on.
        root_joint (*optional*): accepted for a uniform signature; it does not change the result, since
            the alignment removes any translation.

    Returns:
        `float` (or `np.ndarray` for `reduction != "mean"`) in the unit of the inputs.
    """
    pred, ref = _as_pose_pair(predictions, references, "p_mpjpe")
    _root_indices(root_joint, pred.shape[-2], "p_mpjpe")
    mask = _as_mask(mask, pred.shape[:-1], "p_mpjpe")
    aligned = procrustes_align(pred, ref, mask=mask)
    return _reduce(np.linalg.norm(aligned - ref, axis=-1), mask, reduction, "p_mpjpe")


def n_mpjpe(predictions, references, root_joint: RootJoint = None, mask=None, reduction: str = "mean"):
    """MPJPE after scaling each predicted pose by the least-squares factor ``<p, g> / <p, p>`` (N-MPJPE).

    The poses are made root-relative first (when `root_joint` is given), so the scale is about the root,
    as in the semi-supervised protocol of Rhodin et al. (2018). Arguments are those of `mpjpe`.
    """
    pred, ref = _as_pose_pair(predictions, references, "n_mpjpe")
    root = _root_indices(root_joint, pred.shape[-2], "n_mpjpe")
    mask = _as_mask(mask, pred.shape[:-1], "n_mpjpe")
    pred, ref = _root_relative(pred, root), _root_relative(ref, root)
    weights = np.ones(pred.shape[:-1]) if mask is None else mask.astype(np.float64)
    weights = weights[..., None]
    pred_energy = (weights * pred * pred).sum(axis=(-2, -1), keepdims=True)
    cross = (weights * pred * ref).sum(axis=(-2, -1), keepdims=True)
    scale = np.where(pred_energy > 0, cross / np.where(pred_energy > 0, pred_energy, 1.0), 0.0)
    return _reduce(np.linalg.norm(scale * pred - ref, axis=-1), mask, reduction, "n_mpjpe")


def mean_velocity_error(predictions, references, root_joint: RootJoint = None, time_axis: int = -3) -> float:
    """Mean per-joint velocity error (MPJVE): MPJPE of the frame-to-frame differences.

    Args:
        predictions, references (`array-like` of shape `(..., T, J, C)`): pose sequences, `T >= 2`.
        root_joint (*optional*): as in `mpjpe`, applied before differencing.
        time_axis (`int`, *optional*, defaults to `-3`): the frame axis.

    Returns:
        `float` in input units per frame (multiply by the frame rate for units per second).
    """
    pred, ref = _as_pose_pair(predictions, references, "mean_velocity_error")
    if pred.ndim < 3:
        raise ValueError(f"mean_velocity_error: expected sequences of shape (..., T, J, C), got {pred.shape}")
    axis = time_axis % pred.ndim
    if axis >= pred.ndim - 2:
        raise ValueError(f"mean_velocity_error: time_axis {time_axis} points at the joint or coordinate axis")
    if pred.shape[axis] < 2:
        raise ValueError(f"mean_velocity_error: need at least 2 frames along axis {time_axis}, got {pred.shape}")
    root = _root_indices(root_joint, pred.shape[-2], "mean_velocity_error")
    pred, ref = _root_relative(pred, root), _root_relative(ref, root)
    velocity_error = np.diff(pred, axis=axis) - np.diff(ref, axis=axis)
    return float(np.linalg.norm(velocity_error, axis=-1).mean())


def per_group_mean(errors, groups: Iterable[Hashable]) -> Dict[Hashable, float]:
    """Mean of per-sample values in each group, e.g. MPJPE per Human3.6M action.

    Args:
        errors (`array-like` of shape `(N,)`): one value per sample (e.g. `mpjpe(..., reduction="sample")`).
        groups (`Iterable` of length `N`): the group of each sample (action names, subject ids, ...).

    Returns:
        `dict` group -> mean, in sorted group order (first-appearance order when groups are not comparable).
        Papers' "average" column is the mean of these per-group means, not the mean over samples.
    """
    values = np.asarray(errors, dtype=np.float64)
    groups = list(groups)
    if values.ndim != 1:
        raise ValueError(f"per_group_mean: errors must be one value per sample (N,), got shape {values.shape}")
    if len(groups) != values.shape[0]:
        raise ValueError(f"per_group_mean: got {values.shape[0]} errors but {len(groups)} group labels")
    _check_finite(values, "per_group_mean: errors")
    sums: Dict[Hashable, float] = {}
    counts: Dict[Hashable, int] = {}
    for group, value in zip(groups, values):
        sums[group] = sums.get(group, 0.0) + float(value)
        counts[group] = counts.get(group, 0) + 1
    try:
        order = sorted(sums)
    except TypeError:
        order = list(sums)
    return {group: sums[group] / counts[group] for group in order}


# ----------------------------------------------------------------------------------------------------------
# action recognition and early action prediction
# ----------------------------------------------------------------------------------------------------------


def _as_labels(labels, num_samples: Optional[int], metric: str, num_classes: Optional[int] = None) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{metric}: labels must have shape (N,), got {labels.shape}")
    if labels.size == 0:
        raise ValueError(f"{metric}: got no labels")
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise ValueError(f"{metric}: labels must be integer class ids, got dtype {labels.dtype}")
    if num_samples is not None and labels.shape[0] != num_samples:
        raise ValueError(f"{metric}: got {num_samples} predictions but {labels.shape[0]} labels")
    if labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes):
        bound = f"[0, {num_classes})" if num_classes is not None else "non-negative"
        raise ValueError(f"{metric}: labels must be {bound}; got range [{labels.min()}, {labels.max()}]")
    return labels.astype(np.int64)


def _as_scores(scores, metric: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"{metric}: scores must have shape (N, C) with N, C >= 1, got {scores.shape}")
    _check_finite(scores, f"{metric}: scores")
    return scores


def topk_accuracy(scores, labels, k: Union[int, Sequence[int]] = (1, 5)) -> Dict[str, float]:
    """Fraction of samples whose true class is among the `k` highest scores.

    Args:
        scores (`array-like` of shape `(N, C)`): class scores (logits or probabilities).
        labels (`array-like` of shape `(N,)`): true class ids in `[0, C)`.
        k (`int` or `Sequence[int]`, *optional*, defaults to `(1, 5)`): the k values; a `k` larger than `C`
            counts every sample as correct (top-5 over 4 classes is 1.0) instead of failing.

    Returns:
        `dict` such as `{"top1": 0.75, "top5": 1.0}`.

    Ties are broken towards the lower class id (a stable sort), so the result does not depend on chance.
    """
    scores = _as_scores(scores, "topk_accuracy")
    labels = _as_labels(labels, scores.shape[0], "topk_accuracy", num_classes=scores.shape[1])
    ks = [k] if np.ndim(k) == 0 else list(k)
    if not ks or any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1 for v in ks):
        raise ValueError(f"topk_accuracy: k must be a positive int or a sequence of them, got {k!r}")
    ranking = np.argsort(-scores, axis=1, kind="stable")
    # rank of the true class: its position in the descending ranking
    rank = np.argmax(ranking == labels[:, None], axis=1)
    return {f"top{int(v)}": float(np.mean(rank < v)) for v in ks}


def _as_predicted_labels(predictions, metric: str) -> np.ndarray:
    """Class ids from either predicted ids (N,) or scores (N, C)."""
    array = np.asarray(predictions)
    if array.ndim == 2:
        return np.argmax(_as_scores(array, metric), axis=1)
    return _as_labels(array, None, metric)


def confusion_matrix(predictions, labels, num_classes: Optional[int] = None) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        predictions (`array-like` of shape `(N,)` class ids or `(N, C)` scores, which are arg-maxed).
        labels (`array-like` of shape `(N,)`): true class ids.
        num_classes (`int`, *optional*): matrix size; defaults to the score width or the largest id + 1.

    Returns:
        `np.ndarray` of int64, shape `(num_classes, num_classes)`; row = true class, column = prediction.
    """
    predicted = _as_predicted_labels(predictions, "confusion_matrix")
    if num_classes is None:
        width = np.asarray(predictions).shape[1] if np.ndim(predictions) == 2 else 0
        num_classes = int(max(width, predicted.max() + 1, np.max(np.asarray(labels)) + 1))
    labels = _as_labels(labels, predicted.shape[0], "confusion_matrix", num_classes=num_classes)
    if predicted.max() >= num_classes:
        raise ValueError(f"confusion_matrix: predicted class {predicted.max()} >= num_classes {num_classes}")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def mean_class_accuracy(predictions, labels, num_classes: Optional[int] = None) -> float:
    """Mean over classes of the per-class accuracy (recall), counting only classes present in `labels`.

    Arguments are those of `confusion_matrix`. Unlike top-1 accuracy, every class weighs the same however
    many test samples it has.
    """
    matrix = confusion_matrix(predictions, labels, num_classes=num_classes)
    support = matrix.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(matrix)[present] / support[present]))


def early_prediction_curve(accuracy_by_ratio: Mapping[float, float]) -> Dict[str, object]:
    """Validate and order an early-prediction result: accuracy after observing each fraction of a clip.

    Args:
        accuracy_by_ratio (`Mapping[float, float]`): observation ratio in `(0, 1]` -> accuracy in `[0, 1]`,
            e.g. `{0.1: 0.32, 0.2: 0.41, ..., 1.0: 0.88}` (`OBSERVATION_RATIOS` are the customary ratios).

    Returns:
        `dict` with `"ratios"` and `"accuracies"` (lists in increasing ratio order) and `"average"`, the
        mean accuracy over the given ratios (the single number early-prediction tables often add).
    """
    if not accuracy_by_ratio:
        raise ValueError("early_prediction_curve: got no observation ratios")
    items = sorted((float(r), float(a)) for r, a in accuracy_by_ratio.items())
    ratios = np.array([r for r, _ in items])
    accuracies = np.array([a for _, a in items])
    _check_finite(ratios, "early_prediction_curve: ratios")
    _check_finite(accuracies, "early_prediction_curve: accuracies")
    if ratios.min() <= 0 or ratios.max() > 1:
        raise ValueError(f"early_prediction_curve: ratios must lie in (0, 1], got {ratios.tolist()}")
    if accuracies.min() < 0 or accuracies.max() > 1:
        raise ValueError(f"early_prediction_curve: accuracies must lie in [0, 1], got {accuracies.tolist()}")
    return {"ratios": ratios.tolist(), "accuracies": accuracies.tolist(), "average": float(accuracies.mean())}


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
