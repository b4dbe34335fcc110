"""Tests of UPSProcessor (modeling_ups/processing_ups.py), the ready processor folders (processors/) and
loading a saved processor as remote code."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoProcessor

from modeling_ups import UPSConfig, UPSFeatureExtractor, UPSProcessor, UPSTokenizer
from modeling_ups.skeletons import LAYOUTS, MODEL_LAYOUTS, convert_layout

REPO = Path(__file__).resolve().parents[1]
PROCESSORS = REPO / "processors"
LABELS = ["drink water", "walking", "sitting down", "jumping jacks"]


def skeleton(num_frames=9, num_joints=25, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, num_frames)[:, None, None]
    phase = rng.uniform(0, 3, (1, num_joints, channels))
    return rng.normal(0, 0.4, (num_joints, channels)) + 0.1 * np.sin(6 * t + phase)


def target_sequence(num_frames=9, num_joints=17, seed=1):
    """3D poses in millimetres, camera frame (about 4 m in front of the camera)."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, 250, (num_frames, num_joints, 3)) + np.array([100.0, -200.0, 4000.0])


@pytest.fixture(scope="module")
def processor():
    return UPSProcessor(UPSFeatureExtractor(), UPSTokenizer(labels=LABELS, num_bins=64))


# ---------------------------------------------------------------- model inputs and labels
def test_recognition_inputs_and_labels(processor):
    out = processor([skeleton(), skeleton(5, seed=2)], task="action_recognition", labels=["walking", "drink water"])
    features = processor.feature_extractor([skeleton(), skeleton(5, seed=2)])
    for key in features:
        torch.testing.assert_close(out[key], features[key])
    ar = processor.tokenizer.eot_token_ids[0]
    assert out["labels"].tolist() == [[4, ar], [3, ar]]
    assert set(out) == {"pose_values", "attention_mask", "person_mask", "task_ids", "layout_ids", "labels"}
    assert "labels" not in processor(skeleton())


def test_multi_task_batch_pads_labels_with_minus_100(processor):
    tok = processor.tokenizer
    poses = [skeleton(num_joints=25), skeleton(12, num_joints=17, channels=2, seed=3), skeleton(20, seed=4)]
    out = processor(
        poses, task=["action_recognition", "pose_estimation", "early_action_prediction"],
        labels=["sitting down", None, "jumping jacks"], target_poses=[None, target_sequence(12), None],
        layout=[None, "h36m17", None], observation_ratio=0.5,
    )
    config = UPSConfig()
    assert out["task_ids"].tolist() == [config.task_id(t) for t in
                                        ("action_recognition_3d", "pose_estimation_3d", "early_action_prediction_3d")]
    labels = out["labels"]
    assert labels.shape == (3, 3 * 17 + 1) and labels.dtype == torch.int64
    assert labels[0, :2].tolist() == [tok.label_id("sitting down"), tok.eot_token_ids[0]]
    assert labels[2, :2].tolist() == [tok.label_id("jumping jacks"), tok.eot_token_ids[2]]
    assert torch.all(labels[[0, 2], 2:] == -100) and not torch.any(labels[1] == -100)
    assert labels[1, -1].item() == tok.eot_token_ids[1]
    assert out["attention_mask"].sum(1).tolist() == [5, 6, 10]  # ceil(0.5 * T)


@pytest.mark.parametrize("num_frames, centre", [(9, 4), (10, 4), (1, 0)])
def test_pose_estimation_targets_are_the_root_relative_centre_frame(processor, num_frames, centre):
    target = target_sequence(num_frames)
    out = processor(skeleton(num_frames, 17, channels=2), task="pose_estimation", target_poses=target, layout="h36m")
    decoded = processor.tokenizer.decode_pose(out["labels"][0], num_joints=17)
    expected = target[[centre]] - target[[centre], :1]  # the H36M root is the pelvis, joint 0
    assert decoded.shape == (1, 17, 3)
    assert np.all(np.abs(decoded - expected) <= processor.tokenizer.bin_width / 2 + 1e-3)
    in_metres = processor(skeleton(num_frames, 17, channels=2), task="pose_estimation", target_poses=target / 1000,
                          layout="h36m", target_unit="m")
    assert torch.equal(in_metres["labels"], out["labels"])


