"""The paper's evaluation of a UPS model on each task's test split, shared by ``examples/train.py`` and
``examples/evaluate.py``.

- Action recognition (3D, 2D): top-1 / top-5 over the dataset's classes, from the model's scores of the label
  tokens at the first decoding step (the step ``generate()`` takes its label from); with ``num_clips`` > 1, the
  class probabilities averaged over that many clips of each sample (the first at the segments' centres, the others
  a random frame of each segment: pyskl's test-time ``num_clips``); with several ``test_views`` (3D recognition and
  early prediction), averaged over each clip turned by every (yaw, pitch) of a grid (:func:`view_turn_grid`).
- Pose estimation: ``generate()`` -> bins -> millimetres (bin centres, or with ``pose_decoding="expectation"`` the
  mean of each coordinate's bin distribution, `UPSTokenizer.expected_pose`); MPJPE and P-MPJPE (overall and per
  action) against the un-quantised root-relative ground truth, on the frames ``stride`` apart of every test
  recording (``stride=1``: every frame, VideoPose3D's protocol); ``test_time_flip`` averages each prediction with
  that of the mirrored input, mirrored back (VideoPose3D's test-time augmentation).
- Early action prediction: top-1 at observation ratios 10% .. 100%.
- Score fusion (recognition and early prediction): the weighted sum of several models' class probabilities, each
  model with its own processor (CTR-GCN's and pyskl's multi-stream ensembles of joint, bone and motion models).
  The probabilities ranked can be saved (:class:`ClassScores`, ``save_scores_to``) and fused again from disk
  without the models (``saved_scores``; CTR-GCN's ``--save-score`` and ``ensemble.py``, pyskl's ``--out``).

Baselines printed beside the model: the majority training class for classification, the mean training pose
for pose estimation.
"""

import itertools
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..evaluation.metrics import OBSERVATION_RATIOS, mpjpe, p_mpjpe, per_group_mean, topk_accuracy
from ..skeletons import get_layout
from ..configuration_ups import POSE_ESTIMATION_TASK
from ..processing_ups import check_pose_decoding
from .data import VIEW_AUGMENTED_TASKS, TaskCollator, WindowIndex, _persons_first

# The one test view that leaves every clip as recorded (the default of every `test_views`).
AS_RECORDED = ((0.0, 0.0),)
CLASSIFICATION_TASKS = ("action_recognition_3d", "action_recognition_2d", "early_action_prediction_3d")


def _limit(dataset, max_samples: Optional[int]):
    if max_samples is None or len(dataset) <= max_samples:
        return dataset
    # An evenly spaced subset keeps every class / subject represented.
    return dataset.select(np.linspace(0, len(dataset) - 1, max_samples).round().astype(int).tolist())


def _to_device(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}


def dataset_label_token_ids(dataset, tokenizer) -> np.ndarray:
    """Token id of every class of ``dataset`` (its ClassLabel names must be in the tokenizer's vocabulary)."""
    names = dataset.features["label"].names
    return np.asarray([tokenizer.label_id(name) for name in names])


def view_turn_grid(yaws: Sequence[float] = (0.0,), pitches: Sequence[float] = (0.0,)) -> List[Tuple[float, float]]:
    """Every (yaw, pitch) pair, in degrees, of ``yaws`` x ``pitches``: the turns by which each 3D test clip is
    scored (``test_views`` of :func:`evaluate_classification`)."""
    if not len(yaws) or not len(pitches):
        raise ValueError(f"test views need at least one yaw and one pitch, got yaws={list(yaws)}, "
                         f"pitches={list(pitches)}")
    return [(float(yaw), float(pitch)) for yaw in yaws for pitch in pitches]


def _turns_clips(test_views: Sequence[Tuple[float, float]]) -> bool:
    """Whether ``test_views`` turn any clip ((0, 0) alone leaves every clip as recorded)."""
    return any(any(view) for view in test_views)


def check_test_views(test_views: Sequence[Tuple[float, float]], tasks: Sequence[str]) -> None:
    """Refuse turned test views that no task of ``tasks`` would use (only 3D clips can be turned), so that a
    run asking for them is told before it trains, not left to report unturned figures."""
    if _turns_clips(test_views) and not set(tasks) & set(VIEW_AUGMENTED_TASKS):
        raise ValueError(f"test views {list(test_views)} turn 3D clips, but none of the tasks {list(tasks)} is one of "
                         f"{list(VIEW_AUGMENTED_TASKS)}")


