"""Evaluation numerics (modeling_ups.evaluation) and the evaluate metric scripts in metrics/."""

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from modeling_ups.evaluation import (
    OBSERVATION_RATIOS,
    confusion_matrix,
    early_prediction_curve,
    mean_class_accuracy,
    mean_velocity_error,
    mpjpe,
    n_mpjpe,
    observed_frames,
    p_mpjpe,
    per_group_mean,
    procrustes_align,
    topk_accuracy,
)

METRICS_DIR = Path(__file__).resolve().parents[1] / "metrics"


def random_poses(seed: int, shape=(6, 17, 3), scale: float = 300.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=scale, size=shape)


def similarity_transform(poses: np.ndarray, seed: int) -> np.ndarray:
    """Each pose rotated (proper rotation), uniformly scaled and shifted by its own random transform."""
    rng = np.random.default_rng(seed)
    rotations = Rotation.random(len(poses), random_state=seed).as_matrix()
    scales = rng.uniform(0.5, 2.0, size=(len(poses), 1, 1))
    shifts = rng.normal(scale=1000.0, size=(len(poses), 1, 3))
    return scales * np.einsum("njc,ndc->njd", poses, rotations) + shifts


# ----------------------------------------------------------------------------------------------------------
# MPJPE family, hand-computed
# ----------------------------------------------------------------------------------------------------------


def test_mpjpe_two_joints_by_hand():
    prediction = [[[0, 0, 0], [3, 4, 0]]]
    reference = [[[0, 0, 0], [0, 0, 0]]]
    assert mpjpe(prediction, reference) == pytest.approx(2.5)  # (0 + 5) / 2

    # joint 0 off by 1 along x, joint 1 off by 2 along y: (1 + 2) / 2
    prediction = [[[1, 0, 0], [0, 0, 0]]]
    reference = [[[0, 0, 0], [0, 2, 0]]]
    assert mpjpe(prediction, reference) == pytest.approx(1.5)
    # relative to joint 0: prediction (0,0,0), (-1,0,0); reference (0,0,0), (0,2,0) -> (0 + sqrt(5)) / 2
    assert mpjpe(prediction, reference, root_joint=0) == pytest.approx(np.sqrt(5) / 2)
    # relative to the mean of both joints: both errors are half the difference of the offsets, sqrt(5) / 2
    assert mpjpe(prediction, reference, root_joint=[0, 1]) == pytest.approx(np.sqrt(5) / 2)


def test_mpjpe_mask_and_reductions():
    prediction = np.array([[[0, 0, 0], [3, 4, 0], [0, 0, 6]], [[1, 0, 0], [0, 0, 0], [0, 0, 0]]], dtype=float)
    reference = np.zeros_like(prediction)
    per_joint = mpjpe(prediction, reference, reduction="none")
    np.testing.assert_allclose(per_joint, [[0, 5, 6], [1, 0, 0]])
    np.testing.assert_allclose(mpjpe(prediction, reference, reduction="sample"), [11 / 3, 1 / 3])
    mask = np.array([[True, True, False], [True, False, False]])
    assert mpjpe(prediction, reference, mask=mask) == pytest.approx((0 + 5 + 1) / 3)
    np.testing.assert_allclose(mpjpe(prediction, reference, mask=mask, reduction="sample"), [2.5, 1.0])
    # a (J,) mask broadcasts over samples
    assert mpjpe(prediction, reference, mask=[1, 0, 1]) == pytest.approx((0 + 6 + 1 + 0) / 4)


def test_mpjpe_accepts_sequences_of_any_leading_shape():
    prediction, reference = random_poses(0, (2, 5, 17, 3)), random_poses(1, (2, 5, 17, 3))
    flat = mpjpe(prediction.reshape(-1, 17, 3), reference.reshape(-1, 17, 3))
    assert mpjpe(prediction, reference) == pytest.approx(flat)
    assert mpjpe(prediction, reference, reduction="sample").shape == (2, 5)


