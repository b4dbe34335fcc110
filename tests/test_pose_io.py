"""modeling_ups.pose_io: file readers for the published formats and the restricted unpickler."""

import collections
import io
import json
import pickle

import numpy as np
import pytest

from modeling_ups import pose_io
from modeling_ups.pose_io import UnsafePickleError, load_pose_file, safe_load_npz, safe_load_pickle
from skeleton_files import (NOISY_NTU_IDS, PAYLOAD_GLOBALS, PAYLOADS, kinetics_skeleton, malicious_npz,
                            noisy_ntu_frames, ntu_body, ntu_furniture, ntu_person, payload, write_kinetics_clip,
                            write_ntu_skeleton, write_nw_ucla, write_pyskl_pickle)

# ------------------------------------------------------------------------------------------------------------------
# NTU .skeleton
# ------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def two_body_skeleton(tmp_path):
    """4 frames: frame 0 one body, frame 1 none, frames 2-3 two bodies; body "7" moves, body "9" is static."""
    frames = [[("7", ntu_body(0))], [], [("7", ntu_body(2)), ("9", ntu_body(2, 1.0, moving=False))],
              [("9", ntu_body(3, 1.0, moving=False)), ("7", ntu_body(3))]]
    path = tmp_path / "S001C001P001R001A001.skeleton"
    write_ntu_skeleton(path, frames)
    return path


def test_read_ntu_skeleton_values(two_body_skeleton):
    skeleton = pose_io.read_ntu_skeleton(two_body_skeleton)
    assert skeleton["num_frames"] == 4
    bodies = {b["body_id"]: b for b in skeleton["bodies"]}
    assert sorted(bodies) == ["7", "9"]
    np.testing.assert_array_equal(bodies["7"]["frame_index"], [0, 2, 3])
    np.testing.assert_array_equal(bodies["9"]["frame_index"], [2, 3])
    assert bodies["7"]["joints"].shape == (3, 25, 3) and bodies["7"]["joints"].dtype == np.float32
    np.testing.assert_allclose(bodies["7"]["joints"][2, 5], [0.05, 0.3, 3.005], rtol=1e-6)
    np.testing.assert_allclose(bodies["7"]["color_xy"][0, 3], [1003, 503])
    assert (bodies["9"]["tracking_state"] == 2).all()


def test_ntu_bodies_most_moving_first_and_empty_frames_dropped(two_body_skeleton):
    poses = pose_io.ntu_bodies_to_array(pose_io.read_ntu_skeleton(two_body_skeleton), max_bodies=2)
    assert poses.shape == (2, 3, 25, 3)  # the frame without bodies is dropped
    np.testing.assert_allclose(poses[0, :, 0, 1], [0.0, 0.2, 0.3], atol=1e-6)  # moving body first
    np.testing.assert_allclose(poses[1, 0], 0.0)  # static body absent from the first kept frame
    np.testing.assert_allclose(poses[1, 1:, 0, 0], [1.0, 1.0])
    one = pose_io.ntu_bodies_to_array(pose_io.read_ntu_skeleton(two_body_skeleton), max_bodies=1)
    assert one.shape == (1, 3, 25, 3)


@pytest.fixture
def noisy_skeleton(tmp_path):
    path = tmp_path / "S001C001P001R001A050.skeleton"  # A50: punching/slapping other person, an interaction
    write_ntu_skeleton(path, noisy_ntu_frames())
    return path


