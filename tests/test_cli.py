"""Tests of the `ups` command (modeling_ups/cli): predict, export-hub, and the convert / visualize delegation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from transformers import pipeline

from modeling_ups.cli import main
from modeling_ups.utils.hub import missing_hub_files
from skeleton_files import write_pyskl_pickle
from ups_checkpoint import (LABELS, motion, save_checkpoint, single_thread, tiny_model, tiny_processor,  # noqa: F401
                            write_ntu_skeleton)

pytestmark = pytest.mark.usefixtures("single_thread")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A training run's output: <run>/final holds model + processor, <run>/results.json the evaluation."""
    run = tmp_path_factory.mktemp("run")
    (run / "results.json").write_text(json.dumps({
        "steps": 10, "train_time_s": 12.0,
        "tasks_results": {"action_recognition_3d": {"num_samples": 40, "top1": 0.425, "top5": 0.9,
                                                    "majority_baseline_top1": 0.2},
                          "pose_estimation_3d": {"num_samples": 30, "mpjpe": 187.5, "p_mpjpe": 120.25,
                                                 "mean_pose_baseline_mpjpe": 200.0}}}))
    return save_checkpoint(run / "final")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    # Two bodies taller than wide, tracked in every frame: NTU denoising keeps both (pose_io.NTUDenoising).
    joints_m = motion(12, 25, 3, persons=2, seed=1, scale=0.5) * np.array([0.4, 1.0, 1.0]) + np.array([0.0, 0.2, 3.0])
    annotations = [{"frame_dir": f"S001C001P001R001A00{i + 1}", "label": i, "total_frames": 10,
                    "keypoint": motion(10, 25, 3, persons=1 + i % 2, seed=20 + i, scale=0.5).astype(np.float16)}
                   for i in range(3)]
    write_pyskl_pickle(folder / "ntu60_3danno.pkl", annotations,
                       {"xsub_train": [a["frame_dir"] for a in annotations[:2]], "xsub_val": ["S001C001P001R001A003"]})
    np.save(folder / "h36m_2d.npy", motion(9, 17, 2, persons=None, seed=2).astype(np.float32))
    np.save(folder / "eleven_joints.npy", motion(9, 11, 3, persons=None, seed=3).astype(np.float32))
    (folder / "notes.txt").write_text("not a skeleton\n")
    return {"skeleton": write_ntu_skeleton(folder / "S001C001P001R001A001.skeleton", joints_m),
            "h36m": folder / "h36m_2d.npy", "eleven": folder / "eleven_joints.npy", "text": folder / "notes.txt",
            "joints_m": joints_m, "pyskl": folder / "ntu60_3danno.pkl", "annotations": annotations}


