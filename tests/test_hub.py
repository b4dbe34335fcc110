"""Tests of the Hub folder and the Hub round trip (modeling_ups/utils/hub.py).

The round trip uses the real `huggingface_hub` and `transformers` clients against `tests/hub_server.py`, a small
Hub stand-in on 127.0.0.1. `HF_ENDPOINT` is read when `huggingface_hub` is imported, and this process already
imported it offline, so pushing and pulling run in subprocesses with `HF_ENDPOINT` pointing at the stand-in.
"""

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from transformers import pipeline

from hub_server import FakeHub
from modeling_ups.utils.hub import CARD_TAGS, export_hub_folder, missing_hub_files, model_card, push_folder_to_hub
from ups_checkpoint import (HIDE_PACKAGE, LABELS, env_without_package, motion, single_thread,  # noqa: F401
                            tiny_model, tiny_processor)

pytestmark = pytest.mark.usefixtures("single_thread")
REPO = Path(__file__).resolve().parents[1]

RESULTS = {
    "steps": 10, "train_time_s": 36.0,
    "tasks_results": {
        "action_recognition_3d": {"num_samples": 40, "top1": 0.5, "top5": 0.875},
        "early_action_prediction_3d": {"num_samples": 40, "top1_at_ratio": {"0.2": 0.25, "1.0": 0.5}},
        "pose_estimation_3d": {"num_samples": 30, "mpjpe": 150.5, "p_mpjpe": 99.25},
    },
}
TRAINING_ARGS = {"tasks": ["action_recognition_3d", "pose_estimation_3d", "early_action_prediction_3d"],
                 "dataset": {"action_recognition_3d": "/home/someone/data/ntu60_xsub",
                             "pose_estimation_3d": "org/h36m-cpn"},
                 "max_steps": 10, "learning_rate": 0.001, "pose_window": 27, "hub_token": "hf_secret_value"}


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


@pytest.fixture(scope="module")
def hub_folder(model, processor, tmp_path_factory):
    return export_hub_folder(model, processor, tmp_path_factory.mktemp("export") / "ups-tiny", results=RESULTS,
                             training_args=TRAINING_ARGS, repo_id="org/ups")


# ---------------------------------------------------------------- the card and the folder
def test_model_card_metadata_usage_labels_units_and_results(model, processor):
    card = str(model_card(model, processor, results=RESULTS, training_args=TRAINING_ARGS, repo_id="org/ups"))
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["library_name"] == "transformers" and set(CARD_TAGS) <= set(metadata["tags"])
    assert metadata["datasets"] == ["org/h36m-cpn"]  # Hub ids only; local folders are not datasets on the Hub
    results = metadata["model-index"][0]["results"]
    values = {(r["task"]["type"], m["name"]): m["value"] for r in results for m in r["metrics"]}
    assert values[("skeleton-action-recognition", "top-1 accuracy (%)")] == pytest.approx(50.0)
    assert values[("skeleton-action-recognition", "top-5 accuracy (%)")] == pytest.approx(87.5)
    assert values[("early-action-prediction", "top-1 accuracy at 20% observed (%)")] == pytest.approx(25.0)
    assert values[("3d-pose-estimation", "MPJPE (mm)")] == pytest.approx(150.5)
    assert values[("3d-pose-estimation", "P-MPJPE (mm)")] == pytest.approx(99.25)
    pose_dataset = next(r["dataset"] for r in results if r["task"]["type"] == "3d-pose-estimation")
    assert pose_dataset["name"] == "org/h36m-cpn"

    assert 'pipeline(model="org/ups", trust_remote_code=True)' in card
    assert 'AutoModel.from_pretrained("org/ups", trust_remote_code=True)' in card
    assert "ups predict" in card
    assert all(label in card for label in LABELS) and f"{len(LABELS)} action labels" in card
    assert "**millimetres**" in card and "**root-relative**" in card and "**camera frame**" in card
    assert "| x | [-1000, 1000] | 125.00 | 62.50 |" in card  # 16 bins over 2 m
    assert "ntu60_xsub" in card and "/home/someone" not in card  # local paths by folder name only
    assert "window=27" in card
    assert "hf_secret_value" not in card and "hub_token" not in card
    assert "| `pose_estimation_3d` | MPJPE (mm) | 150.50 | 30 |" in card


def test_card_without_results_or_training_has_no_model_index(model, processor):
    card = str(model_card(model, processor, repo_id="org/ups"))
    metadata = yaml.safe_load(card.split("---")[1])
    assert "model-index" not in metadata and "## Results" not in card and "## Training" not in card
    assert "## Usage" in card and "## Outputs and units" in card


