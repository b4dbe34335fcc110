"""Property-based hostile-input tests of `pipeline("pose-sequence-modeling")`, and the input-size limits.

Split of the pipeline's generated cases (the model call dominates the cost, the validation does not):

- `test_pipeline_on_hostile_inputs`: 500 inputs that are mostly malformed (wrong ranks, dtypes, junk dicts and
  paths, bad options) and fail fast in validation; the few that are valid run the tiny model.
- `test_pipeline_on_well_formed_inputs`: 60 valid inputs (recognition, early prediction, lifting), each running the
  tiny model, with the output contract checked.

Limits: clips longer than the frame budget are resampled with a logged warning naming the original length (never
silently truncated) and a 100,000-frame input keeps memory bounded and gives the model at most `max_frames` frames.
"""

import gc
import logging
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hostile import ROBUST, clear_error_or_result, junk_objects, mostly, numeric_arrays, pose_like_inputs, valid_poses
from modeling_ups import UPSFeatureExtractor
from modeling_ups.skeletons import LAYOUTS
from ups_checkpoint import LABELS, MAX_FRAMES, single_thread, tiny_model, tiny_processor  # noqa: F401
from transformers import pipeline

pytestmark = pytest.mark.usefixtures("single_thread")

PIPELINE_KEYWORDS = ("poses", "inputs", "shape", "empty", "frame", "joint", "channel", "layout", "task",
                     "observation_ratio", "coordinates", "confidence", "non-finite", "numeric", "degenerate", "zeros",
                     "no such file", "keypoint", "annotation", "dict", "top_k", "window", "frames", "unsupported",
                     "batch", "float32", "poses", "scores", "persons")


@pytest.fixture(scope="module")
def pipe():
    return pipeline("pose-sequence-modeling", model=tiny_model(), processor=tiny_processor())


def check_output(output, kwargs, num_input_frames=None):
    task = kwargs.get("task", "action_recognition")
    top_k = kwargs.get("top_k", 5)
    if kwargs.get("return_routing") and not task.startswith("pose"):
        assert set(output) == {"predictions", "routing"}
        output = output["predictions"]
    if task.startswith("pose"):
        keypoints = output["keypoints_3d"]
        j = LAYOUTS[output["layout"]].num_joints
        assert keypoints.dtype == np.float32 and keypoints.ndim == 3 and keypoints.shape[1:] == (j, 3)
        assert len(output["joint_names"]) == j and output["units"] == "mm"
        assert len(output["frame_indices"]) == keypoints.shape[0]
        if num_input_frames is not None:
            assert all(0 <= f < num_input_frames for f in output["frame_indices"])
            if kwargs.get("frames") == "all":
                assert keypoints.shape[0] == num_input_frames
        return
    assert isinstance(output, list) and 1 <= len(output) <= min(int(top_k), len(LABELS))
    scores = [entry["score"] for entry in output]
    assert all(entry["label"] in LABELS for entry in output)
    assert all(np.isfinite(scores)) and scores == sorted(scores, reverse=True) and sum(scores) <= 1.0 + 1e-5


def pipeline_options():
    return st.fixed_dictionaries({}, optional={
        "task": mostly(("action_recognition", "early_action_prediction", "pose_estimation", "action_recognition_3d"),
                       ("bogus", "", "pose")),
        "layout": mostly(("ntu25", "h36m17", "coco17", "halpe26", "openpose18"), ("bogus", "")),
        "observation_ratio": mostly((0.5, 1.0), (0.0, 2.0, float("nan"), "x")),
        "coordinates": mostly(("2d", "3d"), ("4d",)),
        "top_k": mostly((1, 3, 7, 50), (0, -1, "x")),
        "frames": mostly(("center", "all"), ("every",)),
        "window": mostly((3, 5), (0, -2)),
        "window_batch_size": mostly((1, 4), (0,)),
        "return_routing": st.booleans(),
    })


def annotation_dicts():
    return st.fixed_dictionaries({"keypoint": st.one_of(numeric_arrays(), junk_objects())}, optional={
        "keypoint_score": st.one_of(numeric_arrays(), junk_objects()), "label": junk_objects(),
        "frame_dir": junk_objects()}) | st.fixed_dictionaries(
        {"poses": st.one_of(numeric_arrays(), junk_objects())},
        optional={"scores": st.one_of(numeric_arrays(), junk_objects()), "layout": st.sampled_from(("ntu25", "x"))})


@ROBUST
@given(inputs=st.one_of(pose_like_inputs(), annotation_dicts(), junk_objects(),
                        st.sampled_from(("missing.skeleton", "/", "", "clip.txt"))),
       options=pipeline_options())
