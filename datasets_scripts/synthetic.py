"""Synthetic human motion: the embedded default dataset of the UPS training job.

A small forward-kinematics skeleton (31 joints, bone lengths in millimetres for a 1.75 m adult) is driven by
joint-angle trajectories that define 12 action classes (:data:`SYNTHETIC_ACTIONS`, in this order), rendered
through a camera into the layouts the four UPS tasks use:

======================  ===================================================================================
layout                  rendering
======================  ===================================================================================
``ntu25``               3D millimetres in a Kinect-like camera frame (x to the camera's left, y up, z away
                        from the camera; NTU's axes), Gaussian sensor noise (8 mm)
``openpose18``          2D pixels of a 340x256 image (Kinetics-skeleton's frame size, f = 300 px), detector-like
                        noise (~1.5 px, larger on hands and feet), confidences in (0, 1], and occasional
                        dropped joints (x = y = confidence = 0, OpenPose's convention)
``h36m17``              3D millimetres in an OpenCV camera frame (x right, y down, z forward; Human3.6M's
                        axes) plus its exact pinhole projection into a 1000x1000 image, f = 1150 px
======================  ===================================================================================

Variation, all drawn from the seed: per-subject height (1.55-1.90 m) and arm/leg/torso/shoulder proportions
(subjects form a fixed pool so train and test can use disjoint subjects), speed and tempo (onset delay, time
warping, number of cycles), amplitude, phase, camera yaw relative to the body (+-50 deg; +-70 for ``h36m17``),
distance (2.5-4.5 m) and height, low-frequency "style" noise on every joint angle, and root translation
(walking/running move forward; ``root_translation=False`` keeps them in place).

Early prediction is made harder on purpose: "waving right hand", "waving both hands" and "throwing" start with
the same right-arm raise (first 30% of the motion), "squatting" and "sitting down" with the same descent (first
35%), and every one-shot action starts after an idle onset of up to 12% of the sequence. The classes are well
separated on full sequences and much less on their first 20% (``tests/test_synthetic.py`` measures both).

Everything is vectorised over sequences and frames (numpy only): several thousand 64-100-frame sequences per
second on one core (``bench/bench_synthetic.py``).

    gen = SyntheticMotionGenerator(seed=0, num_frames=(64, 96))
    batch = gen.generate(256, layout="ntu25")        # batch["poses"]: (256, 1, 96, 25, 3), batch["lengths"]
    data = build_synthetic_datasets(2000, 400, seed=0)  # {task: DatasetDict(train, test)} in the shared schema
"""

import re
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

SYNTHETIC_ACTIONS = (
    "walking", "running", "jumping jacks", "waving right hand", "waving both hands", "punching", "kicking",
    "squatting", "sitting down", "standing up", "bowing", "throwing",
)
SYNTHETIC_FPS = 30.0
SYNTHETIC_LAYOUTS = ("ntu25", "openpose18", "h36m17")
# Which layout and coordinates serve each UPS task.
SYNTHETIC_TASK_LAYOUTS = {
    "action_recognition_3d": "ntu25",
    "action_recognition_2d": "openpose18",
    "pose_estimation_3d": "h36m17",
    "early_action_prediction_3d": "ntu25",
}
H36M_IMAGE_SIZE = (1000, 1000)
H36M_FOCAL = 1150.0
OPENPOSE_IMAGE_SIZE = (340, 256)
OPENPOSE_FOCAL = 300.0
# Subjects are a fixed pool: subject k has the same body whatever the generator's seed.
NUM_SUBJECTS = 40
NUM_TRAIN_SUBJECTS = 30
_SUBJECT_SEED = 20230613

# ---------------------------------------------------------------------------------------------------------------
# Skeleton: internal joints, parents and rest offsets (mm, 1.75 m adult). Body frame: x = the person's left,
# y = up, z = forward (right-handed). Rest pose: standing, arms hanging with palms inward.
# ---------------------------------------------------------------------------------------------------------------

_JOINTS = (
    ("pelvis", -1, (0, 0, 0)), ("spine_mid", 0, (0, 230, 0)), ("thorax", 1, (0, 230, 0)),
    ("neck", 2, (0, 70, 0)), ("head", 3, (0, 110, 10)), ("head_top", 4, (0, 110, 0)),
    ("nose", 4, (0, -10, 100)), ("left_eye", 4, (32, 25, 85)), ("right_eye", 4, (-32, 25, 85)),
    ("left_ear", 4, (75, 5, 0)), ("right_ear", 4, (-75, 5, 0)),
    ("left_shoulder", 2, (180, -20, 0)), ("left_elbow", 11, (0, -290, 0)), ("left_wrist", 12, (0, -260, 0)),
    ("left_hand", 13, (0, -80, 0)), ("left_hand_tip", 14, (0, -70, 0)), ("left_thumb", 14, (0, -20, 45)),
    ("right_shoulder", 2, (-180, -20, 0)), ("right_elbow", 17, (0, -290, 0)), ("right_wrist", 18, (0, -260, 0)),
    ("right_hand", 19, (0, -80, 0)), ("right_hand_tip", 20, (0, -70, 0)), ("right_thumb", 20, (0, -20, 45)),
    ("left_hip", 0, (90, -50, 0)), ("left_knee", 23, (0, -430, 0)), ("left_ankle", 24, (0, -420, 0)),
    ("left_foot", 25, (0, -50, 130)),
    ("right_hip", 0, (-90, -50, 0)), ("right_knee", 27, (0, -430, 0)), ("right_ankle", 28, (0, -420, 0)),
    ("right_foot", 29, (0, -50, 130)),
)
JOINT_NAMES = tuple(j[0] for j in _JOINTS)
_J = {name: i for i, name in enumerate(JOINT_NAMES)}
_PARENTS = np.array([j[1] for j in _JOINTS])
_REST_OFFSETS = np.array([j[2] for j in _JOINTS], dtype=np.float64)
_PELVIS_HEIGHT = 1000.0  # rest height of the pelvis above the ground (ankle rest height is 100 mm)
_ANKLE_HEIGHT = 100.0

