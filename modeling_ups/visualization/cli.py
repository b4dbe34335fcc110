"""Command line for the pictures: ``ups visualize {skeleton,animate,routing,curves,early} ...``.

Inputs are files. Poses are read with ``modeling_ups.pose_io.load_pose_file`` (``.npy``, ``.npz``, NTU
``.skeleton``, Kinetics-skeleton / AlphaPose / NW-UCLA JSON, pyskl ``.pkl``), which also tells the layout of
the dataset formats; plain numeric arrays (a ``(J, C)`` pose, a JSON nested list, arrays with NaN for missing
joints) are read as they are. Routing decisions are ``.npy`` / ``.npz`` / ``.json`` arrays, training logs
``log_history.jsonl``, early-prediction curves JSON. Each subcommand prints the path it wrote.

Examples::

    ups visualize skeleton pose.npy --layout h36m17 --output pose.png
    ups visualize skeleton S001C001P001R001A001.skeleton --frame 40 --vertical-axis y --output ntu.png
    ups visualize animate keypoints_2d.npy predicted_3d.npy --layout h36m17 --output lifting.gif --fps 10
    ups visualize routing routing.json --output routing.png
    ups visualize curves runs/ups-tiny/log_history.jsonl --output curves.png
    ups visualize early early.json --output early.png
"""

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..configuration_ups import UPS_TASKS
from ..pose_io import load_pose_file
from ..skeletons import LAYOUTS
from .charts import plot_early_prediction, plot_routing_map, plot_training_curves
from .skeleton import animate_lifting, plot_skeleton_2d, plot_skeleton_3d


