"""`pipeline("pose-sequence-modeling")`: skeleton sequences or skeleton files in, action labels or 3D poses out.

This module ships with checkpoints as remote code (`Pipeline.save_pretrained` copies it next to the model and
writes `custom_pipelines` into `config.json`), so it imports its siblings with single-dot imports only and depends
on numpy, torch and transformers alone.
"""

import collections.abc
import os
from typing import Dict, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers.pipelines.base import Pipeline, no_collate_fn
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

from .pose_io import as_pose_sequence_array, load_pose_file, read_pyskl_annotation
from .configuration_ups import task_emits_pose
from .processing_ups import check_pose_decoding

FRAME_MODES = ("center", "all")



class PoseSequenceModelingPipeline(Pipeline):
    r"""
    Action recognition, early action prediction and 3D pose estimation (2D -> 3D lifting) with a UPS model.

    Example:

    ```python
    >>> from transformers import pipeline

    >>> ups = pipeline(model="org/ups-base", trust_remote_code=True)  # or a local checkpoint folder
    >>> ups("S001C001P001R001A001.skeleton")  # NTU .skeleton file, 3D recognition
    [{'label': 'drink water', 'score': 0.91}, {'label': 'eat meal', 'score': 0.04}, ...]
    >>> ups(keypoints_2d, task="pose_estimation", layout="h36m17", frames="all")["keypoints_3d"].shape
    (T, 17, 3)
    ```

    Inputs (one, or a list of them processed `batch_size` at a time):

    - a numpy array / torch tensor `(T, J, C)` (one person) or `(M, T, J, C)` (persons first); `C` = 2 (x, y),
      3 (x, y, z; or x, y, confidence with `coordinates="2d"`) or 4 (x, y, z, confidence);
    - a pyskl / mmaction2 annotation dict with `keypoint` `(M, T, V, C)` and optional `keypoint_score` `(M, T, V)`
      (other fields such as `label` and `total_frames` are ignored), or the dict `pose_io.load_pose_file` returns;
    - a path to a skeleton file: `.npy`, `.npz`, NTU `.skeleton`, Kinetics-skeleton JSON, AlphaPose JSON, NW-UCLA
      JSON or a pyskl `.pkl` (one annotation, or the one `sample=` names; read with `pose_io.load_pose_file`;
      pickles are unpickled with the restricted unpickler). Dataset files tell their own layout.

    Nested Python lists are not accepted as one sample (a list is a batch); wrap them in `np.asarray`.

    Call arguments:
        task (`str`, *optional*, defaults to `"action_recognition"`): `"action_recognition"` (2D or 3D told from the
            input), `"early_action_prediction"`, `"pose_estimation"`, or a full task name of `model.config.tasks`.
        layout (`str`, *optional*): skeleton layout of the input (`"ntu25"`, `"h36m17"`, `"coco17"`, ...); needed
            when the joint count does not tell it (17 joints: COCO or Human3.6M) and the processor has no default.
        sample (`int` or `str`, *optional*): for pyskl `.pkl` files holding several annotations (every released
            one), the index or `frame_dir` of the annotation to run; the same for every file of a list input.
        observation_ratio (`float` in (0, 1], *optional*): early action prediction only: observe the first
            `ceil(ratio * T)` frames. Omit it when the input already is the observed part of the action.
        coordinates (`"2d"` or `"3d"`, *optional*): how 3-channel arrays are read (x, y, confidence or x, y, z).
        top_k (`int`, *optional*, defaults to 5): number of labels returned (at most the number of labels).
        frames (`"center"` or `"all"`, *optional*, defaults to `"center"`): pose estimation only. `"center"` lifts
            the processor's target frame(s) of the clip (its centre frame for a model trained VideoPose3D-style);
            `"all"` lifts every frame by sliding a window over the sequence (edge frames replicated): a window
            centred on each frame, or, for a model that predicts `K` frames per window
            (`pose_estimation_target_frames`), one window per `K` frames; the windows run in batches.
        window (`int`, *optional*): frames per window for `frames="all"`; defaults to the processor's `num_frames`,
            else the whole sequence (at most its `max_frames`). Use the window the checkpoint was trained with.
        window_batch_size (`int`, *optional*, defaults to 32): clips (windows) the model runs at once.
        pose_decoding (`"bins"` or `"expectation"`, *optional*): pose estimation only. `"bins"` returns the centres
            of the generated coordinate bins; `"expectation"` the mean of each coordinate's predicted bin
            distribution (one more decoder call per batch of windows; measured on HumanEva-I in docs/results.md).
            Defaults to the processor's `pose_decoding` (what the checkpoint's figures were measured with).
        return_routing (`bool`, *optional*, defaults to `False`): add the encoder's per-layer routing decisions.
        Generation arguments (`num_beams`, `do_sample`, ...) apply to pose estimation, the only task that decodes
        more than one token.

    Returns:
        Recognition and early prediction: like the `text-classification` / `image-classification` pipelines, a
        list of `top_k` dicts `{"label": str, "score": float}` sorted by score; the scores are the model's
        probabilities over the label tokens at the label step (the first entry is the generated label). With
        `return_routing=True` a dict `{"predictions": [...], "routing": {...}}` instead.

        Pose estimation: a dict with `"keypoints_3d"` (`np.ndarray` float32 `(K, J, 3)`, or `(T, J, 3)` with
        `frames="all"`) in millimetres, root-relative (the layout's root joint(s) at the origin), in the camera frame
        (x right, y down, z forward, as the training data); `"frame_indices"` (the input frames they belong to),
        `"joint_names"`, `"layout"` (the model layout, e.g. `h36m17` for Halpe-26 input) and `"units": "mm"`;
        plus `"routing"` with `return_routing=True`. Joints whose generated token is not a valid bin are NaN.

        `"routing"`: `{"blocks": [block index per encoder layer], "probabilities": [[softmax over the blocks] per
        layer]}` (routing depends on the task only).

        A list input returns a list of these.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False
    _load_video_processor = False
    _pipeline_calls_generate = True
    # Pipeline options named like generation parameters (`top_k` counts labels, it does not truncate sampling).
    _non_generation_params = ("top_k",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError(
                "PoseSequenceModelingPipeline needs a UPSProcessor (pass processor=..., or a checkpoint that holds "
                "processor_config.json)"
            )
        # A processor built for another vocabulary or layout list would silently mislabel outputs.
        self.processor.check_model_config(self.model.config)

    def __call__(self, inputs, *args, **kwargs):
        """Run the pipeline on one input or a list of inputs (see the class docstring for inputs and options)."""
        # `Pipeline.__call__` peeks at `inputs[0]` of every list or tuple (chat detection): an empty one would end
        # in an IndexError.
        if isinstance(inputs, (list, tuple)) and len(inputs) == 0:
            raise ValueError("inputs is an empty list: nothing to run the model on")
        return super().__call__(inputs, *args, **kwargs)

    # ------------------------------------------------------------------ parameters
    def _sanitize_parameters(
        self,
        task=None,
        layout=None,
        sample=None,
        observation_ratio=None,
        coordinates=None,
        top_k=None,
        frames=None,
        window=None,
        window_batch_size=None,
        return_routing=None,
        pose_decoding=None,
        **generate_kwargs,
    ):
        # The task, layout, observation ratio and coordinates are checked where they are used, by the task spec and
        # the feature extractor; only the pipeline's own options are checked here.
        given = dict(task=task, layout=layout, sample=sample, coordinates=coordinates, observation_ratio=observation_ratio)
        preprocess = {key: value for key, value in given.items() if value is not None}
        forward, postprocess = {}, {}
        if frames is not None:
            if frames not in FRAME_MODES:
                raise ValueError(f"frames must be one of {list(FRAME_MODES)}, got {frames!r}")
            preprocess["frames"] = postprocess["frames"] = frames
        if window is not None:
            preprocess["window"] = _positive_int(window, "window", "a positive number of frames")
        if window_batch_size is not None:
            forward["window_batch_size"] = _positive_int(window_batch_size, "window_batch_size", "positive")
        if top_k is not None:
            postprocess["top_k"] = _positive_int(top_k, "top_k", "a positive number of labels")
        if return_routing is not None:
            postprocess["return_routing"] = bool(return_routing)
        if pose_decoding is None and self.processor is not None:  # None while __init__ has yet to refuse that
            pose_decoding = self.processor.pose_decoding
        if pose_decoding is not None:
            forward["pose_decoding"] = postprocess["pose_decoding"] = check_pose_decoding(pose_decoding)
        forward.update(generate_kwargs)
        return preprocess, forward, postprocess

    # ------------------------------------------------------------------ preprocess
    def preprocess(
        self,
        inputs,
        task: str = "action_recognition",
        layout: Optional[str] = None,
        observation_ratio: Optional[float] = None,
        coordinates: Optional[str] = None,
        frames: str = "center",
        window: Optional[int] = None,
        sample=None,
    ) -> Dict[str, object]:
        emits_pose = task_emits_pose(task)  # raises for an unknown task, before any file is read
        if observation_ratio is not None and not task.startswith("early_action_prediction"):
            raise ValueError(f"observation_ratio applies to early_action_prediction only, not to task {task!r}")
        if frames == "all" and not emits_pose:
            raise ValueError(f"frames='all' applies to pose_estimation only, not to task {task!r}")
        poses, confidences, file_layout = self._read_input(inputs, layout, sample)
        num_frames = poses.shape[1]
        clips = [slice(None)] if frames == "center" else self._sliding_windows(num_frames, window)
        # The feature extractor validates and prepares every clip; the rows are batched in `_forward`.
        samples = self.processor.feature_extractor.prepare(
            [poses[:, clip] for clip in clips], task=task, layout=layout if layout is not None else file_layout,
            observation_ratio=observation_ratio, coordinates=coordinates, is_batched=True,
            confidences=None if confidences is None else [confidences[:, clip] for clip in clips],
        )
        return {"samples": samples, "num_rows": torch.tensor([len(samples)]),
                "num_input_frames": torch.tensor([num_frames])}

    def _read_input(self, inputs, layout, sample=None):
        """(poses (M, T, J, C), their confidences (M, T, J) or None, the layout the source names or None)."""
        if isinstance(inputs, (str, os.PathLike)):
            loaded = load_pose_file(inputs, layout=layout, sample=sample,
                                    max_persons=self.processor.feature_extractor.max_persons)
            return loaded["poses"], loaded["scores"], loaded["layout"]
        if sample is not None:
            raise ValueError(f"sample={sample!r} selects an annotation of a pyskl file; the input is a "
                             f"{type(inputs).__name__}, not a file path")
        if isinstance(inputs, dict):
            if "keypoint" in inputs:  # pyskl / mmaction2 annotation
                annotation = read_pyskl_annotation(inputs, name=str(inputs.get("frame_dir", "<annotation>")))
                return annotation["poses"], annotation["scores"], None
            if "poses" in inputs:  # what pose_io.load_pose_file returns
                try:
                    poses = np.asarray(inputs["poses"])
                except (TypeError, ValueError) as error:
                    raise ValueError(f"the 'poses' of a dict input must be a numeric array ({error})") from None
                poses = as_pose_sequence_array(poses, "the 'poses' of a dict input")  # (M, T, J, C), finite float32
                return poses, inputs.get("scores"), inputs.get("layout")
            raise ValueError(
                f"a dict input must be a pyskl annotation (with 'keypoint') or a load_pose_file result (with "
                f"'poses'); got keys {sorted(inputs)}"
            )
        if isinstance(inputs, torch.Tensor):
            inputs = inputs.detach().cpu().numpy()
        if isinstance(inputs, np.ndarray):
            if inputs.ndim not in (3, 4):  # windows are cut along the frame axis before the extractor sees them
                raise ValueError(f"poses must be shaped (T, J, C) or (M, T, J, C), got {inputs.shape}")
            return (inputs[None] if inputs.ndim == 3 else inputs), None, None
        raise TypeError(
            "inputs must be a numpy array or torch tensor (T, J, C) / (M, T, J, C), a pyskl annotation dict or a "
            f"path to a skeleton file, got {type(inputs).__name__} (wrap nested lists in np.asarray)"
        )

    def _sliding_windows(self, num_frames: int, window: Optional[int]) -> List[np.ndarray]:
        """Frame indices of clips whose target frames, taken together, are every frame of the sequence in order."""
        extractor = self.processor.feature_extractor
        if window is None:
            window = extractor.num_frames or min(num_frames, extractor.max_frames)
        step = self.processor.pose_estimation_target_frames
        return [self.processor.window_frame_indices(num_frames, window, start) for start in range(0, num_frames, step)]

    # ------------------------------------------------------------------ batching
    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        # An input may hold several clips (sliding windows): a batch of inputs concatenates their prepared clips,
        # which `_forward` pads and stacks with the feature extractor's collate.
        if isinstance(inputs, collections.abc.Sized):
            dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        else:  # generators: iterable datasets cannot be split between workers
            dataset = PipelineIterator(inputs, self.preprocess, preprocess_params)
            num_workers = min(num_workers, 1)
        collate_fn = no_collate_fn if batch_size == 1 else _concatenate_inputs
        dataloader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=collate_fn)
        model_iterator = PipelineIterator(dataloader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    # ------------------------------------------------------------------ forward
    def _forward(self, model_inputs, window_batch_size: int = 32, pose_decoding: str = "bins", **generate_kwargs):
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
        features = self.processor.feature_extractor.collate(model_inputs["samples"], return_tensors="pt")
        rows = self._ensure_tensor_on_device(dict(features), self.device)
        num_rows = model_inputs["num_rows"]
        config = self.model.config
        encoder = self.model.get_encoder()
        # `task` is a call argument, so every row of a call is pose estimation or every row is a label task
        # (2D and 3D recognition may mix: both decode one label).
        is_pose = task_emits_pose(config.tasks[int(rows["task_ids"][0])])
        sequences, step_scores, label_scores, decisions, probabilities = [], [], [], [], []
        total = rows["task_ids"].shape[0]
        for begin in range(0, total, window_batch_size):
            chunk = {key: value[begin : begin + window_batch_size] for key, value in rows.items()}
            encoded = encoder(**chunk, return_dict=True)
            decisions.append(encoded.router_decisions)
            probabilities.append(encoded.router_probs)
            if is_pose and pose_decoding == "expectation":
                generated, logits = self.model.generate_with_step_logits(encoded, **generate_kwargs)
                sequences.append(generated)
                step_scores.append(logits)
            elif is_pose:
                sequences.append(self.model.generate(encoder_outputs=encoded, **generate_kwargs))
            else:
                label_scores.append(self.model.label_scores(encoder_outputs=encoded))
        outputs = {"num_rows": num_rows, "num_input_frames": model_inputs["num_input_frames"],
                   "task_ids": _first_row_per_item(rows["task_ids"], num_rows),
                   "layout_ids": _first_row_per_item(rows["layout_ids"], num_rows)}
        if sequences:
            width = max(s.shape[1] for s in sequences)
            padded = [torch.nn.functional.pad(s, (0, width - s.shape[1]), value=config.pad_token_id) for s in sequences]
            outputs["sequences"] = _group_rows(torch.cat(padded), num_rows, config.pad_token_id)
        if step_scores:
            padded = [torch.nn.functional.pad(s, (0, 0, 0, width - 1 - s.shape[1])) for s in step_scores]
            outputs["step_scores"] = _group_rows(torch.cat(padded), num_rows, 0.0)
        if label_scores:
            outputs["label_scores"] = _group_rows(torch.cat(label_scores), num_rows, 0.0)
        outputs["router_decisions"] = _group_rows(torch.cat(decisions), num_rows, 0)
        outputs["router_probs"] = _group_rows(torch.cat(probabilities), num_rows, 0.0)
        return outputs

    # ------------------------------------------------------------------ postprocess
    def postprocess(self, model_outputs, top_k: int = 5, frames: str = "center", return_routing: bool = False,
                    pose_decoding: str = "bins"):
        config = self.model.config
        task = config.tasks[int(model_outputs["task_ids"][0])]
        num_rows = int(model_outputs["num_rows"][0])
        routing = {
            "blocks": model_outputs["router_decisions"][0, 0].tolist(),
            "probabilities": model_outputs["router_probs"][0, 0].float().tolist(),
        }
        if not task_emits_pose(task):
            scores = model_outputs["label_scores"][0, :1]
            best = [[config.label_token_ids[int(scores.argmax())]]]
            result = self.processor.post_process(
                best, task=task, scores=scores, top_k=min(top_k, config.num_label_tokens)
            )[0]
            predictions = [{"label": entry["label"], "score": entry["score"]} for entry in result["top_k"]]
            return {"predictions": predictions, "routing": routing} if return_routing else predictions

        layout = self.processor.feature_extractor.layouts[int(model_outputs["layout_ids"][0])]
        sequences = model_outputs["sequences"][0, :num_rows]
        scores = model_outputs["step_scores"][0, :num_rows] if pose_decoding == "expectation" else None
        results = self.processor.post_process(sequences, task=task, layout=[layout] * num_rows, scores=scores,
                                              pose_decoding=pose_decoding)
        num_input_frames = int(model_outputs["num_input_frames"][0])
        keypoints = np.concatenate([r["keypoints_3d"] for r in results], axis=0)
        if frames == "all":
            keypoints = keypoints[:num_input_frames]
            frame_indices = list(range(num_input_frames))
        else:
            frame_indices = self.processor.target_frame_indices(num_input_frames).tolist()
        output = {
            "keypoints_3d": keypoints,
            "frame_indices": frame_indices,
            "joint_names": results[0]["joint_names"],
            "layout": results[0]["layout"],
            "units": "mm",
        }
        if return_routing:
            output["routing"] = routing
        return output

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, save_directory, **kwargs):
        """Save model, pipeline code (`custom_pipelines` in `config.json`) and the processor (which
        `Pipeline.save_pretrained` leaves out), so `pipeline(model=save_directory, trust_remote_code=True)` works."""
        super().save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory)


# ---------------------------------------------------------------------- helpers
def _positive_int(value, name: str, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r:.40}")
    if value < 1:
        raise ValueError(f"{name} must be {what}, got {value}")
    return int(value)


def _concatenate_inputs(items: List[Dict[str, object]]) -> Dict[str, object]:
    """Several preprocessed inputs as one: their prepared clips in order, and each input's clip and frame count."""
    return {
        "samples": [sample for item in items for sample in item["samples"]],
        "num_rows": torch.cat([item["num_rows"] for item in items]),
        "num_input_frames": torch.cat([item["num_input_frames"] for item in items]),
    }


def _group_rows(values: torch.Tensor, num_rows: torch.Tensor, fill) -> torch.Tensor:
    """(sum(num_rows), ...) -> (num_inputs, max(num_rows), ...), padded with ``fill``."""
    counts = num_rows.tolist()
    out = values.new_full((len(counts), max(counts)) + tuple(values.shape[1:]), fill)
    for i, chunk in enumerate(torch.split(values, counts)):
        out[i, : chunk.shape[0]] = chunk
    return out


def _first_row_per_item(values: torch.Tensor, num_rows: torch.Tensor) -> torch.Tensor:
    starts = torch.cumsum(num_rows, 0) - num_rows
    return values[starts.to(values.device)]


__all__ = ["PoseSequenceModelingPipeline"]
