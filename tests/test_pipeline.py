"""Tests of `pipeline("pose-sequence-modeling")` (modeling_ups/pipeline_ups.py) on a tiny random checkpoint."""

import copy
import json
import math
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from modeling_ups import PoseSequenceModelingPipeline, UPSFeatureExtractor, UPSProcessor, UPSTokenizer
from modeling_ups.skeletons import LAYOUTS
from ups_checkpoint import (HIDE_PACKAGE, LABELS, env_without_package, motion, single_thread, tiny_model,  # noqa: F401
                            tiny_processor, write_alphapose_json, write_kinetics_json, write_ntu_skeleton)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


@pytest.fixture(scope="module")
def pipe(model, processor):
    return pipeline("pose-sequence-modeling", model=model, processor=processor)


# ---------------------------------------------------------------- references computed without the pipeline
def label_probabilities(model, processor, poses, task, **kwargs) -> np.ndarray:
    """Softmax over the label tokens at the first decoding step, from processor + model.forward."""
    inputs = processor(poses=[poses], task=task, **kwargs)
    start = torch.full((1, 1), model.config.decoder_start_token_id)
    with torch.no_grad():
        logits = model(**inputs, decoder_input_ids=start).logits[0, -1]
    ids = processor.tokenizer.label_token_ids
    return torch.softmax(logits[ids.start : ids.stop].float(), -1).numpy()


def generated_label(model, processor, poses, task, **kwargs) -> str:
    inputs = processor(poses=[poses], task=task, **kwargs)
    return processor.tokenizer.decode_label(model.generate(**inputs)[0])


def lifted_pose(model, processor, poses, layout="h36m17", **kwargs) -> np.ndarray:
    inputs = processor(poses=[poses], task="pose_estimation", layout=layout, **kwargs)
    sequence = model.generate(**inputs)[0]
    return processor.tokenizer.decode_pose(sequence, LAYOUTS[layout].num_joints, num_frames=1)


def assert_same_labels(result, expected, atol=1e-6):
    assert [r["label"] for r in result] == [e["label"] for e in expected]
    np.testing.assert_allclose([r["score"] for r in result], [e["score"] for e in expected], atol=atol)


# ---------------------------------------------------------------- construction
def test_registered_on_import_and_built_by_the_pipeline_factory(pipe):
    info = PIPELINE_REGISTRY.supported_tasks["pose-sequence-modeling"]
    assert info["impl"] is PoseSequenceModelingPipeline and info["pt"] == (AutoModel,)
    assert isinstance(pipe, PoseSequenceModelingPipeline)
    assert pipe.processor.tokenizer is pipe.tokenizer  # processor-only mode fills the parts the batching needs


def test_a_processor_that_disagrees_with_the_model_is_refused(model):
    other = UPSProcessor(UPSFeatureExtractor(max_frames=24), UPSTokenizer(labels=LABELS[:3], num_bins=16))
    with pytest.raises(ValueError, match="num_label_tokens"):
        pipeline("pose-sequence-modeling", model=model, processor=other)
    with pytest.raises(ValueError, match="needs a UPSProcessor"):
        PoseSequenceModelingPipeline(model=model)


# ---------------------------------------------------------------- recognition and early prediction
def test_recognition_returns_top_k_labels_with_the_model_probabilities(pipe, model, processor):
    poses = motion(15, 25, 3, persons=2, seed=1)
    result = pipe(poses, top_k=3)
    probabilities = label_probabilities(model, processor, poses, "action_recognition")
    order = np.argsort(-probabilities, kind="stable")[:3]
    assert [r["label"] for r in result] == [LABELS[i] for i in order]
    np.testing.assert_allclose([r["score"] for r in result], probabilities[order], rtol=1e-5)
    assert result[0]["label"] == generated_label(model, processor, poses, "action_recognition")
    assert len(pipe(poses)) == 5 and len(pipe(poses, top_k=50)) == len(LABELS)  # default 5, capped at the labels


