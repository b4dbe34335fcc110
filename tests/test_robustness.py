"""Property-based hostile-input tests of the processor parts: UPSFeatureExtractor, UPSTokenizer, UPSProcessor.

Each test draws 500 inputs (wrong ranks and shapes, empty and single-frame sequences, NaN/inf, huge values, strings,
objects, complex, bool, ragged lists) and accepts only a result meeting the documented contract or a ValueError /
TypeError naming the problem (see tests/hostile.py). Reproducible: derandomized, no example database.
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hostile import (ROBUST, check_error, clear_error_or_result, junk_objects, mostly, numeric_arrays,
                     pose_like_inputs, ragged_lists, valid_poses)
from modeling_ups import UPSFeatureExtractor
from modeling_ups.skeletons import LAYOUTS
from ups_checkpoint import LABELS, tiny_processor

MAX_FRAMES = 6
FEATURE_KEYWORDS = ("poses", "shape", "empty", "frame", "joint", "channel", "layout", "task", "observation_ratio",
                    "coordinates", "confidence", "non-finite", "numeric", "degenerate", "zeros", "has_confidence",
                    "is_batched", "return_tensors", "float32", "dtype", "batch", "entries", "unexpected")
VALID_TASKS = ("action_recognition", "action_recognition_2d", "action_recognition_3d", "pose_estimation",
               "pose_estimation_3d", "early_action_prediction", "early_action_prediction_3d")
TASKS = mostly(VALID_TASKS, ("", "bogus", "pose", None, 3, ["action_recognition"] * 3))
VALID_LAYOUTS = (None, None, None, "ntu25", "coco17", "h36m17", "halpe26", "openpose18", "kinect_v1_20", "humaneva15")
LAYOUT_NAMES = mostly(VALID_LAYOUTS, ("bogus", "", 17, ["ntu25"] * 3))


@pytest.fixture(scope="module")
def processor():
    return tiny_processor(max_frames=MAX_FRAMES)


@pytest.fixture(scope="module")
def extractor(processor):
    return processor.feature_extractor


def check_features(features, extractor, batch_size=None):
    """The model-input contract of docs/design.md on a BatchFeature returned as numpy."""
    poses = features["pose_values"]
    assert isinstance(poses, np.ndarray) and poses.dtype == np.float32 and poses.ndim == 5, poses
    b, m, t, j, c = poses.shape
    assert b >= 1 and m == extractor.max_persons and c == 3 and 1 <= t <= MAX_FRAMES
    assert batch_size is None or b == batch_size
    assert np.isfinite(poses).all(), "pose_values hold NaN/inf"
    assert j == max(LAYOUTS[extractor.layouts[k]].num_joints for k in features["layout_ids"])
    mask = features["attention_mask"]
    assert mask.dtype == np.int64 and mask.shape == (b, t) and set(np.unique(mask)) <= {0, 1}
    lengths = mask.sum(1)
    assert (lengths >= 1).all() and (mask == (np.arange(t) < lengths[:, None])).all(), "mask is not a prefix"
    assert lengths.max() == t
    for row, length in enumerate(lengths):
        assert not poses[row, :, length:].any(), "padded frames are not zero"
        layout = LAYOUTS[extractor.layouts[features["layout_ids"][row]]]
        assert not poses[row, :, :, layout.num_joints:].any(), "padded joints are not zero"
    persons = features["person_mask"]
    assert persons.shape == (b, m) and persons.dtype == np.int64 and (persons[:, 0] == 1).all()
    assert not poses[persons == 0].any(), "absent persons are not zero"
    assert features["task_ids"].shape == (b,) and ((0 <= features["task_ids"]) & (features["task_ids"] < 4)).all()
    assert features["layout_ids"].shape == (b,)
    assert ((0 <= features["layout_ids"]) & (features["layout_ids"] < len(extractor.layouts))).all()


# ------------------------------------------------------------------------------------------- feature extractor
@ROBUST
@given(poses=pose_like_inputs(), task=TASKS, layout=LAYOUT_NAMES,
       ratio=mostly((None, None, 0.5, 1.0), (0.0, -1.0, 2.0, float("nan"), "half", [0.5], [0.5, 0.5])),
       coordinates=mostly((None, None, "2d", "3d"), ("4d", 2)),
       has_confidence=st.sampled_from((None, None, True, False)))
def test_feature_extractor_on_hostile_inputs(extractor, poses, task, layout, ratio, coordinates, has_confidence):
    with clear_error_or_result(FEATURE_KEYWORDS, "UPSFeatureExtractor.__call__") as outcome:
        outcome.value = extractor(poses, task=task, layout=layout, observation_ratio=ratio, coordinates=coordinates,
                                  has_confidence=has_confidence, return_tensors="np")
    if outcome.error is None:
        check_features(outcome.value, extractor)


@ROBUST
@given(poses=valid_poses(), layout=st.sampled_from((None, None, "ntu25", "openpose18", "kinect_v1_20")),
       ratio=st.sampled_from((None, 0.1, 0.5, 1.0)))
def test_feature_extractor_on_well_formed_poses(extractor, poses, layout, ratio):
    """Valid shapes, arbitrary values: a correct result unless the pose is degenerate (then a named error)."""
    with clear_error_or_result(("degenerate", "zeros", "confidence", "layout", "joints"), "valid poses") as outcome:
        outcome.value = extractor(poses, task="early_action_prediction" if ratio else "action_recognition",
                                  layout=layout, observation_ratio=ratio, return_tensors="np")
    if outcome.error is None:
        check_features(outcome.value, extractor, batch_size=1)
        frames = poses.shape[-3]
        kept = frames if ratio is None else max(1, int(np.ceil(ratio * frames)))
        assert outcome.value["attention_mask"].sum() == min(kept, MAX_FRAMES)


# ------------------------------------------------------------------------------------------------- tokenizer
LABEL_KEYWORDS = ("label", "task", "class index")


@ROBUST
@given(label=st.one_of(st.sampled_from(LABELS), st.text(max_size=12), st.integers(-10, 20), st.integers(),
                       st.booleans(), st.floats(), junk_objects(), st.just(np.int64(2)), st.just(np.float32(1))),
       task=TASKS)
def test_encode_label(processor, label, task):
    tok = processor.tokenizer
    with clear_error_or_result(LABEL_KEYWORDS, "encode_label") as outcome:
        outcome.value = tok.encode_label(label, task=task)
    if outcome.error is None:
        ids = outcome.value
        assert len(ids) == 2 and ids[0] in tok.label_token_ids and ids[1] in tok.eot_token_ids
        assert all(type(i) is int for i in ids)


def token_id_inputs():
    ints = st.integers(-5, 60)
    return st.one_of(
        ints, st.integers(), st.lists(ints, max_size=12), st.lists(st.integers(), max_size=4),
        hnp.arrays(st.sampled_from((np.int64, np.int32, np.uint8, np.float32, np.bool_)),
                   hnp.array_shapes(min_dims=0, max_dims=3, max_side=6)),
        st.lists(ints, max_size=8).map(torch.tensor), ragged_lists(), junk_objects(), st.text(max_size=6),
        st.lists(st.floats(), min_size=1, max_size=4),
    )


TOKEN_KEYWORDS = ("token", "ids", "label", "num_joints", "num_frames", "frames", "bin")


@ROBUST
@given(ids=token_id_inputs())
def test_decode_label(processor, ids):
    tok = processor.tokenizer
    with clear_error_or_result(TOKEN_KEYWORDS, "decode_label") as outcome:
        outcome.value = tok.decode_label(ids)
    if outcome.error is None:
        assert outcome.value in tok.label_names


POSE_KEYWORDS = ("pose", "shape", "coordinates", "NaN", "inf", "numeric", "out_of_range", "coordinate_range")


@ROBUST
@given(pose=st.one_of(numeric_arrays(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)),
                      numeric_arrays(st.tuples(st.integers(0, 3), st.integers(0, 3), st.just(3))),
                      ragged_lists(), junk_objects()),
       out_of_range=st.sampled_from((None, "clip", "error", "wrap")))
def test_encode_pose(processor, pose, out_of_range):
    tok = processor.tokenizer
    with clear_error_or_result(POSE_KEYWORDS, "encode_pose") as outcome:
        outcome.value = tok.encode_pose(pose, out_of_range=out_of_range)
    if outcome.error is None:
        ids = outcome.value
        shape = np.shape(pose)
        assert len(ids) == 3 * int(np.prod(shape[:-1])) + 1 and ids[-1] == tok.eot_token_ids[1]
        axis = np.arange(len(ids) - 1) % 3
        bins = np.asarray(ids[:-1]) - tok.bin_token_offset - axis * tok.num_bins
        assert ((0 <= bins) & (bins < tok.num_bins)).all(), "a token is not a bin of its axis"
        # The right bin: values beyond the range land in the edge bin on their side (1e300 in the last one).
        values = np.asarray(pose, dtype=np.float64).reshape(-1, 3)
        low = np.asarray(tok.coordinate_range)[:, 0]
        expected = np.clip(np.floor((values - low) / tok.bin_width), 0, tok.num_bins - 1).reshape(-1)
        np.testing.assert_array_equal(bins, expected)


@ROBUST
@given(ids=token_id_inputs(), num_joints=st.one_of(st.integers(1, 30), st.integers(-2, 30), st.sampled_from(
           (1.5, "17", None, True))),
       num_frames=st.one_of(st.none(), st.integers(1, 4), st.integers(-2, 4), st.sampled_from((0.5, "1"))),
       strict=st.booleans())
def test_decode_pose(processor, ids, num_joints, num_frames, strict):
    tok = processor.tokenizer
    with clear_error_or_result(TOKEN_KEYWORDS, "decode_pose") as outcome:
        outcome.value = tok.decode_pose(ids, num_joints, num_frames=num_frames, strict=strict)
    if outcome.error is None:
        coords = outcome.value
        assert coords.dtype == np.float32 and coords.ndim == 3 and coords.shape[1:] == (num_joints, 3)
        assert num_frames is None or coords.shape[0] == num_frames
        finite = coords[np.isfinite(coords)]
        low, high = np.min(tok.coordinate_range), np.max(tok.coordinate_range)
        assert ((finite >= low) & (finite <= high)).all()
        if strict:
            assert np.isfinite(coords).all()


# ------------------------------------------------------------------------------------------------- processor
PROCESSOR_KEYWORDS = FEATURE_KEYWORDS + ("label", "target_poses", "target_unit", "targets", "sample")


@ROBUST
@given(poses=st.one_of(valid_poses(num_joints=(25, 17, 26)), pose_like_inputs()),
       task=TASKS, layout=LAYOUT_NAMES,
       labels=st.one_of(st.none(), st.sampled_from(LABELS), st.sampled_from(LABELS), st.integers(-2, 9),
                        st.lists(st.sampled_from(LABELS), max_size=3), junk_objects()),
       target_poses=st.one_of(st.none(), st.none(),
                              numeric_arrays(st.tuples(st.integers(0, 5), st.sampled_from((17, 25, 26, 3)),
                                                       st.sampled_from((2, 3)))), ragged_lists(),
                              st.lists(st.none(), max_size=2)),
       target_unit=st.sampled_from(("mm", "m", "cm", None)))
def test_processor_call(processor, poses, task, layout, labels, target_poses, target_unit):
    with clear_error_or_result(PROCESSOR_KEYWORDS, "UPSProcessor.__call__") as outcome:
        outcome.value = processor(poses=poses, task=task, layout=layout, labels=labels, target_poses=target_poses,
                                  target_unit=target_unit, return_tensors="np")
    if outcome.error is None:
        features = outcome.value
        check_features(features, processor.feature_extractor)
        if "labels" in features:
            labels_array = features["labels"]
            tok = processor.tokenizer
            assert labels_array.dtype == np.int64 and labels_array.shape[0] == features["pose_values"].shape[0]
            for row in labels_array:
                real = row[row != -100]
                assert real.size >= 2 and real[-1] in tok.eot_token_ids and (row[real.size:] == -100).all()
                assert ((0 <= real) & (real < tok.vocab_size)).all()


VOCAB_SIZE = len(LABELS) + 3 + 3 * 16 + 3


@ROBUST
@given(poses=valid_poses(num_joints=(17, 25, 26), channels=(2, 3)), data=st.data())
def test_processor_call_with_consistent_targets(processor, poses, data):
    """Well-formed poses with a matching label or aligned target poses: labels of the documented form."""
    num_frames, num_joints = poses.shape[-3], poses.shape[-2]
    pose_task = data.draw(st.booleans())
    layout = {17: "h36m17", 25: "ntu25", 26: "halpe26"}[num_joints]
    if pose_task:
        targets = data.draw(hnp.arrays(np.float64, (num_frames, num_joints, 3), elements=st.floats(-2e3, 2e3)))
        kwargs = {"task": "pose_estimation", "target_poses": targets, "target_unit": "mm"}
    else:
        kwargs = {"task": "action_recognition", "labels": data.draw(st.sampled_from(LABELS))}
    with clear_error_or_result(("degenerate", "zeros", "confidence"), "processor with targets") as outcome:
        outcome.value = processor(poses=poses, layout=layout, return_tensors="np", **kwargs)
    if outcome.error is None:
        features = outcome.value
        check_features(features, processor.feature_extractor, batch_size=1)
        tok = processor.tokenizer
        labels = features["labels"][0]
        if pose_task:
            model_joints = LAYOUTS[processor.feature_extractor.model_layout(layout)].num_joints
            assert labels.shape == (3 * model_joints + 1,) and labels[-1] == tok.eot_token_ids[1]
            tok.decode_pose(labels, model_joints, num_frames=1)  # strict: every token a bin of its axis
        else:
            assert labels.tolist()[0] in tok.label_token_ids and labels[-1] == tok.eot_token_ids[0]


def generated_id_inputs():
    vocab = VOCAB_SIZE
    rows = st.lists(st.integers(-3, vocab + 3), min_size=0, max_size=60)
    return st.one_of(
        st.lists(rows, min_size=1, max_size=3),
        hnp.arrays(st.sampled_from((np.int64, np.float32, np.bool_)), hnp.array_shapes(min_dims=0, max_dims=3,
                                                                                          max_side=6)),
        st.lists(rows, min_size=1, max_size=2).map(lambda r: torch.tensor([x + [0] * (60 - len(x)) for x in r])),
        rows, ragged_lists(), junk_objects(),
    )


POST_KEYWORDS = ("generated_ids", "ids", "token", "task", "layout", "scores", "top_k", "frames", "joints", "batch",
                 "entries", "label")


@ROBUST
@given(ids=generated_id_inputs(), task=TASKS, layout=LAYOUT_NAMES,
       scores=st.one_of(st.none(), hnp.arrays(np.float32, st.one_of(st.tuples(st.integers(0, 3), st.sampled_from(
                                                  (0, 5, VOCAB_SIZE, VOCAB_SIZE + 1))), hnp.array_shapes(max_dims=3)),
                                              elements=st.floats(width=32) | st.sampled_from((1e30, -np.inf))),
                        st.lists(st.none(), max_size=1), junk_objects()),
       top_k=st.one_of(st.integers(-2, 12), st.sampled_from((None, 2.5, "3", 10**30))))
def test_post_process(processor, ids, task, layout, scores, top_k):
    with clear_error_or_result(POST_KEYWORDS, "UPSProcessor.post_process") as outcome:
        outcome.value = processor.post_process(ids, task=task, layout=layout, scores=scores, top_k=top_k)
    if outcome.error is None:
        tok = processor.tokenizer
        results = outcome.value
        assert isinstance(results, list) and len(results) >= 1
        for result in results:
            if "keypoints_3d" in result:
                keypoints = result["keypoints_3d"]
                num_joints = LAYOUTS[result["layout"]].num_joints
                assert keypoints.dtype == np.float32
                assert keypoints.shape == (processor.pose_estimation_target_frames, num_joints, 3)
            else:
                assert result["label"] is None or result["label"] in tok.label_names
                assert len(result["top_k"]) <= min(int(top_k), tok.num_label_tokens)
                for entry in result["top_k"]:
                    assert entry["label"] in tok.label_names and np.isfinite(entry["score"])


def test_clear_error_helper_rejects_other_exception_types():
    """The checker itself can fail: an IndexError or an unexplained ValueError is not accepted."""
    with pytest.raises(AssertionError, match="IndexError escaped"):
        check_error(IndexError("list index out of range"), ("poses",))
    with pytest.raises(AssertionError, match="does not name the problem"):
        check_error(ValueError("could not broadcast"), ("poses", "shape"))
    with pytest.raises(AssertionError, match="empty message"):
        check_error(TypeError(""), ("poses",))
    check_error(ValueError("sample 0: expected poses shaped (T, J, C)"), ("poses",))


def test_extractor_rejects_float32_overflow_instead_of_returning_inf():
    """1e39 is finite in float64 but not in the model's float32: it must be refused, not turned into inf."""
    extractor = UPSFeatureExtractor(max_frames=MAX_FRAMES, normalize=False)
    poses = np.ones((2, 25, 3))
    poses[0, 3, 1] = 1e39
    with pytest.raises(ValueError) as info:
        extractor(poses)
    check_error(info.value, ("float32",))