def _class_probabilities(model, processor, task: str, test, batch_size: int, observation_ratio, num_clips: int,
                         test_views: Sequence[Tuple[float, float]] = AS_RECORDED) -> np.ndarray:
    """(N, classes) probabilities of ``test``'s classes, averaged over ``num_clips`` clips of each sample, each seen
    from every view of ``test_views``."""
    token_ids = torch.as_tensor(dataset_label_token_ids(test, processor.tokenizer) - model.config.label_token_offset)
    rows = test.with_format("numpy")
    probabilities = 0.0
    for clip, view in itertools.product(range(num_clips), test_views):
        collate = TaskCollator(processor, task, test, train=False, observation_ratio=observation_ratio, test_clip=clip,
                               test_view=view)
        scores = []
        for start in range(0, len(test), batch_size):
            chunk = [rows[i] for i in range(start, min(start + batch_size, len(test)))]
            batch = collate([((0, start + i), row) for i, row in enumerate(chunk)])
            inputs = _to_device(batch, model.device)
            inputs.pop("labels", None)
            scores.append(model.label_scores(**inputs)[:, token_ids].float().softmax(-1).cpu().numpy())
        probabilities = probabilities + np.concatenate(scores)
    return probabilities / (num_clips * len(test_views))


@dataclass
class ClassScores:
    """The class probabilities of a classification test split: one model's, or the weighted mean of a fusion's
    members. Saved as ``FOLDER/<task>.npz`` (plain arrays, read without pickle) so that models trained apart, or in
    an earlier session, are fused later without being run again.

    Args:
        task (`str`): one of :data:`CLASSIFICATION_TASKS`.
        class_names (`np.ndarray` of shape `(C,)`): the dataset's class names, in class-id order.
        labels (`np.ndarray` of shape `(N,)`): each test sample's true class id, in dataset order.
        probabilities (`np.ndarray` of shape `(R, N, C)`): per observation ratio (R = 1 for recognition).
        observation_ratios (`np.ndarray` of shape `(R,)`): early prediction's ratios; `[nan]` for recognition.
        majority_baseline_top1 (`float`): the majority training class's top-1, the table's baseline.
    """

    task: str
    class_names: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    observation_ratios: np.ndarray
    majority_baseline_top1: float

    def __post_init__(self):
        # Loaded from a file every field is an array: the two scalars are made plain again here.
        self.task, self.majority_baseline_top1 = str(self.task), float(self.majority_baseline_top1)
        self.class_names = np.asarray(self.class_names, dtype=str)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.probabilities = np.asarray(self.probabilities, dtype=np.float32)
        self.observation_ratios = np.asarray(self.observation_ratios, dtype=np.float64)
        expected = (len(self.observation_ratios), len(self.labels), len(self.class_names))
        if self.task not in CLASSIFICATION_TASKS or self.probabilities.shape != expected:
            raise ValueError(f"class scores need a task of {list(CLASSIFICATION_TASKS)} and probabilities of shape "
                             f"(ratios, samples, classes) = {expected}; got {self.task!r}, "
                             f"{self.probabilities.shape}")

    @property
    def ratios(self) -> List[Optional[float]]:
        """The observation ratios as :func:`evaluate_classification` keys them (None: whole clips)."""
        return [None if np.isnan(r) else float(r) for r in self.observation_ratios]

    @staticmethod
    def path(folder: Union[str, Path], task: str) -> Path:
        """Where ``task``'s scores are kept in ``folder``: the one naming rule of saved scores."""
        return Path(folder) / f"{task}.npz"

    @classmethod
    def saved_tasks(cls, folder: Union[str, Path]) -> List[str]:
        """The classification tasks whose scores ``folder`` holds, in :data:`CLASSIFICATION_TASKS` order."""
        return [task for task in CLASSIFICATION_TASKS if cls.path(folder, task).is_file()]

    def save(self, folder: Union[str, Path]) -> Path:
        path = self.path(folder, self.task)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{field.name: np.asarray(getattr(self, field.name)) for field in fields(self)})
        return path

    @classmethod
    def load(cls, folder: Union[str, Path], task: str) -> "ClassScores":
        path = cls.path(folder, task)
        if not path.is_file():
            saved = cls.saved_tasks(folder) or "none"
            raise FileNotFoundError(f"no saved {task} scores at {path} (saved there: {saved}; examples/train.py "
                                    "keeps them in OUTPUT_DIR/scores, examples/evaluate.py --save_scores FOLDER)")
        names = [field.name for field in fields(cls)]
        with np.load(path, allow_pickle=False) as f:
            missing = [name for name in names if name not in f.files]
            if missing:
                raise ValueError(f"{path} is not a class-scores file: it lacks {missing}")
            scores = cls(**{name: f[name] for name in names})
        if scores.task != task:
            raise ValueError(f"{path} holds {scores.task} scores, not {task}")
        return scores

    def check_same_test(self, other: "ClassScores", name: str) -> None:
        """Refuse to fuse ``other`` (called ``name`` in the error) with these scores unless both score the same
        samples, in the same order, over the same classes and observation ratios."""
        problem = None
        if other.task != self.task:
            problem = f"task {other.task} against {self.task}"
        elif len(other.labels) != len(self.labels):
            problem = (f"{len(other.labels)} test samples against {len(self.labels)} (saved with another "
                       "--max_eval_samples or dataset?)")
        elif not np.array_equal(other.class_names, self.class_names):
            problem = "other class names"
        elif not np.array_equal(other.labels, self.labels):
            problem = "the same number of test samples with other labels (another dataset or sample order)"
        elif not np.array_equal(other.observation_ratios, self.observation_ratios, equal_nan=True):
            problem = f"observation ratios {other.ratios} against {self.ratios}"
        if problem:
            raise ValueError(f"cannot fuse {name} with the other {self.task} scores: {problem}")


