"""The UPS benchmark suite: one function per measurement, each returning a JSON-ready section.

A section is ``{"name", "title", "rows": [...], "notes": [...]}`` plus section-specific figures; a row is
``{"case", "batch", "median_ms", "min_ms", "rate", "unit", "reference", "load_average_1m", ...}``. ``run_all.py``
calls them in order, prints one table and checks the targets of the benchmark issue; ``tests/test_bench.py`` runs
every function at toy sizes so that none of them rots.

Settings common to all (unless a function says otherwise): eval mode, random weights (speed does not depend on
them), ``repeats`` timed runs after ``warmup`` untimed ones, the median reported and the best kept. The pyskl
protocol is batch 16, 2 persons, 100 frames, NTU-25 joints, 3D. ``precision="bf16"`` runs the model under CPU
autocast to bfloat16 (an option: outputs move by ~1e-2, so it is never the default).

Memory and training run in a fresh subprocess per configuration (``isolate=True``) so that one configuration's
allocations never count towards another's peak.
"""

import contextlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from harness import (  # noqa: E402
    PeakRSS,
    count_flops,
    build_model,
    current_rss,
    load_config,
    load_processor,
    make_inputs,
    make_raw_clips,
    matmul_gflops,
    max_rss,
    measure,
    start_tokens,
)

# The peers (CTR-GCN, ST-GCN, VideoPose3D) are measured, never typed in: bench/peers.py times them and UPS side by
# side in one process run from their public repositories' code.
PEERS_NOTE = "peers: measured side by side in one run by bench/peers.py (bench/results/peers.md)"
PYSKL = {"batch": 16, "persons": 2, "frames": 100, "layout": "ntu25"}
LIFTING = {"frames": 243, "layout": "h36m17"}
GB = 1024**3


def precision_context(precision: str = "fp32"):
    """``fp32``: nothing; ``bf16``: CPU autocast to bfloat16 (matmuls and convolutions in bf16)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")


def compile_encoder(model, **compile_options):
    """``torch.compile`` the encoder in place (the decoder runs one or a few small steps; compiling it would only
    add recompilations for every new decoder length). `nn.Module.compile`, not a `torch.compile` wrapper put in the
    encoder's place: the model reaches its encoder through `encode`, which calls the module itself, so a wrapper's
    compiled code would never run."""
    model.model.encoder.compile(**compile_options)
    return model


def _row(case: str, timing, batch: int, unit: str = "samples/s", **extra) -> dict:
    return {"case": case, "batch": batch, **timing.to_dict(batch), "unit": unit, **extra}


def _section(name: str, title: str, rows: list, notes: Sequence[str] = (), **figures) -> dict:
    return {"name": name, "title": title, "rows": rows, "notes": list(notes),
            "load_average": [round(x, 2) for x in os.getloadavg()], **figures}


# ----------------------------------------------------------------------------------------------------------------
# Machine reference
# ----------------------------------------------------------------------------------------------------------------


def bench_matmul(size: int = 2048, repeats: int = 5, warmup: int = 1) -> dict:
    """Dense fp32 matmul GFLOP/s in this run: the ceiling the encoder's efficiency is compared with."""
    result = matmul_gflops(size, repeats, warmup)
    row = {"case": f"fp32 matmul {size}x{size}", "batch": 1, "median_ms": result["median_ms"],
           "min_ms": result["min_ms"], "rate": result["gflops"], "best_rate": result["best_gflops"],
           "unit": "GFLOP/s", "load_average_1m": result["load_average_1m"]}
    return _section("matmul", "Machine: dense fp32 matmul", [row], gflops=result["gflops"],
                    best_gflops=result["best_gflops"])


# ----------------------------------------------------------------------------------------------------------------
# Recognition and early prediction
# ----------------------------------------------------------------------------------------------------------------


def _recognition_pipeline(model, processor, clips, task, layout, observation_ratio=None):
    """Processor on numpy clips -> generate() -> label dicts: what a user's recognition call costs."""

    def run():
        inputs = processor(clips, task=task, layout=layout, observation_ratio=observation_ratio, return_tensors="pt")
        generated = model.generate(**inputs)
        return processor.post_process(generated, task=task)

    return run