def test_p_mpjpe_forgives_similarity_transforms_but_mpjpe_does_not():
    reference = random_poses(2)
    prediction = similarity_transform(reference, seed=3)
    assert mpjpe(prediction, reference) > 100.0
    assert p_mpjpe(prediction, reference) < 1e-8
    np.testing.assert_allclose(procrustes_align(prediction, reference), reference, atol=1e-8)


def test_p_mpjpe_scaled_plus_by_hand():
    # A plus sign stretched 2x along x: by symmetry R = I, the best scale minimises 2(s-2)^2 + 2(s-1)^2,
    # s = 1.5, leaving every joint 0.5 away. The least-squares scale of N-MPJPE is <p,g>/<p,p> = 6/4 too.
    prediction = np.array([[[-1, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0]]], dtype=float)
    reference = np.array([[[-2, 0, 0], [2, 0, 0], [0, 1, 0], [0, -1, 0]]], dtype=float)
    assert mpjpe(prediction, reference) == pytest.approx(0.5)
    assert p_mpjpe(prediction, reference) == pytest.approx(0.5)
    assert n_mpjpe(prediction, reference) == pytest.approx(0.5)


def test_p_mpjpe_does_not_reflect_by_hand():
    # 2D: the prediction is the reference mirrored in x. H = X^T Y = diag(-2, 8): the best orthogonal map is
    # the mirror diag(-1, 1) (error 0), but the best rotation is the identity with scale (8 - 2) / 10 = 0.6:
    # errors |(-0.6) - 1| = 1.6 (twice) and |1.2 - 2| = 0.8 (twice), mean 1.2.
    reference = np.array([[[1, 0], [-1, 0], [0, 2], [0, -2]]], dtype=float)
    prediction = reference * np.array([-1.0, 1.0])
    assert p_mpjpe(prediction, reference) == pytest.approx(1.2)

    # Brute force over rotation angles (with the best scale for each) agrees.
    best = np.inf
    for angle in np.linspace(0, 2 * np.pi, 3601):
        rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
        rotated = prediction[0] @ rotation
        scale = max((rotated * reference[0]).sum() / (rotated**2).sum(), 0.0)
        best = min(best, np.linalg.norm(scale * rotated - reference[0], axis=-1).mean())
    assert p_mpjpe(prediction, reference) == pytest.approx(best, abs=1e-3)


def test_p_mpjpe_keeps_the_error_of_a_mirrored_3d_pose():
    reference = random_poses(4, (3, 17, 3))
    mirrored = reference * np.array([-1.0, 1.0, 1.0])
    assert p_mpjpe(mirrored, reference) > 10.0
    # ...whereas an alignment allowed to reflect would explain the mirror away completely
    for pred, ref in zip(mirrored, reference):
        x, y = pred - pred.mean(0), ref - ref.mean(0)
        u, _, vt = np.linalg.svd(x.T @ y)
        assert np.abs(x @ (u @ vt) - y).max() < 1e-6


def test_procrustes_alignment_is_the_least_squares_optimum():
    rng = np.random.default_rng(5)
    reference = rng.normal(size=(12, 3))
    rotation = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
    prediction = 1.3 * reference @ rotation + rng.normal(scale=0.3, size=(12, 3))
    aligned_error = ((procrustes_align(prediction[None], reference[None])[0] - reference) ** 2).sum()

    def squared_error(params):
        rotation = Rotation.from_rotvec(params[:3]).as_matrix()
        return ((np.exp(params[3]) * prediction @ rotation + params[4:] - reference) ** 2).sum()

    found = min(minimize(squared_error, start, method="BFGS").fun for start in rng.normal(size=(4, 7)))
    assert aligned_error <= found + 1e-6
    assert aligned_error == pytest.approx(found, rel=1e-4)


def test_p_mpjpe_is_invariant_to_transforming_the_prediction():
    reference, prediction = random_poses(6), random_poses(7)
    moved = similarity_transform(prediction, seed=8)
    assert p_mpjpe(moved, reference) == pytest.approx(p_mpjpe(prediction, reference), rel=1e-9)
    assert p_mpjpe(prediction, reference, root_joint=0) == pytest.approx(p_mpjpe(prediction, reference))