def test_2d_recognition_is_told_from_the_input(pipe):
    keypoints = motion(12, 18, 2, seed=2)  # OpenPose-18, x and y only
    auto = pipe(keypoints, top_k=len(LABELS))
    assert_same_labels(auto, pipe(keypoints, task="action_recognition_2d", top_k=len(LABELS)))
    three_d = pipe(keypoints, task="action_recognition_3d", top_k=len(LABELS))
    assert not np.allclose([r["score"] for r in auto], [r["score"] for r in three_d])
    # Three channels read as x, y, confidence when told so.
    with_score = np.concatenate([keypoints, np.full(keypoints.shape[:-1] + (1,), 0.9)], axis=-1)
    assert_same_labels(pipe(with_score, coordinates="2d", top_k=len(LABELS)), auto)


def test_early_prediction_observes_the_first_frames(pipe):
    poses = motion(20, 25, 3, seed=3)
    for ratio in (0.3, 0.5, 1.0):
        observed = poses[:, : math.ceil(ratio * 20)]
        assert_same_labels(pipe(poses, task="early_action_prediction", observation_ratio=ratio),
                           pipe(observed, task="early_action_prediction"))
    differs = pipe(poses, task="early_action_prediction", observation_ratio=0.3, top_k=len(LABELS))
    whole = pipe(poses, task="early_action_prediction", top_k=len(LABELS))
    assert not np.allclose(sorted(r["score"] for r in differs), sorted(r["score"] for r in whole))


@pytest.mark.parametrize("ratio", [0.0, -0.2, 1.5, "half"])
def test_observation_ratio_outside_the_unit_interval_is_refused(pipe, ratio):
    with pytest.raises(ValueError, match="observation_ratio"):
        pipe(motion(10, 25, 3), task="early_action_prediction", observation_ratio=ratio)


def test_observation_ratio_is_for_early_prediction_only(pipe):
    with pytest.raises(ValueError, match="early_action_prediction only"):
        pipe(motion(10, 25, 3), task="action_recognition", observation_ratio=0.5)


def test_unknown_task_lists_the_tasks(pipe):
    with pytest.raises(ValueError, match="Unknown task 'dancing'.*pose_estimation"):
        pipe(motion(10, 25, 3), task="dancing")


# ---------------------------------------------------------------- pose estimation
def test_pose_estimation_lifts_the_centre_frame_in_millimetres(pipe, model, processor):
    keypoints = motion(13, 17, 2, seed=4, scale=300.0)  # pixels
    result = pipe(keypoints, task="pose_estimation", layout="h36m17")
    assert set(result) == {"keypoints_3d", "frame_indices", "joint_names", "layout", "units"}
    assert result["keypoints_3d"].shape == (1, 17, 3) and result["keypoints_3d"].dtype == np.float32
    assert result["units"] == "mm" and result["layout"] == "h36m17" and result["frame_indices"] == [6]
    assert result["joint_names"] == list(LAYOUTS["h36m17"].joint_names)
    np.testing.assert_array_equal(result["keypoints_3d"], lifted_pose(model, processor, keypoints))
    # Outputs are bin centres of the tokenizer's range.
    width = processor.tokenizer.bin_width[0]
    assert np.all(np.abs(result["keypoints_3d"]) < 1000)
    np.testing.assert_allclose(((result["keypoints_3d"] + 1000) / width - 0.5) % 1.0, 0.0, atol=1e-3)


def test_pose_estimation_of_every_frame_slides_centred_windows(pipe, model, processor):
    keypoints = motion(11, 17, 2, seed=5)
    window = 7
    result = pipe(keypoints, task="pose_estimation", layout="h36m17", frames="all", window=window)
    assert result["keypoints_3d"].shape == (11, 17, 3) and result["frame_indices"] == list(range(11))
    for t in (0, 1, 5, 10):  # window centred on frame t, edge frames repeated beyond the ends
        clip = keypoints[:, np.clip(np.arange(t - 3, t + 4), 0, 10)]
        np.testing.assert_array_equal(result["keypoints_3d"][t], lifted_pose(model, processor, clip)[0])
    small_batches = pipe(keypoints, task="pose_estimation", layout="h36m17", frames="all", window=window,
                         window_batch_size=3)
    np.testing.assert_array_equal(small_batches["keypoints_3d"], result["keypoints_3d"])


