"""Shared plumbing of the pictures: off-screen figures of an exact pixel size, colours, path handling."""

import warnings
from pathlib import Path
from typing import Sequence, Tuple, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PathLike = Union[str, Path]

# (left, right, centre) colours per person: person 0 uses the usual blue-left / red-right convention of
# pose papers; further persons get their own hues so two interacting people stay distinguishable.
PERSON_COLOURS: Tuple[Tuple[str, str, str], ...] = (
    ("#1f77b4", "#d62728", "#3c3c3c"),
    ("#17becf", "#ff7f0e", "#8c564b"),
    ("#2ca02c", "#e377c2", "#7f7f7f"),
    ("#9467bd", "#bcbd22", "#000000"),
)


def new_figure(figsize: Sequence[float], dpi: float) -> Figure:
    """A figure bound to the Agg canvas: no display, no pyplot global state, so it is safe in any process.

    Saved without ``bbox_inches="tight"``, the picture is exactly ``figsize * dpi`` pixels.
    """
    if len(figsize) != 2 or min(figsize) <= 0 or dpi <= 0:
        raise ValueError(f"figsize must be two positive numbers and dpi positive, got {figsize!r} and {dpi!r}")
    figure = Figure(figsize=tuple(float(v) for v in figsize), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def tight_layout(figure: Figure) -> None:
    """``figure.tight_layout()`` without its warning for figures too small to fit every label: the caller
    chose the size, and the picture is still written (labels may then overlap)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tight layout not applied", category=UserWarning)
        figure.tight_layout()


def output_path(path: PathLike) -> Path:
    """``path`` as a Path with its parent folder created."""
    path = Path(path)
    if not path.suffix:
        raise ValueError(f"output path {str(path)!r} has no file extension (e.g. .png)")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(figure: Figure, path: PathLike, dpi: float) -> Path:
    path = output_path(path)
    figure.savefig(path, dpi=dpi)
    return path


def bone_colours(layout, person: int = 0) -> list:
    """One colour per bone of ``layout``: by the side of the bone's child joint (left, right or centre)."""
    left_colour, right_colour, centre_colour = PERSON_COLOURS[person % len(PERSON_COLOURS)]
    left, right = set(layout.left), set(layout.right)
    return [left_colour if child in left else right_colour if child in right else centre_colour
            for child, _ in layout.edges]


def joint_colours(layout, person: int = 0) -> list:
    left_colour, right_colour, centre_colour = PERSON_COLOURS[person % len(PERSON_COLOURS)]
    left, right = set(layout.left), set(layout.right)
    return [left_colour if j in left else right_colour if j in right else centre_colour
            for j in range(layout.num_joints)]


def as_float_array(values, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array ({err})") from None
    return array