def test_n_mpjpe_forgives_scale_about_the_root_only():
    reference = random_poses(9)
    scaled = 1.7 * (reference - reference[:, :1]) + reference[:, :1]
    assert n_mpjpe(scaled, reference, root_joint=0) < 1e-9
    assert mpjpe(scaled, reference, root_joint=0) > 100.0
    rotated = np.einsum("njc,dc->njd", reference, Rotation.from_rotvec([0, 0, 0.5]).as_matrix())
    assert n_mpjpe(rotated, reference) > 10.0


def test_mean_velocity_error_by_hand():
    reference = np.zeros((4, 2, 3))
    prediction = reference.copy()
    prediction[:, :, 0] = np.arange(4)[:, None]  # drifts 1 unit per frame along x
    assert mean_velocity_error(prediction, reference) == pytest.approx(1.0)
    assert mpjpe(prediction, reference) == pytest.approx(1.5)
    # a constant offset has no velocity error
    assert mean_velocity_error(reference + 7.0, reference) == pytest.approx(0.0)
    # batched (N, T, J, 3) with the default time axis -3
    batched = mean_velocity_error(np.stack([prediction, reference]), np.stack([reference, reference]))
    assert batched == pytest.approx(0.5)


def test_per_group_mean_by_hand():
    errors = [10.0, 20.0, 30.0, 50.0]
    groups = ["Walking", "Eating", "Walking", "Eating"]
    assert per_group_mean(errors, groups) == {"Eating": 35.0, "Walking": 20.0}
    assert list(per_group_mean(errors, groups)) == ["Eating", "Walking"]
    per_sample = mpjpe(random_poses(10, (4, 17, 3)), random_poses(11, (4, 17, 3)), reduction="sample")
    table = per_group_mean(per_sample, [0, 0, 1, 1])
    assert table[0] == pytest.approx(per_sample[:2].mean())


# ----------------------------------------------------------------------------------------------------------
# classification and early prediction, hand-computed
# ----------------------------------------------------------------------------------------------------------

SCORES = np.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.8, 0.1, 0.1], [0.2, 0.2, 0.6]])
LABELS = np.array([1, 0, 1, 0])
# rankings (ties -> lower id first): [1, 2, 0], [2, 0, 1], [0, 1, 2], [0, 1, 2] (0 before 1 on the tie)
# rank of the true class: 0, 1, 1, 1


def test_topk_accuracy_by_hand():
    assert topk_accuracy(SCORES, LABELS, k=(1, 2, 3)) == {"top1": 0.25, "top2": 1.0, "top3": 1.0}
    assert topk_accuracy(SCORES, LABELS) == {"top1": 0.25, "top5": 1.0}  # k > C counts as correct
    assert topk_accuracy(SCORES, [1, 2, 0, 2], k=1) == {"top1": 1.0}  # the arg-max of each row