def test_expectation_decoding_lifts_each_coordinate_to_the_mean_of_its_bins(pipe, model, processor):
    keypoints = motion(11, 17, 2, seed=5)
    options = dict(task="pose_estimation", layout="h36m17", frames="all", window=7)
    result = pipe(keypoints, pose_decoding="expectation", window_batch_size=4, **options)
    assert result["keypoints_3d"].shape == (11, 17, 3) and result["keypoints_3d"].dtype == np.float32
    bins = pipe(keypoints, **options)["keypoints_3d"]
    assert not np.allclose(result["keypoints_3d"], bins)  # not bin centres: the mean of each distribution
    for t in (0, 5, 10):  # as generate() + sequence_scores + the tokenizer give it for the window alone
        clip = keypoints[:, np.clip(np.arange(t - 3, t + 4), 0, 10)]
        inputs = processor(poses=[clip], task="pose_estimation", layout="h36m17")
        scores = model.sequence_scores(model.generate(**inputs), **inputs)
        expected = processor.tokenizer.expected_pose(scores[0], 17)[0]
        np.testing.assert_allclose(result["keypoints_3d"][t], expected, rtol=1e-4, atol=1e-2)
    # generate()'s own per-step scores (constrained: -inf outside each step's axis) give the same coordinates.
    generated = model.generate(**inputs, output_scores=True, return_dict_in_generate=True)
    from_generate = processor.post_process(generated.sequences, task="pose_estimation", layout="h36m17",
                                           scores=generated.scores, pose_decoding="expectation")[0]["keypoints_3d"]
    np.testing.assert_allclose(from_generate[0], expected, rtol=1e-4, atol=1e-2)
    with pytest.raises(ValueError, match="pose_decoding must be one of"):
        pipe(keypoints, pose_decoding="mode", **options)
    # The processor's saved pose_decoding is the pipeline's default; a call argument overrides it.
    expecting = copy.deepcopy(processor)
    expecting.pose_decoding = "expectation"
    default = pipeline("pose-sequence-modeling", model=model, processor=expecting)
    np.testing.assert_array_equal(default(keypoints, window_batch_size=4, **options)["keypoints_3d"],
                                  result["keypoints_3d"])
    np.testing.assert_array_equal(default(keypoints, pose_decoding="bins", **options)["keypoints_3d"], bins)


def test_every_frame_with_several_target_frames_per_window(processor):
    """A model predicting K = 3 frames per window lifts a video with a window per 3 frames: each window's frames
    are the ones `processor.window_frame_indices` gives it, lifted as generate() lifts that window alone, and the
    frames past the end of the video are dropped."""
    from modeling_ups import UPSConfig, UPSForPoseSequenceModeling
    from ups_checkpoint import randomise_untrained_parts, tiny_config

    config = UPSConfig.from_dict(tiny_config().to_dict() | dict(pose_estimation_target_frames=3))
    torch.manual_seed(0)
    model = randomise_untrained_parts(UPSForPoseSequenceModeling(config))
    several = UPSProcessor(processor.feature_extractor, processor.tokenizer, pose_estimation_target_frames=3)
    pipe = pipeline("pose-sequence-modeling", model=model, processor=several)
    keypoints, window = motion(11, 17, 2, seed=5), 7
    calls = []
    handle = model.get_encoder().register_forward_hook(lambda module, args, out: calls.append(out.last_hidden_state))
    try:
        result = pipe(keypoints, task="pose_estimation", layout="h36m17", frames="all", window=window)
    finally:
        handle.remove()
    assert result["keypoints_3d"].shape == (11, 17, 3) and result["frame_indices"] == list(range(11))
    assert sum(c.shape[0] for c in calls) == 4  # windows for frames 0-2, 3-5, 6-8, 9-11
    for first in (0, 3, 9):
        clip = keypoints[:, several.window_frame_indices(11, window, first)]
        inputs = several(poses=[clip], task="pose_estimation", layout="h36m17")
        frames = several.tokenizer.decode_pose(model.generate(**inputs)[0], 17, num_frames=3)
        kept = min(3, 11 - first)
        np.testing.assert_array_equal(result["keypoints_3d"][first : first + kept], frames[:kept])


