"""VideoPose3D-format Human3.6M and HumanEva-I -> ``datasets`` (2D -> 3D pose estimation).

Input (VideoPose3D ``DATASETS.md`` format; opened with ``modeling_ups.pose_io.safe_load_npz``, so the pickled
dicts inside cannot run code):

- ``data_3d_<dataset>.npz``: ``positions_3d = {subject: {action: (T, J, 3)}}`` world coordinates in metres;
  Human3.6M's 32 joints are reduced to the 17 of ``h36m17`` by removing
  [4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31] (VideoPose3D's ``remove_joints``); HumanEva has 15.
- ``data_2d_<dataset>_<source>.npz`` (optional): ``positions_2d = {subject: {action: [(T, J, 2) per camera]}}``
  pixels and ``metadata`` ``{"layout_name", "num_joints", "keypoints_symmetry"}``. 2D sequences longer than the
  3D one are cut to it (as VideoPose3D's ``run.py`` does). Without a 2D file, ``poses_2d`` is the projection of
  the 3D poses through the calibrated camera.

2D layout (:func:`layout_2d_of`): ``layout_name`` when the metadata has one (``h36m``, ``coco``, ``mpii``,
``humaneva15``: ``cpn_ft_h36m_dbb``, ``detectron_ft_h36m``, ``detectron_pt_coco``, HumanEva's files); without it
(``gt`` from ``prepare_data_h36m.py``, ``sh_pt_mpii`` / ``sh_ft_h36m`` from ``prepare_data_2d_h36m_sh.py``) the
dataset and the joint count tell it: Human3.6M 17 -> ``h36m17``, 16 -> ``mpii16`` (MPII order), HumanEva 15 ->
``humaneva15``. 2D joints in another layout than the 3D ones are converted where
``modeling_ups.skeletons.convert_layout`` defines a conversion (COCO -> H36M, MotionBERT's ``coco2h36m``) unless
``--keep_2d_layout``; otherwise (MPII-16, COCO for HumanEva) they are kept as detected, ``poses_2d`` has the 2D
layout's joints and the ``layout_2d`` column names it, ``poses`` staying in the dataset's 3D layout (a lifting
model maps one to the other, as VideoPose3D trains on the 16 Stacked-Hourglass joints with 17-joint targets).

Cameras (``datasets_scripts/data/h36m_cameras.json``, ``humaneva_cameras.json``): Human3.6M's calibration as
published in VideoPose3D's ``common/h36m_dataset.py`` (cameras 54138969, 55011271, 58860488, 60457274); HumanEva's
extrinsics from ``common/humaneva_dataset.py`` and intrinsics fitted to its ground-truth 2D (see the JSON's
note). ``--cameras FILE`` overrides them (same JSON layout; missing intrinsics are taken from the package).
World -> camera: ``X_cam = rotate(inverse(q), X_world - t / 1000)``.

Output: one row per (subject, action, camera): ``poses`` (T, 1, J, 3) camera-frame **millimetres** (absolute;
subtract the root joint for root-relative targets), ``poses_2d`` (T, 1, J', 2) pixels (J' = J unless the
``layout_2d`` column is present), ``camera_intrinsics``,
``image_size``; label = the action (Human3.6M's 15, HumanEva's 5 classes). Splits: Human3.6M protocol
S1 S5 S6 S7 S8 train / S9 S11 test; HumanEva ``Train/*`` train / ``Validate/*`` test, chunks as in the files.

    python -m datasets_scripts.videopose3d --positions_3d data_3d_h36m.npz \\
        --positions_2d data_2d_h36m_cpn_ft_h36m_dbb.npz --output_dir data/h36m_cpn
"""

import json
import re
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from modeling_ups.pose_io import UnsafePickleError, safe_load_npz
from modeling_ups.skeletons import conversion_available, convert_layout, get_layout

from .common import (DATA_DIR, ConversionError, ConversionReport, DatasetWriter, add_output_arguments,
                     convert_items, finish, run_cli)