def test_ntu_denoising_keeps_both_actors_in_motion_order(noisy_skeleton):
    skeleton = pose_io.read_ntu_skeleton(noisy_skeleton)
    bodies = {b["body_id"]: b for b in skeleton["bodies"]}
    motion = {name: pose_io.body_motion(bodies[i]["joints"]) for name, i in NOISY_NTU_IDS.items()}
    # The fixture is what it claims: the spurious body has the largest variance, the object the second largest,
    # actor A moves more than either fragment of actor B.
    assert motion["clutter"] > motion["furniture"] > motion["actor_a"] > motion["actor_b"] > motion["actor_b_again"]
    assert len(bodies[NOISY_NTU_IDS["clutter"]]["frame_index"]) == 4

    selection = pose_io.denoise_ntu_bodies(skeleton, max_bodies=2)
    ids = NOISY_NTU_IDS
    assert selection["slots"] == [[ids["actor_a"]], [ids["actor_b"], ids["actor_b_again"]]]
    np.testing.assert_array_equal(selection["frame_index"], np.arange(2, 60))  # no-body and object-only frames out
    poses = selection["poses"]
    assert poses.shape == (2, 58, 25, 3)
    np.testing.assert_allclose(poses[0], [ntu_person(t, x=-0.9, walk=0.02) for t in range(2, 60)], atol=1e-6)
    np.testing.assert_allclose(poses[1], [ntu_person(t, x=0.8, wave=0.3) for t in range(2, 60)], atol=1e-6)
    removed = {rule: (entry["bodies"], entry["frames"]) for rule, entry in selection["removed"].items()}
    assert removed == {"length": ([NOISY_NTU_IDS["clutter"]], 4), "spread": ([NOISY_NTU_IDS["furniture"]], 44),
                       "motion": ([], 0), "slots": ([], 0), "untracked_frames": ([], 2), "noise_only_frames": ([], 4)}

    # The user-file path gives the same selection, in millimetres.
    loaded = load_pose_file(noisy_skeleton)
    np.testing.assert_allclose(loaded["poses"], poses * 1000.0, rtol=1e-6)
    assert loaded["meta"]["ntu_denoising"]["length"]["bodies"] == [NOISY_NTU_IDS["clutter"]]


def test_ntu_without_denoising_the_spurious_body_takes_slot_0(noisy_skeleton):
    """Ranking by variance alone (the behaviour the rules fix): the 4-frame body and the object lead, B is lost."""
    selection = pose_io.denoise_ntu_bodies(pose_io.read_ntu_skeleton(noisy_skeleton), 2, pose_io.NTUDenoising(rules=()))
    assert selection["slots"] == [[NOISY_NTU_IDS["clutter"], NOISY_NTU_IDS["furniture"]], [NOISY_NTU_IDS["actor_a"]]]
    assert selection["removed"]["slots"]["bodies"] == [NOISY_NTU_IDS["actor_b"], NOISY_NTU_IDS["actor_b_again"]]


@pytest.mark.parametrize("mode, frames", [("trim", list(range(0, 35))), ("keep", list(range(0, 40))),
                                          ("drop", list(range(0, 15)) + list(range(20, 35)))])
def test_ntu_frames_where_only_removed_bodies_were(tmp_path, mode, frames):
    """Actors in frames 0-14 and (new body IDs) 20-34; an object, removed by the spread rule, in frames 10-39."""
    clip = []
    for t in range(40):
        bodies = [(f"{1 + (t >= 20)}", ntu_person(t, x=-0.8, walk=0.01)), (f"{3 + (t >= 20)}", ntu_person(t, x=0.8))]
        clip.append((bodies if t < 15 or 20 <= t < 35 else []) + ([("9", ntu_furniture(t))] if t >= 10 else []))
    write_ntu_skeleton(tmp_path / "clip.skeleton", clip)
    selection = pose_io.denoise_ntu_bodies(pose_io.read_ntu_skeleton(tmp_path / "clip.skeleton"), 2,
                                           pose_io.NTUDenoising(empty_frames=mode))
    assert selection["slots"] == [["1", "2"], ["3", "4"]] and selection["removed"]["spread"]["bodies"] == ["9"]
    assert selection["frame_index"].tolist() == frames
    assert selection["removed"]["noise_only_frames"]["frames"] == 40 - len(frames)
    empty = ~np.abs(selection["poses"]).reshape(2, len(frames), -1).any(axis=(0, 2))
    assert selection["frame_index"][empty].tolist() == [t for t in frames if 15 <= t < 20 or t >= 35]


