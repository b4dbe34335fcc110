"""Latency a person feels: ``ups predict`` on one clip, and the first pipeline call, broken down (issue 16, item 4).

    python bench/latency.py                        # ups-tiny, 5 runs of each (about a minute on a quiet machine)
    python bench/latency.py --config ups-base --runs 3 --threads 1

Everything runs in fresh interpreters (nothing is warm, as for a user): a random checkpoint of ``--config`` with the
``--processor`` vocabulary is saved to a temporary folder with one 100-frame NTU-25 3D clip (``.npy``), then

1. ``ups predict clip.npy --model CKPT`` wall time, ``--runs`` times (the installed ``ups`` script when it runs this
   tree's package, else ``python -m modeling_ups.cli``), and ``python -c pass`` for the interpreter alone;
2. the stages of a first call, timed inside one fresh interpreter: ``import torch``, ``import transformers``,
   ``import modeling_ups``, ``from transformers import pipeline``, ``from_pretrained`` (model, processor), building
   the pipeline, the first call and a second one (``--runs`` interpreters, medians);
3. ``python -X importtime -c "import modeling_ups.cli"``: the modules whose import costs most (cumulative), grouped
   by top-level package.

Results: ``bench/results/latency.{json,md}`` and a table on stdout. Measures only; the target (issue 16) is
``ups predict`` under 3 s wall including import with ups-tiny.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
TARGET_S = 3.0

# Run in a fresh interpreter: prints one JSON line of stage -> seconds since the previous stage.
STAGES = r'''
import json, sys, time
t0 = time.perf_counter()
marks = []
def mark(name):
    marks.append((name, time.perf_counter()))
import torch; mark("import torch")
torch.set_num_threads(int(sys.argv[3])) if int(sys.argv[3]) > 0 else None
import transformers; mark("import transformers")
import modeling_ups; mark("import modeling_ups (registers Auto classes, pipeline)")
from transformers import pipeline; mark("from transformers import pipeline")
from modeling_ups.modeling_ups import UPSForPoseSequenceModeling
from modeling_ups.processing_ups import UPSProcessor
from modeling_ups.pipeline_ups import PoseSequenceModelingPipeline; mark("import the cli's classes")
model = UPSForPoseSequenceModeling.from_pretrained(sys.argv[1]); mark("model from_pretrained")
processor = UPSProcessor.from_pretrained(sys.argv[1]); mark("processor from_pretrained")
pipe = pipeline("pose-sequence-modeling", model=model, processor=processor,
                pipeline_class=PoseSequenceModelingPipeline); mark("build the pipeline")
pipe(sys.argv[2], task="action_recognition"); mark("first call (read file, processor, generate, labels)")
pipe(sys.argv[2], task="action_recognition"); mark("second call")
out, previous = {}, t0
for name, t in marks:
    out[name] = t - previous
    previous = t
print(json.dumps(out))
'''


def _code_version() -> dict:
    sys.path.insert(0, str(BENCH_DIR))
    from peers import code_version

    return code_version(REPO_ROOT)


def make_checkpoint(folder: Path, config: str, processor_name: str, frames: int = 100) -> Path:
    """A random ``config`` checkpoint with ``processor_name``'s vocabulary in ``folder`` and one NTU-25 clip."""
    sys.path.insert(0, str(BENCH_DIR))
    import numpy as np

    from harness import build_model, load_config, load_processor, make_raw_clips

    processor = load_processor(processor_name)
    model = build_model(load_config(config, processor))  # the processor's vocabulary and frame budget
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    clip = folder / "clip.npy"
    np.save(clip, make_raw_clips(1, 1, frames, 25, 3, seed=0)[0][0])  # (T, 25, 3) millimetres
    return clip


