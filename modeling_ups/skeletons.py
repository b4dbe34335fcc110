"""Skeleton layouts: the one registry of joint orders, bones, roots and left/right symmetry.

Every part of the package that needs to know what joint ``j`` of a layout is (the model's graph
adjacency, the feature extractor's normalisation, the tokenizer's joint names, the converters and the
pictures) reads it from here. The module depends on numpy only, so checkpoints can carry it as remote
code next to ``configuration_ups.py``.

Joint orders follow the files users hold:

- ``ntu25``: Kinect v2 as written in NTU RGB+D ``.skeleton`` files and pyskl's ``nturgb+d`` layout.
- ``openpose18``: OpenPose COCO-18 as in ST-GCN's Kinetics-skeleton JSON and pyskl's ``openpose`` layout.
- ``coco17``: MS-COCO keypoints (HRNet, YOLO-pose, mmpose), pyskl's ``coco`` layout.
- ``h36m17``: Human3.6M's 17 joints in VideoPose3D's order (after ``remove_joints``).
- ``halpe26``: AlphaPose's Halpe-26 (COCO-17 plus head, neck, hip and 6 foot points).
- ``kinect_v1_20``: Kinect v1 SDK order (NW-UCLA; MSR Action3D after reordering).
- ``humaneva15``: VideoPose3D's HumanEva-I 15-joint layout.
- ``mpii16``: the MPII Human Pose order of Stacked-Hourglass detections (VideoPose3D's ``sh_pt_mpii`` /
  ``sh_ft_h36m`` 2D files). An input layout for lifting: its thorax, upper neck and head top are not Human3.6M's
  spine, thorax, neck and head, so no joint conversion to ``h36m17`` is defined.
"""

from dataclasses import dataclass
from functools import cached_property
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


# Joints every layout names, in the order SkeletonLayout.facing_rotation reads them.
_TORSO_JOINTS = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


@dataclass(frozen=True)
class SkeletonLayout:
    """One keypoint layout.

    Args:
        name (`str`): registry key, e.g. ``"h36m17"``.
        joint_names (`tuple[str]`): joint names in storage order.
        edges (`tuple[tuple[int, int]]`): bones as (child, parent) pairs; they form a tree rooted near ``root``.
        root (`tuple[int]`): joints whose mean is the body centre used for root-relative coordinates.
        left (`tuple[int]`) / right (`tuple[int]`): mirror pairs, ``left[i]`` <-> ``right[i]``.
        description (`str`): where the layout comes from.
    """

    name: str
    joint_names: Tuple[str, ...]
    edges: Tuple[Tuple[int, int], ...]
    root: Tuple[int, ...]
    left: Tuple[int, ...]
    right: Tuple[int, ...]
    description: str = ""

    def __post_init__(self):
        n = len(self.joint_names)
        for a, b in self.edges:
            if not (0 <= a < n and 0 <= b < n) or a == b:
                raise ValueError(f"layout {self.name!r}: bad edge ({a}, {b}) for {n} joints")
        if len(self.left) != len(self.right):
            raise ValueError(f"layout {self.name!r}: left and right joint lists differ in length")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def root_position(self, poses: np.ndarray) -> np.ndarray:
        """Body centre of ``poses`` (..., J, C), shape (..., 1, C)."""
        return poses[..., list(self.root), :].mean(axis=-2, keepdims=True)

    def mirror(self, poses: np.ndarray) -> np.ndarray:
        """``poses`` (..., J, C) seen in a mirror: the first coordinate (horizontal in image and camera frames)
        negated and every left joint swapped with its right one (VideoPose3D's flip augmentation). Mirroring twice
        gives ``poses`` back; zeros (missing joints) stay zero."""
        order = np.arange(self.num_joints)
        order[list(self.left)], order[list(self.right)] = self.right, self.left
        out = np.array(poses, copy=True)[..., order, :]
        out[..., 0] = -out[..., 0]
        return out

    @cached_property
    def _torso_indices(self) -> List[int]:
        """Indices of `_TORSO_JOINTS`, looked up once per layout (the loader aligns every clip with them)."""
        missing = [name for name in _TORSO_JOINTS if name not in self.joint_names]
        if missing:
            raise ValueError(f"layout {self.name!r} names no {missing}: its view cannot be aligned")
        return [self.joint_names.index(name) for name in _TORSO_JOINTS]

    def facing_rotation(self, pose: np.ndarray) -> Optional[np.ndarray]:
        """The 3x3 rotation ``R`` that turns the body of a 3D ``pose`` (J, 3) upright and square to the camera:
        ``pose @ R.T`` has the hips-to-shoulders axis along +y and the left-to-right axis (shoulders and hips)
        along +x, so a person filmed from any side is seen as from the front (pyskl's PreNormalize3D alignment,
        built as one orthonormal frame). A Kinect camera frame (y up, x to the sensor's left) already has an
        upright person facing it in this orientation, so such a pose gets ``R`` close to the identity.

        Returns None when a shoulder or hip is missing (all zeros) or the torso has no height or width."""
        torso = pose[self._torso_indices]
        if not np.any(torso, axis=-1).all():
            return None
        left_shoulder, right_shoulder, left_hip, right_hip = torso.astype(np.float64)
        up = (left_shoulder + right_shoulder - left_hip - right_hip) / 2
        across = (right_shoulder - left_shoulder + right_hip - left_hip) / 2
        height = np.linalg.norm(up)
        if height == 0:
            return None
        up = up / height
        across = across - across.dot(up) * up  # the part of the width square to the spine
        width = np.linalg.norm(across)
        if width <= 1e-6 * height:
            return None
        across = across / width
        return np.stack([across, up, np.cross(across, up)])  # rows: the new x, y, z axes; det = +1

    def to_dict(self) -> dict:
        """The part of a layout a model config stores (JSON-serialisable)."""
        return {"name": self.name, "num_joints": self.num_joints, "edges": [list(e) for e in self.edges],
                "root": list(self.root)}


