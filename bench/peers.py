"""UPS and its task-specific peers timed side by side in ONE process run: same inputs, same threads, same allocator.

    python bench/peers.py --peers ../peers --threads 1     # full run (10 minutes on the busy 2-core machine;
                                                           # ups-base lifting the 1,000-frame clip is most of it)
    python bench/peers.py --peers ../peers --quick         # toy sizes, one repeat (under a minute)
    python bench/peers.py                                  # UPS rows only: the peer rows are skipped
    python bench/peers.py --rerender bench/results/peers.json   # recompute ratios and tables of a saved run

``--peers DIR`` is a folder OUTSIDE this repository holding the peers' public repositories (never committed here):

    git clone https://github.com/kennymckormick/pyskl DIR/pyskl
    git clone https://github.com/facebookresearch/VideoPose3D DIR/VideoPose3D

(``bench/peer_models.py`` says how their model files are imported; each peer's commit is recorded in the output.)

Protocols (random weights, eval mode, ``torch.inference_mode``; the median of the timed repeats is the figure, the
best is kept; repeats are interleaved round by round so that the machine's load hits every model alike):

- **recognition**: batch 16, 2 persons, 100 frames, NTU-25 joints, 3D, from the same float32 numpy clips.
  CTR-GCN and ST-GCN as in pyskl's ``configs/{ctrgcn,stgcn}/*_pyskl_ntu60_xsub_3dkp/j.py`` with its linear
  ``GCNHead`` (60 classes) and softmax (``RecognizerGCN.forward_test``), on a ready tensor; UPS ``ups-base`` end to
  end: processor on the numpy clips, ``generate()``, ``post_process`` (labels). Rate: clips/s.
- **lifting**: one 1,000-frame H36M-17 2D clip (pixels) to 3D for every frame. VideoPose3D (``--channels 1024``,
  243-frame receptive field = filter widths 3,3,3,3,3; 27 frames = 3,3,3): window by window
  (``TemporalModelOptimized1f``, batches of 16 windows) and the whole sequence in one pass (``TemporalModel``, its
  evaluation mode, no flip augmentation); both from screen-normalised coordinates, edge-padded as VideoPose3D pads.
  UPS: ``pipeline(clip, task="pose_estimation", layout="h36m17", frames="all", window=W)``, ``ups-base`` with
  243-frame windows and ``ups-tiny`` with 27-frame windows (the pipeline's default ``window_batch_size``), each
  predicting the centre frame of a window per frame, and K frames per window for a window per K frames
  (``pose_estimation_target_frames``: 27 for ups-base, 5 for ups-tiny as in the HumanEva-I recipe's measured
  run), each with the paper's autoregressive decoder (one decoder call per coordinate token) and with a decoder
  that does not read its outputs (``parallel_decoding``: one call per window batch). Rate: output frames/s.

Dense fp32 matmul GFLOP/s is measured at the start and at the end, the load average with every row, and the
threads, allocator settings and niceness once; ratios are UPS's rate over each peer's (> 1: UPS is faster).
Results: ``bench/results/peers.{json,md}`` (``--output-dir``), and the table on stdout.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import peer_models as PM  # noqa: E402
from modeling_ups import UPSProcessor  # noqa: E402
from harness import (build_model, count_flops, environment, load_config, load_processor, make_raw_clips,  # noqa
                     matmul_gflops)

# Targets of issue 16 (ratios in one run): (protocol, UPS row, peer row, required ratio, moonshot ratio, what).
TARGETS = (
    ("recognition", "ups_base", "ctr_gcn", 2.5, 4.0, "recognition end to end, ups-base / CTR-GCN"),
    ("lifting", "ups_base", "videopose3d_243_windows", 1.0, None,
     "whole-video lifting, ups-base / VideoPose3D-243 window by window"),
    ("lifting", "ups_base", "videopose3d_243_sequence", 0.25, None,
     "whole-video lifting, ups-base / VideoPose3D-243 single pass (moonshot: within 4x)"),
    ("lifting", "ups_base_k27", "videopose3d_243_windows", 1.0, None,
     "whole-video lifting, ups-base predicting 27 frames per 243-frame window / VideoPose3D-243 window by window"),
    ("lifting", "ups_tiny_k5", "videopose3d_243_windows", 1.0, None,
     "whole-video lifting, ups-tiny with 27-frame windows of 5 frames each (the HumanEva-I recipe with "
     "--pose_target_frames 5; docs/results.md gives its accuracy) / VideoPose3D-243 window by window"),
    ("lifting", "ups_base_parallel", "videopose3d_243_windows", 1.0, None,
     "whole-video lifting, ups-base decoding each frame in one call (parallel_decoding) / VideoPose3D-243 window by "
     "window"),
    ("lifting", "ups_tiny_parallel", "videopose3d_243_windows", 1.0, None,
     "whole-video lifting, ups-tiny with 27-frame windows decoded in one call (the HumanEva-I recipe with "
     "parallel_decoding; docs/results.md gives its accuracy) / VideoPose3D-243 window by window"),
)
# UPS lifting rows: (key, preset, window, pose target frames per window, parallel decoding).
UPS_LIFTERS = (("ups_base", "ups-base", 243, 1, False), ("ups_base_k27", "ups-base", 243, 27, False),
               ("ups_base_parallel", "ups-base", 243, 1, True), ("ups_base_k27_parallel", "ups-base", 243, 27, True),
               ("ups_tiny", "ups-tiny", 27, 1, False), ("ups_tiny_k5", "ups-tiny", 27, 5, False),
               ("ups_tiny_parallel", "ups-tiny", 27, 1, True))
PEER_REPOS = {"pyskl": PM.PYSKL_DIR, "videopose3d": PM.VIDEOPOSE3D_DIR}
IMAGE_SIZE = 1000  # pixels: the H36M-17 clip's image, for VideoPose3D's screen normalisation


def settings(quick: bool) -> dict:
    if quick:
        return {"recognition": {"batch": 2, "persons": 2, "frames": 100}, "lifting": {"frames": 40},
                "repeats": 1, "slow_repeats": 1, "lifters": UPS_LIFTERS, "flop_frames": 4}
    return {"recognition": {"batch": 16, "persons": 2, "frames": 100}, "lifting": {"frames": 1000},
            "repeats": 5, "slow_repeats": 2, "lifters": UPS_LIFTERS, "flop_frames": 8}


@dataclass
class Contender:
    """One timed row: ``fn()`` does the whole job on the protocol's input; ``items`` clips or frames per call."""

    key: str
    side: str  # "UPS" or "peer"
    protocol: str  # "recognition" or "lifting"
    case: str
    fn: Callable[[], object]
    items: int
    unit: str
    repeats: int
    warm: Optional[Callable[[], object]] = None  # untimed warm-up (default: fn)
    gflop_per_item: Optional[float] = None
    reference: str = ""
    times_s: list = field(default_factory=list)
    load: list = field(default_factory=list)