def test_several_target_frames_around_the_centre():
    processor = UPSProcessor(UPSFeatureExtractor(), UPSTokenizer(labels=LABELS, num_bins=64),
                             pose_estimation_target_frames=3)
    assert processor.target_frame_indices(9).tolist() == [3, 4, 5]
    assert processor.target_frame_indices(3).tolist() == [0, 1, 2]
    target = target_sequence(9)
    out = processor(skeleton(9, 17, channels=2), task="pose_estimation", target_poses=target, layout="h36m")
    decoded = processor.tokenizer.decode_pose(out["labels"][0], num_joints=17, num_frames=3)
    np.testing.assert_allclose(decoded, target[3:6] - target[3:6, :1], atol=processor.tokenizer.bin_width.max() / 2)
    with pytest.raises(ValueError, match="at least 3 input frames"):
        processor(skeleton(2, 17, channels=2), task="pose_estimation", target_poses=target[:2], layout="h36m")


def test_halpe_input_with_h36m_or_halpe_targets(processor):
    halpe_targets = target_sequence(9, 26)
    as_h36m = processor(skeleton(9, 26, channels=2), task="pose_estimation",
                        target_poses=convert_layout(halpe_targets, "halpe26", "h36m17"))
    as_halpe = processor(skeleton(9, 26, channels=2), task="pose_estimation", target_poses=halpe_targets)
    assert torch.equal(as_h36m["labels"], as_halpe["labels"])
    assert as_h36m["layout_ids"].item() == MODEL_LAYOUTS.index("h36m17")


def test_target_errors(processor):
    kwargs = dict(task="pose_estimation", layout="h36m")
    with pytest.raises(ValueError, match="needs target_poses"):
        processor(skeleton(9, 17, 2), labels="walking", **kwargs)
    with pytest.raises(ValueError, match="aligned with the input frames"):
        processor(skeleton(9, 17, 2), target_poses=target_sequence(8), **kwargs)
    with pytest.raises(ValueError, match="has 17"):
        processor(skeleton(9, 17, 2), target_poses=target_sequence(9, 15), **kwargs)
    with pytest.raises(ValueError, match="NaN"):
        processor(skeleton(9, 17, 2), target_poses=np.full((9, 17, 3), np.nan), **kwargs)
    with pytest.raises(ValueError, match="needs a label"):
        processor(skeleton(), target_poses=target_sequence())
    with pytest.raises(ValueError, match="Unknown action label"):
        processor(skeleton(), labels="flying")
    with pytest.raises(ValueError, match="target_unit"):
        processor(skeleton(), labels="walking", target_unit="cm")


# ---------------------------------------------------------------- post-processing
def test_post_process_recognition_with_scores(processor):
    tok = processor.tokenizer
    generated = torch.tensor([[1, tok.label_id("walking"), tok.eot_token_ids[0]],
                              [1, tok.label_id("drink water"), tok.eot_token_ids[2]]])
    logits = torch.full((2, tok.vocab_size), -5.0)
    logits[:, tok.bin_token_offset] = 50.0  # a non-label token: excluded from the label softmax
    logits[0, tok.label_id("walking")], logits[0, tok.label_id("jumping jacks")] = 3.0, 2.0
    results = processor.post_process(generated, task=["action_recognition", "early_action_prediction"],
                                     scores=(logits, logits), top_k=2)
    label_logits = logits[0, 3 : 3 + tok.num_label_tokens]
    expected = torch.softmax(label_logits, -1)
    assert results[0]["label"] == "walking" and results[0]["label_id"] == tok.label_id("walking")
    assert results[0]["label_index"] == 1
    assert results[0]["score"] == pytest.approx(expected[1].item())
    assert [e["label"] for e in results[0]["top_k"]] == ["walking", "jumping jacks"]
    assert sum(torch.softmax(label_logits, -1)).item() == pytest.approx(1.0)
    assert results[1]["label"] == "drink water"
    plain = processor.post_process(generated.tolist(), task="action_recognition")
    assert plain[0]["label"] == "walking" and plain[0]["score"] is None and plain[0]["top_k"] == []
    broken = processor.post_process([[1, tok.eot_token_ids[0]]], task="action_recognition")
    assert broken[0]["label"] is None