def _env(threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    # A user's Python caches bytecode; with PYTHONDONTWRITEBYTECODE set (as in this project's sandbox) every run
    # would compile this package's sources again and time that instead of the import.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def _wall(command, env, runs: int) -> list:
    """Wall seconds of ``runs`` runs of ``command``, after one untimed run (it writes the bytecode caches)."""
    times = []
    for run in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{done.stderr[-3000:]}")
        if run:
            times.append(time.perf_counter() - start)
    return times


def predict_command() -> list:
    """The installed ``ups`` script when it imports this tree's package, else ``python -m modeling_ups.cli``."""
    script = shutil.which("ups")
    if script:
        probe = subprocess.run([sys.executable, "-c", "import modeling_ups, sys; print(modeling_ups.__file__)"],
                               capture_output=True, text=True, env=_env(0), cwd="/", check=False)
        if probe.returncode == 0 and Path(probe.stdout.strip()).resolve().is_relative_to(REPO_ROOT):
            return [script]
    return [sys.executable, "-m", "modeling_ups.cli"]


def import_profile(env) -> dict:
    """``-X importtime`` of ``import modeling_ups.cli``: cumulative microseconds per module, grouped by top-level
    package (a package's figure is its own top-level import, which includes everything it imports first)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import modeling_ups.cli"], capture_output=True,
                          text=True, env=env, cwd=REPO_ROOT, check=False)
    rows = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            rows.append({"self_us": int(match[1]), "cumulative_us": int(match[2]), "depth": len(match[3]) // 2,
                         "module": match[4]})
    top = [r for r in rows if r["depth"] == 0]  # imported straight from `import modeling_ups.cli`'s chain
    by_package = {}
    for r in rows:
        package = r["module"].split(".")[0]
        by_package[package] = by_package.get(package, 0) + r["self_us"]
    return {"total_s": sum(r["self_us"] for r in rows) / 1e6,
            "top_level": sorted(top, key=lambda r: -r["cumulative_us"])[:12],
            "self_by_package_s": dict(sorted(((k, v / 1e6) for k, v in by_package.items()),
                                             key=lambda kv: -kv[1])[:15]),
            "slowest_modules": sorted(rows, key=lambda r: -r["cumulative_us"])[:25]}


def installed_packages() -> dict:
    """The interpreter and the versions that decide the import's cost: transformers imports scipy.optimize (for its
    object-detection losses) only when scipy is installed, which the ``test`` extra brings in and a plain
    ``pip install ups`` does not."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    # torch's own version names its build: a PyPI CUDA wheel's metadata says 2.14.1 where torch says 2.14.1+cu130.
    found = {"torch": torch.__version__}
    for name in ("transformers", "accelerate", "scipy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return {"python": sys.executable, **found}


def measure(config="ups-tiny", processor="ntu60", runs=5, threads=0, log=print) -> dict:
    env = _env(threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "checkpoint"
        clip = make_checkpoint(folder, config, processor)
        size_mb = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
        command = predict_command()
        log(f"checkpoint {config} ({size_mb:.1f} MB with the clip); command {' '.join(command)} predict ...")
        predict = _wall(command + ["predict", str(clip), "--model", str(folder)], env, runs)
        # One OpenMP thread: on a shared machine a multi-threaded kernel waits for its descheduled thread.
        predict_one = _wall(command + ["predict", str(clip), "--model", str(folder)], _env(1), runs)
        help_only = _wall(command + ["--help"], env, runs)
        interpreter = _wall([sys.executable, "-c", "pass"], env, runs)
        stages = []
        for _ in range(runs):
            done = subprocess.run([sys.executable, "-c", STAGES, str(folder), str(clip), str(threads)],
                                  capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"stage worker failed:\n{done.stderr[-3000:]}")
            stages.append(json.loads(done.stdout.strip().splitlines()[-1]))
        profile = import_profile(env)
    names = list(stages[0])
    breakdown = {name: statistics.median(s[name] for s in stages) for name in names}
    return {"config": config, "processor": processor, "runs": runs, "threads": threads or "torch default",
            "command": command, "checkpoint_mb": size_mb,
            "ups_predict_s": {"median": statistics.median(predict), "min": min(predict), "all": predict},
            "ups_predict_one_thread_s": {"median": statistics.median(predict_one), "min": min(predict_one),
                                         "all": predict_one},
            "ups_help_s": {"median": statistics.median(help_only), "min": min(help_only)},
            "python_startup_s": {"median": statistics.median(interpreter), "min": min(interpreter)},
            "first_call_breakdown_s": breakdown, "import_profile": profile, "target_s": TARGET_S,
            "installed": installed_packages(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "code": _code_version()}


def _installed(result: dict) -> str:
    return ", ".join(f"{name} {version or 'absent'}" for name, version in result["installed"].items())


def table_lines(result: dict) -> list:
    p, b = result["ups_predict_s"], result["first_call_breakdown_s"]
    total = sum(b.values())
    lines = [f"ups predict, one 100-frame clip, {result['config']} ({result['checkpoint_mb']:.1f} MB checkpoint), "
             f"{result['runs']} runs, threads {result['threads']}, load {result['load_average']}",
             f"  installed: {_installed(result)}",
             f"  ups predict wall:       median {p['median']:.2f} s, best {p['min']:.2f} s "
             f"(target < {result['target_s']} s: {'met' if p['median'] < result['target_s'] else 'missed'})",
             f"  same, OMP_NUM_THREADS=1: median {result['ups_predict_one_thread_s']['median']:.2f} s, best "
             f"{result['ups_predict_one_thread_s']['min']:.2f} s",
             f"  ups --help wall:        median {result['ups_help_s']['median']:.2f} s (imports, no model)",
             f"  python -c pass:         median {result['python_startup_s']['median']:.3f} s",
             f"first pipeline call in a fresh interpreter (medians, {total:.2f} s in all):"]
    for name, seconds in b.items():
        lines.append(f"  {name:<58} {seconds:7.3f} s  {seconds / total:5.1%}")
    prof = result["import_profile"]
    lines.append(f"python -X importtime 'import modeling_ups.cli' ({prof['total_s']:.2f} s under the profiler), "
                 "self time by top-level package:")
    for package, seconds in list(prof["self_by_package_s"].items())[:10]:
        lines.append(f"  {package:<40} {seconds:7.3f} s")
    lines.append("  slowest imports (cumulative):")
    for r in prof["slowest_modules"][:12]:
        lines.append(f"  {'  ' * r['depth']}{r['module']:<60} {r['cumulative_us'] / 1e6:7.3f} s")
    return lines


def markdown(result: dict) -> str:
    p, b = result["ups_predict_s"], result["first_call_breakdown_s"]
    total = sum(b.values())
    lines = ["# Latency a person feels", "",
             f"`python bench/latency.py --config {result['config']}` on {result['time']}: random {result['config']} "
             f"checkpoint ({result['checkpoint_mb']:.1f} MB), one 100-frame NTU-25 3D `.npy` clip, fresh "
             f"interpreters, {result['runs']} runs, threads {result['threads']}, load average "
             f"{result['load_average']}.", "",
             f"Installed: {_installed(result)}.", "",
             "| what | median s | best s |", "|---|---|---|",
             f"| `{' '.join(Path(c).name for c in result['command'])} predict clip.npy` wall | {p['median']:.2f} | "
             f"{p['min']:.2f} |",
             f"| same with `OMP_NUM_THREADS=1` | {result['ups_predict_one_thread_s']['median']:.2f} | "
             f"{result['ups_predict_one_thread_s']['min']:.2f} |",
             f"| `--help` wall (imports only) | {result['ups_help_s']['median']:.2f} | "
             f"{result['ups_help_s']['min']:.2f} |",
             f"| `python -c pass` | {result['python_startup_s']['median']:.3f} | "
             f"{result['python_startup_s']['min']:.3f} |",
             "", f"First pipeline call in a fresh interpreter ({total:.2f} s):", "", "| stage | s | share |",
             "|---|---|---|"]
    lines += [f"| {name} | {s:.3f} | {s / total:.0%} |" for name, s in b.items()]
    prof = result["import_profile"]
    lines += ["", f"`python -X importtime -c 'import modeling_ups.cli'`: self time by top-level package "
                  f"({prof['total_s']:.2f} s under the profiler)", "", "| package | s |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in list(prof["self_by_package_s"].items())[:10]]
    lines += ["", "| slowest imports (cumulative) | s |", "|---|---|"]
    lines += [f"| {'&nbsp;' * 2 * r['depth']}{r['module']} | {r['cumulative_us'] / 1e6:.3f} |"
              for r in prof["slowest_modules"][:15]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="ups-tiny")
    parser.add_argument("--processor", default="ntu60")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for the runs (0: leave as is)")
    parser.add_argument("--output-dir", default=str(BENCH_DIR / "results"))
    parser.add_argument("--output-name", default="latency")
    args = parser.parse_args(argv)
    result = measure(args.config, args.processor, args.runs, args.threads)
    print("\n".join(table_lines(result)))
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.output_name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{args.output_name}.md").write_text(markdown(result))
    print(f"wrote {out / (args.output_name + '.json')} and {out / (args.output_name + '.md')}")
    return result


if __name__ == "__main__":
    main()