def planned_flops(fn, plan: dict) -> Optional[int]:
    """``count_flops(fn)``, or None when ``plan["count_flops"]`` is false: counting a generate() call costs many
    times the call itself."""
    return count_flops(fn) if plan.get("count_flops", True) else None


def _per(flops: Optional[int], items: int) -> Optional[float]:
    return None if flops is None else flops / items / 1e9


# ----------------------------------------------------------------------------------------------------------------
# Contenders
# ----------------------------------------------------------------------------------------------------------------


def ups_model(name: str, processor, **overrides):
    """A random ``name`` preset built for ``processor`` (its vocabulary and frame budget, `harness.load_config`)."""
    return build_model(load_config(name, processor, **overrides))


def recognition_contenders(plan, peers: dict, overrides: Optional[dict] = None) -> List[Contender]:
    p = plan["recognition"]
    b, clips_np = p["batch"], make_raw_clips(p["batch"], p["persons"], p["frames"], 25, 3, seed=16)
    out = []
    if "pyskl" in peers:
        for key, name, label in (("ctr_gcn", "ctrgcn", "CTR-GCN"), ("st_gcn", "stgcn", "ST-GCN")):
            model = PM.pyskl_recognizer(peers["pyskl"], name)
            params = sum(q.numel() for q in model.parameters()) / 1e6

            def run(model=model):
                keypoint = torch.from_numpy(np.stack(clips_np))  # (N, M, T, V, C)
                return model(keypoint).numpy()

            flops = _per(planned_flops(run, plan), b)
            out.append(Contender(key, "peer", "recognition", f"{label} + GCNHead (pyskl), {params:.2f} M params",
                                 run, b, "clips/s", plan["repeats"], gflop_per_item=flops))
    processor = load_processor("ntu60")
    model = ups_model("ups-base", processor, **(overrides or {}))
    params = sum(q.numel() for q in model.parameters()) / 1e6
    task, layout = "action_recognition_3d", "ntu25"

    def ups_run():
        inputs = processor(clips_np, task=task, layout=layout, return_tensors="pt")
        return processor.post_process(model.generate(**inputs), task=task)

    flops = _per(planned_flops(ups_run, plan), b)
    out.append(Contender("ups_base", "UPS", "recognition",
                         f"UPS ups-base processor + generate() + post_process, {params:.1f} M params", ups_run, b,
                         "clips/s", plan["repeats"], gflop_per_item=flops))
    return out