@ROBUST
@given(poses=valid_poses(num_joints=(25, 20), channels=(2, 3)).flatmap(
           lambda p: hnp.arrays(np.float64, p.shape, elements=st.floats(allow_nan=False, allow_infinity=False))),
       normalize=st.booleans())
def test_feature_extractor_on_extreme_finite_values(poses, normalize):
    """Any finite float64 (up to 1.8e308 and down to subnormals): normalised to finite float32, or a named error."""
    extractor = UPSFeatureExtractor(max_frames=MAX_FRAMES, normalize=normalize)
    with clear_error_or_result(("float32", "degenerate", "zeros"), "extreme values") as outcome:
        outcome.value = extractor(poses, return_tensors="np")
    if outcome.error is None:
        check_features(outcome.value, extractor, batch_size=1)


def test_encode_pose_clips_values_beyond_int64_to_the_edge_bins(processor):
    """1e300 mm is clipped to the last bin (a float -> int64 cast of it would give INT64_MIN, i.e. bin 0)."""
    tok = processor.tokenizer
    ids = tok.encode_pose([[1e300, -1e300, 5e18]], out_of_range="clip")
    bins = np.asarray(ids[:-1]) - tok.bin_token_offset - np.arange(3) * tok.num_bins
    assert bins.tolist() == [tok.num_bins - 1, 0, tok.num_bins - 1]
