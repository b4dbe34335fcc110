"""Task datasets and collators for training and evaluation.

Every dataset follows ``datasets_scripts.schema`` (``poses`` stored frames-first, millimetres for 3D, pixels for
2D). This module turns rows into what the processor takes, per task:

- ``action_recognition_3d`` / ``early_action_prediction_3d``: ``poses`` (3D) -> label;
  early prediction keeps the first ``r`` of the frames, ``r`` drawn per sample while training.
- ``action_recognition_2d``: ``poses`` (2D pixels) with ``confidences`` when present -> label.
- ``pose_estimation_3d``: a window of ``poses_2d`` (pixels) -> the 3D pose of its centre frame (``poses``, mm).
  Long recordings are cut into windows centred on a random frame (training) or on every ``stride``-th frame
  (evaluation), padded by repeating the edge frames as VideoPose3D does.

Training may rotate 3D inputs at random (``rotation_degrees``): the camera of a test view is rarely one of the
training views (NW-UCLA cross-view, NTU cross-view), so the model must not learn the training cameras' viewpoints.
It may stretch each axis of a 3D clip by its own random factor (``scale_range``, pyskl's RandomScale), so that body
proportions and depth differ between views as they do between cameras. It may shear a 3D clip (``shear_range``,
AimCLR's random shear: each coordinate plus random multiples of the other two), which,
unlike a stretch, survives box normalisation and distorts a clip in ways no rotation does. It may move each joint of a
3D clip by Gaussian noise (``joint_offset_mm`` once per clip, ``joint_jitter_mm`` in every frame), as a depth camera's
tracker places a joint seen from another side consistently off, and unsteadily. It may also mirror samples
(``flip_probability``, VideoPose3D's flip augmentation): horizontal coordinates negated, left and right joints
swapped, in the input and in a pose target alike, which doubles the poses a small dataset shows (HumanEva-I) and
leaves every action's label as it is. Recognition clips resampled to the processor's ``num_frames`` may take a
random frame of each segment instead of its centre (``frame_sampling="segment"``, pyskl's training-time
UniformSampleFrames), or frames drawn anywhere in the clip with replacement and put in order
(``frame_sampling="sorted_draws"``, CTR-GCN's NW-UCLA feeder), which also varies the pace from one part of a clip to
the next, so that no two epochs show a clip at the same instants. Evaluation may turn every 3D test clip by one fixed
yaw and pitch (``test_view``), so that a model's scores of a clip seen from several nearby viewpoints can be averaged.

Randomness (observation ratios, window centres, rotations, scales, joint noise, flips) is a pure function of (seed,
task, stream position), so a resumed run sees exactly the samples an uninterrupted run would, however the stream is
split into ranks.
"""

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..configuration_ups import POSE_ESTIMATION_TASK, UPS_TASKS
from ..evaluation.metrics import OBSERVATION_RATIOS
from ..feature_extraction_ups import uniform_frame_indices
from ..skeletons import get_layout

EARLY_TASK = "early_action_prediction_3d"
VIEW_AUGMENTED_TASKS = ("action_recognition_3d", EARLY_TASK)
# Salts of the augmentations' random streams, so that they never repeat the ratio / centre draws or each other.
_ROTATION_STREAM = 1
_FLIP_STREAM = 2
_SCALE_STREAM = 3
_FRAME_STREAM = 4
_NOISE_STREAM = 5
_SHEAR_STREAM = 6
RECOGNITION_TASKS = ("action_recognition_3d", "action_recognition_2d")
# How a training recognition clip is resampled to the processor's `num_frames` (TaskCollator's `frame_sampling`).
FRAME_SAMPLINGS = ("centre", "segment", "sorted_draws")


def view_rotation(yaw_degrees: float, pitch_degrees: float) -> np.ndarray:
    """The 3x3 rotation by ``yaw_degrees`` about the vertical (y) axis, then ``pitch_degrees`` about the horizontal
    (x) axis. Both Kinect and H36M camera frames have y vertical, so this is a change of viewpoint around the
    person, never a person lying on their side."""
    yaw, pitch = np.deg2rad(yaw_degrees), np.deg2rad(pitch_degrees)
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    about_y = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    about_x = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    return (about_x @ about_y).astype(np.float32)


