"""Writers of tiny files in exactly the published skeleton formats, and pickles that attack the reader.

Used by test_pose_io.py and test_converters.py. Formats: field-anchors.md section 1.2.
"""

import json
import os
import pickle
from pathlib import Path

import numpy as np


def ntu_joint_line(xyz, j=0):
    """One of the 25 joint lines: x y z depthX depthY colorX colorY orientationW..Z trackingState."""
    x, y, z = xyz
    return (f"{x:.7g} {y:.7g} {z:.7g} {250 + j:.4f} {200 + j:.4f} {1000 + j:.3f} {500 + j:.3f} "
            f"0.1 0.2 0.3 0.4 2")


def write_ntu_skeleton(path, frames):
    """``frames``: list over frames of lists of ``(body_id, joints (25, 3) metres)``."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, joints in bodies:
            lines.append(f"{body_id} 0 1 1 1 1 0 0.02764709 0.05745083 2")
            lines.append("25")
            lines += [ntu_joint_line(joints[j], j) for j in range(25)]
    Path(path).write_text("\r\n".join(lines) + "\r\n")  # the released files use CRLF line ends


def ntu_body(frame, offset=0.0, moving=True):
    """Deterministic (25, 3) joints: joint j at (j/100 + offset, frame/10 if moving, 3 + j/1000)."""
    j = np.arange(25)
    return np.stack([j / 100 + offset, np.full(25, frame / 10 if moving else 0.5), 3 + j / 1000], axis=-1)


# An upright Kinect v2 body (ntu25 order), metres: x right, y up; 0.52 m wide, 1.55 m tall.
_NTU_UPRIGHT = np.array([
    [0, -0.1, 0], [0, 0.2, 0], [0, 0.5, 0], [0, 0.62, 0], [-0.18, 0.42, 0], [-0.22, 0.15, 0], [-0.24, -0.08, 0],
    [-0.25, -0.15, 0], [0.18, 0.42, 0], [0.22, 0.15, 0], [0.24, -0.08, 0], [0.25, -0.15, 0], [-0.09, -0.12, 0],
    [-0.1, -0.5, 0], [-0.1, -0.88, 0], [-0.1, -0.93, -0.08], [0.09, -0.12, 0], [0.1, -0.5, 0], [0.1, -0.88, 0],
    [0.1, -0.93, -0.08], [0, 0.42, 0], [-0.26, -0.22, 0], [-0.22, -0.18, 0], [0.26, -0.22, 0], [0.22, -0.18, 0]])
_NTU_RIGHT_ARM = [9, 10, 11, 23, 24]


def ntu_person(frame, x=0.0, z=3.0, walk=0.0, wave=0.0):
    """(25, 3) joints of a standing person at ``x`` (+ ``walk`` m per frame), the right arm raised by up to ``wave``."""
    joints = _NTU_UPRIGHT + [x + walk * frame, 0.0, z]
    joints[_NTU_RIGHT_ARM, 1] += wave * (1 + np.sin(frame / 3)) / 2 * np.array([0.5, 1, 1, 1, 1])
    return joints


def ntu_clutter(frame, seed=0):
    """(25, 3) joints of a spurious detection: scattered through a 3 m cube (huge variance, as wide as tall)."""
    return np.random.default_rng((seed, frame)).uniform(-1.5, 1.5, size=(25, 3)) + [0.0, 0.0, 4.0]


def ntu_furniture(frame, z=3.5):
    """(25, 3) joints of a lying object tracked as a body: 3 m wide, 0.3 m tall (x-spread > 0.8 y-spread)."""
    j = np.arange(25)
    return np.stack([np.linspace(-1.5, 1.5, 25), -0.6 + 0.3 * (j % 2), np.full(25, z)], axis=-1)


# Body IDs in the released files are 17-digit tracking ids.
NOISY_NTU_IDS = {"actor_a": "72057594037931101", "actor_b": "72057594037931102", "actor_b_again": "72057594037931104",
                 "clutter": "72057594037931103", "furniture": "72057594037931105"}


def noisy_ntu_frames():
    """64 frames of an interaction as Kinect records it, with what pyskl's denoising removes.

    Frames 0-1: no body. Actor A walks (frames 2-59), actor B waves (frames 2-31, then, after a tracking loss,
    under a new body ID in frames 32-59). A spurious 4-frame body of the largest variance (frames 10-13, removed by
    the length rule) and a lying object wider than tall (frames 20-63, second-largest variance, removed by the
    spread rule); frames 60-63 hold only the object. A moves more than either fragment of B.
    """
    frames = []
    for t in range(64):
        bodies = []
        if 2 <= t < 60:
            bodies.append((NOISY_NTU_IDS["actor_a"], ntu_person(t, x=-0.9, walk=0.02)))
            bodies.append((NOISY_NTU_IDS["actor_b" if t < 32 else "actor_b_again"], ntu_person(t, x=0.8, wave=0.3)))
        if 10 <= t < 14:
            bodies.insert(1, (NOISY_NTU_IDS["clutter"], ntu_clutter(t)))
        if t >= 20:
            bodies.append((NOISY_NTU_IDS["furniture"], ntu_furniture(t)))
        frames.append(bodies)
    return frames


def write_pyskl_pickle(path, annotations, split, protocol=2):
    """mmcv's ``dump`` writes protocol 2; pyskl keeps float16 keypoints."""
    with open(path, "wb") as f:
        pickle.dump({"split": split, "annotations": annotations}, f, protocol=protocol)