# Body parts whose bone offsets scale together in the per-subject proportions.
_ARM = [_J[n] for n in ("left_elbow", "left_wrist", "left_hand", "left_hand_tip", "left_thumb", "right_elbow",
                        "right_wrist", "right_hand", "right_hand_tip", "right_thumb")]
_LEG = [_J[n] for n in ("left_knee", "left_ankle", "right_knee", "right_ankle")]
_TORSO = [_J[n] for n in ("spine_mid", "thorax", "neck")]
_SHOULDER = [_J[n] for n in ("left_shoulder", "right_shoulder")]

# Joint angles (degrees in the action definitions). Shoulders: flex = raise forward, abd = raise sideways, rot =
# humeral rotation (90 makes elbow flexion lift an abducted forearm). Same anatomical sign on both sides.
DOFS = ("spine_flex", "spine_twist", "spine_lat", "chest_flex", "chest_twist", "neck_flex",
        "l_sh_flex", "l_sh_abd", "l_sh_rot", "l_el", "r_sh_flex", "r_sh_abd", "r_sh_rot", "r_el",
        "l_hip_flex", "l_hip_abd", "l_knee", "r_hip_flex", "r_hip_abd", "r_knee")
_D = {name: i for i, name in enumerate(DOFS)}
_REST = {"l_sh_abd": 7.0, "r_sh_abd": 7.0, "l_el": 10.0, "r_el": 10.0, "l_knee": 3.0, "r_knee": 3.0,
         "l_hip_flex": 2.0, "r_hip_flex": 2.0}

# Layout renderings: for each layout joint, the internal joint.
_LAYOUT_JOINTS = {
    "ntu25": ("pelvis", "spine_mid", "neck", "head", "left_shoulder", "left_elbow", "left_wrist", "left_hand",
              "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee", "left_ankle",
              "left_foot", "right_hip", "right_knee", "right_ankle", "right_foot", "thorax", "left_hand_tip",
              "left_thumb", "right_hand_tip", "right_thumb"),
    "openpose18": ("nose", "thorax", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
                   "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
                   "right_eye", "left_eye", "right_ear", "left_ear"),
    "h36m17": ("pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
               "spine_mid", "thorax", "nose", "head_top", "left_shoulder", "left_elbow", "left_wrist",
               "right_shoulder", "right_elbow", "right_wrist"),
}
_LAYOUT_INDEX = {name: np.array([_J[j] for j in joints]) for name, joints in _LAYOUT_JOINTS.items()}
# Detector noise scale per openpose18 joint (extremities are noisier and more often lost).
_OPENPOSE_NOISE = np.array([1.0, 0.8, 0.9, 1.2, 1.8, 0.9, 1.2, 1.8, 1.0, 1.2, 1.6, 1.0, 1.2, 1.6, 1.0, 1.0, 1.3,
                            1.3])


# ---------------------------------------------------------------------------------------------------------------
# Small vectorised helpers
# ---------------------------------------------------------------------------------------------------------------


