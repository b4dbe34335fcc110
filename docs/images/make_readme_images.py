"""Regenerate the example pictures of the README (``python docs/images/make_readme_images.py``).

Every input here is constructed, not measured: a hand-built Human3.6M-17 standing pose, a short arm-raise
motion, made-up early-prediction confidences, a made-up routing and a fabricated training log. The pictures
show what the drawing functions produce; replace them with a real run's outputs (``ups visualize curves
runs/<run>/log_history.jsonl`` etc.) once one exists.
"""

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from a checkout without installing

from modeling_ups.configuration_ups import UPS_TASKS  # noqa: E402
from modeling_ups.evaluation import OBSERVATION_RATIOS  # noqa: E402
from modeling_ups.visualization import (  # noqa: E402
    animate_lifting,
    plot_early_prediction,
    plot_routing_map,
    plot_skeleton_2d,
    plot_skeleton_3d,
    plot_training_curves,
)

# Human3.6M-17 (VideoPose3D order), millimetres, camera frame (x right, y down, z away from the camera),
# pelvis at the origin; the person faces the camera, so their right side is at negative x.
STANDING_H36M = np.array(
    [
        [0, 0, 0],  # pelvis
        [-130, 5, 10], [-140, 450, 30], [-150, 880, 60],  # right hip, knee, ankle
        [130, 5, 10], [140, 450, 30], [150, 880, 60],  # left hip, knee, ankle
        [0, -230, -10], [0, -480, -20], [0, -570, -40], [0, -690, -20],  # spine, thorax, neck/nose, head
        [170, -460, -10], [230, -200, 0], [250, 40, -30],  # left shoulder, elbow, wrist
        [-170, -460, -10], [-230, -200, 0], [-250, 40, -30],  # right shoulder, elbow, wrist
    ],
    dtype=np.float64,
)
FOCAL, CENTRE, DEPTH = 1145.0, np.array([500.0, 500.0]), 4500.0  # about an H36M camera, subject 4.5 m away


def project(pose_3d: np.ndarray) -> np.ndarray:
    """Pinhole projection of root-relative camera-frame joints placed DEPTH millimetres in front."""
    z = pose_3d[..., 2:] + DEPTH
    return FOCAL * pose_3d[..., :2] / z + CENTRE


def arm_raise(num_frames: int) -> np.ndarray:
    """The standing pose raising its right arm sideways to shoulder height and higher, (T, 17, 3)."""
    frames = []
    shoulder = STANDING_H36M[14]
    for t in range(num_frames):
        angle = np.deg2rad(10 + 140 * t / max(num_frames - 1, 1))  # from the arm hanging to raised
        pose = STANDING_H36M.copy()
        for joint, length in ((15, 260.0), (16, 500.0)):
            # rotate in the image plane about the shoulder: hanging is +y (down), raised sideways is -x
            pose[joint] = shoulder + length * np.array([-np.sin(angle), np.cos(angle), 0.0])
        frames.append(pose)
    return np.stack(frames)


def fabricated_log(path: Path) -> None:
    """A training log in the ``log_history.jsonl`` format with made-up values (an illustration only)."""
    rng = np.random.default_rng(0)
    start = {"action_recognition_3d": 4.0, "action_recognition_2d": 4.4, "pose_estimation_3d": 5.2,
             "early_action_prediction_3d": 4.2}
    lines = []
    for step in range(1, 1201):
        task = UPS_TASKS[step % len(UPS_TASKS)]
        loss = start[task] * (0.15 + 0.85 * np.exp(-step / 350)) * np.exp(0.12 * rng.normal())
        lines.append({"step": step, "task": task, "loss": round(float(loss), 4), "lr": 5e-4, "epoch": step / 300})
        if step % 200 == 0:
            progress = 1 - np.exp(-step / 400)
            lines.append({
                "step": step, "split": "eval",
                "action_recognition_3d/top1": round(0.1 + 0.7 * progress, 3),
                "action_recognition_3d/top5": round(0.3 + 0.67 * progress, 3),
                "pose_estimation_3d/mpjpe": round(180 - 110 * progress, 1),
                "pose_estimation_3d/p_mpjpe": round(130 - 85 * progress, 1),
            })
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def main() -> None:
    rng = np.random.default_rng(0)
    written = []

    pose_2d = project(STANDING_H36M)
    written.append(plot_skeleton_2d(pose_2d, "h36m17", HERE / "skeleton_2d.png",
                                    title="H36M-17, 2D (pixels)", figsize=(3.2, 3.2), dpi=100))
    written.append(plot_skeleton_3d(arm_raise(5)[2], "h36m17", HERE / "skeleton_3d.png",
                                    title="H36M-17, 3D (mm, camera frame)", figsize=(3.2, 3.2), dpi=100))

    motion = arm_raise(8)
    predicted = motion + rng.normal(scale=15.0, size=motion.shape)  # stands in for a model's output
    written.append(animate_lifting(project(motion), predicted, "h36m17", HERE / "lifting.gif", fps=4,
                                   figsize=(6.0, 3.0), dpi=80))

    confidences = {
        "wave (true class)": [0.22, 0.31, 0.45, 0.58, 0.69, 0.77, 0.83, 0.87, 0.89, 0.90],
        "hand up": [0.30, 0.34, 0.30, 0.24, 0.18, 0.13, 0.10, 0.07, 0.06, 0.05],
        "salute": [0.12, 0.15, 0.14, 0.11, 0.08, 0.06, 0.04, 0.03, 0.03, 0.02],
    }
    written.append(plot_early_prediction(OBSERVATION_RATIOS, confidences, HERE / "early_prediction.png",
                                         title="Early prediction (illustration)", figsize=(5.0, 3.2), dpi=100))

    per_sample_routes = np.array([[0, 1, 1], [0, 1, 0], [1, 1, 0], [1, 0, 0]])  # one row per task
    task_ids = np.repeat(np.arange(len(UPS_TASKS)), 20)
    decisions = per_sample_routes[task_ids].copy()
    flip = rng.random(decisions.shape) < 0.1  # a few samples deviate: the cells show the majority share
    decisions[flip] = 1 - decisions[flip]
    written.append(plot_routing_map(decisions, UPS_TASKS, HERE / "routing_map.png", task_ids=task_ids,
                                    num_blocks=2, title="Routing (illustration)", figsize=(5.6, 2.6), dpi=100))

    log_path = HERE / "_illustration_log_history.jsonl"
    fabricated_log(log_path)
    try:
        written.append(plot_training_curves(log_path, HERE / "training_curves.png",
                                            title="Training curves (fabricated log, illustration)",
                                            figsize=(9.0, 3.0), dpi=90))
    finally:
        log_path.unlink()

    for path in written:
        print(f"{path.relative_to(HERE.parents[1])}: {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