def bench_recognition(model, processor, batch_sizes=(16, 1), persons=2, frames=100, layout="ntu25",
                      repeats=5, warmup=1, precision="fp32") -> dict:
    """3D action recognition at the pyskl protocol: end to end (processor on numpy input, generate(), decoded
    label), generate() on ready model inputs, and one plain forward (encoder + one decoder step); samples/s.

    ``generate_over_forward`` is generate()'s time over the plain forward's (the one-step fast path should make it
    close to 1)."""
    config = model.config
    task = "action_recognition_3d"
    joints = config.layouts[config.layout_id(layout)]["num_joints"]
    rows, ratios = [], {}
    with torch.inference_mode(), precision_context(precision):
        for b in batch_sizes:
            clips = make_raw_clips(b, persons, frames, joints, 3, seed=b)
            inputs = processor(clips, task=task, layout=layout, return_tensors="pt")
            end_to_end = measure(_recognition_pipeline(model, processor, clips, task, layout), repeats, warmup)
            generate = measure(lambda: model.generate(**inputs), repeats, warmup)
            forward = measure(lambda: model(**inputs, decoder_input_ids=start_tokens(b, config)), repeats, warmup)
            rows.append(_row(f"generate() end to end, batch {b}", end_to_end, b))
            rows.append(_row(f"generate() on model inputs, batch {b}", generate, b))
            rows.append(_row(f"plain forward (encoder + 1 decoder step), batch {b}", forward, b))
            ratios[b] = {"generate_over_forward": generate.median_s / forward.median_s,
                         "end_to_end_over_forward": end_to_end.median_s / forward.median_s}
    notes = [f"{persons} persons, {frames} frames, {layout}, 3D, {precision}; generate/forward ratio per batch: "
             + ", ".join(f"b{b}: {r['generate_over_forward']:.2f} (end to end {r['end_to_end_over_forward']:.2f})"
                         for b, r in ratios.items()), PEERS_NOTE]
    return _section("recognition", "3D action recognition (pyskl protocol)", rows, notes, ratios=ratios)


def bench_early_prediction(model, processor, ratios=(0.2, 0.4, 0.6), batch=16, persons=2, frames=100,
                           layout="ntu25", repeats=5, warmup=1, precision="fp32") -> dict:
    """Early action prediction end to end (processor keeps the first ``ceil(r * T)`` frames, generate(), label)."""
    config = model.config
    task = "early_action_prediction_3d"
    joints = config.layouts[config.layout_id(layout)]["num_joints"]
    clips = make_raw_clips(batch, persons, frames, joints, 3, seed=1)
    rows = []
    with torch.inference_mode(), precision_context(precision):
        for r in ratios:
            timing = measure(_recognition_pipeline(model, processor, clips, task, layout, observation_ratio=r),
                             repeats, warmup)
            rows.append(_row(f"{round(r * 100)}% observed ({math.ceil(r * frames)} frames), end to end", timing, batch))
    return _section("early_prediction", "Early action prediction", rows,
                    [f"batch {batch}, {persons} persons, {frames}-frame clips, {layout}, {precision}"])


# ----------------------------------------------------------------------------------------------------------------
# Lifting
# ----------------------------------------------------------------------------------------------------------------