def fuse_class_scores(members: Sequence[Tuple[ClassScores, float]], names: Sequence[str]) -> ClassScores:
    """The weighted mean of several members' probabilities, each checked to score the same test samples (``names``:
    what the error calls each member)."""
    if not members:
        raise ValueError("score fusion needs at least one member")
    first, _ = members[0]
    for (scores, _), name in zip(members[1:], names[1:]):
        first.check_same_test(scores, name)
    total = sum(weight for _, weight in members)
    return ClassScores(first.task, first.class_names, first.labels,
                       sum(weight * scores.probabilities for scores, weight in members) / total,
                       first.observation_ratios, first.majority_baseline_top1)


def classification_result(scores: ClassScores) -> Dict:
    """Top-1 / top-5 of whole clips, or top-1 per observation ratio, from ``scores``."""
    result = {"num_samples": int(len(scores.labels)), "majority_baseline_top1": scores.majority_baseline_top1}
    accuracies = [topk_accuracy(p, scores.labels, k=(1, 5)) for p in scores.probabilities]
    if scores.ratios == [None]:
        result.update(accuracies[0])
    else:
        result["top1_at_ratio"] = {f"{r:.1f}": a["top1"] for r, a in zip(scores.ratios, accuracies)}
    return result


def evaluate_classification(model, processor, task: str, data, batch_size: int = 64,
                            max_samples: Optional[int] = None, observation_ratios=None, num_clips: int = 1,
                            fused: Sequence[Tuple[object, object, float]] = (),
                            test_views: Sequence[Tuple[float, float]] = AS_RECORDED,
                            saved_scores: Sequence[Tuple[Union[str, Path], float]] = (),
                            save_scores_to: Optional[Union[str, Path]] = None) -> Dict:
    """Top-1 / top-5 of ``model`` (or, per observation ratio, top-1) on ``data["test"]``.

    ``test_views``: (yaw, pitch) turns in degrees (3D tasks; :func:`view_turn_grid`); each sample's class
    probabilities are averaged over them, as they are over its ``num_clips`` clips.

    ``fused``: further ``(model, processor, weight)`` members, each with its own processor (its frames, streams and
    normalisation), whose class probabilities are added with that weight to ``model``'s (weight 1) before ranking:
    the score fusion of a joint and a bone model that CTR-GCN and pyskl report as their multi-stream figures.
    ``saved_scores``: further ``(folder, weight)`` members whose probabilities were saved earlier
    (:class:`ClassScores`); they must score this test split's samples. ``save_scores_to``: a folder to save the
    ranked probabilities in (the members' weighted mean)."""
    if num_clips < 1:
        raise ValueError(f"num_clips must be at least 1, got {num_clips}")
    if not len(test_views):
        raise ValueError("test_views needs at least one (yaw, pitch) view; (0, 0) leaves clips as they are")
    if task not in VIEW_AUGMENTED_TASKS and _turns_clips(test_views):
        raise ValueError(f"test_views turn 3D clips ({list(VIEW_AUGMENTED_TASKS)}); {task} has none to turn")
    saved = [(ClassScores.load(folder, task), weight, str(folder)) for folder, weight in saved_scores]
    test = _limit(data["test"], max_samples)
    ratios = observation_ratios if observation_ratios is not None else [None]
    train_labels = np.asarray(data["train"]["label"])
    majority = np.bincount(train_labels[train_labels >= 0]).argmax()
    labels = np.asarray(test["label"])
    members = []
    for member, member_processor, weight in [(model, processor, 1.0), *fused]:
        probabilities = [_class_probabilities(member, member_processor, task, test, batch_size, ratio, num_clips,
                                              test_views) for ratio in ratios]
        members.append((ClassScores(task, test.features["label"].names, labels, probabilities,
                                    [np.nan if r is None else r for r in ratios],
                                    float(np.mean(labels == majority))), weight))
    scores = fuse_class_scores([*members, *((s, w) for s, w, _ in saved)],
                               names=[f"model {i + 1}" for i in range(len(members))] + [n for *_, n in saved])
    result = classification_result(scores)
    if _turns_clips(test_views):
        result["test_views"] = [list(view) for view in test_views]  # the figures are those of turned clips
    if save_scores_to is not None:
        result["saved_scores"] = str(scores.save(save_scores_to))
    return result


