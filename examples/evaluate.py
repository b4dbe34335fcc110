#!/usr/bin/env python
"""Evaluate a UPS checkpoint with the paper's tables.

    python examples/evaluate.py --model outputs/ups-demo/final                      # synthetic test splits
    python examples/evaluate.py --model org/ups --dataset action_recognition_3d=data/nw_ucla --tasks action_recognition_3d
    python examples/evaluate.py --model runs/joint/final --model runs/bone/final --dataset action_recognition_3d=data/nw_ucla
    python examples/evaluate.py --model runs/joint/final --dataset action_recognition_3d=data/nw_ucla --save_scores scores/joint
    python examples/evaluate.py --scores runs/joint/scores --scores runs/bone/scores --scores runs/motion/scores

Action recognition: top-1 / top-5. Pose estimation: MPJPE and P-MPJPE in millimetres, overall and per action.
Early action prediction: top-1 at observation ratios 10% .. 100%. Prints a table and writes JSON (``--output``).
Several ``--model`` fuse their class probabilities (``--fusion_weights``, default equal): the multi-stream score
fusion of CTR-GCN and pyskl, e.g. a joint model and a bone model (``--config nw_ucla_bone`` in examples/train.py, or
``--config_overrides joint_input=false,root_relative_input=false,bone_input=true``). ``--save_scores FOLDER``
keeps the class probabilities ranked (``FOLDER/<task>.npz``; examples/train.py keeps its own in
``OUTPUT_DIR/scores``), and each ``--scores FOLDER`` fuses saved ones, with
the ``--model`` members or alone, without running those models again (CTR-GCN's ``--save-score`` and
``ensemble.py``).
"""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

# The installed package when there is one (`pip install .` or `-e .`); a checkout without any install runs its own.
if importlib.util.find_spec("modeling_ups") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import AutoModel, AutoProcessor  # noqa: E402

import modeling_ups  # noqa: E402,F401
from datasets_scripts.synthetic import build_synthetic_datasets  # noqa: E402
from modeling_ups import UPS_TASKS  # noqa: E402
from modeling_ups.configuration_ups import POSE_ESTIMATION_TASK  # noqa: E402
from modeling_ups.processing_ups import POSE_DECODINGS  # noqa: E402
from modeling_ups.training.data import load_task_datasets  # noqa: E402
from modeling_ups.training.evaluate_tasks import (  # noqa: E402
    CLASSIFICATION_TASKS, ClassScores, evaluate_all_tasks, format_results_table, fuse_saved_scores, view_turn_grid)
from modeling_ups.utils.text_embeddings import vocabulary_record  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[],
                   help="checkpoint folder or Hub id; repeat it to fuse the class scores of several models")
    p.add_argument("--scores", action="append", default=[], metavar="FOLDER",
                   help="class scores saved by --save_scores, fused with the --model members (or alone, without "
                        "model or dataset); repeatable")
    p.add_argument("--save_scores", metavar="FOLDER",
                   help="save each classification task's ranked class probabilities as FOLDER/<task>.npz "
                        "(examples/train.py saves its final evaluation's in OUTPUT_DIR/scores)")
    p.add_argument("--fusion_weights", type=float, nargs="+", metavar="W",
                   help="one weight per --model, then per --scores, for score fusion (default: equal weights)")
    p.add_argument("--dataset", action="append", default=[], metavar="TASK=PATH",
                   help="saved `datasets` folder or Hub id per task (repeatable); default: synthetic test data")
    p.add_argument("--tasks", help="comma-separated tasks (default: those of --dataset, else all four)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--max_eval_samples", type=int)
    p.add_argument("--pose_window", type=int, help="frames per pose-estimation window (long recordings)")
    p.add_argument("--pose_eval_stride", type=int, default=5,
                   help="pose estimation: predict every N-th frame of each test recording (1: every frame)")
    p.add_argument("--test_time_flip", action="store_true",
                   help="pose estimation: average each prediction with the mirrored input's, mirrored back")
    p.add_argument("--pose_decoding", choices=POSE_DECODINGS,
                   help="pose estimation: coordinates from the generated bins' centres (bins) or the mean of each "
                        "coordinate's bin distribution (expectation); default: the checkpoint processor's")
    p.add_argument("--test_clips", type=int, default=1,
                   help="recognition: average the class probabilities of this many clips per sample, the first at "
                        "the segments' centres, the others a random frame of each segment (pyskl's num_clips=10)")
    p.add_argument("--test_view_yaws", type=float, nargs="+", default=[0.0], metavar="DEGREES",
                   help="3D recognition and early prediction: average each clip's class probabilities over these "
                        "turns about the vertical axis (with --test_view_pitches, over every pair)")
    p.add_argument("--test_view_pitches", type=float, nargs="+", default=[0.0], metavar="DEGREES",
                   help="the same about the horizontal axis, after the yaw")
    p.add_argument("--num_train_samples", type=int, default=2000, help="synthetic data: train size (baselines)")
    p.add_argument("--num_eval_samples", type=int, default=400, help="synthetic data: test size")
    p.add_argument("--seed", type=int, default=0, help="synthetic data seed (the training default is 0)")
    p.add_argument("--output", help="write the results JSON here")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="weights and compute dtype (from_pretrained(dtype=...)); bfloat16 measured 2.2x faster on an "
                        "avx512_bf16 CPU, with the accuracy change docs/results.md reports")
    p.add_argument("--trust_remote_code", action="store_true",
                   help="allow loading the model's own code from a Hub folder (off by default)")
    args = p.parse_args(argv)
    datasets = {}
    for spec in args.dataset:
        task, sep, path = spec.partition("=")
        if not sep or task not in UPS_TASKS:
            p.error(f"--dataset expects TASK=PATH with TASK one of {list(UPS_TASKS)}, got {spec!r}")
        datasets[task] = path
    args.dataset = datasets
    if not args.model and not args.scores:
        p.error("give a --model to evaluate, or --scores folders to fuse")
    if args.tasks:
        args.tasks = [t.strip() for t in args.tasks.split(",")]
    elif args.model:
        args.tasks = list(datasets) or list(UPS_TASKS)
    else:  # saved scores alone: the tasks the first folder holds
        args.tasks = ClassScores.saved_tasks(args.scores[0])
        if not args.tasks:
            p.error(f"--scores {args.scores[0]} holds no saved class scores (<task>.npz for a task of "
                    f"{list(CLASSIFICATION_TASKS)})")
    unknown = [t for t in args.tasks if t not in UPS_TASKS]
    if unknown:
        p.error(f"unknown tasks {unknown}; choose from {list(UPS_TASKS)}")
    if args.scores and POSE_ESTIMATION_TASK in args.tasks:
        p.error(f"--scores fuses the classification tasks {list(CLASSIFICATION_TASKS)}; leave "
                f"{POSE_ESTIMATION_TASK} out of --tasks")
    members = len(args.model) + len(args.scores)
    if args.fusion_weights is None:
        args.fusion_weights = [1.0] * members
    if len(args.fusion_weights) != members or min(args.fusion_weights) <= 0:
        p.error(f"--fusion_weights needs one positive weight per --model and --scores ({members}), got "
                f"{args.fusion_weights}")
    return args