def test_frame_options_are_checked(pipe):
    with pytest.raises(ValueError, match="frames"):
        pipe(motion(10, 25, 3), frames="some")
    with pytest.raises(ValueError, match="pose_estimation only"):
        pipe(motion(10, 25, 3), frames="all")
    with pytest.raises(ValueError, match="top_k"):
        pipe(motion(10, 25, 3), top_k=0)


def test_routing_decisions_are_returned_on_request(pipe, model, processor):
    poses = motion(10, 25, 3, seed=6)
    result = pipe(poses, return_routing=True)
    assert set(result) == {"predictions", "routing"}
    inputs = processor(poses=[poses], task="action_recognition")
    encoded = model.get_encoder()(**inputs)
    assert result["routing"]["blocks"] == encoded.router_decisions[0].tolist()
    probabilities = np.asarray(result["routing"]["probabilities"])
    assert probabilities.shape == (model.config.encoder_layers, model.config.encoder_blocks_per_layer)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    lifted = pipe(motion(9, 17, 2), task="pose_estimation", layout="h36m17", return_routing=True)
    assert len(lifted["routing"]["blocks"]) == model.config.encoder_layers


# ---------------------------------------------------------------- batching
def test_batched_recognition_equals_one_by_one(pipe):
    samples = [motion(9, 25, 3, persons=2, seed=7), motion(20, 25, 3, seed=8), motion(14, 18, 2, seed=9),
               motion(30, 25, 3, seed=10), motion(5, 20, 3, seed=11)]
    batched = pipe(samples, batch_size=3, top_k=4)
    streamed = list(pipe((sample for sample in samples), batch_size=2, top_k=4))
    assert len(batched) == len(streamed) == len(samples)
    for sample, result, from_generator in zip(samples, batched, streamed):
        single = pipe(sample, top_k=4)
        assert_same_labels(result, single)
        assert_same_labels(from_generator, single)


def test_batched_pose_estimation_equals_one_by_one(pipe):
    samples = [motion(7, 17, 2, seed=12), motion(12, 17, 2, seed=13), motion(4, 17, 3, seed=14)]
    options = dict(task="pose_estimation", layout="h36m17", frames="all", window=5)
    batched = pipe(samples, batch_size=2, **options)
    for sample, result in zip(samples, batched):
        single = pipe(sample, **options)
        assert result["keypoints_3d"].shape == (sample.shape[-3], 17, 3)
        np.testing.assert_array_equal(result["keypoints_3d"], single["keypoints_3d"])
    centre = pipe(samples, batch_size=3, task="pose_estimation", layout="h36m17")
    for sample, result in zip(samples, centre):
        np.testing.assert_array_equal(result["keypoints_3d"],
                                      pipe(sample, task="pose_estimation", layout="h36m17")["keypoints_3d"])


# ---------------------------------------------------------------- files and annotation dicts
def test_numpy_files(pipe, tmp_path):
    poses = motion(12, 25, 3, persons=2, seed=15).astype(np.float32)
    expected = pipe(poses)
    np.save(tmp_path / "clip.npy", poses)
    np.savez(tmp_path / "clip.npz", poses=poses)
    assert_same_labels(pipe(str(tmp_path / "clip.npy")), expected)
    assert_same_labels(pipe(tmp_path / "clip.npz"), expected)


def test_ntu_skeleton_file(pipe, tmp_path):
    joints_m = motion(12, 25, 3, persons=2, seed=16, scale=0.5) + np.array([0.0, 0.2, 3.0])
    path = write_ntu_skeleton(tmp_path / "S001C001P001R001A010.skeleton", joints_m)
    assert_same_labels(pipe(str(path), top_k=len(LABELS)), pipe(joints_m, top_k=len(LABELS)), atol=1e-5)
    early = pipe(str(path), task="early_action_prediction", observation_ratio=0.5)
    assert_same_labels(early, pipe(joints_m[:, :6], task="early_action_prediction"), atol=1e-5)


