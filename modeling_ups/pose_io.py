"""Readers for the skeleton files users hold, and a restricted unpickler to open them safely.

This module ships with checkpoints as remote code (the pipeline reads users' files with it), so it depends on
numpy, json and the standard library only, and imports its siblings with single-dot imports.

Formats (field-anchors section 1.2):

- NTU RGB+D ``.skeleton`` text: frame count, then per frame a body count, then per body a 10-value body line,
  a joint count (25) and 25 lines of 12 values (``x y z depthX depthY colorX colorY orientationW orientationX
  orientationY orientationZ trackingState``); x, y, z are Kinect camera coordinates in metres.
- Kinetics-skeleton JSON (ST-GCN): ``{"data": [{"frame_index": t, "skeleton": [{"pose": [x0, y0, ...] (36),
  "score": [18]}]}], "label": str, "label_index": int}``, OpenPose-18 coordinates normalised to [0, 1] of the
  340x256 videos.
- AlphaPose results JSON: a list of ``{"image_id", "category_id", "keypoints": [x, y, s] * 26 (Halpe) or * 17
  (COCO), "score", "idx" (track id, optional)}``.
- pyskl / mmaction2 annotation pickles: ``{"split": {...}, "annotations": [{"frame_dir", "label", "keypoint"
  (M, T, V, C), "keypoint_score" (M, T, V) for 2D, ...}]}`` or a single annotation dict.
- ``.npy`` arrays (T, J, C) or (M, T, J, C) and ``.npz`` archives holding such an array.

Pickles (``.pkl``, object arrays inside ``.npz``) are opened with :func:`safe_load_pickle` /
:func:`safe_load_npz`: only numpy arrays, dtypes and scalars, containers, strings, bytes, numbers, None and
booleans can be built. Any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) raises
:class:`UnsafePickleError` naming it before anything runs.

Every reader raises ``ValueError`` naming the file and what is wrong with it (truncated, garbled, wrong
encoding, wrong number of values) instead of returning partial data.
"""

import _compat_pickle
import io
import json
import math
import os
import pickle
import re
import struct
import tokenize
import zipfile
import zlib
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from .skeletons import LAYOUTS, MODEL_LAYOUTS, get_layout

PathLike = Union[str, "os.PathLike[str]"]

# ST-GCN's Kinetics-skeleton videos were resized to 340x256 before OpenPose ran (st-gcn OLD_README.md);
# the JSON stores x / 340 and y / 256.
KINETICS_SKELETON_IMAGE_SIZE = (340, 256)
NTU_NUM_JOINTS = 25
_NTU_BODY_VALUES = 10
_NTU_JOINT_VALUES = 12
OPENPOSE_NUM_JOINTS = 18


# ---------------------------------------------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------------------------------------------


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle asked for a global outside the allow-list (it could run code when loaded)."""


def _latin1_encode(text, encoding="latin1"):
    # Protocol-2 pickles (mmcv's default, hence pyskl's files) store bytes as _codecs.encode(str, "latin1").
    # Only that use is admitted: other codecs (zlib, base64, ...) have no place in a pose file.
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"pickle calls _codecs.encode with {type(text).__name__}, {encoding!r}; only "
                                "(str, 'latin1') is allowed")
    return text.encode("latin1")


def _numpy_allowed_globals() -> Dict[Tuple[str, str], Any]:
    """The exact globals numpy's own pickles reference, under the numpy 1.x and 2.x module names."""
    try:  # numpy >= 2
        from numpy._core import multiarray as _multiarray
        from numpy._core import numeric as _numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray as _multiarray
        from numpy.core import numeric as _numeric

    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _multiarray._reconstruct
        allowed[(module, "scalar")] = _multiarray.scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = _numeric._frombuffer  # protocol-5 array pickles
    # numpy 2 pickles dtypes of some kinds through their DType classes (numpy.dtypes.Float32DType, ...).
    dtypes_module = getattr(np, "dtypes", None)
    if dtypes_module is not None:
        for name in dir(dtypes_module):
            obj = getattr(dtypes_module, name)
            if isinstance(obj, type) and issubclass(obj, np.dtype):
                allowed[("numpy.dtypes", name)] = obj
    return allowed


def _build_allowed_globals() -> Dict[Tuple[str, str], Any]:
    import collections

    allowed = _numpy_allowed_globals()
    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    allowed[("collections", "defaultdict")] = collections.defaultdict  # its factory must itself be allowed
    allowed[("_codecs", "encode")] = _latin1_encode
    for name, obj in (("list", list), ("dict", dict), ("tuple", tuple), ("set", set), ("frozenset", frozenset),
                      ("int", int), ("float", float), ("complex", complex), ("bool", bool), ("str", str),
                      ("bytes", bytes), ("bytearray", bytearray)):
        allowed[("builtins", name)] = obj
    return allowed


_ALLOWED_GLOBALS: Optional[Dict[Tuple[str, str], Any]] = None