def test_ntu_motion_rule_and_full_slots(tmp_path):
    """A small, nearly still object standing upright (not caught by length or spread) competes with two actors."""
    clip = [[("1", ntu_person(t, walk=0.02)), ("2", ntu_person(t, x=1.0, wave=0.3)),
             ("3", ntu_person(t, x=-1.5) * [0.1, 0.1, 1.0])] for t in range(30)]
    write_ntu_skeleton(tmp_path / "clip.skeleton", clip)
    skeleton = pose_io.read_ntu_skeleton(tmp_path / "clip.skeleton")
    assert pose_io.body_motion(skeleton["bodies"][2]["joints"]) < 0.089925
    default = pose_io.denoise_ntu_bodies(skeleton, 2)
    assert default["slots"] == [["1"], ["2"]] and default["removed"]["slots"] == {"bodies": ["3"], "frames": 30}
    with_motion = pose_io.denoise_ntu_bodies(skeleton, 2, pose_io.NTUDenoising(rules=("length", "spread", "motion")))
    assert with_motion["removed"]["motion"] == {"bodies": ["3"], "frames": 30}
    assert with_motion["removed"]["slots"]["bodies"] == []
    three = pose_io.denoise_ntu_bodies(skeleton, 3)
    assert three["slots"] == [["1"], ["2"], ["3"]] and three["poses"].shape == (3, 30, 25, 3)


def test_ntu_rules_never_remove_every_body(tmp_path):
    """Two short, flat bodies: length and spread would remove both, so they remove none (pyskl stops there)."""
    clip = [[("1", ntu_furniture(t)), ("2", ntu_furniture(t, z=5.0) + [0.0, 0.01 * t, 0.0])] for t in range(5)]
    write_ntu_skeleton(tmp_path / "clip.skeleton", clip)
    selection = pose_io.denoise_ntu_bodies(pose_io.read_ntu_skeleton(tmp_path / "clip.skeleton"), 2)
    assert selection["slots"] == [["2"], ["1"]]  # the moving one first
    assert all(not entry["bodies"] for entry in selection["removed"].values())


@pytest.mark.parametrize("kwargs, match", [({"rules": ("length", "size")}, "rules must be distinct names"),
                                           ({"empty_frames": "fill"}, "empty_frames must be one of"),
                                           ({"spread_noise_ratio": 0}, "spread_noise_ratio in"),
                                           ({"motion_range": (2.0, 1.0)}, "motion_range must be"),
                                           ({"motion_range": (1.0,)}, "motion_range must be two numbers")])
def test_ntu_denoising_settings_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pose_io.NTUDenoising(**kwargs)


def test_load_pose_file_skeleton_in_mm(two_body_skeleton):
    out = load_pose_file(two_body_skeleton)
    assert out["layout"] == "ntu25" and out["meta"]["units"] == "mm" and out["scores"] is None
    np.testing.assert_allclose(out["poses"][0, 2, 5], [50.0, 300.0, 3005.0], rtol=1e-5)


def _skeleton_lines(path):
    return path.read_text().splitlines()


@pytest.mark.parametrize("cut", [1, 30, 58])
def test_truncated_skeleton_names_the_line(two_body_skeleton, cut):
    lines = _skeleton_lines(two_body_skeleton)
    two_body_skeleton.write_text("\n".join(lines[:cut]))
    with pytest.raises(ValueError, match=r"truncated.*line \d+"):
        pose_io.read_ntu_skeleton(two_body_skeleton)


