"""datasets_scripts converters: tiny files in the published formats -> the shared schema, splits, robustness."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from datasets import load_from_disk

from datasets_scripts import cli, kinetics, msr_action3d, ntu, nw_ucla, pyskl, videopose3d
from datasets_scripts.common import REPORT_FILE, ConversionError, is_complete_dataset
from datasets_scripts.schema import REQUIRED_COLUMNS, to_persons_first
from modeling_ups.skeletons import convert_layout, get_layout
from skeleton_files import (PAYLOADS, kinetics_skeleton, malicious_npz, noisy_ntu_frames, ntu_body, ntu_person,
                            payload, write_kinetics_clip, write_msr, write_ntu_skeleton, write_nw_ucla,
                            write_pyskl_pickle, write_videopose3d_npz)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load(path):
    return load_from_disk(str(path)).with_format("numpy")


def _report(path):
    return json.loads((Path(path) / REPORT_FILE).read_text())


# ------------------------------------------------------------------------------------------------------------------
# NTU RGB+D raw skeletons
# ------------------------------------------------------------------------------------------------------------------

NTU_SAMPLES = {
    # name: (frames, expected xsub split, expected xview split)
    "S001C001P001R001A001": (5, "train", "test"),
    "S001C002P003R001A002": (6, "test", "train"),
    "S002C003P002R002A060": (4, "train", "train"),
    "S017C002P007R001A014": (3, "test", "train"),
}


@pytest.fixture
def ntu_dir(tmp_path):
    folder = tmp_path / "nturgb+d_skeletons"
    folder.mkdir()
    for name, (frames, _, _) in NTU_SAMPLES.items():
        write_ntu_skeleton(folder / f"{name}.skeleton",
                           [[("72057594037931101", ntu_body(t)), ("72057594037931102", ntu_body(t, 1.0, False))]
                            for t in range(frames)])
    write_ntu_skeleton(folder / "S001C002P005R002A008.skeleton", [[("1", ntu_body(0))]])  # official missing list
    write_ntu_skeleton(folder / "S018C001P045R001A061.skeleton", [[("1", ntu_body(0))]])  # NTU120 only
    write_ntu_skeleton(folder / "S003C001P008R001A010.skeleton", [[("1", ntu_body(t))] for t in range(4)])
    truncated = (folder / "S003C001P008R001A010.skeleton").read_text().splitlines()[:40]
    (folder / "S003C001P008R001A010.skeleton").write_text("\n".join(truncated))  # corrupted: reported, skipped
    return folder


def test_ntu60_counts_splits_labels_values(ntu_dir, tmp_path):
    report = ntu.convert_ntu([ntu_dir], tmp_path / "ntu60", variant="ntu60")
    assert report.converted == 4 and len(report.skipped) == 1
    assert "S003C001P008R001A010" in report.skipped[0][0] and "truncated" in report.skipped[0][1]
    assert report.excluded == {"official missing-skeleton list": 1, "not part of ntu60": 1}
    for benchmark, column in (("xsub", 1), ("xview", 2)):
        data = _load(tmp_path / "ntu60" / benchmark)
        assert set(data) == {"train", "test"}
        for split in ("train", "test"):
            expected = sorted(n for n, v in NTU_SAMPLES.items() if v[column] == split)
            assert sorted(data[split]["sample_id"]) == expected
    data = _load(tmp_path / "ntu60" / "xsub")
    assert data["train"].features["label"].num_classes == 60
    assert data["train"].features["label"].names[0] == "drink water"
    row = next(r for r in data["train"] if r["sample_id"] == "S002C003P002R002A060")
    assert row["label"] == 59 and row["subject"] == "P002" and row["camera"] == "C003" and row["setup"] == 2
    assert row["poses"].shape == (4, 2, 25, 3) and row["num_persons"] == 2 and row["units"] == "mm"
    poses = to_persons_first(row["poses"])
    np.testing.assert_allclose(poses[0, 3, 7], [70.0, 300.0, 3007.0], rtol=1e-5)  # moving body, frame 3, joint 7
    np.testing.assert_allclose(poses[1, 3, 7], [1070.0, 500.0, 3007.0], rtol=1e-5)
    assert list(row["tasks"]) == ["action_recognition_3d", "early_action_prediction_3d"]
    assert set(REQUIRED_COLUMNS) <= set(data["train"].column_names)
    assert _report(tmp_path / "ntu60")["split_counts"]["xsub/train"] == 2


def test_ntu120_xset_and_custom_missing_list(ntu_dir, tmp_path):
    missing = tmp_path / "missing.txt"
    missing.write_text("S001C001P001R001A001\n")
    report = ntu.convert_ntu([ntu_dir], tmp_path / "ntu120", variant="ntu120", benchmarks=["xset"],
                             missing_list=missing)
    assert report.converted == 5  # S018...A061 and the official-list sample are in; our listed one is out
    assert report.excluded == {"missing-skeleton list missing.txt (--missing_list)": 1}
    data = _load(tmp_path / "ntu120")  # one benchmark: the DatasetDict sits at the output folder itself
    assert sorted(data["train"]["sample_id"]) == ["S002C003P002R002A060", "S018C001P045R001A061"]
    assert data["train"].features["label"].num_classes == 120
    assert ntu.ntu_split("S001C001P045R001A001", "xsub", "ntu120") == "train"
    assert ntu.ntu_split("S001C001P045R001A001", "xsub", "ntu60") == "test"
    assert len(ntu.NTU120_TRAIN_SUBJECTS) == 53 and len(ntu.NTU_CLASSES) == 120


def test_ntu_denoising_selects_the_actors_and_reports_each_rule(tmp_path):
    folder = tmp_path / "nturgb+d_skeletons"
    folder.mkdir()
    write_ntu_skeleton(folder / "S001C001P001R001A050.skeleton", noisy_ntu_frames())
    write_ntu_skeleton(folder / "S001C001P003R001A001.skeleton",  # one clean actor: nothing to remove
                       [[("72057594037931101", ntu_person(t, wave=0.3))] for t in range(20)])
    ntu.convert_ntu([folder], tmp_path / "ntu60", variant="ntu60", benchmarks=["xsub"])
    row = next(r for r in _load(tmp_path / "ntu60")["train"] if r["sample_id"] == "S001C001P001R001A050")
    poses = to_persons_first(row["poses"])
    assert poses.shape == (2, 58, 25, 3) and row["num_persons"] == 2
    np.testing.assert_allclose(poses[0], [ntu_person(t, x=-0.9, walk=0.02) * 1000 for t in range(2, 60)], rtol=1e-5)
    np.testing.assert_allclose(poses[1], [ntu_person(t, x=0.8, wave=0.3) * 1000 for t in range(2, 60)], rtol=1e-5)
    denoising = _report(tmp_path / "ntu60")["ntu_denoising"]
    assert denoising["settings"] == {"rules": ["length", "spread"], "length_threshold": 11, "spread_ratio": 0.8,
                                     "spread_noise_ratio": 0.69754, "motion_range": [0.089925, 2.0],
                                     "empty_frames": "trim", "max_bodies": 2}
    noisy = ["S001C001P001R001A050.skeleton"]
    assert denoising["removed"] == {
        "length": {"bodies": 1, "frames": 4, "files": noisy}, "spread": {"bodies": 1, "frames": 44, "files": noisy},
        "motion": {"bodies": 0, "frames": 0, "files": []}, "slots": {"bodies": 0, "frames": 0, "files": []},
        "untracked_frames": {"bodies": 0, "frames": 2, "files": noisy},
        "noise_only_frames": {"bodies": 0, "frames": 4, "files": noisy}}

    # Every rule is an option: without body rules the variance ranking keeps the noise and loses actor B.
    assert cli.main(["ntu", "--skeletons_dir", str(folder), "--benchmark", "xsub", "--denoise_rules",
                     "--empty_frames", "drop", "--output_dir", str(tmp_path / "raw")]) == 0
    raw = _report(tmp_path / "raw")["ntu_denoising"]
    assert raw["settings"]["rules"] == [] and raw["removed"]["slots"]["bodies"] == 2
    assert raw["removed"]["length"]["bodies"] == raw["removed"]["spread"]["bodies"] == 0
    assert cli.main(["ntu", "--skeletons_dir", str(folder), "--spread_noise_ratio", "1.5", "--output_dir",
                     str(tmp_path / "bad")]) == 1


@pytest.mark.parametrize("name, classes", [
    ("ntu60", ntu.NTU_CLASSES[:60]), ("ntu120", ntu.NTU_CLASSES), ("nw-ucla", nw_ucla.NW_UCLA_CLASSES),
    ("msr-action3d", msr_action3d.MSR_ACTION3D_CLASSES), ("h36m", videopose3d.H36M_CLASSES),
    ("humaneva", videopose3d.HUMANEVA_CLASSES)])
def test_class_names_match_the_processor_vocabulary(name, classes):
    """Label ids of converted datasets must mean the same classes as the processors' label files."""
    path = REPO_ROOT / "processors" / "labels" / f"{name}.txt"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    assert tuple(line.strip() for line in path.read_text().splitlines() if line.strip()) == tuple(classes)


