"""Skeleton pictures: one 2D or 3D frame, and an animation of 2D input beside the lifted 3D prediction.

Bones and left/right colours come from the layout registry (``modeling_ups.skeletons``), so every layout the
package knows is drawn the same way: left limbs blue, right limbs red, the trunk grey (other hues for further
persons). Missing joints (NaN, or a score at or below ``min_score``) are left out together with their bones.
"""

from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
from matplotlib import animation

from ..skeletons import get_layout
from ._common import (
    PathLike,
    as_float_array,
    bone_colours,
    joint_colours,
    new_figure,
    output_path,
    save_figure,
    tight_layout,
)

# Matplotlib's vertical axis is Z. Each mapping below is a proper rotation (det +1) from the data frame to
# (X, Y, Z) = (across, depth, up), so a pose is never mirrored and the default view looks from the camera.
_VERTICAL_AXES = {
    "-y": ((0, 1.0), (2, 1.0), (1, -1.0)),  # camera frame (x right, y down, z forward): UPS outputs, H36M
    "y": ((0, -1.0), (2, 1.0), (1, 1.0)),  # Kinect camera space (x left, y up, z forward): NTU RGB+D
    "z": ((0, 1.0), (1, 1.0), (2, 1.0)),  # world frames with z up (Human3.6M world coordinates)
}


def _persons(pose, num_joints: int, dims: Tuple[int, ...], name: str) -> np.ndarray:
    """``pose`` (J, C) or (M, J, C) as (M, J, C), checked against the layout's joint count."""
    array = as_float_array(pose, name)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[-1] not in dims:
        raise ValueError(f"{name} must have shape (J, C) or (persons, J, C) with C in {dims}, got {array.shape}")
    if array.shape[1] != num_joints:
        raise ValueError(f"{name} has {array.shape[1]} joints but the layout has {num_joints}")
    return array


def _hide_low_scores(points: np.ndarray, min_score: float) -> np.ndarray:
    """(..., J, 3) keypoints with a score column -> (..., J, 2) with low-score joints set to NaN."""
    xy = points[..., :2].copy()
    xy[points[..., 2] <= min_score] = np.nan
    return xy


def _to_plot_frame(points: np.ndarray, vertical_axis: str) -> np.ndarray:
    if vertical_axis not in _VERTICAL_AXES:
        raise ValueError(f"vertical_axis must be one of {sorted(_VERTICAL_AXES)}, got {vertical_axis!r}")
    return np.stack([sign * points[..., axis] for axis, sign in _VERTICAL_AXES[vertical_axis]], axis=-1)


def _bounds(points: np.ndarray, margin: float = 0.1) -> Tuple[np.ndarray, float]:
    """Centre and half-width of a cube (or square) holding all finite points, with a margin."""
    finite = points[np.all(np.isfinite(points), axis=-1)]
    if finite.size == 0:
        raise ValueError("the pose has no finite joint to draw")
    low, high = finite.min(axis=0), finite.max(axis=0)
    half = max(float((high - low).max()) / 2, 1e-6) * (1 + margin)
    return (low + high) / 2, half


def _segments(points: np.ndarray, layout) -> list:
    """Per bone, the (2, C) end points (child, parent)."""
    return [points[[child, parent]] for child, parent in layout.edges]


def draw_skeleton_2d(ax, points: np.ndarray, layout, person: int = 0, alpha: float = 1.0,
                     linewidth: float = 2.0, markersize: float = 3.0) -> list:
    """Draw one (J, 2) skeleton on 2D axes; returns the bone and joint artists (for animation updates)."""
    artists = []
    for segment, colour in zip(_segments(points, layout), bone_colours(layout, person)):
        (line,) = ax.plot(segment[:, 0], segment[:, 1], color=colour, linewidth=linewidth, alpha=alpha,
                          solid_capstyle="round")
        artists.append(line)
    for j, colour in enumerate(joint_colours(layout, person)):
        (dot,) = ax.plot(points[j, :1], points[j, 1:2], "o", color=colour, markersize=markersize, alpha=alpha)
        artists.append(dot)
    return artists