def test_post_process_pose_estimation(processor):
    target = target_sequence(9)
    labels = processor(skeleton(9, 17, 2), task="pose_estimation", target_poses=target, layout="h36m")["labels"]
    generated = torch.cat([torch.tensor([[1]]), labels], dim=1)
    result = processor.post_process(generated, task="pose_estimation_3d", layout="h36m17")[0]
    assert result["keypoints_3d"].shape == (1, 17, 3) and result["units"] == "mm" and result["layout"] == "h36m17"
    assert result["joint_names"] == list(LAYOUTS["h36m17"].joint_names)
    error = np.abs(result["keypoints_3d"][0] - (target[4] - target[4, :1]))
    assert np.all(error <= processor.tokenizer.bin_width / 2 + 1e-3)
    halpe = processor.post_process(generated, task="pose_estimation", layout="halpe26")[0]
    assert halpe["layout"] == "h36m17"
    truncated = processor.post_process(generated[:, :10], task="pose_estimation", layout="h36m17")[0]
    assert truncated["keypoints_3d"].shape == (1, 17, 3) and np.isnan(truncated["keypoints_3d"][0, 5:]).all()
    with pytest.raises(ValueError, match="layout="):
        processor.post_process(generated, task="pose_estimation")


def test_post_process_pose_estimation_by_expectation(processor):
    target = target_sequence(9)
    labels = processor(skeleton(9, 17, 2), task="pose_estimation", target_poses=target, layout="h36m")["labels"]
    generated = torch.cat([torch.tensor([[1]]), labels], dim=1)
    tok = processor.tokenizer
    # Every step's logits (the model's sequence_scores): step s chose token s + 1; here two bins tie at step 0.
    scores = torch.zeros(1, generated.shape[1] - 1, tok.vocab_size)
    scores[0, torch.arange(scores.shape[1]), generated[0, 1:]] = 60.0
    scores[0, 0, generated[0, 1] + 1] = 60.0
    result = processor.post_process(generated, task="pose_estimation", layout="h36m17", scores=scores,
                                    pose_decoding="expectation")[0]
    bins = processor.post_process(generated, task="pose_estimation", layout="h36m17")[0]["keypoints_3d"]
    expected = bins.copy()
    expected[0, 0, 0] += tok.bin_width[0] / 2  # the mean of the chosen x bin and the next one
    np.testing.assert_allclose(result["keypoints_3d"], expected, atol=1e-3)
    assert result["layout"] == "h36m17" and result["keypoints_3d"].dtype == np.float32
    # generate()'s per-step tuple is read alike.
    steps = processor.post_process(generated, task="pose_estimation", layout="h36m17", scores=tuple(scores.unbind(1)),
                                   pose_decoding="expectation")[0]
    np.testing.assert_array_equal(steps["keypoints_3d"], result["keypoints_3d"])
    with pytest.raises(ValueError, match="needs every step's scores"):
        processor.post_process(generated, task="pose_estimation", layout="h36m17", pose_decoding="expectation")
    with pytest.raises(ValueError, match="needs every step's scores"):
        processor.post_process(generated, task="pose_estimation", layout="h36m17", scores=scores[:, 0],
                               pose_decoding="expectation")
    with pytest.raises(ValueError, match="pose_decoding must be one of"):
        processor.post_process(generated, task="pose_estimation", layout="h36m17", pose_decoding="mode")


def test_check_model_config(processor):
    config = UPSConfig(num_label_tokens=len(LABELS), num_bins=64)
    processor.check_model_config(config)
    for bad, message in [
        (UPSConfig(num_label_tokens=60, num_bins=64), "num_label_tokens"),
        (UPSConfig(num_label_tokens=len(LABELS), num_bins=256), "num_bins"),
        (UPSConfig(num_label_tokens=len(LABELS), num_bins=64, layouts=[LAYOUTS["h36m17"].to_dict()]), "layouts"),
        (UPSConfig(num_label_tokens=len(LABELS), num_bins=64, max_frames=100), "frames"),
        (UPSConfig(num_label_tokens=len(LABELS), num_bins=64, pose_estimation_target_frames=2,
                   max_target_positions=160), "target_frames"),
    ]:
        with pytest.raises(ValueError, match=message):
            processor.check_model_config(bad)


