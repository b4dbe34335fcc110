"""The Hub folder of a trained UPS model: one function writes it, one pushes it as a single commit.

A Hub folder holds everything `pipeline(model=repo, trust_remote_code=True)` and
`AutoModel.from_pretrained(repo, trust_remote_code=True)` need on a machine without this package:

- `config.json` (with `auto_map` and `custom_pipelines`), `generation_config.json`, `model.safetensors`;
- the processor (`processor_config.json`, `tokenizer_config.json`, `vocab.json`, `prompts.json`);
- the flat remote code (`configuration_ups.py`, `modeling_ups.py`, `pipeline_ups.py`, `processing_ups.py`,
  `feature_extraction_ups.py`, `tokenization_ups.py`, `skeletons.py`, `pose_io.py`);
- `README.md`, the model card (usage, labels, units, coordinate bins, training data, results), and `results.json`
  when results are given.

`examples/train.py` calls `export_hub_folder` at the end of training; `ups export-hub` calls it on a saved
checkpoint.
"""

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from ..pipeline_ups import PoseSequenceModelingPipeline
from ..skeletons import LAYOUTS

PIPELINE_TASK = "pose-sequence-modeling"
CARD_TAGS = ["skeleton", "action-recognition", "pose-estimation", "ups"]

# Files a complete Hub folder must hold (see the module docstring).
REQUIRED_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "processor_config.json",
    "tokenizer_config.json",
    "vocab.json",
    "configuration_ups.py",
    "modeling_ups.py",
    "pipeline_ups.py",
    "processing_ups.py",
    "feature_extraction_ups.py",
    "tokenization_ups.py",
    "skeletons.py",
    "pose_io.py",
    "README.md",
)

# How each task is named in the card's model-index.
_TASK_CARD_NAMES = {
    "action_recognition_3d": ("skeleton-action-recognition", "Action recognition (3D skeletons)"),
    "action_recognition_2d": ("skeleton-action-recognition", "Action recognition (2D skeletons)"),
    "pose_estimation_3d": ("3d-pose-estimation", "3D pose estimation (2D-to-3D lifting)"),
    "early_action_prediction_3d": ("early-action-prediction", "Early action prediction (3D skeletons)"),
}
# Training arguments never written to a card (credentials).
_SECRET_ARGUMENT = re.compile(r"token|password|secret|key", re.IGNORECASE)
SYNTHETIC_DATA = "synthetic"  # what examples/train.py trains on without --dataset
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

CITATION = """@inproceedings{foo2023ups,
  title     = {Unified Pose Sequence Modeling},
  author    = {Foo, Lin Geng and Li, Tianjiao and Rahmani, Hossein and Ke, Qiuhong and Liu, Jun},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {13019--13030},
  year      = {2023},
  doi       = {10.1109/CVPR52729.2023.01251}
}"""


def export_hub_folder(
    model,
    processor,
    output_dir,
    results: Optional[Dict[str, Any]] = None,
    training_args: Optional[Dict[str, Any]] = None,
    repo_id: Optional[str] = None,
    license: Optional[str] = None,
) -> Path:
    """Write a complete Hub folder for ``model`` and ``processor`` into ``output_dir``.

    Args:
        model ([`UPSForPoseSequenceModeling`]): the trained model (left in eval mode).
        processor ([`UPSProcessor`]): its processor; must agree with the model (`check_model_config`).
        output_dir (`str` or `os.PathLike`): folder to write (created; existing files are overwritten).
        results (`dict`, *optional*): evaluation results, `{task: metrics}` or `examples/train.py`'s
            `{"tasks_results": {task: metrics}, ...}`; metrics as `training.evaluate_tasks` returns them (`top1`,
            `top5`, `top1_at_ratio`, `mpjpe`, `p_mpjpe`, `num_samples`). Written to `results.json` and into the card
            (table and model-index).
        training_args (`dict`, *optional*): the training options (e.g. `vars(args)` of `examples/train.py`); the card
            lists the data per task and the recipe. Arguments whose name mentions a token, key or password are never
            written.
        repo_id (`str`, *optional*): the Hub id used in the card's snippets (default: `training_args["hub_model_id"]`,
            else the folder's name, or the run's name for `<run>/final`).
        license (`str`, *optional*): licence identifier for the card metadata (mind the training data's terms).

    Returns:
        `Path` of the folder.
    """
    output_dir = Path(output_dir)
    processor.check_model_config(model.config)
    model.eval()
    pipe = PoseSequenceModelingPipeline(model=model, processor=processor, task=PIPELINE_TASK, device=model.device)
    pipe.save_pretrained(output_dir)  # model, code, custom_pipelines and the processor
    if results is not None:
        (output_dir / "results.json").write_text(json.dumps(results, indent=2, default=_json_default) + "\n")
    card = model_card(model, processor, results=results, training_args=training_args,
                      repo_id=repo_id or _default_repo_id(output_dir, training_args), license=license)
    card.save(output_dir / "README.md")
    missing = missing_hub_files(output_dir)
    if missing:  # a transformers change in what save_pretrained writes would otherwise ship a broken repo
        raise RuntimeError(f"export_hub_folder wrote an incomplete folder {output_dir}: missing {missing}")
    return output_dir