def test_skeleton_wrong_value_count_and_trailing_content(two_body_skeleton):
    lines = _skeleton_lines(two_body_skeleton)
    bad = list(lines)
    bad[5] = " ".join(bad[5].split()[:11])  # a joint line with 11 values
    two_body_skeleton.write_text("\n".join(bad))
    with pytest.raises(ValueError, match=r"line 6: expected 12 values"):
        pose_io.read_ntu_skeleton(two_body_skeleton)
    two_body_skeleton.write_text("\n".join(lines + ["garbage"]))
    with pytest.raises(ValueError, match=r"unexpected content after the last"):
        pose_io.read_ntu_skeleton(two_body_skeleton)
    bad = list(lines)
    bad[3] = "25x"
    two_body_skeleton.write_text("\n".join(bad))
    with pytest.raises(ValueError, match=r"line 4: expected the joint count"):
        pose_io.read_ntu_skeleton(two_body_skeleton)


def test_binary_file_is_reported_not_decoded(tmp_path):
    path = tmp_path / "garbled.skeleton"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    with pytest.raises(ValueError, match="garbled.skeleton.*not a UTF-8"):
        load_pose_file(path)


# ------------------------------------------------------------------------------------------------------------------
# JSON formats
# ------------------------------------------------------------------------------------------------------------------


def _openpose_xy(shift):
    return np.stack([np.linspace(0.1, 0.9, 18) + shift, np.linspace(0.2, 0.8, 18)], axis=-1)


def test_kinetics_clip_top_two_persons_per_frame(tmp_path):
    weak, mid, strong = np.full(18, 0.2), np.full(18, 0.5), np.full(18, 0.9)
    frames = [
        [kinetics_skeleton(_openpose_xy(0.0), weak), kinetics_skeleton(_openpose_xy(0.01), strong),
         kinetics_skeleton(_openpose_xy(0.02), mid)],
        [kinetics_skeleton(_openpose_xy(0.03), mid)],
    ]
    path = tmp_path / "clip.json"
    write_kinetics_clip(path, frames, label="dancing", label_index=7)
    clip = pose_io.read_kinetics_skeleton_json(path)
    assert clip["poses"].shape == (3, 2, 18, 2) and clip["label"] == "dancing" and clip["label_index"] == 7
    poses, scores = pose_io.top_persons_per_frame(clip["poses"], clip["scores"], k=2)
    assert poses.shape == (2, 2, 18, 2)
    np.testing.assert_allclose(scores[:, 0, 0], [0.9, 0.5])  # frame 0: strong, then mid
    np.testing.assert_allclose(scores[:, 1, 0], [0.5, 0.0])  # frame 1: one person, then an empty slot
    np.testing.assert_allclose(poses[0, 0, 0], [0.11, 0.2], atol=1e-6)
    out = load_pose_file(path)
    assert out["layout"] == "openpose18" and out["meta"]["units"] == "px"
    np.testing.assert_allclose(out["poses"][0, 0, 0], [0.11 * 340, 0.2 * 256], rtol=1e-5)
    assert out["meta"]["label"] == "dancing"


def _alphapose_entry(image_id, value, score, idx=None, joints=26):
    keypoints = np.tile([value, value + 1, 0.8], joints).tolist()
    entry = {"image_id": image_id, "category_id": 1, "keypoints": keypoints, "score": score}
    if idx is not None:
        entry["idx"] = idx
    return entry