def test_keep_layouts_restricts_the_processor_to_a_model_of_those_layouts(tmp_path):
    processor = UPSProcessor(UPSFeatureExtractor(default_layout="h36m17"), UPSTokenizer(labels=LABELS, num_bins=64),
                             pose_target_layouts={"coco17": "h36m17"})
    processor.keep_layouts(["h36m17", "humaneva15"])
    fe = processor.feature_extractor
    assert fe.layouts == ["h36m17", "humaneva15"] and fe.default_layout == "h36m17"
    assert fe.layout_conversions == {"halpe26": "h36m17"} and processor.pose_target_layouts == {}
    config = UPSConfig(num_label_tokens=len(LABELS), num_bins=64,
                       layouts=[LAYOUTS["h36m17"].to_dict(), LAYOUTS["humaneva15"].to_dict()])
    processor.check_model_config(config)
    assert config.max_joints == 17
    batch = processor(skeleton(12, 15, 2, seed=3), task="pose_estimation", target_poses=target_sequence(12, 15),
                      layout="humaneva15")
    assert batch["pose_values"].shape[-2] == 15 and batch["layout_ids"].tolist() == [1]
    with pytest.raises(ValueError, match="No layout has 25 joints"):
        processor(skeleton(), task="action_recognition", labels="walking")
    processor.save_pretrained(tmp_path)
    assert UPSProcessor.from_pretrained(tmp_path).feature_extractor.layouts == ["h36m17", "humaneva15"]
    with pytest.raises(ValueError, match="ntu25"):
        processor.keep_layouts(["ntu25"])
    lifter = UPSProcessor(UPSFeatureExtractor(), UPSTokenizer(labels=LABELS, num_bins=64),
                          pose_target_layouts={"coco17": "h36m17"})
    with pytest.raises(ValueError, match="pose_target_layouts"):
        lifter.keep_layouts(["coco17"])


# ---------------------------------------------------------------- save / load
def _sample_call(processor):
    return processor([skeleton(), skeleton(12, 17, 2, seed=5)], task=["action_recognition", "pose_estimation"],
                     labels=["walking", None], target_poses=[None, target_sequence(12)], layout=[None, "h36m17"])


def test_save_and_load_round_trip(tmp_path):
    processor = UPSProcessor(
        UPSFeatureExtractor(default_layout="ntu25", max_frames=128, max_persons=2, coordinates="3d"),
        UPSTokenizer(labels=LABELS, num_bins=48, coordinate_range=[[-1000, 1000], [-1500, 900], [-800, 800]]),
        pose_estimation_target_frames=3,
    )
    processor.save_pretrained(tmp_path)
    reference = _sample_call(processor)
    for loaded in (UPSProcessor.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path)):
        assert type(loaded) is UPSProcessor
        assert loaded.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
        assert loaded.tokenizer.prompts == processor.tokenizer.prompts
        assert loaded.tokenizer.coordinate_range == processor.tokenizer.coordinate_range
        assert loaded.tokenizer.num_bins == 48 and loaded.pose_estimation_target_frames == 3
        assert loaded.feature_extractor.to_dict() == processor.feature_extractor.to_dict()
        out = _sample_call(loaded)
        for key in reference:
            assert torch.equal(out[key], reference[key]), key