def draw_skeleton_3d(ax, points: np.ndarray, layout, person: int = 0, alpha: float = 1.0,
                     linewidth: float = 2.0, markersize: float = 3.0) -> list:
    """Draw one (J, 3) skeleton, already in plot frame (X, Y, Z up), on 3D axes; returns the artists."""
    artists = []
    for segment, colour in zip(_segments(points, layout), bone_colours(layout, person)):
        (line,) = ax.plot(segment[:, 0], segment[:, 1], segment[:, 2], color=colour, linewidth=linewidth,
                          alpha=alpha, solid_capstyle="round")
        artists.append(line)
    for j, colour in enumerate(joint_colours(layout, person)):
        (dot,) = ax.plot(points[j, :1], points[j, 1:2], points[j, 2:3], "o", color=colour,
                         markersize=markersize, alpha=alpha)
        artists.append(dot)
    return artists


def _update_2d(artists: list, points: np.ndarray, layout, alpha: float) -> None:
    num_bones = len(layout.edges)
    for line, segment in zip(artists[:num_bones], _segments(points, layout)):
        line.set_data(segment[:, 0], segment[:, 1])
    for j, dot in enumerate(artists[num_bones:]):
        dot.set_data(points[j, :1], points[j, 1:2])
    for artist in artists:
        artist.set_alpha(alpha)


def _update_3d(artists: list, points: np.ndarray, layout, alpha: float) -> None:
    num_bones = len(layout.edges)
    for line, segment in zip(artists[:num_bones], _segments(points, layout)):
        line.set_data_3d(segment[:, 0], segment[:, 1], segment[:, 2])
    for j, dot in enumerate(artists[num_bones:]):
        dot.set_data_3d(points[j, :1], points[j, 1:2], points[j, 2:3])
    for artist in artists:
        artist.set_alpha(alpha)


def _style_2d(ax, centre: np.ndarray, half: float, invert_y: bool) -> None:
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    if invert_y:
        ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    ax.grid(True, linewidth=0.4, alpha=0.4)


def _style_3d(ax, centre: np.ndarray, half: float, elev: float, azim: float) -> None:
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_box_aspect((1, 1, 1), zoom=1.1)
    ax.view_init(elev=elev, azim=azim)
    # Grid without numbers: three crowded tick scales say little about a pose, and the plot frame is
    # (across, depth, up) whatever the data's own axis letters are.
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_ticklabels([])
    ax.tick_params(length=0, pad=0)


