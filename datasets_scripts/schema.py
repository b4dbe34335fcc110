"""The one schema every converter and the synthetic generator write (``datasets.Features``).

One row is one pose sequence. Columns present in every dataset:

==================  ====================================================  ==================================
column              feature                                               meaning
==================  ====================================================  ==================================
``sample_id``       ``Value("string")``                                   unique id (NTU ``S001C002P003R002A013``,
                                                                          H36M ``S9/Walking 1/54138969``, ...)
``poses``           ``Array4D((None, M, J, C), "float32")``               **frames x persons x joints x coords**
                                                                          (see "Storage order" below)
``num_persons``     ``Value("int32")``                                    person slots holding data (<= M)
``layout``          ``Value("string")``                                   ``modeling_ups.skeletons`` layout name
``units``           ``Value("string")``                                   ``"mm"`` (every 3D dataset) or ``"px"``
``label``           ``ClassLabel(names=...)``                             action class; -1 when the dataset has
                                                                          no label for the row
``tasks``           ``List(Value("string"))``                             the ``UPS_TASKS`` the row serves
``subject``         ``Value("string")``                                   performer (``"P003"``, ``"S9"``, ...);
                                                                          ``""`` when unknown
``camera``          ``Value("string")``                                   camera / view (``"C002"``,
                                                                          ``"54138969"``, ``"v01"``); ``""``
``setup``           ``Value("int32")``                                    NTU setup number; -1 elsewhere
``source_file``     ``Value("string")``                                   file the row came from (name only)
``fps``             ``Value("float32")``                                  frame rate of ``poses``
==================  ====================================================  ==================================

Optional columns (present when a dataset has them, absent otherwise):

- ``poses_2d``: ``Array4D((None, M, J, 2), "float32")`` pixels, the 2D input of a 3D row (H36M, HumanEva,
  synthetic ``h36m17``), frame-aligned with ``poses``.
- ``layout_2d``: ``Value("string")``, present when ``poses_2d`` is in another layout than ``poses`` (a detector's
  own, e.g. ``mpii16`` Stacked-Hourglass joints with ``h36m17`` 3D targets); ``poses_2d`` then has that
  layout's J.
- ``confidences``: ``Array3D((None, M, J), "float32")`` in [0, 1], detector scores of 2D keypoints (0 = missing
  joint; its coordinates are then meaningless).
- ``image_size``: ``List(Value("int32"), length=2)`` ``[width, height]`` of the frames pixel coordinates refer to.
- ``camera_intrinsics``: ``List(Value("float32"), length=9)`` ``[fx, fy, cx, cy, k1, k2, k3, p1, p2]`` in pixels
  (VideoPose3D's order): projects the camera-frame ``poses`` onto ``poses_2d``.

Units: every 3D coordinate is in **millimetres** (Kinect metres and VideoPose3D metres are scaled by 1000) in
the camera frame of the recording sensor; every 2D coordinate is in **pixels** of ``image_size``.

Storage order: ``datasets`` stores N-d arrays efficiently (``ArrayXD``, read back as numpy views at ~0.5 ms per
row) only when the *first* dimension is the one that varies; nested ``List`` features of the same data read
~50x slower. Frame counts vary, so ``poses`` is stored frames-first, ``(T, M, J, C)``, with a fixed person
dimension ``M`` per dataset (absent persons are zeros). :func:`to_persons_first` turns a stored array into the
``(M, T, J, C)`` order that ``modeling_ups.pose_io``, pyskl and the model use; :func:`to_storage` does the
reverse.

Splits: every saved dataset is a ``DatasetDict`` with ``train`` and ``test`` splits of one benchmark. A
converter asked for several benchmarks (NTU ``xsub`` and ``xview``) writes one such ``DatasetDict`` per
benchmark under ``<output_dir>/<benchmark>``.
"""

from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import pyarrow as pa
from datasets import Array3D, Array4D, ClassLabel, Dataset, DatasetInfo, Features, List as ListFeature, Value
from datasets.table import InMemoryTable