def test_remote_code_loading_without_the_package(tmp_path):
    processor = UPSProcessor(UPSFeatureExtractor(), UPSTokenizer(labels=LABELS, num_bins=32))
    folder = tmp_path / "ups-processor"
    processor.save_pretrained(folder)
    for name in ("processing_ups.py", "feature_extraction_ups.py", "tokenization_ups.py", "skeletons.py"):
        assert (folder / name).is_file(), name
    reference = _sample_call(processor)
    inputs = {"a": skeleton(), "b": skeleton(12, 17, 2, seed=5), "t": target_sequence(12)}
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = textwrap.dedent(f"""
        import sys
        # An editable install would make the package importable anywhere: hide it, as on a machine without it.
        sys.modules["modeling_ups"] = None
        try:
            import modeling_ups  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("modeling_ups is importable")
        import numpy as np
        from transformers import AutoProcessor
        processor = AutoProcessor.from_pretrained({str(folder)!r}, trust_remote_code=True)
        assert type(processor).__module__.startswith("transformers_modules"), type(processor).__module__
        x = np.load({str(tmp_path / "inputs.npz")!r})
        out = processor([x["a"], x["b"]], task=["action_recognition", "pose_estimation"], labels=["walking", None],
                        target_poses=[None, x["t"]], layout=[None, "h36m17"], return_tensors="np")
        np.savez({str(tmp_path / "outputs.npz")!r}, **dict(out))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    remote = np.load(tmp_path / "outputs.npz")
    assert set(remote.files) == set(reference)
    for key in reference:
        np.testing.assert_array_equal(remote[key], reference[key].numpy(), err_msg=key)


# ---------------------------------------------------------------- ready processor folders
EXPECTED_FOLDERS = {
    "ntu60": (60, "ntu25"), "ntu120": (120, "ntu25"), "kinetics400": (400, "openpose18"), "h36m": (15, "h36m17"),
    "humaneva": (5, "humaneva15"), "nw-ucla": (10, "kinect_v1_20"), "msr-action3d": (20, "kinect_v1_20"),
    "synthetic": (12, None), "unified": (None, None),
}


def _label_file(name):
    return [line.strip() for line in (PROCESSORS / "labels" / f"{name}.txt").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("name", sorted(EXPECTED_FOLDERS))
def test_ready_processor_folders_load_and_agree_with_their_label_lists(name):
    count, layout = EXPECTED_FOLDERS[name]
    processor = UPSProcessor.from_pretrained(PROCESSORS / name)
    tok, fe = processor.tokenizer, processor.feature_extractor
    assert fe.default_layout == layout and fe.layouts == UPSConfig().layout_names
    assert tok.num_bins == 256 and fe.max_frames == 300 and processor.pose_estimation_target_frames == 1
    if count is not None:
        assert tok.num_label_tokens == count and tok.label_names == _label_file(name)
    processor.check_model_config(UPSConfig(num_label_tokens=tok.num_label_tokens))
    label_ids = processor(skeleton(num_joints=25), labels=tok.label_names[-1], layout="ntu25",
                          coordinates="3d")["labels"]
    assert processor.post_process(label_ids, task="action_recognition")[0]["label"] == tok.label_names[-1]


def test_synthetic_and_official_class_names():
    synthetic = ["walking", "running", "jumping jacks", "waving right hand", "waving both hands", "punching",
                 "kicking", "squatting", "sitting down", "standing up", "bowing", "throwing"]
    assert _label_file("synthetic") == synthetic
    assert _label_file("ntu120")[:3] == ["drink water", "eat meal/snack", "brushing teeth"]
    assert _label_file("ntu120")[59] == "walking apart from each other"
    assert _label_file("ntu120")[-1] == "finger-guessing game (playing rock-paper-scissors)"
    assert _label_file("ntu60") == _label_file("ntu120")[:60]
    assert _label_file("kinetics400")[0] == "abseiling" and _label_file("kinetics400")[-1] == "zumba"


def test_unified_vocabulary_is_the_deduplicated_union():
    tok = UPSProcessor.from_pretrained(PROCESSORS / "unified").tokenizer
    sources = ["synthetic", "ntu120", "kinetics400", "nw-ucla", "msr-action3d", "h36m", "humaneva"]
    all_labels = [label for source in sources for label in _label_file(source)]
    from modeling_ups.tokenization_ups import label_token

    assert tok.num_label_tokens == len({label_token(label) for label in all_labels}) < len(all_labels)
    for label in all_labels:
        assert tok.decode_label(tok.encode_label(label)) in all_labels
    assert tok.label_id("SittingDown") == tok.label_id("sitting down")  # H36M and NTU/synthetic share a token
    assert tok.label_names[:12] == _label_file("synthetic")


def test_committed_folders_match_a_fresh_build(tmp_path):
    spec = importlib.util.spec_from_file_location("build_processors", PROCESSORS / "build_processors.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.write_all(tmp_path)
    for name in build.FOLDERS:
        assert build.differing_files(tmp_path / name, PROCESSORS / name) == [], f"processors/{name} is stale: " \
            "run python processors/build_processors.py"
        assert not list((PROCESSORS / name).glob("*.py"))


# ---------------------------------------------------------------- real data
def test_nw_ucla_clip_through_its_processor(shared_data):
    files = sorted((shared_data / "nw_ucla" / "all_sqe").glob("a01_*.json"))
    if not files:
        pytest.skip("no NW-UCLA clips")
    clip = np.asarray(json.loads(files[0].read_text())["skeletons"], dtype=np.float64)
    processor = UPSProcessor.from_pretrained(PROCESSORS / "nw-ucla")
    out = processor(clip, task="action_recognition", labels="pick up with one hand")
    assert out["pose_values"].shape == (1, 2, clip.shape[0], 20, 3)  # joints of the batch's largest layout
    assert out["layout_ids"].item() == MODEL_LAYOUTS.index("kinect_v1_20")
    assert out["labels"][0, 0].item() == processor.tokenizer.label_token_offset
    assert out["person_mask"].tolist() == [[1, 0]]
    assert 0 < out["pose_values"][0, 0].abs().max() < 10  # normalised: a few body-size units at most
    in_mm = processor(clip * 1000, task="action_recognition")["pose_values"]
    torch.testing.assert_close(in_mm, out["pose_values"], atol=1e-4, rtol=0)