def _default_repo_id(output_dir: Path, training_args: Optional[Dict[str, Any]]) -> str:
    """The training run's `hub_model_id`, else the run's name (examples/train.py writes `<run>/final`)."""
    if training_args and training_args.get("hub_model_id"):
        return str(training_args["hub_model_id"])
    folder = output_dir.resolve()
    return folder.parent.name if folder.name == "final" else folder.name


def missing_hub_files(folder) -> List[str]:
    """Names of what a complete Hub folder lacks (files, `auto_map`, `custom_pipelines`); empty when complete."""
    folder = Path(folder)
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    config_path = folder / "config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if PIPELINE_TASK not in (config.get("custom_pipelines") or {}):
            missing.append(f"config.json custom_pipelines[{PIPELINE_TASK!r}]")
        if "AutoModel" not in (config.get("auto_map") or {}):
            missing.append("config.json auto_map['AutoModel']")
    return missing


def push_folder_to_hub(
    folder,
    repo_id: str,
    token: Optional[str] = None,
    private: Optional[bool] = None,
    revision: Optional[str] = None,
    commit_message: str = "Upload UPS model",
):
    """Create ``repo_id`` (if needed) and upload ``folder`` to it as one commit.

    The folder must be complete (see [`missing_hub_files`]); ValueError names what is missing. Returns the
    `CommitInfo` of `HfApi.upload_folder`.
    """
    missing = missing_hub_files(folder)
    if missing:
        raise ValueError(f"{folder} is not a complete UPS Hub folder (missing {missing}); write it with "
                         "export_hub_folder or `ups export-hub`")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model", revision=revision,
                             commit_message=commit_message)