from modeling_ups.skeletons import get_layout

SCHEMA_VERSION = "1.0"

REQUIRED_COLUMNS = ("sample_id", "poses", "num_persons", "layout", "units", "label", "tasks", "subject", "camera",
                    "setup", "source_file", "fps")
OPTIONAL_COLUMNS = ("poses_2d", "layout_2d", "confidences", "image_size", "camera_intrinsics")

# Tasks a row can serve (names as in modeling_ups.configuration_ups.UPS_TASKS).
TASKS_3D_ACTION = ["action_recognition_3d", "early_action_prediction_3d"]
TASKS_2D_ACTION = ["action_recognition_2d"]
TASKS_POSE_ESTIMATION = ["pose_estimation_3d"]


def pose_features(layout: str, num_coords: int, class_names: Sequence[str], max_persons: int = 1, *,
                  with_poses_2d: bool = False, with_confidences: bool = False, with_image_size: bool = False,
                  with_camera_intrinsics: bool = False, layout_2d: Optional[str] = None) -> Features:
    """The schema of one dataset.

    Args:
        layout: skeleton layout of ``poses`` (fixes J).
        num_coords: 3 for 3D datasets, 2 for 2D ones.
        class_names: the official class names, in label-id order.
        max_persons: M, the person slots every row has.
        with_poses_2d / with_confidences / with_image_size / with_camera_intrinsics: add the optional columns.
        layout_2d: the layout of ``poses_2d`` when it differs from ``layout`` (adds the ``layout_2d`` column).
    """
    num_joints = get_layout(layout).num_joints
    if num_coords not in (2, 3):
        raise ValueError(f"num_coords must be 2 or 3, got {num_coords}")
    if max_persons < 1:
        raise ValueError(f"max_persons must be >= 1, got {max_persons}")
    if not class_names:
        raise ValueError("class_names is empty")
    columns = {
        "sample_id": Value("string"),
        "poses": Array4D(shape=(None, max_persons, num_joints, num_coords), dtype="float32"),
        "num_persons": Value("int32"),
        "layout": Value("string"),
        "units": Value("string"),
        "label": ClassLabel(names=list(class_names)),
        "tasks": ListFeature(Value("string")),
        "subject": Value("string"),
        "camera": Value("string"),
        "setup": Value("int32"),
        "source_file": Value("string"),
        "fps": Value("float32"),
    }
    if layout_2d is not None and not with_poses_2d:
        raise ValueError("layout_2d needs with_poses_2d=True")
    if with_poses_2d:
        num_joints_2d = num_joints if layout_2d is None else get_layout(layout_2d).num_joints
        columns["poses_2d"] = Array4D(shape=(None, max_persons, num_joints_2d, 2), dtype="float32")
    if layout_2d is not None:
        columns["layout_2d"] = Value("string")
    if with_confidences:
        columns["confidences"] = Array3D(shape=(None, max_persons, num_joints), dtype="float32")
    if with_image_size:
        columns["image_size"] = ListFeature(Value("int32"), length=2)
    if with_camera_intrinsics:
        columns["camera_intrinsics"] = ListFeature(Value("float32"), length=9)
    return Features(columns)


def to_storage(poses: np.ndarray, max_persons: int) -> np.ndarray:
    """``(M', T, J, C)`` persons-first -> stored ``(T, M, J, C)`` float32, padding/truncating persons to M."""
    poses = np.asarray(poses, dtype=np.float32)
    if poses.ndim != 4:
        raise ValueError(f"to_storage: expected (M, T, J, C) poses, got shape {poses.shape}")
    if poses.shape[0] > max_persons:
        poses = poses[:max_persons]
    elif poses.shape[0] < max_persons:
        pad = np.zeros((max_persons - poses.shape[0],) + poses.shape[1:], dtype=np.float32)
        poses = np.concatenate([poses, pad])
    return np.ascontiguousarray(poses.transpose(1, 0, *range(2, poses.ndim)))