def test_shipped_missing_lists():
    from datasets_scripts.common import DATA_DIR, read_lines_file

    ntu60 = read_lines_file(DATA_DIR / "ntu60_samples_with_missing_skeletons.txt")
    ntu120 = read_lines_file(DATA_DIR / "ntu120_samples_with_missing_skeletons.txt")
    assert len(ntu60) == len(set(ntu60)) == 302 and len(ntu120) == len(set(ntu120)) == 535
    assert set(ntu60) <= set(ntu120)
    assert all(ntu.NTU_NAME_RE.match(n) for n in ntu120)


# ------------------------------------------------------------------------------------------------------------------
# pyskl pickles
# ------------------------------------------------------------------------------------------------------------------


def _pyskl_3d(tmp_path):
    rng = np.random.default_rng(0)
    names = ["S001C001P001R001A001", "S001C002P003R001A002", "S001C003P002R001A003"]
    anns = [{"frame_dir": n, "label": i, "total_frames": 8 + i,
             "keypoint": rng.normal(size=(1 + i % 2, 8 + i, 25, 3)).astype(np.float16)} for i, n in enumerate(names)]
    split = {"xsub_train": [names[0], names[2]], "xsub_val": [names[1]],
             "xview_train": [names[1], names[2]], "xview_val": [names[0]]}
    write_pyskl_pickle(tmp_path / "ntu60_3danno.pkl", anns, split)
    return anns