def _layout(name, joint_names, edges, root, left, right, description):
    return SkeletonLayout(
        name=name,
        joint_names=tuple(joint_names),
        edges=tuple((int(a), int(b)) for a, b in edges),
        root=tuple(root),
        left=tuple(left),
        right=tuple(right),
        description=description,
    )


_NTU25 = _layout(
    "ntu25",
    [
        "spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow", "left_wrist", "left_hand",
        "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee", "left_ankle",
        "left_foot", "right_hip", "right_knee", "right_ankle", "right_foot", "spine_shoulder", "left_hand_tip",
        "left_thumb", "right_hand_tip", "right_thumb",
    ],
    [(1, 0), (20, 1), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6), (8, 20), (9, 8), (10, 9), (11, 10),
     (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17), (19, 18), (21, 7), (22, 7), (23, 11),
     (24, 11)],
    root=(1,),  # spine_mid, the centre pyskl/CTR-GCN normalise NTU clips around
    left=(4, 5, 6, 7, 12, 13, 14, 15, 21, 22),
    right=(8, 9, 10, 11, 16, 17, 18, 19, 23, 24),
    description="Kinect v2, NTU RGB+D 60/120 (.skeleton files, pyskl nturgb+d)",
)

_OPENPOSE18 = _layout(
    "openpose18",
    [
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
        "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "right_eye", "left_eye", "right_ear", "left_ear",
    ],
    [(0, 1), (2, 1), (3, 2), (4, 3), (5, 1), (6, 5), (7, 6), (8, 2), (9, 8), (10, 9), (11, 5), (12, 11),
     (13, 12), (14, 0), (15, 0), (16, 14), (17, 15)],
    root=(1,),
    left=(5, 6, 7, 11, 12, 13, 15, 17),
    right=(2, 3, 4, 8, 9, 10, 14, 16),
    description="OpenPose COCO-18 (ST-GCN Kinetics-skeleton, pyskl openpose)",
)

_COCO_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee",
    "left_ankle", "right_ankle",
]
_COCO_EDGES = [(1, 0), (2, 0), (3, 1), (4, 2), (5, 0), (6, 0), (7, 5), (8, 6), (9, 7), (10, 8), (11, 5),
               (12, 6), (13, 11), (14, 12), (15, 13), (16, 14)]
_COCO_LEFT, _COCO_RIGHT = (1, 3, 5, 7, 9, 11, 13, 15), (2, 4, 6, 8, 10, 12, 14, 16)

_COCO17 = _layout(
    "coco17", _COCO_NAMES, _COCO_EDGES, root=(11, 12), left=_COCO_LEFT, right=_COCO_RIGHT,
    description="MS-COCO 17 keypoints (HRNet, mmpose, YOLO-pose; pyskl coco)",
)

_H36M17 = _layout(
    "h36m17",
    [
        "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "spine",
        "thorax", "neck", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow",
        "right_wrist",
    ],
    [(1, 0), (2, 1), (3, 2), (4, 0), (5, 4), (6, 5), (7, 0), (8, 7), (9, 8), (10, 9), (11, 8), (12, 11),
     (13, 12), (14, 8), (15, 14), (16, 15)],
    root=(0,),
    left=(4, 5, 6, 11, 12, 13),
    right=(1, 2, 3, 14, 15, 16),
    description="Human3.6M 17 joints in VideoPose3D order",
)