def _smooth(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _ramp(p, a, b):
    """0 before ``a``, 1 after ``b``, smooth in between."""
    return _smooth((p - a) / (b - a))


def _bump(p, a, b, c, d):
    """Rises over [a, b], falls over [c, d]."""
    return _ramp(p, a, b) * (1.0 - _ramp(p, c, d))


# Rotations are stored "batch last": (3, 3, B) matrices and (3, B) vectors. Small-matrix products over a large
# batch are then plain elementwise numpy, ~10x faster than stacked (B, 3, 3) matmul/einsum.


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    r = np.zeros((3, 3) + a.shape, dtype=a.dtype)
    r[0, 0] = 1
    r[1, 1], r[1, 2], r[2, 1], r[2, 2] = c, -s, s, c
    return r


def _rot_y(a):
    c, s = np.cos(a), np.sin(a)
    r = np.zeros((3, 3) + a.shape, dtype=a.dtype)
    r[1, 1] = 1
    r[0, 0], r[0, 2], r[2, 0], r[2, 2] = c, s, -s, c
    return r


def _rot_z(a):
    c, s = np.cos(a), np.sin(a)
    r = np.zeros((3, 3) + a.shape, dtype=a.dtype)
    r[2, 2] = 1
    r[0, 0], r[0, 1], r[1, 0], r[1, 1] = c, -s, s, c
    return r


def _mm(a, b):
    """Batch-last matrix product (3, 3, B) x (3, 3, B)."""
    return (a[:, :, None] * b[None]).sum(axis=1)


def _mv(a, v):
    """Batch-last matrix-vector product (3, 3, B) x (3, B)."""
    return a[:, 0] * v[0] + a[:, 1] * v[1] + a[:, 2] * v[2]


def _col(x):
    """Per-sequence values (n,) as a column that broadcasts over frames."""
    return np.asarray(x, dtype=np.float64)[:, None]


# ---------------------------------------------------------------------------------------------------------------
# Actions. Each gets the active progress ``p`` (n, T) in [0, 1], per-sequence parameters, and writes joint angles
# (degrees) into ``q`` (n, T, D). Shared first parts are module-level functions so the classes that share them
# are identical until they diverge.
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class _Params:
    amp: np.ndarray      # (n,) amplitude factor
    cycles: np.ndarray   # (n,) repetitions of periodic parts
    phase: np.ndarray    # (n,) start phase (radians)
    alt: np.ndarray      # (n,) uniform [0, 1) for discrete choices


def _set(q, name, value):
    q[..., _D[name]] = value


def _add(q, name, value):
    q[..., _D[name]] += value


def _raise_right_arm(q, p, k):
    """Shared start of waving right hand, waving both hands and throwing: the right arm rises sideways, forearm up."""
    r = _ramp(p, 0.0, 0.3)
    _set(q, "r_sh_abd", _REST["r_sh_abd"] + (100.0 * k - _REST["r_sh_abd"]) * r)
    _set(q, "r_sh_rot", 90.0 * r)
    _set(q, "r_el", _REST["r_el"] + (75.0 * k - _REST["r_el"]) * r)
    _set(q, "r_sh_flex", 10.0 * r)
    return r


def _descend(q, p, k):
    """Shared start of squatting and sitting down: hips and knees bend, trunk leans, arms come forward."""
    r = _ramp(p, 0.0, 0.35)
    for side in ("l", "r"):
        _set(q, f"{side}_hip_flex", 2.0 + 48.0 * k * r)
        _set(q, f"{side}_knee", 3.0 + 57.0 * k * r)
        _set(q, f"{side}_sh_flex", 30.0 * k * r)
    _set(q, "spine_flex", 18.0 * k * r)
    return r


def _walk_like(q, p, prm, hip, knee, arm, elbow, lean):
    k = _col(prm.amp)
    ph = _col(prm.phase) + 2 * np.pi * _col(prm.cycles) * p
    on = _ramp(p, 0.0, 0.08)  # from standing into the gait
    s = np.sin(ph)
    _set(q, "l_hip_flex", 2.0 + on * hip * k * s)
    _set(q, "r_hip_flex", 2.0 - on * hip * k * s)
    # Knees flex most while their leg swings forward.
    _set(q, "l_knee", 3.0 + on * knee * k * np.clip(np.sin(ph + 1.1), 0, 1) ** 1.5)
    _set(q, "r_knee", 3.0 + on * knee * k * np.clip(np.sin(ph + 1.1 + np.pi), 0, 1) ** 1.5)
    _set(q, "l_sh_flex", -on * arm * k * s)
    _set(q, "r_sh_flex", on * arm * k * s)
    _set(q, "l_el", 10.0 + on * elbow * (0.8 + 0.2 * s))
    _set(q, "r_el", 10.0 + on * elbow * (0.8 - 0.2 * s))
    _set(q, "spine_twist", on * 6.0 * k * s)
    _set(q, "spine_flex", on * lean)
    return ph, on


def _walking(q, p, prm):
    _walk_like(q, p, prm, hip=24.0, knee=50.0, arm=18.0, elbow=15.0, lean=3.0)


def _running(q, p, prm):
    _walk_like(q, p, prm, hip=40.0, knee=95.0, arm=35.0, elbow=75.0, lean=12.0)


def _jumping_jacks(q, p, prm):
    k = _col(prm.amp)
    ph = 2 * np.pi * _col(prm.cycles) * p  # every jack starts closed (no random phase)
    s = (0.5 - 0.5 * np.cos(ph)) * _ramp(p, 0.0, 0.05)
    for side in ("l", "r"):
        _set(q, f"{side}_sh_abd", 7.0 + 150.0 * k * s)
        _set(q, f"{side}_hip_abd", 20.0 * k * s)
        _set(q, f"{side}_el", 10.0 + 10.0 * s)


def _waving_right(q, p, prm):
    k = _col(prm.amp)
    _raise_right_arm(q, p, k)
    ph = _col(prm.phase) + 2 * np.pi * _col(prm.cycles) * p
    _add(q, "r_el", 22.0 * k * np.sin(ph) * _ramp(p, 0.3, 0.38))


def _waving_both(q, p, prm):
    k = _col(prm.amp)
    _raise_right_arm(q, p, k)
    r = _ramp(p, 0.3, 0.5)
    _set(q, "l_sh_abd", _REST["l_sh_abd"] + (100.0 * k - _REST["l_sh_abd"]) * r)
    _set(q, "l_sh_rot", 90.0 * r)
    _set(q, "l_el", _REST["l_el"] + (75.0 * k - _REST["l_el"]) * r)
    _set(q, "l_sh_flex", 10.0 * r)
    ph = _col(prm.phase) + 2 * np.pi * _col(prm.cycles) * p
    _add(q, "r_el", 22.0 * k * np.sin(ph) * _ramp(p, 0.3, 0.38))
    _add(q, "l_el", 22.0 * k * np.sin(ph) * _ramp(p, 0.45, 0.55))


def _throwing(q, p, prm):
    k = _col(prm.amp)
    _raise_right_arm(q, p, k)
    cock = _bump(p, 0.3, 0.5, 0.56, 0.66)
    release = _bump(p, 0.56, 0.66, 0.8, 0.98)
    _add(q, "r_sh_rot", 55.0 * cock - 90.0 * release)
    _add(q, "r_sh_flex", 60.0 * k * release)
    _add(q, "r_sh_abd", -40.0 * release)
    _add(q, "r_el", -55.0 * release)
    _set(q, "spine_twist", -28.0 * k * cock + 25.0 * k * release)
    _set(q, "spine_flex", 22.0 * k * release)
    _set(q, "l_hip_flex", 2.0 + 22.0 * _bump(p, 0.35, 0.55, 0.85, 1.0))
    _set(q, "l_sh_flex", 35.0 * cock)
    # After the follow-through the arm returns to rest.
    back = _ramp(p, 0.8, 1.0)
    for name in ("r_sh_abd", "r_sh_rot", "r_el", "r_sh_flex"):
        rest = _REST.get(name, 0.0)
        q[..., _D[name]] = q[..., _D[name]] * (1 - back) + rest * back


def _punching(q, p, prm):
    k = _col(prm.amp)
    guard = _ramp(p, 0.0, 0.2)
    ph = 2 * np.pi * _col(prm.cycles) * np.clip(p - 0.25, 0, None)  # punches start from the guard
    active = _ramp(p, 0.22, 0.26)
    right = active * np.clip(np.sin(ph), 0, 1) ** 2
    left = active * np.clip(np.sin(ph + np.pi), 0, 1) ** 2 * (_col(prm.alt) < 0.6)
    for side, ext in (("r", right), ("l", left)):
        _set(q, f"{side}_sh_flex", 50.0 * guard + 40.0 * k * ext)
        _set(q, f"{side}_sh_abd", 15.0 * guard - 10.0 * ext)
        _set(q, f"{side}_el", 10.0 + 110.0 * guard - 105.0 * ext)
    _set(q, "spine_twist", 15.0 * k * (left - right))


def _kicking(q, p, prm):
    k = _col(prm.amp)
    balance = _ramp(p, 0.0, 0.2)
    for side in ("l", "r"):
        _set(q, f"{side}_sh_abd", 7.0 + 20.0 * balance)
    kicks = _bump(p, 0.25, 0.38, 0.45, 0.55)
    chamber = _bump(p, 0.22, 0.3, 0.33, 0.4)
    second = (_col(prm.alt) < 0.5)
    kicks = kicks + second * _bump(p, 0.6, 0.72, 0.78, 0.88)
    chamber = chamber + second * _bump(p, 0.58, 0.64, 0.67, 0.74)
    _set(q, "r_hip_flex", 2.0 + 75.0 * k * kicks)
    _set(q, "r_knee", 3.0 + 70.0 * chamber + 5.0 * kicks)
    _set(q, "spine_flex", -8.0 * kicks)


def _squatting(q, p, prm):
    k = _col(prm.amp)
    _descend(q, p, k)
    deep = _ramp(p, 0.35, 0.5)
    up = _ramp(p, 0.62, 0.88)
    for side in ("l", "r"):
        _add(q, f"{side}_hip_flex", 42.0 * k * deep)
        _add(q, f"{side}_knee", 63.0 * k * deep)
        _add(q, f"{side}_sh_flex", 50.0 * k * deep)
    _add(q, "spine_flex", 15.0 * k * deep)
    q *= 1.0 - up[..., None]
    for name, value in _REST.items():
        q[..., _D[name]] += value * up


def _seated(q, k, w):
    """Blend towards the seated pose with weight ``w``."""
    target = {"l_hip_flex": 88.0, "r_hip_flex": 88.0, "l_knee": 88.0, "r_knee": 88.0, "spine_flex": 5.0,
              "l_sh_flex": 35.0, "r_sh_flex": 35.0, "l_el": 60.0, "r_el": 60.0}
    for name, value in target.items():
        q[..., _D[name]] = q[..., _D[name]] * (1 - w) + value * k * w


def _sitting_down(q, p, prm):
    k = _col(prm.amp) * 0.15 + 0.85
    _descend(q, p, _col(prm.amp))
    _seated(q, k, _ramp(p, 0.35, 0.6))


def _standing_up(q, p, prm):
    k = _col(prm.amp) * 0.15 + 0.85
    _seated(q, k, np.ones_like(p))
    lean = _bump(p, 0.15, 0.35, 0.45, 0.7)
    rise = _ramp(p, 0.3, 0.7)
    _add(q, "spine_flex", 30.0 * lean)
    q *= 1.0 - rise[..., None]
    for name, value in _REST.items():
        q[..., _D[name]] += value * rise


def _bowing(q, p, prm):
    k = _col(prm.amp)
    bow = _bump(p, 0.12, 0.42, 0.62, 0.9)
    total = 60.0 * k * bow
    _set(q, "spine_flex", 0.6 * total)
    _set(q, "chest_flex", 0.4 * total)
    _set(q, "neck_flex", 15.0 * bow)
    _set(q, "l_hip_flex", 2.0 + 12.0 * bow)
    _set(q, "r_hip_flex", 2.0 + 12.0 * bow)
    _set(q, "l_sh_flex", 0.85 * total)  # arms keep hanging under gravity
    _set(q, "r_sh_flex", 0.85 * total)


@dataclass(frozen=True)
class _Action:
    motion: callable
    cycles: Tuple[float, float]  # range of repetitions (periodic parts)
    speed: float                 # forward speed, m/s (locomotion)
    pin: str                     # feet kept in place: "both", "left" or "none"
    hop: float                   # vertical hop amplitude (mm) per cycle


_ACTIONS = {
    "walking": _Action(_walking, (1.6, 2.6), 1.3, "none", 0.0),
    "running": _Action(_running, (2.8, 4.2), 3.0, "none", 45.0),
    "jumping jacks": _Action(_jumping_jacks, (2.0, 3.2), 0.0, "both", 90.0),
    "waving right hand": _Action(_waving_right, (3.0, 5.0), 0.0, "both", 0.0),
    "waving both hands": _Action(_waving_both, (3.0, 5.0), 0.0, "both", 0.0),
    "punching": _Action(_punching, (2.0, 3.5), 0.0, "both", 0.0),
    "kicking": _Action(_kicking, (1.0, 1.0), 0.0, "left", 0.0),
    "squatting": _Action(_squatting, (1.0, 1.0), 0.0, "both", 0.0),
    "sitting down": _Action(_sitting_down, (1.0, 1.0), 0.0, "both", 0.0),
    "standing up": _Action(_standing_up, (1.0, 1.0), 0.0, "both", 0.0),
    "bowing": _Action(_bowing, (1.0, 1.0), 0.0, "both", 0.0),
    "throwing": _Action(_throwing, (1.0, 1.0), 0.0, "both", 0.0),
}
assert tuple(_ACTIONS) == SYNTHETIC_ACTIONS


# ---------------------------------------------------------------------------------------------------------------
# Forward kinematics
# ---------------------------------------------------------------------------------------------------------------


_BODY_POOL: Optional[np.ndarray] = None


def _subject_bodies(subject_ids: np.ndarray) -> np.ndarray:
    """Bone offsets (n, J, 3) of the given subjects (a fixed pool, independent of the generator seed)."""
    global _BODY_POOL
    if _BODY_POOL is None:
        pool = np.empty((NUM_SUBJECTS, len(_JOINTS), 3))
        for sid in range(NUM_SUBJECTS):
            rng = np.random.default_rng([_SUBJECT_SEED, sid])
            height = rng.uniform(1550.0, 1900.0) / 1750.0
            arm, leg, torso = rng.normal(1.0, 0.04, size=3)
            shoulder = rng.normal(1.0, 0.06)
            offsets = _REST_OFFSETS * height
            offsets[_ARM] *= arm
            offsets[_LEG] *= leg
            offsets[_TORSO] *= torso
            offsets[_SHOULDER, 0] *= shoulder
            pool[sid] = offsets
        _BODY_POOL = pool
    return _BODY_POOL[np.asarray(subject_ids, dtype=np.int64)]


def _forward_kinematics(q_deg: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Joint angles (n, T, D) degrees + bone offsets (n, J, 3) -> joint positions (n, T, J, 3), pelvis at 0."""
    n, t, _ = q_deg.shape
    q = np.radians(q_deg).astype(np.float32).reshape(n * t, -1).T  # (D, B)
    a = {name: q[i] for name, i in _D.items()}
    # Articulation of each bone (parent -> joint), applied to that bone and everything below it.
    art = {
        _J["spine_mid"]: _mm(_mm(_rot_x(a["spine_flex"]), _rot_y(a["spine_twist"])), _rot_z(a["spine_lat"])),
        _J["thorax"]: _mm(_rot_x(a["chest_flex"]), _rot_y(a["chest_twist"])),
        _J["neck"]: _rot_x(a["neck_flex"]),
        _J["left_elbow"]: _mm(_mm(_rot_z(a["l_sh_abd"]), _rot_x(-a["l_sh_flex"])), _rot_y(a["l_sh_rot"])),
        _J["right_elbow"]: _mm(_mm(_rot_z(-a["r_sh_abd"]), _rot_x(-a["r_sh_flex"])), _rot_y(-a["r_sh_rot"])),
        _J["left_wrist"]: _rot_x(-a["l_el"]),
        _J["right_wrist"]: _rot_x(-a["r_el"]),
        _J["left_knee"]: _mm(_rot_z(a["l_hip_abd"]), _rot_x(-a["l_hip_flex"])),
        _J["right_knee"]: _mm(_rot_z(-a["r_hip_abd"]), _rot_x(-a["r_hip_flex"])),
        _J["left_ankle"]: _rot_x(a["l_knee"]),
        _J["right_ankle"]: _rot_x(a["r_knee"]),
        # Feet stay flat: the ankle undoes the thigh and shank pitch.
        _J["left_foot"]: _rot_x(a["l_hip_flex"] - a["l_knee"]),
        _J["right_foot"]: _rot_x(a["r_hip_flex"] - a["r_knee"]),
    }
    bones = np.repeat(offsets.astype(np.float32), t, axis=0).transpose(1, 2, 0)  # (J, 3, B)
    rotations = [None] * len(_JOINTS)
    positions = np.zeros((len(_JOINTS), 3, n * t), dtype=np.float32)
    for j in range(1, len(_JOINTS)):
        parent = _PARENTS[j]
        local = art.get(j)
        rot = rotations[parent] if local is None else (local if rotations[parent] is None
                                                       else _mm(rotations[parent], local))
        rotations[j] = rot
        positions[j] = positions[parent] + (bones[j] if rot is None else _mv(rot, bones[j]))
    return positions.transpose(2, 0, 1).reshape(n, t, len(_JOINTS), 3)


def _look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rows of a right-handed camera frame (x = camera's left, y = up, z = viewing direction), (n, 3, 3)."""
    z = target - eye
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    up = np.broadcast_to(np.array([0.0, 1.0, 0.0]), z.shape)
    x = np.cross(up, z)
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=-2)


# ---------------------------------------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------------------------------------


class SyntheticMotionGenerator:
    """Deterministic generator of labelled synthetic pose sequences.

    Args:
        seed (`int`): seeds every random choice; the same seed and the same calls give identical output.
        num_frames (`int` or `(min, max)`): frames per sequence, fixed or drawn uniformly per sequence (then the
            batch is padded with zeros to ``max`` and ``lengths`` gives each sequence's length).
        fps (`float`): frame rate the motion is timed for.
        subject_ids (`Sequence[int]`, *optional*): the subjects (from the fixed pool of :data:`NUM_SUBJECTS`)
            sequences are drawn from; default all.
        root_translation (`bool`): let walking and running move forward (otherwise in place).
        noise (`bool`): add sensor / detector noise and dropped joints (``False`` gives clean renderings).
        actions (`Sequence[str]`, *optional*): restrict the classes drawn (labels still index
            :data:`SYNTHETIC_ACTIONS`).
    """

    def __init__(self, seed: int = 0, num_frames: Union[int, Tuple[int, int]] = (64, 96), fps: float = SYNTHETIC_FPS,
                 subject_ids: Optional[Sequence[int]] = None, root_translation: bool = True, noise: bool = True,
                 actions: Optional[Sequence[str]] = None):
        if isinstance(num_frames, (int, np.integer)):
            num_frames = (int(num_frames), int(num_frames))
        low, high = (int(v) for v in num_frames)
        if not 2 <= low <= high:
            raise ValueError(f"num_frames must be an int >= 2 or a (min, max) range, got {num_frames}")
        self.num_frames = (low, high)
        self.fps = float(fps)
        self.subject_ids = np.arange(NUM_SUBJECTS) if subject_ids is None else np.asarray(subject_ids, dtype=np.int64)
        if self.subject_ids.size == 0:
            raise ValueError("subject_ids is empty")
        self.root_translation = root_translation
        self.noise = noise
        unknown = [a for a in (actions or ()) if a not in SYNTHETIC_ACTIONS]
        if unknown:
            raise ValueError(f"unknown actions {unknown}; choose from {SYNTHETIC_ACTIONS}")
        self.action_ids = np.array([SYNTHETIC_ACTIONS.index(a) for a in actions] if actions else
                                   range(len(SYNTHETIC_ACTIONS)))
        self.rng = np.random.default_rng(seed)

    # -- public API ---------------------------------------------------------------------------------------------

    def generate(self, n: int, layout: str = "ntu25", labels: Optional[Sequence[int]] = None) -> Dict[str, np.ndarray]:
        """Draw ``n`` sequences rendered in ``layout``.

        Returns:
            dict with ``poses`` float32 (n, 1, T, J, C) (persons first, zero-padded after ``lengths``),
            ``lengths`` int64 (n,), ``labels`` int64 (n,), ``subjects`` int64 (n,), ``layout``, ``units``
            ("mm" for 3D, "px" for ``openpose18``), and per layout: ``confidences`` float32 (n, 1, T, 18)
            (``openpose18``); ``poses_2d`` float32 (n, 1, T, 17, 2), ``camera_intrinsics`` float32 (n, 9) and
            ``image_size`` (``h36m17``; ``openpose18`` has ``image_size`` too).
        """
        if layout not in SYNTHETIC_LAYOUTS:
            raise ValueError(f"layout must be one of {SYNTHETIC_LAYOUTS}, got {layout!r}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng = self.rng
        if labels is None:
            labels = self.action_ids[rng.integers(0, len(self.action_ids), size=n)]
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (n,) or (n and (labels.min() < 0 or labels.max() >= len(SYNTHETIC_ACTIONS))):
            raise ValueError(f"labels must be {n} ids in [0, {len(SYNTHETIC_ACTIONS)})")
        lengths = rng.integers(self.num_frames[0], self.num_frames[1] + 1, size=n)
        t_max = self.num_frames[1]
        subjects = self.subject_ids[rng.integers(0, self.subject_ids.size, size=n)]
        world, yaw = self._motion(labels, lengths, t_max, subjects, rng)  # (n, T, Jint, 3) world mm, y up
        view_range = 70.0 if layout == "h36m17" else 50.0
        cam = self._camera_frames(world, yaw, view_range, rng)           # (n, T, Jint, 3) Kinect-like frame
        out = {"lengths": lengths.astype(np.int64), "labels": labels, "subjects": subjects.astype(np.int64),
               "layout": layout}
        joints = cam[:, :, _LAYOUT_INDEX[layout]]
        if layout == "ntu25":
            if self.noise:
                joints = joints + 8.0 * rng.standard_normal(size=joints.shape, dtype=np.float32)
            out.update(poses=joints, units="mm")
        elif layout == "h36m17":
            cv = joints * np.array([-1.0, -1.0, 1.0], np.float32)  # OpenCV axes: x right, y down
            cx, cy = H36M_IMAGE_SIZE[0] / 2, H36M_IMAGE_SIZE[1] / 2
            pixels = np.float32(H36M_FOCAL) * cv[..., :2] / cv[..., 2:3] + np.array([cx, cy], np.float32)
            intrinsics = np.tile(np.array([H36M_FOCAL, H36M_FOCAL, cx, cy, 0, 0, 0, 0, 0], np.float32), (n, 1))
            out.update(poses=cv, poses_2d=pixels, camera_intrinsics=intrinsics, image_size=H36M_IMAGE_SIZE,
                       units="mm")
        else:  # openpose18
            cv = joints * np.array([-1.0, -1.0, 1.0], np.float32)
            cx, cy = OPENPOSE_IMAGE_SIZE[0] / 2, OPENPOSE_IMAGE_SIZE[1] / 2
            pixels = np.float32(OPENPOSE_FOCAL) * cv[..., :2] / cv[..., 2:3] + np.array([cx, cy], np.float32)
            pixels, confidences = self._detector(pixels, rng)
            out.update(poses=pixels, confidences=confidences, image_size=OPENPOSE_IMAGE_SIZE, units="px")
        padding = np.arange(t_max)[None] >= lengths[:, None]  # (n, T)
        for key in ("poses", "poses_2d", "confidences"):
            if key in out:
                value = np.asarray(out[key], dtype=np.float32)
                value[padding] = 0.0
                out[key] = value[:, None]  # persons axis
        return out

    # -- internals ----------------------------------------------------------------------------------------------

    def _motion(self, labels, lengths, t_max, subjects, rng):
        n = labels.size
        frames = np.arange(t_max, dtype=np.float32)[None]
        u = frames / np.maximum(lengths[:, None] - 1, 1)                      # clip time in [0, 1]
        onset = rng.uniform(0.0, 0.12, size=n)
        tail = rng.uniform(0.0, 0.08, size=n)
        gamma = rng.uniform(0.85, 1.15, size=n)
        p = np.clip((u - onset[:, None]) / (1.0 - onset - tail)[:, None], 0.0, 1.0) ** gamma[:, None]
        params = _Params(amp=rng.uniform(0.8, 1.15, size=n), cycles=np.empty(n),
                         phase=rng.uniform(0, 2 * np.pi, size=n), alt=rng.uniform(size=n))
        q = np.zeros((n, t_max, len(DOFS)))
        for name, value in _REST.items():
            q[..., _D[name]] = value
        speed = np.zeros(n)
        hop = np.zeros(n)
        pin = np.zeros(n, dtype=np.int64)  # 0 none, 1 both, 2 left
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            action = _ACTIONS[SYNTHETIC_ACTIONS[c]]
            params.cycles[idx] = rng.uniform(*action.cycles, size=idx.size)
            sub = _Params(params.amp[idx], params.cycles[idx], params.phase[idx], params.alt[idx])
            block = q[idx]
            action.motion(block, p[idx], sub)
            q[idx] = block
            speed[idx] = action.speed * rng.uniform(0.8, 1.2, size=idx.size)
            hop[idx] = action.hop
            pin[idx] = {"none": 0, "both": 1, "left": 2}[action.pin]
        q += self._style_noise(n, t_max, u, rng)
        body = _forward_kinematics(q, _subject_bodies(subjects))            # (n, T, J, 3), pelvis at 0

        # Feet on the ground; stance feet do not slide.
        ankles = body[:, :, [_J["left_ankle"], _J["right_ankle"]]]
        low = ankles[..., 1].min(axis=2)
        body[..., 1] -= (low - _ANKLE_HEIGHT)[..., None]
        anchor = np.where((pin == 2)[:, None, None], ankles[:, :, 0, [0, 2]], ankles[..., [0, 2]].mean(axis=2))
        drift = (anchor - anchor[:, :1]) * (pin > 0)[:, None, None]
        body[..., 0] -= drift[..., 0:1]
        body[..., 2] -= drift[..., 1:2]
        if hop.any():
            ph = 2 * np.pi * params.cycles[:, None] * p
            body[..., 1] += (hop[:, None] * np.abs(np.sin(ph)) * _ramp(p, 0.0, 0.05))[..., None]
        if self.root_translation and speed.any():
            seconds = p * ((lengths - 1) / self.fps * (1.0 - onset - tail))[:, None]
            forward = speed[:, None] * 1000.0 * seconds
            forward -= forward[:, -1:] / 2  # centre the path on the start position
            body[..., 2] += forward[..., None]
        yaw = rng.uniform(-np.pi, np.pi, size=n)
        rot = _rot_y(yaw).transpose(2, 0, 1).astype(np.float32)                # (n, 3, 3)
        world = np.matmul(body.reshape(n, -1, 3), rot.transpose(0, 2, 1)).reshape(body.shape)
        return world, yaw

    def _style_noise(self, n, t, u, rng):
        """Low-frequency per-sequence deviations (+-3 deg) on every joint angle: no two performances are alike."""
        d = len(DOFS)
        freq = rng.uniform(0.3, 1.5, size=(n, 1, d)).astype(np.float32)
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1, d)).astype(np.float32)
        amp = rng.uniform(0.0, 3.0, size=(n, 1, d)).astype(np.float32)
        return amp * np.sin(np.float32(2 * np.pi) * freq * u[:, :, None] + phase)

    def _camera_frames(self, world, yaw, view_range_deg, rng):
        n = world.shape[0]
        view = np.radians(rng.uniform(-view_range_deg, view_range_deg, size=n))
        distance = rng.uniform(2500.0, 4500.0, size=n)
        height = rng.uniform(800.0, 1500.0, size=n)
        theta = yaw + view  # the person faces +z rotated by yaw; the camera sits `view` off that direction
        eye = np.stack([distance * np.sin(theta), height, distance * np.cos(theta)], axis=-1)
        target = np.stack([np.zeros(n), np.full(n, 950.0), np.zeros(n)], axis=-1)
        target += rng.normal(0.0, 100.0, size=(n, 3))
        rotation = _look_at(eye, target).astype(np.float32)                     # (n, 3, 3) rows
        relative = world - eye[:, None, None].astype(np.float32)
        return np.matmul(relative.reshape(n, -1, 3), rotation.transpose(0, 2, 1)).reshape(world.shape)

    def _detector(self, pixels, rng):
        """OpenPose-like 2D: jitter grows with joint noisiness, confidences drop with it, some joints are lost."""
        shape = pixels.shape[:-1]
        scale = _OPENPOSE_NOISE[None, None]
        if not self.noise:
            return pixels, np.ones(shape)
        quality = rng.uniform(0.6, 1.0, size=shape[:1]).astype(np.float32)[:, None, None]  # per-clip detector
        sigma = (1.5 * scale).astype(np.float32) / quality
        pixels = pixels + rng.standard_normal(size=pixels.shape, dtype=np.float32) * sigma[..., None]
        jitter = np.abs(rng.standard_normal(size=shape, dtype=np.float32)) * np.float32(0.08)
        confidence = np.clip(quality * (1.05 - 0.25 * (scale - 0.8)).astype(np.float32) - jitter, 0.05, 1.0)
        dropped = rng.random(size=shape, dtype=np.float32) < (0.02 * scale ** 2).astype(np.float32) / quality
        pixels = np.where(dropped[..., None], 0.0, pixels)
        confidence = np.where(dropped, 0.0, confidence)
        return pixels, confidence


