"""Processor for UPS: skeleton sequences in, model inputs and token targets out; generated tokens back to results."""

from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from transformers.processing_utils import ProcessorMixin

from .feature_extraction_ups import PreparedPose, _per_sample
from .skeletons import LAYOUTS, convert_layout
from .configuration_ups import task_emits_pose
from .tokenization_ups import _token_ids

IGNORE_INDEX = -100
# How post_process turns pose-estimation outputs into coordinates (see its docstring).
POSE_DECODINGS = ("bins", "expectation")
_UNIT_TO_MM = {"mm": 1.0, "m": 1000.0}


def check_pose_decoding(pose_decoding: str) -> str:
    """``pose_decoding`` if it is one of `POSE_DECODINGS`, else ValueError naming them."""
    if pose_decoding not in POSE_DECODINGS:
        raise ValueError(f"pose_decoding must be one of {list(POSE_DECODINGS)}, got {pose_decoding!r}")
    return pose_decoding


class UPSProcessor(ProcessorMixin):
    r"""
    Wraps a [`UPSFeatureExtractor`] (poses -> `pose_values` & masks) and a [`UPSTokenizer`] (labels and 3D
    poses <-> tokens) into one object that returns everything [`UPSForPoseSequenceModeling`] takes.

    Args:
        feature_extractor ([`UPSFeatureExtractor`]): prepares the input skeletons.
        tokenizer ([`UPSTokenizer`]): the unified output vocabulary.
        pose_estimation_target_frames (`int`, *optional*, defaults to 1):
            Frames `K` pose estimation predicts per clip (must equal `UPSConfig.pose_estimation_target_frames`):
            frame `(T - 1) // 2` of the original input for `K = 1`, else `K` consecutive frames around it (the
            pipeline's `frames="all"` then cuts one window per `K` frames).
        pose_target_layouts (`dict[str, str]`, *optional*, defaults to `{}`):
            Output layout of pose estimation for input layouts lifted to another skeleton, e.g.
            `{"mpii16": "h36m17"}` (must equal `UPSConfig.pose_target_layouts`); targets and decoded poses are in
            that layout. Layouts not listed are lifted to themselves.
        pose_decoding (`str`, *optional*, defaults to `"bins"`):
            How the pipeline and `examples/evaluate.py` turn a lifted pose's tokens into coordinates unless told
            otherwise: `"bins"` (bin centres) or `"expectation"` (each coordinate's mean over its bins; see
            `post_process`). A checkpoint keeps the decoding its reported figures were measured with.
    """

    def __init__(self, feature_extractor, tokenizer, pose_estimation_target_frames: int = 1,
                 pose_target_layouts: Optional[Dict[str, str]] = None, pose_decoding: str = "bins", **kwargs):
        if int(pose_estimation_target_frames) < 1:
            raise ValueError(f"pose_estimation_target_frames must be positive, got {pose_estimation_target_frames}")
        self.pose_decoding = check_pose_decoding(pose_decoding)
        self.pose_estimation_target_frames = int(pose_estimation_target_frames)
        self.pose_target_layouts = {str(k): str(v) for k, v in (pose_target_layouts or {}).items()}
        unknown = sorted({*self.pose_target_layouts, *self.pose_target_layouts.values()} - set(feature_extractor.layouts))
        if unknown:
            raise ValueError(
                f"pose_target_layouts names layouts {unknown} that are not the feature extractor's layouts "
                f"{feature_extractor.layouts}"
            )
        super().__init__(feature_extractor, tokenizer, **kwargs)

    def pose_target_layout(self, layout: str) -> str:
        """Name of the layout pose estimation outputs for input given to the model in ``layout``."""
        return self.pose_target_layouts.get(layout, layout)

    def __call__(
        self,
        poses=None,
        task: Union[str, Sequence[str]] = "action_recognition",
        labels: Union[None, str, int, Sequence[Any]] = None,
        target_poses=None,
        layout: Union[None, str, Sequence[Optional[str]]] = None,
        observation_ratio: Union[None, float, Sequence[float]] = None,
        target_unit: str = "mm",
        return_tensors: Optional[str] = "pt",
        **feature_kwargs,
    ):
        """Prepare model inputs and, when targets are given, `labels`.

        Args:
            poses: one skeleton sequence `(T, J, C)` / `(M, T, J, C)` or a batch (see [`UPSFeatureExtractor`]).
            task (`str` or `list[str]`): `"action_recognition_3d"`, `"action_recognition_2d"`,
                `"pose_estimation_3d"`, `"early_action_prediction_3d"`, or the shorthands `"action_recognition"`
                (2D or 3D told from the input), `"pose_estimation"`, `"early_action_prediction"`; per sample when
                a list.
            labels (`str`, `int` or `list`, *optional*): action label text (or class index into the tokenizer's
                labels) of the recognition and early-prediction samples; ignored for pose-estimation samples.
            target_poses (array or `list`, *optional*): for pose-estimation samples, 3D poses `(T, J, 3)` aligned
                with the input frames, camera frame, in `target_unit`; the processor keeps the target frame(s),
                makes them root-relative and encodes them. Ignored for other samples (`None` entries allowed).
            layout (`str` or `list`, *optional*): layout of the input skeletons.
            observation_ratio (`float` in (0, 1], *optional*): early prediction, keep the first `ceil(r * T)` frames.
            target_unit (`"mm"` or `"m"`): unit of `target_poses`.
            return_tensors (`str`, *optional*, defaults to `"pt"`).
            feature_kwargs: `coordinates`, `has_confidence`, `is_batched` (see [`UPSFeatureExtractor`]).

        Returns:
            [`BatchFeature`] with `pose_values`, `attention_mask`, `person_mask`, `task_ids`, `layout_ids` and,
            with targets, `labels` `(B, L)` padded with -100.
        """
        if poses is None:
            raise ValueError("UPSProcessor needs poses")
        if target_unit not in _UNIT_TO_MM:
            raise ValueError(f"target_unit must be 'mm' or 'm', got {target_unit!r}")
        samples = self.feature_extractor.prepare(
            poses, task=task, layout=layout, observation_ratio=observation_ratio, **feature_kwargs
        )
        features = self.feature_extractor.collate(samples, return_tensors=None)
        if labels is not None or target_poses is not None:
            if isinstance(labels, (int, np.integer)):
                labels = [labels] * len(samples)
            labels_per_sample = _per_sample(labels, len(samples), "labels")
            targets_per_sample = _split_targets(target_poses, len(samples))
            sequences = [
                self._target_ids(i, s, labels_per_sample[i], targets_per_sample[i], target_unit)
                for i, s in enumerate(samples)
            ]
            padded = np.full((len(sequences), max(map(len, sequences))), IGNORE_INDEX, dtype=np.int64)
            for i, seq in enumerate(sequences):
                padded[i, : len(seq)] = seq
            features["labels"] = padded
        return features.convert_to_tensors(tensor_type=return_tensors) if return_tensors else features

    # ------------------------------------------------------------------ targets
    def target_frame_indices(self, num_frames: int) -> np.ndarray:
        """Frames of a `num_frames`-long input that pose estimation predicts (centre frame(s))."""
        k = self.pose_estimation_target_frames
        if num_frames < k:
            raise ValueError(f"pose estimation of {k} target frames needs at least {k} input frames, got {num_frames}")
        start = (num_frames - 1) // 2 - (k - 1) // 2
        start = min(max(start, 0), num_frames - k)
        return np.arange(start, start + k)

    def window_frame_indices(self, num_frames: int, window: int, target_start: int) -> np.ndarray:
        """Frames of a `window`-frame clip cut from a `num_frames`-long sequence so that its target frames
        (`target_frame_indices(window)`) are frames `target_start ..` of the sequence; frames beyond either end
        repeat the end frame (VideoPose3D's edge padding). The one rule the pipeline's sliding windows, training
        windows and evaluation windows share."""
        first_target = int(self.target_frame_indices(window)[0])
        return np.clip(np.arange(window) + target_start - first_target, 0, num_frames - 1)

    def _target_ids(self, index, sample: PreparedPose, label, target, target_unit) -> List[int]:
        if not task_emits_pose(sample.task):
            if label is None:
                raise ValueError(f"sample {index} ({sample.task}) needs a label")
            return self.tokenizer.encode_label(label, task=sample.task)
        if target is None:
            raise ValueError(f"sample {index} ({sample.task}) needs target_poses")
        if isinstance(target, torch.Tensor):
            target = target.detach().cpu().numpy()
        target = np.asarray(target, dtype=np.float64)
        if target.ndim != 3 or target.shape[-1] != 3:
            raise ValueError(f"sample {index}: target_poses must be 3D poses shaped (T, J, 3), got {target.shape}")
        if not np.isfinite(target).all():
            raise ValueError(f"sample {index}: target_poses contain NaN or inf")
        if target.shape[0] != sample.num_input_frames:
            raise ValueError(
                f"sample {index}: target_poses have {target.shape[0]} frames but the input has "
                f"{sample.num_input_frames}; targets must be aligned with the input frames"
            )
        layout = LAYOUTS[self.pose_target_layout(sample.layout)]
        if target.shape[1] != layout.num_joints:
            source = LAYOUTS[sample.source_layout]
            if target.shape[1] != source.num_joints:
                raise ValueError(
                    f"sample {index}: target_poses have {target.shape[1]} joints, layout {layout.name!r} has "
                    f"{layout.num_joints}"
                )
            target = convert_layout(target, source.name, layout.name)
        pose = target[self.target_frame_indices(sample.num_input_frames)] * _UNIT_TO_MM[target_unit]
        pose = pose - layout.root_position(pose)
        return self.tokenizer.encode_pose(pose)

    # ------------------------------------------------------------------ outputs
    def post_process(
        self,
        generated_ids,
        task: Union[str, Sequence[str]] = "action_recognition",
        layout: Union[None, str, Sequence[Optional[str]]] = None,
        scores=None,
        top_k: int = 5,
        pose_decoding: str = "bins",
    ) -> List[Dict[str, Any]]:
        """Structured results from generated token ids, one dict per sample.

        Args:
            generated_ids (`torch.Tensor` / array `(B, L)` or list of id lists): `generate()` output (a leading
                `<s>` is skipped).
            task (`str` or `list[str]`): task of each sample (full name or shorthand).
            layout (`str` or `list`, *optional*): input layout, needed for pose estimation (defaults to the
                feature extractor's `default_layout`); the output joints are in the layout its model layout is
                lifted to (`pose_target_layouts`; itself unless listed).
            scores (*optional*): the model's `label_scores` `(B, num_label_tokens)`, logits over the whole vocabulary
                at the label step `(B, V)`, every step's logits `(B, L, V)` (the model's `sequence_scores`), or
                `generate`'s per-step tuple. Label tasks read the first step: `score` and `top_k` (softmax over
                label tokens only). Pose estimation reads every step with `pose_decoding="expectation"`.
            top_k (`int`, defaults to 5): entries of `top_k`.
            pose_decoding (`str`, defaults to `"bins"`): pose estimation's coordinates: `"bins"`, the centres of the
                generated bins (`UPSTokenizer.decode_pose`); `"expectation"`, the mean of each coordinate's bin
                distribution (`UPSTokenizer.expected_pose`; needs every step's `scores`).

        Returns:
            Recognition / early prediction: `{"label", "label_id" (token id), "label_index" (index into
            `tokenizer.label_names`), "score", "top_k"}` (`label` is None when the first token is no label).
            Pose estimation: `{"keypoints_3d"` (K, J, 3) float32 millimetres, root-relative, camera frame (NaN where
            a generated token is not a valid bin), `"joint_names", "layout", "units": "mm"}`.
        """
        sequences = _generated_sequences(generated_ids)
        if isinstance(top_k, (bool, np.bool_)) or not isinstance(top_k, (int, np.integer)):
            raise TypeError(f"top_k must be a non-negative integer, got {type(top_k).__name__} {top_k!r:.40}")
        if top_k < 0:
            raise ValueError(f"top_k must be a non-negative integer, got {top_k}")
        check_pose_decoding(pose_decoding)
        tasks = _per_sample(task, len(sequences), "task")
        layouts = _per_sample(layout, len(sequences), "layout")
        is_label = [not task_emits_pose(t) for t in tasks]
        step_scores = _step_scores(scores)
        if pose_decoding == "expectation" and step_scores is None and not all(is_label):
            raise ValueError("pose_decoding='expectation' needs every step's scores: pass scores=model."
                             "sequence_scores(sequences, ...) or generate()'s scores (output_scores=True, "
                             "return_dict_in_generate=True)")
        probabilities = self._label_probabilities(scores if step_scores is None else step_scores[:, 0], is_label)
        results = []
        for b, ids in enumerate(sequences):
            if not is_label[b]:
                name = layouts[b] or self.feature_extractor.default_layout
                if name is None:
                    raise ValueError("post_process needs layout= to decode pose estimation (no default_layout set)")
                output_layout = LAYOUTS[self.pose_target_layout(self.feature_extractor.model_layout(name))]
                if pose_decoding == "expectation":
                    # Step s of the scores chose token s + 1 of the row, the first bin after <s>.
                    keypoints = self.tokenizer.expected_pose(
                        step_scores[b], output_layout.num_joints, num_frames=self.pose_estimation_target_frames
                    )
                else:
                    keypoints = self.tokenizer.decode_pose(
                        ids, output_layout.num_joints, num_frames=self.pose_estimation_target_frames, strict=False
                    )
                results.append({
                    "keypoints_3d": keypoints, "joint_names": list(output_layout.joint_names),
                    "layout": output_layout.name, "units": "mm",
                })
            else:
                results.append(self._label_result(ids, None if probabilities is None else probabilities[b], top_k))
        return results

    def _label_probabilities(self, scores, is_label: List[bool]) -> Optional[np.ndarray]:
        """Softmax over the label tokens of the label step's scores, `(batch, num_label_tokens)`; the rows of label
        tasks (``is_label``) must hold a distribution, the others (pose rows, whose label logits generate()'s
        constraint masks) are not read."""
        if scores is None:
            return None
        batch_size = len(is_label)
        if isinstance(scores, (tuple, list)):  # generate()'s per-step scores: the label step is the first
            if not scores:
                raise ValueError("scores is an empty sequence; expected (batch, vocab) logits or generate()'s scores")
            scores = scores[0]
        try:
            scores = torch.as_tensor(scores).detach()
            if scores.is_complex() or scores.dtype == torch.bool:
                raise TypeError(f"dtype {scores.dtype} is not real logits")
            scores = scores.float().cpu()
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"scores must be a (batch, vocab) array of logits, got {type(scores).__name__} "
                            f"({error})") from None
        ids = self.tokenizer.label_token_ids
        if scores.ndim != 2 or scores.shape[0] != batch_size or scores.shape[1] not in (len(ids),
                                                                                      self.tokenizer.vocab_size):
            raise ValueError(f"scores must be (batch, num_label_tokens={len(ids)}) label scores or (batch, "
                             f"vocab={self.tokenizer.vocab_size}) logits, got shape {tuple(scores.shape)}")
        label_scores = scores if scores.shape[1] == len(ids) else scores[:, ids.start : ids.stop]
        # -inf is a masked token (generate's logits processors); NaN, +inf or a row without any finite label
        # logit has no probability distribution.
        checked = label_scores[torch.as_tensor(is_label, dtype=torch.bool)]
        if torch.isnan(checked).any() or torch.isposinf(checked).any():
            raise ValueError("scores hold NaN or +inf logits over the label tokens")
        if not torch.isfinite(checked).any(dim=-1).all():
            raise ValueError("scores: every label logit of a sample is -inf (no label is possible)")
        return torch.softmax(label_scores, dim=-1).numpy()

    def _label_result(self, ids, probabilities, top_k) -> Dict[str, Any]:
        tok = self.tokenizer
        names = tok.label_names
        first = next((i for i in ids if i not in (tok.pad_token_id, tok.bos_token_id)), None)
        label_id = first if first in tok.label_token_ids else None
        index = None if label_id is None else label_id - tok.label_token_offset
        label = None if index is None else names[index]
        result = {"label": label, "label_id": label_id, "label_index": index, "score": None, "top_k": []}
        if probabilities is not None:
            if index is not None:
                result["score"] = float(probabilities[index])
            order = np.argsort(-probabilities, kind="stable")[: max(int(top_k), 0)]
            result["top_k"] = [
                {"label": names[i], "label_id": int(i) + tok.label_token_offset, "score": float(probabilities[i])}
                for i in order
            ]
        return result

    # ------------------------------------------------------------------ agreement with a model
    def keep_layouts(self, layouts: Sequence[str]) -> None:
        """Restrict this processor to the model layouts ``layouts`` (in their order), for a model that knows only
        them: its joints are padded to the largest of them instead of NTU's 25 (a HumanEva-I lifter computes on 15).
        Conversions into a dropped layout go with it; a dropped default layout becomes None. Raises ValueError
        naming a layout this processor does not know, or a pose target layout that would be dropped."""
        fe = self.feature_extractor
        layouts = list(layouts)
        unknown = [name for name in layouts if name not in fe.layouts]
        if unknown or not layouts:
            raise ValueError(f"keep_layouts: {unknown or 'no layouts'} given; the processor's layouts are {fe.layouts}")
        lost_targets = {k: v for k, v in self.pose_target_layouts.items() if k in layouts and v not in layouts}
        if lost_targets:
            raise ValueError(f"keep_layouts: pose_target_layouts {lost_targets} lift to a layout not kept")
        settings = fe.to_dict()
        conversions = {src: dst for src, dst in fe.layout_conversions.items() if dst in layouts}
        default = fe.default_layout if fe.default_layout in layouts + list(conversions) else None
        settings.update(layouts=layouts, layout_conversions=conversions, default_layout=default)
        self.feature_extractor = type(fe)(**settings)
        self.pose_target_layouts = {k: v for k, v in self.pose_target_layouts.items() if k in layouts}

    def check_model_config(self, config) -> None:
        """Raise ValueError when this processor and a model config disagree on vocabulary, layouts or tasks."""
        problems = []
        tok, fe = self.tokenizer, self.feature_extractor
        if int(config.num_bins) != tok.num_bins:
            problems.append(f"num_bins: model {config.num_bins}, tokenizer {tok.num_bins}")
        if int(config.num_label_tokens) != tok.num_label_tokens:
            problems.append(f"num_label_tokens: model {config.num_label_tokens}, tokenizer {tok.num_label_tokens}")
        model_layouts = [v["name"] for v in config.layouts]
        if model_layouts != list(fe.layouts):
            problems.append(f"layouts: model {model_layouts}, feature extractor {fe.layouts}")
        if list(config.tasks) != list(fe.tasks):
            problems.append(f"tasks: model {list(config.tasks)}, feature extractor {fe.tasks}")
        model_targets = dict(getattr(config, "pose_target_layouts", None) or {})
        if model_targets != self.pose_target_layouts:
            problems.append(f"pose_target_layouts: model {model_targets}, processor {self.pose_target_layouts}")
        k = int(getattr(config, "pose_estimation_target_frames", 1))
        if k != self.pose_estimation_target_frames:
            problems.append(f"pose_estimation_target_frames: model {k}, processor {self.pose_estimation_target_frames}")
        frames = fe.num_frames if fe.num_frames is not None else fe.max_frames
        if frames > int(config.max_frames):
            problems.append(f"frames: the feature extractor emits up to {frames}, the model takes {config.max_frames}")
        if problems:
            raise ValueError("Processor and model config disagree: " + "; ".join(problems))