def plot_skeleton_2d(
    pose,
    layout,
    path: PathLike,
    *,
    min_score: float = 0.0,
    invert_y: bool = True,
    title: Optional[str] = None,
    show_joint_ids: bool = False,
    figsize: Sequence[float] = (4.0, 4.0),
    dpi: float = 100,
) -> Path:
    """Save a picture of one 2D skeleton frame (one or several persons).

    Args:
        pose (`array-like`): `(J, 2)` keypoints, `(J, 3)` keypoints with a confidence score per joint
            (OpenPose / COCO files), or `(persons, J, 2|3)` for several people in the frame.
        layout (`str` or `SkeletonLayout`): layout name for `modeling_ups.skeletons.get_layout` (e.g. `"coco17"`).
        path (`str` or `Path`): output picture; the format follows the extension (`.png`, `.pdf`, `.svg`).
        min_score (`float`, *optional*, defaults to 0.0): joints with a score at or below it are not drawn
            (OpenPose writes 0 for undetected joints).
        invert_y (`bool`, *optional*, defaults to `True`): image coordinates, y pointing down.
        title (`str`, *optional*): defaults to the layout name.
        show_joint_ids (`bool`, *optional*): write each joint's index next to it (to check a layout).
        figsize (`(float, float)`, *optional*, defaults to `(4, 4)`) and dpi (`float`, defaults to 100): the
            picture is exactly `figsize * dpi` pixels (400 x 400 by default).

    Returns:
        `Path` of the saved picture.
    """
    layout = get_layout(layout)
    persons = _persons(pose, layout.num_joints, (2, 3), "pose")
    xy = _hide_low_scores(persons, min_score) if persons.shape[-1] == 3 else persons
    figure = new_figure(figsize, dpi)
    ax = figure.add_subplot(1, 1, 1)
    for person, points in enumerate(xy):
        draw_skeleton_2d(ax, points, layout, person=person)
        if show_joint_ids:
            for j, (x, y) in enumerate(points):
                if np.isfinite(x) and np.isfinite(y):
                    ax.annotate(str(j), (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    _style_2d(ax, *_bounds(xy.reshape(-1, 2)), invert_y=invert_y)
    ax.set_title(title if title is not None else f"{layout.name} ({layout.num_joints} joints)", fontsize=9)
    tight_layout(figure)
    return save_figure(figure, path, dpi)


def plot_skeleton_3d(
    pose,
    layout,
    path: PathLike,
    *,
    vertical_axis: str = "-y",
    elev: float = 12.0,
    azim: float = -70.0,
    title: Optional[str] = None,
    figsize: Sequence[float] = (4.0, 4.0),
    dpi: float = 100,
) -> Path:
    """Save a picture of one 3D skeleton frame (one or several persons).

    Args:
        pose (`array-like`): `(J, 3)` or `(persons, J, 3)` joint positions.
        layout (`str` or `SkeletonLayout`): layout name for `modeling_ups.skeletons.get_layout`.
        path (`str` or `Path`): output picture.
        vertical_axis (`str`, *optional*, defaults to `"-y"`): which data axis points up. `"-y"` for camera
            coordinates (UPS pose-estimation outputs, Human3.6M camera frame: y points down), `"y"` for Kinect
            camera space (NTU RGB+D), `"z"` for z-up world coordinates.
        elev, azim (`float`, *optional*): view angles in degrees; the defaults look from near the camera.
        title (`str`, *optional*): defaults to the layout name.
        figsize (`(float, float)`, *optional*, defaults to `(4, 4)`) and dpi (`float`, defaults to 100): the
            picture is exactly `figsize * dpi` pixels.

    Returns:
        `Path` of the saved picture.
    """
    layout = get_layout(layout)
    persons = _to_plot_frame(_persons(pose, layout.num_joints, (3,), "pose"), vertical_axis)
    figure = new_figure(figsize, dpi)
    ax = figure.add_subplot(1, 1, 1, projection="3d")
    for person, points in enumerate(persons):
        draw_skeleton_3d(ax, points, layout, person=person)
    _style_3d(ax, *_bounds(persons.reshape(-1, 3)), elev=elev, azim=azim)
    ax.set_title(title if title is not None else f"{layout.name} ({layout.num_joints} joints)", fontsize=9)
    figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.92)
    return save_figure(figure, path, dpi)


def _animation_writer(path: Path, fps: float):
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return animation.PillowWriter(fps=fps)
    if suffix == ".mp4":
        if not animation.writers.is_available("ffmpeg"):
            raise RuntimeError(
                f"writing {path.name} needs the ffmpeg program, which was not found on PATH; install ffmpeg "
                "or ask for a .gif"
            )
        return animation.FFMpegWriter(fps=fps)
    raise ValueError(f"animation path must end with .gif or .mp4, got {path.name!r}")


def _prediction_frame(t: int, num_input: int, num_predicted: int) -> Tuple[int, bool]:
    """Predicted frame shown at input frame ``t`` and whether it belongs to ``t`` exactly.

    A model emitting K < T frames predicts K consecutive frames starting at ``(T-1)//2 - (K-1)//2`` (the
    processor's pose-estimation targets, design.md); elsewhere the nearest prediction is held, faded.
    """
    offset = (num_input - 1) // 2 - (num_predicted - 1) // 2
    k = t - offset
    return int(np.clip(k, 0, num_predicted - 1)), 0 <= k < num_predicted


def animate_lifting(
    input_2d,
    predicted_3d,
    layout,
    path: PathLike,
    *,
    fps: float = 10.0,
    min_score: float = 0.0,
    vertical_axis: str = "-y",
    elev: float = 12.0,
    azim: float = -70.0,
    figsize: Sequence[float] = (8.0, 4.0),
    dpi: float = 80,
) -> Path:
    """Save an animation of the 2D input sequence beside the predicted 3D poses.

    Args:
        input_2d (`array-like` of shape `(T, J, 2)` or `(T, J, 3)` with scores): the 2D keypoints fed to the model.
        predicted_3d (`array-like` of shape `(K, J, 3)`): the lifted poses. `K == T` shows them frame by frame;
            `K < T` (e.g. the single centre frame UPS emits) places them at the centre of the clip and holds the
            nearest one, faded, on the other frames.
        layout (`str` or `SkeletonLayout`): the layout of both inputs.
        path (`str` or `Path`): `.gif` (Pillow) or `.mp4` (needs the `ffmpeg` program; RuntimeError without it).
        fps (`float`, *optional*, defaults to 10): frames per second.
        min_score, vertical_axis, elev, azim: as in `plot_skeleton_2d` / `plot_skeleton_3d`.
        figsize (`(float, float)`, *optional*, defaults to `(8, 4)`) and dpi (`float`, defaults to 80): every
            frame is exactly `figsize * dpi` pixels (640 x 320 by default).

    Returns:
        `Path` of the saved animation.
    """
    layout = get_layout(layout)
    frames_2d = as_float_array(input_2d, "input_2d")
    frames_3d = as_float_array(predicted_3d, "predicted_3d")
    if frames_2d.ndim != 3 or frames_2d.shape[-1] not in (2, 3) or frames_2d.shape[1] != layout.num_joints:
        raise ValueError(
            f"input_2d must have shape (T, {layout.num_joints}, 2|3) for layout {layout.name!r}, "
            f"got {frames_2d.shape}"
        )
    if frames_3d.ndim != 3 or frames_3d.shape[1:] != (layout.num_joints, 3):
        raise ValueError(
            f"predicted_3d must have shape (K, {layout.num_joints}, 3) for layout {layout.name!r}, "
            f"got {frames_3d.shape}"
        )
    num_frames, num_predicted = frames_2d.shape[0], frames_3d.shape[0]
    if num_frames == 0 or num_predicted == 0 or num_predicted > num_frames:
        raise ValueError(f"need 1 <= predicted frames ({num_predicted}) <= input frames ({num_frames})")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = output_path(path)
    writer = _animation_writer(path, fps)

    xy = _hide_low_scores(frames_2d, min_score) if frames_2d.shape[-1] == 3 else frames_2d
    xyz = _to_plot_frame(frames_3d, vertical_axis)

    figure = new_figure(figsize, dpi)
    ax_2d = figure.add_subplot(1, 2, 1)
    ax_3d = figure.add_subplot(1, 2, 2, projection="3d")
    # Limits from the whole sequence, so the view does not jump between frames.
    _style_2d(ax_2d, *_bounds(xy.reshape(-1, 2)), invert_y=True)
    _style_3d(ax_3d, *_bounds(xyz.reshape(-1, 3)), elev=elev, azim=azim)
    ax_2d.set_title("2D input", fontsize=9)
    ax_3d.set_title("3D prediction", fontsize=9)
    artists_2d = draw_skeleton_2d(ax_2d, xy[0], layout)
    artists_3d = draw_skeleton_3d(ax_3d, xyz[_prediction_frame(0, num_frames, num_predicted)[0]], layout)
    caption = figure.text(0.5, 0.02, "", ha="center", fontsize=8)
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.1, top=0.9, wspace=0.15)

    with writer.saving(figure, str(path), dpi):
        for t in range(num_frames):
            k, exact = _prediction_frame(t, num_frames, num_predicted)
            _update_2d(artists_2d, xy[t], layout, alpha=1.0)
            _update_3d(artists_3d, xyz[k], layout, alpha=1.0 if exact else 0.3)
            held = "" if exact else f"  (3D: held from prediction {k + 1})"
            caption.set_text(f"frame {t + 1}/{num_frames}{held}")
            writer.grab_frame()
    return path


__all__ = ["plot_skeleton_2d", "plot_skeleton_3d", "animate_lifting", "draw_skeleton_2d", "draw_skeleton_3d"]