def load_array(path, key: Optional[str] = None) -> np.ndarray:
    """A numeric array from ``.npy``, ``.npz`` (``key`` or its only array) or ``.json`` (a nested list, or
    an object holding one under ``key``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if key is None:
                if len(archive.files) != 1:
                    raise ValueError(f"{path} holds arrays {archive.files}; choose one with --key")
                key = archive.files[0]
            if key not in archive.files:
                raise ValueError(f"{path} has no array {key!r}; it holds {archive.files}")
            return archive[key]
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            if key is None or key not in data:
                raise ValueError(f"{path} is a JSON object with keys {sorted(data)}; choose the array with --key")
            data = data[key]
        return np.asarray(data, dtype=np.float64)
    raise ValueError(f"cannot read an array from {path.name!r}: use .npy, .npz or .json")


def load_poses(path, layout: Optional[str] = None, key: Optional[str] = None):
    """Poses ``(M, T, J, C)`` of a file, its layout name (``layout`` if given, else the file's own) and
    whether the poses are 2D.

    2D keypoints with separate confidences come back as ``C = 3`` columns ``(x, y, score)``, the form the
    2D pictures take. Files ``load_pose_file`` rejects are retried as plain arrays (see ``load_array``).
    """
    result, pose_file_error = None, None
    if key is None:  # --key names an array inside a plain .npz / JSON object
        try:
            result = load_pose_file(path, layout=layout)
        except ValueError as error:
            pose_file_error = error
    if result is None:
        try:
            poses = load_array(path, key)
        except (ValueError, OSError):
            if pose_file_error is not None:
                raise pose_file_error from None
            raise
        if poses.ndim not in (2, 3, 4) or poses.shape[-1] not in (2, 3):
            raise ValueError(f"{path}: expected (J, C), (T, J, C) or (M, T, J, C) keypoints with C in (2, 3), "
                             f"got shape {poses.shape}") from None
        poses = poses.reshape((1,) * (4 - poses.ndim) + poses.shape).astype(np.float64)
        candidates = [name for name in LAYOUTS if LAYOUTS[name].num_joints == poses.shape[2]]
        inferred = candidates[0] if len(candidates) == 1 else None
        result = {"poses": poses, "scores": None, "layout": layout or inferred,
                  "meta": {"layout_candidates": candidates}}
    poses, scores = result["poses"], result["scores"]
    is_2d = poses.shape[-1] == 2
    if scores is not None and is_2d:
        poses = np.concatenate([poses, scores[..., None]], axis=-1)
    if result["layout"] is None:
        candidates = result["meta"].get("layout_candidates") or sorted(LAYOUTS)
        raise ValueError(f"{path}: cannot tell the skeleton layout of {poses.shape[2]} joints; pass --layout "
                         f"(candidates: {', '.join(candidates)})")
    return poses, result["layout"], is_2d


def _frame(poses: np.ndarray, frame: int, name: str) -> np.ndarray:
    """(M, T, J, C) -> all persons at ``frame``, (M, J, C)."""
    num_frames = poses.shape[1]
    if not -num_frames <= frame < num_frames:
        raise ValueError(f"--frame {frame} is out of range for {num_frames} frames in {name}")
    return poses[:, frame]


def _figure_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", required=True, help="picture to write (extension gives the format)")
    parser.add_argument("--figsize", type=float, nargs=2, metavar=("W", "H"), help="figure size in inches")
    parser.add_argument("--dpi", type=float, help="pixels per inch (pixel size = figsize * dpi)")


def _figure_kwargs(args) -> dict:
    kwargs = {}
    if args.figsize:
        kwargs["figsize"] = tuple(args.figsize)
    if args.dpi:
        kwargs["dpi"] = args.dpi
    return kwargs


def _skeleton(args) -> Path:
    poses, layout, is_2d = load_poses(args.pose, args.layout, args.key)
    pose = _frame(poses, args.frame, args.pose)
    # --dims 2 says that a plain (x, y, score) array is 2D; files read by pose_io know it themselves
    if args.dims == 2 or (is_2d and args.dims != 3):
        return plot_skeleton_2d(pose, layout, args.output, min_score=args.min_score, title=args.title,
                                show_joint_ids=args.joint_ids, **_figure_kwargs(args))
    return plot_skeleton_3d(pose, layout, args.output, vertical_axis=args.vertical_axis, title=args.title,
                            **_figure_kwargs(args))


def _animate(args) -> Path:
    keypoints, layout, _ = load_poses(args.input_2d, args.layout, args.key)
    predicted, _, _ = load_poses(args.predicted_3d, layout, args.key)
    if predicted.shape[-1] != 3:
        raise ValueError(f"{args.predicted_3d}: predicted poses need 3 coordinates, got shape {predicted.shape}")
    # the first person: lifting is single-person
    return animate_lifting(keypoints[0], predicted[0], layout, args.output, fps=args.fps, min_score=args.min_score,
                           vertical_axis=args.vertical_axis, **_figure_kwargs(args))


def _routing(args) -> Path:
    tasks = args.tasks
    num_blocks = args.num_blocks
    task_ids = None
    if Path(args.decisions).suffix.lower() == ".json" and args.key is None:
        data = json.loads(Path(args.decisions).read_text(encoding="utf-8"))
        if isinstance(data, dict):  # {"decisions": [[...]], "tasks": [...], "num_blocks": n, "task_ids": [...]}
            decisions = np.asarray(data["decisions"]) if "decisions" in data else None
            if decisions is None:
                raise ValueError(f"{args.decisions}: JSON object needs a 'decisions' array")
            tasks = tasks or data.get("tasks")
            num_blocks = num_blocks or data.get("num_blocks")
            task_ids = data.get("task_ids")
        else:
            decisions = np.asarray(data)
    else:
        decisions = load_array(args.decisions, args.key)
    if args.task_ids:
        task_ids = load_array(args.task_ids).astype(np.int64)
    decisions = np.asarray(decisions)
    num_rows = decisions.shape[0] if task_ids is None else int(np.max(task_ids)) + 1
    if not tasks:
        default_names = task_ids is None and num_rows == len(UPS_TASKS)
        tasks = list(UPS_TASKS) if default_names else [f"task {i}" for i in range(num_rows)]
    if task_ids is not None:
        task_ids = np.asarray(task_ids, dtype=np.int64)
    return plot_routing_map(decisions, tasks, args.output, num_blocks=num_blocks, task_ids=task_ids,
                            **_figure_kwargs(args))


def _curves(args) -> Path:
    return plot_training_curves(args.log, args.output, smoothing=args.smoothing, title=args.title,
                                **_figure_kwargs(args))


def _early(args) -> Path:
    data = json.loads(Path(args.curves).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{args.curves}: expected a JSON object")
    if "ratios" in data:  # {"ratios": [...], "curves": {label: [...]}}
        ratios, curves = data["ratios"], data.get("curves")
        if not isinstance(curves, dict):
            raise ValueError(f"{args.curves}: 'curves' must map each label to one value per ratio")
    else:  # {ratio: accuracy}: one curve, e.g. the result of an early-prediction evaluation
        items = sorted((float(r), float(v)) for r, v in data.items())
        ratios, curves = [r for r, _ in items], {args.label: [v for _, v in items]}
    return plot_early_prediction(ratios, curves, args.output, ylabel=args.ylabel, title=args.title,
                                 **_figure_kwargs(args))


def build_parser(prog: str = "ups visualize") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Draw UPS pictures from files.")
    commands = parser.add_subparsers(dest="command", required=True)

    skeleton = commands.add_parser("skeleton", help="one skeleton frame (2D or 3D)")
    skeleton.add_argument("pose", help="keypoints: (J, C), (T, J, C) or (M, T, J, C) in .npy/.npz/.json")
    skeleton.add_argument("--layout", help="layout name, e.g. h36m17, coco17, ntu25 (default: the file's)")
    skeleton.add_argument("--frame", type=int, default=0, help="frame to draw from a sequence (default 0)")
    skeleton.add_argument("--dims", type=int, choices=(2, 3),
                          help="2: (x, y[, score]) image keypoints; 3: (x, y, z) joints (default: the file's; a "
                               "plain array with 3 columns is 3D)")
    skeleton.add_argument("--min-score", type=float, default=0.0, help="2D: hide joints scored at or below")
    skeleton.add_argument("--vertical-axis", default="-y", choices=("-y", "y", "z"), help="3D: the up axis")
    skeleton.add_argument("--joint-ids", action="store_true", help="2D: write joint indices")
    skeleton.add_argument("--title")
    skeleton.add_argument("--key", help="array name inside a .npz or JSON object")
    _figure_options(skeleton)
    skeleton.set_defaults(run=_skeleton)

    animate = commands.add_parser("animate", help="2D input beside predicted 3D poses (.gif, or .mp4 with ffmpeg)")
    animate.add_argument("input_2d", help="(T, J, 2|3) keypoints")
    animate.add_argument("predicted_3d", help="(K, J, 3) predicted joints, K == T or the centre K frames")
    animate.add_argument("--layout", help="layout of both files (default: the 2D file's)")
    animate.add_argument("--fps", type=float, default=10.0)
    animate.add_argument("--min-score", type=float, default=0.0)
    animate.add_argument("--vertical-axis", default="-y", choices=("-y", "y", "z"))
    animate.add_argument("--key", help="array name inside .npz or JSON objects")
    _figure_options(animate)
    animate.set_defaults(run=_animate)

    routing = commands.add_parser("routing", help="block chosen per task and encoder layer")
    routing.add_argument("decisions", help="(tasks, layers) block ids, or a JSON object with 'decisions', "
                                           "optional 'tasks', 'num_blocks', 'task_ids'")
    routing.add_argument("--tasks", nargs="+", help="row names (default: the UPS tasks when there are 4 rows)")
    routing.add_argument("--task-ids", help="(N,) task id per row when decisions are per sample")
    routing.add_argument("--num-blocks", type=int, help="blocks per encoder layer")
    routing.add_argument("--key", help="array name inside a .npz or JSON object")
    _figure_options(routing)
    routing.set_defaults(run=_routing)

    curves = commands.add_parser("curves", help="per-task loss and evaluation metrics of a run")
    curves.add_argument("log", help="log_history.jsonl of a run")
    curves.add_argument("--smoothing", type=float, default=0.8, help="EMA weight for losses, in [0, 1)")
    curves.add_argument("--title")
    _figure_options(curves)
    curves.set_defaults(run=_curves)

    early = commands.add_parser("early", help="early-prediction confidence or accuracy against observed ratio")
    early.add_argument("curves", help='JSON: {"ratios": [...], "curves": {label: [...]}} or {ratio: value}')
    early.add_argument("--ylabel", default="confidence")
    early.add_argument("--label", default="accuracy", help="curve name for the {ratio: value} form")
    early.add_argument("--title", default="Early action prediction")
    _figure_options(early)
    early.set_defaults(run=_early)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one subcommand; returns the exit status (0), printing the written path."""
    args = build_parser().parse_args(None if argv is None else list(argv))
    path = args.run(args)
    print(path)
    return 0


__all__ = ["main", "build_parser", "load_array"]


if __name__ == "__main__":
    raise SystemExit(main())