def lifting_contenders(plan, peers: dict, overrides: Optional[dict] = None) -> List[Contender]:
    frames = plan["lifting"]["frames"]
    clip = make_raw_clips(1, 1, frames, 17, 2, seed=1000)[0][0]  # (T, 17, 2) pixels
    out = []
    if "videopose3d" in peers:
        vp3d = peers["videopose3d"]
        for widths in ((3, 3, 3, 3, 3), (3, 3, 3)):
            window_model, sequence_model = PM.videopose3d_models(vp3d, widths)
            rf = window_model.receptive_field()
            params = sum(q.numel() for q in window_model.parameters()) / 1e6

            def screen():
                return PM.normalize_screen_coordinates(torch.from_numpy(clip), IMAGE_SIZE, IMAGE_SIZE)

            def windows(model=window_model, rf=rf):
                return PM.lift_windows(model, screen(), rf, batch=16).numpy()

            def sequence(model=sequence_model, rf=rf):
                return PM.lift_sequence(model, screen(), rf).numpy()

            short = PM.normalize_screen_coordinates(torch.from_numpy(clip[: plan["flop_frames"]]), IMAGE_SIZE,
                                                    IMAGE_SIZE)
            agree = (PM.lift_windows(window_model, short, rf) - PM.lift_sequence(sequence_model, short, rf)).abs().max()
            agree = float(agree)
            window_flops = _per(planned_flops(lambda: PM.lift_windows(window_model, short, rf, batch=16), plan),
                                len(short))
            sequence_flops = _per(planned_flops(sequence, plan), frames)
            out.append(Contender(f"videopose3d_{rf}_windows", "peer", "lifting",
                                 f"VideoPose3D-{rf} window by window (Optimized1f, 16 windows/call), "
                                 f"{params:.1f} M params", windows, frames, "frames/s", plan["repeats"],
                                 gflop_per_item=window_flops, reference=f"same weights as one pass: max abs diff "
                                                                        f"{agree:.1e}"))
            out.append(Contender(f"videopose3d_{rf}_sequence", "peer", "lifting",
                                 f"VideoPose3D-{rf} whole sequence, one pass (TemporalModel)", sequence, frames,
                                 "frames/s", plan["repeats"], gflop_per_item=sequence_flops))
    from transformers import pipeline

    from modeling_ups.pipeline_ups import PoseSequenceModelingPipeline

    base = load_processor("h36m")
    for key, name, window, target_frames, parallel in plan["lifters"]:
        processor = UPSProcessor(base.feature_extractor, base.tokenizer, pose_estimation_target_frames=target_frames)
        model = ups_model(name, processor, **{"parallel_decoding": parallel, **(overrides or {})})
        params = sum(q.numel() for q in model.parameters()) / 1e6
        pipe = pipeline("pose-sequence-modeling", model=model, processor=processor,
                        pipeline_class=PoseSequenceModelingPipeline)

        def lift(x, pipe=pipe, window=window):
            result = pipe(x, task="pose_estimation", layout="h36m17", frames="all", window=window)
            if result["keypoints_3d"].shape[0] != len(x):
                raise RuntimeError(f"pipeline returned {result['keypoints_3d'].shape[0]} frames for {len(x)}")
            return result

        # Whole windows of K frames, so that the count is not inflated by frames decoded past the clip's end.
        short = clip[: -(-plan["flop_frames"] // target_frames) * target_frames]
        flops = _per(planned_flops(lambda: lift(short), plan), len(short))
        each = (f", {target_frames} frames each" if target_frames > 1 else "") + (
            ", decoded in one call (parallel_decoding)" if parallel else "")
        out.append(Contender(key, "UPS", "lifting",
                             f"UPS {name} pipeline(frames='all'), {window}-frame windows{each}, {params:.1f} M params",
                             lambda lift=lift: lift(clip), frames, "frames/s",
                             plan["slow_repeats"] if (name, target_frames) == ("ups-base", 1) else plan["repeats"],
                             warm=lambda lift=lift: lift(clip[:64]), gflop_per_item=flops))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Running, ratios, targets
# ----------------------------------------------------------------------------------------------------------------


def time_interleaved(contenders: List[Contender], log=print) -> None:
    """Warm every contender up once, then time them round by round (each runs ``repeats`` times in all)."""
    with torch.inference_mode():
        for c in contenders:
            (c.warm or c.fn)()
        for r in range(max(c.repeats for c in contenders)):
            for c in contenders:
                if r < c.repeats:
                    start = time.perf_counter()
                    c.fn()
                    c.times_s.append(time.perf_counter() - start)
                    c.load.append(round(os.getloadavg()[0], 2))
            log(f"  round {r + 1}: " + ", ".join(f"{c.key} {c.times_s[-1]:.2f} s" for c in contenders
                                                 if len(c.times_s) > r))


def to_row(c: Contender) -> dict:
    median, best = float(np.median(c.times_s)), min(c.times_s)
    row = {"key": c.key, "side": c.side, "protocol": c.protocol, "case": c.case, "batch": c.items,
           "median_ms": median * 1e3, "min_ms": best * 1e3, "repeats": len(c.times_s), "times_s": c.times_s,
           "rate": c.items / median, "best_rate": c.items / best, "unit": c.unit,
           "load_average_1m": max(c.load) if c.load else None, "reference": c.reference}
    if c.gflop_per_item is not None:
        row["gflop_per_item"] = c.gflop_per_item
        row["achieved_gflops"] = c.gflop_per_item * c.items / median
    return row


def ratio_text(ratio: float) -> str:
    return f"x{ratio:.2f} (UPS faster)" if ratio >= 1 else f"x{ratio:.3f} (peer {1 / ratio:.1f}x faster)"


def _paired_rates(ups: dict, peer: dict):
    """Median and best rates of two rows over the rounds both ran: ``times_s[i]`` is round ``i``'s time, and a row
    with fewer repeats runs in the first rounds only, so a slow row is compared with what its peers did while the
    machine was in the same state. Rows without their times fall back to their own rates."""
    if not ups.get("times_s") or not peer.get("times_s"):
        return ups["rate"], peer["rate"], ups["best_rate"], peer["best_rate"]
    n = min(len(ups["times_s"]), len(peer["times_s"]))
    a, b = ups["times_s"][:n], peer["times_s"][:n]
    return (ups["batch"] / float(np.median(a)), peer["batch"] / float(np.median(b)), ups["batch"] / min(a),
            peer["batch"] / min(b))


def compute_ratios(rows: List[dict]) -> List[dict]:
    """UPS's rate over each peer's, per protocol, from the measured rows: medians (and best runs) over the rounds
    both rows ran."""
    out = []
    for ups in (r for r in rows if r["side"] == "UPS"):
        for peer in (r for r in rows if r["side"] == "peer" and r["protocol"] == ups["protocol"]):
            ups_rate, peer_rate, ups_best, peer_best = _paired_rates(ups, peer)
            ratio = ups_rate / peer_rate
            out.append({"protocol": ups["protocol"], "ups": ups["key"], "peer": peer["key"], "ratio": ratio,
                        "best_ratio": ups_best / peer_best, "text": ratio_text(ratio),
                        "rounds": min(len(ups.get("times_s") or [0]), len(peer.get("times_s") or [0])),
                        "peer_rate_in_those_rounds": peer_rate})
    return out


def check_targets(ratios: List[dict]) -> List[dict]:
    out = []
    for protocol, ups, peer, required, moonshot, what in TARGETS:
        found = next((r for r in ratios if (r["protocol"], r["ups"], r["peer"]) == (protocol, ups, peer)), None)
        entry = {"target": what, "ups": ups, "peer": peer, "required": required, "moonshot": moonshot,
                 "measured": None if found is None else found["ratio"]}
        if found is None:
            entry.update(met=None, result="not measured in this run")
        else:
            entry["met"] = found["ratio"] >= required
            entry["result"] = (f"{'met' if entry['met'] else 'missed'}: {found['ratio']:.3f} vs >= {required}"
                               + (f" (moonshot {moonshot}: {'met' if found['ratio'] >= moonshot else 'not yet'})"
                                  if moonshot else ""))
        out.append(entry)
    return out


def code_version(root: Path = BENCH_DIR.parent) -> dict:
    """The commit of the measured tree and the files changed against it (read-only git calls; no index refresh)."""
    def git(*args):
        try:
            done = subprocess.run(["git", "--no-optional-locks", "-C", str(root), *args], capture_output=True,
                                  text=True, check=False, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    return {"commit": git("rev-parse", "HEAD") or "unknown",
            "changed": (git("diff", "--name-only", "HEAD") or "").split()
            + (git("ls-files", "--others", "--exclude-standard") or "").split()}


def allocator_settings() -> dict:
    """What decides allocation and threading in this process (identical for every row: one process)."""
    names = ("LD_PRELOAD", "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_CONF",
             "OMP_NUM_THREADS", "MKL_NUM_THREADS", "KMP_AFFINITY", "KMP_BLOCKTIME", "OMP_PROC_BIND",
             "PYTORCH_CPU_ALLOC_CONF", "DNNL_DEFAULT_FPMATH_MODE")
    return {"env": {n: os.environ.get(n) for n in names if os.environ.get(n) is not None},
            "libc": " ".join(platform.libc_ver()), "mkldnn": torch.backends.mkldnn.is_available(),
            "parallel_info": torch.__config__.parallel_info().splitlines()[:4]}


def load_peers(peers_dir: Optional[str]) -> Tuple[dict, list]:
    """The peers found under ``peers_dir`` and a note per peer skipped."""
    found, notes = {}, []
    if not peers_dir:
        return found, ["peer rows skipped: no --peers folder given (clone the peers' repositories into a folder "
                       "outside this repository and pass it, see bench/peers.py)"]
    loaders = {"pyskl": PM.load_pyskl, "videopose3d": PM.load_videopose3d}
    for name, sub in PEER_REPOS.items():
        folder = Path(peers_dir) / sub
        if not folder.is_dir():
            notes.append(f"{name} rows skipped: {folder} does not exist")
            continue
        try:
            found[name] = loaders[name](folder)
        except (FileNotFoundError, ImportError) as error:
            notes.append(f"{name} rows skipped: {error}")
    return found, notes


def measure_side_by_side(peers_dir: Optional[str] = None, quick: bool = False, repeats: Optional[int] = None,
                         protocols=("recognition", "lifting"), busy_load: float = 1.5, overrides: Optional[dict] = None,
                         plan: Optional[dict] = None, log=print) -> dict:
    """Build every contender, time them interleaved between two matmul measurements, and return the result
    (``environment``, ``rows``, ``ratios``, ``targets``, ``notes``). Runs at the current ``torch`` thread count.
    ``plan`` replaces ``settings(quick)`` and ``overrides`` the UPS presets' config fields (both for tests)."""
    plan = dict(plan or settings(quick))
    if repeats:
        plan["repeats"] = plan["slow_repeats"] = repeats
    started = time.perf_counter()
    env = environment()
    env.update({"quick": quick, "niceness": os.nice(0), "allocator": allocator_settings(), "settings": plan,
                "code": code_version()})
    peers, notes = load_peers(peers_dir)
    env["peers"] = {name: {"commit": p["commit"], "url": p["url"], "import": p["import"]} for name, p in peers.items()}
    matmul_start = matmul_gflops(plan.get("matmul_size", 2048), repeats=5)
    log(f"matmul at start: {matmul_start['gflops']:.0f} GFLOP/s; building models")
    contenders = []
    if "recognition" in protocols:
        contenders += recognition_contenders(plan, peers, overrides)
    if "lifting" in protocols:
        contenders += lifting_contenders(plan, peers, overrides)
    log(f"[{time.perf_counter() - started:.0f} s] timing {len(contenders)} rows, load {os.getloadavg()[0]:.2f}")
    time_interleaved(contenders, log)
    matmul_end = matmul_gflops(plan.get("matmul_size", 2048), repeats=5)
    if torch.get_num_threads() != env["threads"]:
        notes.append(f"thread count changed during the run: {env['threads']} -> {torch.get_num_threads()}")
    rows = [to_row(c) for c in contenders]
    ratios = compute_ratios(rows)
    env.update({"load_average_end": [round(x, 2) for x in os.getloadavg()], "duration_s": time.perf_counter() - started,
                "matmul_gflops": {"start": matmul_start["gflops"], "start_best": matmul_start["best_gflops"],
                                  "end": matmul_end["gflops"], "end_best": matmul_end["best_gflops"]}})
    busy = max(env["load_average"][0], env["load_average_end"][0], *(r["load_average_1m"] or 0 for r in rows))
    if busy > busy_load:
        notes.append(f"machine busy: 1-minute load average up to {busy:.2f} (> {busy_load}) during the run; "
                     "rerun on a quiet machine for reference figures (the ratios suffer less than the rates: "
                     "rows are interleaved)")
    return {"environment": env, "rows": rows, "ratios": ratios, "targets": check_targets(ratios), "notes": notes}


def run(args, log=print) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure_side_by_side(args.peers, args.quick, args.repeats, args.protocols, args.busy_load, log=log)
    result["environment"]["command"] = "python bench/peers.py " + " ".join(
        sys.argv[1:] if args.argv is None else args.argv)
    return result


def as_section(result: dict) -> dict:
    """The result as a section of ``run_all.py``'s table (rows keep their fields; ratios and notes as notes)."""
    env = result["environment"]
    mm = env["matmul_gflops"]
    notes = [f"matmul {mm['start']:.0f} -> {mm['end']:.0f} GFLOP/s; "
             + "; ".join(f"{n} @ {p['commit'][:12]}" for n, p in env["peers"].items())]
    notes += [f"{q['ups']} / {q['peer']}: {q['text']}" for q in result["ratios"]]
    notes += result["notes"]
    rows = [dict(r, reference=" ".join(x for x in (
        f"{r['gflop_per_item']:.3f} GFLOP/{'clip' if r['protocol'] == 'recognition' else 'frame'}"
        if r.get("gflop_per_item") is not None else "", r["reference"]) if x)) for r in result["rows"]]
    return {"name": "peers", "title": "UPS and its peers side by side (bench/peers.py)", "rows": rows, "notes": notes,
            "load_average": env["load_average_end"], "ratios": result["ratios"], "peer_targets": result["targets"],
            "peers": env["peers"], "matmul_gflops": mm, "quick": env["quick"]}


# ----------------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------------


def _g(value, digits=2):
    return "" if value is None else f"{value:.{digits}f}"


def _changed(env: dict, shown: int = 8) -> str:
    changed = env.get("code", {}).get("changed", [])
    if not changed:
        return ""
    more = f" and {len(changed) - shown} more" if len(changed) > shown else ""
    return f" + uncommitted changes to {', '.join(changed[:shown])}{more}"


def table_lines(result: dict) -> List[str]:
    env = result["environment"]
    mm, size = env["matmul_gflops"], env["settings"].get("matmul_size", 2048)
    lines = [
        f"UPS vs peers, one process: torch {env['torch']}, transformers {env['transformers']}, {env['threads']} "
        f"threads, {env['cpu_model']} ({env['cpu_count']} cores), niceness {env['niceness']}",
        f"dense fp32 matmul {size}: start {mm['start']:.0f} GFLOP/s (best {mm['start_best']:.0f}), "
        f"end {mm['end']:.0f} (best {mm['end_best']:.0f}); load average {env['load_average']} -> "
        f"{env['load_average_end']}; {env['duration_s']:.0f} s",
        f"allocator: {env['allocator']['libc']}, env {env['allocator']['env'] or 'none set'}",
        f"UPS code: {env['code']['commit']}{_changed(env)}",
    ]
    for name, p in env["peers"].items():
        lines.append(f"peer {name}: {p['url']} @ {p['commit']}")
    for protocol in ("recognition", "lifting"):
        rows = [r for r in result["rows"] if r["protocol"] == protocol]
        if not rows:
            continue
        lines += ["", f"== {protocol}",
                  f"{'model':<78} {'median ms':>10} {'best ms':>10} {'rate':>9} {'unit':<9} {'GFLOP/item':>10} "
                  f"{'load':>5}"]
        for r in rows:
            lines.append(f"{r['case'][:78]:<78} {r['median_ms']:>10.1f} {r['min_ms']:>10.1f} {r['rate']:>9.2f} "
                         f"{r['unit']:<9} {_g(r.get('gflop_per_item'), 3):>10} {_g(r['load_average_1m']):>5}"
                         + (f"  {r['reference']}" if r["reference"] else ""))
        for q in (q for q in result["ratios"] if q["protocol"] == protocol):
            lines.append(f"   ratio {q['ups']} / {q['peer']}: {q['text']} (best runs x{q['best_ratio']:.3f}; "
                         f"rounds 1-{q['rounds']}: peer {q['peer_rate_in_those_rounds']:.2f})")
    lines += ["", "== targets (issue 16)"]
    for t in result["targets"]:
        lines.append(f"  {t['target']:<72} {t['result']}")
    for note in result["notes"]:
        lines.append(f"note: {note}")
    return lines


def markdown(result: dict) -> str:
    env = result["environment"]
    mm, size = env["matmul_gflops"], env["settings"].get("matmul_size", 2048)
    lines = ["# UPS and its peers, measured side by side", "",
             f"`{env.get('command', 'python bench/peers.py')}` on {env['time']}, one process: same inputs, threads "
             "and allocator for every row.",
             "Random weights, eval mode, median of the timed repeats after a warm-up (repeats interleaved round by "
             "round); protocol in `bench/peers.py`. A ratio compares two rows over the rounds both ran (a slow row "
             "runs fewer rounds, the first ones).", "",
             "| machine | |", "|---|---|",
             f"| CPU | {env['cpu_model']} ({env['cpu_count']} cores, {env['cpu_capability']}) |",
             f"| torch / transformers | {env['torch']} / {env['transformers']} |",
             f"| UPS code | `{env['code']['commit']}`{_changed(env)} |",
             f"| threads / niceness | {env['threads']} / {env['niceness']} |",
             f"| allocator | {env['allocator']['libc']}; env {env['allocator']['env'] or 'none set'} |",
             f"| dense fp32 matmul {size} | start {mm['start']:.0f} GFLOP/s (best {mm['start_best']:.0f}), "
             f"end {mm['end']:.0f} (best {mm['end_best']:.0f}) |",
             f"| load average (1, 5, 15 min) | start {env['load_average']}, end {env['load_average_end']} |",
             f"| duration | {env['duration_s']:.0f} s |"]
    for name, p in env["peers"].items():
        lines.append(f"| peer {name} | {p['url']} @ `{p['commit']}`; {p['import']} |")
    for protocol, title in (("recognition", "Recognition: batch 16, 2 persons, 100 frames, NTU-25, 3D"),
                            ("lifting", "Lifting a 1,000-frame H36M-17 2D clip, every frame")):
        rows = [r for r in result["rows"] if r["protocol"] == protocol]
        if not rows:
            continue
        lines += ["", f"## {title}", "", "| model | median ms | best ms | rate | unit | GFLOP per item | load | note |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['case']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['rate']:.2f} | {r['unit']} | "
                         f"{_g(r.get('gflop_per_item'), 3)} | {_g(r['load_average_1m'])} | {r['reference']} |")
        ratios = [q for q in result["ratios"] if q["protocol"] == protocol]
        if ratios:
            lines += ["", "| UPS | peer | UPS rate / peer rate | best runs | rounds compared (peer rate in them) |",
                      "|---|---|---|---|---|"]
            lines += [f"| {q['ups']} | {q['peer']} | {q['text']} | x{q['best_ratio']:.3f} | 1-{q['rounds']} "
                      f"({q['peer_rate_in_those_rounds']:.2f}) |" for q in ratios]
    lines += ["", "## Targets (issue 16)", "", "| target | result |", "|---|---|"]
    lines += [f"| {t['target']} | {t['result']} |" for t in result["targets"]]
    if result["notes"]:
        lines += [""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", default=None, help="folder holding pyskl/ and VideoPose3D/ (outside the repo)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for every row")
    parser.add_argument("--quick", action="store_true", help="toy sizes and one repeat (checks that it runs)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats of every row (default 5; 2 for "
                                                                  "ups-base lifting)")
    parser.add_argument("--protocols", nargs="+", default=["recognition", "lifting"],
                        choices=["recognition", "lifting"])
    parser.add_argument("--busy-load", type=float, default=1.5, help="load average above which the run is flagged")
    parser.add_argument("--output-dir", default=str(BENCH_DIR / "results"))
    parser.add_argument("--output-name", default="peers", help="writes NAME.json and NAME.md")
    parser.add_argument("--rerender", metavar="JSON", help="measure nothing: recompute the ratios and targets of a "
                                                           "saved result and rewrite its table and files")
    args = parser.parse_args(argv)
    args.argv = argv
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.rerender:
        result = json.loads(Path(args.rerender).read_text())
        result["ratios"] = compute_ratios(result["rows"])
        result["targets"] = check_targets(result["ratios"])
    else:
        result = run(args)
    print("\n" + "\n".join(table_lines(result)))
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.output_name}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / f"{args.output_name}.md").write_text(markdown(result))
    print(f"\nwrote {out / (args.output_name + '.json')} and {out / (args.output_name + '.md')}")
    return result


if __name__ == "__main__":
    main()