def bench_lifting(model, processor, batch_sizes=(1, 16), frames=243, layout="h36m17", repeats=5, warmup=1,
                  precision="fp32", uncached_repeats: Optional[int] = None) -> dict:
    """2D -> 3D lifting: ``frames`` 2D frames in, the 3D centre frame out (``3 * J`` bin tokens + EOT_PE) through
    generate(), with the KV cache and without it (``use_cache=False``); sequences/s.

    Two cached/uncached ratios: of the whole generate() (the encoder runs once either way) and of the decoding
    alone (generate() from precomputed ``encoder_outputs``), which is the part the cache changes."""
    config = model.config
    task = "pose_estimation_3d"
    joints = config.layouts[config.layout_id(layout)]["num_joints"]
    uncached_repeats = uncached_repeats or repeats
    rows, ratios = [], {}
    with torch.inference_mode(), precision_context(precision):
        for b in batch_sizes:
            clips = make_raw_clips(b, 1, frames, joints, 2, seed=b)
            inputs = processor(clips, task=task, layout=layout, return_tensors="pt")
            encoder_outputs = model.get_encoder()(**inputs)

            def end_to_end():
                ready = processor(clips, task=task, layout=layout, return_tensors="pt")
                return processor.post_process(model.generate(**ready), task=task, layout=layout)

            cached = measure(lambda: model.generate(**inputs), repeats, warmup)
            uncached = measure(lambda: model.generate(**inputs, use_cache=False), uncached_repeats, warmup)
            decode_cached = measure(lambda: model.generate(encoder_outputs=encoder_outputs), repeats, warmup)
            decode_uncached = measure(lambda: model.generate(encoder_outputs=encoder_outputs, use_cache=False),
                                      uncached_repeats, warmup)
            e2e = measure(end_to_end, repeats, warmup)
            unit = "seq/s"
            rows.append(_row(f"generate() KV cache, batch {b}", cached, b, unit))
            rows.append(_row(f"generate() no cache, batch {b}", uncached, b, unit))
            rows.append(_row(f"decoding only, KV cache, batch {b}", decode_cached, b, unit))
            rows.append(_row(f"decoding only, no cache, batch {b}", decode_uncached, b, unit))
            rows.append(_row(f"end to end (processor + generate + decode), batch {b}", e2e, b, unit))
            ratios[b] = {"generate": uncached.median_s / cached.median_s,
                         "decoding": decode_uncached.median_s / decode_cached.median_s,
                         "decoding_share": decode_cached.median_s / cached.median_s}
    tokens = 3 * joints * config.pose_estimation_target_frames + 1
    notes = [f"{frames} frames, {layout} 2D, 1 person, {tokens} generated tokens, {precision}; uncached/cached: "
             + ", ".join(f"b{b}: generate {r['generate']:.2f}x, decoding {r['decoding']:.2f}x "
                         f"(decoding is {r['decoding_share']:.0%} of cached generate)" for b, r in ratios.items()),
             PEERS_NOTE]
    return _section("lifting", "2D -> 3D lifting (centre frame)", rows, notes, ratios=ratios)


# ----------------------------------------------------------------------------------------------------------------
# Compute efficiency and scaling
# ----------------------------------------------------------------------------------------------------------------


def bench_flops(model, batch=16, persons=2, frames=100, layout="ntu25", repeats=5, warmup=1, matmul_size=2048,
                precision="fp32") -> dict:
    """FLOPs per sample of the encoder (and of a plain forward) at the pyskl protocol, the encoder's achieved
    GFLOP/s, and that as a fraction of a dense fp32 matmul measured right before it."""
    config = model.config
    inputs = make_inputs(config, layout, batch, persons, frames, "action_recognition_3d")
    encoder = model.get_encoder()
    with torch.inference_mode(), precision_context(precision):
        encoder_flops = count_flops(lambda: encoder(**inputs))
        forward_flops = count_flops(lambda: model(**inputs, decoder_input_ids=start_tokens(batch, config)))
        matmul = matmul_gflops(matmul_size, repeats, warmup)
        timing = measure(lambda: encoder(**inputs), repeats, warmup)
    achieved = encoder_flops / timing.median_s / 1e9
    best = encoder_flops / timing.min_s / 1e9
    fraction, best_fraction = achieved / matmul["gflops"], best / matmul["best_gflops"]
    rows = [
        _row("encoder forward", timing, batch, encoder_gflop_per_sample=encoder_flops / batch / 1e9,
             achieved_gflops=achieved, matmul_gflops=matmul["gflops"], fraction_of_matmul=fraction,
             reference=f"{fraction:.0%} of matmul (best {best_fraction:.0%})"),
    ]
    notes = [f"encoder {encoder_flops / batch / 1e9:.2f} GFLOP/sample, plain forward "
             f"{forward_flops / batch / 1e9:.2f} GFLOP/sample (batch {batch}, {persons} persons, {frames} frames); "
             f"achieved {achieved:.1f} GFLOP/s vs matmul {matmul['gflops']:.1f} GFLOP/s = {fraction:.0%} "
             f"(best runs: {best:.1f} vs {matmul['best_gflops']:.1f} = {best_fraction:.0%})"]
    return _section("flops", "Encoder FLOPs and efficiency", rows, notes,
                    encoder_gflop_per_sample=encoder_flops / batch / 1e9,
                    forward_gflop_per_sample=forward_flops / batch / 1e9,
                    achieved_gflops=achieved, matmul_gflops=matmul["gflops"], fraction_of_matmul=fraction,
                    best_fraction_of_matmul=best_fraction)