_HALPE26 = _layout(
    "halpe26",
    _COCO_NAMES + ["head", "neck", "hip", "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe",
                   "left_heel", "right_heel"],
    [(1, 0), (2, 0), (3, 1), (4, 2), (0, 17), (17, 18), (5, 18), (6, 18), (7, 5), (8, 6), (9, 7), (10, 8),
     (18, 19), (11, 19), (12, 19), (13, 11), (14, 12), (15, 13), (16, 14), (20, 15), (22, 15), (24, 15),
     (21, 16), (23, 16), (25, 16)],
    root=(19,),
    left=_COCO_LEFT + (20, 22, 24),
    right=_COCO_RIGHT + (21, 23, 25),
    description="AlphaPose Halpe-26 (in-the-wild 2D, MotionBERT's input)",
)

_KINECT_V1_20 = _layout(
    "kinect_v1_20",
    [
        "hip_center", "spine", "shoulder_center", "head", "left_shoulder", "left_elbow", "left_wrist",
        "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee",
        "left_ankle", "left_foot", "right_hip", "right_knee", "right_ankle", "right_foot",
    ],
    [(1, 0), (2, 1), (3, 2), (4, 2), (5, 4), (6, 5), (7, 6), (8, 2), (9, 8), (10, 9), (11, 10), (12, 0),
     (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17), (19, 18)],
    root=(1,),
    left=(4, 5, 6, 7, 12, 13, 14, 15),
    right=(8, 9, 10, 11, 16, 17, 18, 19),
    description="Kinect v1 SDK order (NW-UCLA; MSR Action3D reordered)",
)

_HUMANEVA15 = _layout(
    "humaneva15",
    [
        "pelvis", "thorax", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow",
        "right_wrist", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle", "head",
    ],
    [(1, 0), (2, 1), (3, 2), (4, 3), (5, 1), (6, 5), (7, 6), (8, 0), (9, 8), (10, 9), (11, 0), (12, 11),
     (13, 12), (14, 1)],
    root=(0,),
    left=(2, 3, 4, 8, 9, 10),
    right=(5, 6, 7, 11, 12, 13),
    description="HumanEva-I 15 joints in VideoPose3D order",
)

_MPII16 = _layout(
    "mpii16",
    [
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
        "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
        "left_wrist",
    ],
    [(0, 1), (1, 2), (2, 6), (5, 4), (4, 3), (3, 6), (7, 6), (8, 7), (9, 8), (10, 11), (11, 12), (12, 7),
     (15, 14), (14, 13), (13, 7)],
    root=(6,),
    left=(3, 4, 5, 13, 14, 15),
    right=(2, 1, 0, 12, 11, 10),
    description="MPII Human Pose 16 joints (Stacked Hourglass; VideoPose3D sh_* 2D detections)",
)

LAYOUTS: Dict[str, SkeletonLayout] = {
    layout.name: layout
    for layout in (_NTU25, _OPENPOSE18, _COCO17, _H36M17, _HALPE26, _KINECT_V1_20, _HUMANEVA15, _MPII16)
}

# Layouts a model is built for by default; their order gives the layout ids (and the size of the model's
# per-layout parameters). Halpe-26 is an input-only layout: the processor converts it to H36M-17 (or COCO-17)
# before the model sees it. MPII-16 is an input layout for lifting: a model that takes it lists it in its layouts and
# lifts it to H36M-17 (`UPSConfig.pose_target_layouts`); it is no default model layout, which would change the
# default config's parameter shapes.
MODEL_LAYOUTS: Tuple[str, ...] = ("ntu25", "openpose18", "coco17", "h36m17", "kinect_v1_20", "humaneva15")

# Alternative names users type (pyskl and VideoPose3D spellings).
LAYOUT_ALIASES: Dict[str, str] = {
    "nturgb+d": "ntu25", "ntu": "ntu25", "ntu_rgbd": "ntu25", "kinect_v2": "ntu25",
    "openpose": "openpose18", "coco18": "openpose18", "kinetics": "openpose18",
    "coco": "coco17", "h36m": "h36m17", "human36m": "h36m17", "halpe": "halpe26",
    "kinect_v1": "kinect_v1_20", "nw_ucla": "kinect_v1_20", "nw-ucla": "kinect_v1_20", "msr": "kinect_v1_20",
    "humaneva": "humaneva15", "mpii": "mpii16",
}


