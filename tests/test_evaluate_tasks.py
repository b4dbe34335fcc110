"""The pose-estimation evaluation compares each prediction with the frames the model predicts: K target frames per
window from the window's first target frame, the recording's last frame repeated beyond its end (as the windows
repeat it)."""

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from modeling_ups.skeletons import get_layout
from modeling_ups.training.evaluate_tasks import _pose_targets


def test_pose_targets_take_k_frames_from_the_start_and_repeat_the_last():
    layout = get_layout("humaneva15")
    frames, joints = 6, layout.num_joints
    poses = np.random.default_rng(0).normal(size=(frames, 1, joints, 3)).astype(np.float32)  # stored (T, M, J, C)
    row = {"poses": poses}
    targets = _pose_targets([row, row], [1, 4], "humaneva15", num_frames=3)
    assert targets.shape == (2, 3, joints, 3)
    for sample, picked in enumerate(([1, 2, 3], [4, 5, 5])):
        expected = poses[picked, 0]
        np.testing.assert_allclose(targets[sample], expected - layout.root_position(expected), rtol=1e-6)
    single = _pose_targets([row], [2], "humaneva15")
    np.testing.assert_allclose(single, targets[:1, 1:2])  # K = 1 is the start frame


def test_recordings_shorter_than_the_predicted_frames_are_windowed():
    """A recording shorter than the K frames a model predicts per clip cannot be given whole: it is cut into an
    edge-padded window like a long one; a K = 1 model takes it whole, as before."""
    from modeling_ups.training.data import WindowIndex, cut_into_windows

    def processor(k):
        return SimpleNamespace(pose_estimation_target_frames=k,
                               target_frame_indices=lambda n: np.arange((n - 1) // 2, (n - 1) // 2 + k))

    assert [cut_into_windows(n, 27, processor(5)) for n in (2, 5, 27, 28)] == [True, False, False, True]
    assert [cut_into_windows(n, 27, processor(1)) for n in (1, 2, 27, 28)] == [False, False, False, True]
    assert not cut_into_windows(2, None, processor(5))
    # Evaluation with a window predicts the windows around every stride-th frame of every recording, however short
    # (edge-padded); without one, each clip whole.
    index = WindowIndex.build(processor(5), [2, 9], stride=5, window=27)
    assert index.rows.tolist() == [0, 1, 1] and index.centres.tolist() == [0, 0, 5]
    whole = WindowIndex.build(processor(5), [7, 9], stride=5, window=None)
    assert whole.rows.tolist() == [0, 1] and whole.centres.tolist() == [3, 4]


class _ScriptedLifter:
    """Stands in for a model: `generate` returns the tokens of a fixed pose per sample, one pose for the inputs as
    given and another for mirrored ones (told apart by the order of the calls), so the evaluation's arithmetic can be
    checked exactly."""

    device = "cpu"

    def __init__(self, tokenizer, poses_by_call):
        self.tokenizer, self.poses_by_call, self.calls = tokenizer, poses_by_call, 0

    def generate(self, pose_values=None, encoder_outputs=None, **_):
        pose = self.poses_by_call[self.calls % len(self.poses_by_call)]
        self.calls += 1
        ids = [self.tokenizer.bos_token_id] + self.tokenizer.encode_pose(pose)
        rows = pose_values.shape[0] if encoder_outputs is None else encoder_outputs.rows
        return torch.tensor([ids] * rows)

    def get_encoder(self):
        return lambda pose_values, **_: SimpleNamespace(rows=pose_values.shape[0])

    def generate_with_step_logits(self, encoder_outputs, **_):
        """The generated tokens, and step logits peaked at each of them and as likely at the bin after the first x
        token: the expectation moves that coordinate by half a bin."""
        sequences = self.generate(encoder_outputs=encoder_outputs)
        scores = torch.zeros(*sequences[:, 1:].shape, self.tokenizer.vocab_size)
        scores.scatter_(2, sequences[:, 1:, None], 60.0)
        scores[:, 0].scatter_(1, sequences[:, 1:2] + 1, 60.0)
        return sequences, scores


@pytest.fixture(scope="module")
def synthetic_lifting():
    """(processor, data, frames, layout, truth): the synthetic processor and lifting data, each test recording's frame
    count, their layout, and the ground truth of every frame of every test recording in order (what stride 1
    scores)."""
    from datasets_scripts.synthetic import build_synthetic_datasets
    from modeling_ups import UPSProcessor

    processor = UPSProcessor.from_pretrained(Path(__file__).resolve().parents[1] / "processors" / "synthetic")
    data = build_synthetic_datasets(num_train=3, num_test=3, seed=0)["pose_estimation_3d"]
    test = data["test"]
    frames = [int(np.asarray(p).shape[0]) for p in test["poses"]]
    layout = get_layout(test[0]["layout"])
    truth = np.concatenate([_pose_targets([test.with_format("numpy")[r]], [c], layout.name)
                            for r, n in enumerate(frames) for c in range(n)])
    return processor, data, frames, layout, truth


def test_every_frame_protocol_and_test_time_flip_average_the_mirrored_prediction(synthetic_lifting):
    from modeling_ups.evaluation.metrics import mpjpe, p_mpjpe
    from modeling_ups.training.evaluate_tasks import evaluate_pose_estimation

    processor, data, frames, layout, truth = synthetic_lifting
    test = data["test"]
    rng = np.random.default_rng(0)
    given, mirrored = (rng.normal(scale=300.0, size=(1, layout.num_joints, 3)) for _ in range(2))
    tokenizer = processor.tokenizer
    quantised = [tokenizer.decode_pose(tokenizer.encode_pose(pose), num_joints=layout.num_joints)
                 for pose in (given, mirrored)]

    plain = evaluate_pose_estimation(_ScriptedLifter(tokenizer, [given]), processor, data, window=5, stride=1)
    assert plain["num_samples"] == sum(frames)  # every frame of every test recording
    longer_than_every_recording = max(frames) + 1 + max(frames) % 2  # odd, and longer than every recording
    assert evaluate_pose_estimation(_ScriptedLifter(tokenizer, [given]), processor, data,
                                    window=longer_than_every_recording, stride=1)["num_samples"] == sum(frames)
    every_third = evaluate_pose_estimation(_ScriptedLifter(tokenizer, [given]), processor, data, window=5, stride=3)
    assert every_third["num_samples"] == sum(-(-n // 3) for n in frames)

    lifter = _ScriptedLifter(tokenizer, [given, mirrored])
    flipped = evaluate_pose_estimation(lifter, processor, data, window=5, stride=1, test_time_flip=True)
    averaged = (quantised[0] + layout.mirror(quantised[1])) / 2
    assert flipped["mpjpe"] == pytest.approx(float(mpjpe(np.broadcast_to(averaged, truth.shape), truth)), rel=1e-5)
    assert plain["mpjpe"] == pytest.approx(float(mpjpe(np.broadcast_to(quantised[0], truth.shape), truth)), rel=1e-5)
    # VideoPose3D's summary: the mean over (subject, action) groups of the per-frame means within each group.
    rows = test.with_format("numpy")
    groups = [f"{rows[r]['subject']} {test.features['label'].int2str(int(rows[r]['label']))}"
              for r, n in enumerate(frames) for _ in range(n)]
    errors = mpjpe(np.broadcast_to(averaged, truth.shape), truth, reduction="sample")
    group_means = [errors[[g == name for g in groups]].mean() for name in sorted(set(groups))]
    assert len(group_means) > 1
    assert flipped["action_average_mpjpe"] == pytest.approx(float(np.mean(group_means)), rel=1e-5)
    aligned = p_mpjpe(np.broadcast_to(averaged, truth.shape), truth, reduction="sample")
    assert flipped["p_mpjpe"] == pytest.approx(float(aligned.mean()), rel=1e-5)
    assert lifter.calls == 2 * -(-sum(frames) // 64)  # two views of every batch
    with pytest.raises(ValueError, match="stride must be at least 1"):
        evaluate_pose_estimation(lifter, processor, data, window=5, stride=0)


def test_expectation_decoding_scores_the_mean_of_each_coordinates_bins(synthetic_lifting):
    from modeling_ups.evaluation.metrics import mpjpe
    from modeling_ups.training.evaluate_tasks import evaluate_pose_estimation

    processor, data, _, layout, truth = synthetic_lifting
    pose = np.random.default_rng(1).normal(scale=300.0, size=(1, layout.num_joints, 3))
    tokenizer = processor.tokenizer
    expected = tokenizer.decode_pose(tokenizer.encode_pose(pose), num_joints=layout.num_joints)
    expected[0, 0, 0] += tokenizer.bin_width[0] / 2
    result = evaluate_pose_estimation(_ScriptedLifter(tokenizer, [pose]), processor, data, window=5, stride=1,
                                      pose_decoding="expectation")
    assert result["mpjpe"] == pytest.approx(float(mpjpe(np.broadcast_to(expected, truth.shape), truth)), rel=1e-5)
    bins = evaluate_pose_estimation(_ScriptedLifter(tokenizer, [pose]), processor, data, window=5, stride=1)
    assert bins["mpjpe"] != pytest.approx(result["mpjpe"], rel=1e-5)
    with pytest.raises(ValueError, match="pose_decoding must be one of"):
        evaluate_pose_estimation(_ScriptedLifter(tokenizer, [pose]), processor, data, pose_decoding="mode")


def test_several_target_frames_per_window_score_every_frame_once():
    """With K = 3 frames per window and stride 3, the windows' frames tile every recording: each frame is scored
    once, and the edge-padded frames past a recording's end are not scored."""
    from datasets_scripts.synthetic import build_synthetic_datasets
    from modeling_ups import UPSProcessor
    from modeling_ups.evaluation.metrics import mpjpe
    from modeling_ups.training.evaluate_tasks import evaluate_pose_estimation

    synthetic = UPSProcessor.from_pretrained(Path(__file__).resolve().parents[1] / "processors" / "synthetic")
    processor = UPSProcessor(synthetic.feature_extractor, synthetic.tokenizer, pose_estimation_target_frames=3)
    data = build_synthetic_datasets(num_train=3, num_test=3, seed=0)["pose_estimation_3d"]
    test = data["test"]
    frames = [int(np.asarray(p).shape[0]) for p in test["poses"]]
    assert any(n % 3 for n in frames)  # some recording ends inside a window
    layout = get_layout(test[0]["layout"])
    pose = np.random.default_rng(1).normal(scale=300.0, size=(3, layout.num_joints, 3))
    result = evaluate_pose_estimation(_ScriptedLifter(processor.tokenizer, [pose]), processor, data, window=5,
                                      stride=3)
    assert result["num_samples"] == sum(frames)
    quantised = processor.tokenizer.decode_pose(processor.tokenizer.encode_pose(pose), num_joints=layout.num_joints,
                                                num_frames=3)
    rows = test.with_format("numpy")
    predicted = np.concatenate([quantised[: min(3, n - start)] for n in frames for start in range(0, n, 3)])
    truth = np.concatenate([_pose_targets([rows[r]], [t], layout.name)[0] for r, n in enumerate(frames)
                            for t in range(n)])
    assert result["mpjpe"] == pytest.approx(float(mpjpe(predicted, truth)), rel=1e-5)


class _ScriptedClassifier:
    """A stand-in model whose label scores for each evaluation pass (one per test clip) are given, recording the
    clips it was shown."""

    def __init__(self, logits_per_pass):
        self.logits_per_pass, self.inputs = logits_per_pass, []
        self.config, self.device = SimpleNamespace(label_token_offset=0), torch.device("cpu")
        self.training = False

    def train(self, mode: bool = True):  # evaluate_all_tasks sets eval mode and restores the caller's
        self.training = mode
        return self

    def eval(self):
        return self.train(False)

    def label_scores(self, pose_values, **_):
        self.inputs.append(pose_values)
        return torch.as_tensor(self.logits_per_pass[len(self.inputs) - 1])


def _wrong_then_right_scores(labels, token_ids, width):
    """Two passes' label scores: the first ranks a wrong class first (3 against the true class's 1), the second the
    true class far ahead (5); only their average probabilities are right for every sample."""
    n = len(labels)
    wrong_first, right_first = np.zeros((n, width), np.float32), np.zeros((n, width), np.float32)
    wrong_first[np.arange(n), token_ids[(labels + 1) % len(token_ids)]] = 3.0
    wrong_first[np.arange(n), token_ids[labels]] = 1.0
    right_first[np.arange(n), token_ids[labels]] = 5.0
    return wrong_first, right_first


def _recognition_case():
    """The synthetic processor (8 frames), a small 3D recognition dataset, its test labels, and the two passes of
    :func:`_wrong_then_right_scores` for its test samples."""
    from datasets_scripts.synthetic import build_synthetic_datasets
    from modeling_ups import UPSProcessor
    from modeling_ups.training.evaluate_tasks import dataset_label_token_ids

    processor = UPSProcessor.from_pretrained(Path(__file__).resolve().parents[1] / "processors" / "synthetic")
    processor.feature_extractor.num_frames = 8
    data = build_synthetic_datasets(num_train=4, num_test=4, seed=0)["action_recognition_3d"]
    labels = np.asarray(data["test"]["label"])
    token_ids = dataset_label_token_ids(data["test"], processor.tokenizer)
    return processor, data, labels, _wrong_then_right_scores(labels, token_ids, int(token_ids.max()) + 1)


def test_several_test_clips_average_the_class_probabilities():
    from modeling_ups.training.evaluate_tasks import evaluate_classification

    # The first clip alone is wrong everywhere; averaged with the second, right everywhere.
    processor, data, labels, (first, second) = _recognition_case()
    n = len(labels)
    one = _ScriptedClassifier([first])
    assert evaluate_classification(one, processor, "action_recognition_3d", data, batch_size=n)["top1"] == 0.0
    two = _ScriptedClassifier([first, second])
    assert evaluate_classification(two, processor, "action_recognition_3d", data, batch_size=n,
                                   num_clips=2)["top1"] == 1.0
    # The first clip takes each segment's centre (what one clip gives), the second other frames.
    torch.testing.assert_close(two.inputs[0], one.inputs[0])
    assert not torch.equal(two.inputs[1], two.inputs[0])
    with pytest.raises(ValueError, match="num_clips must be at least 1"):
        evaluate_classification(one, processor, "action_recognition_3d", data, num_clips=0)


def test_several_test_views_average_the_class_probabilities_of_each_clip_turned_by_each_view():
    from datasets_scripts.synthetic import build_synthetic_datasets
    from modeling_ups import UPSProcessor
    from modeling_ups.training.data import view_rotation
    from modeling_ups.training.evaluate_tasks import (check_test_views, dataset_label_token_ids, evaluate_all_tasks,
                                                      evaluate_classification, view_turn_grid)

    assert view_turn_grid([-10, 0, 10], [5]) == [(-10.0, 5.0), (0.0, 5.0), (10.0, 5.0)]
    assert view_turn_grid([0, 20], [0, -5]) == [(0.0, 0.0), (0.0, -5.0), (20.0, 0.0), (20.0, -5.0)]
    with pytest.raises(ValueError, match="at least one yaw and one pitch"):
        view_turn_grid([], [0])
    processor = UPSProcessor.from_pretrained(Path(__file__).resolve().parents[1] / "processors" / "synthetic")
    datasets = build_synthetic_datasets(num_train=4, num_test=4, seed=0)
    data = datasets["action_recognition_3d"]
    labels = np.asarray(data["test"]["label"])
    token_ids = dataset_label_token_ids(data["test"], processor.tokenizer)
    n, width = len(labels), int(token_ids.max()) + 1
    # The clip as recorded ranks a wrong class first; the turned clip ranks the true class far ahead: only their
    # average is right everywhere (as with several clips).
    as_recorded, turned = _wrong_then_right_scores(labels, token_ids, width)
    one = _ScriptedClassifier([as_recorded])
    assert evaluate_classification(one, processor, "action_recognition_3d", data, batch_size=n)["top1"] == 0.0
    two = _ScriptedClassifier([as_recorded, turned])
    views = [(0.0, 0.0), (30.0, 10.0)]
    assert evaluate_classification(two, processor, "action_recognition_3d", data, batch_size=n,
                                   test_views=views)["top1"] == 1.0
    torch.testing.assert_close(two.inputs[0], one.inputs[0])  # the (0, 0) view is the clip as recorded
    assert not torch.equal(two.inputs[1], two.inputs[0])
    # The turned pass is the recorded clip through the view's rotation (the synthetic processor only centres and
    # scales clips, which commute with a rotation).
    rotation = torch.as_tensor(view_rotation(30.0, 10.0))

    def assert_turned(recorded_pass, turned_pass):
        expected = torch.einsum("...c,dc->...d", recorded_pass[..., :3], rotation)
        torch.testing.assert_close(turned_pass[..., :3], expected, rtol=1e-4, atol=1e-4)

    assert_turned(two.inputs[0], two.inputs[1])
    # Only 3D clips turn: 2D recognition refuses turned views, and a run of 2D tasks alone is refused before it runs.
    with pytest.raises(ValueError, match="has none to turn"):
        evaluate_classification(two, processor, "action_recognition_2d", datasets["action_recognition_2d"],
                                test_views=views)
    with pytest.raises(ValueError, match="none of the tasks"):
        check_test_views(views, ["action_recognition_2d", "pose_estimation_3d"])
    check_test_views(views, ["action_recognition_2d", "early_action_prediction_3d"])
    check_test_views([(0.0, 0.0)], ["action_recognition_2d"])
    with pytest.raises(ValueError, match="at least one"):
        evaluate_classification(one, processor, "action_recognition_3d", data, test_views=[])
    # In a run of several tasks the 2D one keeps its clips as recorded while the 3D one averages its views.
    mixed = _ScriptedClassifier([as_recorded, turned, as_recorded])
    results = evaluate_all_tasks(mixed, processor, datasets, ["action_recognition_3d", "action_recognition_2d"],
                                 batch_size=n, test_views=views)
    assert results["action_recognition_3d"]["top1"] == 1.0 and len(mixed.inputs) == 3
    # Early prediction turns each observed part as recognition turns whole clips: every ratio averages its views.
    early_data = datasets["early_action_prediction_3d"]
    early = _ScriptedClassifier(list(_wrong_then_right_scores(np.asarray(early_data["test"]["label"]), token_ids,
                                                              width)) * 2)
    result = evaluate_classification(early, processor, "early_action_prediction_3d", early_data, batch_size=n,
                                     observation_ratios=[0.2, 1.0], test_views=views)
    assert result["top1_at_ratio"] == {"0.2": 1.0, "1.0": 1.0} and result["test_views"] == [[0.0, 0.0], [30.0, 10.0]]
    for recorded_pass, turned_pass in (early.inputs[0:2], early.inputs[2:4]):
        assert_turned(recorded_pass, turned_pass)


def test_score_fusion_adds_each_members_weighted_probabilities_collated_by_its_own_processor():
    from datasets_scripts.synthetic import build_synthetic_datasets
    from modeling_ups import UPSProcessor
    from modeling_ups.training.evaluate_tasks import dataset_label_token_ids, evaluate_all_tasks, evaluate_classification

    synthetic = UPSProcessor.from_pretrained(Path(__file__).resolve().parents[1] / "processors" / "synthetic")
    joint_processor, bone_processor = copy.deepcopy(synthetic), copy.deepcopy(synthetic)
    joint_processor.feature_extractor.num_frames, bone_processor.feature_extractor.num_frames = 8, 12
    data = build_synthetic_datasets(num_train=4, num_test=4, seed=0)["action_recognition_3d"]
    labels = np.asarray(data["test"]["label"])
    token_ids = dataset_label_token_ids(data["test"], synthetic.tokenizer)
    n, width = len(labels), int(token_ids.max()) + 1
    # The joint model prefers a wrong class (logit 2 against 1 for the truth); the bone model the true one, less
    # sharply (1 against 0 for every other class). With the dataset's 12 classes, equal weights: wrong wins (0.37 +
    # 0.07 against 0.14 + 0.20 for the truth); the bone model at weight 3: the truth wins (0.14 + 0.59 against 0.37
    # + 0.22).
    wrong = token_ids[(labels + 1) % len(token_ids)]
    joint, bone = np.zeros((n, width), np.float32), np.zeros((n, width), np.float32)
    joint[np.arange(n), wrong], joint[np.arange(n), token_ids[labels]] = 2.0, 1.0
    bone[np.arange(n), token_ids[labels]] = 1.0
    evaluate = lambda weight: evaluate_classification(  # noqa: E731
        _ScriptedClassifier([joint]), joint_processor, "action_recognition_3d", data, batch_size=n,
        fused=[(_ScriptedClassifier([bone]), bone_processor, weight)])["top1"]
    assert evaluate(1.0) == 0.0 and evaluate(3.0) == 1.0
    member = _ScriptedClassifier([bone])
    evaluate_classification(_ScriptedClassifier([joint]), joint_processor, "action_recognition_3d", data,
                            batch_size=n, fused=[(member, bone_processor, 1.0)])
    assert member.inputs[0].shape[2] == 12  # (N, persons, frames, ...): the member's own processor's frames
    with pytest.raises(ValueError, match="score fusion .* is for the classification tasks"):
        evaluate_all_tasks(_ScriptedClassifier([joint]), joint_processor, {"pose_estimation_3d": data},
                           ["pose_estimation_3d"], fused=[(member, bone_processor, 1.0)])


def test_saved_class_scores_fuse_as_their_models_do_and_refuse_other_test_samples(tmp_path):
    """Scores saved by one evaluation (``save_scores_to``) and fused from disk (``saved_scores``, or
    ``fuse_saved_scores`` without any model) give the figures of fusing the models themselves; the file is plain
    arrays; scores of other samples, classes or ratios are refused, naming the difference."""
    from modeling_ups.training.evaluate_tasks import (ClassScores, evaluate_classification, fuse_class_scores,
                                                      fuse_saved_scores)

    processor, data, labels, (wrong_first, right_first) = _recognition_case()
    n = len(labels)

    def evaluate(logits, **kwargs):
        return evaluate_classification(_ScriptedClassifier([logits]), processor, "action_recognition_3d", data,
                                       batch_size=n, **kwargs)

    saved = evaluate(right_first, save_scores_to=tmp_path / "right")
    assert saved["top1"] == 1.0 and saved["saved_scores"] == str(tmp_path / "right" / "action_recognition_3d.npz")
    with np.load(saved["saved_scores"], allow_pickle=False) as f:  # no pickled objects: safe to load from anyone
        assert f["probabilities"].shape == (1, n, len(f["class_names"])) and f["class_names"].dtype.kind == "U"
        assert list(f["class_names"]) == data["test"].features["label"].names
        np.testing.assert_array_equal(f["labels"], labels)
        np.testing.assert_allclose(f["probabilities"].sum(-1), 1.0, rtol=1e-5)
    # The wrong-first model fused with the right-first one: by models and by saved scores, the same figures.
    by_models = evaluate_classification(_ScriptedClassifier([wrong_first]), processor, "action_recognition_3d", data,
                                        batch_size=n, fused=[(_ScriptedClassifier([right_first]), processor, 2.0)])
    assert by_models["top1"] == 1.0 and evaluate(wrong_first)["top1"] == 0.0  # the fusion decides every sample
    by_scores = evaluate(wrong_first, saved_scores=[(tmp_path / "right", 2.0)], save_scores_to=tmp_path / "fused")
    assert by_scores.pop("saved_scores") and by_scores == by_models
    evaluate(wrong_first, save_scores_to=tmp_path / "wrong")
    alone = fuse_saved_scores([(tmp_path / "wrong", 1.0), (tmp_path / "right", 2.0)], ["action_recognition_3d"])
    assert alone["action_recognition_3d"] == by_models
    fused = ClassScores.load(tmp_path / "fused", "action_recognition_3d")
    expected = (ClassScores.load(tmp_path / "wrong", "action_recognition_3d").probabilities
                + 2.0 * ClassScores.load(tmp_path / "right", "action_recognition_3d").probabilities) / 3.0
    np.testing.assert_allclose(fused.probabilities, expected, rtol=1e-6)  # a fusion saves the weighted mean

    right = ClassScores.load(tmp_path / "right", "action_recognition_3d")
    others = {
        "2 test samples against 4": dict(labels=right.labels[:2], probabilities=right.probabilities[:, :2]),
        "other class names": dict(class_names=right.class_names[::-1]),
        "other labels": dict(labels=np.roll(right.labels, 1)),
        "observation ratios": dict(observation_ratios=[0.5]),
    }
    for problem, change in others.items():
        other = ClassScores(**{**right.__dict__, **change})
        with pytest.raises(ValueError, match=f"cannot fuse other with the other action_recognition_3d scores: "
                                             f".*{problem}"):
            fuse_class_scores([(right, 1.0), (other, 1.0)], names=["right", "other"])
    with pytest.raises(ValueError, match=r"probabilities of shape \(ratios, samples, classes\)"):
        ClassScores(**{**right.__dict__, "probabilities": right.probabilities[0]})
    with pytest.raises(FileNotFoundError, match=r"no saved early_action_prediction_3d scores .*\['action_recog"):
        ClassScores.load(tmp_path / "right", "early_action_prediction_3d")
    with pytest.raises(ValueError, match="classification tasks"):
        fuse_saved_scores([(tmp_path / "right", 1.0)], ["pose_estimation_3d"])
    (tmp_path / "other").mkdir()
    np.savez(tmp_path / "other" / "action_recognition_3d.npz", scores=np.zeros((4, 12)))  # someone else's arrays
    with pytest.raises(ValueError, match=r"is not a class-scores file: it lacks \['task', 'class_names'"):
        ClassScores.load(tmp_path / "other", "action_recognition_3d")