def test_pyskl_3d(tmp_path):
    anns = _pyskl_3d(tmp_path)
    report = pyskl.convert_pyskl(tmp_path / "ntu60_3danno.pkl", tmp_path / "out")
    assert report.converted == 3 and not report.skipped
    xsub, xview = _load(tmp_path / "out" / "xsub"), _load(tmp_path / "out" / "xview")
    assert list(xsub["train"]["sample_id"]) == [anns[0]["frame_dir"], anns[2]["frame_dir"]]
    assert list(xview["test"]["sample_id"]) == [anns[0]["frame_dir"]]
    row = xsub["test"][0]
    assert row["label"] == 1 and row["layout"] == "ntu25" and row["poses"].shape == (9, 2, 25, 3)
    np.testing.assert_allclose(to_persons_first(row["poses"]), anns[1]["keypoint"].astype(np.float32) * 1000,
                               rtol=1e-6)
    assert xsub["train"].features["label"].names[1] == "eat meal/snack"
    single = xsub["train"][0]
    assert single["num_persons"] == 1 and np.all(single["poses"][:, 1] == 0)


def test_pyskl_2d_hrnet(tmp_path):
    rng = np.random.default_rng(1)
    anns = [{"frame_dir": f"clip{i}", "label": i, "img_shape": (1080, 1920), "original_shape": (1080, 1920),
             "total_frames": 6, "keypoint": rng.uniform(0, 1000, size=(2, 6, 17, 2)).astype(np.float16),
             "keypoint_score": rng.uniform(size=(2, 6, 17)).astype(np.float16)} for i in range(3)]
    anns.append({"frame_dir": "k400clip", "label": 0, "raw_file": "kpfiles/part_0.pkl", "total_frames": 5})
    write_pyskl_pickle(tmp_path / "hrnet.pkl", anns,
                       {"train": ["clip0", "clip1", "k400clip"], "val": ["clip2"]})
    report = pyskl.convert_pyskl(tmp_path / "hrnet.pkl", tmp_path / "out")
    assert report.converted == 3 and len(report.skipped) == 1 and "raw_file" in report.skipped[0][1]
    data = _load(tmp_path / "out")
    row = data["test"][0]
    assert row["layout"] == "coco17" and row["units"] == "px" and row["poses"].shape == (6, 2, 17, 2)
    assert row["image_size"].tolist() == [1920, 1080] and list(row["tasks"]) == ["action_recognition_2d"]
    np.testing.assert_allclose(to_persons_first(row["confidences"]), anns[2]["keypoint_score"].astype(np.float32))
    assert data["train"].features["label"].names == ["class_0", "class_1", "class_2"]


def test_pyskl_names_an_npz_as_not_a_pickle(tmp_path):
    np.savez(tmp_path / "ntu60_3danno.npz", keypoint=np.zeros((1, 4, 25, 3)))
    with pytest.raises(ConversionError, match="ntu60_3danno.npz: not a pickle but a zip archive") as info:
        pyskl.convert_pyskl(tmp_path / "ntu60_3danno.npz", tmp_path / "out")
    assert "persistent" not in str(info.value)


@pytest.mark.parametrize("kind", PAYLOADS)
def test_pyskl_refuses_malicious_pickle(tmp_path, kind):
    marker = tmp_path / "pwned"
    write_pyskl_pickle(tmp_path / "evil.pkl", [payload(kind, marker)], {"train": ["x"]})
    with pytest.raises(ConversionError, match="refused"):
        pyskl.convert_pyskl(tmp_path / "evil.pkl", tmp_path / "out")
    assert cli.main(["pyskl", "--annotation", str(tmp_path / "evil.pkl"), "--output_dir", str(tmp_path / "out")]) == 1
    assert not marker.exists() and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------------------------
# Kinetics-skeleton
# ------------------------------------------------------------------------------------------------------------------