# ---------------------------------------------------------------------------------------------------------------
# Datasets in the shared schema
# ---------------------------------------------------------------------------------------------------------------


def synthetic_features(layout: str):
    from .schema import pose_features

    if layout == "ntu25":
        return pose_features("ntu25", 3, SYNTHETIC_ACTIONS, max_persons=1)
    if layout == "openpose18":
        return pose_features("openpose18", 2, SYNTHETIC_ACTIONS, max_persons=1, with_confidences=True,
                             with_image_size=True)
    if layout == "h36m17":
        return pose_features("h36m17", 3, SYNTHETIC_ACTIONS, max_persons=1, with_poses_2d=True,
                             with_image_size=True, with_camera_intrinsics=True)
    raise ValueError(f"no synthetic rendering for layout {layout!r}")


def synthetic_dataset(generator: SyntheticMotionGenerator, n: int, task: str, split: str, batch_size: int = 1024,
                      fingerprint: Optional[str] = None):
    """``n`` generated sequences for ``task`` as an in-memory ``datasets.Dataset`` in the shared schema."""
    import pyarrow as pa

    from .schema import dataset_from_columns, padded_rows, ragged_array

    layout = SYNTHETIC_TASK_LAYOUTS[task]
    features = synthetic_features(layout)
    ragged = {name: [] for name in ("poses", "poses_2d", "confidences") if name in features}
    labels, subjects, lengths, intrinsics = [], [], [], []
    units = "mm"
    for start in range(0, n, batch_size):
        batch = generator.generate(min(batch_size, n - start), layout=layout)
        units = batch["units"]
        for name in ragged:  # (m, 1, T, ...) persons first -> stored frames first, padding dropped
            frames_first = np.swapaxes(batch[name], 1, 2)
            ragged[name].append(ragged_array(padded_rows(frames_first, batch["lengths"]), batch["lengths"],
                                             features[name]))
        labels.append(batch["labels"])
        subjects.append(batch["subjects"])
        lengths.append(batch["lengths"])
        if "camera_intrinsics" in features:
            intrinsics.append(batch["camera_intrinsics"])
    labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    subjects = np.concatenate(subjects) if subjects else np.zeros(0, np.int64)
    empty = {name: ragged_array(np.zeros((0,) + tuple(features[name].shape[1:])), [], features[name])
             for name in ragged}
    columns = {
        "sample_id": [f"synthetic/{task}/{split}/{i:06d}" for i in range(n)],
        "num_persons": [1] * n,
        "layout": [layout] * n,
        "units": [units] * n,
        "label": labels.tolist(),
        "tasks": [[task]] * n,
        "subject": [f"synthetic_{s:02d}" for s in subjects],
        "camera": [""] * n,
        "setup": [-1] * n,
        "source_file": [""] * n,
        "fps": [generator.fps] * n,
    }
    for name, chunks in ragged.items():
        columns[name] = pa.chunked_array(chunks or [empty[name]])
    if "image_size" in features:
        size = OPENPOSE_IMAGE_SIZE if layout == "openpose18" else H36M_IMAGE_SIZE
        columns["image_size"] = [list(size)] * n
    if "camera_intrinsics" in features:
        columns["camera_intrinsics"] = (np.concatenate(intrinsics) if intrinsics else np.zeros((0, 9))).tolist()
    return dataset_from_columns(columns, features, fingerprint=fingerprint)


