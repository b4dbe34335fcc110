"""Charts about a model rather than a pose: early-prediction curves, the routing map, training curves."""

import json
import math
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.ticker import FormatStrFormatter, FuncFormatter

from ._common import PathLike, as_float_array, new_figure, save_figure, tight_layout

# ----------------------------------------------------------------------------------------------------------
# early action prediction
# ----------------------------------------------------------------------------------------------------------


def plot_early_prediction(
    ratios: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    path: PathLike,
    *,
    ylabel: str = "confidence",
    title: Optional[str] = "Early action prediction",
    figsize: Sequence[float] = (6.0, 4.0),
    dpi: float = 100,
) -> Path:
    """Save a chart of early-prediction confidence (or accuracy) against the observed part of the clip.

    Args:
        ratios (`Sequence[float]`): observation ratios in `(0, 1]`, e.g. `OBSERVATION_RATIOS` (0.1 ... 1.0).
        curves (`Mapping[str, Sequence[float]]`): one curve per label (an action name, or a model name when
            comparing accuracies), each with one value in `[0, 1]` per ratio.
        path (`str` or `Path`): output picture.
        ylabel (`str`, *optional*, defaults to `"confidence"`): e.g. `"top-1 accuracy"`.
        title (`str`, *optional*): `None` for no title.
        figsize (`(float, float)`, *optional*, defaults to `(6, 4)`) and dpi (`float`, defaults to 100): the
            picture is exactly `figsize * dpi` pixels.

    Returns:
        `Path` of the saved picture.
    """
    x = as_float_array(ratios, "ratios")
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)) or x.min() <= 0 or x.max() > 1:
        raise ValueError(f"ratios must be a non-empty list of numbers in (0, 1], got {list(np.ravel(x))}")
    if not curves:
        raise ValueError("curves is empty: pass at least one label -> values")
    figure = new_figure(figsize, dpi)
    ax = figure.add_subplot(1, 1, 1)
    order = np.argsort(x)
    for label, values in curves.items():
        y = as_float_array(values, f"curves[{label!r}]")
        if y.shape != x.shape:
            raise ValueError(f"curves[{label!r}] has {y.size} values for {x.size} ratios")
        ax.plot(100 * x[order], y[order], marker="o", markersize=4, linewidth=1.8, label=str(label))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("observed part of the sequence (%)")
    ax.set_ylabel(ylabel)
    ax.grid(True, linewidth=0.4, alpha=0.5)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="best")
    tight_layout(figure)
    return save_figure(figure, path, dpi)


# ----------------------------------------------------------------------------------------------------------
# dynamic routing
# ----------------------------------------------------------------------------------------------------------


def routing_table(decisions, num_tasks: Optional[int] = None, task_ids=None):
    """Block chosen per (task, layer), and how unanimous the choice was.

    Args:
        decisions (`array-like` of int): `(num_tasks, num_layers)` block ids, or `(N, num_layers)` per sample
            when `task_ids` is given.
        num_tasks (`int`, *optional*): number of rows of the result when `task_ids` is given.
        task_ids (`array-like` of shape `(N,)`, *optional*): the task of each sample; the block a task takes
            in a layer is then the majority over its samples (ties -> lower block id).

    Returns:
        `(table, agreement)`: int array `(num_tasks, num_layers)` (-1 for tasks without samples) and float
        array of the same shape with the fraction of the task's samples that took that block (1 without
        `task_ids`, NaN for absent tasks).
    """
    decisions = np.asarray(decisions)
    if decisions.ndim != 2 or decisions.size == 0:
        raise ValueError(f"decisions must be a 2D array (tasks or samples, layers), got shape {decisions.shape}")
    integral_floats = decisions.dtype.kind == "f" and np.all(decisions == np.round(decisions))
    if decisions.dtype.kind not in "iu" and not integral_floats:
        raise ValueError(f"decisions must hold integer block ids, got dtype {decisions.dtype}")
    decisions = decisions.astype(np.int64)
    if decisions.min() < 0:
        raise ValueError(f"decisions must be block ids >= 0, got {decisions.min()}")
    if task_ids is None:
        return decisions, np.ones(decisions.shape)
    task_ids = np.asarray(task_ids)
    if task_ids.shape != (decisions.shape[0],) or task_ids.dtype.kind not in "iu" or task_ids.min() < 0:
        raise ValueError(
            f"task_ids must be {decisions.shape[0]} non-negative ints (one per row of decisions), got {task_ids!r}"
        )
    num_tasks = int(task_ids.max()) + 1 if num_tasks is None else int(num_tasks)
    if task_ids.max() >= num_tasks:
        raise ValueError(f"task id {task_ids.max()} >= number of tasks {num_tasks}")
    num_blocks = int(decisions.max()) + 1
    table = np.full((num_tasks, decisions.shape[1]), -1, dtype=np.int64)
    agreement = np.full(table.shape, np.nan)
    for task in range(num_tasks):
        rows = decisions[task_ids == task]
        if rows.size == 0:
            continue
        counts = np.stack([(rows == block).sum(axis=0) for block in range(num_blocks)])  # (blocks, layers)
        table[task] = counts.argmax(axis=0)
        agreement[task] = counts.max(axis=0) / rows.shape[0]
    return table, agreement