def test_kinetics(tmp_path):
    root = tmp_path / "kinetics-skeleton"
    xy = np.stack([np.linspace(0.1, 0.9, 18), np.linspace(0.2, 0.8, 18)], axis=-1)
    for part in ("train", "val"):
        (root / f"kinetics_{part}").mkdir(parents=True)
    three = [[kinetics_skeleton(xy, np.full(18, 0.3)), kinetics_skeleton(xy + 0.05, np.full(18, 0.9)),
              kinetics_skeleton(xy - 0.05, np.full(18, 0.6))]] * 4
    write_kinetics_clip(root / "kinetics_train" / "clipA.json", three, "abseiling", 0)
    write_kinetics_clip(root / "kinetics_train" / "clipB.json", [[kinetics_skeleton(xy, np.ones(18))]] * 3,
                        "zumba", 2)
    write_kinetics_clip(root / "kinetics_train" / "clipC.json", [], "zumba", 2)  # has_skeleton: false
    write_kinetics_clip(root / "kinetics_val" / "clipD.json", [[kinetics_skeleton(xy, np.ones(18))]] * 5, "zumba", 2)
    (root / "kinetics_val" / "clipE.json").write_text('{"data": [{"frame_index": 1, "skel')  # truncated
    labels = {"train": {"clipA": ("abseiling", 0, True), "clipB": ("zumba", 2, True), "clipC": ("zumba", 2, False)},
              "val": {"clipD": ("zumba", 2, True), "clipE": ("zumba", 2, True)}}
    for part, entries in labels.items():
        (root / f"kinetics_{part}_label.json").write_text(json.dumps(
            {k: {"has_skeleton": h, "label": lab, "label_index": i} for k, (lab, i, h) in entries.items()}))
    report = kinetics.convert_kinetics(root, tmp_path / "k400")
    assert report.converted == 3 and report.excluded == {"has_skeleton is false": 1}
    assert len(report.skipped) == 1 and "clipE.json" in report.skipped[0][0] and "JSON" in report.skipped[0][1]
    data = _load(tmp_path / "k400")
    assert data["train"].features["label"].names == ["abseiling", "class_1", "zumba"]
    row = data["train"][0]
    assert row["sample_id"] == "clipA" and row["poses"].shape == (4, 2, 18, 2)
    np.testing.assert_allclose(row["confidences"][0, :, 0], [0.9, 0.6])  # the two best of three skeletons
    np.testing.assert_allclose(row["poses"][0, 0, 0], [(0.1 + 0.05) * 340, (0.2 + 0.05) * 256], rtol=1e-4)
    assert list(data["test"]["sample_id"]) == ["clipD"] and data["test"][0]["label"] == 2


# ------------------------------------------------------------------------------------------------------------------
# VideoPose3D (Human3.6M format, fake data; HumanEva real data)
# ------------------------------------------------------------------------------------------------------------------


def _fake_h36m(tmp_path, with_2d=True):
    rng = np.random.default_rng(0)
    positions = {}
    for subject, actions in (("S1", ["Walking 1", "TakingPhoto"]), ("S9", ["Directions"]), ("S2", ["Eating"])):
        positions[subject] = {}
        for action in actions:
            world = rng.normal(0.0, 0.3, size=(12, 32, 3))
            world[..., 2] += 1.0  # metres, around the room centre
            positions[subject][action] = world.astype(np.float32)
    positions_2d = {s: {a: [rng.uniform(0, 1000, size=(14, 17, 2)).astype(np.float32) for _ in range(4)]
                        for a in acts} for s, acts in positions.items()}
    write_videopose3d_npz(tmp_path / "data_3d_h36m.npz", positions,
                          tmp_path / "data_2d_h36m_gt.npz" if with_2d else None, positions_2d)
    return positions, positions_2d


def test_videopose3d_h36m(tmp_path):
    positions, positions_2d = _fake_h36m(tmp_path)
    report = videopose3d.convert_videopose3d(tmp_path / "data_3d_h36m.npz", tmp_path / "h36m",
                                             positions_2d=tmp_path / "data_2d_h36m_gt.npz")
    assert report.converted == 12 and report.excluded == {"subject outside the protocol": 1}
    data = _load(tmp_path / "h36m")
    assert len(data["train"]) == 8 and len(data["test"]) == 4
    row = next(r for r in data["train"] if r["sample_id"] == "S1/Walking 1/58860488")
    assert row["poses"].shape == (12, 1, 17, 3) and row["poses_2d"].shape == (12, 1, 17, 2)
    assert row["label"] == videopose3d.H36M_CLASSES.index("Walking") and row["camera"] == "58860488"
    cameras = json.loads((videopose3d.DATA_DIR / "h36m_cameras.json").read_text())
    ext = cameras["extrinsics"]["S1"][2]
    # Known joint of a known frame: kept joint 7 is original joint 12 (spine); frame 5.
    expected = videopose3d.world_to_camera(positions["S1"]["Walking 1"][5, 12], ext["orientation"],
                                           ext["translation"]) * 1000
    np.testing.assert_allclose(row["poses"][5, 0, 7], expected, rtol=1e-5)
    np.testing.assert_allclose(row["poses_2d"][:, 0], positions_2d["S1"]["Walking 1"][2][:12])  # cut to 3D length
    assert row["image_size"].tolist() == [1000, 1000]
    np.testing.assert_allclose(row["camera_intrinsics"][:2], cameras["cameras"][2]["focal_length"], rtol=1e-6)
    photo = next(r for r in data["train"] if r["sample_id"].startswith("S1/TakingPhoto"))
    assert data["train"].features["label"].int2str(int(photo["label"])) == "Photo"
    assert list(row["tasks"]) == ["pose_estimation_3d"]