from .schema import TASKS_POSE_ESTIMATION, make_example, pose_features

H36M_REMOVED_JOINTS = (4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31)
H36M_KEPT_JOINTS = tuple(j for j in range(32) if j not in H36M_REMOVED_JOINTS)
H36M_CLASSES = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
                "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether")
H36M_ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog", "WalkingTogether": "WalkTogether"}
H36M_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS = ("S9", "S11")
HUMANEVA_CLASSES = ("Walking", "Jog", "Box", "Gestures", "ThrowCatch")
HUMANEVA_ACTION_ALIASES = {"Walk": "Walking"}

DATASETS = {
    "h36m": {"layout": "h36m17", "classes": H36M_CLASSES, "aliases": H36M_ACTION_ALIASES,
             "cameras": "h36m_cameras.json"},
    "humaneva": {"layout": "humaneva15", "classes": HUMANEVA_CLASSES, "aliases": HUMANEVA_ACTION_ALIASES,
                 "cameras": "humaneva_cameras.json"},
}


# VideoPose3D's layout names (``data/data_utils.py``) -> registry layouts.
VIDEOPOSE3D_LAYOUT_NAMES = {"h36m": "h36m17", "coco": "coco17", "mpii": "mpii16", "humaneva15": "humaneva15"}
# Metadata without a layout_name (prepare_data_h36m.py's gt, prepare_data_2d_h36m_sh.py's Stacked Hourglass):
# the layout by dataset and joint count.
LAYOUTS_BY_JOINT_COUNT = {"h36m": {17: "h36m17", 16: "mpii16"}, "humaneva": {15: "humaneva15"}}


def layout_2d_of(metadata: Dict, dataset: str, num_joints: Optional[int] = None, name: str = "2D file") -> str:
    """The registry layout of a VideoPose3D 2D file from its ``metadata`` (and ``num_joints`` of its arrays).

    Raises:
        ConversionError: an unknown ``layout_name``, a joint count that does not match it, or no layout for the
            dataset and joint count.
    """
    layout_name = metadata.get("layout_name")
    if layout_name is not None and str(layout_name) not in VIDEOPOSE3D_LAYOUT_NAMES:
        raise ConversionError(f"{name}: 2D layout {layout_name!r} is not supported "
                              f"({', '.join(VIDEOPOSE3D_LAYOUT_NAMES)})")
    declared = metadata.get("num_joints")
    try:
        count = int(declared) if declared is not None else num_joints
    except (TypeError, ValueError, OverflowError):
        raise ConversionError(f"{name}: metadata num_joints {declared!r:.40} is not a joint count") from None
    if num_joints is not None and count != num_joints:
        raise ConversionError(f"{name}: metadata says {count} joints, the keypoints have {num_joints}")
    if layout_name is not None:
        layout = VIDEOPOSE3D_LAYOUT_NAMES[str(layout_name)]
        if count is not None and get_layout(layout).num_joints != count:
            raise ConversionError(f"{name}: layout {layout_name!r} has {get_layout(layout).num_joints} joints, the "
                                  f"file {count}")
        return layout
    layout = LAYOUTS_BY_JOINT_COUNT[dataset].get(count)
    if layout is None:
        raise ConversionError(f"{name}: metadata has no layout_name and {dataset} 2D files with {count} joints have "
                              f"no known layout ({LAYOUTS_BY_JOINT_COUNT[dataset]})")
    return layout


def _first_array_joints(keypoints: Dict) -> Optional[int]:
    """Joint count of the first (T, J, 2) array of ``positions_2d`` (None when there is none)."""
    for actions in keypoints.values():
        for views in (actions.values() if isinstance(actions, dict) else ()):
            for view in (views if isinstance(views, (list, tuple)) else ()):
                if isinstance(view, np.ndarray) and view.ndim == 3:
                    return int(view.shape[1])
    return None


