"""Throughput of the synthetic motion generator (sequences per second, one core) and of building its datasets.

For every rendering (ntu25 3D, openpose18 2D with detector noise, h36m17 3D + 2D), times
``SyntheticMotionGenerator.generate`` on batches of 64-100-frame sequences (median of ``--repeats`` runs after a
warm-up), then times ``build_synthetic_datasets`` for ``--dataset-size`` training sequences per task (all four
tasks, plus a fifth of that for test), the call the demo training job makes.

    python bench/bench_synthetic.py --batch-size 1000 --repeats 5
"""

import argparse
import os

# One core: numpy's elementwise kernels are single-threaded; pin BLAS too so the number is per core.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from datasets_scripts.synthetic import SYNTHETIC_LAYOUTS, SyntheticMotionGenerator, build_synthetic_datasets  # noqa


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--min-frames", type=int, default=64)
    parser.add_argument("--max-frames", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dataset-size", type=int, default=2000, help="training sequences per task")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    frames = (args.min_frames, args.max_frames)
    print(f"synthetic generator, {args.batch_size} sequences of {frames[0]}-{frames[1]} frames per batch, "
          f"median of {args.repeats}")
    for layout in SYNTHETIC_LAYOUTS:
        generator = SyntheticMotionGenerator(seed=0, num_frames=frames)
        generator.generate(16, layout=layout)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            generator.generate(args.batch_size, layout=layout)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(f"  {layout:<11} {args.batch_size / median:8.0f} sequences/s  ({median * 1000:.0f} ms per batch)")
    start = time.perf_counter()
    data = build_synthetic_datasets(num_train=args.dataset_size, num_test=args.dataset_size // 5, seed=0,
                                    num_frames=frames)
    elapsed = time.perf_counter() - start
    total = sum(len(split) for d in data.values() for split in d.values())
    print(f"build_synthetic_datasets: {total} sequences over {len(data)} tasks in {elapsed:.2f} s "
          f"({total / elapsed:.0f} sequences/s, {elapsed / len(data):.2f} s per task of "
          f"{args.dataset_size + args.dataset_size // 5})")


if __name__ == "__main__":
    main()