def test_confusion_matrix_and_mean_class_accuracy_by_hand():
    # arg-max predictions: 1, 2, 0, 2
    expected = np.array([[0, 0, 2], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(confusion_matrix(SCORES, LABELS), expected)
    np.testing.assert_array_equal(confusion_matrix([1, 2, 0, 2], LABELS, num_classes=3), expected)
    # class 0: 0/2, class 1: 1/2; class 2 has no samples and is left out
    assert mean_class_accuracy(SCORES, LABELS) == pytest.approx(0.25)
    assert mean_class_accuracy([0, 0, 1, 1, 1, 2], [0, 0, 0, 1, 1, 2]) == pytest.approx((2 / 3 + 1 + 1) / 3)


def test_early_prediction_curve_and_observed_frames():
    curve = early_prediction_curve({1.0: 0.9, 0.1: 0.2, 0.5: 0.7})
    assert curve["ratios"] == [0.1, 0.5, 1.0]
    assert curve["accuracies"] == [0.2, 0.7, 0.9]
    assert curve["average"] == pytest.approx(0.6)
    assert OBSERVATION_RATIOS[0] == 0.1 and OBSERVATION_RATIOS[-1] == 1.0 and len(OBSERVATION_RATIOS) == 10
    assert [observed_frames(10, r) for r in (0.1, 0.3, 0.25, 1.0)] == [1, 3, 3, 10]
    assert observed_frames(3, 0.1) == 1


# ----------------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [mpjpe, p_mpjpe, n_mpjpe])
def test_pose_metrics_reject_bad_input(metric):
    good = random_poses(12, (2, 17, 3))
    with pytest.raises(ValueError, match="same shape"):
        metric(good, good[:, :16])
    nan = good.copy()
    nan[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        metric(nan, good)
    with pytest.raises(ValueError, match="NaN"):
        metric(good, np.where(nan == nan, np.inf, 0))
    with pytest.raises(ValueError, match="out of range"):
        metric(good, good, root_joint=17)
    with pytest.raises(ValueError, match="root_joint"):
        metric(good, good, root_joint=1.5)
    with pytest.raises(ValueError, match="selects no joint"):
        metric(good, good, mask=np.zeros(17))
    with pytest.raises(ValueError, match="broadcast"):
        metric(good, good, mask=np.ones(16))
    with pytest.raises(ValueError, match="reduction"):
        metric(good, good, reduction="sum")
    with pytest.raises(ValueError, match="shape"):
        metric(np.zeros(3), np.zeros(3))


def test_other_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="at least 2 frames"):
        mean_velocity_error(np.zeros((1, 17, 3)), np.zeros((1, 17, 3)))
    with pytest.raises(ValueError, match="2 group labels"):
        per_group_mean([1.0, 2.0, 3.0], ["a", "b"])
    with pytest.raises(ValueError, match="4 predictions but 3 labels"):
        topk_accuracy(SCORES, [0, 1, 2])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        topk_accuracy(SCORES, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="integer class ids"):
        topk_accuracy(SCORES, [0.5, 1, 2, 0])
    with pytest.raises(ValueError, match="positive int"):
        topk_accuracy(SCORES, LABELS, k=0)
    with pytest.raises(ValueError, match="NaN"):
        topk_accuracy(np.where(SCORES > 0.7, np.nan, SCORES), LABELS)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        topk_accuracy(SCORES[0], LABELS[:1])
    with pytest.raises(ValueError, match="ratios must lie in"):
        early_prediction_curve({0.0: 0.5})
    with pytest.raises(ValueError, match="accuracies must lie in"):
        early_prediction_curve({0.5: 50.0})


# ----------------------------------------------------------------------------------------------------------
# evaluate metric scripts: same numbers as the plain functions
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluate_metrics():
    evaluate = pytest.importorskip("evaluate")
    return {name: evaluate.load(str(METRICS_DIR / name)) for name in ("mpjpe", "p_mpjpe", "topk_accuracy")}


def test_evaluate_pose_metrics_match_the_plain_functions(evaluate_metrics):
    reference = random_poses(13)
    prediction = reference + random_poses(14, scale=40.0)
    for name, function in (("mpjpe", mpjpe), ("p_mpjpe", p_mpjpe)):
        metric = evaluate_metrics[name]
        result = metric.compute(predictions=prediction, references=reference, root_joint=0)
        assert result[name] == pytest.approx(function(prediction, reference, root_joint=0), rel=1e-12)
        metric.add_batch(predictions=prediction[:2], references=reference[:2])
        metric.add_batch(predictions=prediction[2:], references=reference[2:])
        assert metric.compute()[name] == pytest.approx(function(prediction, reference), rel=1e-12)
    assert evaluate_metrics["mpjpe"].compute(predictions=[[[0, 0, 0], [3, 4, 0]]],
                                             references=[[[0, 0, 0], [0, 0, 0]]]) == {"mpjpe": 2.5}


def test_evaluate_topk_matches_the_plain_function(evaluate_metrics):
    result = evaluate_metrics["topk_accuracy"].compute(predictions=SCORES, references=LABELS, k=[1, 2])
    assert result == topk_accuracy(SCORES, LABELS, k=(1, 2)) == {"top1": 0.25, "top2": 1.0}


def test_evaluate_pose_metric_reports_bad_input(evaluate_metrics):
    with pytest.raises(ValueError, match="same shape"):
        evaluate_metrics["mpjpe"].compute(predictions=[[[0, 0, 0]]], references=[[[0, 0, 0], [1, 1, 1]]])