def _pose_targets(rows, starts, layout_name: str, num_frames: int = 1) -> np.ndarray:
    """Root-relative 3D ground truth (mm) of the frames the model predicts, (N, K, J, 3): ``num_frames`` frames from
    each start (the window's first target frame), the recording's last frame repeated beyond its end as the
    windows repeat it."""
    layout = get_layout(layout_name)
    out = []
    for row, start in zip(rows, starts):
        poses = _persons_first(row["poses"])[0]
        pose = poses[np.clip(start + np.arange(num_frames), 0, len(poses) - 1)]
        out.append(pose - layout.root_position(pose))
    return np.stack(out)


def evaluate_pose_estimation(model, processor, data, batch_size: int = 64, max_samples: Optional[int] = None,
                             window: Optional[int] = None, stride: int = 5, test_time_flip: bool = False,
                             pose_decoding: Optional[str] = None) -> Dict:
    """MPJPE and P-MPJPE of the test recordings (module docstring); ``pose_decoding`` defaults to the processor's."""
    pose_decoding = check_pose_decoding(processor.pose_decoding if pose_decoding is None else pose_decoding)
    if stride < 1:
        raise ValueError(f"the pose-estimation evaluation stride must be at least 1 (every frame), got {stride}")
    test = data["test"].with_format("numpy")
    frame_counts = [int(np.asarray(test[i]["poses"]).shape[0]) for i in range(len(test))]
    index = WindowIndex.build(processor, frame_counts, stride=stride, window=window)
    if max_samples is not None and len(index) > max_samples:
        keep = np.linspace(0, len(index) - 1, max_samples).round().astype(int)
        index = WindowIndex(index.rows[keep], index.centres[keep])
    collate = TaskCollator(processor, POSE_ESTIMATION_TASK, data["test"], train=False, pose_window=window)
    tokenizer = processor.tokenizer
    k = processor.pose_estimation_target_frames
    predictions, targets, groups, subjects = [], [], [], []
    names = data["test"].features["label"].names
    for start in range(0, len(index), batch_size):
        rows = [test[int(r)] for r in index.rows[start:start + batch_size]]
        centres = [int(c) for c in index.centres[start:start + batch_size]]
        poses, _, _, extra = collate.inputs_and_targets(rows, [(0, i) for i in range(len(rows))], centres=centres)
        views = [poses]
        if test_time_flip:
            views.append([get_layout(name).mirror(p) for p, name in zip(poses, extra["layout"])])
        joints = [get_layout(row["layout"]).num_joints for row in rows]
        decoded = []
        for view in views:
            inputs = _to_device(dict(processor(view, task=POSE_ESTIMATION_TASK, return_tensors="pt", **extra)),
                                model.device)
            if pose_decoding == "expectation":
                _, scores = model.generate_with_step_logits(model.get_encoder()(**inputs, return_dict=True))
                decoded.append([tokenizer.expected_pose(s, j, num_frames=k) for s, j in zip(scores.cpu(), joints)])
            else:
                generated = model.generate(**inputs)
                decoded.append([tokenizer.decode_pose(ids, num_joints=j, num_frames=k)
                                for ids, j in zip(generated.cpu().tolist(), joints)])
        for i, (row, centre) in enumerate(zip(rows, centres)):
            pose = decoded[0][i]
            if test_time_flip:
                pose = (pose + get_layout(row["layout"]).mirror(decoded[1][i])) / 2
            # A window's K target frames start at `centre`; those past the recording's end are edge padding, not
            # frames of it, and are not scored (with stride K every frame is scored exactly once).
            scored = min(k, frame_counts[int(index.rows[start + i])] - centre)
            predictions.append(pose[:scored])
            targets.append(_pose_targets([row], [centre], row["layout"], scored)[0])
            groups.extend([names[int(row["label"])] if int(row["label"]) >= 0 else "all"] * scored)
            subjects.extend([str(row.get("subject", ""))] * scored)
    pred, gt = np.concatenate(predictions), np.concatenate(targets)
    per_sample = mpjpe(pred, gt, reduction="sample")
    per_sample_aligned = p_mpjpe(pred, gt, reduction="sample")
    # VideoPose3D's summary: the mean over (subject, action) groups of each group's mean over its frames.
    subject_action = [f"{subject} {action}" for subject, action in zip(subjects, groups)]
    train = data["train"].with_format("numpy")
    n_train = min(len(train), 2000)
    train_rows = [train[int(i)] for i in np.linspace(0, len(train) - 1, n_train).round().astype(int)]
    train_centres = [int(processor.target_frame_indices(np.asarray(r["poses"]).shape[0])[0]) for r in train_rows]
    mean_pose = _pose_targets(train_rows, train_centres, train_rows[0]["layout"]).mean(axis=0)
    return {
        "num_samples": int(len(gt)),
        "pose_decoding": pose_decoding,
        "mpjpe": float(per_sample.mean()),
        "p_mpjpe": float(per_sample_aligned.mean()),
        "mean_pose_baseline_mpjpe": float(mpjpe(np.broadcast_to(mean_pose, gt.shape), gt)),
        "per_action_mpjpe": {k: float(v) for k, v in per_group_mean(per_sample, groups).items()},
        "per_action_p_mpjpe": {k: float(v) for k, v in per_group_mean(per_sample_aligned, groups).items()},
        "action_average_mpjpe": float(np.mean(list(per_group_mean(per_sample, subject_action).values()))),
        "action_average_p_mpjpe": float(np.mean(list(per_group_mean(per_sample_aligned, subject_action).values()))),
    }