# ---------------------------------------------------------------------- model card
def model_card(
    model,
    processor,
    results: Optional[Dict[str, Any]] = None,
    training_args: Optional[Dict[str, Any]] = None,
    repo_id: str = "ups-model",
    license: Optional[str] = None,
) -> ModelCard:
    """The model card (`huggingface_hub.ModelCard`) of a UPS model: YAML metadata (library, tags, model-index with
    the results), usage with `pipeline` / `AutoModel` / the `ups` command, labels, output units and coordinate
    bins, input layouts, training data and recipe, results table, citation."""
    config, tokenizer, extractor = model.config, processor.tokenizer, processor.feature_extractor
    task_results = _task_results(results)
    training_args = {k: v for k, v in (training_args or {}).items() if not _SECRET_ARGUMENT.search(str(k))}
    data = _training_data(training_args, list(config.tasks))
    name = repo_id.split("/")[-1]

    eval_results = []
    for task, metric_type, metric_name, value in _metric_rows(task_results):
        task_type, task_name = _TASK_CARD_NAMES.get(task, (task, task))
        dataset = _dataset_name(data.get(task, "unspecified"))
        eval_results.append(EvalResult(
            task_type=task_type, task_name=task_name, dataset_type=dataset, dataset_name=dataset, dataset_split="test",
            metric_type=metric_type, metric_name=metric_name, metric_value=round(value, 4),
        ))
    hub_datasets = sorted({d for d in data.values() if _HUB_ID.match(d) and not os.path.exists(d)})
    card_data = ModelCardData(
        library_name="transformers", tags=list(CARD_TAGS), license=license, datasets=hub_datasets or None,
        model_name=name if eval_results else None, eval_results=eval_results or None,
    )

    sections = [
        f"# {name}",
        "A UPS (Unified Pose Sequence Modeling, Foo et al., CVPR 2023) model: one encoder-decoder for skeleton action "
        "recognition (3D and 2D), early action prediction and 3D pose estimation (2D-to-3D lifting). Every output "
        "is a token sequence over one vocabulary of action labels, quantised x/y/z coordinates and end-of-task "
        "tokens.",
        _usage_section(repo_id, config),
        _inputs_section(config, extractor),
        _outputs_section(tokenizer, processor),
        _labels_section(tokenizer),
        _model_section(model, results),
        _training_section(data, training_args, config),
        _results_section(task_results, results),
        "## Citation\n\n```bibtex\n" + CITATION + "\n```",
    ]
    content = f"---\n{card_data.to_yaml()}\n---\n\n" + "\n\n".join(s for s in sections if s) + "\n"
    return ModelCard(content)


def _usage_section(repo_id: str, config) -> str:
    return f"""## Usage

The code ships with the model (`trust_remote_code=True`); it needs `torch`, `transformers` and `numpy` only.

```python
import numpy as np
from transformers import pipeline

ups = pipeline(model="{repo_id}", trust_remote_code=True)

# Action recognition from a skeleton file (NTU .skeleton, Kinetics-skeleton or AlphaPose JSON, .npy, .npz, pyskl .pkl)
ups("S001C001P001R001A001.skeleton", top_k=5)        # [{{"label": ..., "score": ...}}, ...]
# ... or from an array (T, J, C) / (M, T, J, C): 3D joints (C = 3) or 2D joints (+ confidence)
ups(np.load("clip.npy"), task="action_recognition", layout="ntu25")
# Early action prediction from the first 40% of the frames
ups("clip.skeleton", task="early_action_prediction", observation_ratio=0.4)
# 3D pose estimation: 2D keypoints (T, 17, 2) -> root-relative 3D joints in millimetres
ups(keypoints_2d, task="pose_estimation", layout="h36m17")["keypoints_3d"]              # centre frame (1, 17, 3)
ups(keypoints_2d, task="pose_estimation", layout="h36m17", frames="all")["keypoints_3d"]  # every frame (T, 17, 3)
# A list of inputs runs in batches
ups(["a.skeleton", "b.skeleton"], batch_size=2)
```

With the model and processor directly:

```python
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
inputs = processor(poses, task="action_recognition", layout="ntu25")   # poses: (T, J, C) or (M, T, J, C)
generated = model.generate(**inputs)
processor.post_process(generated, task="action_recognition")
```

From the command line, with the `ups` package installed:
`ups predict clip.skeleton --model {repo_id} --task action_recognition`."""


def _inputs_section(config, extractor) -> str:
    rows = [f"| `{v['name']}` | {v['num_joints']} | {LAYOUTS[v['name']].description if v['name'] in LAYOUTS else ''} |"
            for v in config.layouts]
    rows += [f"| `{src}` (converted to `{dst}`) | {LAYOUTS[src].num_joints} | {LAYOUTS[src].description} |"
             for src, dst in extractor.layout_conversions.items()]
    frames = (f"every clip is resampled to {extractor.num_frames} frames" if extractor.num_frames else
              f"clips longer than {extractor.max_frames} frames are resampled uniformly to {extractor.max_frames}")
    return "\n".join([
        "## Inputs",
        "",
        f"Tasks: {', '.join(f'`{t}`' for t in config.tasks)}. Up to {extractor.max_persons} persons per clip; "
        f"{frames}. Inputs are centred on the first person's root joint and scaled to unit size by the processor, "
        "so metres, millimetres and pixels all work. 2D input gets Z = 0.",
        "",
        "| layout | joints | source |",
        "|---|---|---|",
        *rows,
    ])