def scores_to_storage(scores: np.ndarray, max_persons: int) -> np.ndarray:
    """``(M', T, J)`` -> stored ``(T, M, J)`` float32 (the confidences column)."""
    return to_storage(np.asarray(scores, dtype=np.float32)[..., None], max_persons)[..., 0]


def to_persons_first(stored: np.ndarray) -> np.ndarray:
    """A stored ``poses``/``poses_2d`` ``(T, M, J, C)`` or ``confidences`` ``(T, M, J)`` -> persons first."""
    stored = np.asarray(stored)
    if stored.ndim not in (3, 4):
        raise ValueError(f"to_persons_first: expected a (T, M, J[, C]) array, got shape {stored.shape}")
    return np.swapaxes(stored, 0, 1)


def count_persons(poses_persons_first: np.ndarray) -> int:
    """Number of person slots that hold any non-zero coordinate."""
    p = np.asarray(poses_persons_first)
    return int(np.count_nonzero(np.abs(p).reshape(p.shape[0], -1).max(axis=1) > 0))


def make_example(*, sample_id: str, poses: np.ndarray, layout: str, units: str, label: int, tasks: Sequence[str],
                 max_persons: int, fps: float, subject: str = "", camera: str = "", setup: int = -1,
                 source_file: str = "", poses_2d: Optional[np.ndarray] = None, layout_2d: Optional[str] = None,
                 confidences: Optional[np.ndarray] = None, image_size: Optional[Sequence[int]] = None,
                 camera_intrinsics: Optional[Sequence[float]] = None) -> Dict:
    """One row in the schema from persons-first arrays (``poses`` (M, T, J, C), ``confidences`` (M, T, J)).

    Optional columns are included only when given, so the row must match a :func:`pose_features` built with the
    same optional columns.
    """
    poses = np.asarray(poses, dtype=np.float32)
    spec = get_layout(layout)
    if poses.ndim != 4 or poses.shape[2] != spec.num_joints:
        raise ValueError(f"{sample_id}: poses must be (M, T, {spec.num_joints}, C) for layout {spec.name!r}, got "
                         f"{poses.shape}")
    example = {
        "sample_id": str(sample_id),
        "poses": to_storage(poses, max_persons),
        "num_persons": min(count_persons(poses), max_persons),
        "layout": spec.name,
        "units": units,
        "label": int(label),
        "tasks": list(tasks),
        "subject": str(subject),
        "camera": str(camera),
        "setup": int(setup),
        "source_file": str(source_file),
        "fps": float(fps),
    }
    if layout_2d is not None and poses_2d is None:
        raise ValueError(f"{sample_id}: layout_2d given without poses_2d")
    if poses_2d is not None:
        poses_2d = np.asarray(poses_2d, dtype=np.float32)
        joints_2d = spec.num_joints if layout_2d is None else get_layout(layout_2d).num_joints
        if poses_2d.shape[:2] != poses.shape[:2] or poses_2d.shape[2:] != (joints_2d, 2):
            raise ValueError(f"{sample_id}: poses_2d {poses_2d.shape} does not match poses {poses.shape} with "
                             f"{joints_2d} 2D joints")
        example["poses_2d"] = to_storage(poses_2d, max_persons)
        if layout_2d is not None:
            example["layout_2d"] = get_layout(layout_2d).name
    if confidences is not None:
        confidences = np.asarray(confidences, dtype=np.float32)
        if confidences.shape != poses.shape[:3]:
            raise ValueError(f"{sample_id}: confidences {confidences.shape} do not match poses {poses.shape}")
        example["confidences"] = scores_to_storage(confidences, max_persons)
    if image_size is not None:
        example["image_size"] = [int(image_size[0]), int(image_size[1])]
    if camera_intrinsics is not None:
        if len(camera_intrinsics) != 9:
            raise ValueError(f"{sample_id}: camera_intrinsics needs 9 values, got {len(camera_intrinsics)}")
        example["camera_intrinsics"] = [float(v) for v in camera_intrinsics]
    return example