def test_kinetics_skeleton_json(pipe, tmp_path):
    xy = np.clip(motion(10, 18, 2, persons=1, seed=17, scale=0.3) + 0.5, 0.01, 0.99)
    scores = np.random.default_rng(0).uniform(0.3, 1.0, xy.shape[:-1])
    path = write_kinetics_json(tmp_path / "clip.json", xy, scores)
    pixels = np.concatenate([xy * np.array([340.0, 256.0]), scores[..., None]], axis=-1)
    expected = pipe(pixels, coordinates="2d", layout="openpose18", top_k=len(LABELS))
    assert_same_labels(pipe(str(path), top_k=len(LABELS)), expected, atol=1e-5)


def test_alphapose_json_is_lifted_in_the_h36m_layout(pipe, tmp_path):
    xy = motion(9, 26, 2, persons=None, seed=18, scale=80.0) + np.array([320.0, 240.0])
    scores = np.random.default_rng(1).uniform(0.5, 1.0, xy.shape[:-1])
    keypoints = np.concatenate([xy, scores[..., None]], axis=-1)
    path = write_alphapose_json(tmp_path / "alphapose-results.json", keypoints)
    result = pipe(str(path), task="pose_estimation")
    assert result["layout"] == "h36m17" and result["keypoints_3d"].shape == (1, 17, 3)
    expected = pipe(keypoints, task="pose_estimation", layout="halpe26", coordinates="2d")
    np.testing.assert_allclose(result["keypoints_3d"], expected["keypoints_3d"])


def test_pyskl_annotation_dict_and_pickle(pipe, tmp_path):
    keypoint = motion(11, 17, 2, persons=2, seed=19, scale=100.0) + 500.0
    score = np.random.default_rng(2).uniform(0.2, 1.0, keypoint.shape[:-1])
    annotation = {"frame_dir": "clip", "label": 3, "total_frames": 11, "img_shape": (1080, 1920),
                  "original_shape": (1080, 1920), "keypoint": keypoint.astype(np.float32),
                  "keypoint_score": score.astype(np.float32)}
    expected = pipe(np.concatenate([keypoint, score[..., None]], axis=-1), coordinates="2d", layout="coco17",
                    top_k=len(LABELS))
    assert_same_labels(pipe(annotation, layout="coco17", top_k=len(LABELS)), expected, atol=1e-5)
    with open(tmp_path / "clip.pkl", "wb") as f:
        pickle.dump({"split": {"xsub_val": ["clip"]}, "annotations": [annotation]}, f)
    assert_same_labels(pipe(str(tmp_path / "clip.pkl"), layout="coco17", top_k=len(LABELS)), expected, atol=1e-5)


def test_a_list_of_files_runs_in_batches(pipe, tmp_path):
    arrays = [motion(n, 25, 3, seed=20 + n).astype(np.float32) for n in (6, 13, 9)]
    paths = []
    for i, array in enumerate(arrays):
        np.save(tmp_path / f"{i}.npy", array)
        paths.append(str(tmp_path / f"{i}.npy"))
    for result, array in zip(pipe(paths, batch_size=2), arrays):
        assert_same_labels(result, pipe(array))


# ---------------------------------------------------------------- bad input
def test_bad_inputs_name_the_problem(pipe, tmp_path):
    (tmp_path / "notes.txt").write_text("not a skeleton")
    (tmp_path / "broken.json").write_text('{"data": [')
    np.save(tmp_path / "eleven.npy", motion(8, 11, 3).astype(np.float32))
    with pytest.raises(ValueError, match="notes.txt.*unsupported file type"):
        pipe(str(tmp_path / "notes.txt"))
    with pytest.raises(ValueError, match="broken.json.*invalid JSON"):
        pipe(str(tmp_path / "broken.json"))
    with pytest.raises(ValueError, match="no such file"):
        pipe(str(tmp_path / "missing.npy"))
    with pytest.raises(ValueError, match="No layout has 11 joints"):
        pipe(str(tmp_path / "eleven.npy"))
    with pytest.raises(ValueError, match="17 joints fit several layouts"):
        pipe(motion(8, 17, 2), task="pose_estimation")
    with pytest.raises(ValueError, match="keypoint"):
        pipe({"frame_dir": "x", "label": 1})
    with pytest.raises(TypeError, match="np.asarray"):
        pipe(42)