def test_alphapose_grouping_by_track_and_by_score(tmp_path):
    tracked = [_alphapose_entry("10.jpg", 5.0, 2.0, idx=1), _alphapose_entry("2.jpg", 1.0, 2.0, idx=1),
               _alphapose_entry("2.jpg", 9.0, 0.5, idx=[4]), _alphapose_entry("10.jpg", 7.0, 3.0, idx=2)]
    path = tmp_path / "alphapose-results.json"
    path.write_text(json.dumps(tracked))
    out = load_pose_file(path)
    assert out["layout"] == "halpe26" and out["poses"].shape == (2, 2, 26, 2)
    assert out["meta"]["image_ids"] == ["2.jpg", "10.jpg"]  # natural order
    np.testing.assert_allclose(out["poses"][0, :, 0, 0], [1.0, 5.0])  # track 1 has the highest total score
    np.testing.assert_allclose(out["poses"][1, :, 0, 0], [0.0, 7.0])  # track 2, absent in frame "2.jpg"
    untracked = [_alphapose_entry(0, 1.0, 0.4, joints=17), _alphapose_entry(0, 3.0, 0.9, joints=17)]
    path.write_text(json.dumps(untracked))
    out = load_pose_file(path)
    assert out["layout"] == "coco17"
    np.testing.assert_allclose(out["poses"][:, 0, 0, 0], [3.0, 1.0])
    path.write_text(json.dumps([{"image_id": 0, "keypoints": [1.0] * 60, "score": 1}]))
    with pytest.raises(ValueError, match="26\\*3 .* or 17\\*3"):
        load_pose_file(path)


def test_json_error_message_reads_once(tmp_path):
    path = tmp_path / "clip.json"
    path.write_text('{"data": "unterminated')
    with pytest.raises(ValueError) as info:
        load_pose_file(path)
    assert "Unterminated string starting at: line 1 column 10" in str(info.value)
    assert "at at" not in str(info.value)


@pytest.mark.parametrize("text, match", [('{"data": [{"frame_index": 1, ', "invalid JSON"),
                                         ('{"something": 1}', "neither"),
                                         ('{"data": [{"frame_index": 1, "skeleton": [{"pose": [1], "score": [1]}]}]}',
                                          "36 pose values")])
def test_bad_json_is_reported(tmp_path, text, match):
    path = tmp_path / "clip.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        load_pose_file(path)
    assert "clip.json" in str(info.value)


def test_nw_ucla_json(tmp_path):
    poses = np.random.default_rng(0).normal(size=(6, 20, 3))
    write_nw_ucla(tmp_path / "a01_s01_e00_v01.json", poses)
    out = load_pose_file(tmp_path / "a01_s01_e00_v01.json")
    assert out["layout"] == "kinect_v1_20" and out["poses"].shape == (1, 6, 20, 3)
    np.testing.assert_allclose(out["poses"][0], poses * 1000, rtol=1e-5)


# ------------------------------------------------------------------------------------------------------------------
# Arrays and pyskl annotations
# ------------------------------------------------------------------------------------------------------------------