def _outputs_section(tokenizer, processor) -> str:
    ranges = tokenizer.coordinate_range
    widths = tokenizer.bin_width
    axis_rows = [f"| {axis} | [{low:g}, {high:g}] | {width:.2f} | {width / 2:.2f} |"
                 for axis, (low, high), width in zip("xyz", ranges, widths)]
    k = processor.pose_estimation_target_frames
    frames = "the centre frame" if k == 1 else f"{k} consecutive frames around the centre"
    return "\n".join([
        "## Outputs and units",
        "",
        "- **Action recognition / early prediction**: the `top_k` labels with the model's probabilities over the "
        "label tokens (the first is the generated label).",
        f"- **3D pose estimation**: {frames} of the input clip per model call (`frames=\"all\"` slides a centred "
        "window over every frame). `keypoints_3d` is in **millimetres**, **root-relative** (the layout's root "
        "joint, the pelvis for `h36m17`, at the origin), in the **camera frame** (x right, y down, z away from the "
        "camera). No global trajectory is predicted.",
        "",
        f"Each axis is quantised into {tokenizer.num_bins} bins; outputs are bin centres, so the quantisation error "
        "is at most half a bin:",
        "",
        "| axis | range (mm) | bin width (mm) | max. quantisation error (mm) |",
        "|---|---|---|---|",
        *axis_rows,
    ])


def _labels_section(tokenizer, max_listed: int = 120) -> str:
    names = tokenizer.label_names
    header = f"## Labels\n\n{len(names)} action labels (`prompts.json` holds them in token order)."
    if len(names) > max_listed:
        return header
    listing = "\n".join(f"{i}. {name}" for i, name in enumerate(names))
    return f"{header}\n\n<details><summary>All labels</summary>\n\n{listing}\n\n</details>"


def _model_section(model, results: Optional[Dict[str, Any]] = None) -> str:
    config = model.config
    parameters = sum(p.numel() for p in model.parameters())
    section = (f"## Model\n\n{parameters / 1e6:.2f} M parameters. Joint tokenizer channels "
               f"{list(config.tokenizer_channels)} "
               f"(temporal strides {list(config.tokenizer_temporal_strides)}); {config.encoder_layers} encoder layers "
               f"with {config.encoder_blocks_per_layer} routed SEM-TEM blocks each; decoder {config.decoder_layers} "
               f"layers of width {config.d_model}; vocabulary of {config.vocab_size} tokens.")
    vocabulary = vocabulary_note(results)
    return f"{section}\n\n{vocabulary}" if vocabulary else section


def vocabulary_note(results: Optional[Dict[str, Any]]) -> str:
    """What the card says about the vocabulary embeddings, from a training run's results (`vocabulary_record`'s
    fields, as `examples/train.py` records them); empty when the results do not say."""
    if not results or not results.get("vocabulary_init"):
        return ""
    if results.get("random_vocabulary"):
        return (f"**Vocabulary embeddings: {results['vocabulary_init']}.** The paper initialises every vocabulary "
                "entry (labels, coordinate bins, end-of-task tokens) from a text encoder's features of its prompt; "
                "this model was trained without one, so its results are not those of the paper's model.")
    if results.get("text_encoder") and not results.get("vocabulary_checkpoint"):
        return (f"Vocabulary embeddings initialised from the text encoder `{results['text_encoder']}`: the features "
                "of each entry's prompt (labels, coordinate bins, end-of-task tokens), as the paper does with "
                "RoBERTa-base.")
    return f"Vocabulary embeddings: {results['vocabulary_init']}."