def evaluate_all_tasks(model, processor, datasets: Dict, tasks: List[str], batch_size: int = 64,
                       max_samples: Optional[int] = None, accelerator=None, pose_window: Optional[int] = None,
                       pose_stride: int = 5, test_time_flip: bool = False, test_clips: int = 1,
                       pose_decoding: Optional[str] = None, fused: Sequence[Tuple[object, object, float]] = (),
                       test_views: Sequence[Tuple[float, float]] = AS_RECORDED,
                       saved_scores: Sequence[Tuple[Union[str, Path], float]] = (),
                       save_scores_to: Optional[Union[str, Path]] = None) -> Dict:
    """Evaluate every task on its test split (main process only; other processes return None). ``pose_stride``,
    ``test_time_flip`` and ``pose_decoding``: see :func:`evaluate_pose_estimation`; ``test_clips``: clips averaged
    per recognition sample (``num_clips`` of :func:`evaluate_classification`; early prediction keeps one);
    ``test_views``: (yaw, pitch) turns averaged per sample of 3D recognition and early prediction (2D recognition
    keeps its clips as they are);
    ``fused``: models (in eval mode) whose class scores are fused with ``model``'s, ``saved_scores``: folders of
    saved class scores fused the same way, ``save_scores_to``: a folder for each classification task's ranked
    scores (:func:`evaluate_classification`)."""
    check_test_views(test_views, tasks)
    if (fused or saved_scores) and POSE_ESTIMATION_TASK in tasks:
        raise ValueError(f"score fusion (several models) is for the classification tasks {CLASSIFICATION_TASKS}; "
                         f"evaluate {POSE_ESTIMATION_TASK} with one model")
    if accelerator is not None and not accelerator.is_main_process:
        return None
    was_training = model.training
    model.eval()
    results = {}
    classification = dict(fused=fused, saved_scores=saved_scores, save_scores_to=save_scores_to)
    for task in tasks:
        if task == POSE_ESTIMATION_TASK:
            results[task] = evaluate_pose_estimation(model, processor, datasets[task], batch_size, max_samples,
                                                     window=pose_window, stride=pose_stride,
                                                     test_time_flip=test_time_flip, pose_decoding=pose_decoding)
        elif task == "early_action_prediction_3d":
            results[task] = evaluate_classification(model, processor, task, datasets[task], batch_size, max_samples,
                                                    observation_ratios=OBSERVATION_RATIOS, test_views=test_views,
                                                    **classification)
        else:
            views = test_views if task in VIEW_AUGMENTED_TASKS else AS_RECORDED
            results[task] = evaluate_classification(model, processor, task, datasets[task], batch_size, max_samples,
                                                    num_clips=test_clips, test_views=views, **classification)
    model.train(was_training)
    return results


