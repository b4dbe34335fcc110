"""Tests of UPSFeatureExtractor (modeling_ups/feature_extraction_ups.py): input forms, layouts, normalisation,
frames, persons, errors, save/load."""

import logging
import math

import numpy as np
import pytest
import torch

from modeling_ups import UPSConfig, UPSFeatureExtractor
from modeling_ups.configuration_ups import resolve_task
from modeling_ups.feature_extraction_ups import DEFAULT_LAYOUT_CONVERSIONS, uniform_frame_indices
from modeling_ups.skeletons import LAYOUTS, MODEL_LAYOUTS, convert_layout


def skeleton(num_frames=12, num_joints=25, channels=3, seed=0, offset=(0.3, 1.2, 3.0)):
    """A moving skeleton in metres: fixed bone offsets around a body centre that drifts and sways."""
    rng = np.random.default_rng(seed)
    body = rng.normal(0.0, 0.4, size=(num_joints, channels))
    t = np.linspace(0.0, 1.0, num_frames)[:, None, None]
    motion = 0.1 * np.sin(2 * np.pi * t + rng.uniform(0, np.pi, size=(1, num_joints, channels)))
    return body[None] + motion + np.asarray(offset[:channels])


@pytest.fixture(scope="module")
def extractor():
    return UPSFeatureExtractor()


