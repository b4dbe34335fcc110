"""Pictures (modeling_ups.visualization): files of the promised pixel size, skeletons drawn in the layout's
colours, and the ``ups visualize`` subcommands on files written here. Figures are tiny to keep this fast."""

import json

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from modeling_ups.skeletons import get_layout
from modeling_ups.visualization import (
    animate_lifting,
    plot_early_prediction,
    plot_routing_map,
    plot_skeleton_2d,
    plot_skeleton_3d,
    plot_training_curves,
    routing_table,
)
from modeling_ups.visualization._common import PERSON_COLOURS
from modeling_ups.visualization.cli import main
from modeling_ups.visualization.skeleton import _prediction_frame

LAYOUTS = ["h36m17", "coco17", "ntu25", "openpose18", "halpe26"]
SMALL = {"figsize": (2.0, 1.5), "dpi": 50}  # 100 x 75 pixels
SMALL_SIZE = (100, 75)  # PIL: (width, height)
TASKS = ["action_recognition_3d", "action_recognition_2d", "pose_estimation_3d", "early_action_prediction_3d"]


def pose_for(layout_name: str, dims: int, seed: int = 0) -> np.ndarray:
    """A spread-out random pose with the layout's joint count (drawing does not need anatomy)."""
    return np.random.default_rng(seed).uniform(-500, 500, size=(get_layout(layout_name).num_joints, dims))


def picture(path) -> Image.Image:
    assert path.is_file() and path.stat().st_size > 0, path
    image = Image.open(path)
    image.load()
    return image


def has_colour(image: Image.Image, colour: str, tolerance: int = 40) -> bool:
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    target = np.array([round(255 * c) for c in to_rgb(colour)])
    return bool((np.abs(pixels - target).sum(axis=1) < tolerance).any())