def bench_scaling(model, frames=(50, 100, 200, 300), batch_sizes=(1, 4, 16), persons=2, layout="ntu25",
                  base_batch=16, base_frames=100, repeats=5, warmup=1, precision="fp32") -> dict:
    """Plain forward (encoder + one decoder step) cost against frames (at ``base_batch``) and against batch size
    (at ``base_frames``): ms per batch and ms per sample."""
    config = model.config
    rows = []

    def run(b, t):
        inputs = make_inputs(config, layout, b, persons, t, "action_recognition_3d")
        timing = measure(lambda: model(**inputs, decoder_input_ids=start_tokens(b, config)), repeats, warmup)
        return timing

    with torch.inference_mode(), precision_context(precision):
        for t in frames:
            if t > config.max_frames:
                continue
            timing = run(base_batch, t)
            rows.append(_row(f"{t} frames, batch {base_batch}", timing, base_batch, ms_per_sample=timing.median_s
                             * 1e3 / base_batch, axis="frames", frames=t))
        for b in batch_sizes:
            timing = run(b, min(base_frames, config.max_frames))
            rows.append(_row(f"batch {b}, {min(base_frames, config.max_frames)} frames", timing, b,
                             ms_per_sample=timing.median_s * 1e3 / b, axis="batch", frames=base_frames))
    frame_rows = [r for r in rows if r["axis"] == "frames"]
    notes = []
    if len(frame_rows) >= 2:
        first, last = frame_rows[0], frame_rows[-1]
        notes.append(f"{first['frames']} -> {last['frames']} frames ({last['frames'] / first['frames']:.1f}x): "
                     f"time x{last['median_ms'] / first['median_ms']:.2f}")
    batch_rows = [r for r in rows if r["axis"] == "batch"]
    if len(batch_rows) >= 2:
        first, last = batch_rows[0], batch_rows[-1]
        notes.append(f"batch {first['batch']} -> {last['batch']}: ms/sample {first['ms_per_sample']:.1f} -> "
                     f"{last['ms_per_sample']:.1f}")
    return _section("scaling", f"Cost against frames and batch ({persons} persons, {layout}, plain forward)", rows,
                    notes)


# ----------------------------------------------------------------------------------------------------------------
# Training, memory and the data loader (subprocess workers)
# ----------------------------------------------------------------------------------------------------------------


def _run_worker(job: dict, isolate: bool) -> dict:
    """Run ``job`` in a fresh interpreter (isolate) or here; returns the worker's result dict."""
    if not isolate:
        return WORKERS[job["kind"]](job)
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {job['kind']} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _model_for(job: dict):
    processor = load_processor(job.get("processor", "ntu60"))
    config = load_config(job["config"], processor, **job.get("overrides", {}))
    return build_model(config), processor


