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


def write_videopose3d_npz(path_3d, positions_3d, path_2d=None, positions_2d=None, layout_name="h36m",
                          num_joints=17):
    """As VideoPose3D's prepare_data_*.py: np.savez_compressed of dicts (pickled object arrays)."""
    np.savez_compressed(path_3d, positions_3d=positions_3d)
    if path_2d is not None:
        symmetry = [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
        metadata = {"layout_name": layout_name, "num_joints": num_joints, "keypoints_symmetry": symmetry}
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