# Each 2D source of VideoPose3D's DATASETS.md: (joints in its arrays, the layout they are in, the layout the row
# stores them in, the layout_2d column or None when that is the 3D layout).
VIDEOPOSE3D_SOURCES = {
    "gt": (17, "h36m17", "h36m17", None),  # no layout_name
    "cpn_ft_h36m_dbb": (17, "h36m17", "h36m17", None),
    "detectron_ft_h36m": (17, "h36m17", "h36m17", None),
    "detectron_pt_coco": (17, "coco17", "h36m17", None),  # converted (MotionBERT's coco2h36m)
    "sh_pt_mpii": (16, "mpii16", "mpii16", "mpii16"),  # no layout_name; kept: no MPII -> H36M conversion exists
    "sh_ft_h36m": (16, "mpii16", "mpii16", "mpii16"),
}


@pytest.mark.parametrize("source", sorted(VIDEOPOSE3D_SOURCES))
def test_videopose3d_every_2d_source_converts(tmp_path, source):
    """Each source's file carries exactly the metadata VideoPose3D's preparation script writes for it."""
    num_joints, source_layout, stored, layout_2d = VIDEOPOSE3D_SOURCES[source]
    rng = np.random.default_rng(3)
    positions = {s: {"Walking 1": (rng.normal(0.0, 0.3, size=(10, 32, 3)) + [0, 0, 1]).astype(np.float32)}
                 for s in ("S1", "S9")}  # a train and a test subject: both splits hold rows
    positions_2d = {s: {"Walking 1": [rng.uniform(0, 1000, (11, num_joints, 2)).astype(np.float32)
                                      for _ in range(4)]} for s in positions}
    path_2d = tmp_path / f"data_2d_h36m_{source}.npz"
    write_videopose3d_npz(tmp_path / "data_3d_h36m.npz", positions, path_2d, positions_2d, source=source)
    report = videopose3d.convert_videopose3d(tmp_path / "data_3d_h36m.npz", tmp_path / "out", positions_2d=path_2d)
    assert report.converted == 8 and not report.skipped
    assert _report(tmp_path / "out")["layouts"] == {"layout_3d": "h36m17", "layout_2d_source": source_layout,
                                                    "layout_2d": stored}
    data = _load(tmp_path / "out")
    row = next(r for r in data["train"] if r["sample_id"] == "S1/Walking 1/55011271")  # camera 1
    assert row["layout"] == "h36m17" and row["poses"].shape == (10, 1, 17, 3)
    assert row["poses_2d"].shape == (10, 1, get_layout(stored).num_joints, 2)
    expected = positions_2d["S1"]["Walking 1"][1][:10]  # cut to the 3D length
    if source_layout != stored:
        expected = convert_layout(expected, source_layout, stored)
    np.testing.assert_allclose(row["poses_2d"][:, 0], expected, rtol=1e-6)
    assert ("layout_2d" in data["train"].column_names) == (layout_2d is not None)
    if layout_2d is not None:
        assert row["layout_2d"] == layout_2d


def test_videopose3d_keeps_a_detector_layout_on_request_and_names_bad_metadata(tmp_path):
    rng = np.random.default_rng(4)
    positions = {s: {"Directions": (rng.normal(0.0, 0.3, size=(6, 32, 3)) + [0, 0, 1]).astype(np.float32)}
                 for s in ("S1", "S9")}
    coco = {s: {"Directions": [rng.uniform(0, 1000, (6, 17, 2)).astype(np.float32) for _ in range(4)]}
            for s in positions}
    path_2d = tmp_path / "data_2d_h36m_detectron_pt_coco.npz"
    write_videopose3d_npz(tmp_path / "data_3d_h36m.npz", positions, path_2d, coco, source="detectron_pt_coco")
    videopose3d.convert_videopose3d(tmp_path / "data_3d_h36m.npz", tmp_path / "kept", positions_2d=path_2d,
                                    keep_2d_layout=True)
    row = _load(tmp_path / "kept")["test"][0]
    assert row["layout_2d"] == "coco17" and row["poses_2d"].shape == (6, 1, 17, 2)
    np.testing.assert_allclose(row["poses_2d"][:, 0], coco["S9"]["Directions"][0])
    for joints, metadata, match in (
            (20, {"layout_name": "humaneva20", "num_joints": 20}, "'humaneva20' is not supported"),
            (15, {"num_joints": 15}, "no layout_name and h36m 2D files with 15 joints"),
            (17, {"layout_name": "mpii", "num_joints": 16}, "metadata says 16 joints, the keypoints have 17")):
        keypoints = {s: {"Directions": [np.zeros((6, joints, 2), np.float32)] * 4} for s in positions}
        write_videopose3d_npz(tmp_path / "data_3d_h36m.npz", positions, path_2d, keypoints, metadata=metadata)
        with pytest.raises(ConversionError, match=match):
            videopose3d.convert_videopose3d(tmp_path / "data_3d_h36m.npz", tmp_path / "bad", positions_2d=path_2d)


