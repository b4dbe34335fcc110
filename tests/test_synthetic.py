"""datasets_scripts.synthetic: the generator's classes, renderings, determinism, separability and datasets."""

from pathlib import Path

import numpy as np
import pytest

from datasets_scripts import synthetic
from datasets_scripts.schema import REQUIRED_COLUMNS, to_persons_first
from datasets_scripts.synthetic import (NUM_SUBJECTS, NUM_TRAIN_SUBJECTS, SYNTHETIC_ACTIONS, SyntheticMotionGenerator,
                                        build_synthetic_datasets)
from modeling_ups.configuration_ups import UPS_TASKS
from modeling_ups.skeletons import get_layout

EXPECTED_ACTIONS = ("walking", "running", "jumping jacks", "waving right hand", "waving both hands", "punching",
                    "kicking", "squatting", "sitting down", "standing up", "bowing", "throwing")


def test_action_names_and_order():
    assert SYNTHETIC_ACTIONS == EXPECTED_ACTIONS
    labels = Path(__file__).resolve().parents[1] / "processors" / "labels" / "synthetic.txt"
    if labels.is_file():  # the processor's vocabulary names the same classes in the same order
        assert tuple(line.strip() for line in labels.read_text().splitlines() if line.strip()) == EXPECTED_ACTIONS


@pytest.mark.parametrize("layout, joints, coords", [("ntu25", 25, 3), ("openpose18", 18, 2), ("h36m17", 17, 3)])
def test_shapes_lengths_and_padding(layout, joints, coords):
    batch = SyntheticMotionGenerator(seed=0, num_frames=(40, 60)).generate(24, layout=layout)
    assert batch["poses"].shape == (24, 1, 60, joints, coords) and batch["poses"].dtype == np.float32
    assert batch["lengths"].min() >= 40 and batch["lengths"].max() <= 60
    assert batch["labels"].shape == (24,) and set(batch["labels"]) <= set(range(12))
    for i, length in enumerate(batch["lengths"]):
        assert np.all(batch["poses"][i, :, length:] == 0)
        assert np.all(np.isfinite(batch["poses"][i, :, :length]))
    assert batch["layout"] == layout and batch["units"] == ("px" if layout == "openpose18" else "mm")


def test_deterministic_by_seed():
    a = SyntheticMotionGenerator(seed=7).generate(16, layout="openpose18")
    b = SyntheticMotionGenerator(seed=7).generate(16, layout="openpose18")
    c = SyntheticMotionGenerator(seed=8).generate(16, layout="openpose18")
    for key in ("poses", "confidences", "labels", "lengths", "subjects"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["poses"], c["poses"])


def test_ntu25_is_a_plausible_person_in_a_kinect_frame():
    gen = SyntheticMotionGenerator(seed=1, num_frames=50, noise=False, actions=["bowing"])
    batch = gen.generate(32, layout="ntu25")
    poses = batch["poses"][:, 0]  # (n, T, 25, 3) mm
    first = poses[:, 0]
    height = first[:, 3, 1] - np.minimum(first[:, 15, 1], first[:, 19, 1])  # head centre above the feet
    assert np.all((1300 < height) & (height < 1850))
    assert np.all((2000 < poses[..., 2]) & (poses[..., 2] < 5500))  # metres away from the sensor, z forward
    layout = get_layout("ntu25")
    rest = first[:, [a for a, _ in layout.edges]] - first[:, [b for _, b in layout.edges]]
    upper_arm = np.linalg.norm(rest[:, layout.edges.index((5, 4))], axis=-1)
    assert np.all((230 < upper_arm) & (upper_arm < 360))  # bone lengths in mm
    # Handedness as in Kinect/NTU data: forward = up x right points away from the camera's viewing direction.
    right = first[:, 8] - first[:, 4]
    up = first[:, 20] - first[:, 0]
    forward = np.cross(up, right)
    assert np.mean(forward[:, 2] < 0) > 0.9  # people face the camera (within +-50 degrees)