def quaternion_rotation_matrix(q: Sequence[float]) -> np.ndarray:
    """Rotation matrix of the unit quaternion ``(w, x, y, z)``."""
    w, x, y, z = (float(v) for v in q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def world_to_camera(points_world: np.ndarray, orientation: Sequence[float], translation_mm: Sequence[float]):
    """World metres -> camera-frame metres: ``rotate(inverse(q), X - t / 1000)`` (VideoPose3D's convention)."""
    rotation = quaternion_rotation_matrix(orientation)  # camera -> world
    return (np.asarray(points_world, np.float64) - np.asarray(translation_mm, np.float64) / 1000.0) @ rotation


def project_to_image(points_cam: np.ndarray, intrinsics: Sequence[float]) -> np.ndarray:
    """Project camera-frame points (..., 3) with ``[fx, fy, cx, cy, k1, k2, k3, p1, p2]`` (VideoPose3D's model)."""
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    f, c, k, p = intrinsics[0:2], intrinsics[2:4], intrinsics[4:7], intrinsics[7:9]
    points_cam = np.asarray(points_cam, dtype=np.float64)
    xy = points_cam[..., :2] / points_cam[..., 2:3]
    r2 = np.sum(xy ** 2, axis=-1, keepdims=True)
    radial = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
    tangential = np.sum(p * xy, axis=-1, keepdims=True)
    return f * (xy * (radial + tangential) + p * r2) + c


def load_cameras(dataset: str, override=None) -> Dict:
    """Camera calibration ``{"cameras": [...], "extrinsics": {subject: [...]}, "fps"}`` (package JSON + override)."""
    cameras = json.loads((DATA_DIR / DATASETS[dataset]["cameras"]).read_text())
    if override is not None:
        custom = json.loads(Path(override).read_text())
        if "extrinsics" in custom:
            cameras["extrinsics"] = custom["extrinsics"]
        for i, cam in enumerate(custom.get("cameras", [])):
            if i < len(cameras["cameras"]):
                cameras["cameras"][i].update({k: v for k, v in cam.items()})
    for cam in cameras["cameras"]:
        cam["intrinsics"] = (list(cam["focal_length"]) + list(cam["center"]) + list(cam["radial_distortion"])
                             + list(cam["tangential_distortion"]))
    return cameras


def action_class(action: str, dataset: str) -> str:
    """``"Walking 1 chunk0"`` -> ``"Walking"``; ``"TakingPhoto 1"`` -> ``"Photo"``."""
    base = re.sub(r"\s+chunk\d+$", "", action.strip())
    base = re.sub(r"[\s_]*\d+$", "", base).strip()
    return DATASETS[dataset]["aliases"].get(base, base)


def _subject_key(subject: str) -> str:
    return subject.split("/")[-1]


def _split_of(subject: str, dataset: str) -> Optional[str]:
    if dataset == "h36m":
        return "train" if subject in H36M_TRAIN_SUBJECTS else "test" if subject in H36M_TEST_SUBJECTS else None
    if subject.startswith("Train/"):
        return "train"
    if subject.startswith("Validate/"):
        return "test"
    return None  # Unlabeled/*


def _load_member_dict(archive: Dict[str, np.ndarray], key: str, path) -> Dict:
    if key not in archive:
        raise ConversionError(f"{path}: no '{key}' member (has {sorted(archive)})")
    value = archive[key]
    value = value.item() if value.dtype == object and value.shape == () else value
    if not isinstance(value, dict):
        raise ConversionError(f"{path}: '{key}' is a {type(value).__name__}, expected a dict")
    return value


def _open_npz(path) -> Dict[str, np.ndarray]:
    try:
        return safe_load_npz(path)
    except UnsafePickleError as err:
        raise ConversionError(f"refused {path}: {err}") from None
    except (ValueError, OSError) as err:
        raise ConversionError(f"cannot read {path}: {err}") from None


def convert_videopose3d(positions_3d, output_dir, positions_2d=None, dataset: str = "auto", cameras_file=None,
                        actions: Optional[Sequence[str]] = None, keep_2d_layout: bool = False,
                        overwrite: bool = False, push_to_hub: Optional[str] = None) -> ConversionReport:
    """Convert a VideoPose3D 3D file (and optionally one of its 2D sources); returns the report.

    ``keep_2d_layout`` keeps the 2D joints in the detector's layout even where a conversion to the 3D layout exists.
    The report's ``details["layouts"]`` records the 2D layout read, the one stored and the 3D layout.
    """
    positions = _load_member_dict(_open_npz(positions_3d), "positions_3d", positions_3d)
    if dataset == "auto":
        dataset = "humaneva" if any("/" in str(s) for s in positions) else "h36m"
    if dataset not in DATASETS:
        raise ConversionError(f"unknown dataset {dataset!r}; choose from {sorted(DATASETS)} or 'auto'")
    spec = DATASETS[dataset]
    layout = spec["layout"]
    keypoints, layout_2d = None, layout
    if positions_2d is not None:
        archive_2d = _open_npz(positions_2d)
        keypoints = _load_member_dict(archive_2d, "positions_2d", positions_2d)
        metadata = _load_member_dict(archive_2d, "metadata", positions_2d) if "metadata" in archive_2d else {}
        layout_2d = layout_2d_of(metadata, dataset, _first_array_joints(keypoints), name=str(positions_2d))
    # The layout poses_2d is stored in: the 3D one when the 2D joints convert to it, else the detector's own.
    stored_2d = layout if layout_2d == layout or (conversion_available(layout_2d, layout) and not keep_2d_layout) \
        else layout_2d
    layout_2d_column = None if stored_2d == layout else stored_2d  # a layout_2d column only where it differs
    cameras = load_cameras(dataset, cameras_file)
    fps = float(cameras.get("fps", 50))
    classes = spec["classes"]
    wanted = None if not actions else {action_class(a, dataset) for a in actions}
    report = ConversionReport(f"videopose3d-{dataset}")
    report.details["layouts"] = {"layout_3d": layout, "layout_2d_source": layout_2d, "layout_2d": stored_2d}
    items = []
    for subject in sorted(positions, key=str):
        split = _split_of(str(subject), dataset)
        if not isinstance(positions[subject], dict):
            report.skip(str(subject), f"expected a dict {{action: (T, J, 3) positions}}, got "
                                      f"{type(positions[subject]).__name__}")
            continue
        if split is None:
            report.exclude("subject outside the protocol", len(positions[subject]))
            continue
        for action in sorted(positions[subject], key=str):
            if wanted is not None and action_class(str(action), dataset) not in wanted:
                report.exclude("action not selected")
                continue
            items.append((subject, action, split))

    def convert(item):
        subject, action, split = item
        name = f"{subject}/{action}"
        label_name = action_class(str(action), dataset)
        if label_name not in classes:
            raise ValueError(f"{name}: action class {label_name!r} is not one of {classes}")
        try:
            world = np.asarray(positions[subject][action], dtype=np.float64)
        except (TypeError, ValueError, OverflowError) as err:
            raise ValueError(f"{name}: positions are not a numeric (T, J, 3) array ({err})") from None
        if world.ndim != 3 or world.shape[-1] != 3:
            raise ValueError(f"{name}: expected (T, J, 3) positions, got {world.shape}")
        if dataset == "h36m" and world.shape[1] == 32:
            world = world[:, list(H36M_KEPT_JOINTS)]
        num_joints = 17 if dataset == "h36m" else 15
        if world.shape[1] != num_joints:
            raise ValueError(f"{name}: {world.shape[1]} joints; {dataset} needs 32 or {num_joints}")
        if not np.isfinite(world).all():
            raise ValueError(f"{name}: non-finite 3D positions")
        extrinsics = cameras["extrinsics"].get(_subject_key(subject))
        if not extrinsics or not all(extrinsics):
            raise ValueError(f"{name}: no camera extrinsics for subject {_subject_key(subject)!r}")
        views_2d = None
        if keypoints is not None:
            views_2d = (keypoints.get(subject) or {}).get(action)
            if views_2d is None:
                raise ValueError(f"{name}: missing from the 2D file")
            if len(views_2d) != len(extrinsics):
                raise ValueError(f"{name}: {len(views_2d)} 2D views for {len(extrinsics)} cameras")
        rows = []
        for c, (camera, ext) in enumerate(zip(cameras["cameras"], extrinsics)):
            cam_m = world_to_camera(world, ext["orientation"], ext["translation"])
            if views_2d is None:
                pixels = project_to_image(cam_m, camera["intrinsics"])
            else:
                pixels = np.asarray(views_2d[c], dtype=np.float64)
                if pixels.ndim != 3 or pixels.shape[-1] != 2 or pixels.shape[0] < world.shape[0]:
                    raise ValueError(f"{name} camera {camera['id']}: 2D shape {pixels.shape} does not cover the "
                                     f"{world.shape[0]} 3D frames")
                pixels = pixels[: world.shape[0]]
                if pixels.shape[1] != get_layout(layout_2d).num_joints:
                    raise ValueError(f"{name} camera {camera['id']}: {pixels.shape[1]} 2D joints, the file's layout "
                                     f"{layout_2d} has {get_layout(layout_2d).num_joints}")
                if stored_2d != layout_2d:
                    pixels = convert_layout(pixels, layout_2d, stored_2d)
                if not np.isfinite(pixels).all():
                    raise ValueError(f"{name} camera {camera['id']}: non-finite 2D keypoints")
            example = make_example(
                sample_id=f"{subject}/{action}/{camera['id']}", poses=(cam_m * 1000.0)[None],
                poses_2d=pixels[None], layout=layout, layout_2d=layout_2d_column,
                units="mm", label=classes.index(label_name),
                tasks=TASKS_POSE_ESTIMATION, max_persons=1, fps=fps, subject=str(subject), camera=str(camera["id"]),
                source_file=Path(positions_3d).name, image_size=(camera["res_w"], camera["res_h"]),
                camera_intrinsics=camera["intrinsics"])
            rows.append((example, [("default", split)]))
        return rows

    features = pose_features(layout, 3, classes, max_persons=1, with_poses_2d=True, with_image_size=True,
                             with_camera_intrinsics=True, layout_2d=layout_2d_column)
    with DatasetWriter(output_dir, features, ["default"], overwrite=overwrite) as writer:
        convert_items(items, convert, writer, report, describe=lambda it: f"{it[0]}/{it[1]}", desc=report.name)
        return finish(writer, report, push_to_hub)


def add_arguments(parser):
    parser.add_argument("--positions_3d", required=True, help="data_3d_<dataset>.npz")
    parser.add_argument("--positions_2d", help="data_2d_<dataset>_<source>.npz (default: project the 3D poses)")
    parser.add_argument("--dataset", default="auto", choices=["auto"] + sorted(DATASETS),
                        help="auto: HumanEva when subjects look like 'Train/S1'")
    parser.add_argument("--cameras", help="camera calibration JSON overriding the package's")
    parser.add_argument("--actions", nargs="+", help="keep only these action classes (e.g. Walking Jog Box)")
    parser.add_argument("--keep_2d_layout", action="store_true",
                        help="keep 2D joints in the detector's layout (layout_2d column) even when a conversion to the "
                             "3D layout exists (COCO -> H36M)")
    add_output_arguments(parser)


def run(args):
    return convert_videopose3d(args.positions_3d, args.output_dir, positions_2d=args.positions_2d,
                               dataset=args.dataset, cameras_file=args.cameras, actions=args.actions,
                               keep_2d_layout=args.keep_2d_layout, overwrite=args.overwrite,
                               push_to_hub=args.push_to_hub)


def main(argv=None):
    return run_cli(__doc__, add_arguments, run, argv, prog="python -m datasets_scripts.videopose3d")


if __name__ == "__main__":
    raise SystemExit(main())