def check_features(features: Features) -> None:
    """Raise ValueError when ``features`` lacks a required column or has an unknown one."""
    missing = [c for c in REQUIRED_COLUMNS if c not in features]
    unknown = [c for c in features if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown:
        raise ValueError(f"features do not follow the ups schema: missing {missing}, unknown {unknown}")


def examples_to_columns(examples: Iterable[Dict], features: Features) -> Dict[str, List]:
    """Rows -> columns dict for ``Dataset.from_dict`` (keeps numpy arrays as they are)."""
    columns: Dict[str, List] = {name: [] for name in features}
    for example in examples:
        for name in features:
            columns[name].append(example[name])
    return columns


def ragged_array(values: np.ndarray, lengths: Sequence[int], feature) -> pa.ExtensionArray:
    """Arrow column of an ``ArrayXD`` feature with a dynamic first dimension, built without a Python loop.

    Args:
        values: the rows' arrays concatenated along their first dimension, ``(sum(lengths), *feature.shape[1:])``.
        lengths: first-dimension size of every row.
        feature: the ``Array3D``/``Array4D`` feature (``shape[0] is None``).
    """
    inner = tuple(feature.shape[1:])
    values = np.ascontiguousarray(values, dtype=feature.dtype)
    lengths = np.asarray(lengths, dtype=np.int64)
    if values.shape[1:] != inner or values.shape[0] != lengths.sum():
        raise ValueError(f"ragged_array: values {values.shape} do not hold rows {inner} of total length "
                         f"{int(lengths.sum())}")
    level = pa.array(values.reshape(-1))
    count = values.size
    for size in reversed(inner):  # datasets stores ArrayXD as nested variable-size lists
        count //= size
        level = pa.ListArray.from_arrays(pa.array(np.arange(0, count * size + 1, size, dtype=np.int32)), level)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    storage = pa.ListArray.from_arrays(pa.array(offsets), level)
    return pa.ExtensionArray.from_storage(feature(), storage)


def padded_rows(padded: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    """Concatenate the first ``lengths[i]`` entries of each row of a padded batch ``(n, T, ...)``."""
    lengths = np.asarray(lengths)
    mask = np.arange(padded.shape[1])[None] < lengths[:, None]
    return padded[mask]


def dataset_from_columns(columns: Dict[str, object], features: Features, fingerprint: Optional[str] = None) -> Dataset:
    """An in-memory ``Dataset`` from columns: Arrow arrays (e.g. :func:`ragged_array`) or Python lists.

    Skips ``Dataset.from_dict``'s per-row encoding and hashing of the whole table (the fingerprint is given, or
    derived from the column names and length), which dominate the cost for large synthetic datasets.
    """
    check_features(features)
    schema = features.arrow_schema
    arrays = []
    for field in schema:
        if field.name not in columns:
            raise ValueError(f"dataset_from_columns: missing column {field.name!r}")
        value = columns[field.name]
        if isinstance(value, (pa.Array, pa.ChunkedArray)):
            arrays.append(value)
        else:
            arrays.append(pa.array(value, type=field.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    if fingerprint is None:
        import hashlib

        fingerprint = hashlib.sha256(repr((schema.names, table.num_rows, table.nbytes)).encode()).hexdigest()[:16]
    return Dataset(InMemoryTable(table), info=DatasetInfo(features=features), fingerprint=fingerprint)


__all__ = [
    "SCHEMA_VERSION",
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "TASKS_3D_ACTION",
    "TASKS_2D_ACTION",
    "TASKS_POSE_ESTIMATION",
    "pose_features",
    "make_example",
    "to_storage",
    "scores_to_storage",
    "to_persons_first",
    "count_persons",
    "check_features",
    "examples_to_columns",
    "ragged_array",
    "padded_rows",
    "dataset_from_columns",
]