def _training_section(data: Dict[str, str], training_args: Dict[str, Any], config) -> str:
    if not data and not training_args:
        return ""
    lines = ["## Training", ""]
    if data:
        described = {SYNTHETIC_DATA: "synthetic motion (`datasets_scripts` generator)"}
        lines += ["| task | data |", "|---|---|"]
        lines += [f"| `{task}` | {described.get(source, _dataset_name(source))} |" for task, source in data.items()]
    recipe_keys = ("config", "model_config", "processor", "max_steps", "num_train_epochs",
                   "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "weight_decay",
                   "lr_scheduler_type", "num_warmup_steps", "gumbel_temperature_start", "gumbel_temperature_end",
                   "mixed_precision", "pose_window", "pose_decoding", "text_encoder", "seed")
    recipe = [f"- `{k}`: {training_args[k]}" for k in recipe_keys if training_args.get(k) is not None]
    if recipe:
        lines += ["", "Recipe:", "", *recipe]
    if training_args.get("pose_window"):
        lines += ["", f"Pose estimation was trained on {training_args['pose_window']}-frame windows: pass "
                      f"`window={training_args['pose_window']}` with `frames=\"all\"`."]
    return "\n".join(lines)


def _results_section(task_results: Dict[str, Dict[str, Any]], results: Optional[Dict[str, Any]]) -> str:
    rows = _metric_rows(task_results)
    if not rows:
        return ""
    lines = ["## Results", "", "Test splits; a single model, one clip per test sample (no multi-clip testing, no "
             "ensembles).", "",
             "| task | metric | value | test samples |", "|---|---|---|---|"]
    for task, metric_type, metric_name, value in rows:
        count = task_results[task].get("num_samples", "")
        lines.append(f"| `{task}` | {metric_name} | {value:.2f} | {count} |")
    if results and results.get("train_time_s") is not None:
        hours = float(results["train_time_s"]) / 3600
        took = f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"
        lines += ["", f"Training took {took} ({results.get('steps', '?')} steps)."]
    if results and results.get("random_vocabulary"):
        lines += ["", vocabulary_note(results)]
    return "\n".join(lines)


# ---------------------------------------------------------------------- results helpers
def _task_results(results: Optional[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """``{task: metrics}`` from either results layout."""
    if not results:
        return {}
    if isinstance(results.get("tasks_results"), dict):
        results = results["tasks_results"]
    return {task: metrics for task, metrics in results.items() if isinstance(metrics, dict)}


def _metric_rows(task_results: Dict[str, Dict[str, Any]]) -> List[Tuple[str, str, str, float]]:
    """(task, metric type, metric name, value) for every reported metric; accuracies in percent."""
    rows = []
    for task, metrics in task_results.items():
        if "top1" in metrics:
            rows.append((task, "accuracy", "top-1 accuracy (%)", 100.0 * float(metrics["top1"])))
        if "top5" in metrics:
            rows.append((task, "accuracy", "top-5 accuracy (%)", 100.0 * float(metrics["top5"])))
        for ratio, value in sorted((metrics.get("top1_at_ratio") or {}).items(), key=lambda kv: float(kv[0])):
            rows.append((task, "accuracy", f"top-1 accuracy at {float(ratio) * 100:.0f}% observed (%)",
                         100.0 * float(value)))
        if "mpjpe" in metrics:
            rows.append((task, "mpjpe", "MPJPE (mm)", float(metrics["mpjpe"])))
        if "p_mpjpe" in metrics:
            rows.append((task, "p-mpjpe", "P-MPJPE (mm)", float(metrics["p_mpjpe"])))
    return [row for row in rows if math.isfinite(row[3])]


def _training_data(training_args: Dict[str, Any], tasks: Iterable[str]) -> Dict[str, str]:
    """Task -> data source named in the training arguments (synthetic data when none is given)."""
    datasets = training_args.get("dataset") or {}
    if not training_args:
        return {}
    trained = training_args.get("tasks") or list(tasks)
    return {task: str(datasets.get(task, SYNTHETIC_DATA)) for task in trained}


def _dataset_name(source: str) -> str:
    """A Hub id as it is, a local folder by its name."""
    if source == SYNTHETIC_DATA or _HUB_ID.match(source) and not os.path.exists(source):
        return source
    return Path(source).name or source


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


__all__ = ["export_hub_folder", "push_folder_to_hub", "model_card", "missing_hub_files", "REQUIRED_FILES"]