def _step_scores(scores) -> Optional[torch.Tensor]:
    """Every step's logits `(B, L, V)` from `(B, L, V)` scores or generate()'s per-step tuple; None for one step's
    `(B, V)` or `(B, num_label_tokens)` scores, or none (`_label_probabilities` checks those)."""
    if scores is None or (isinstance(scores, (tuple, list)) and not scores):
        return None
    try:
        if isinstance(scores, (tuple, list)):
            steps = torch.stack([torch.as_tensor(step) for step in scores], dim=1)
        elif np.ndim(scores) == 3:
            steps = torch.as_tensor(scores)
        else:
            return None
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"scores must be logits: (batch, vocab) at the label step, (batch, steps, vocab), or "
                        f"generate()'s per-step tuple of (batch, vocab) ({error})") from None
    if steps.ndim != 3 or steps.shape[1] == 0:
        raise ValueError(f"scores must be (batch, steps >= 1, vocab) logits or generate()'s per-step tuple of (batch, "
                         f"vocab), got {tuple(steps.shape)} after stacking")
    return steps


def _generated_sequences(generated_ids) -> List[List[int]]:
    """``generate()`` output (B, L) (tensor, array or list of id sequences) as a list of B lists of ints."""
    if isinstance(generated_ids, (torch.Tensor, np.ndarray)):
        if generated_ids.ndim != 2:
            raise ValueError(f"generated_ids must be shaped (batch, length), got shape {tuple(generated_ids.shape)}")
        rows = list(generated_ids)
    elif isinstance(generated_ids, (list, tuple)):
        rows = list(generated_ids)
    else:
        raise TypeError(f"generated_ids must be a (batch, length) tensor, array or list of id sequences, got "
                        f"{type(generated_ids).__name__}")
    if not rows:
        raise ValueError("generated_ids is an empty batch")
    sequences = []
    for b, row in enumerate(rows):
        if isinstance(row, (int, np.integer)) or (hasattr(row, "ndim") and row.ndim == 0):
            raise ValueError(f"generated_ids must be shaped (batch, length); entry {b} is a single id (wrap one "
                             "sequence in a list)")
        try:
            sequences.append(_token_ids(row))
        except TypeError as error:
            raise TypeError(f"generated_ids entry {b}: {error}") from None
    return sequences


def _split_targets(target_poses, batch_size: int) -> list:
    """One target (or None) per sample."""
    if target_poses is None:
        return [None] * batch_size
    if isinstance(target_poses, (np.ndarray, torch.Tensor)):
        if target_poses.ndim == 3:
            return _per_sample([target_poses], batch_size, "target_poses")
        return _per_sample(list(target_poses), batch_size, "target_poses")
    target_poses = list(target_poses)
    if len(target_poses) == batch_size and all(
        t is None or isinstance(t, (np.ndarray, torch.Tensor)) or np.ndim(t) == 3 for t in target_poses
    ):
        return target_poses
    if batch_size == 1:
        return [target_poses]
    raise ValueError(f"target_poses must hold one (T, J, 3) pose sequence (or None) per sample ({batch_size})")


__all__ = ["UPSProcessor"]