def assert_same_features(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


# ---------------------------------------------------------------- input forms
def test_every_input_form_gives_the_same_model_inputs(extractor):
    pose = skeleton()
    reference = extractor(pose, layout="ntu25")
    forms = {
        "torch": torch.from_numpy(pose),
        "torch float32": torch.from_numpy(pose).float(),
        "nested list": pose.tolist(),
        "(1, T, J, C)": pose[None],
        "(1, T, J, C) nested list": pose[None].tolist(),
        "list of one array": [pose],
        "list of one (1, T, J, C) tensor": [torch.from_numpy(pose[None])],
        "5-D batch": pose[None, None],
    }
    for name, form in forms.items():
        out = extractor(form, layout="ntu25")
        if name == "torch float32":  # float32 input rounds the metres before normalisation
            torch.testing.assert_close(out["pose_values"], reference["pose_values"], atol=1e-5, rtol=0)
            continue
        assert_same_features(out, reference)
    # Without layout=, 25 joints can only be NTU.
    assert_same_features(extractor(pose), reference)


def test_output_contract(extractor):
    out = extractor([skeleton(10), skeleton(7, seed=1)])
    assert out["pose_values"].shape == (2, 2, 10, 25, 3) and out["pose_values"].dtype == torch.float32
    for key, shape in {"attention_mask": (2, 10), "person_mask": (2, 2), "task_ids": (2,), "layout_ids": (2,)}.items():
        assert out[key].shape == shape and out[key].dtype == torch.int64, key
    assert extractor.layouts == UPSConfig().layout_names
    assert out["layout_ids"].tolist() == [UPSConfig().layout_id("ntu25")] * 2
    assert out["task_ids"].tolist() == [UPSConfig().task_id("action_recognition_3d")] * 2
    numpy_out = extractor(skeleton(), return_tensors=None)
    assert isinstance(numpy_out["pose_values"], np.ndarray)


def test_batch_of_different_lengths_is_padded_and_masked(extractor):
    short, long = skeleton(6, seed=1), skeleton(15, seed=2)
    batch = extractor([short, long])
    assert batch["attention_mask"].tolist() == [[1] * 6 + [0] * 9, [1] * 15]
    assert torch.all(batch["pose_values"][0, :, 6:] == 0)
    torch.testing.assert_close(batch["pose_values"][0, :, :6], extractor(short)["pose_values"][0])
    torch.testing.assert_close(batch["pose_values"][1], extractor(long)["pose_values"][0])


def test_ragged_nested_lists_are_a_batch(extractor):
    a, b = skeleton(5, seed=3), skeleton(8, seed=4)
    out = extractor([a.tolist(), b.tolist()])
    assert out["pose_values"].shape[:3] == (2, 2, 8)
    forced = extractor([a.tolist(), skeleton(5, seed=5).tolist()], is_batched=True)
    assert forced["pose_values"].shape[0] == 2


def test_2d_input_gets_zero_z_and_the_2d_task(extractor):
    out = extractor(skeleton(channels=2), task="action_recognition")
    assert torch.all(out["pose_values"][..., 2] == 0)
    assert torch.any(out["pose_values"][..., :2] != 0)
    assert out["task_ids"].tolist() == [UPSConfig().task_id("action_recognition_2d")]


def test_three_channels_are_read_by_coordinates_confidence_flag_or_task(extractor):
    xy = skeleton(channels=2, num_joints=18)
    xyc = np.concatenate([xy, np.random.default_rng(0).uniform(0.5, 1.0, xy.shape[:-1] + (1,))], axis=-1)
    expected = extractor(xy, layout="openpose18")["pose_values"]
    for kwargs in ({"coordinates": "2d"}, {"has_confidence": True}, {"task": "action_recognition_2d"}):
        out = extractor(xyc, layout="openpose18", **kwargs)
        torch.testing.assert_close(out["pose_values"], expected, msg=str(kwargs))
        assert out["task_ids"].item() == 1
    as_3d = extractor(xyc, layout="openpose18")  # default: x, y, z
    assert torch.any(as_3d["pose_values"][..., 2] != 0) and as_3d["task_ids"].item() == 0
    from_setting = UPSFeatureExtractor(coordinates="2d")(xyc, layout="openpose18")
    torch.testing.assert_close(from_setting["pose_values"], expected)


def test_confidence_zero_marks_missing_joints(extractor):
    xyc = np.concatenate([skeleton(channels=2, num_joints=18), np.ones((12, 18, 1))], axis=-1)
    xyc[:, 4, 2] = 0.0
    out = extractor(xyc, layout="openpose18", coordinates="2d")["pose_values"]
    assert torch.all(out[0, 0, :, 4] == 0) and torch.all(out[0, 0, :, 3, :2] != 0)


# ---------------------------------------------------------------- normalisation
def test_normalisation_is_unit_and_position_invariant(extractor):
    metres = skeleton()
    reference = extractor(metres)["pose_values"]
    for name, pose in {"millimetres": metres * 1000, "shifted": metres + np.array([5.0, -2.0, 7.0])}.items():
        torch.testing.assert_close(extractor(pose)["pose_values"], reference, atol=1e-5, rtol=0, msg=name)


def test_normalisation_centre_and_scale(extractor):
    pose = skeleton()
    out = extractor(pose)["pose_values"][0, 0].double().numpy()
    root = list(LAYOUTS["ntu25"].root)
    np.testing.assert_allclose(out[0, root].mean(0), 0.0, atol=1e-6)  # root of the first frame is the origin
    distances = out - out[:, root].mean(1, keepdims=True)
    np.testing.assert_allclose(np.sqrt((distances ** 2).sum(-1).mean()), 1.0, rtol=1e-5)  # unit RMS joint distance
    raw = UPSFeatureExtractor(normalize=False)(pose)["pose_values"][0, 0].double().numpy()
    np.testing.assert_allclose(raw, pose, atol=1e-6)


def test_persons_share_one_centre_so_interactions_keep_relative_positions(extractor):
    first = skeleton(seed=1)
    second = skeleton(seed=2) * 0.3 + np.array([1.5, 0.0, 0.5])  # moves less: ranked second
    out = extractor(np.stack([first, second]))["pose_values"][0].double().numpy()
    root = list(LAYOUTS["ntu25"].root)
    centre = first[0, root].mean(0)
    scale = np.sqrt(((first - first[:, root].mean(1, keepdims=True)) ** 2).sum(-1).mean())
    np.testing.assert_allclose(out, (np.stack([first, second]) - centre) / scale, atol=1e-5)


def test_degenerate_and_all_zero_input_raise(extractor):
    with pytest.raises(ValueError, match="degenerate"):
        extractor(np.ones((5, 25, 3)))
    with pytest.raises(ValueError, match="all zeros"):
        extractor(np.zeros((5, 25, 3)))


# ---------------------------------------------------------------- persons
def test_most_active_persons_are_kept_first_and_absent_persons_are_masked():
    still, active, medium = np.repeat(skeleton(seed=1)[:1], 12, axis=0), skeleton(seed=2), skeleton(seed=3) * 0.5
    extractor = UPSFeatureExtractor(normalize=False)
    out = extractor(np.stack([still, active, medium]))
    np.testing.assert_allclose(out["pose_values"][0, 0].numpy(), active, atol=1e-6)
    np.testing.assert_allclose(out["pose_values"][0, 1].numpy(), medium, atol=1e-6)
    assert out["person_mask"].tolist() == [[1, 1]]
    single = extractor(active)
    assert single["person_mask"].tolist() == [[1, 0]] and torch.all(single["pose_values"][0, 1] == 0)
    with_absent = extractor(np.stack([np.zeros_like(active), active]))
    assert with_absent["person_mask"].tolist() == [[1, 0]]


def test_persons_are_ranked_by_confidence_when_given():
    pose = skeleton(channels=2, num_joints=18)
    low = np.concatenate([pose * 2, np.full((12, 18, 1), 0.3)], -1)
    high = np.concatenate([pose, np.full((12, 18, 1), 0.8)], -1)
    out = UPSFeatureExtractor(normalize=False)(np.stack([low, high]), layout="openpose18", coordinates="2d")
    np.testing.assert_allclose(out["pose_values"][0, 0, ..., :2].numpy(), pose, atol=1e-6)


# ---------------------------------------------------------------- layouts
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_gives_model_shaped_inputs(layout):
    # A layout that is neither a default model layout nor convertible to one (MPII-16, an input layout for lifting
    # to H36M-17) is taken by an extractor built with it among its layouts.
    layouts = list(MODEL_LAYOUTS) if layout in MODEL_LAYOUTS or layout in DEFAULT_LAYOUT_CONVERSIONS else [
        *MODEL_LAYOUTS, layout]
    extractor = UPSFeatureExtractor(layouts=layouts)
    num_joints = LAYOUTS[layout].num_joints
    out = extractor(skeleton(9, num_joints), layout=layout)
    target = extractor.model_layout(layout)
    assert out["pose_values"].shape == (1, 2, 9, LAYOUTS[target].num_joints, 3)
    assert out["layout_ids"].tolist() == [layouts.index(target)]
    assert torch.isfinite(out["pose_values"]).all() and out["pose_values"].abs().sum() > 0


def test_a_layout_outside_the_model_layouts_is_refused_by_name(extractor):
    with pytest.raises(ValueError, match="mpii16"):
        extractor(skeleton(9, 16), layout="mpii16")


def test_layout_is_inferred_from_the_joint_count_or_refused(extractor):
    assert extractor(skeleton(num_joints=18))["layout_ids"].item() == MODEL_LAYOUTS.index("openpose18")
    assert extractor(skeleton(num_joints=26))["layout_ids"].item() == MODEL_LAYOUTS.index("h36m17")  # halpe26
    with pytest.raises(ValueError, match=r"coco17.*h36m17.*layout="):
        extractor(skeleton(num_joints=17))
    with pytest.raises(ValueError, match="No layout has 19 joints"):
        extractor(skeleton(num_joints=19))
    with pytest.raises(ValueError, match="has 25 joints but the input has 17"):
        extractor(skeleton(num_joints=17), layout="ntu")
    assert UPSFeatureExtractor(default_layout="coco")(skeleton(num_joints=17))["layout_ids"].item() == 2


@pytest.mark.parametrize("source", ["coco17", "halpe26"])
def test_conversion_to_h36m_copies_shared_joints_exactly(source):
    layouts = [n for n in MODEL_LAYOUTS if n != source]
    extractor = UPSFeatureExtractor(layouts=layouts, layout_conversions={source: "h36m17"}, normalize=False)
    pose = skeleton(num_joints=LAYOUTS[source].num_joints, seed=7)
    out = extractor(pose, layout=source)["pose_values"][0, 0].double().numpy()
    np.testing.assert_allclose(out, convert_layout(pose, source, "h36m17"), atol=1e-6)
    src_names, dst_names = LAYOUTS[source].joint_names, LAYOUTS["h36m17"].joint_names
    limbs = [f"{side}_{part}" for side in ("left", "right")
             for part in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")]
    for name in limbs:  # the joints COCO, Halpe and H36M all have
        np.testing.assert_allclose(out[:, dst_names.index(name)], pose[:, src_names.index(name)], atol=1e-6,
                                   err_msg=name)


def test_mixed_layouts_pad_joints_to_the_largest(extractor):
    out = extractor([skeleton(num_joints=25), skeleton(num_joints=20, seed=1)], layout=["ntu25", "kinect_v1_20"])
    assert out["pose_values"].shape == (2, 2, 12, 25, 3)
    assert torch.all(out["pose_values"][1, :, :, 20:] == 0)
    assert out["layout_ids"].tolist() == [MODEL_LAYOUTS.index("ntu25"), MODEL_LAYOUTS.index("kinect_v1_20")]


# ---------------------------------------------------------------- frames
def test_uniform_frame_indices():
    assert uniform_frame_indices(10, 5).tolist() == [1, 3, 5, 7, 9]
    up = uniform_frame_indices(3, 7)
    assert up.min() == 0 and up.max() == 2 and np.all(np.diff(up) >= 0)
    assert uniform_frame_indices(8, 8).tolist() == list(range(8))


def test_long_clips_are_resampled_to_max_frames_with_a_warning(caplog):
    extractor = UPSFeatureExtractor(max_frames=10, normalize=False)
    pose = skeleton(40)
    with caplog.at_level(logging.WARNING):
        out = extractor(pose)
    assert out["pose_values"].shape[2] == 10
    assert "40 frames exceed max_frames=10" in caplog.text
    np.testing.assert_allclose(out["pose_values"][0, 0].numpy(), pose[uniform_frame_indices(40, 10)], atol=1e-6)


def test_num_frames_resamples_every_recognition_clip_but_no_lifting_window():
    extractor = UPSFeatureExtractor(num_frames=16, max_frames=32)
    out = extractor([skeleton(5), skeleton(40, seed=1)])
    assert out["pose_values"].shape[2] == 16 and out["attention_mask"].all()
    # A lifting window keeps its frames at their recorded rate (27 frames resampled to 16 or 32 would drop or repeat
    # frames at uneven places); only the max_frames budget still applies to it.
    window = skeleton(27, num_joints=17, channels=2)
    lifted = extractor(window, task="pose_estimation_3d", layout="h36m17")
    assert lifted["pose_values"].shape[2] == 27 and lifted["attention_mask"].all()
    recognised = extractor(window, task="action_recognition_2d", layout="h36m17")
    assert recognised["pose_values"].shape[2] == 16
    assert extractor(skeleton(40, num_joints=17, channels=2), task="pose_estimation_3d",
                     layout="h36m17")["pose_values"].shape[2] == 32


def test_observation_ratio_keeps_the_first_frames(extractor):
    pose = skeleton(10)
    for ratio, kept in ((0.2, 2), (0.25, 3), (1.0, 10), (0.01, 1)):
        out = extractor(pose, observation_ratio=ratio)
        assert out["attention_mask"].sum().item() == kept == math.ceil(ratio * 10)
    raw = UPSFeatureExtractor(normalize=False)(pose, observation_ratio=0.5)["pose_values"][0, 0].numpy()
    np.testing.assert_allclose(raw, pose[:5], atol=1e-6)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="observation_ratio"):
            extractor(pose, observation_ratio=bad)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "pose, message",
    [
        (np.zeros((25, 3)), "expected poses shaped"),
        (np.zeros((1, 1, 1, 4, 25, 3)), "expected poses shaped"),
        (np.zeros((0, 25, 3)), "empty sequence"),
        (np.zeros((5, 25, 5)), "2 \\(x, y\\), 3"),
        ([], "empty list"),
        ("walking", "must be a numpy array"),
    ],
)
def test_bad_input_raises_naming_the_problem(extractor, pose, message):
    with pytest.raises((ValueError, TypeError), match=message):
        extractor(pose)