def test_h36m17_2d_is_the_projection_of_the_3d():
    batch = SyntheticMotionGenerator(seed=2, num_frames=30).generate(8, layout="h36m17")
    poses, pixels = batch["poses"][:, 0], batch["poses_2d"][:, 0]
    fx, fy, cx, cy = batch["camera_intrinsics"][0, :4]
    assert (fx, cx, cy) == (1150.0, 500.0, 500.0) and batch["image_size"] == (1000, 1000)
    projected = np.stack([fx * poses[..., 0] / poses[..., 2] + cx, fy * poses[..., 1] / poses[..., 2] + cy], -1)
    np.testing.assert_allclose(projected, pixels, atol=1e-3)
    head_above_feet = poses[:, :, 10, 1] < poses[:, :, 3, 1]  # OpenCV frame: y points down
    assert head_above_feet.mean() > 0.95
    assert np.mean((pixels > 0) & (pixels < 1000)) > 0.95


def test_openpose18_detector_noise_confidences_and_dropouts():
    batch = SyntheticMotionGenerator(seed=3, num_frames=60).generate(64, layout="openpose18")
    conf = batch["confidences"][:, 0]
    valid = np.arange(60)[None] < batch["lengths"][:, None]
    conf = conf[valid]
    dropped = conf == 0
    assert 0.001 < dropped.mean() < 0.1
    assert np.all(batch["poses"][:, 0][valid][dropped] == 0)
    assert np.all((conf[~dropped] > 0) & (conf[~dropped] <= 1))
    clean = SyntheticMotionGenerator(seed=3, num_frames=60, noise=False).generate(64, layout="openpose18")
    assert np.all(clean["confidences"][:, 0][valid] == 1)


def test_shared_prefixes_are_identical():
    """waving right / waving both / throwing share their start, as do squatting / sitting down."""
    n, t = 5, 200
    p = np.tile(np.linspace(0, 1, t), (n, 1))
    params = synthetic._Params(amp=np.linspace(0.8, 1.15, n), cycles=np.full(n, 4.0), phase=np.linspace(0, 3, n),
                               alt=np.full(n, 0.3))

    def angles(action):
        q = np.zeros((n, t, len(synthetic.DOFS)))
        for name, value in synthetic._REST.items():
            q[..., synthetic._D[name]] = value
        synthetic._ACTIONS[action].motion(q, p, params)
        return q

    for group, end in ((("waving right hand", "waving both hands", "throwing"), 0.3),
                       (("squatting", "sitting down"), 0.35)):
        qs = [angles(a) for a in group]
        shared = p[0] <= end
        for q in qs[1:]:
            np.testing.assert_allclose(q[:, shared], qs[0][:, shared], atol=1e-9)
            assert np.abs(q[:, ~shared] - qs[0][:, ~shared]).max() > 20  # they do diverge afterwards


def _features(poses, lengths, ratio):
    """Simple view-normalised features: body-centred joints at 8 time points plus per-joint motion spread."""
    out = []
    for seq, length in zip(poses[:, 0], lengths):
        n = max(2, int(np.ceil(length * ratio)))
        x = seq[:n].astype(np.float64) - seq[:n, 1:2]  # relative to spine_mid
        hips = (x[:, 16] - x[:, 12]).mean(axis=0)
        angle = np.arctan2(hips[2], hips[0])
        c, s = np.cos(angle), np.sin(angle)
        x = x @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T  # rotate about the vertical: hips along x
        steps = np.linspace(0, n - 1, 8).round().astype(int)
        out.append(np.concatenate([x[steps].ravel(), x.std(axis=0).ravel()]))
    return np.asarray(out)


def _nearest_centroid_accuracy(train_x, train_y, test_x, test_y):
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    centroids = np.stack([train_x[train_y == c].mean(axis=0) for c in range(len(SYNTHETIC_ACTIONS))])
    predictions = ((test_x[:, None] - centroids[None]) ** 2).sum(axis=-1).argmin(axis=1)
    return float((predictions == test_y).mean())