def test_videopose3d_projects_when_no_2d_file(tmp_path):
    _fake_h36m(tmp_path, with_2d=False)
    videopose3d.convert_videopose3d(tmp_path / "data_3d_h36m.npz", tmp_path / "h36m")
    row = _load(tmp_path / "h36m")["test"][0]
    np.testing.assert_allclose(videopose3d.project_to_image(row["poses"][:, 0], row["camera_intrinsics"]),
                               row["poses_2d"][:, 0], rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "subprocess.Popen"])
def test_videopose3d_refuses_malicious_npz(tmp_path, kind):
    marker = tmp_path / "pwned"
    malicious_npz(tmp_path / "data_3d_h36m.npz", kind, marker)
    with pytest.raises(ConversionError, match="refused .*forbidden global"):
        videopose3d.convert_videopose3d(tmp_path / "data_3d_h36m.npz", tmp_path / "out")
    _fake_h36m(tmp_path)
    malicious_npz(tmp_path / "data_2d_h36m_gt.npz", kind, marker, key="positions_2d")
    assert cli.main(["videopose3d", "--positions_3d", str(tmp_path / "data_3d_h36m.npz"), "--positions_2d",
                     str(tmp_path / "data_2d_h36m_gt.npz"), "--output_dir", str(tmp_path / "out")]) == 1
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_humaneva_camera_frame_reprojects_onto_ground_truth_2d(shared_data, tmp_path):
    folder = shared_data / "humaneva"
    if not (folder / "data_3d_humaneva15.npz").is_file():
        pytest.skip("HumanEva files absent")
    report = videopose3d.convert_videopose3d(folder / "data_3d_humaneva15.npz", tmp_path / "he",
                                             positions_2d=folder / "data_2d_humaneva15.npz")
    assert not report.skipped
    data = _load(tmp_path / "he")
    assert set(data["train"]["subject"]) == {"Train/S1", "Train/S2", "Train/S3"}
    assert set(data["test"]["subject"]) == {"Validate/S1", "Validate/S2", "Validate/S3"}
    assert data["train"].features["label"].names == list(videopose3d.HUMANEVA_CLASSES)
    errors = []
    for split in ("train", "test"):
        for row in data[split]:
            projected = videopose3d.project_to_image(row["poses"][:, 0], row["camera_intrinsics"])
            errors.append(np.linalg.norm(projected - row["poses_2d"][:, 0], axis=-1).ravel())
            assert row["poses"][:, 0, :, 2].min() > 2000  # millimetres in front of the camera
    errors = np.concatenate(errors)
    print(f"HumanEva reprojection error: mean {errors.mean():.3f} px, max {errors.max():.3f} px")
    assert errors.mean() < 0.5 and errors.max() < 3.0
    # The package's extrinsics are VideoPose3D's, and agree with the copy shipped beside the data.
    shipped = json.loads((folder / "cameras.json").read_text())["extrinsics"]
    package = videopose3d.load_cameras("humaneva")["extrinsics"]
    for subject, cams in package.items():
        for ours, theirs in zip(cams, shipped[subject]):
            np.testing.assert_allclose(ours["orientation"], theirs["orientation"], atol=1e-6)
            np.testing.assert_allclose(ours["translation"], theirs["translation"], atol=1e-3)


# ------------------------------------------------------------------------------------------------------------------
# NW-UCLA and MSR Action3D
# ------------------------------------------------------------------------------------------------------------------


def test_nw_ucla_tiny(tmp_path):
    folder = tmp_path / "all_sqe"
    folder.mkdir()
    rng = np.random.default_rng(0)
    poses = {}
    for action, view in ((1, 1), (12, 2), (8, 3), (3, 3)):
        name = f"a{action:02d}_s01_e00_v{view:02d}"
        poses[name] = rng.normal(size=(7, 20, 3))
        write_nw_ucla(folder / f"{name}.json", poses[name])
    (folder / "a01_s02_e00_v01.json").write_text('{"file_name": "a01_s02_e00_v01", "skeletons": [[[0.1, 0.2]]]}')
    report = nw_ucla.convert_nw_ucla(folder, tmp_path / "out")
    assert report.converted == 4 and len(report.skipped) == 1 and "(frames, 20, 3)" in report.skipped[0][1]
    data = _load(tmp_path / "out")
    assert list(data["train"]["sample_id"]) == ["a01_s01_e00_v01", "a12_s01_e00_v02"]
    assert list(data["train"]["label"]) == [0, 9]  # action 12 is the 10th class, "carry"
    assert data["train"].features["label"].names[9] == "carry"
    row = data["test"][0]
    assert row["sample_id"] == "a03_s01_e00_v03" and row["camera"] == "v03" and row["label"] == 2
    np.testing.assert_allclose(row["poses"][4, 0, 11], poses["a03_s01_e00_v03"][4, 11] * 1000, rtol=1e-5)