def random_view_rotation(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    """:func:`view_rotation` by a yaw and a pitch each uniform in [-max_degrees, max_degrees]."""
    yaw, pitch = rng.uniform(-max_degrees, max_degrees, size=2)
    return view_rotation(yaw, pitch)


def random_shear(rng: np.random.Generator, max_shear: float) -> np.ndarray:
    """A 3x3 shear: ones on the diagonal, each of the six other entries uniform in [-max_shear, max_shear], so each
    axis gains random multiples of the other two (AimCLR's shear augmentation, whose default amplitude is 0.5)."""
    shear = np.eye(3) + rng.uniform(-max_shear, max_shear, size=(3, 3)) * (1.0 - np.eye(3))
    return shear.astype(np.float32)


def _persons_first(stored) -> np.ndarray:
    return np.swapaxes(np.asarray(stored, dtype=np.float32), 0, 1)


def row_label_name(dataset, row) -> Optional[str]:
    label = int(row["label"])
    if label < 0:
        return None
    return dataset.features["label"].int2str(label)


def cut_into_windows(num_frames: int, window: Optional[int], processor) -> bool:
    """Whether a training recording of ``num_frames`` frames is cut into ``window``-frame windows (edge frames
    repeated) rather than given whole: when it is longer than the window, or shorter than the frames the model
    predicts per clip. (Evaluation with a window cuts every recording, so that every frame is predicted.)"""
    return window is not None and not processor.pose_estimation_target_frames <= num_frames <= window


@dataclass
class WindowIndex:
    """Pose-estimation evaluation samples: (row, centre frame) pairs over a dataset of recordings."""

    rows: np.ndarray
    centres: np.ndarray

    @classmethod
    def build(cls, processor, frame_counts: Sequence[int], stride: int, window: Optional[int]):
        rows, centres = [], []
        for r, n in enumerate(frame_counts):
            # With a window, the windows around every stride-th frame, edge-padded in recordings shorter than the
            # window too (VideoPose3D predicts every frame); without one, each clip whole: its predicted frame(s).
            picks = range(0, n, stride) if window is not None else [int(processor.target_frame_indices(n)[0])]
            rows.extend([r] * len(picks))
            centres.extend(picks)
        return cls(np.asarray(rows, dtype=np.int64), np.asarray(centres, dtype=np.int64))

    def __len__(self):
        return len(self.rows)


class TaskCollator:
    """Rows of one task's dataset -> processor outputs (``labels`` included).

    Args:
        processor: a ``UPSProcessor``.
        task: one of ``UPS_TASKS``.
        dataset: the ``datasets.Dataset`` rows come from (for class names).
        train: draw observation ratios / window centres at random (else: full clips, centre windows).
        seed: seed of that randomness.
        pose_window: input frames per pose-estimation window (odd; default: whole clips when they fit the
            processor's frame budget).
        observation_ratio: fixed ratio for early prediction (evaluation); training draws from the paper's grid.
        rotation_degrees: training only, 3D recognition and early prediction: rotate each clip by a random yaw
            and pitch up to this many degrees (:func:`random_view_rotation`); 0 turns it off. Zeros (absent
            persons, missing joints) stay zero because the rotation is linear.
        scale_range: training only, 3D recognition and early prediction: multiply each axis by its own factor drawn
            uniformly from [1 - scale_range, 1 + scale_range]; 0 turns it off. Refused with a processor that
            box-normalises clips, which undoes it.
        shear_range: training only, 3D recognition and early prediction: shear each clip after its rotation
            (:func:`random_shear`, off-diagonal entries up to this value); 0 turns it off.
        joint_offset_mm: training only, 3D recognition and early prediction: move each joint of a clip by one offset
            for the whole clip, each axis drawn from N(0, joint_offset_mm^2) (after the view transform, in the clip's
            millimetres); absent persons and missing joints stay zero. 0 turns it off.
        joint_jitter_mm: the same, drawn anew for every frame.
        flip_probability: training only, every task: mirror a sample with this probability
            (:meth:`SkeletonLayout.mirror`, input and pose target alike); 0 turns it off.
        frame_sampling: training only, 3D and 2D recognition with the processor's `num_frames` set, one of
            `FRAME_SAMPLINGS`: ``"centre"`` leaves the resampling to the processor (the centre of each of the
            `num_frames` equal segments of a clip); ``"segment"`` takes a random frame of each segment;
            ``"sorted_draws"`` draws `num_frames` frames of the whole clip uniformly with replacement and sorts them.
        test_clip: evaluation of 3D and 2D recognition with the processor's `num_frames` set: 0 takes each
            segment's centre; clip `c > 0` a random frame of each segment, drawn from (seed, c, sample), so that
            the scores of several clips of one sample can be averaged (pyskl's test-time `num_clips`).
        test_view: evaluation only, 3D recognition and early prediction: (yaw, pitch) in degrees by which every
            test clip is turned (:func:`view_rotation`), so that the scores of one clip seen from several nearby
            viewpoints can be averaged (a test-time counterpart of ``rotation_degrees``); (0, 0) leaves clips as
            they are.
    """

    def __init__(self, processor, task: str, dataset, train: bool, seed: int = 0,
                 pose_window: Optional[int] = None, observation_ratio: Optional[float] = None,
                 rotation_degrees: float = 0.0, flip_probability: float = 0.0, scale_range: float = 0.0,
                 frame_sampling: str = "centre", test_clip: int = 0, joint_offset_mm: float = 0.0,
                 joint_jitter_mm: float = 0.0, shear_range: float = 0.0,
                 test_view: Tuple[float, float] = (0.0, 0.0)):
        if task not in UPS_TASKS:
            raise ValueError(f"Unknown task {task!r}; choose from {list(UPS_TASKS)}")
        if not 0.0 <= rotation_degrees <= 180.0:
            raise ValueError(f"rotation_degrees must be in [0, 180], got {rotation_degrees}")
        if not 0.0 <= scale_range < 1.0:
            raise ValueError(f"scale_range must be in [0, 1), got {scale_range}")
        if scale_range and processor is not None and processor.feature_extractor.box_normalize:
            # The box maps each axis of a clip onto [-1, 1] whatever its extent, so a per-axis stretch before it
            # leaves the model input as it was (to float rounding): a run asking for both would get no scaling.
            raise ValueError(f"scale_range={scale_range} has no effect with the processor's box_normalize, which "
                             "stretches each axis of a clip to [-1, 1] again; leave one of them out")
        if not 0.0 <= shear_range < 1.0:
            raise ValueError(f"shear_range must be in [0, 1), got {shear_range}")
        if not 0.0 <= flip_probability <= 1.0:
            raise ValueError(f"flip_probability must be in [0, 1], got {flip_probability}")
        if frame_sampling not in FRAME_SAMPLINGS:
            raise ValueError(f"frame_sampling must be one of {list(FRAME_SAMPLINGS)}, got {frame_sampling!r}")
        for name, value in (("joint_offset_mm", joint_offset_mm), ("joint_jitter_mm", joint_jitter_mm)):
            if not value >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if train and any(test_view):
            raise ValueError(f"test_view={test_view} turns evaluation clips; training clips draw their own turns "
                             "(rotation_degrees)")
        self.processor, self.task, self.dataset, self.train = processor, task, dataset, train
        self.seed, self.pose_window, self.observation_ratio = seed, pose_window, observation_ratio
        self.rotation_degrees, self.scale_range, self.flip_probability = rotation_degrees, scale_range, flip_probability
        self.shear_range = shear_range
        self.frame_sampling, self.test_clip, self.test_view = frame_sampling, int(test_clip), tuple(test_view)
        self.joint_offset_mm, self.joint_jitter_mm = joint_offset_mm, joint_jitter_mm

    def _view_transform(self, key) -> Optional[np.ndarray]:
        """The 3x3 map a 3D clip goes through (training: random rotation, shear, then per-axis scale; evaluation:
        the fixed `test_view` turn), or None when all are off: one linear map, so zeros (absent persons, missing
        joints) stay zero."""
        if self.task not in VIEW_AUGMENTED_TASKS:
            return None
        if not self.train:
            return view_rotation(*self.test_view) if any(self.test_view) else None
        if not (self.rotation_degrees or self.shear_range or self.scale_range):
            return None
        transform = np.eye(3, dtype=np.float32)
        if self.rotation_degrees:
            transform = random_view_rotation(self._rng((*key, _ROTATION_STREAM)), self.rotation_degrees)
        if self.shear_range:
            transform = random_shear(self._rng((*key, _SHEAR_STREAM)), self.shear_range) @ transform
        if self.scale_range:
            factors = self._rng((*key, _SCALE_STREAM)).uniform(1.0 - self.scale_range, 1.0 + self.scale_range, size=3)
            transform = factors.astype(np.float32)[:, None] * transform
        return transform

    def _joint_noise(self, key, seq: np.ndarray) -> np.ndarray:
        """``seq`` (M, T, J, C) with Gaussian noise added to the 3D coordinates of its present joints (see
        `joint_offset_mm` and `joint_jitter_mm`); ``seq`` itself when both are off."""
        if not (self.train and self.task in VIEW_AUGMENTED_TASKS and (self.joint_offset_mm or self.joint_jitter_mm)):
            return seq
        rng = self._rng((*key, _NOISE_STREAM))
        persons, frames, joints = seq.shape[:3]
        noise = rng.normal(0.0, self.joint_offset_mm, size=(persons, 1, joints, 3))
        if self.joint_jitter_mm:
            noise = noise + rng.normal(0.0, self.joint_jitter_mm, size=(persons, frames, joints, 3))
        present = np.any(seq[..., :3] != 0, axis=-1, keepdims=True)
        return np.concatenate([seq[..., :3] + (noise * present).astype(seq.dtype), seq[..., 3:]], axis=-1)

    def _sampled_frames(self, key, num_frames: int) -> Optional[np.ndarray]:
        """Frames a recognition clip is resampled to at random (see `frame_sampling` and `test_clip`), or None when
        the processor resamples it to its segments' centres."""
        wanted = self.processor.feature_extractor.num_frames
        sampling = self.frame_sampling if self.train else ("segment" if self.test_clip > 0 else "centre")
        if sampling == "centre" or not (self.task in RECOGNITION_TASKS and wanted):
            return None
        rng = self._rng((*key, _FRAME_STREAM) if self.train else (*key, _FRAME_STREAM, self.test_clip))
        if sampling == "sorted_draws":
            return np.sort(rng.integers(num_frames, size=wanted))
        return uniform_frame_indices(num_frames, wanted, rng.random(wanted))

    def _flips(self, key) -> bool:
        return self.train and self.flip_probability > 0 and (
            self._rng((*key, _FLIP_STREAM)).random() < self.flip_probability)

    def _rng(self, key) -> np.random.Generator:
        return np.random.default_rng((self.seed, UPS_TASKS.index(self.task), *key))

    def inputs_and_targets(self, rows: List[dict], keys: List[tuple], centres: Optional[List[int]] = None):
        """Processor kwargs for ``rows``: (poses, labels, target_poses, extra kwargs)."""
        poses, labels, targets, ratios = [], [], [], []
        # Pose estimation reads the 2D input's own layout when the converter kept the detector's joints
        # (`layout_2d`, e.g. MPII-16 Stacked-Hourglass detections); its targets stay in the 3D `layout`.
        is_pose = self.task == POSE_ESTIMATION_TASK
        layout = [row.get("layout_2d") or row["layout"] if is_pose else row["layout"] for row in rows]
        coordinates = None
        for i, row in enumerate(rows):
            if self.task == POSE_ESTIMATION_TASK:
                if "poses_2d" not in row:
                    raise ValueError("pose estimation needs rows with a `poses_2d` column (2D input)")
                inp, tgt = _persons_first(row["poses_2d"])[:1], _persons_first(row["poses"])[0]
                n = inp.shape[1]
                evaluated_window = centres is not None and self.pose_window is not None
                if evaluated_window or cut_into_windows(n, self.pose_window, self.processor):
                    if centres is not None:
                        centre = centres[i]
                    else:
                        centre = int(self._rng(keys[i]).integers(n))
                    frames = self.processor.window_frame_indices(n, self.pose_window, centre)
                    inp, tgt = inp[:, frames], tgt[frames]
                if self._flips(keys[i]):
                    inp, tgt = get_layout(layout[i]).mirror(inp), get_layout(row["layout"]).mirror(tgt)
                poses.append(inp)
                targets.append(tgt)
                labels.append(None)
                coordinates = "2d"
            else:
                seq = _persons_first(row["poses"])
                transform = self._view_transform(keys[i])
                if transform is not None:
                    seq = np.concatenate([seq[..., :3] @ transform.T, seq[..., 3:]], axis=-1)
                seq = self._joint_noise(keys[i], seq)
                if self.task == "action_recognition_2d":
                    coordinates = "2d"
                    if "confidences" in row and row["confidences"] is not None:
                        conf = _persons_first(row["confidences"])[..., None]
                        seq = np.concatenate([seq[..., :2], conf], axis=-1)
                frames = self._sampled_frames(keys[i], seq.shape[1])
                if frames is not None:
                    seq = seq[:, frames]
                if self._flips(keys[i]):
                    seq = get_layout(layout[i]).mirror(seq)  # confidences, the last channel, swap with their joints
                poses.append(seq)
                targets.append(None)
                labels.append(row_label_name(self.dataset, row))
                if self.task == EARLY_TASK:
                    if self.observation_ratio is not None:
                        ratios.append(self.observation_ratio)
                    elif self.train:
                        ratios.append(float(self._rng(keys[i]).choice(OBSERVATION_RATIOS)))  # the evaluation grid
                    else:
                        ratios.append(1.0)
        extra = {"layout": layout}
        if coordinates == "2d":
            extra["coordinates"] = "2d"
        if ratios:
            extra["observation_ratio"] = ratios
        return poses, labels, targets, extra

    def __call__(self, items):
        """``items``: (key, row) pairs from :class:`KeyedRows`."""
        keys = [k for k, _ in items]
        rows = [r for _, r in items]
        poses, labels, targets, extra = self.inputs_and_targets(rows, keys)
        has_targets = self.task == POSE_ESTIMATION_TASK
        batch = self.processor(
            poses, task=self.task, labels=None if has_targets else labels,
            target_poses=targets if has_targets else None, return_tensors="pt", **extra,
        )
        return dict(batch)


class KeyedRows(torch.utils.data.Dataset):
    """A ``datasets.Dataset`` read by (stream position, index) keys so collators can seed per-sample randomness."""

    def __init__(self, dataset):
        self.dataset = dataset.with_format("numpy")

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        position, index = key
        return (position,), self.dataset[int(index)]


def load_task_datasets(args, processor, build_synthetic: Optional[Callable[..., dict]] = None,
                       ) -> Dict[str, Dict[str, object]]:
    """``{task: {"train": Dataset, "test": Dataset}}`` for ``args.tasks``: saved folders / Hub ids from
    ``args.dataset`` where given, ``build_synthetic`` for the rest.

    ``build_synthetic(num_train=, num_test=, seed=)`` returns ``{task: DatasetDict}`` (the caller passes
    ``datasets_scripts.synthetic.build_synthetic_datasets``: this package never imports the converters, which depend
    on it). Without it, every task needs a ``--dataset``."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    out = {}
    missing = [t for t in dict.fromkeys(args.tasks) if t not in args.dataset]
    if missing:
        if build_synthetic is None:
            raise ValueError(f"no dataset for {missing}: pass --dataset TASK=PATH for each task (no synthetic "
                             "data generator was given)")
        synthetic = build_synthetic(num_train=args.num_train_samples, num_test=args.num_eval_samples,
                                    seed=args.seed)
        for t in missing:
            out[t] = synthetic[t]
    for t in args.tasks:
        if t in out:
            continue
        spec = args.dataset[t]
        try:
            data = load_from_disk(spec)
        except FileNotFoundError:
            data = load_dataset(spec)
        if not isinstance(data, DatasetDict) or "train" not in data or "test" not in data:
            raise ValueError(f"dataset for {t} ({spec}) must be a DatasetDict with 'train' and 'test' splits")
        out[t] = data
    return out