def test_exported_folder_is_complete(hub_folder):
    assert missing_hub_files(hub_folder) == []
    config = json.loads((hub_folder / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_ups.UPSForPoseSequenceModeling"
    assert json.loads((hub_folder / "results.json").read_text()) == RESULTS


def test_an_incomplete_folder_is_not_pushed(hub_folder, tmp_path):
    for name in ("config.json", "model.safetensors", "vocab.json"):
        (tmp_path / name).write_bytes((hub_folder / name).read_bytes())
    with pytest.raises(ValueError, match="pipeline_ups.py"):
        push_folder_to_hub(tmp_path, "org/ups", token="hf_fake")


# ---------------------------------------------------------------- round trip through a Hub stand-in
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_push_as_one_commit_then_load_from_the_hub_without_the_package(hub_folder, model, processor, tmp_path):
    inputs = {"ar": motion(13, 25, 3, persons=2, seed=1), "pe": motion(8, 17, 2, seed=2)}
    np.savez(tmp_path / "inputs.npz", **inputs)
    with FakeHub(lifetime_s=240) as hub:
        hub_env = dict(HF_ENDPOINT=hub.endpoint, HF_TOKEN="hf_fake", HF_HUB_OFFLINE="0",
                       HF_HUB_DISABLE_TELEMETRY="1")
        push = textwrap.dedent(f"""
            from modeling_ups.utils.hub import push_folder_to_hub
            print(push_folder_to_hub({str(hub_folder)!r}, "org/ups"))
        """)
        run = subprocess.run([sys.executable, "-c", push], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                             env=env_without_package(tmp_path / "push", PYTHONPATH=str(REPO), **hub_env))
        assert run.returncode == 0, run.stderr[-3000:]

        assert len(hub.commits) == 1, hub.commits
        commit = hub.commits[0]
        assert commit["repo_id"] == "org/ups" and run.stdout.strip().endswith(commit["oid"])
        local_files = sorted(p.name for p in hub_folder.iterdir() if p.is_file())
        assert commit["files"] == local_files
        stored = hub.repos["org/ups"]
        assert {"model.safetensors", "config.json", "processor_config.json", "tokenizer_config.json", "vocab.json",
                "pipeline_ups.py", "README.md"} <= set(stored)
        for name in local_files:
            assert hashlib.sha256(stored[name]).hexdigest() == _sha256(hub_folder / name), name
        config = json.loads(stored["config.json"])
        assert "pose-sequence-modeling" in config["custom_pipelines"] and "AutoModel" in config["auto_map"]

        pull = HIDE_PACKAGE + textwrap.dedent(f"""
            import hashlib, json
            import numpy as np
            from transformers import AutoModel, pipeline
            model = AutoModel.from_pretrained("org/ups", trust_remote_code=True)
            assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
            state = {{k: hashlib.sha256(v.detach().numpy().tobytes()).hexdigest()
                     for k, v in model.state_dict().items()}}
            pipe = pipeline(model="org/ups", trust_remote_code=True)
            x = np.load({str(tmp_path / "inputs.npz")!r})
            out = {{"state": state, "ar": pipe(x["ar"], top_k=7),
                   "pe": pipe(x["pe"], task="pose_estimation", layout="h36m17", frames="all",
                              window=5)["keypoints_3d"].tolist()}}
            print("RESULT" + json.dumps(out))
        """)
        run = subprocess.run([sys.executable, "-c", pull], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                             env=env_without_package(tmp_path / "pull", **hub_env))
        assert run.returncode == 0, run.stderr[-3000:]
        assert len(hub.commits) == 1  # downloading commits nothing
    remote = json.loads(run.stdout.split("RESULT", 1)[1])

    local_state = {k: hashlib.sha256(v.detach().numpy().tobytes()).hexdigest() for k, v in model.state_dict().items()}
    assert remote["state"] == local_state
    local = pipeline("pose-sequence-modeling", model=model, processor=processor)
    expected = local(inputs["ar"], top_k=7)
    assert [r["label"] for r in remote["ar"]] == [e["label"] for e in expected]
    np.testing.assert_allclose([r["score"] for r in remote["ar"]], [e["score"] for e in expected], atol=1e-6)
    lifted = local(inputs["pe"], task="pose_estimation", layout="h36m17", frames="all", window=5)["keypoints_3d"]
    np.testing.assert_array_equal(np.asarray(remote["pe"], dtype=np.float32), lifted)