def test_msr_action3d_tiny_and_reordering(tmp_path):
    folder = tmp_path / "real_world_coordinates"
    folder.mkdir()
    rows = np.zeros((3, 20, 4))
    rows[..., 0] = np.arange(20)  # x = the MSR row index, so the reordering is visible
    rows[..., 3] = 0.5
    write_msr(folder / "a05_s03_e02_skeleton3D.txt", rows)
    write_msr(folder / "a20_s10_e01_skeleton3D.txt", rows[:2])
    (folder / "a01_s01_e01_skeleton3D.txt").write_text("0 0 0 1\n" * 30)  # 1.5 frames: truncated
    write_msr(folder / "a13_s09_e02_skeleton3D.txt", np.zeros((4, 20, 4)))  # no skeleton recorded
    report = msr_action3d.convert_msr_action3d(folder, tmp_path / "out")
    skipped = dict(report.skipped)
    assert report.converted == 2 and len(skipped) == 2
    assert "20-joint" in next(why for name, why in skipped.items() if "a01_s01_e01" in name)
    assert "no skeleton" in next(why for name, why in skipped.items() if "a13_s09_e02" in name)
    data = _load(tmp_path / "out")
    train, test = data["train"][0], data["test"][0]
    assert train["sample_id"] == "a05_s03_e02" and train["label"] == 4 and train["subject"] == "s03"
    assert test["label"] == 19 and test["poses"].shape == (2, 1, 20, 3)
    np.testing.assert_allclose(train["poses"][1, 0, :, 0], np.array(msr_action3d.MSR_TO_KINECT_V1) * 1000)
    np.testing.assert_allclose(train["confidences"][:, 0], 0.5)


def test_nw_ucla_real_converts_completely(shared_data, tmp_path):
    folder = shared_data / "nw_ucla" / "all_sqe"
    if not folder.is_dir():
        pytest.skip("NW-UCLA absent")
    report = nw_ucla.convert_nw_ucla(folder, tmp_path / "ucla")
    assert report.converted == 1484 and not report.skipped
    data = load_from_disk(str(tmp_path / "ucla"))
    assert len(data["train"]) + len(data["test"]) == 1484
    assert set(data["train"]["camera"]) == {"v01", "v02"} and set(data["test"]["camera"]) == {"v03"}
    assert sorted(set(data["train"]["label"])) == list(range(10))


def test_msr_action3d_real_converts_completely(shared_data, tmp_path):
    folder = shared_data / "msr_action3d" / "real_world_coordinates"
    if not folder.is_dir():
        pytest.skip("MSR Action3D absent")
    report = msr_action3d.convert_msr_action3d(folder, tmp_path / "msr")
    # 567 files; a13_s09_e02 holds only zeros and is reported, not converted.
    assert report.converted == 566 and [name for name, _ in report.skipped] == ["a13_s09_e02_skeleton3D.txt"]
    data = load_from_disk(str(tmp_path / "msr"))
    train_subjects = {int(s[1:]) for s in data["train"]["subject"]}
    test_subjects = {int(s[1:]) for s in data["test"]["subject"]}
    assert train_subjects == {1, 3, 5, 7, 9} and test_subjects == {2, 4, 6, 8, 10}
    assert sorted(set(data["train"]["label"]) | set(data["test"]["label"])) == list(range(20))
    if (folder / msr_action3d.CVPR12_LIST).is_file():
        listed = msr_action3d.convert_msr_action3d(folder, tmp_path / "msr557", cvpr12_only=True)
        assert listed.converted == 557


def _bone_length_spread(poses, layout_edges):
    lengths = np.stack([np.linalg.norm(poses[:, a] - poses[:, b], axis=-1) for a, b in layout_edges], axis=1)
    return float(np.mean(lengths.std(axis=0) / lengths.mean(axis=0)))  # mean relative spread over the bones


def test_msr_joint_order_matches_the_data(shared_data):
    """The documented MSR -> kinect_v1_20 order: heights, limb chains, rigid bones, handedness."""
    folder = shared_data / "msr_action3d" / "real_world_coordinates"
    if not folder.is_dir():
        pytest.skip("MSR Action3D absent")
    from modeling_ups.skeletons import get_layout

    layout = get_layout("kinect_v1_20")
    order = np.array(msr_action3d.MSR_TO_KINECT_V1)
    mirrored = order.copy()
    mirrored[[5, 9]] = order[[9, 5]]  # left elbow <-> right elbow
    chains = [(4, 5, 6, 7), (8, 9, 10, 11), (12, 13, 14), (16, 17, 18)]  # shoulder..hand, hip..ankle
    spread, spread_mirrored, heights, outward, handed = [], [], [], [], []
    for path in sorted(folder.glob("*_skeleton3D.txt"))[::20]:
        raw = msr_action3d.read_msr_skeleton(path)[..., :3]
        poses = raw[:, order]
        spread.append(_bone_length_spread(poses, layout.edges))
        spread_mirrored.append(_bone_length_spread(raw[:, mirrored], layout.edges))
        y = poses[..., 1]
        heights.append(np.mean((y[:, 3] > y[:, 2]) & (y[:, 2] > y[:, 0]) & (y[:, 0] > y[:, 14])))
        for chain in chains:  # each joint of a limb lies farther from the limb's root than the previous one
            dist = [np.linalg.norm(poses[:, j] - poses[:, chain[0]], axis=-1) for j in chain[1:]]
            outward.append(np.mean([np.mean(a < b) for a, b in zip(dist, dist[1:])]))
        right = poses[:, 8] - poses[:, 4]
        up = poses[:, 2] - poses[:, 0]
        feet = poses[:, 15] - poses[:, 14] + poses[:, 19] - poses[:, 18]
        handed.append(np.mean(np.sum(np.cross(up, right) * feet, axis=-1) > 0))
    print(f"MSR order check: heights {np.mean(heights):.3f}, limb chains {np.mean(outward):.3f}, handedness "
          f"{np.mean(handed):.3f}, bone-length spread {np.median(spread):.3f} (left/right elbows swapped: "
          f"{np.median(spread_mirrored):.3f})")
    assert np.mean(heights) > 0.9  # head above neck above hip centre above ankles
    assert np.mean(outward) > 0.9  # elbow before wrist before hand, knee before ankle
    assert np.median(spread) < 0.5 * np.median(spread_mirrored)  # left and right limbs are not mixed
    assert np.mean(handed) > 0.9  # forward = up x right points where the feet point: "left" is the performer's left