def allowed_pickle_globals() -> Dict[Tuple[str, str], Any]:
    """The (module, name) pairs :class:`RestrictedUnpickler` resolves; everything else is refused."""
    global _ALLOWED_GLOBALS
    if _ALLOWED_GLOBALS is None:
        _ALLOWED_GLOBALS = _build_allowed_globals()
    return _ALLOWED_GLOBALS


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only build numpy arrays/dtypes/scalars, containers, strings, bytes and numbers.

    ``find_class`` is the only way a pickle reaches code (GLOBAL, STACK_GLOBAL, INST, OBJ and EXT opcodes all
    go through it), so refusing every global outside the allow-list refuses the payload before it runs.
    """

    def find_class(self, module, name):
        # Protocol 0-2 pickles name Python 2 modules (__builtin__.eval, commands.Popen); report and check the
        # Python 3 names, as pickle's own find_class would import them.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        target = allowed_pickle_globals().get((module, name))
        if target is None:
            raise UnsafePickleError(
                f"forbidden global '{module}.{name}' in pickle: only numpy arrays, dtypes and scalars, dicts, lists, "
                "tuples, strings, bytes, numbers, None and booleans may be loaded"
            )
        return target

    def persistent_load(self, pid):
        raise UnsafePickleError(f"pickle uses a persistent id ({pid!r}); pose files never do")


# Other formats a pose "pickle" often turns out to be; unpickling them fails with opcode-level messages (a zip's
# leading "P" is protocol 0's persistent-id opcode).
_NOT_PICKLE_MAGIC = ((b"PK\x03\x04", "a zip archive (an .npz?)"), (b"\x93NUMPY", "a .npy array"),
                     (b"\x1f\x8b", "a gzip file"), (b"\x89HDF", "an HDF5 file"))


def _unpickle(fileobj, name: str):
    if hasattr(fileobj, "peek"):
        head = fileobj.peek(8)[:8]
    elif getattr(fileobj, "seekable", lambda: False)():
        position = fileobj.tell()
        head = fileobj.read(8)
        fileobj.seek(position)
    else:
        head = b""
    for magic, kind in _NOT_PICKLE_MAGIC:
        if head.startswith(magic):
            raise ValueError(f"{name}: not a pickle but {kind}")
    try:
        return RestrictedUnpickler(fileobj, encoding="latin1").load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{name}: {err}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError,
            KeyError, MemoryError, OverflowError) as err:
        raise ValueError(f"{name}: not a readable pickle ({type(err).__name__}: {err})") from None


def safe_load_pickle(path_or_file):
    """Unpickle ``path_or_file`` (a path or a binary file object) with :class:`RestrictedUnpickler`.

    Raises:
        UnsafePickleError: the pickle references a forbidden global (nothing is executed).
        ValueError: the file is not a readable pickle (truncated, garbled).
    """
    if hasattr(path_or_file, "read"):
        return _unpickle(path_or_file, getattr(path_or_file, "name", "<pickle stream>"))
    path = os.fspath(path_or_file)
    with open(path, "rb") as f:
        return _unpickle(f, path)


# What numpy's header parsing raises on a garbled header besides ValueError (tokenize runs on version-1 headers,
# ast.literal_eval on all of them, struct on the length field).
_NPY_HEADER_ERRORS = (ValueError, SyntaxError, TypeError, EOFError, OverflowError, MemoryError, RecursionError,
                      tokenize.TokenError, struct.error)


def _read_npy_member(fileobj, name: str, size: Optional[int] = None) -> np.ndarray:
    """One ``.npy`` array from ``fileobj`` (``size``: the bytes it holds, so a header promising more data than the
    file has is reported as truncated instead of allocating what it promises)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fileobj)
        if version == (1, 0):
            shape, fortran_order, dtype = fmt.read_array_header_1_0(fileobj)
        elif version == (2, 0):
            shape, fortran_order, dtype = fmt.read_array_header_2_0(fileobj)
        else:  # (3, 0): utf-8 field names; numpy has no public reader for that header
            impl = getattr(fmt, "_read_array_header", None)
            if impl is None:
                from numpy.lib import _format_impl as impl_module

                impl = impl_module._read_array_header
            shape, fortran_order, dtype = impl(fileobj, version)
    except _NPY_HEADER_ERRORS as err:
        raise ValueError(f"{name}: not a .npy array ({type(err).__name__}: {err})") from None
    if dtype.hasobject:
        # np.save pickles object arrays whole; rebuild them through the restricted unpickler.
        array = _unpickle(fileobj, name)
        if not isinstance(array, np.ndarray):
            raise ValueError(f"{name}: object member unpickled to {type(array).__name__}, not an array")
        return array
    count = math.prod(int(n) for n in shape)  # Python ints: a huge shape must not wrap around in int64
    needed = count * dtype.itemsize
    available = None if size is None else size - fileobj.tell()
    if available is not None and needed > available:
        raise ValueError(f"{name}: truncated array data (the header announces {needed} bytes, {available} follow)")
    data = fileobj.read(needed)
    if len(data) != needed:
        raise ValueError(f"{name}: truncated array data ({len(data)} of {needed} bytes)")
    try:
        array = np.frombuffer(data, dtype=dtype, count=count)
        if fortran_order:
            return array.reshape(shape[::-1]).transpose().copy()
        return array.reshape(shape).copy()
    except (ValueError, TypeError) as err:  # zero-sized or otherwise unusable dtypes
        raise ValueError(f"{name}: unreadable array data of dtype {dtype} ({err})") from None