def run_main(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ---------------------------------------------------------------- predict
def test_predict_prints_the_top_labels_as_json(capsys, checkpoint, files):
    status, out, err = run_main(capsys, "predict", files["skeleton"], "--model", checkpoint, "--top-k", 3)
    assert status == 0, err
    record = json.loads(out)
    assert set(record) == {"input", "task", "predictions"} and record["task"] == "action_recognition"
    assert record["input"] == str(files["skeleton"])
    assert len(record["predictions"]) == 3 and all(p["label"] in LABELS for p in record["predictions"])
    expected = pipeline("pose-sequence-modeling", model=tiny_model(), processor=tiny_processor())(
        files["joints_m"], top_k=3)
    assert [p["label"] for p in record["predictions"]] == [e["label"] for e in expected]
    np.testing.assert_allclose([p["score"] for p in record["predictions"]], [e["score"] for e in expected],
                               atol=1e-5)


@pytest.mark.parametrize("sample", ["1", "S001C001P001R001A002", "-2"])
def test_predict_one_annotation_of_a_pyskl_file(capsys, checkpoint, files, sample):
    status, out, err = run_main(capsys, "predict", files["pyskl"], "--sample", sample, "--model", checkpoint,
                                "--top-k", 3)
    assert status == 0, err
    record = json.loads(out)
    assert record["input"] == str(files["pyskl"]) and record["sample"] == sample and len(record["predictions"]) == 3
    chosen = files["annotations"][1]["keypoint"].astype(np.float32) * 1000.0  # pyskl keeps Kinect metres
    expected = pipeline("pose-sequence-modeling", model=tiny_model(), processor=tiny_processor())(chosen, top_k=3)
    assert [p["label"] for p in record["predictions"]] == [e["label"] for e in expected]
    np.testing.assert_allclose([p["score"] for p in record["predictions"]], [e["score"] for e in expected],
                               atol=1e-5)


def test_predict_pose_estimation_and_several_files(capsys, checkpoint, files):
    status, out, err = run_main(capsys, "predict", files["h36m"], files["h36m"], "--model", checkpoint, "--task",
                                "pose_estimation", "--layout", "h36m17", "--frames", "all", "--window", 5,
                                "--batch-size", 2, "--return-routing")
    assert status == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 2 and records[0] == records[1]
    record = records[0]
    assert {"keypoints_3d", "frame_indices", "joint_names", "layout", "units", "routing"} <= set(record)
    assert np.asarray(record["keypoints_3d"]).shape == (9, 17, 3)
    assert record["units"] == "mm" and record["layout"] == "h36m17" and record["frame_indices"] == list(range(9))
    status, out, err = run_main(capsys, "predict", files["h36m"], "--model", checkpoint, "--task", "pose_estimation",
                                "--layout", "h36m17", "--frames", "all", "--window", 5, "--pose-decoding",
                                "expectation")
    assert status == 0, err
    expectation = np.asarray(json.loads(out)["keypoints_3d"])
    assert expectation.shape == (9, 17, 3) and not np.allclose(expectation, record["keypoints_3d"])


def test_predict_early_action_prediction(capsys, checkpoint, files):
    status, out, err = run_main(capsys, "predict", files["skeleton"], "--model", checkpoint, "--task",
                                "early_action_prediction", "--observation-ratio", 0.5)
    assert status == 0, err
    assert len(json.loads(out)["predictions"]) == 5


@pytest.mark.parametrize("case, options, message", [
    ("unknown task", ["skeleton", "--task", "dancing"], "Unknown task 'dancing'"),
    ("not a skeleton", ["text"], "notes.txt: unsupported file type '.txt'"),
    ("no layout fits", ["eleven"], "No layout has 11 joints"),
    ("ambiguous joints", ["h36m", "--task", "pose_estimation"], "17 joints fit several layouts"),
    ("ratio above 1", ["skeleton", "--task", "early_action_prediction", "--observation-ratio", "1.5"],
     "observation_ratio must be in (0, 1]"),
    ("ratio 0", ["skeleton", "--task", "early_action_prediction", "--observation-ratio", "0"],
     "observation_ratio must be in (0, 1]"),
    ("missing file", ["missing"], "no such file"),
    ("pyskl file without --sample", ["pyskl"], "holds 3 annotations; pass sample=<index or frame_dir>"),
    ("unknown frame_dir", ["pyskl", "--sample", "S009"], "no annotation with frame_dir 'S009'"),
    ("index out of range", ["pyskl", "--sample", "3"], "sample 3 out of range for 3 annotations"),
    ("--sample for a single-sample file", ["skeleton", "--sample", "0"], "selects an annotation of a pyskl .pkl"),
])
def test_bad_input_gives_one_clear_line(capsys, checkpoint, files, case, options, message):
    argv = [str(files[options[0]]) if options[0] in files else options[0]] + options[1:]
    status, out, err = run_main(capsys, "predict", *argv, "--model", checkpoint)
    assert status == 1, case
    last_line = err.strip().splitlines()[-1]  # model loading may draw progress bars before it
    assert last_line.startswith("ups: error:") and message in last_line, err
    assert "Traceback" not in err and out == ""


def test_the_command_exits_non_zero_without_a_traceback(checkpoint, files, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "modeling_ups.cli", "predict", str(files["text"]), "--model",
                          str(checkpoint)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert "ups: error:" in run.stderr and "unsupported file type" in run.stderr
    assert "Traceback" not in run.stderr


def test_console_script_entry_point_is_run():
    setup = (REPO / "setup.py").read_text()
    assert '"ups=modeling_ups.cli:run"' in setup


def test_predict_output_survives_the_fast_exit(capsys, checkpoint, files, tmp_path):
    """`ups predict` leaves with os._exit (no interpreter teardown): every JSON line, flushed from the pipe's buffer,
    and the exit status get out (a failing command's status 1 and error line: the test above)."""
    inputs = [str(files["skeleton"])] * 3
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env.pop("PYTHONUNBUFFERED", None)  # a user's stdout into a pipe is block-buffered
    done = subprocess.run([sys.executable, "-m", "modeling_ups.cli", "predict", *inputs, "--model", str(checkpoint)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    status, out, _ = run_main(capsys, "predict", *inputs, "--model", checkpoint)
    assert status == 0 and len(out.splitlines()) == 3
    assert [json.loads(line) for line in done.stdout.splitlines()] == [json.loads(line) for line in out.splitlines()]


# ---------------------------------------------------------------- export-hub
def test_export_hub_writes_a_complete_folder(capsys, checkpoint, tmp_path):
    output = tmp_path / "hub"
    status, out, err = run_main(capsys, "export-hub", checkpoint, "--output", output, "--repo-id", "org/ups-tiny")
    assert status == 0, err
    assert out.strip() == str(output)
    assert missing_hub_files(output) == []
    config = json.loads((output / "config.json").read_text())
    assert config["custom_pipelines"]["pose-sequence-modeling"]["impl"] == "pipeline_ups.PoseSequenceModelingPipeline"
    assert json.loads((output / "results.json").read_text())["tasks_results"]["pose_estimation_3d"]["mpjpe"] == 187.5
    card = (output / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["library_name"] == "transformers"
    metrics = {m["name"]: m["value"] for r in metadata["model-index"][0]["results"] for m in r["metrics"]}
    assert metrics["top-1 accuracy (%)"] == pytest.approx(42.5) and metrics["MPJPE (mm)"] == pytest.approx(187.5)
    assert 'pipeline(model="org/ups-tiny", trust_remote_code=True)' in card
    assert all(label in card for label in LABELS)


def test_export_hub_names_a_broken_results_file_once(capsys, checkpoint, tmp_path):
    (tmp_path / "results.json").write_text('{"steps": "10')
    status, _, err = run_main(capsys, "export-hub", checkpoint, "--output", tmp_path / "hub", "--results",
                              tmp_path / "results.json")
    assert status == 1 and "invalid JSON (Unterminated string starting at: line 1 column 11)" in err
    assert "at at" not in err


def test_export_hub_refuses_bad_folders(capsys, checkpoint, tmp_path):
    status, _, err = run_main(capsys, "export-hub", tmp_path, "--output", tmp_path / "out")
    assert status == 1 and "not a checkpoint folder" in err
    status, _, err = run_main(capsys, "export-hub", checkpoint, "--output", checkpoint)
    assert status == 1 and "--output must differ" in err
    model_only = tmp_path / "model_only"
    tiny_model().save_pretrained(model_only)
    status, _, err = run_main(capsys, "export-hub", model_only, "--output", tmp_path / "out")
    assert status == 1 and "--processor" in err


# ---------------------------------------------------------------- delegation
def test_convert_delegates_to_the_dataset_converters(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", "ntu", "--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    assert usage.startswith("usage: ups convert ntu") and "--skeletons_dir" in usage


def test_visualize_delegates_to_the_picture_commands(capsys, files, tmp_path):
    picture = tmp_path / "pose.png"
    status, out, err = run_main(capsys, "visualize", "skeleton", files["h36m"], "--layout", "h36m17", "--output",
                                picture)
    assert status == 0, err
    assert picture.stat().st_size > 0 and str(picture) in out
