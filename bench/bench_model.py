"""Inference speed of a UPS preset: encoder+decoder forward and generate() per task.

Setting of pyskl's inference-speed notebook (samples/s at batch 16, 2 persons, 100 frames, 25 joints, NTU layout),
eval mode, random weights and inputs, median over `--repeats` runs after warm-up. Pose estimation is also timed on
its own protocol (H36M-17, 2D input padded with Z = 0, 243 frames, 1 person) when the preset's frame budget allows.

    python bench/bench_model.py --config ups-base --batch-size 16 --repeats 5
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import build_model, load_config, make_inputs, median_seconds  # noqa: E402,F401  (shared helpers)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="ups-base", help="preset name under configuration/models, or a folder")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--persons", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--attn-implementation", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--profile", action="store_true", help="print the top operators of one recognition generate()")
    return parser.parse_args(argv)


def report(name, seconds, batch):
    print(f"{name:<58s} {seconds * 1000:9.1f} ms/batch  {batch / seconds:8.1f} samples/s")


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config)
    model = build_model(config, attn_implementation=args.attn_implementation)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"preset {args.config}: {params:.2f} M parameters, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, attention {args.attn_implementation}")
    print(f"batch {args.batch_size}, median of {args.repeats} runs after {args.warmup} warm-up")
    b = args.batch_size
    if args.frames > config.max_frames:
        print(f"--frames {args.frames} exceeds the preset's max_frames; using {config.max_frames}")
        args.frames = config.max_frames

    with torch.inference_mode():
        ntu = make_inputs(config, "ntu25", b, args.persons, args.frames, "action_recognition_3d")
        encoder = model.get_encoder()
        report(f"encoder forward (ntu25, {args.persons} persons, {args.frames} frames)",
               median_seconds(lambda: encoder(**ntu), args.repeats, args.warmup), b)
        labels = torch.full((b, 2), config.label_token_offset, dtype=torch.long)
        report("forward with labels (encoder + decoder + loss)",
               median_seconds(lambda: model(**ntu, labels=labels), args.repeats, args.warmup), b)
        for task in config.tasks:
            if task == "pose_estimation_3d":
                inputs = make_inputs(config, "ntu25", b, args.persons, args.frames, task)
            elif task == "action_recognition_2d":
                inputs = make_inputs(config, "openpose18", b, args.persons, args.frames, task, two_d=True)
            else:
                inputs = make_inputs(config, "ntu25", b, args.persons, args.frames, task)
            layout = config.layout_names[int(inputs["layout_ids"][0])]
            report(f"generate {task} ({layout})",
                   median_seconds(lambda: model.generate(**inputs), args.repeats, args.warmup), b)
        if "pose_estimation_3d" in config.tasks and config.max_frames >= 243:
            h36m = make_inputs(config, "h36m17", b, 1, 243, "pose_estimation_3d", two_d=True)
            report("generate pose_estimation_3d (h36m17 2D, 1 person, 243 frames)",
                   median_seconds(lambda: model.generate(**h36m), args.repeats, args.warmup), b)

        if args.profile:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                model.generate(**ntu)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