def fuse_saved_scores(saved_scores: Sequence[Tuple[Union[str, Path], float]], tasks: Sequence[str],
                      save_scores_to: Optional[Union[str, Path]] = None) -> Dict:
    """Each of ``tasks``' results from saved ``(folder, weight)`` class scores alone, without model or dataset
    (CTR-GCN's ``ensemble.py``): the figures :func:`evaluate_all_tasks` gives with the same members."""
    unknown = [t for t in tasks if t not in CLASSIFICATION_TASKS]
    if unknown or not tasks:
        raise ValueError(f"saved scores are kept for the classification tasks {list(CLASSIFICATION_TASKS)}; "
                         f"got tasks {list(tasks)}")
    results = {}
    for task in tasks:
        scores = fuse_class_scores([(ClassScores.load(folder, task), weight) for folder, weight in saved_scores],
                                   names=[str(folder) for folder, _ in saved_scores])
        results[task] = classification_result(scores)
        if save_scores_to is not None:
            results[task]["saved_scores"] = str(scores.save(save_scores_to))
    return results


def format_results_table(results: Dict, vocabulary_init: Optional[str] = None,
                         routing: Optional[Dict] = None) -> str:
    """The results as a Markdown table, model beside baseline.

    ``routing`` (``examples/train.py``'s ``routing_map``: per task, the block each encoder layer runs) adds a row per
    task, the routing map of a unified model. ``vocabulary_init`` (what ``examples/train.py`` records: the text
    encoder the vocabulary embeddings were initialised from, or why they stayed random) adds a last row, so a table
    from a run without a text encoder says that it is not the paper's model."""
    lines = ["| task | metric | UPS | baseline |", "|---|---|---|---|"]
    for task, r in results.items():
        if task == POSE_ESTIMATION_TASK:
            lines.append(f"| {task} | MPJPE (mm) | {r['mpjpe']:.1f} | {r['mean_pose_baseline_mpjpe']:.1f} (mean pose) |")
            lines.append(f"| {task} | P-MPJPE (mm) | {r['p_mpjpe']:.1f} | |")
        elif "top1_at_ratio" in r:
            for ratio in ("0.2", "0.4", "0.6", "1.0"):
                lines.append(f"| {task} | top-1 at {int(float(ratio) * 100)}% observed | "
                             f"{100 * r['top1_at_ratio'][ratio]:.1f} | {100 * r['majority_baseline_top1']:.1f} "
                             "(majority) |")
        else:
            lines.append(f"| {task} | top-1 | {100 * r['top1']:.1f} | {100 * r['majority_baseline_top1']:.1f} "
                         "(majority) |")
            lines.append(f"| {task} | top-5 | {100 * r['top5']:.1f} | |")
    for task, route in (routing or {}).items():
        lines.append(f"| {task} | encoder block per layer (routing) | {', '.join(map(str, route['blocks']))} | |")
    if vocabulary_init:
        lines.append(f"| all tasks | vocabulary embeddings | {vocabulary_init} | |")
    return "\n".join(lines)