# ---------------------------------------------------------------- saving and loading in a fresh process
def test_save_pretrained_writes_model_processor_and_pipeline_code(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["custom_pipelines"]["pose-sequence-modeling"] == {
        "impl": "pipeline_ups.PoseSequenceModelingPipeline", "pt": ["AutoModel"], "type": "multimodal"}
    for name in ("pipeline_ups.py", "pose_io.py", "processor_config.json", "processing_ups.py", "vocab.json"):
        assert (tmp_path / name).is_file(), name


def readme_usage_code() -> str:
    """The README's "Using a trained model" Python block, as a user copies it."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Using a trained model", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readmes_usage_code_runs_on_a_training_runs_folder(pipe, tmp_path, monkeypatch):
    """Word for word, on a folder laid out as examples/train.py leaves it (the pipeline's save_pretrained: model,
    processor, copied code and custom_pipelines, which make transformers' pipeline() ask for trust_remote_code unless
    it is given a pipeline class); the README's placeholders are a clip.npy and `keypoints_2d`."""
    pipe.save_pretrained(tmp_path / "outputs" / "ups-demo" / "final")
    assert "pose-sequence-modeling" in json.loads((tmp_path / "outputs/ups-demo/final/config.json").read_text())[
        "custom_pipelines"]
    np.save(tmp_path / "clip.npy", motion(14, 25, 3, persons=None).astype(np.float32))
    monkeypatch.chdir(tmp_path)
    namespace = {"keypoints_2d": (motion(12, 17, 2, persons=None, seed=3) * 200 + 400).astype(np.float32)}
    exec(compile(readme_usage_code(), "README.md", "exec"), namespace)
    assert isinstance(namespace["ups"], PoseSequenceModelingPipeline)
    lifted = namespace["ups"](namespace["keypoints_2d"], task="pose_estimation", layout="h36m17", frames="all")
    assert lifted["keypoints_3d"].shape == (12, 17, 3)


def test_fresh_process_without_the_package_predicts_the_same(pipe, tmp_path):
    folder = tmp_path / "ups-tiny"
    pipe.save_pretrained(folder)
    joints_m = motion(12, 25, 3, persons=2, seed=30, scale=0.5) + np.array([0.0, 0.2, 3.0])
    skeleton = write_ntu_skeleton(tmp_path / "clip.skeleton", joints_m)
    arrays = {"a": motion(14, 25, 3, seed=31), "b": motion(9, 18, 2, seed=32), "c": motion(10, 17, 2, seed=33)}
    np.savez(tmp_path / "inputs.npz", **arrays)
    script = HIDE_PACKAGE + textwrap.dedent(f"""
        import json
        import numpy as np
        from transformers import pipeline
        pipe = pipeline(model={str(folder)!r}, trust_remote_code=True)
        assert type(pipe).__module__.startswith("transformers_modules"), type(pipe).__module__
        assert type(pipe.model).__module__.startswith("transformers_modules"), type(pipe.model).__module__
        x = np.load({str(tmp_path / "inputs.npz")!r})
        out = {{
            "file": pipe({str(skeleton)!r}, top_k=7),
            "batch": pipe([x["a"], x["b"]], batch_size=2, top_k=7),
            "early": pipe(x["a"], task="early_action_prediction", observation_ratio=0.4, top_k=7),
            "pose": pipe(x["c"], task="pose_estimation", layout="h36m17", frames="all",
                         window=5)["keypoints_3d"].tolist(),
        }}
        print("RESULT" + json.dumps(out))
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env_without_package(tmp_path),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    remote = json.loads(run.stdout.split("RESULT", 1)[1])
    assert_same_labels(remote["file"], pipe(str(skeleton), top_k=7))
    for got, array in zip(remote["batch"], (arrays["a"], arrays["b"])):
        assert_same_labels(got, pipe(array, top_k=7))
    assert_same_labels(remote["early"], pipe(arrays["a"], task="early_action_prediction", observation_ratio=0.4,
                                             top_k=7))
    local_pose = pipe(arrays["c"], task="pose_estimation", layout="h36m17", frames="all", window=5)
    np.testing.assert_array_equal(np.asarray(remote["pose"], dtype=np.float32), local_pose["keypoints_3d"])