def test_npy_and_npz_layout_inference(tmp_path):
    np.save(tmp_path / "ntu.npy", np.ones((10, 25, 3)))
    out = load_pose_file(tmp_path / "ntu.npy")
    assert out["poses"].shape == (1, 10, 25, 3) and out["layout"] == "ntu25"
    np.save(tmp_path / "seventeen.npy", np.ones((2, 10, 17, 2)))
    out = load_pose_file(tmp_path / "seventeen.npy")
    assert out["layout"] is None and set(out["meta"]["layout_candidates"]) == {"coco17", "h36m17"}
    assert load_pose_file(tmp_path / "seventeen.npy", layout="coco")["layout"] == "coco17"
    with pytest.raises(ValueError, match="ntu.npy: layout .h36m17. has 17 joints, the file has 25"):
        load_pose_file(tmp_path / "ntu.npy", layout="h36m17")
    np.savez(tmp_path / "poses.npz", keypoints=np.zeros((4, 18, 2)), scores=np.ones((4, 18)))
    out = load_pose_file(tmp_path / "poses.npz")
    assert out["layout"] == "openpose18" and out["scores"].shape == (1, 4, 18)
    np.save(tmp_path / "bad.npy", np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"bad.npy.*\(T, J, C\)"):
        load_pose_file(tmp_path / "bad.npy")
    nan = np.ones((5, 25, 3))
    nan[2, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(ValueError, match="NaN"):
        load_pose_file(tmp_path / "nan.npy")
    (tmp_path / "pose.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_pose_file(tmp_path / "pose.txt")


def test_pyskl_annotation_file(tmp_path):
    rng = np.random.default_rng(0)
    anns = [{"frame_dir": f"S001C001P001R001A00{i + 1}", "label": i, "total_frames": 12,
             "keypoint": rng.normal(size=(2, 12, 25, 3)).astype(np.float16)} for i in range(2)]
    write_pyskl_pickle(tmp_path / "ntu60_3danno.pkl", anns, {"xsub_train": [anns[0]["frame_dir"]]})
    with pytest.raises(ValueError, match="holds 2 annotations"):
        load_pose_file(tmp_path / "ntu60_3danno.pkl")
    out = load_pose_file(tmp_path / "ntu60_3danno.pkl", sample="S001C001P001R001A002")
    assert out["layout"] == "ntu25" and out["meta"]["label"] == 1 and out["meta"]["units"] == "mm"
    np.testing.assert_allclose(out["poses"], anns[1]["keypoint"].astype(np.float32) * 1000, rtol=1e-6)
    for index in (1, "1", np.int64(-1), "-1"):  # an index, also as the command line passes it
        assert load_pose_file(tmp_path / "ntu60_3danno.pkl", sample=index)["meta"]["frame_dir"] == anns[1]["frame_dir"]
    assert load_pose_file(tmp_path / "ntu60_3danno.pkl", sample=0)["meta"]["frame_dir"] == anns[0]["frame_dir"]
    with pytest.raises(ValueError, match="sample 2 out of range for 2 annotations"):
        load_pose_file(tmp_path / "ntu60_3danno.pkl", sample="2")
    with pytest.raises(ValueError, match="no annotation with frame_dir 'S009'"):
        load_pose_file(tmp_path / "ntu60_3danno.pkl", sample="S009")
    np.save(tmp_path / "clip.npy", np.ones((4, 25, 3)))
    with pytest.raises(ValueError, match="sample=3 selects an annotation of a pyskl .pkl file"):
        load_pose_file(tmp_path / "clip.npy", sample=3)
    hrnet = {"frame_dir": "clip", "label": 3, "img_shape": (480, 640), "keypoint": rng.normal(size=(1, 5, 17, 2)),
             "keypoint_score": rng.uniform(size=(1, 5, 17))}
    with open(tmp_path / "one.pkl", "wb") as f:
        pickle.dump(hrnet, f)
    out = load_pose_file(tmp_path / "one.pkl")
    assert out["layout"] == "coco17" and out["meta"]["units"] == "px" and out["meta"]["image_size"] == [640, 480]
    assert out["scores"].shape == (1, 5, 17)


# ------------------------------------------------------------------------------------------------------------------
# Restricted unpickling
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_safe_load_pickle_round_trips_numpy_and_containers(protocol):
    value = {
        "keypoint": np.arange(24, dtype=np.float16).reshape(1, 2, 4, 3),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "objects": np.array([np.zeros(2), "text"], dtype=object),
        "scalar": np.float32(1.5),
        "dtype": np.dtype("int16"),
        "nested": [1, 2.5, "s", b"b", None, True, (1, 2), {"k": frozenset({1})}],
        "ordered": collections.OrderedDict(a=1),
        "default": collections.defaultdict(list, {"x": [1]}),
    }
    loaded = safe_load_pickle(io.BytesIO(pickle.dumps(value, protocol=protocol)))
    np.testing.assert_array_equal(loaded["keypoint"], value["keypoint"])
    assert loaded["keypoint"].dtype == np.float16
    np.testing.assert_array_equal(loaded["fortran"], value["fortran"])
    np.testing.assert_array_equal(loaded["objects"][0], np.zeros(2))
    assert loaded["scalar"] == np.float32(1.5) and loaded["dtype"] == np.dtype("int16")
    assert loaded["nested"] == value["nested"]
    assert loaded["ordered"] == value["ordered"] and loaded["default"]["x"] == [1]


@pytest.mark.parametrize("kind", PAYLOADS)
def test_safe_load_pickle_refuses_code(tmp_path, kind):
    marker = tmp_path / "pwned"
    data = pickle.dumps({"annotations": [payload(kind, marker)]}, protocol=2)
    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match=PAYLOAD_GLOBALS[kind].replace(".", r"\.")) as info:
        safe_load_pickle(path)
    assert isinstance(info.value, pickle.UnpicklingError) and isinstance(info.value, ValueError)
    assert "evil.pkl" in str(info.value)
    with pytest.raises(UnsafePickleError):
        load_pose_file(path)
    assert not marker.exists()
    # The payload is real: the standard unpickler would have created the marker.
    if kind != "subprocess.Popen":  # Popen runs asynchronously; the others complete inside loads()
        pickle.loads(data)
        assert marker.exists()


@pytest.mark.parametrize("kind", PAYLOADS)
def test_safe_load_npz_refuses_object_member_code(tmp_path, kind):
    marker = tmp_path / "pwned"
    malicious_npz(tmp_path / "evil.npz", kind, marker)
    with pytest.raises(UnsafePickleError, match=PAYLOAD_GLOBALS[kind].replace(".", r"\.")):
        safe_load_npz(tmp_path / "evil.npz")
    with pytest.raises(UnsafePickleError):
        load_pose_file(tmp_path / "evil.npz")
    assert not marker.exists()


def test_safe_load_npz_reads_plain_and_object_members(tmp_path):
    np.savez_compressed(tmp_path / "data.npz", positions_3d={"S1": {"Walking 1": np.ones((3, 32, 3))}},
                        plain=np.arange(5), big_endian=np.arange(4, dtype=">f8"))
    members = safe_load_npz(tmp_path / "data.npz")
    assert members["positions_3d"].item()["S1"]["Walking 1"].shape == (3, 32, 3)
    np.testing.assert_array_equal(members["plain"], np.arange(5))
    np.testing.assert_array_equal(members["big_endian"], np.arange(4))
    (tmp_path / "broken.npz").write_bytes((tmp_path / "data.npz").read_bytes()[:100])
    with pytest.raises(ValueError, match="broken.npz"):
        safe_load_npz(tmp_path / "broken.npz")


def test_other_formats_are_not_called_garbled_pickles(tmp_path):
    np.savez(tmp_path / "poses.npz", poses=np.zeros((2, 25, 3)))
    np.save(tmp_path / "poses.npy", np.zeros((2, 25, 3)))
    for name, kind in (("poses.npz", "a zip archive"), ("poses.npy", "a .npy array")):
        with pytest.raises(ValueError, match=f"{name}: not a pickle but {kind}") as info:
            safe_load_pickle(tmp_path / name)
        assert "persistent" not in str(info.value)
    with open(tmp_path / "poses.npz", "rb") as f:  # file objects too (peeked or seekable), without consuming them
        for fileobj in (f, io.BytesIO(f.read())):
            fileobj.seek(0)
            with pytest.raises(ValueError, match="not a pickle but a zip archive"):
                safe_load_pickle(fileobj)
            assert fileobj.tell() == 0


def test_truncated_pickle_is_a_value_error(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps({"keypoint": np.ones((1, 2, 25, 3))}, protocol=2)[:-20])
    with pytest.raises(ValueError, match="cut.pkl: not a readable pickle"):
        safe_load_pickle(path)


def test_real_videopose3d_archive_loads_safely(shared_data):
    path = shared_data / "humaneva" / "data_3d_humaneva15.npz"
    if not path.is_file():
        pytest.skip("HumanEva archive absent")
    positions = safe_load_npz(path)["positions_3d"].item()
    reference = np.load(path, allow_pickle=True)["positions_3d"].item()
    assert positions.keys() == reference.keys()
    np.testing.assert_array_equal(positions["Train/S1"]["Walking 1 chunk0"], reference["Train/S1"]["Walking 1 chunk0"])
