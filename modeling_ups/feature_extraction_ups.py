"""Feature extractor for UPS: turns skeleton sequences of any supported layout into the model's pose inputs.

Pipeline per sample (each step documented on `UPSFeatureExtractor`):

    parse (T, J, C) / (M, T, J, C) -> validate -> split confidence -> resolve/convert layout
    -> observation ratio (early prediction) -> rank persons -> normalise -> resample frames -> pad

The output keys and shapes are the contract of `docs/design.md` ("Model inputs").
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin
from transformers.utils import logging

from .configuration_ups import UPS_TASKS, observed_frames, resolve_task, task_emits_pose
from .skeletons import LAYOUTS, MODEL_LAYOUTS, conversion_available, convert_layout, get_layout

logger = logging.get_logger(__name__)

# Input-only layouts and the model layout they become. Halpe-26 -> H36M-17 follows MotionBERT (`halpe2h36m`),
# the layout 2D->3D lifting is trained on; for 2D recognition on COCO-17 set `layout_conversions` accordingly.
DEFAULT_LAYOUT_CONVERSIONS = {"halpe26": "h36m17"}

# Smallest accepted normalisation scale (RMS joint distance to the root, in input units). Below it every joint
# sits on the root: the clip carries no pose and normalising would divide by ~0.
MIN_SCALE = 1e-6
FLOAT32_MAX = float(np.finfo(np.float32).max)


def uniform_frame_indices(num_input_frames: int, num_output_frames: int, offsets=0.5) -> np.ndarray:
    """Indices of ``num_output_frames`` frames spread uniformly over ``num_input_frames``: one frame of each of
    ``num_output_frames`` equal segments, at ``offsets`` (in [0, 1), one for all or one per segment) of the segment.
    The default, every segment's centre, is pyskl's deterministic UniformSample; offsets drawn at random per segment
    are its training-time UniformSampleFrames. Repeats frames when upsampling."""
    positions = np.arange(num_output_frames) + np.asarray(offsets, dtype=np.float64)
    idx = np.floor(positions * num_input_frames / num_output_frames).astype(np.int64)
    return np.clip(idx, 0, num_input_frames - 1)


@dataclass
class PreparedPose:
    """One sample after `UPSFeatureExtractor.prepare`, before batching.

    Args:
        pose_values (`np.ndarray` of shape `(max_persons, T, J, 3)`): normalised float32 coordinates.
        person_mask (`np.ndarray` of shape `(max_persons,)`): 1 for present persons.
        task (`str`): full task name.
        layout (`str`): model layout the joints are in (after conversion).
        source_layout (`str`): layout of the input (differs from `layout` for input-only layouts).
        num_input_frames (`int`): frames of the original input (before observation ratio and resampling).
    """

    pose_values: np.ndarray
    person_mask: np.ndarray
    task: str
    layout: str
    source_layout: str
    num_input_frames: int


class UPSFeatureExtractor(FeatureExtractionMixin):
    r"""
    Prepares skeleton sequences for [`UPSForPoseSequenceModeling`].

    Accepted input per sample: a numpy array, torch tensor or nested list shaped `(T, J, C)` (one person) or
    `(M, T, J, C)` (persons first, pyskl's `keypoint` layout), where the last axis holds

    - `C = 2`: x, y (2D; Z is padded with zeros, as the paper does for Kinetics),
    - `C = 4`: x, y, z, confidence,
    - `C = 3`: x, y, z by default, **or** x, y, confidence when `coordinates="2d"` / `has_confidence=True` is
      given (per call or as an extractor setting) or when the task's name says 2D (`action_recognition_2d`).

    A batch is a list (or tuple) of samples, which may differ in length, persons and layout, or a 5-D array
    `(B, M, T, J, C)`. A list holding arrays/tensors is always a batch; a pure nested list is one sample when it
    is rank 3 or 4 (pass `is_batched=True` to read a rank-4 nested list as a batch of `(T, J, C)` samples).

    Processing per sample:

    1. **Layout**: `layout=` (name or alias), else the extractor's `default_layout` when its joint count fits,
       else the unique layout among `layouts` (and the input-only layouts of `layout_conversions`) with the
       input's joint count; ambiguity (17 joints: `coco17` vs `h36m17`) or no fit raises a ValueError. Input-only
       layouts are converted with `skeletons.convert_layout` (joints that exist in both layouts are copied exactly).
    2. **Observation ratio** (early prediction): keeps the first `ceil(r * T)` frames.
    3. **Persons**: the `max_persons` most active persons are kept, person 0 first (largest total motion energy,
       or highest mean confidence when confidences are given); absent persons are zeros with `person_mask` 0.
       A person is present when any of its frames has a non-zero coordinate.
    4. **Normalisation** (`normalize=True`): all persons are shifted by one centre, the layout root of person 0
       in its first valid frame (so interacting people keep their relative positions, as pyskl's
       PreNormalize3D), and divided by one scale, the RMS distance of person 0's valid joints to its per-frame
       root over the clip (so metres, millimetres and pixels give the same model input). Frames that are all
       zeros (absent) and joints with confidence 0 (missing) stay zero.
    5. **View alignment** (`align_view=True`; 3D recognition and early prediction only): all persons are rotated
       by the rotation that turns person 0's torso, in the first frame that shows both its shoulders and hips,
       upright and square to the camera (`SkeletonLayout.facing_rotation`; pyskl's PreNormalize3D alignment), so
       a clip filmed from the side reaches the model as from the front. Lifting input (2D) and its 3D target keep
       the camera's frame.
    6. **Box normalisation** (`box_normalize=True`; 3D recognition and early prediction only): each axis is then
       shifted and scaled so that person 0's joints over the clip span [-1, 1] (CTR-GCN's NW-UCLA feeder), so the
       model sees a clip's shape and motion, not its extent along each axis of a camera; an axis along which the
       joints do not spread is only centred.
    7. **Frames**: with `num_frames` every recognition clip is resampled uniformly to that length (pyskl's
       UniformSample); pose-estimation input keeps its frames, because the model lifts its frames at their recorded
       rate (a 27-frame window resampled to 32 would repeat 5 frames at uneven places). Clips longer than
       `max_frames` are resampled uniformly to `max_frames` (logged as a warning with the original length; never
       silently truncated). Batches are padded to the longest clip and `attention_mask` marks real frames.

    Args:
        layouts (`list[str]`, *optional*, defaults to `skeletons.MODEL_LAYOUTS`):
            Model layouts in layout-id order; must equal the model's `config.layout_names`.
        default_layout (`str`, *optional*):
            Layout assumed when `layout=` is not given and the joint count fits (e.g. `"ntu25"` for NTU folders).
        layout_conversions (`dict[str, str]`, *optional*, defaults to `{"halpe26": "h36m17"}`):
            Input-only layout -> model layout it is converted to.
        tasks (`list[str]`, *optional*, defaults to the four UPS tasks): task names in task-id order.
        max_persons (`int`, *optional*, defaults to 2): persons `M` per sample.
        max_frames (`int`, *optional*, defaults to 300): frame budget; longer clips are resampled.
        num_frames (`int`, *optional*): resample every recognition / early-prediction clip to exactly this many
            frames (pose-estimation windows keep theirs).
        normalize (`bool`, *optional*, defaults to `True`): centre and scale as described above.
        align_view (`bool`, *optional*, defaults to `False`): rotate 3D recognition clips to face the camera as
            described above (cross-view benchmarks: NW-UCLA's test view is a camera no training clip saw).
        box_normalize (`bool`, *optional*, defaults to `False`): stretch each axis of 3D recognition clips to
            [-1, 1] as described above.
        coordinates (`str`, *optional*): `"2d"` or `"3d"`, how 3-channel input is read by default.
    """

    model_input_names = ["pose_values", "attention_mask", "person_mask", "task_ids", "layout_ids"]

    def __init__(
        self,
        layouts: Optional[Sequence[str]] = None,
        default_layout: Optional[str] = None,
        layout_conversions: Optional[Dict[str, str]] = None,
        tasks: Optional[Sequence[str]] = None,
        max_persons: int = 2,
        max_frames: int = 300,
        num_frames: Optional[int] = None,
        normalize: bool = True,
        align_view: bool = False,
        box_normalize: bool = False,
        coordinates: Optional[str] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.layouts = [get_layout(name).name for name in (MODEL_LAYOUTS if layouts is None else layouts)]
        if not self.layouts or len(set(self.layouts)) != len(self.layouts):
            raise ValueError(f"layouts must be a non-empty list of distinct layout names, got {self.layouts}")
        self.layout_conversions = {
            get_layout(src).name: get_layout(dst).name
            for src, dst in (DEFAULT_LAYOUT_CONVERSIONS if layout_conversions is None else layout_conversions).items()
        }
        for src, dst in self.layout_conversions.items():
            if dst not in self.layouts or not conversion_available(src, dst):
                raise ValueError(f"layout_conversions: cannot convert {src!r} to {dst!r} (targets: {self.layouts})")
        self.default_layout = None if default_layout is None else get_layout(default_layout).name
        if self.default_layout is not None and self.default_layout not in self.layouts + list(self.layout_conversions):
            raise ValueError(f"default_layout {default_layout!r} is neither in layouts {self.layouts} nor convertible")
        self.tasks = list(UPS_TASKS if tasks is None else tasks)
        if int(max_persons) < 1 or int(max_frames) < 1 or (num_frames is not None and int(num_frames) < 1):
            raise ValueError("max_persons, max_frames and num_frames must be positive")
        self.max_persons = int(max_persons)
        self.max_frames = int(max_frames)
        self.num_frames = None if num_frames is None else int(num_frames)
        self.normalize = bool(normalize)
        self.align_view = bool(align_view)
        self.box_normalize = bool(box_normalize)
        if coordinates not in (None, "2d", "3d"):
            raise ValueError(f"coordinates must be '2d', '3d' or None, got {coordinates!r}")
        self.coordinates = coordinates

    # ------------------------------------------------------------------ public API
    def __call__(
        self,
        poses,
        task: Union[str, Sequence[str]] = "action_recognition",
        layout: Union[None, str, Sequence[Optional[str]]] = None,
        observation_ratio: Union[None, float, Sequence[float]] = None,
        coordinates: Optional[str] = None,
        has_confidence: Optional[bool] = None,
        is_batched: Optional[bool] = None,
        confidences=None,
        return_tensors: Optional[str] = "pt",
        **kwargs,
    ) -> BatchFeature:
        """Prepare one sample or a batch.

        Args:
            poses: one sample or a batch (see the class docstring).
            task (`str` or `list[str]`, defaults to `"action_recognition"`): task name or shorthand, per batch or
                per sample; gives `task_ids`.
            layout (`str` or `list`, *optional*): layout of the input, per batch or per sample.
            observation_ratio (`float` in (0, 1] or a list of them, *optional*): keep the first `ceil(r * T)`
                frames (early prediction); one ratio for the batch or one per sample.
            coordinates (`"2d"` or `"3d"`, *optional*) / has_confidence (`bool`, *optional*): how to read `C = 3`
                (x, y, confidence or x, y, z); defaults to the extractor's `coordinates`, then to the task name.
            is_batched (`bool`, *optional*): force reading `poses` as a batch (or as one sample).
            confidences (array `(M, T, J)` / `(T, J)`, or a list with one per sample (or None), *optional*): detector
                confidences of the joints, given apart from the coordinates (pose files and pyskl annotations keep
                them apart); the last axis of `poses` then holds coordinates only (2 or 3). Detector scores are
                clipped to [0, 1] (AlphaPose's reach slightly above 1).
            return_tensors (`str`, *optional*, defaults to `"pt"`): `"pt"`, `"np"` or None (numpy arrays).

        Returns:
            [`BatchFeature`] with `pose_values` `(B, M, T, J, 3)` float32, `attention_mask` `(B, T)`,
            `person_mask` `(B, M)`, `task_ids` `(B,)` and `layout_ids` `(B,)` (int64).
        """
        if kwargs:
            raise TypeError(f"UPSFeatureExtractor got unexpected arguments {sorted(kwargs)}")
        samples = self.prepare(
            poses, task=task, layout=layout, observation_ratio=observation_ratio, coordinates=coordinates,
            has_confidence=has_confidence, is_batched=is_batched, confidences=confidences,
        )
        return self.collate(samples, return_tensors=return_tensors)

    def prepare(
        self,
        poses,
        task: Union[str, Sequence[str]] = "action_recognition",
        layout: Union[None, str, Sequence[Optional[str]]] = None,
        observation_ratio: Union[None, float, Sequence[float]] = None,
        coordinates: Optional[str] = None,
        has_confidence: Optional[bool] = None,
        is_batched: Optional[bool] = None,
        confidences=None,
    ) -> List[PreparedPose]:
        """Process every sample of ``poses`` into a [`PreparedPose`] (the un-batched half of `__call__`)."""
        samples = _split_batch(poses, is_batched)
        if confidences is None or isinstance(confidences, (list, tuple)):
            confidences = _per_sample(confidences, len(samples), "confidences")
        elif len(samples) == 1:
            confidences = [confidences]
        else:
            raise TypeError(f"confidences of a batch of {len(samples)} samples must be a list with one per sample")
        tasks = _per_sample(task, len(samples), "task")
        layouts = _per_sample(layout, len(samples), "layout")
        coordinates = self.coordinates if coordinates is None else coordinates
        if coordinates not in (None, "2d", "3d"):
            raise ValueError(f"coordinates must be '2d', '3d' or None, got {coordinates!r}")
        ratios = _per_sample(
            observation_ratio if isinstance(observation_ratio, (list, tuple, np.ndarray)) else [observation_ratio] * len(samples),
            len(samples), "observation_ratio",
        )
        for i, ratio in enumerate(ratios):
            if ratio is not None:
                try:
                    ratios[i] = ratio = float(ratio)
                except (TypeError, ValueError):
                    raise ValueError(f"observation_ratio must be a number in (0, 1], got {ratio!r}") from None
                if not 0.0 < ratio <= 1.0:
                    raise ValueError(f"observation_ratio must be in (0, 1], got {ratio}")
        return [
            self._prepare_one(i, sample, tasks[i], layouts[i], ratios[i], coordinates, has_confidence, confidences[i])
            for i, sample in enumerate(samples)
        ]

    def collate(self, samples: Sequence[PreparedPose], return_tensors: Optional[str] = "pt") -> BatchFeature:
        """Pad prepared samples to the longest clip and the largest joint count and stack them."""
        if not samples:
            raise ValueError("No samples to collate")
        num_frames = max(s.pose_values.shape[1] for s in samples)
        num_joints = max(s.pose_values.shape[2] for s in samples)
        batch = np.zeros((len(samples), self.max_persons, num_frames, num_joints, 3), dtype=np.float32)
        attention_mask = np.zeros((len(samples), num_frames), dtype=np.int64)
        for b, s in enumerate(samples):
            _, t, j, _ = s.pose_values.shape
            batch[b, :, :t, :j] = s.pose_values
            attention_mask[b, :t] = 1
        data = {
            "pose_values": batch,
            "attention_mask": attention_mask,
            "person_mask": np.stack([s.person_mask for s in samples]).astype(np.int64),
            "task_ids": np.array([self.tasks.index(s.task) for s in samples], dtype=np.int64),
            "layout_ids": np.array([self.layouts.index(s.layout) for s in samples], dtype=np.int64),
        }
        return BatchFeature(data=data, tensor_type=return_tensors)

    def resolve_layout(self, num_joints: int, layout: Optional[str] = None) -> str:
        """Name of the input layout for ``num_joints`` joints (``layout`` if given, checked against the count)."""
        if layout is not None:
            name = get_layout(layout).name
            if LAYOUTS[name].num_joints != num_joints:
                raise ValueError(
                    f"layout {layout!r} has {LAYOUTS[name].num_joints} joints but the input has {num_joints}"
                )
            if name not in self.layouts and self._conversion_target(name) is None:
                raise ValueError(
                    f"layout {name!r} is not one of this extractor's layouts {self.layouts} and has no conversion "
                    f"to one of them"
                )
            return name
        if self.default_layout is not None and LAYOUTS[self.default_layout].num_joints == num_joints:
            return self.default_layout
        candidates = [n for n in self.layouts + list(self.layout_conversions) if LAYOUTS[n].num_joints == num_joints]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            known = {n: LAYOUTS[n].num_joints for n in self.layouts + list(self.layout_conversions)}
            raise ValueError(f"No layout has {num_joints} joints; known layouts and joint counts: {known}")
        raise ValueError(
            f"{num_joints} joints fit several layouts {candidates}; pass layout= to say which one the input uses"
        )

    def model_layout(self, layout: str) -> str:
        """The model layout an input in ``layout`` is given to the model in (itself, or its conversion target)."""
        name = get_layout(layout).name
        if name in self.layouts:
            return name
        target = self._conversion_target(name)
        if target is None:
            raise ValueError(f"layout {name!r} cannot be converted to any of {self.layouts}")
        return target

    # ------------------------------------------------------------------ per-sample steps
    def _conversion_target(self, name: str) -> Optional[str]:
        if name in self.layout_conversions:
            return self.layout_conversions[name]
        targets = [t for t in self.layouts if conversion_available(name, t)]
        return targets[0] if len(targets) == 1 else None

    def _prepare_one(self, index, sample, task, layout, observation_ratio, coordinates, has_confidence, confidences):
        where = f"sample {index}"
        array = _pose_array(sample, where)
        _, num_frames, num_joints, channels = array.shape

        task_name = task if task is None else str(task)
        task_says_2d = task_name is not None and task_name.endswith("_2d")
        if confidences is None:
            is_2d, with_confidence = _read_channels(channels, coordinates, has_confidence, task_says_2d, where)
            confidence = array[..., -1] if with_confidence else None
        else:
            is_2d, confidence = channels == 2, _separate_confidences(confidences, array.shape, where)
        task_name = resolve_task("action_recognition" if task_name is None else task_name, self.tasks, is_2d)

        coords = array[..., : 2 if is_2d else 3]
        if confidence is not None and (confidence.min() < 0.0 or confidence.max() > 1.0):
            raise ValueError(
                f"{where}: confidences must lie in [0, 1], got values in "
                f"[{confidence.min():.3g}, {confidence.max():.3g}]"
                " (if the last channel is a coordinate, pass coordinates='3d')"
            )

        source_layout = self.resolve_layout(num_joints, layout)
        target_layout = self.model_layout(source_layout)
        if target_layout != source_layout:
            coords = convert_layout(coords, source_layout, target_layout)
            if confidence is not None:
                confidence = convert_layout(confidence[..., None], source_layout, target_layout)[..., 0]

        if observation_ratio is not None:
            kept = observed_frames(num_frames, observation_ratio)
            coords = coords[:, :kept]
            confidence = None if confidence is None else confidence[:, :kept]

        # Validity: absent frames are all zeros (NTU/pyskl pad absent bodies with zeros); a joint with confidence 0
        # is missing (OpenPose writes 0, 0, 0).
        joint_valid = np.ones(coords.shape[:3], dtype=bool) if confidence is None else confidence > 0
        frame_valid = np.any(coords != 0, axis=(2, 3)) & joint_valid.any(axis=2)
        joint_valid &= frame_valid[..., None]
        if not frame_valid.any():
            raise ValueError(f"{where}: every frame is all zeros (or has confidence 0): there is no pose to process")

        order = _rank_persons(coords, joint_valid, frame_valid, confidence)[: self.max_persons]
        coords, joint_valid, frame_valid = coords[order], joint_valid[order], frame_valid[order]

        layout_info = LAYOUTS[target_layout]
        if self.normalize:
            coords = _normalize(coords, joint_valid, frame_valid, layout_info.root, where)
        # View options act on 3D clips that end in a label; lifting input is 2D and its target stays in its frame.
        labels_a_3d_clip = not is_2d and not task_emits_pose(task_name)
        if self.align_view and labels_a_3d_clip:
            coords = _align_view(coords, joint_valid, layout_info)
        if self.box_normalize and labels_a_3d_clip:
            coords = _box_normalize(coords, joint_valid)
        coords = np.where(joint_valid[..., None], coords, 0.0)

        indices = self._frame_budget(coords.shape[1], where, resample=not task_emits_pose(task_name))
        if indices is not None:
            coords, frame_valid = coords[:, indices], frame_valid[:, indices]

        if np.abs(coords).max() > FLOAT32_MAX:
            raise ValueError(
                f"{where}: coordinates up to {np.abs(coords).max():.3g} overflow float32, the model's input dtype"
                + (" (after normalisation: persons far apart relative to person 0's size)" if self.normalize else
                   "; rescale the input or pass normalize=True")
            )
        out = np.zeros((self.max_persons,) + coords.shape[1:3] + (3,), dtype=np.float32)
        out[: coords.shape[0], ..., : coords.shape[-1]] = coords
        person_mask = np.zeros(self.max_persons, dtype=np.int64)
        person_mask[: coords.shape[0]] = frame_valid.any(axis=1)
        return PreparedPose(
            pose_values=out, person_mask=person_mask, task=task_name, layout=target_layout,
            source_layout=source_layout, num_input_frames=num_frames,
        )


    def _frame_budget(self, num_frames: int, where: str, resample: bool) -> Optional[np.ndarray]:
        """Frames to resample a `num_frames` clip to (the `num_frames` setting where `resample`, else the
        `max_frames` budget), or None."""
        if resample and self.num_frames is not None:
            return uniform_frame_indices(num_frames, self.num_frames)
        if num_frames <= self.max_frames:
            return None
        logger.warning(
            f"{where}: {num_frames} frames exceed max_frames={self.max_frames}; resampled uniformly to "
            f"{self.max_frames} frames (set num_frames or max_frames to change this)"
        )
        return uniform_frame_indices(num_frames, self.max_frames)


# ---------------------------------------------------------------------- helpers
def _pose_array(sample, where: str) -> np.ndarray:
    """One sample as a finite float64 (M, T, J, C) array with at least one person, frame and joint."""
    array = _to_numpy(sample, where)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(f"{where}: expected poses shaped (T, J, C) or (M, T, J, C), got shape {array.shape}")
    if 0 in array.shape[:3]:
        raise ValueError(f"{where}: empty sequence (shape {array.shape}: no persons, frames or joints)")
    _check_finite(array, where)
    return array


def _split_batch(poses, is_batched: Optional[bool]) -> list:
    if isinstance(poses, (np.ndarray, torch.Tensor)):
        if is_batched is None:
            is_batched = poses.ndim == 5
        if is_batched and (poses.ndim == 0 or len(poses) == 0):
            raise ValueError(f"poses is an empty batch (shape {tuple(poses.shape)}): nothing to process")
        return list(poses) if is_batched else [poses]
    if isinstance(poses, (list, tuple)):
        if len(poses) == 0:
            raise ValueError("poses is an empty list: nothing to process")
        if is_batched is None:
            if any(isinstance(p, (np.ndarray, torch.Tensor)) for p in poses):
                is_batched = True
            else:
                try:
                    is_batched = np.asarray(poses, dtype=np.float64).ndim == 5
                except (ValueError, TypeError):
                    is_batched = True  # ragged nested lists: samples of different shapes
        return list(poses) if is_batched else [poses]
    raise TypeError(f"poses must be a numpy array, a torch tensor or a (nested) list, got {type(poses).__name__}")


def _per_sample(value, batch_size: int, name: str) -> list:
    if value is None or isinstance(value, str):
        return [value] * batch_size
    if not isinstance(value, (list, tuple, np.ndarray, torch.Tensor)):
        raise TypeError(f"{name} must be one value for the batch or a list with one per sample, got "
                        f"{type(value).__name__} {value!r:.60}")
    value = list(value)
    if len(value) != batch_size:
        raise ValueError(f"{name} has {len(value)} entries but the batch has {batch_size} samples")
    return value


def _to_numpy(sample, where: str) -> np.ndarray:
    """``sample`` as float64; strings, complex numbers, dates and objects other than numbers are refused rather
    than parsed or truncated (numpy would turn "1.5" into 1.5 and drop imaginary parts)."""
    if isinstance(sample, torch.Tensor):
        if sample.is_complex():
            raise TypeError(f"{where}: poses must be real numbers, got a complex tensor")
        sample = sample.detach().cpu().to(torch.float64).numpy()
    try:
        array = np.asarray(sample)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{where}: poses must be numeric and rectangular ({error})") from None
    if array.dtype.kind not in "biufO":
        raise TypeError(f"{where}: poses must be numeric, got an array of dtype {array.dtype}")
    if array.dtype.kind == "O" and not all(
        isinstance(v, (int, float, np.integer, np.floating)) for v in array.reshape(-1)
    ):
        raise TypeError(f"{where}: poses must be numeric and rectangular, got objects that are not numbers")
    return array.astype(np.float64)


def _check_finite(array: np.ndarray, where: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        m, t, j, c = (int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(array[m, t, j, c]) else "inf"
        raise ValueError(
            f"{where}: {int(bad.sum())} non-finite value(s), first {kind} at person {m}, frame {t}, joint {j}, "
            f"channel {c}; mark missing joints with zeros (and confidence 0) instead"
        )


def _read_channels(channels, coordinates, has_confidence, task_says_2d, where):
    """(is_2d, has_confidence) for a last axis of ``channels`` values. ``coordinates`` / ``has_confidence`` only
    decide how 3 channels are read (x, y, z or x, y, confidence); 2 and 4 channels are unambiguous."""
    if channels == 2:
        return True, False
    if channels == 4:
        return False, True
    if channels == 3:
        if has_confidence is not None:
            if coordinates == "3d" and has_confidence:
                raise ValueError(f"{where}: 3 channels cannot be 3D coordinates and a confidence")
            return bool(has_confidence), bool(has_confidence)
        if coordinates is not None:
            return coordinates == "2d", coordinates == "2d"
        return task_says_2d, task_says_2d
    raise ValueError(
        f"{where}: the last axis must have 2 (x, y), 3 (x, y, z or x, y, conf) or 4 channels, got {channels}"
    )


def _separate_confidences(confidences, shape, where: str) -> np.ndarray:
    """Confidences given apart from coordinates of ``shape`` (M, T, J, C): (M, T, J) float64 clipped to [0, 1]."""
    if shape[-1] not in (2, 3):
        raise ValueError(f"{where}: with separate confidences the last axis holds the 2 (x, y) or 3 (x, y, z) "
                         f"coordinates, got {shape[-1]} channels")
    values = _to_numpy(confidences, f"{where} (confidences)")
    if values.shape == shape[1:3]:
        values = values[None]
    if values.shape != shape[:3]:
        raise ValueError(f"{where}: confidences must be shaped {shape[:3]} (persons, frames, joints) like the "
                         f"coordinates, got {values.shape}")
    _check_finite(values[..., None], f"{where} (confidences)")
    return np.clip(values, 0.0, 1.0)


def _power_of_two_scaled(coords: np.ndarray):
    """(coords / 2**e with all values in [-1, 1], e): an exact rescaling that keeps squares and sums finite."""
    magnitude = float(np.abs(coords).max()) if coords.size else 0.0
    exponent = int(np.frexp(magnitude)[1]) if magnitude > 0 else 0
    return np.ldexp(coords, -exponent), exponent


def _rank_persons(coords, joint_valid, frame_valid, confidence) -> np.ndarray:
    """Person order: present persons first, then by motion energy (or mean confidence), stable."""
    if confidence is not None:
        counts = np.maximum(joint_valid.sum(axis=(1, 2)), 1)
        score = (confidence * joint_valid).sum(axis=(1, 2)) / counts
    else:
        coords, _ = _power_of_two_scaled(coords)  # the ranking is scale-invariant; squares must not overflow
        both = frame_valid[:, 1:] & frame_valid[:, :-1]
        step = ((coords[:, 1:] - coords[:, :-1]) ** 2).sum(-1) * (joint_valid[:, 1:] & joint_valid[:, :-1])
        score = (step.sum(-1) * both).sum(-1)
    present = frame_valid.any(axis=1)
    return np.lexsort((-score, ~present))


def _align_view(coords, joint_valid, layout) -> np.ndarray:
    """Every person rotated by person 0's facing rotation in its first frame with a complete torso; unchanged when
    no frame has one (the rotation is linear, so zeros of absent persons and missing joints stay zero)."""
    for frame in np.flatnonzero(joint_valid[0].any(axis=1)):
        rotation = layout.facing_rotation(np.where(joint_valid[0, frame, :, None], coords[0, frame], 0.0))
        if rotation is not None:
            return coords @ rotation.T
    return coords


def _box_normalize(coords, joint_valid) -> np.ndarray:
    """Every person shifted and scaled per axis by the map that takes person 0's valid joints over the clip onto
    [-1, 1]; an axis they do not spread along (below MIN_SCALE of the largest spread) is only centred."""
    seen = coords[0][joint_valid[0]]
    if not seen.size:
        return coords
    low, high = seen.min(axis=0), seen.max(axis=0)
    half_range = (high - low) / 2.0
    flat = half_range <= MIN_SCALE * half_range.max()
    return (coords - (low + high) / 2.0) / np.where(flat, 1.0, half_range)


def _normalize(coords, joint_valid, frame_valid, root, where):
    """Centre on person 0's root in its first valid frame; scale by person 0's RMS joint distance to its root."""
    # The result is scale-invariant, so the statistics run on coords / 2**e (exact in floating point): squares of
    # huge inputs (1e200) would overflow to inf otherwise. MIN_SCALE still applies in input units.
    coords, exponent = _power_of_two_scaled(coords)
    person = coords[0]
    root = list(root)
    root_visible = frame_valid[0] & joint_valid[0][:, root].all(axis=1)
    if root_visible.any():
        first = int(np.argmax(root_visible))
        centre = person[first, root].mean(axis=0)
    else:  # root joint never detected: fall back to the mean of the visible joints of the first valid frame
        first = int(np.argmax(frame_valid[0]))
        centre = person[first][joint_valid[0, first]].mean(axis=0)
    frame_roots = np.where(root_visible[:, None], person[:, root].mean(axis=1), centre)
    offsets = person - frame_roots[:, None]
    squared = (offsets ** 2).sum(-1)[joint_valid[0]]
    scale = float(np.sqrt(squared.mean())) if squared.size else 0.0
    with np.errstate(over="ignore"):  # a threshold beyond float64 (tiny inputs) is inf: degenerate
        degenerate = scale < np.ldexp(MIN_SCALE, -exponent)
    if degenerate:
        raise ValueError(
            f"{where}: degenerate pose: person 0's joints all coincide with its root (RMS distance "
            f"{np.ldexp(scale, exponent):.3g}); "
            "cannot normalise (pass normalize=False to feed raw coordinates)"
        )
    return (coords - centre) / scale


__all__ = ["UPSFeatureExtractor", "PreparedPose", "uniform_frame_indices"]