def plot_routing_map(
    decisions,
    tasks: Sequence[str],
    path: PathLike,
    *,
    num_blocks: Optional[int] = None,
    task_ids=None,
    title: Optional[str] = "Dynamic routing: block chosen per task and encoder layer",
    figsize: Optional[Sequence[float]] = None,
    dpi: float = 100,
) -> Path:
    """Save the routing map (the paper's Fig. 4): which parallel block each task uses in each encoder layer.

    Args:
        decisions (`array-like` of int): `(num_tasks, num_layers)` chosen block ids, or `(N, num_layers)`
            per-sample choices together with `task_ids` (majority per task; the cell then shows its share).
        tasks (`Sequence[str]`): row names, in task-id order (e.g. `UPSConfig.tasks`).
        path (`str` or `Path`): output picture.
        num_blocks (`int`, *optional*): blocks per layer (`config.encoder_blocks_per_layer`); defaults to the
            largest id + 1. Fixes the colour of each block id across pictures.
        task_ids (`array-like` of shape `(N,)`, *optional*): see `decisions`.
        title (`str`, *optional*): `None` for no title.
        figsize (`(float, float)`, *optional*): defaults to `(1.6 + 0.9 * num_layers, 1.2 + 0.55 * num_tasks)`
            inches, clipped to at least `(4, 2.5)`; with dpi (`float`, defaults to 100) the picture is exactly
            `figsize * dpi` pixels.

    Returns:
        `Path` of the saved picture.
    """
    tasks = [str(t) for t in tasks]
    table, agreement = routing_table(decisions, num_tasks=len(tasks), task_ids=task_ids)
    if table.shape[0] != len(tasks):
        raise ValueError(f"decisions has {table.shape[0]} task rows but {len(tasks)} task names were given")
    largest = int(table.max())
    num_blocks = largest + 1 if num_blocks is None else int(num_blocks)
    if num_blocks < 1 or largest >= num_blocks:
        raise ValueError(f"block id {largest} does not fit num_blocks={num_blocks}")
    num_tasks, num_layers = table.shape
    if figsize is None:
        figsize = (max(4.0, 1.6 + 0.9 * num_layers + 0.07 * max(map(len, tasks))), max(2.5, 1.2 + 0.55 * num_tasks))

    palette = colormaps["tab10"] if num_blocks <= 10 else colormaps["tab20"]
    colours = ListedColormap(["#ffffff"] + [palette(b % palette.N) for b in range(num_blocks)])
    norm = BoundaryNorm(np.arange(-1.5, num_blocks), colours.N)  # -1 (no samples) is white

    figure = new_figure(figsize, dpi)
    ax = figure.add_subplot(1, 1, 1)
    ax.imshow(table, cmap=colours, norm=norm, aspect="auto")
    for task in range(num_tasks):
        for layer in range(num_layers):
            block = table[task, layer]
            text = "-" if block < 0 else f"B{block}"
            if task_ids is not None and block >= 0:
                text += f"\n{agreement[task, layer]:.0%}"
            ax.text(layer, task, text, ha="center", va="center", fontsize=7, color="black")
    ax.set_xticks(range(num_layers), [f"L{i + 1}" for i in range(num_layers)], fontsize=8)
    ax.set_yticks(range(num_tasks), tasks, fontsize=8)
    ax.set_xticks(np.arange(-0.5, num_layers), minor=True)
    ax.set_yticks(np.arange(-0.5, num_tasks), minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("encoder layer" + ("  (cell: majority block, share of the task's samples)"
                                      if task_ids is not None else "  (cell: block taken)"), fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    tight_layout(figure)
    return save_figure(figure, path, dpi)


# ----------------------------------------------------------------------------------------------------------
# training curves
# ----------------------------------------------------------------------------------------------------------


def read_log_history(log: Union[PathLike, Iterable[Mapping]]) -> List[dict]:
    """Records of a run's ``log_history.jsonl`` (one JSON object per line), or the given records as a list.

    Raises ValueError naming the line of a malformed record.
    """
    if isinstance(log, (str, Path)):
        records = []
        with open(log, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{log}: line {number} is not JSON ({err.msg})") from None
                if not isinstance(record, dict):
                    raise ValueError(f"{log}: line {number} is not a JSON object")
                records.append(record)
        return records
    records = list(log)
    for number, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise ValueError(f"log record {number} is not a mapping: {record!r}")
    return [dict(r) for r in records]


def smooth(values: Sequence[float], weight: float) -> np.ndarray:
    """Exponential moving average with bias correction (TensorBoard's smoothing); `weight` in [0, 1)."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing must lie in [0, 1), got {weight}")
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    average, correction = 0.0, 0.0
    for i, value in enumerate(values):
        average = weight * average + (1 - weight) * value
        correction = weight * correction + (1 - weight)
        out[i] = average / correction
    return out


def _log_minor_label(value: float, _position) -> str:
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value))
    return f"{value:g}" if abs(mantissa - round(mantissa)) < 1e-6 and round(mantissa) in (2, 5) else ""


def _split_records(records: List[dict]):
    """Training losses per task and evaluation metrics grouped by task: {task: (steps, losses)},
    {split: {group: {metric: (steps, values)}}}."""
    losses: Dict[str, List[tuple]] = {}
    evaluations: Dict[str, Dict[str, Dict[str, List[tuple]]]] = {}
    for number, record in enumerate(records, start=1):
        if "step" not in record:
            raise ValueError(f"log record {number} has no 'step': {record}")
        step = record["step"]
        if "split" in record:
            split = str(record["split"])
            for key, value in record.items():
                if key in ("step", "split", "epoch") or not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                group, _, metric = key.rpartition("/")
                metrics = evaluations.setdefault(split, {}).setdefault(group or "metrics", {})
                metrics.setdefault(metric, []).append((step, float(value)))
        elif "loss" in record:
            losses.setdefault(str(record.get("task", "train")), []).append((step, float(record["loss"])))
    return losses, evaluations


def plot_training_curves(
    log: Union[PathLike, Iterable[Mapping]],
    path: PathLike,
    *,
    smoothing: float = 0.8,
    log_scale_loss: bool = True,
    title: Optional[str] = None,
    figsize: Sequence[float] = (10.0, 6.0),
    dpi: float = 100,
) -> Path:
    """Save the training curves of a run: smoothed per-task loss, and every evaluation metric.

    Args:
        log (`str`, `Path` or iterable of `dict`): the run's ``log_history.jsonl`` or its records. Training
            records have `"step"`, `"task"`, `"loss"` (and `"lr"`, `"epoch"`); evaluation records have `"step"`,
            `"split"` (e.g. `"eval"`) and metrics named `"<task>/<metric>"`, e.g.
            `"action_recognition_3d/top1"` or `"pose_estimation_3d/mpjpe"`.
        path (`str` or `Path`): output picture.
        smoothing (`float`, *optional*, defaults to 0.8): EMA weight of the loss curves (0 = raw); the raw
            losses are drawn faintly underneath.
        log_scale_loss (`bool`, *optional*, defaults to `True`): logarithmic loss axis.
        title (`str`, *optional*): figure title.
        figsize (`(float, float)`, *optional*, defaults to `(10, 6)`) and dpi (`float`, defaults to 100): the
            picture is exactly `figsize * dpi` pixels whatever the number of panels.

    Returns:
        `Path` of the saved picture. One panel shows the losses; each task with evaluation metrics gets its
        own panel (metrics of one task share a unit, e.g. top-1/top-5 or MPJPE/P-MPJPE in mm).
    """
    records = read_log_history(log)
    losses, evaluations = _split_records(records)
    if not losses and not evaluations:
        raise ValueError("the log has no training record (with 'loss') and no evaluation record (with 'split')")
    panels = [(split, group, metrics) for split, groups in evaluations.items() for group, metrics in groups.items()]
    num_panels = 1 + len(panels)
    num_cols = min(3, num_panels)
    num_rows = math.ceil(num_panels / num_cols)

    figure = new_figure(figsize, dpi)
    ax = figure.add_subplot(num_rows, num_cols, 1)
    for index, (task, points) in enumerate(sorted(losses.items())):
        steps, values = map(np.asarray, zip(*sorted(points)))
        colour = f"C{index % 10}"
        if smoothing > 0:
            ax.plot(steps, values, color=colour, alpha=0.2, linewidth=0.8)
        ax.plot(steps, smooth(values, smoothing), color=colour, linewidth=1.6, label=task)
    if log_scale_loss and losses and all(v > 0 for points in losses.values() for _, v in points):
        ax.set_yscale("log")
        # plain numbers (0.5, 1, 2) instead of 5x10^-1, and only 2x and 5x minor labels so they don't collide
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(FuncFormatter(_log_minor_label))
    ax.set_title("training loss per task", fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    if losses:
        ax.legend(fontsize=6)
    ax.tick_params(labelsize=7)
    ax.grid(True, linewidth=0.4, alpha=0.5)

    for index, (split, group, metrics) in enumerate(panels, start=2):
        ax = figure.add_subplot(num_rows, num_cols, index)
        for metric, points in sorted(metrics.items()):
            steps, values = zip(*sorted(points))
            ax.plot(steps, values, marker="o", markersize=3, linewidth=1.4, label=metric)
        ax.set_title(f"{split}: {group}", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.legend(fontsize=6)
        ax.tick_params(labelsize=7)
        ax.grid(True, linewidth=0.4, alpha=0.5)
    if title:
        figure.suptitle(title, fontsize=10)
    tight_layout(figure)
    return save_figure(figure, path, dpi)


__all__ = [
    "plot_early_prediction",
    "routing_table",
    "plot_routing_map",
    "read_log_history",
    "smooth",
    "plot_training_curves",
]