def test_non_finite_values_are_located(extractor):
    pose = skeleton()
    pose[4, 7, 1] = np.nan
    with pytest.raises(ValueError, match="NaN at person 0, frame 4, joint 7"):
        extractor(pose)
    pose[4, 7, 1] = np.inf
    with pytest.raises(ValueError, match="inf at person 0, frame 4, joint 7"):
        extractor(pose)


def test_confidence_outside_unit_interval_raises(extractor):
    xyc = np.concatenate([skeleton(channels=2, num_joints=18), np.full((12, 18, 1), 1.5)], -1)
    with pytest.raises(ValueError, match=r"confidences must lie in \[0, 1\]"):
        extractor(xyc, layout="openpose18", coordinates="2d")


def test_task_names_and_shorthands():
    assert resolve_task("pose_estimation") == "pose_estimation_3d"
    assert resolve_task("early_action_prediction") == "early_action_prediction_3d"
    assert resolve_task("action_recognition", is_2d=True) == "action_recognition_2d"
    assert resolve_task("action_recognition", is_2d=False) == "action_recognition_3d"
    with pytest.raises(ValueError, match="ambiguous"):
        resolve_task("action_recognition")
    with pytest.raises(ValueError, match="Unknown task"):
        resolve_task("dancing")


# ---------------------------------------------------------------- save / load
def test_save_and_load_round_trip(tmp_path):
    extractor = UPSFeatureExtractor(
        default_layout="openpose", max_persons=3, max_frames=64, num_frames=32, coordinates="2d",
        layout_conversions={"halpe": "coco"}, align_view=True, box_normalize=True,
    )
    extractor.save_pretrained(tmp_path)
    loaded = UPSFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.to_dict() == extractor.to_dict()
    pose = skeleton(20, 18, channels=3) * np.array([1.0, 1.0, 0.0]) + np.array([0.0, 0.0, 0.5])
    assert_same_features(loaded(pose), extractor(pose))
    from transformers import AutoFeatureExtractor

    assert AutoFeatureExtractor.from_pretrained(tmp_path).to_dict() == extractor.to_dict()