def write_log(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


LOG_RECORDS = [
    {"step": s, "task": t, "loss": 3.0 / s + 0.1 * i, "lr": 1e-3, "epoch": s / 10}
    for s in range(1, 13) for i, t in enumerate(TASKS[:2]) if s % 2 == i
] + [
    {"step": 6, "split": "eval", "action_recognition_3d/top1": 0.4, "pose_estimation_3d/mpjpe": 120.0},
    {"step": 12, "split": "eval", "action_recognition_3d/top1": 0.6, "pose_estimation_3d/mpjpe": 90.0},
]


# ----------------------------------------------------------------------------------------------------------
# skeleton frames
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_skeleton_2d_pixel_size_and_side_colours(tmp_path, layout):
    path = plot_skeleton_2d(pose_for(layout, 2), layout, tmp_path / f"{layout}.png", figsize=(3, 3), dpi=40)
    image = picture(path)
    assert image.size == (120, 120)
    left, right, _ = PERSON_COLOURS[0]
    assert has_colour(image, left) and has_colour(image, right)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_skeleton_3d_pixel_size(tmp_path, layout):
    path = plot_skeleton_3d(pose_for(layout, 3), layout, tmp_path / f"{layout}.png", **SMALL)
    assert picture(path).size == SMALL_SIZE


def test_skeleton_2d_scores_and_several_persons(tmp_path):
    pose = np.concatenate([pose_for("coco17", 2), np.ones((17, 1))], axis=1)
    pose[:, 2] = 0.0  # no joint detected: everything hidden except...
    pose[[5, 7, 9], 2] = 0.9  # ...the left arm, so no right-side colour may appear
    image = picture(plot_skeleton_2d(pose, "coco", tmp_path / "scores.png", figsize=(3, 3), dpi=40))
    left, right, _ = PERSON_COLOURS[0]
    assert has_colour(image, left) and not has_colour(image, right)

    two = np.stack([pose_for("ntu25", 2, seed=1), pose_for("ntu25", 2, seed=2)])
    image = picture(plot_skeleton_2d(two, "ntu25", tmp_path / "two.png", figsize=(3, 3), dpi=40))
    assert has_colour(image, PERSON_COLOURS[1][0]) and has_colour(image, PERSON_COLOURS[0][1])
    three_d = np.stack([pose_for("ntu25", 3, seed=1), pose_for("ntu25", 3, seed=2)])
    path = plot_skeleton_3d(three_d, "ntu25", tmp_path / "two3d.png", vertical_axis="y", **SMALL)
    assert picture(path).size == SMALL_SIZE


def test_skeleton_pictures_reject_bad_input(tmp_path):
    with pytest.raises(ValueError, match="16 joints but the layout has 17"):
        plot_skeleton_2d(np.zeros((16, 2)), "h36m17", tmp_path / "x.png")
    with pytest.raises(ValueError, match="C in"):
        plot_skeleton_3d(np.zeros((17, 2)), "h36m17", tmp_path / "x.png")
    with pytest.raises(ValueError, match="vertical_axis"):
        plot_skeleton_3d(pose_for("h36m17", 3), "h36m17", tmp_path / "x.png", vertical_axis="x")
    with pytest.raises(ValueError, match="no finite joint"):
        plot_skeleton_2d(np.full((17, 2), np.nan), "h36m17", tmp_path / "x.png")
    with pytest.raises(ValueError, match="Unknown skeleton layout"):
        plot_skeleton_2d(np.zeros((17, 2)), "smpl24", tmp_path / "x.png")


# ----------------------------------------------------------------------------------------------------------
# lifting animation
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout,num_predicted", [("h36m17", 3), ("coco17", 1)])
def test_animate_lifting_gif(tmp_path, layout, num_predicted):
    frames_2d = np.stack([pose_for(layout, 2, seed=t) for t in range(3)])
    predicted = np.stack([pose_for(layout, 3, seed=10 + k) for k in range(num_predicted)])
    path = animate_lifting(frames_2d, predicted, layout, tmp_path / "lift.gif", fps=5, figsize=(3, 1.5), dpi=40)
    image = picture(path)
    assert image.size == (120, 60)
    assert image.n_frames == 3


def test_predicted_frames_sit_where_the_processor_takes_targets():
    # K target frames start at (T-1)//2 - (K-1)//2 (design.md, pose-estimation targets); others hold the nearest
    assert [_prediction_frame(t, 5, 1) for t in range(5)] == [(0, False)] * 2 + [(0, True)] + [(0, False)] * 2
    assert [k for k, exact in (_prediction_frame(t, 9, 2) for t in range(9)) if exact] == [0, 1]
    assert [t for t in range(9) if _prediction_frame(t, 9, 2)[1]] == [4, 5]
    assert all(_prediction_frame(t, 4, 4) == (t, True) for t in range(4))


def test_animate_lifting_errors(tmp_path, monkeypatch):
    frames_2d, predicted = np.zeros((2, 17, 2)) + np.arange(17)[:, None], np.ones((2, 17, 3))
    with pytest.raises(ValueError, match=".gif or .mp4"):
        animate_lifting(frames_2d, predicted, "h36m17", tmp_path / "lift.avi")
    with pytest.raises(ValueError, match="predicted_3d must have shape"):
        animate_lifting(frames_2d, predicted[:, :16], "h36m17", tmp_path / "lift.gif")
    with pytest.raises(ValueError, match="predicted frames"):
        animate_lifting(frames_2d[:1], predicted, "h36m17", tmp_path / "lift.gif")
    from matplotlib import animation

    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    with pytest.raises(RuntimeError, match="ffmpeg"):
        animate_lifting(frames_2d, predicted, "h36m17", tmp_path / "lift.mp4")


# ----------------------------------------------------------------------------------------------------------
# charts
# ----------------------------------------------------------------------------------------------------------


def test_early_prediction_chart(tmp_path):
    ratios = [0.1, 0.5, 1.0]
    path = plot_early_prediction(ratios, {"wave": [0.2, 0.6, 0.9], "kick": [0.3, 0.2, 0.05]},
                                 tmp_path / "early.png", **SMALL)
    assert picture(path).size == SMALL_SIZE
    with pytest.raises(ValueError, match="2 values for 3 ratios"):
        plot_early_prediction(ratios, {"wave": [0.2, 0.6]}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        plot_early_prediction([0, 50, 100], {"wave": [0.2, 0.6, 0.9]}, tmp_path / "bad.png")


def test_routing_table_majority_by_hand():
    decisions = np.array([[0, 1], [0, 0], [1, 1], [1, 1], [1, 0], [0, 0]])
    task_ids = np.array([0, 0, 0, 2, 2, 2])
    table, agreement = routing_table(decisions, num_tasks=3, task_ids=task_ids)
    # task 0: layer 1 blocks (0, 0, 1) -> 0 (2/3); layer 2 blocks (1, 0, 1) -> 1 (2/3). task 1: no samples.
    # task 2: layer 1 (1, 1, 0) -> 1 (2/3); layer 2 (1, 0, 0) -> 0 (2/3)
    np.testing.assert_array_equal(table, [[0, 1], [-1, -1], [1, 0]])
    np.testing.assert_allclose(agreement[[0, 2]], 2 / 3)
    assert np.isnan(agreement[1]).all()


def test_routing_map(tmp_path):
    decisions = np.array([[0, 1, 1], [0, 1, 0], [1, 1, 0], [1, 0, 0]])
    path = plot_routing_map(decisions, TASKS, tmp_path / "routing.png", num_blocks=2, **SMALL)
    assert picture(path).size == SMALL_SIZE
    default = picture(plot_routing_map(decisions, TASKS, tmp_path / "default.png", num_blocks=3))
    assert default.size[0] >= 400 and default.size[1] >= 250  # default figsize grows with the grid, >= (4, 2.5) in
    per_sample = np.repeat(decisions, 3, axis=0)
    path = plot_routing_map(per_sample, TASKS, tmp_path / "samples.png", task_ids=np.repeat(np.arange(4), 3), **SMALL)
    assert picture(path).size == SMALL_SIZE
    with pytest.raises(ValueError, match="3 task names"):
        plot_routing_map(decisions, TASKS[:3], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="num_blocks=1"):
        plot_routing_map(decisions, TASKS, tmp_path / "bad.png", num_blocks=1)


def test_training_curves_from_file_and_records(tmp_path):
    log = tmp_path / "log_history.jsonl"
    write_log(log, LOG_RECORDS)
    assert picture(plot_training_curves(log, tmp_path / "curves.png", **SMALL)).size == SMALL_SIZE
    path = plot_training_curves(LOG_RECORDS[:-2], tmp_path / "loss_only.png", figsize=(3, 2), dpi=30, smoothing=0)
    assert picture(path).size == (90, 60)
    log.write_text(json.dumps(LOG_RECORDS[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        plot_training_curves(log, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="no 'step'"):
        plot_training_curves([{"loss": 1.0}], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="no training record"):
        plot_training_curves([{"step": 1, "lr": 0.1}], tmp_path / "bad.png")


# ----------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------


def test_cli_reads_dataset_files_with_pose_io(tmp_path):
    """A Kinetics-skeleton clip (OpenPose-18, normalised x/y + scores): layout and 2D-ness come from the file,
    and joints with score 0 are hidden (here the whole right side)."""
    rng = np.random.default_rng(0)
    scores = np.full(18, 0.9)
    scores[list(get_layout("openpose18").right)] = 0.0
    frames = [{"frame_index": t + 1, "skeleton": [{"pose": rng.uniform(0.2, 0.8, 36).round(3).tolist(),
                                                   "score": scores.tolist()}]} for t in range(2)]
    clip = tmp_path / "clip.json"
    clip.write_text(json.dumps({"data": frames, "label": "waving", "label_index": 3}), encoding="utf-8")
    assert main(["skeleton", str(clip), "--frame", "1", "-o", str(tmp_path / "k.png"), "--figsize", "3", "3",
                 "--dpi", "40"]) == 0
    image = picture(tmp_path / "k.png")
    assert image.size == (120, 120)
    assert has_colour(image, PERSON_COLOURS[0][0]) and not has_colour(image, PERSON_COLOURS[0][1])


def test_cli_subcommands(tmp_path, capsys):
    sequence_3d = np.stack([pose_for("h36m17", 3, seed=t) for t in range(3)])
    np.save(tmp_path / "pose3d.npy", sequence_3d)
    np.save(tmp_path / "keypoints.npy", sequence_3d[..., :2])
    (tmp_path / "pose2d.json").write_text(json.dumps(pose_for("coco17", 2).tolist()), encoding="utf-8")
    (tmp_path / "routing.json").write_text(
        json.dumps({"decisions": [[0, 1], [1, 0], [1, 1], [0, 0]], "num_blocks": 2}), encoding="utf-8"
    )
    (tmp_path / "early.json").write_text(json.dumps({"0.1": 0.2, "0.5": 0.6, "1.0": 0.9}), encoding="utf-8")
    write_log(tmp_path / "log_history.jsonl", LOG_RECORDS)
    size = ["--figsize", "2", "1.5", "--dpi", "50"]

    commands = {
        "skeleton3d.png": ["skeleton", str(tmp_path / "pose3d.npy"), "--layout", "h36m17", "--frame", "2"],
        "skeleton2d.png": ["skeleton", str(tmp_path / "pose2d.json"), "--layout", "coco17", "--joint-ids"],
        "lift.gif": ["animate", str(tmp_path / "keypoints.npy"), str(tmp_path / "pose3d.npy"), "--layout", "h36m"],
        "routing.png": ["routing", str(tmp_path / "routing.json")],
        "curves.png": ["curves", str(tmp_path / "log_history.jsonl"), "--smoothing", "0.5"],
        "early.png": ["early", str(tmp_path / "early.json"), "--ylabel", "top-1 accuracy"],
    }
    for output, argv in commands.items():
        assert main(argv + ["--output", str(tmp_path / output)] + size) == 0
        assert capsys.readouterr().out.strip() == str(tmp_path / output)
        assert picture(tmp_path / output).size == SMALL_SIZE, output

    # the layout is the file's when pose_io can tell it: 25 joints are NTU's, 17 could be COCO or H36M
    np.save(tmp_path / "ntu.npy", pose_for("ntu25", 3)[None])
    assert main(["skeleton", str(tmp_path / "ntu.npy"), "--vertical-axis", "y", "-o", str(tmp_path / "ntu.png")]) == 0
    assert picture(tmp_path / "ntu.png").size == (400, 400)  # plot_skeleton_3d's default 4 x 4 in at 100 dpi
    with pytest.raises(ValueError, match="pass --layout"):
        main(["skeleton", str(tmp_path / "pose3d.npy"), "-o", str(tmp_path / "x.png")])
    with pytest.raises(ValueError, match="out of range"):
        main(["skeleton", str(tmp_path / "pose3d.npy"), "--layout", "h36m17", "--frame", "3", "-o",
              str(tmp_path / "x.png")])