def get_layout(name: str) -> SkeletonLayout:
    """Return the layout registered as ``name`` (or one of its aliases); ValueError names the known ones."""
    if isinstance(name, SkeletonLayout):
        return name
    key = LAYOUT_ALIASES.get(str(name).lower(), str(name).lower())
    if key not in LAYOUTS:
        raise ValueError(f"Unknown skeleton layout {name!r}; known layouts: {sorted(LAYOUTS)}")
    return LAYOUTS[key]


def layouts_with_num_joints(num_joints: int, candidates: Optional[Sequence[str]] = None) -> List[str]:
    """Names of the layouts (among ``candidates``, default all) that have ``num_joints`` joints."""
    names = LAYOUTS if candidates is None else [get_layout(c).name for c in candidates]
    return [n for n in names if LAYOUTS[n].num_joints == num_joints]


# Layout conversions: for every target joint, the source joints whose mean gives it. A single source
# index means the joint exists in both layouts and is copied exactly; several indices build a joint the
# source lacks (the H36M pelvis as the mean of the hips, as MotionBERT's coco2h36m/halpe2h36m do).
_CONVERSIONS: Dict[Tuple[str, str], Tuple[Tuple[int, ...], ...]] = {
    ("coco17", "h36m17"): ((11, 12), (12,), (14,), (16,), (11,), (13,), (15,), (11, 12, 5, 6), (5, 6), (0,),
                           (1, 2), (5,), (7,), (9,), (6,), (8,), (10,)),
    ("halpe26", "h36m17"): ((19,), (12,), (14,), (16,), (11,), (13,), (15,), (19, 18), (18,), (0,), (17,),
                            (5,), (7,), (9,), (6,), (8,), (10,)),
    ("halpe26", "coco17"): tuple((i,) for i in range(17)),
    ("openpose18", "coco17"): ((0,), (15,), (14,), (17,), (16,), (5,), (2,), (6,), (3,), (7,), (4,), (11,),
                               (8,), (12,), (9,), (13,), (10,)),
    ("coco17", "openpose18"): ((0,), (5, 6), (6,), (8,), (10,), (5,), (7,), (9,), (12,), (14,), (16,), (11,),
                               (13,), (15,), (2,), (1,), (4,), (3,)),
    ("ntu25", "h36m17"): ((0,), (16,), (17,), (18,), (12,), (13,), (14,), (1,), (20,), (2,), (3,), (4,), (5,),
                          (6,), (8,), (9,), (10,)),
    ("kinect_v1_20", "h36m17"): ((0,), (16,), (17,), (18,), (12,), (13,), (14,), (1,), (2,), (2, 3), (3,),
                                 (4,), (5,), (6,), (8,), (9,), (10,)),
    ("humaneva15", "h36m17"): ((0,), (11,), (12,), (13,), (8,), (9,), (10,), (0, 1), (1,), (1, 14), (14,),
                               (2,), (3,), (4,), (5,), (6,), (7,)),
}


def conversion_available(source: str, target: str) -> bool:
    source, target = get_layout(source).name, get_layout(target).name
    return source == target or (source, target) in _CONVERSIONS


def convert_layout(poses, source: str, target: str) -> np.ndarray:
    """Convert keypoints (..., J_source, C) from layout ``source`` to ``target`` (..., J_target, C).

    Joints present in both layouts are copied exactly; the others are means of source joints.
    Raises ValueError when no conversion between the two layouts is defined.
    """
    src, dst = get_layout(source), get_layout(target)
    poses = np.asarray(poses)
    if poses.ndim < 2 or poses.shape[-2] != src.num_joints:
        raise ValueError(
            f"convert_layout: expected (..., {src.num_joints}, C) keypoints for layout {src.name!r}, "
            f"got shape {poses.shape}"
        )
    if src.name == dst.name:
        return poses.copy()
    if (src.name, dst.name) not in _CONVERSIONS:
        known = sorted(f"{a}->{b}" for a, b in _CONVERSIONS)
        raise ValueError(f"No conversion from layout {src.name!r} to {dst.name!r}; defined: {known}")
    table = _CONVERSIONS[(src.name, dst.name)]
    out = np.empty(poses.shape[:-2] + (dst.num_joints, poses.shape[-1]), dtype=np.result_type(poses, np.float32))
    for j, sources in enumerate(table):
        out[..., j, :] = poses[..., sources[0], :] if len(sources) == 1 else poses[..., list(sources), :].mean(-2)
    return out


__all__ = [
    "SkeletonLayout",
    "LAYOUTS",
    "MODEL_LAYOUTS",
    "LAYOUT_ALIASES",
    "get_layout",
    "layouts_with_num_joints",
    "conversion_available",
    "convert_layout",
]