def test_pipeline_on_hostile_inputs(pipe, inputs, options):
    with clear_error_or_result(PIPELINE_KEYWORDS, "pipeline") as outcome:
        outcome.value = pipe(inputs, **options)
    if outcome.error is None:
        outputs = outcome.value if isinstance(inputs, list) else [outcome.value]
        if isinstance(inputs, list):
            assert len(outputs) == len(inputs)
        for output in outputs:
            check_output(output, options)


@settings(ROBUST, max_examples=60)
@given(poses=valid_poses(num_joints=(25, 17, 26), channels=(2, 3), max_frames=8, max_persons=2), data=st.data())
def test_pipeline_on_well_formed_inputs(pipe, poses, data):
    num_joints = poses.shape[-2]
    layout = {25: "ntu25", 17: "h36m17", 26: "halpe26"}[num_joints]
    task = data.draw(st.sampled_from(("action_recognition", "early_action_prediction")
                                     + (("pose_estimation",) if num_joints != 25 else ())))
    options = {"task": task, "layout": layout, "top_k": data.draw(st.integers(1, 9))}
    if task == "early_action_prediction":
        options["observation_ratio"] = data.draw(st.sampled_from((0.1, 0.5, 1.0)))
    if task == "pose_estimation":
        poses = poses[..., :2]
        options["frames"] = data.draw(st.sampled_from(("center", "all")))
        options["window"] = data.draw(st.sampled_from((None, 3)))
        options = {k: v for k, v in options.items() if v is not None}
    inputs = data.draw(st.sampled_from(("array", "tensor", "annotation")))
    value = {"array": poses, "tensor": torch.from_numpy(np.ascontiguousarray(poses)),
             "annotation": {"keypoint": poses if poses.ndim == 4 else poses[None]}}[inputs]
    with clear_error_or_result(("degenerate", "zeros"), "well-formed pipeline input") as outcome:
        outcome.value = pipe(value, **options)
    if outcome.error is None:
        check_output(outcome.value, options, num_input_frames=poses.shape[-3])


# ------------------------------------------------------------------------------------------------------ limits
def test_long_input_is_resampled_with_a_warning_naming_its_length(caplog):
    """Frame t holds x = t: the kept frames must span the whole clip (resampled, not cut at max_frames)."""
    extractor = UPSFeatureExtractor(max_frames=MAX_FRAMES, normalize=False)
    length = 1000
    poses = np.zeros((length, 25, 3), dtype=np.float32)
    poses[..., 0] = np.arange(1, length + 1)[:, None]
    with caplog.at_level(logging.WARNING):
        features = extractor(poses, return_tensors="np")
    assert f"{length} frames exceed max_frames={MAX_FRAMES}" in caplog.text
    kept = features["pose_values"][0, 0, :, 0, 0]
    assert kept.shape == (MAX_FRAMES,) and features["attention_mask"].sum() == MAX_FRAMES
    assert kept[0] <= length / MAX_FRAMES and kept[-1] >= length * (1 - 1 / MAX_FRAMES), "truncated, not resampled"
    assert np.all(np.diff(kept) > 0)

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        extractor(poses[:MAX_FRAMES], return_tensors="np")
    assert "exceed max_frames" not in caplog.text  # no warning within the budget


def _peak_numpy_bytes(function):
    """Peak bytes traced (numpy and torch CPU buffers report to tracemalloc) while ``function`` runs."""
    gc.collect()
    tracemalloc.start()
    try:
        result = function()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


HUGE_FRAMES = 100_000
MEMORY_BUDGET = 200 * 2**20  # the input itself is 13.6 MB (float32)


@pytest.fixture(scope="module")
def huge_input():
    rng = np.random.default_rng(0)
    return rng.normal(0.0, 100.0, (HUGE_FRAMES, 17, 2)).astype(np.float32)


def test_feature_extractor_memory_is_bounded_on_100k_frames(huge_input):
    extractor = UPSFeatureExtractor(max_frames=MAX_FRAMES)
    features, peak = _peak_numpy_bytes(lambda: extractor(huge_input, layout="h36m17", return_tensors="np"))
    assert features["pose_values"].shape[2] == MAX_FRAMES
    assert peak < MEMORY_BUDGET, f"peak {peak / 2**20:.0f} MB"


def test_pipeline_memory_is_bounded_and_the_model_sees_at_most_max_frames(pipe, huge_input):
    seen = []
    hook = pipe.model.get_encoder().register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(tuple(kwargs["pose_values"].shape)), with_kwargs=True)
    try:
        output, peak = _peak_numpy_bytes(lambda: pipe(huge_input, layout="h36m17", task="pose_estimation"))
    finally:
        hook.remove()
    assert seen and all(shape[2] <= MAX_FRAMES for shape in seen), seen
    assert output["keypoints_3d"].shape == (1, 17, 3) and output["frame_indices"] == [(HUGE_FRAMES - 1) // 2]
    assert peak < MEMORY_BUDGET, f"peak {peak / 2**20:.0f} MB"