def build_synthetic_datasets(num_train: int = 2000, num_test: int = 400, seed: int = 0,
                             num_frames: Union[int, Tuple[int, int]] = (64, 96),
                             tasks: Optional[Sequence[str]] = None, root_translation: bool = True):
    """Train/test data for every UPS task, in the shared schema.

    Training sequences come from subjects 0-29 of the pool, test sequences from subjects 30-39 (cross-subject).
    Each task has its own random stream derived from ``seed``, so adding a task does not change the others.

    Returns:
        ``{task: DatasetDict(train=..., test=...)}`` for ``tasks`` (default all four): 3D recognition and early
        prediction on ``ntu25`` (3D mm), 2D recognition on ``openpose18`` (pixels + confidences), pose
        estimation on ``h36m17`` (3D camera mm targets + 2D pixel inputs in ``poses_2d``).
    """
    from datasets import DatasetDict

    tasks = list(tasks) if tasks is not None else list(SYNTHETIC_TASK_LAYOUTS)
    unknown = [t for t in tasks if t not in SYNTHETIC_TASK_LAYOUTS]
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; choose from {list(SYNTHETIC_TASK_LAYOUTS)}")
    out = {}
    for task in tasks:
        task_index = list(SYNTHETIC_TASK_LAYOUTS).index(task)
        train_seed, test_seed = np.random.SeedSequence([seed, task_index]).spawn(2)
        splits = {}
        for split, count, stream, subjects in (("train", num_train, train_seed, range(NUM_TRAIN_SUBJECTS)),
                                               ("test", num_test, test_seed, range(NUM_TRAIN_SUBJECTS, NUM_SUBJECTS))):
            generator = SyntheticMotionGenerator(seed=stream, num_frames=num_frames, subject_ids=list(subjects),
                                                 root_translation=root_translation)
            fingerprint = f"synthetic-{seed}-{task}-{split}-{count}-{num_frames}-{int(root_translation)}"
            splits[split] = synthetic_dataset(generator, count, task, split,
                                              fingerprint=re.sub(r"[^0-9A-Za-z_-]", "_", fingerprint))
        out[task] = DatasetDict(splits)
    return out