# ------------------------------------------------------------------------------------------------------------------
# Output protocol: overwrite, CLI, interrupted runs
# ------------------------------------------------------------------------------------------------------------------


def _tiny_ucla_folder(folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        write_nw_ucla(folder / f"a{(1, 2, 3)[i % 3]:02d}_s{i // 3 + 1:02d}_e00_v{i % 3 + 1:02d}.json",
                      rng.normal(size=(5, 20, 3)))


def test_rerun_needs_overwrite_and_cli_dispatch(tmp_path):
    _tiny_ucla_folder(tmp_path / "all_sqe", 6)
    argv = ["nw-ucla", "--data_dir", str(tmp_path / "all_sqe"), "--output_dir", str(tmp_path / "out")]
    assert cli.main(argv) == 0 and is_complete_dataset(tmp_path / "out")
    first = _report(tmp_path / "out")
    assert cli.main(argv) == 1  # exists: refused without --overwrite
    assert _report(tmp_path / "out") == first
    _tiny_ucla_folder(tmp_path / "all_sqe", 9)
    assert cli.main(argv + ["--overwrite"]) == 0
    assert _report(tmp_path / "out")["converted"] == 9
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []  # no staging left behind


def test_a_split_without_rows_loads_back_empty(tmp_path):
    # Views 1 and 2 only: NW-UCLA's cross-view test view (3) is absent, so the test split has no rows.
    _tiny_ucla_folder(tmp_path / "all_sqe", 6)
    for path in (tmp_path / "all_sqe").glob("*_v03.json"):
        path.unlink()
    nw_ucla.convert_nw_ucla(tmp_path / "all_sqe", tmp_path / "out")
    data = load_from_disk(str(tmp_path / "out"))
    assert (len(data["train"]), len(data["test"])) == (4, 0)
    assert data["test"].features == data["train"].features


def test_empty_input_writes_nothing(tmp_path):
    (tmp_path / "all_sqe").mkdir()
    (tmp_path / "all_sqe" / "a01_s01_e00_v01.json").write_text("not json")
    with pytest.raises(ConversionError, match="nothing was converted"):
        nw_ucla.convert_nw_ucla(tmp_path / "all_sqe", tmp_path / "out")
    assert not (tmp_path / "out").exists() and len(list(tmp_path.iterdir())) == 1


_SLOW_RUNNER = """
import sys, time
from pathlib import Path
import datasets_scripts.nw_ucla as m
read, progress = m.read_nw_ucla_skeletons, Path(sys.argv[1])
def slow(path, *a, **k):
    time.sleep(0.01)
    with progress.open("a") as f:
        f.write(".")
    return read(path, *a, **k)
m.read_nw_ucla_skeletons = slow
sys.exit(m.main(sys.argv[2:]))
"""


def test_interrupted_conversion_leaves_no_complete_output(tmp_path):
    _tiny_ucla_folder(tmp_path / "all_sqe", 300)
    progress, out = tmp_path / "progress", tmp_path / "out"
    command = [sys.executable, "-c", _SLOW_RUNNER, str(progress), "--data_dir", str(tmp_path / "all_sqe"),
               "--output_dir", str(out)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not progress.exists() or len(progress.read_text()) < 50):
        assert proc.poll() is None, "the converter ended before it could be interrupted"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 50 <= len(progress.read_text()) < 300
    assert not out.exists() and not is_complete_dataset(out)
    assert any(p.name.startswith(".out.partial-") for p in tmp_path.iterdir())  # the killed run's staging folder
    # A re-run cleans the leftover and produces the full dataset.
    report = nw_ucla.convert_nw_ucla(tmp_path / "all_sqe", out)
    assert report.converted == 300 and is_complete_dataset(out)
    data = load_from_disk(str(out))
    assert len(data["train"]) + len(data["test"]) == 300
    assert not any(p.name.startswith(".out.partial-") for p in tmp_path.iterdir())