def load_model(name: str, args):
    """A checkpoint's model (eval mode) and processor, checked against each other."""
    model = AutoModel.from_pretrained(name, trust_remote_code=args.trust_remote_code,
                                      dtype=getattr(torch, args.dtype)).eval()
    processor = AutoProcessor.from_pretrained(name, trust_remote_code=args.trust_remote_code)
    processor.check_model_config(model.config)
    return model, processor


def main(argv=None):
    args = parse_args(argv)
    model_weights, score_weights = args.fusion_weights[:len(args.model)], args.fusion_weights[len(args.model):]
    saved = list(zip(args.scores, score_weights))
    if not args.model:
        results = fuse_saved_scores(saved, args.tasks, save_scores_to=args.save_scores)
        model = None
    else:
        model, processor = load_model(args.model[0], args)
        # Probabilities are ranked, so only the weights' ratios matter: the first model keeps weight 1.
        fused = [(*load_model(name, args), weight / model_weights[0])
                 for name, weight in zip(args.model[1:], model_weights[1:])]
        saved = [(folder, weight / model_weights[0]) for folder, weight in saved]
        datasets = load_task_datasets(args, processor, build_synthetic=build_synthetic_datasets)
        results = evaluate_all_tasks(model, processor, datasets, args.tasks, batch_size=args.batch_size,
                                     max_samples=args.max_eval_samples, pose_window=args.pose_window,
                                     pose_stride=args.pose_eval_stride, test_time_flip=args.test_time_flip,
                                     test_clips=args.test_clips, pose_decoding=args.pose_decoding, fused=fused,
                                     test_views=view_turn_grid(args.test_view_yaws, args.test_view_pitches),
                                     saved_scores=saved, save_scores_to=args.save_scores)
    if len(args.fusion_weights) > 1:
        fusion = ([{"model": name, "weight": weight} for name, weight in zip(args.model, model_weights)]
                  + [{"scores": folder, "weight": weight} for folder, weight in zip(args.scores, score_weights)])
        print("score fusion of " + ", ".join(f"{m.get('model', m.get('scores'))} (weight {m['weight']:g})"
                                             for m in fusion))
        for r in results.values():
            r["score_fusion"] = fusion
    saved_files = [r["saved_scores"] for r in results.values() if "saved_scores" in r]
    if saved_files:
        print("class scores saved: " + ", ".join(saved_files))
    # examples/train.py records "none" when the vocabulary embeddings stayed random (no text encoder); saved scores
    # alone have no checkpoint to tell.
    vocabulary = vocabulary_record(model.config.text_encoder_name_or_path) if model is not None else None
    print(format_results_table(results, vocabulary_init=vocabulary["vocabulary_init"]
                               if vocabulary and vocabulary["random_vocabulary"] else None))
    for task, r in results.items():
        if "per_action_mpjpe" in r and len(r["per_action_mpjpe"]) > 1:
            print(f"\n{task}: MPJPE / P-MPJPE per action (mm)")
            for action, value in sorted(r["per_action_mpjpe"].items()):
                print(f"  {action:<24} {value:7.1f} {r['per_action_p_mpjpe'][action]:7.1f}")
            print(f"  {'mean over subject x action':<24} {r['action_average_mpjpe']:7.1f} "
                  f"{r['action_average_p_mpjpe']:7.1f}  (VideoPose3D's average)")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