# ---------------------------------------------------------------------------------------------------------------
# CLI: write the synthetic datasets to disk (one DatasetDict per task)
# ---------------------------------------------------------------------------------------------------------------


def add_arguments(parser):
    from .common import add_output_arguments

    parser.add_argument("--num_train", type=int, default=2000, help="training sequences per task")
    parser.add_argument("--num_test", type=int, default=400, help="test sequences per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_frames", type=int, nargs="+", default=[64, 96], help="frames, or a min max range")
    parser.add_argument("--tasks", nargs="+", choices=list(SYNTHETIC_TASK_LAYOUTS), help="default: all four")
    parser.add_argument("--no_root_translation", action="store_true", help="walk and run in place")
    add_output_arguments(parser)


def run(args):
    """Write ``<output_dir>/<task>`` DatasetDicts, published atomically like the converters' output."""
    import json
    import os
    import shutil
    from pathlib import Path

    from .common import REPORT_FILE, ConversionError, remove_stale_staging, staging_dir

    output = Path(args.output_dir).absolute()
    if output.exists() and not args.overwrite:
        raise ConversionError(f"{output} already exists; pass --overwrite to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(output)
    num_frames = tuple(args.num_frames) if len(args.num_frames) == 2 else args.num_frames[0]
    data = build_synthetic_datasets(args.num_train, args.num_test, seed=args.seed, num_frames=num_frames,
                                    tasks=args.tasks, root_translation=not args.no_root_translation)
    staging = staging_dir(output)
    for task, dataset_dict in data.items():
        dataset_dict.save_to_disk(str(staging / "result" / task))
    report = {"converter": "synthetic", "seed": args.seed, "num_frames": list(args.num_frames),
              "split_counts": {f"{t}/{s}": len(d[s]) for t, d in data.items() for s in d}}
    (staging / "result" / REPORT_FILE).write_text(json.dumps(report, indent=2))
    if output.exists():
        os.rename(output, staging / "previous")
    os.rename(staging / "result", output)
    shutil.rmtree(staging, ignore_errors=True)
    print(f"[synthetic] wrote {', '.join(data)} to {output}")
    if args.push_to_hub:
        for task, dataset_dict in data.items():
            dataset_dict.push_to_hub(args.push_to_hub, config_name=task)


def main(argv=None):
    from .common import run_cli

    return run_cli(__doc__, add_arguments, run, argv, prog="python -m datasets_scripts.synthetic")


__all__ = [
    "SYNTHETIC_ACTIONS",
    "SYNTHETIC_FPS",
    "SYNTHETIC_LAYOUTS",
    "SYNTHETIC_TASK_LAYOUTS",
    "JOINT_NAMES",
    "SyntheticMotionGenerator",
    "synthetic_features",
    "synthetic_dataset",
    "build_synthetic_datasets",
]

if __name__ == "__main__":
    raise SystemExit(main())