def safe_load_npz(path: PathLike) -> Dict[str, np.ndarray]:
    """Read every member of an ``.npz`` archive; object arrays are unpickled with :class:`RestrictedUnpickler`.

    Returns a dict ``{member name without .npy: array}``, the arrays ``np.load(path, allow_pickle=True)`` would
    give (call ``.item()`` on 0-d object arrays such as VideoPose3D's ``positions_3d``).
    """
    path = os.fspath(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        raise ValueError(f"{path}: not an .npz archive ({err})") from None
    out = {}
    with archive:
        for info in archive.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            try:
                with archive.open(info) as member:
                    out[key] = _read_npy_member(io.BufferedReader(member), f"{path}[{key}]", size=info.file_size)
            # CRC errors, truncated archives, corrupt deflate streams (zlib.error), flags claiming an unknown
            # compression method (NotImplementedError) or encryption (RuntimeError).
            except (zipfile.BadZipFile, EOFError, OSError, zlib.error, NotImplementedError, RuntimeError) as err:
                raise ValueError(f"{path}[{key}]: damaged archive member ({type(err).__name__}: {err})") from None
    return out


# ---------------------------------------------------------------------------------------------------------------
# NTU RGB+D .skeleton
# ---------------------------------------------------------------------------------------------------------------


def read_text_file(path: str) -> str:
    """The text of ``path``; ValueError (naming the file and byte offset) when it is not UTF-8/ASCII."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8/ASCII text file ({err.reason} at byte {err.start})") from None


def read_ntu_skeleton(path: PathLike) -> Dict[str, Any]:
    """Parse an NTU RGB+D ``.skeleton`` file.

    Returns:
        dict with ``num_frames`` (the header count) and ``bodies``: one dict per body ID, in order of first
        appearance, with ``body_id`` (str), ``frame_index`` int64 (n,) (frames the body is tracked in),
        ``joints`` float32 (n, 25, 3) camera coordinates in metres, ``depth_xy`` / ``color_xy`` float32
        (n, 25, 2) pixel coordinates, ``tracking_state`` int8 (n, 25).

    Raises:
        ValueError: naming the file and line when a count or a line's number of values is wrong, the file
            ends early (truncated) or has content after the last frame.
    """
    path = os.fspath(path)
    lines = read_text_file(path).splitlines()
    n_lines = len(lines)
    pos = 0

    def read_int(what: str) -> int:
        nonlocal pos
        if pos >= n_lines:
            raise ValueError(f"{path}: truncated: expected {what} at line {pos + 1}, the file has {n_lines} lines")
        text = lines[pos].strip()
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{path}: line {pos + 1}: expected {what} (an integer), got {text[:40]!r}") from None
        if value < 0:
            raise ValueError(f"{path}: line {pos + 1}: negative {what} {value}")
        pos += 1
        return value

    num_frames = read_int("the frame count")
    bodies: Dict[str, Dict[str, list]] = {}
    for frame in range(num_frames):
        num_bodies = read_int(f"the body count of frame {frame}")
        for b in range(num_bodies):
            if pos >= n_lines:
                raise ValueError(f"{path}: truncated: expected the body line of body {b} of frame {frame} at line "
                                 f"{pos + 1}, the file has {n_lines} lines")
            body_values = lines[pos].split()
            if len(body_values) != _NTU_BODY_VALUES:
                raise ValueError(f"{path}: line {pos + 1}: expected {_NTU_BODY_VALUES} body values for body {b} of "
                                 f"frame {frame}, got {len(body_values)}")
            body_id = body_values[0]
            pos += 1
            num_joints = read_int(f"the joint count of body {b} of frame {frame}")
            if num_joints != NTU_NUM_JOINTS:
                raise ValueError(f"{path}: line {pos}: expected {NTU_NUM_JOINTS} joints (Kinect v2), got {num_joints}")
            if pos + num_joints > n_lines:
                raise ValueError(f"{path}: truncated: body {b} of frame {frame} needs joint lines {pos + 1}-"
                                 f"{pos + num_joints}, the file has {n_lines} lines")
            block = lines[pos:pos + num_joints]
            try:
                values = np.array(" ".join(block).split(), dtype=np.float64)
            except ValueError:
                bad = next(i for i, line in enumerate(block) if not is_numeric_line(line))
                raise ValueError(f"{path}: line {pos + bad + 1}: non-numeric joint values "
                                 f"{block[bad][:60]!r}") from None
            if values.size != num_joints * _NTU_JOINT_VALUES:
                bad = next(i for i, line in enumerate(block) if len(line.split()) != _NTU_JOINT_VALUES)
                raise ValueError(f"{path}: line {pos + bad + 1}: expected {_NTU_JOINT_VALUES} values for joint {bad} "
                                 f"of body {b} in frame {frame}, got {len(block[bad].split())}")
            if not np.isfinite(values).all():
                raise ValueError(f"{path}: lines {pos + 1}-{pos + num_joints}: non-finite joint values")
            pos += num_joints
            entry = bodies.setdefault(body_id, {"frame_index": [], "values": []})
            entry["frame_index"].append(frame)
            entry["values"].append(values.reshape(num_joints, _NTU_JOINT_VALUES))
    trailing = [i for i in range(pos, n_lines) if lines[i].strip()]
    if trailing:
        raise ValueError(f"{path}: line {trailing[0] + 1}: unexpected content after the last of {num_frames} frames")

    out_bodies = []
    for body_id, entry in bodies.items():
        values = np.stack(entry["values"])
        out_bodies.append({
            "body_id": body_id,
            "frame_index": np.asarray(entry["frame_index"], dtype=np.int64),
            "joints": values[..., 0:3].astype(np.float32),
            "depth_xy": values[..., 3:5].astype(np.float32),
            "color_xy": values[..., 5:7].astype(np.float32),
            "tracking_state": values[..., 11].astype(np.int8),
        })
    return {"num_frames": num_frames, "bodies": out_bodies}


def is_numeric_line(line: str) -> bool:
    """Whether every whitespace-separated field of ``line`` parses as a number."""
    try:
        [float(v) for v in line.split()]
        return True
    except ValueError:
        return False


def body_motion(joints: np.ndarray) -> float:
    """Total variance of a body's joint positions (sum over x, y, z of the variance over frames and joints).

    The NTU authors' heuristic for the main actor (NTU RGB+D FAQ), also the ``motion`` of pyskl's
    ``ntu_preproc.py`` and CTR-GCN's ``get_raw_skes_data.py`` (square metres for Kinect coordinates).
    """
    joints = np.asarray(joints, dtype=np.float64).reshape(-1, joints.shape[-1])
    return float(joints.var(axis=0).sum())


NTU_BODY_RULES = ("length", "spread", "motion")
# What NTUDenoising can remove: bodies (the three rules, and bodies no person slot has room for) and frames.
NTU_BODY_REMOVALS = NTU_BODY_RULES + ("slots",)
NTU_FRAME_REMOVALS = ("untracked_frames", "noise_only_frames")
NTU_REMOVALS = NTU_BODY_REMOVALS + NTU_FRAME_REMOVALS
NTU_EMPTY_FRAMES = ("trim", "drop", "keep")


@dataclass(frozen=True)
class NTUDenoising:
    """Which bodies of an NTU ``.skeleton`` file become the actors, and which frames are kept.

    Kinect v2 reports furniture, reflections and passers-by as bodies, and gives a person it re-detects a new body
    ID. The defaults reproduce the selection behind pyskl's released ``ntu60_3danno.pkl`` / ``ntu120_3danno.pkl``
    (``tools/data/ntu_preproc.py``), whose thresholds are those of CTR-GCN's ``data/ntu/get_raw_denoised_data.py``.

    The body rules run in the order of ``rules``, each only while the sample has more than one body, and a rule
    that would remove every remaining body removes none (the peers stop with an error there):

    - ``"length"``: remove bodies tracked in at most ``length_threshold`` frames (short false detections).
    - ``"spread"``: a frame of a body is noisy when its joints spread more along x than ``spread_ratio`` times
      their spread along y (people are taller than wide; lying furniture is not). A body with at least
      ``spread_noise_ratio`` of its frames noisy is removed; the others rank by the smaller of their motion and
      the motion of their non-noisy frames.
    - ``"motion"`` (not in the defaults: CTR-GCN wrote it and left it disabled, pyskl has no such step): remove the
      bodies, except the most moving one, whose motion (:func:`body_motion`, m^2) is outside ``motion_range``.

    The remaining bodies, most moving first, fill the person slots: each body goes to the first slot whose time
    span (first to last frame of the bodies already there) it does not overlap, so the fragments of an actor
    whose body ID changed share a slot; a body that overlaps every slot is removed (``"slots"``).

    Frames: frames in which the file tracks no body are dropped (``"untracked_frames"``, as both peers do).
    Frames where only removed bodies were tracked (``"noise_only_frames"``) follow ``empty_frames``: ``"trim"``
    (pyskl) drops them at the start and the end of the clip, and everywhere when a single slot holds data;
    ``"drop"`` (CTR-GCN) drops them everywhere; ``"keep"`` keeps them as all-zero frames.

    Args:
        rules (`tuple[str]`, defaults to `("length", "spread")`): body rules to apply, from ``NTU_BODY_RULES``.
        length_threshold (`int`, defaults to 11): ``"length"`` removes bodies with at most this many frames.
        spread_ratio (`float`, defaults to 0.8): x-spread / y-spread above which a frame is noisy.
        spread_noise_ratio (`float`, defaults to 0.69754): fraction of noisy frames that removes a body.
        motion_range (`tuple[float, float]`, defaults to `(0.089925, 2.0)`): ``"motion"``'s kept interval, m^2.
        empty_frames (`str`, defaults to `"trim"`): ``"trim"``, ``"drop"`` or ``"keep"`` (above).
    """

    rules: Tuple[str, ...] = ("length", "spread")
    length_threshold: int = 11
    spread_ratio: float = 0.8
    spread_noise_ratio: float = 0.69754
    motion_range: Tuple[float, float] = (0.089925, 2.0)
    empty_frames: str = "trim"

    def __post_init__(self):
        rules = tuple(self.rules)
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "motion_range", tuple(float(v) for v in self.motion_range))
        unknown = [r for r in rules if r not in NTU_BODY_RULES]
        if unknown or len(set(rules)) != len(rules):
            raise ValueError(f"NTUDenoising rules must be distinct names from {NTU_BODY_RULES}, got {list(rules)}")
        if self.empty_frames not in NTU_EMPTY_FRAMES:
            raise ValueError(f"NTUDenoising empty_frames must be one of {NTU_EMPTY_FRAMES}, got {self.empty_frames!r}")
        if self.length_threshold < 0 or not self.spread_ratio > 0 or not 0 < self.spread_noise_ratio <= 1:
            raise ValueError("NTUDenoising needs length_threshold >= 0, spread_ratio > 0 and spread_noise_ratio in "
                             f"(0, 1], got {self.length_threshold}, {self.spread_ratio}, {self.spread_noise_ratio}")
        if len(self.motion_range) != 2:
            raise ValueError(f"NTUDenoising motion_range must be two numbers (low, high), got {self.motion_range}")
        low, high = self.motion_range
        if not 0 <= low <= high:
            raise ValueError(f"NTUDenoising motion_range must be (low, high) with 0 <= low <= high, got "
                             f"{self.motion_range}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _noisy_spread_frames(joints: np.ndarray, spread_ratio: float) -> np.ndarray:
    """(n,) bool: frames whose joints spread more along x than ``spread_ratio`` times along y."""
    spread = joints[..., :2].max(axis=1) - joints[..., :2].min(axis=1)  # (n, 2): x and y spread per frame
    return spread[:, 0] > spread_ratio * spread[:, 1]


def denoise_ntu_bodies(skeleton: Dict[str, Any], max_bodies: int = 2,
                       denoising: Optional[NTUDenoising] = None) -> Dict[str, Any]:
    """Choose the actors among the bodies of :func:`read_ntu_skeleton` (see :class:`NTUDenoising`).

    Returns:
        dict with ``poses`` float32 ``(M, T, 25, 3)`` metres (``M <= max_bodies`` filled slots, most moving
        first; a slot is zero in the frames its bodies were not tracked in), ``frame_index`` int64 ``(T,)`` (the
        file's frame of each row), ``slots`` (the body IDs placed in each slot, by first frame) and ``removed``:
        for every entry of ``NTU_REMOVALS``, ``{"bodies": [body IDs], "frames": n}``, where ``frames`` counts the
        frames dropped by a frame rule or the frames the removed bodies were tracked in.

    Raises:
        ValueError: the file tracks no body at all, or ``max_bodies < 1``.
    """
    denoising = NTUDenoising() if denoising is None else denoising
    if max_bodies < 1:
        raise ValueError(f"max_bodies must be >= 1, got {max_bodies}")
    bodies = list(skeleton["bodies"])
    if not bodies:
        raise ValueError("no body is tracked in any frame")
    removed = {name: {"bodies": [], "frames": 0} for name in NTU_REMOVALS}
    motion = [body_motion(b["joints"]) for b in bodies]

    def remove(rule: str, drop: List[int]) -> None:
        nonlocal bodies, motion
        if not drop or len(drop) == len(bodies):
            return
        for i in drop:
            removed[rule]["bodies"].append(bodies[i]["body_id"])
            removed[rule]["frames"] += len(bodies[i]["frame_index"])
        bodies = [b for i, b in enumerate(bodies) if i not in drop]
        motion = [m for i, m in enumerate(motion) if i not in drop]

    for rule in denoising.rules:
        if len(bodies) < 2:
            break
        if rule == "length":
            remove(rule, [i for i, b in enumerate(bodies) if len(b["frame_index"]) <= denoising.length_threshold])
        elif rule == "spread":
            drop = []
            for i, b in enumerate(bodies):
                noisy = _noisy_spread_frames(b["joints"], denoising.spread_ratio)
                if noisy.mean() >= denoising.spread_noise_ratio:
                    drop.append(i)
                elif noisy.any():
                    motion[i] = min(motion[i], body_motion(b["joints"][~noisy]))
            remove(rule, drop)
        else:  # motion
            low, high = denoising.motion_range
            first = int(np.argmax(motion))
            remove(rule, [i for i, m in enumerate(motion) if i != first and not low <= m <= high])

    # Rows: the frames in which the file tracks any body (removed ones included, until the frame rules below).
    tracked = np.unique(np.concatenate([b["frame_index"] for b in skeleton["bodies"]]))
    removed["untracked_frames"]["frames"] = int(skeleton["num_frames"] - tracked.size)
    row_of_frame = np.full(skeleton["num_frames"], -1, dtype=np.int64)
    row_of_frame[tracked] = np.arange(tracked.size)
    spans: List[Tuple[int, int]] = []
    slots: List[List[int]] = []
    for i in sorted(range(len(bodies)), key=lambda i: -motion[i]):  # stable: ties keep first-appearance order
        rows = row_of_frame[bodies[i]["frame_index"]]
        start, end = int(rows[0]), int(rows[-1]) + 1
        free = next((k for k, (s, e) in enumerate(spans) if e <= start or end <= s), None)
        if free is not None:
            spans[free] = (min(start, spans[free][0]), max(end, spans[free][1]))
            slots[free].append(i)
        elif len(spans) < max_bodies:
            spans.append((start, end))
            slots.append([i])
        else:
            removed["slots"]["bodies"].append(bodies[i]["body_id"])
            removed["slots"]["frames"] += len(rows)
    poses = np.zeros((len(slots), tracked.size, NTU_NUM_JOINTS, 3), dtype=np.float32)
    occupied = np.zeros(tracked.size, dtype=bool)
    for k, members in enumerate(slots):
        for i in members:
            rows = row_of_frame[bodies[i]["frame_index"]]
            poses[k, rows] = bodies[i]["joints"]
            occupied[rows] = True
    keep = np.ones(tracked.size, dtype=bool)
    if denoising.empty_frames == "drop" or (denoising.empty_frames == "trim" and len(slots) == 1):
        keep = occupied
    elif denoising.empty_frames == "trim":
        first, last = np.flatnonzero(occupied)[[0, -1]]
        keep[:first] = keep[last + 1:] = False
    removed["noise_only_frames"]["frames"] = int(tracked.size - keep.sum())
    return {"poses": poses[:, keep], "frame_index": tracked[keep],
            "slots": [[bodies[i]["body_id"] for i in sorted(members, key=lambda i: bodies[i]["frame_index"][0])]
                      for members in slots], "removed": removed}


def ntu_bodies_to_array(skeleton: Dict[str, Any], max_bodies: int = 2,
                        denoising: Optional[NTUDenoising] = None) -> np.ndarray:
    """The actors of :func:`read_ntu_skeleton`'s bodies as ``(M, T, 25, 3)`` metres (:func:`denoise_ntu_bodies`).

    Raises:
        ValueError: the file has no tracked body at all.
    """
    return denoise_ntu_bodies(skeleton, max_bodies, denoising)["poses"]


# ---------------------------------------------------------------------------------------------------------------
# JSON formats
# ---------------------------------------------------------------------------------------------------------------


def load_json_file(path: str):
    """Decode a JSON file; ValueError naming the file and position when it is truncated or not JSON."""
    try:
        return json.loads(read_text_file(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON ({err.msg}: line {err.lineno} column {err.colno}); "
                         "truncated or not a JSON file") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply to be a skeleton file") from None


def read_kinetics_skeleton_json(path_or_data, name: Optional[str] = None) -> Dict[str, Any]:
    """Parse one ST-GCN Kinetics-skeleton clip (OpenPose-18).

    Args:
        path_or_data: a path, or the already-decoded JSON dict.
        name: how errors refer to the clip (defaults to the path).

    Returns:
        dict with ``poses`` float32 (P, T, 18, 2) normalised [0, 1] coordinates, ``scores`` float32 (P, T, 18),
        where P is the largest number of skeletons in one frame, person ``p`` of a frame is its ``p``-th listed
        skeleton, and frame ``t`` is ``frame_index - min(frame_index)``; ``label`` (str or None) and
        ``label_index`` (int or None).
    """
    if isinstance(path_or_data, dict):
        data, name = path_or_data, name or "<kinetics json>"
    else:
        name = name or os.fspath(path_or_data)
        data = load_json_file(os.fspath(path_or_data))
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError(f"{name}: not a Kinetics-skeleton clip (expected an object with a 'data' list of frames)")
    frames = data["data"]
    if not frames:
        raise ValueError(f"{name}: the clip has no frames")
    try:
        indices = [int(frame["frame_index"]) for frame in frames]
        skeleton_lists = [list(frame["skeleton"]) for frame in frames]
    except (TypeError, KeyError, ValueError, OverflowError) as err:
        raise ValueError(f"{name}: a frame lacks an integer 'frame_index' or a 'skeleton' list ({err!r})") from None
    first = min(indices)
    num_frames = max(indices) - first + 1
    # Every frame of a clip is listed (ST-GCN writes empty skeleton lists); indices far apart are garbage and
    # would allocate arrays of their span.
    if num_frames > len(frames) + 300:
        raise ValueError(f"{name}: frame_index values span {num_frames} frames but the clip lists {len(frames)}")
    num_persons = max((len(s) for s in skeleton_lists), default=0)
    poses = np.zeros((max(num_persons, 1), num_frames, OPENPOSE_NUM_JOINTS, 2), dtype=np.float32)
    scores = np.zeros((max(num_persons, 1), num_frames, OPENPOSE_NUM_JOINTS), dtype=np.float32)
    for t, skeletons in zip(indices, skeleton_lists):
        for p, skel in enumerate(skeletons):
            try:
                pose = np.asarray(skel["pose"], dtype=np.float32)
                score = np.asarray(skel["score"], dtype=np.float32)
            except (TypeError, KeyError, ValueError, OverflowError) as err:
                raise ValueError(f"{name}: frame_index {t} skeleton {p}: bad 'pose'/'score' ({err!r})") from None
            if pose.shape != (2 * OPENPOSE_NUM_JOINTS,) or score.shape != (OPENPOSE_NUM_JOINTS,):
                raise ValueError(f"{name}: frame_index {t} skeleton {p}: expected 36 pose values and 18 scores, got "
                                 f"{pose.size} and {score.size}")
            if not (np.isfinite(pose).all() and np.isfinite(score).all()):
                raise ValueError(f"{name}: frame_index {t} skeleton {p}: non-finite pose or score values")
            poses[p, t - first] = pose.reshape(OPENPOSE_NUM_JOINTS, 2)
            scores[p, t - first] = score
    label_index = data.get("label_index")
    if label_index is not None:
        try:
            label_index = int(label_index)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{name}: 'label_index' must be an integer, got {label_index!r:.40}") from None
    return {"poses": poses, "scores": scores, "label": data.get("label"), "label_index": label_index}


def top_persons_per_frame(poses: np.ndarray, scores: np.ndarray, k: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """Keep, in every frame, the ``k`` persons with the highest total joint score (ST-GCN's Kinetics feeder).

    Args:
        poses: (P, T, J, C); scores: (P, T, J).

    Returns:
        ``(poses, scores)`` of shapes (k, T, J, C) and (k, T, J); slots beyond P are zeros. As in ST-GCN, the
        ranking is per frame, so a slot need not follow the same person across frames.
    """
    num_persons = poses.shape[0]
    order = np.argsort(-scores.sum(axis=2), axis=0, kind="stable")[:k]  # (k', T)
    t = np.arange(poses.shape[1])[None]
    top_poses, top_scores = poses[order, t], scores[order, t]
    if num_persons < k:
        pad = k - num_persons
        top_poses = np.concatenate([top_poses, np.zeros((pad,) + top_poses.shape[1:], top_poses.dtype)])
        top_scores = np.concatenate([top_scores, np.zeros((pad,) + top_scores.shape[1:], top_scores.dtype)])
    return top_poses, top_scores


_ALPHAPOSE_LAYOUTS = {26: "halpe26", 17: "coco17"}


def _natural_key(value) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(value)))


def read_alphapose_json(path_or_data, max_persons: int = 2, name: Optional[str] = None) -> Dict[str, Any]:
    """Group AlphaPose results (one entry per detected person per image) into pose sequences.

    Frames are the distinct ``image_id`` values in natural order ("2.jpg" before "10.jpg"); frames without any
    detection are absent from AlphaPose's output and so from the sequence. With track ids (``idx``, from
    ``--pose_track``), a person is one track and the ``max_persons`` tracks with the highest total score are
    kept; without them persons are ranked by detection score in every frame.

    Returns:
        dict with ``poses`` float32 (M, T, J, 2) pixels, ``scores`` float32 (M, T, J), ``layout`` ("halpe26"
        or "coco17") and ``image_ids`` (list of T ids).
    """
    if isinstance(path_or_data, list):
        entries, name = path_or_data, name or "<alphapose json>"
    else:
        name = name or os.fspath(path_or_data)
        entries = load_json_file(os.fspath(path_or_data))
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{name}: not AlphaPose results (expected a non-empty list of detections)")
    parsed = []
    num_joints = None
    for i, entry in enumerate(entries):
        try:
            keypoints = np.asarray(entry["keypoints"], dtype=np.float32)
            image_id = entry["image_id"]
        except (TypeError, KeyError, ValueError, OverflowError) as err:
            raise ValueError(f"{name}: detection {i} lacks numeric 'keypoints' or 'image_id' ({err!r})") from None
        if isinstance(image_id, bool) or not isinstance(image_id, (str, int)):
            raise ValueError(f"{name}: detection {i}: 'image_id' must be a file name or a number, got "
                             f"{image_id!r:.40}")
        if keypoints.ndim != 1 or keypoints.size % 3 or keypoints.size // 3 not in _ALPHAPOSE_LAYOUTS:
            raise ValueError(f"{name}: detection {i}: expected 26*3 (Halpe) or 17*3 (COCO) keypoint values, got "
                             f"{keypoints.size}")
        if num_joints is None:
            num_joints = keypoints.size // 3
        elif keypoints.size // 3 != num_joints:
            raise ValueError(f"{name}: detection {i} has {keypoints.size // 3} joints, earlier ones {num_joints}")
        if not np.isfinite(keypoints).all():
            raise ValueError(f"{name}: detection {i}: non-finite keypoint values")
        track = entry.get("idx")
        if isinstance(track, (list, tuple)):
            track = track[0] if track else None
        if track is not None and (isinstance(track, bool) or not isinstance(track, (int, str))):
            raise ValueError(f"{name}: detection {i}: track id 'idx' must be an integer, got {track!r:.40}")
        score = entry.get("score")
        kp = keypoints.reshape(num_joints, 3)
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                                  or not math.isfinite(score)):
            raise ValueError(f"{name}: detection {i}: 'score' must be a finite number, got {score!r:.40}")
        parsed.append((image_id, track, float(score) if score is not None else float(kp[:, 2].mean()), kp))
    image_ids = sorted({p[0] for p in parsed}, key=_natural_key)
    frame_of = {image_id: t for t, image_id in enumerate(image_ids)}
    num_frames = len(image_ids)
    tracked = all(p[1] is not None for p in parsed)
    if tracked:
        totals: Dict[Any, float] = {}
        for _, track, score, _ in parsed:
            totals[track] = totals.get(track, 0.0) + score
        slots = {track: m for m, track in enumerate(sorted(totals, key=lambda k: -totals[k])[:max_persons])}
        num_slots = len(slots)
        assign = [(slots.get(track), image_id, kp) for image_id, track, _, kp in parsed]
    else:
        by_frame: Dict[Any, List] = {}
        for image_id, _, score, kp in parsed:
            by_frame.setdefault(image_id, []).append((score, kp))
        assign = []
        for image_id, detections in by_frame.items():
            detections.sort(key=lambda d: -d[0])
            assign += [(m, image_id, kp) for m, (_, kp) in enumerate(detections[:max_persons])]
        num_slots = min(max_persons, max(len(d) for d in by_frame.values()))
    poses = np.zeros((num_slots, num_frames, num_joints, 2), dtype=np.float32)
    scores = np.zeros((num_slots, num_frames, num_joints), dtype=np.float32)
    for slot, image_id, kp in assign:
        if slot is None:
            continue
        poses[slot, frame_of[image_id]] = kp[:, :2]
        scores[slot, frame_of[image_id]] = kp[:, 2]
    return {"poses": poses, "scores": scores, "layout": _ALPHAPOSE_LAYOUTS[num_joints], "image_ids": image_ids}


# ---------------------------------------------------------------------------------------------------------------
# pyskl annotations and plain arrays
# ---------------------------------------------------------------------------------------------------------------


def read_pyskl_annotation(annotation: Dict[str, Any], name: str = "<annotation>") -> Dict[str, Any]:
    """Validate one pyskl/mmaction2 annotation dict and return its arrays.

    Returns:
        dict with ``poses`` float32 (M, T, V, C), ``scores`` float32 (M, T, V) or None, ``label`` (int or None),
        ``frame_dir``, ``img_shape`` ((h, w) or None).
    """
    if not isinstance(annotation, dict):
        raise ValueError(f"{name}: annotation is a {type(annotation).__name__}, not a dict")
    if "keypoint" not in annotation:
        if "raw_file" in annotation:
            raise ValueError(f"{name}: K400-style annotation pointing at a kpfile ('raw_file'); decompress it with "
                             "pyskl first, this reader needs inline 'keypoint' arrays")
        raise ValueError(f"{name}: annotation has no 'keypoint' array (keys: {sorted(annotation)})")
    try:
        poses = np.asarray(annotation["keypoint"], dtype=np.float32)
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{name}: 'keypoint' is not numeric ({err})") from None
    if poses.ndim != 4 or poses.shape[-1] not in (2, 3):
        raise ValueError(f"{name}: 'keypoint' must be (M, T, V, C) with C in (2, 3), got shape {poses.shape}")
    scores = annotation.get("keypoint_score")
    if scores is not None:
        try:
            scores = np.asarray(scores, dtype=np.float32)
        except (TypeError, ValueError, OverflowError) as err:
            raise ValueError(f"{name}: 'keypoint_score' is not numeric ({err})") from None
        if scores.shape != poses.shape[:3]:
            raise ValueError(f"{name}: 'keypoint_score' shape {scores.shape} does not match keypoint {poses.shape}")
        if not np.isfinite(scores).all():
            raise ValueError(f"{name}: 'keypoint_score' holds non-finite values")
    if not np.isfinite(poses).all():
        raise ValueError(f"{name}: 'keypoint' holds non-finite values")
    label = annotation.get("label")
    if label is not None:
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)) and not (
                isinstance(label, np.ndarray) and label.shape == () and label.dtype.kind in "iu"):
            raise ValueError(f"{name}: 'label' must be an integer class index, got {label!r:.40}")
        label = int(label)
    img_shape = annotation.get("img_shape")
    if img_shape is not None:
        try:
            img_shape = tuple(int(v) for v in img_shape)
        except (TypeError, ValueError, OverflowError):
            img_shape = ()
        if len(img_shape) != 2 or min(img_shape) <= 0:
            raise ValueError(f"{name}: 'img_shape' must be (height, width) in pixels, got "
                             f"{annotation.get('img_shape')!r:.40}")
    return {"poses": poses, "scores": scores, "label": label,
            "frame_dir": str(annotation.get("frame_dir", name)), "img_shape": img_shape}


def _infer_layout(num_joints: int, layout: Optional[str], name: str) -> Tuple[Optional[str], List[str]]:
    if layout is not None:
        spec = get_layout(layout)
        if spec.num_joints != num_joints:
            raise ValueError(f"{name}: layout {spec.name!r} has {spec.num_joints} joints, the file has {num_joints}")
        return spec.name, [spec.name]
    candidates = [n for n in list(MODEL_LAYOUTS) + ["halpe26"] if LAYOUTS[n].num_joints == num_joints]
    return (candidates[0] if len(candidates) == 1 else None), candidates


def as_pose_sequence_array(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` (T, J, C) or (M, T, J, C), C in (2, 3), as finite float32 (M, T, J, C); ValueError naming ``name``."""
    array = np.asarray(array)
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{name}: expected a numeric pose array, got dtype {array.dtype}")
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] not in (2, 3):
        raise ValueError(f"{name}: expected poses shaped (T, J, C) or (M, T, J, C) with C in (2, 3), got "
                         f"{array.shape}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: the pose array holds NaN or infinite values")
    return array


_NPZ_POSE_KEYS = ("poses", "keypoints", "keypoint", "kpts", "reconstruction", "positions", "pose")
_NPZ_SCORE_KEYS = ("scores", "keypoint_score", "confidences", "confidence")


def load_pose_file(path: PathLike, layout: Optional[str] = None, sample: Union[int, str, None] = None,
                   max_persons: int = 2, ntu_denoising: Optional[NTUDenoising] = None) -> Dict[str, Any]:
    """Read any supported skeleton file into one pose sequence.

    Dispatches on the extension and, for JSON, on the content: ``.npy``, ``.npz``, NTU ``.skeleton``,
    Kinetics-skeleton JSON, AlphaPose JSON, NW-UCLA JSON (``{"skeletons": ...}``), pyskl ``.pkl``/``.pickle``.

    Args:
        path: the file.
        layout: the skeleton layout of plain arrays (``.npy``/``.npz``); inferred from the joint count when it
            is unambiguous, otherwise ``"layout"`` is None and ``meta["layout_candidates"]`` lists the options.
        sample: for pyskl files with several annotations, the index or ``frame_dir`` of the one to read (a
            string that is no ``frame_dir`` of the file but an integer is read as an index).
        max_persons: the number of persons kept (NTU: the actors :func:`denoise_ntu_bodies` chooses, most moving
            first; Kinetics: highest score per frame; AlphaPose: highest-scoring tracks).
        ntu_denoising: how NTU bodies are denoised (:class:`NTUDenoising`; default: pyskl's selection, the one
            ``datasets_scripts.ntu`` converts with).

    Returns:
        dict with ``poses`` float32 (M, T, J, C), ``layout`` (str or None), ``scores`` float32 (M, T, J) or None,
        and ``meta`` (``format``, ``units`` ("mm", "px" or None when unknown), ``source``, and format-specific
        entries such as ``label``, or NTU's ``ntu_denoising``: what :func:`denoise_ntu_bodies` removed). 3D files
        are returned in millimetres, 2D ones in pixels (Kinetics' normalised coordinates are scaled back to its
        340x256 frames), as the converted datasets store them.

    Raises:
        ValueError: naming the file and the problem (unknown format, truncated, garbled, wrong encoding, ...).
        UnsafePickleError: a pickle references a forbidden global.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    suffix = os.path.splitext(path)[1].lower()
    if sample is not None and suffix not in (".pkl", ".pickle"):
        raise ValueError(f"{path}: sample={sample!r} selects an annotation of a pyskl .pkl file; a {suffix or 'plain'} "
                         "file holds one sample")
    meta: Dict[str, Any] = {"source": path}
    scores = None
    if suffix == ".skeleton":
        skeleton = read_ntu_skeleton(path)
        try:
            selection = denoise_ntu_bodies(skeleton, max_persons, ntu_denoising)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        poses = selection["poses"] * 1000.0
        layout = "ntu25"
        meta.update(format="ntu_skeleton", units="mm", ntu_denoising=selection["removed"])
    elif suffix == ".npy":
        # The archive members' reader: a garbled header or truncated data is a ValueError naming the file, object
        # arrays go through the restricted unpickler (and are then refused as non-numeric).
        with open(path, "rb") as f:
            array = _read_npy_member(f, path, size=os.fstat(f.fileno()).st_size)
        poses = as_pose_sequence_array(array, path)
        layout, candidates = _infer_layout(poses.shape[2], layout, path)
        meta.update(format="npy", units=None, layout_candidates=candidates)
    elif suffix == ".npz":
        members = safe_load_npz(path)
        key = next((k for k in _NPZ_POSE_KEYS if k in members), None)
        numeric = [k for k, v in members.items() if v.dtype.kind in "fiu" and v.ndim in (3, 4)]
        if key is None and len(numeric) == 1:
            key = numeric[0]
        if key is None:
            raise ValueError(f"{path}: no pose array found (members {sorted(members)}; expected one of "
                             f"{list(_NPZ_POSE_KEYS)}); VideoPose3D dataset archives are read by "
                             "`datasets_scripts.videopose3d`")
        poses = as_pose_sequence_array(members[key], f"{path}[{key}]")
        score_key = next((k for k in _NPZ_SCORE_KEYS if k in members), None)
        if score_key is not None:
            scores = members[score_key]
            if scores.dtype.kind not in "fiu" or scores.size != int(np.prod(poses.shape[:3])):
                raise ValueError(f"{path}[{score_key}]: expected {poses.shape[:3]} numeric scores for poses "
                                 f"{poses.shape}, got {scores.dtype} {scores.shape}")
            scores = scores.astype(np.float32).reshape(poses.shape[:3])
            if not np.isfinite(scores).all():
                raise ValueError(f"{path}[{score_key}]: scores hold NaN or infinite values")
        layout, candidates = _infer_layout(poses.shape[2], layout, path)
        meta.update(format="npz", units=None, layout_candidates=candidates, key=key)
    elif suffix == ".json":
        data = load_json_file(path)
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            clip = read_kinetics_skeleton_json(data, name=path)
            poses, scores = top_persons_per_frame(clip["poses"], clip["scores"], max_persons)
            poses = poses * np.asarray(KINETICS_SKELETON_IMAGE_SIZE, dtype=np.float32)
            layout = "openpose18"
            meta.update(format="kinetics_skeleton", units="px", image_size=list(KINETICS_SKELETON_IMAGE_SIZE),
                        label=clip["label"], label_index=clip["label_index"])
        elif isinstance(data, list):
            result = read_alphapose_json(data, max_persons=max_persons, name=path)
            poses, scores, layout = result["poses"], result["scores"], result["layout"]
            meta.update(format="alphapose", units="px", image_ids=result["image_ids"])
        elif isinstance(data, dict) and "skeletons" in data:
            poses = read_nw_ucla_skeletons(data, name=path)[None] * 1000.0
            layout = "kinect_v1_20"
            meta.update(format="nw_ucla", units="mm")
        else:
            raise ValueError(f"{path}: JSON is neither a Kinetics-skeleton clip, AlphaPose results nor NW-UCLA "
                             "skeletons")
    elif suffix in (".pkl", ".pickle"):
        content = safe_load_pickle(path)
        annotation = _pick_annotation(content, sample, path)
        label = annotation.get("frame_dir", sample) if isinstance(annotation, dict) else sample
        ann = read_pyskl_annotation(annotation, name=f"{path}[{label}]")
        poses, scores = ann["poses"], ann["scores"]
        if poses.shape[0] > max_persons:
            poses = poses[:max_persons]
            scores = None if scores is None else scores[:max_persons]
        # pyskl's layouts are fixed by the joint count: nturgb+d (25), openpose (18), coco (17).
        layout, candidates = _infer_layout(poses.shape[2], layout if layout is not None else
                                           {25: "ntu25", 18: "openpose18", 17: "coco17"}.get(poses.shape[2]), path)
        is_3d = scores is None and poses.shape[-1] == 3
        if is_3d:
            poses = poses * 1000.0  # pyskl keeps NTU's Kinect metres
        meta.update(format="pyskl", units="mm" if is_3d else "px", label=ann["label"], frame_dir=ann["frame_dir"],
                    layout_candidates=candidates)
        if ann["img_shape"] is not None:
            meta["image_size"] = [int(ann["img_shape"][1]), int(ann["img_shape"][0])]
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; expected .npy, .npz, .skeleton, .json, .pkl")
    if poses.size == 0 or poses.shape[1] == 0:
        raise ValueError(f"{path}: the file holds no frames")
    return {"poses": np.ascontiguousarray(poses, dtype=np.float32), "layout": layout,
            "scores": None if scores is None else np.ascontiguousarray(scores, dtype=np.float32), "meta": meta}


def _pick_annotation(content, sample, path):
    if isinstance(content, dict) and "annotations" in content:
        annotations = content["annotations"]
        if not isinstance(annotations, list) or not annotations:
            raise ValueError(f"{path}: 'annotations' is empty or not a list")
        if sample is None:
            if len(annotations) != 1:
                raise ValueError(f"{path}: holds {len(annotations)} annotations; pass sample=<index or frame_dir> "
                                 "(`ups predict --sample`)")
            return annotations[0]
        if isinstance(sample, np.integer):
            sample = int(sample)
        if isinstance(sample, str) and re.fullmatch(r"[+-]?\d+", sample.strip()) and not any(
                isinstance(a, dict) and a.get("frame_dir") == sample for a in annotations):
            sample = int(sample)
        if isinstance(sample, bool) or not isinstance(sample, (int, str)):
            raise ValueError(f"{path}: sample must be an annotation index or a frame_dir, got {sample!r:.40}")
        if isinstance(sample, int):
            if not -len(annotations) <= sample < len(annotations):
                raise ValueError(f"{path}: sample {sample} out of range for {len(annotations)} annotations")
            return annotations[sample]
        for annotation in annotations:
            if isinstance(annotation, dict) and annotation.get("frame_dir") == sample:
                return annotation
        raise ValueError(f"{path}: no annotation with frame_dir {sample!r}")
    if isinstance(content, dict) and "keypoint" in content:
        return content if sample is None else _pick_annotation({"annotations": [content]}, sample, path)
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return _pick_annotation({"annotations": content}, sample, path)
    raise ValueError(f"{path}: not a pyskl annotation file (expected a dict with 'annotations' or 'keypoint')")


def read_nw_ucla_skeletons(path_or_data, name: Optional[str] = None) -> np.ndarray:
    """NW-UCLA ``{"file_name": ..., "skeletons": [[[x, y, z] * 20] per frame]}`` -> float32 (T, 20, 3) metres."""
    if isinstance(path_or_data, dict):
        data, name = path_or_data, name or "<nw-ucla json>"
    else:
        name = name or os.fspath(path_or_data)
        data = load_json_file(os.fspath(path_or_data))
    if not isinstance(data, dict) or "skeletons" not in data:
        raise ValueError(f"{name}: not an NW-UCLA sequence (expected an object with 'skeletons')")
    try:
        poses = np.asarray(data["skeletons"], dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name}: 'skeletons' is not a regular frames x 20 x 3 number array") from None
    if poses.ndim != 3 or poses.shape[1:] != (20, 3) or poses.shape[0] == 0:
        raise ValueError(f"{name}: expected skeletons shaped (frames, 20, 3), got {poses.shape}")
    if not np.isfinite(poses).all():
        raise ValueError(f"{name}: skeletons hold non-finite values")
    return poses


__all__ = [
    "KINETICS_SKELETON_IMAGE_SIZE",
    "UnsafePickleError",
    "RestrictedUnpickler",
    "allowed_pickle_globals",
    "safe_load_pickle",
    "safe_load_npz",
    "read_text_file",
    "load_json_file",
    "read_ntu_skeleton",
    "body_motion",
    "NTU_BODY_RULES",
    "NTU_BODY_REMOVALS",
    "NTU_FRAME_REMOVALS",
    "NTU_REMOVALS",
    "NTU_EMPTY_FRAMES",
    "NTUDenoising",
    "denoise_ntu_bodies",
    "ntu_bodies_to_array",
    "read_kinetics_skeleton_json",
    "top_persons_per_frame",
    "read_alphapose_json",
    "read_pyskl_annotation",
    "read_nw_ucla_skeletons",
    "as_pose_sequence_array",
    "load_pose_file",
]