def kinetics_skeleton(xy, score):
    """One skeleton entry: 18 joints (x, y) normalised, 18 scores."""
    xy = np.asarray(xy, dtype=float)
    return {"pose": [round(float(v), 3) for v in xy.reshape(-1)], "score": [round(float(s), 3) for s in score]}


def write_kinetics_clip(path, frames, label="label_a", label_index=0):
    """``frames``: list of lists of skeleton entries; frame_index starts at 1 as in the release."""
    data = {"data": [{"frame_index": t + 1, "skeleton": skeletons} for t, skeletons in enumerate(frames)],
            "label": label, "label_index": label_index}
    Path(path).write_text(json.dumps(data))


# The `metadata` dict each of VideoPose3D's preparation scripts writes into data_2d_h36m_<source>.npz:
# - gt: data/prepare_data_h36m.py, {num_joints, keypoints_symmetry} of the 17-joint Skeleton after remove_joints
#   (its joint lists hold numpy integers, from `joint - index_offsets[joint]`), no layout_name;
# - sh_pt_mpii, sh_ft_h36m: data/prepare_data_2d_h36m_sh.py's module-level `metadata`, 16 MPII joints, no
#   layout_name;
# - cpn_ft_h36m_dbb, detectron_ft_h36m, detectron_pt_coco: data/prepare_data_2d_h36m_generic.py,
#   suggest_metadata(<source>) of data/data_utils.py, which takes the first of mpii, coco, h36m, humaneva15,
#   humaneva20 contained in the name.
_H36M_SYMMETRY = [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
_MPII_SYMMETRY = [[3, 4, 5, 13, 14, 15], [0, 1, 2, 10, 11, 12]]
_COCO_SYMMETRY = [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]]
VIDEOPOSE3D_2D_METADATA = {
    "gt": {"num_joints": 17, "keypoints_symmetry": [[np.int64(j) for j in side] for side in _H36M_SYMMETRY]},
    "sh_pt_mpii": {"num_joints": 16, "keypoints_symmetry": _MPII_SYMMETRY},
    "sh_ft_h36m": {"num_joints": 16, "keypoints_symmetry": _MPII_SYMMETRY},
    "cpn_ft_h36m_dbb": {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": _H36M_SYMMETRY},
    "detectron_ft_h36m": {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": _H36M_SYMMETRY},
    "detectron_pt_coco": {"layout_name": "coco", "num_joints": 17, "keypoints_symmetry": _COCO_SYMMETRY},
}


def write_videopose3d_npz(path_3d, positions_3d, path_2d=None, positions_2d=None, source="gt", metadata=None):
    """As VideoPose3D's prepare_data_*.py: np.savez_compressed of dicts (pickled object arrays); the 2D file carries
    ``metadata`` (default: the exact dict VideoPose3D writes for ``source``)."""
    np.savez_compressed(path_3d, positions_3d=positions_3d)
    if path_2d is not None:
        metadata = VIDEOPOSE3D_2D_METADATA[source] if metadata is None else metadata
        np.savez_compressed(path_2d, positions_2d=positions_2d, metadata=metadata)


def write_nw_ucla(path, poses):
    Path(path).write_text(json.dumps({"file_name": Path(path).stem, "skeletons": np.asarray(poses).tolist()}))


def write_msr(path, rows):
    """``rows``: (T, 20, 4) x y z confidence in MSR order."""
    rows = np.asarray(rows).reshape(-1, 4)
    Path(path).write_text("".join(f"{x:.6f} {y:.6f} {z:.6f} {c:.6f}\n" for x, y, z, c in rows))


# --- attacks: objects whose unpickling would create ``marker`` ---------------------------------------------------


class _Payload:
    def __init__(self, kind, marker):
        self.kind, self.marker = kind, str(marker)

    def __reduce__(self):
        import builtins
        import functools
        import posix
        import subprocess

        if self.kind == "os.system":
            return (os.system, (f"touch {self.marker}",))
        if self.kind == "posix.system":
            return (posix.system, (f"touch {self.marker}",))
        if self.kind == "builtins.eval":
            return (builtins.eval, (f"open({self.marker!r}, 'w').close()",))
        if self.kind == "builtins.exec":
            return (builtins.exec, (f"open({self.marker!r}, 'w').close()",))
        if self.kind == "subprocess.Popen":
            return (subprocess.Popen, (["touch", self.marker],))
        if self.kind == "functools.partial":
            return (functools.partial(os.system, f"touch {self.marker}"), ())
        raise ValueError(self.kind)


PAYLOADS = ("os.system", "posix.system", "builtins.eval", "builtins.exec", "subprocess.Popen", "functools.partial")
# The global each payload's pickle names (os.system pickles as posix.system on Linux).
PAYLOAD_GLOBALS = {"os.system": "posix.system", "posix.system": "posix.system", "builtins.eval": "builtins.eval",
                   "builtins.exec": "builtins.exec", "subprocess.Popen": "subprocess.Popen",
                   "functools.partial": "functools.partial"}


def payload(kind, marker):
    return _Payload(kind, marker)


def malicious_npz(path, kind, marker, key="positions_3d"):
    """An npz whose object member hides the payload inside a VideoPose3D-like nested dict."""
    np.savez_compressed(path, **{key: {"S1": {"Walking": payload(kind, marker)}}})