def _training_worker(job: dict) -> dict:
    """A few optimisation steps (AdamW, all routing blocks run as in training) on synthetic 3D-recognition
    batches; samples/s and the process's peak resident memory."""
    torch.set_num_threads(job.get("threads") or torch.get_num_threads())
    model, _ = _model_for(job)
    config = model.config
    model.train()
    b, frames = job["batch"], min(job["frames"], config.max_frames)
    inputs = make_inputs(config, PYSKL["layout"], b, job["persons"], frames, "action_recognition_3d")
    eot = config.task_eot_token_id("action_recognition_3d")
    labels = torch.stack([torch.randint(0, config.num_label_tokens, (b,)) + config.label_token_offset,
                          torch.full((b,), eot)], dim=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with precision_context(job.get("precision", "fp32")):
            loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    before = current_rss()
    with PeakRSS() as memory:
        timing = measure(step, job["steps"], job.get("warmup", 1))
    return {"config": job["config"], "batch": b, "frames": frames, "persons": job["persons"],
            "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6, **timing.to_dict(b),
            "peak_rss_gb": max(memory.peak, max_rss() if job.get("isolated") else 0) / GB,
            "delta_rss_gb": (memory.peak - before) / GB}


def _inference_memory_worker(job: dict) -> dict:
    """Peak resident memory of generate() at a given batch (recognition at the pyskl protocol, or lifting)."""
    torch.set_num_threads(job.get("threads") or torch.get_num_threads())
    model, processor = _model_for(job)
    config = model.config
    b = job["batch"]
    if job["task"] == "pose_estimation_3d":
        inputs = make_inputs(config, LIFTING["layout"], b, 1, min(LIFTING["frames"], config.max_frames),
                             "pose_estimation_3d", two_d=True)
    else:
        inputs = make_inputs(config, PYSKL["layout"], b, PYSKL["persons"], min(PYSKL["frames"], config.max_frames),
                             job["task"])
    before = current_rss()
    with torch.inference_mode(), precision_context(job.get("precision", "fp32")), PeakRSS() as memory:
        model.generate(**inputs)
        model.generate(**inputs)
    return {"config": job["config"], "task": job["task"], "batch": b,
            "peak_rss_gb": max(memory.peak, max_rss() if job.get("isolated") else 0) / GB,
            "delta_rss_gb": (memory.peak - before) / GB, "model_gb": sum(
                p.numel() * p.element_size() for p in model.parameters()) / GB}


WORKERS = {"training": _training_worker, "inference_memory": _inference_memory_worker}


def bench_training(configs=("ups-tiny", "ups-base"), batch_sizes=None, persons=2, frames=100, steps=3, warmup=1,
                   isolate=True, precision="fp32") -> dict:
    """Training throughput (samples/s) and peak resident memory per model config, each in its own process.

    Batches are the pyskl protocol's shape (2 persons, ``frames`` frames, capped at the config's ``max_frames``)
    with labels: every person row is computed, the worst case for memory."""
    batch_sizes = batch_sizes or {c: 32 for c in configs}
    rows, results = [], {}
    for c in configs:
        job = {"kind": "training", "config": c, "batch": batch_sizes[c], "persons": persons, "frames": frames,
               "steps": steps, "warmup": warmup, "isolated": isolate, "precision": precision,
               "threads": torch.get_num_threads()}
        result = _run_worker(job, isolate)
        results[c] = result
        rows.append({"case": f"{c} train step ({result['frames']} frames)", "batch": result["batch"],
                     "median_ms": result["median_ms"], "min_ms": result["min_ms"], "rate": result["rate"],
                     "best_rate": result["best_rate"], "unit": "samples/s",
                     "reference": f"peak RSS {result['peak_rss_gb']:.2f} GB", "peak_rss_gb": result["peak_rss_gb"],
                     "load_average_1m": result["load_average_1m"]})
    return _section("training", "Training throughput and peak memory", rows,
                    [f"AdamW, train mode (every routing block runs), {persons} persons, {precision}; peak RSS is the "
                     "whole process (Python, torch, model, optimizer state, activations)"], results=results)


def bench_inference_memory(config="ups-base", batch=16, tasks=("action_recognition_3d", "pose_estimation_3d"),
                           isolate=True, precision="fp32") -> dict:
    """Peak resident memory of generate() at ``batch`` (whole process, fresh interpreter per task)."""
    rows, results = [], {}
    for task in tasks:
        job = {"kind": "inference_memory", "config": config, "batch": batch, "task": task, "isolated": isolate,
               "precision": precision, "threads": torch.get_num_threads()}
        result = _run_worker(job, isolate)
        results[task] = result
        rows.append({"case": f"{config} generate() {task}", "batch": batch, "rate": result["peak_rss_gb"],
                     "unit": "GB peak RSS", "reference": f"+{result['delta_rss_gb']:.2f} GB over the loaded model"})
    return _section("inference_memory", "Inference peak memory", rows,
                    ["peak resident set of the whole process while generate() runs twice"], results=results)


def bench_data_loader(processor, tasks=("action_recognition_3d", "pose_estimation_3d"), batch=32, num_rows=256,
                      repeats=5, warmup=1, seed=0) -> dict:
    """Samples/s of the training input pipeline on synthetic rows: ``KeyedRows`` reads, ``TaskCollator`` runs the
    processor (normalisation, resampling, targets), in the order ``ResumableBatchSampler`` gives, one process."""
    from datasets_scripts.synthetic import SyntheticMotionGenerator, synthetic_dataset
    from modeling_ups.training.data import KeyedRows, TaskCollator
    from modeling_ups.training.sampling import ResumableBatchSampler

    rows = []
    for task in tasks:
        dataset = synthetic_dataset(SyntheticMotionGenerator(seed=seed), num_rows, task, "train")
        keyed = KeyedRows(dataset)
        collator = TaskCollator(processor, task, dataset, train=True, seed=seed)
        batches = iter(ResumableBatchSampler(len(dataset), batch, seed=seed))

        def load_one():
            return collator([keyed[key] for key in next(batches)])

        rows.append(_row(f"{task}: read + collate", measure(load_one, repeats, warmup), batch))
    return _section("data_loader", "Data loader (synthetic rows, one process)", rows,
                    ["KeyedRows + TaskCollator + UPSProcessor, no worker processes"])


# ----------------------------------------------------------------------------------------------------------------
# Options: bf16 autocast and torch.compile
# ----------------------------------------------------------------------------------------------------------------


def bench_options(model, batch=16, persons=2, frames=100, layout="ntu25", repeats=5, warmup=1,
                  include_compile=False) -> dict:
    """The encoder forward at the pyskl protocol under each speed option, interleaved run by run so that the
    machine's load hits every option alike: fp32 eager at this run's thread count and at one thread (a shared
    machine's other jobs make every multi-threaded kernel wait for its slowest thread), bf16 autocast, and
    (``include_compile``) torch.compile.

    Reports each option's median/best, its speed-up over fp32 eager and its largest output difference from it."""
    import time

    from harness import Timing

    config = model.config
    inputs = make_inputs(config, layout, batch, persons, frames, "action_recognition_3d")
    encoder = model.get_encoder()
    threads = torch.get_num_threads()
    plural = f"{threads} thread" + ("s" if threads > 1 else "")
    options = {f"fp32 eager, {plural}": (encoder, "fp32", threads),
               f"bf16 autocast, {plural}": (encoder, "bf16", threads)}
    if threads > 1:
        options["fp32 eager, 1 thread"] = (encoder, "fp32", 1)
    notes = []
    try:
        with torch.inference_mode():
            reference = encoder(**inputs).last_hidden_state
            if include_compile:
                start = time.perf_counter()
                compiled = torch.compile(encoder)
                compiled(**inputs)
                notes.append(f"torch.compile: first call (compilation) {time.perf_counter() - start:.0f} s")
                options[f"torch.compile fp32, {plural}"] = (compiled, "fp32", threads)
            times = {name: [] for name in options}
            errors = {}
            for name, (module, precision, n) in options.items():
                torch.set_num_threads(n)
                with precision_context(precision):
                    out = module(**inputs).last_hidden_state
                    for _ in range(warmup - 1):
                        module(**inputs)
                errors[name] = (out.float() - reference).abs().max().item()
            for _ in range(repeats):
                for name, (module, precision, n) in options.items():
                    torch.set_num_threads(n)
                    with precision_context(precision):
                        start = time.perf_counter()
                        module(**inputs)
                        times[name].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    rows = []
    base = Timing(times[next(iter(options))])
    for name in options:
        timing = Timing(times[name])
        rows.append(_row(f"encoder, {name}", timing, batch, speedup=base.median_s / timing.median_s,
                         best_speedup=base.min_s / timing.min_s, max_abs_diff=errors[name],
                         reference=f"x{base.median_s / timing.median_s:.2f} (best x{base.min_s / timing.min_s:.2f}),"
                                   f" max |diff| {errors[name]:.1e}"))
    return _section("options", "Speed options (encoder, pyskl protocol, interleaved)", rows, notes)


def _main(argv):
    if len(argv) == 2 and argv[0] == "--worker":
        job = json.loads(argv[1])
        result = WORKERS[job["kind"]](job)
        print(json.dumps(result))
        return 0
    print("usage: benchmarks.py --worker JSON (run bench/run_all.py for the suite)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