def test_classes_separable_on_full_sequences_not_on_first_20_percent():
    train = SyntheticMotionGenerator(seed=11, subject_ids=range(NUM_TRAIN_SUBJECTS)).generate(720, "ntu25")
    test = SyntheticMotionGenerator(seed=12, subject_ids=range(NUM_TRAIN_SUBJECTS, NUM_SUBJECTS)).generate(360, "ntu25")
    accuracy = {}
    for ratio in (1.0, 0.2):  # one classifier per observation ratio, trained and tested on the same ratio
        accuracy[ratio] = _nearest_centroid_accuracy(_features(train["poses"], train["lengths"], ratio),
                                                     train["labels"],
                                                     _features(test["poses"], test["lengths"], ratio),
                                                     test["labels"])
    print(f"nearest-centroid accuracy (unseen subjects): full sequences {accuracy[1.0]:.3f}, first 20% "
          f"{accuracy[0.2]:.3f}")
    assert accuracy[1.0] >= 0.8
    assert accuracy[1.0] - accuracy[0.2] >= 0.15


def test_build_synthetic_datasets_per_task():
    data = build_synthetic_datasets(num_train=36, num_test=12, seed=0, num_frames=(20, 30))
    assert list(data) == list(UPS_TASKS) or set(data) == set(UPS_TASKS)
    layouts = {"action_recognition_3d": ("ntu25", 3), "early_action_prediction_3d": ("ntu25", 3),
               "action_recognition_2d": ("openpose18", 2), "pose_estimation_3d": ("h36m17", 3)}
    for task, dataset_dict in data.items():
        assert set(dataset_dict) == {"train", "test"}
        assert len(dataset_dict["train"]) == 36 and len(dataset_dict["test"]) == 12
        train = dataset_dict["train"].with_format("numpy")
        assert set(REQUIRED_COLUMNS) <= set(train.column_names)
        assert train.features["label"].names == list(SYNTHETIC_ACTIONS)
        row = train[0]
        layout, coords = layouts[task]
        assert row["layout"] == layout and list(row["tasks"]) == [task]
        assert 20 <= row["poses"].shape[0] <= 30 and row["poses"].shape[1:] == (1, get_layout(layout).num_joints,
                                                                                 coords)
        assert not np.all(row["poses"][-1] == 0)  # padding was dropped
        train_subjects, test_subjects = set(dataset_dict["train"]["subject"]), set(dataset_dict["test"]["subject"])
        assert not train_subjects & test_subjects
    pose = data["pose_estimation_3d"]["test"].with_format("numpy")[0]
    assert to_persons_first(pose["poses_2d"]).shape == (1, pose["poses"].shape[0], 17, 2)
    assert pose["camera_intrinsics"].shape == (9,)
    ar2d = data["action_recognition_2d"]["train"].with_format("numpy")[0]
    assert ar2d["confidences"].shape == ar2d["poses"].shape[:3] and ar2d["image_size"].tolist() == [340, 256]
    again = build_synthetic_datasets(num_train=36, num_test=12, seed=0, num_frames=(20, 30),
                                     tasks=["action_recognition_2d"])
    np.testing.assert_array_equal(again["action_recognition_2d"]["train"].with_format("numpy")[5]["poses"],
                                  data["action_recognition_2d"]["train"].with_format("numpy")[5]["poses"])


def test_synthetic_cli_writes_every_task(tmp_path):
    from datasets import load_from_disk

    from datasets_scripts import cli

    out = tmp_path / "synthetic"
    argv = ["synthetic", "--num_train", "8", "--num_test", "4", "--num_frames", "16", "--output_dir", str(out)]
    assert cli.main(argv) == 0
    for task in UPS_TASKS:
        loaded = load_from_disk(str(out / task))
        assert len(loaded["train"]) == 8 and len(loaded["test"]) == 4
    assert cli.main(argv) == 1  # exists: needs --overwrite