# ---------------------------------------------------------------- view alignment
def _random_rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q  # a proper rotation: no mirror


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_facing_rotation_turns_a_body_seen_from_anywhere_to_face_the_camera(name):
    layout = LAYOUTS[name]
    joint = {n: i for i, n in enumerate(layout.joint_names)}
    upright = np.random.default_rng(1).normal(0.0, 0.3, size=(layout.num_joints, 3))
    # Facing the camera: from the left joints to the right ones along +x, hips to shoulders along +y (the torso
    # may lean in depth).
    for side, x in (("left", -1.0), ("right", 1.0)):
        upright[joint[f"{side}_shoulder"]] = [0.2 * x, 0.5, 0.1]
        upright[joint[f"{side}_hip"]] = [0.1 * x, 0.0, 0.0]
    straight = upright.copy()
    straight[[joint["left_shoulder"], joint["right_shoulder"]], 2] = 0.0
    np.testing.assert_allclose(layout.facing_rotation(straight), np.eye(3), atol=1e-12)  # already facing: kept
    rotation = layout.facing_rotation(upright)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)  # a rotation, never a mirror
    # Whatever the camera, the rotated pose is the same; a lean of the torso in depth is part of the pose, kept.
    for seed in range(3):
        seen = upright @ _random_rotation(seed).T
        np.testing.assert_allclose(seen @ layout.facing_rotation(seen).T, upright @ rotation.T, atol=1e-9)
    missing_hip = upright.copy()
    missing_hip[joint["left_hip"]] = 0.0
    assert layout.facing_rotation(missing_hip) is None
    no_width = upright.copy()  # shoulders and hips on one vertical line: no left-to-right direction
    no_width[[joint["left_shoulder"], joint["right_shoulder"]]] = [0.0, 0.5, 0.0]
    no_width[[joint["left_hip"], joint["right_hip"]]] = [0.0, 0.0, 0.0]
    assert layout.facing_rotation(no_width + 1.0) is None


