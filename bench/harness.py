"""Shared pieces of the UPS benchmarks: models and inputs, timing, memory and machine description.

Every benchmark script under ``bench/`` builds on these helpers, so that a figure printed by ``bench_model.py`` and
the same figure in ``run_all.py``'s table come from the same code.

The machine these numbers come from is shared (2 cores, other jobs running), so every timing keeps all its
repeats: the median is the figure reported, the minimum says what the code does on a quiet machine, and the load
average taken with each measurement says how busy the machine was.
"""

import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from modeling_ups import UPSConfig, UPSForPoseSequenceModeling, UPSProcessor  # noqa: E402
from modeling_ups.utils.resources import find_resource  # noqa: E402

try:  # psutil samples the resident set of this process; without it memory figures use ru_maxrss.
    import psutil
except ImportError:  # pragma: no cover - psutil is installed in the project's environment
    psutil = None


# ----------------------------------------------------------------------------------------------------------------
# Models, processors and inputs
# ----------------------------------------------------------------------------------------------------------------


def load_config(spec: str, processor: Optional[UPSProcessor] = None, **overrides) -> UPSConfig:
    """A preset name under ``configuration/models`` (or a folder), with the vocabulary and pose target frames of
    ``processor`` when given and, as ``examples/train.py`` builds its model, a frame budget no smaller than the
    processor's; any other config field overridden."""
    path = find_resource("models", spec)
    if processor is not None:
        overrides.setdefault("num_label_tokens", processor.tokenizer.num_label_tokens)
        overrides.setdefault("num_bins", processor.tokenizer.num_bins)
        overrides.setdefault("pose_estimation_target_frames", processor.pose_estimation_target_frames)
        if "max_frames" not in overrides:
            preset_frames = UPSConfig.from_pretrained(path).max_frames
            overrides["max_frames"] = max(preset_frames, processor.feature_extractor.max_frames)
    return UPSConfig.from_pretrained(path, **overrides)


def count_flops(fn) -> int:
    """FLOPs torch's flop counter sees in ``fn()`` (matmuls, convolutions, attention)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def build_model(config: UPSConfig, attn_implementation: str = "sdpa", seed: int = 0) -> UPSForPoseSequenceModeling:
    """A randomly initialised model in eval mode (speed does not depend on the weights' values)."""
    torch.manual_seed(seed)
    return UPSForPoseSequenceModeling._from_config(config, attn_implementation=attn_implementation).eval()


def load_processor(name: str = "ntu60") -> UPSProcessor:
    """A processor folder under ``processors/`` (or a path)."""
    return UPSProcessor.from_pretrained(find_resource("processors", name))


def make_inputs(config, layout, batch, persons, frames, task, two_d=False, seed=0):
    """Model inputs (what the processor returns) of random normalised poses, every frame and person present."""
    generator = torch.Generator().manual_seed(seed)
    layout_id = config.layout_id(layout)
    joints = config.layouts[layout_id]["num_joints"]
    poses = torch.randn(batch, persons, frames, joints, 3, generator=generator) * 0.3
    if two_d:
        poses[..., 2] = 0
    return {
        "pose_values": poses,
        "attention_mask": torch.ones(batch, frames, dtype=torch.long),
        "person_mask": torch.ones(batch, persons, dtype=torch.long),
        "task_ids": torch.full((batch,), config.task_id(task), dtype=torch.long),
        "layout_ids": torch.full((batch,), layout_id, dtype=torch.long),
    }


def make_raw_clips(batch, persons, frames, joints, channels=3, scale=500.0, seed=0):
    """Raw skeleton clips as a user hands them to the processor: a list of float32 numpy arrays
    ``(persons, frames, joints, channels)`` (millimetres for 3D, pixels for 2D), a smooth random walk per joint so
    that normalisation sees realistic motion."""
    rng = np.random.default_rng(seed)
    body = rng.uniform(-scale, scale, size=(batch, persons, 1, joints, channels))
    motion = np.cumsum(rng.normal(0.0, scale * 0.002, size=(batch, persons, frames, joints, channels)), axis=2)
    clips = body + motion
    if channels == 2:
        clips += 2 * scale  # pixels are positive
    return list(clips.astype(np.float32))


def start_tokens(batch: int, config: UPSConfig) -> torch.Tensor:
    """The decoder prompt ``<s>`` of every row: one plain forward with it is one decoder step."""
    return torch.full((batch, 1), config.decoder_start_token_id, dtype=torch.long)


# ----------------------------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Wall-clock seconds of every timed repeat, and the load average when the repeats ended."""

    times_s: list
    load_average: tuple = field(default_factory=lambda: os.getloadavg())

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def min_s(self) -> float:
        return min(self.times_s)

    def to_dict(self, items: Optional[int] = None) -> dict:
        out = {"median_ms": self.median_s * 1e3, "min_ms": self.min_s * 1e3, "repeats": len(self.times_s),
               "load_average_1m": round(self.load_average[0], 2)}
        if items is not None:
            out["rate"] = items / self.median_s
            out["best_rate"] = items / self.min_s
        return out


def measure(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> Timing:
    """Times ``fn()`` ``repeats`` times after ``warmup`` untimed calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return Timing(times)


def median_seconds(fn, repeats: int, warmup: int) -> float:
    """Median wall-clock seconds of ``fn()`` (``bench_model.py``'s figure)."""
    return measure(fn, repeats, warmup).median_s


def matmul_gflops(size: int = 2048, repeats: int = 5, warmup: int = 1) -> dict:
    """Dense fp32 ``size x size`` matmul throughput: the machine's achievable GFLOP/s in this run (median and best)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    timing = measure(lambda: torch.mm(a, b), repeats, warmup)
    flops = 2.0 * size**3
    return {"size": size, "gflops": flops / timing.median_s / 1e9, "best_gflops": flops / timing.min_s / 1e9,
            **timing.to_dict()}


# ----------------------------------------------------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------------------------------------------------


def current_rss() -> int:
    """Resident set size of this process in bytes."""
    if psutil is not None:
        return psutil.Process().memory_info().rss
    with open("/proc/self/statm") as f:  # pragma: no cover
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def max_rss() -> int:
    """Peak resident set size of this process so far (bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class PeakRSS:
    """Context manager sampling this process's resident set every ``interval`` seconds from a thread.

    torch allocates outside Python's allocator, so ``tracemalloc`` sees none of it; the resident set does. Torch's
    kernels release the GIL, so the sampling thread runs during them. ``peak`` is the largest sample (bytes, whole
    process) and ``delta`` the peak above the resident set at entry (what the workload itself added).
    """

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.baseline = self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.baseline = self.peak = current_rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss())
        return False

    @property
    def delta(self) -> int:
        return self.peak - self.baseline


# ----------------------------------------------------------------------------------------------------------------
# The machine
# ----------------------------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:  # pragma: no cover
        pass
    return set()


def bf16_support() -> dict:
    """What this CPU offers for bfloat16 matrix work: native dot products (avx512_bf16), AMX tiles, and whether
    oneDNN will use them (``torch.ops.mkldnn._is_mkldnn_bf16_supported``)."""
    flags = cpu_flags()
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - older torch
        onednn = False
    return {"avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags, "onednn_bf16": onednn}


def environment() -> dict:
    """Versions, threads, CPU and load of this run (recorded with every result file)."""
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16": bf16_support(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