def test_align_view_gives_recognition_the_same_input_from_every_camera():
    aligned = UPSFeatureExtractor(align_view=True)
    clip = np.stack([skeleton(seed=3), skeleton(seed=4) * 0.5 + np.array([1.0, 0.0, 0.5])])  # two persons (M, T, J, 3)
    reference = aligned(clip)["pose_values"]
    for seed in range(3):
        moved = clip @ _random_rotation(seed).T + np.array([0.5, -1.0, 3.0])
        torch.testing.assert_close(aligned(moved)["pose_values"], reference, atol=1e-5, rtol=0)
        assert not torch.allclose(UPSFeatureExtractor()(moved)["pose_values"], reference, atol=1e-2)
    # Early prediction too, from the frames it observes; a first frame without a hip defers to the next one.
    confidence = np.ones(clip.shape[:3] + (1,))
    confidence[0, 0, LAYOUTS["ntu25"].joint_names.index("left_hip")] = 0.0
    partial = {name: aligned(np.concatenate([pose, confidence], -1), task="early_action_prediction_3d",
                             observation_ratio=0.5)["pose_values"]
               for name, pose in (("camera", clip), ("moved", clip @ _random_rotation(7).T))}
    torch.testing.assert_close(partial["moved"], partial["camera"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("option", ["align_view", "box_normalize"])
def test_view_options_leave_lifting_and_2d_input_in_the_camera_frame(extractor, option):
    changed = UPSFeatureExtractor(**{option: True})
    window = skeleton(27, num_joints=17, channels=2)
    for task in ("pose_estimation_3d", "action_recognition_2d"):
        assert_same_features(changed(window, task=task, layout="h36m17"),
                             extractor(window, task=task, layout="h36m17"))


# ---------------------------------------------------------------- box normalisation
def test_box_normalize_stretches_each_axis_of_a_3d_clip_to_the_unit_box():
    boxed = UPSFeatureExtractor(box_normalize=True)
    clip = np.stack([skeleton(seed=3), skeleton(seed=4) * 0.5 + np.array([1.0, 0.0, 0.5])])  # two persons (M, T, J, 3)
    confidence = np.ones(clip.shape[:3] + (1,))
    confidence[0, 2, 5] = 0.0  # a missing joint of person 0
    out = boxed(np.concatenate([clip, confidence], -1))["pose_values"][0]
    person = out[0].reshape(-1, 3)
    torch.testing.assert_close(person.amin(0), -torch.ones(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(person.amax(0), torch.ones(3), atol=1e-6, rtol=0)
    assert torch.all(out[0, 2, 5] == 0)  # still missing
    assert not torch.allclose(out[1], torch.zeros_like(out[1]))  # person 1 goes through the same map
    # Stretching or moving the camera's axes does not change the model input (the RMS normalisation alone does not
    # undo a stretch of one axis).
    stretch, shift = np.array([0.5, 2.0, 1.3]), np.array([0.5, -1.0, 3.0])
    moved = np.concatenate([clip * stretch + shift, confidence], -1)
    torch.testing.assert_close(boxed(moved)["pose_values"][0], out, atol=1e-5, rtol=0)
    plain = UPSFeatureExtractor()
    assert not torch.allclose(plain(moved)["pose_values"][0], plain(np.concatenate([clip, confidence], -1))[
        "pose_values"][0], atol=1e-2)
    # A clip without depth (every joint at one z) keeps that axis centred instead of dividing by zero.
    flat = boxed(clip[0] * np.array([1.0, 1.0, 0.0]) + np.array([0.0, 0.0, 2.0]), task="action_recognition_3d")
    flat_values = flat["pose_values"][0, 0]
    assert torch.isfinite(flat_values).all() and torch.all(flat_values[..., 2] == 0)
    torch.testing.assert_close(flat_values[..., :2].reshape(-1, 2).amax(0), torch.ones(2), atol=1e-6, rtol=0)
