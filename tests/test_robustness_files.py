"""Property-based hostile-file tests of every reader in modeling_ups/pose_io.py and the converters' file parsers.

Each test builds a well-formed file of its format from drawn parameters, then damages it: values replaced by junk
(NaN, inf, 1e30, 10**400, strings, nested lists, null), keys or lines deleted or duplicated, counts changed, bytes
truncated, flipped or inserted, the text re-encoded (latin-1, UTF-16) or the whole file replaced by random bytes.
Outcome accepted: the documented result (shapes, finite float32 values) or ValueError / TypeError naming the
problem; the converters (run with an in-memory writer, see `_converting_in_memory`) must skip a bad file with a
reason or raise their `ConversionError` naming it, and every row they keep must encode in their schema.
"""

import contextlib
import copy
import json
import pickle
import zipfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from datasets_scripts import kinetics, msr_action3d, ntu, nw_ucla, pyskl, videopose3d
from datasets_scripts.common import ConversionError
from hostile import ROBUST, check_error, clear_error_or_result
from modeling_ups import pose_io
from modeling_ups.skeletons import LAYOUTS
from skeleton_files import ntu_joint_line

FILE_KEYWORDS = ("truncated", "line", "expected", "JSON", "UTF-8", "not a", "pickle", "archive", "member", "array",
                 "shape", "non-finite", "NaN", "numeric", "keypoint", "joints", "frame", "skeleton", "detection",
                 "annotation", "label", "empty", "no ", "values", "layout", "dtype", "forbidden", "integer",
                 "persons", "body", "damaged", "unsupported", "image_id", "count", "score")
JUNK_VALUES = (None, "x", "", [], {}, [[1, 2], [3]], float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 10**400,
               -1, 0, True, 3.5, "1e999", [None] * 3)


# ------------------------------------------------------------------------------------------ damaging content
@st.composite
def damaged_bytes(draw, content: bytes, text: bool = True):
    """``content`` after 0-3 byte-level accidents, or replaced by random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(("truncate", "flip", "insert", "delete_line", "duplicate_line", "encode")
                                    if text else ("truncate", "flip", "insert")))
        if kind == "truncate":
            content = content[: draw(st.integers(0, len(content)))]
        elif kind == "flip" and content:
            i = draw(st.integers(0, len(content) - 1))
            content = content[:i] + bytes([content[i] ^ (1 << draw(st.integers(0, 7)))]) + content[i + 1:]
        elif kind == "insert":
            i = draw(st.integers(0, len(content)))
            content = content[:i] + draw(st.binary(min_size=1, max_size=8)) + content[i:]
        elif kind in ("delete_line", "duplicate_line"):
            lines = content.split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines[i:i + 1] = [] if kind == "delete_line" else [lines[i], lines[i]]
            content = b"\n".join(lines)
        elif kind == "encode":
            decoded = content.decode("utf-8", errors="replace")
            encoding = draw(st.sampled_from(("utf-16", "utf-16-le", "latin-1", "utf-8-sig")))
            content = (decoded + draw(st.sampled_from(("", "é", "µ", "☃")))).encode(encoding, errors="replace")
    return content


@st.composite
def damaged_tree(draw, value):
    """A JSON-like tree with 0-2 nodes replaced by junk or removed (``value`` itself is left untouched)."""
    value = copy.deepcopy(value)
    for _ in range(draw(st.integers(0, 2))):
        paths = list(_paths(value))
        path = draw(st.sampled_from(paths))
        if not path:
            value = copy.deepcopy(draw(st.sampled_from(JUNK_VALUES)))
            continue
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) or not isinstance(parent, dict):
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(JUNK_VALUES)))  # never share junk between trees
        else:
            del parent[path[-1]]
    return value


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value[:4]):  # the first few elements are enough to reach every field kind
            yield from _paths(child, prefix + (i,))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile_files")


def write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


def check_poses(result, channels=(2, 3)):
    """``load_pose_file``'s documented result."""
    poses = result["poses"]
    assert poses.dtype == np.float32 and poses.ndim == 4 and poses.shape[-1] in channels
    assert all(n > 0 for n in poses.shape[1:]) and np.isfinite(poses).all()
    if result["layout"] is not None:
        assert LAYOUTS[result["layout"]].num_joints == poses.shape[2]
    if result["scores"] is not None:
        assert result["scores"].shape == poses.shape[:3] and np.isfinite(result["scores"]).all()


# ------------------------------------------------------------------------------------------------ NTU .skeleton
@st.composite
def ntu_skeleton_text(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    frames = draw(st.integers(0, 3))
    lines = [str(frames)]
    for t in range(frames):
        bodies = draw(st.integers(0, 2))
        lines.append(str(bodies))
        for b in range(bodies):
            lines.append(f"{72057594037931100 + b} 0 1 1 1 1 0 0.1 0.2 2")
            lines.append("25")
            lines += [ntu_joint_line(rng.normal(0, 1, 3), j) for j in range(25)]
    if lines and draw(st.booleans()):  # a value replaced by junk text
        i = draw(st.integers(0, len(lines) - 1))
        words = lines[i].split() or [""]
        words[draw(st.integers(0, len(words) - 1))] = draw(st.sampled_from(
            ("nan", "inf", "1e30", "-1", "x", "", "99999999999999999999", "1e400", "2.5")))
        lines[i] = " ".join(words)
    return draw(damaged_bytes(("\r\n".join(lines) + "\r\n").encode()))


@ROBUST
@given(content=ntu_skeleton_text())
def test_ntu_skeleton_reader(workdir, content):
    path = write(workdir, "S001C001P001R001A001.skeleton", content)
    with clear_error_or_result(FILE_KEYWORDS, "load_pose_file(.skeleton)") as outcome:
        outcome.value = pose_io.load_pose_file(path)
    if outcome.error is None:
        check_poses(outcome.value, channels=(3,))
        assert outcome.value["layout"] == "ntu25" and outcome.value["poses"].shape[0] <= 2
    else:
        assert str(path) in str(outcome.error), "the error does not name the file"


# ------------------------------------------------------------------------------------------------ JSON formats
def _json_bytes(draw, tree):
    text = json.dumps(draw(damaged_tree(tree)))  # NaN / Infinity tokens are what Python's json writes
    return draw(damaged_bytes(text.encode()))


@st.composite
def kinetics_json(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    frames = [{"frame_index": t + 1, "skeleton": [
        {"pose": rng.random(36).round(3).tolist(), "score": rng.random(18).round(3).tolist()}
        for _ in range(draw(st.integers(0, 2)))]} for t in range(draw(st.integers(0, 3)))]
    return _json_bytes(draw, {"data": frames, "label": "hand waving", "label_index": 4})


@st.composite
def alphapose_json(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    joints = draw(st.sampled_from((26, 17, 18)))
    tracked = draw(st.booleans())
    entries = []
    for t in range(draw(st.integers(0, 3))):
        for person in range(draw(st.integers(1, 2))):
            entry = {"image_id": f"{t}.jpg", "category_id": 1, "score": float(rng.random() * 3),
                     "keypoints": (rng.random(joints * 3) * 100).round(2).tolist()}
            if tracked:
                entry["idx"] = person
            entries.append(entry)
    return _json_bytes(draw, entries)


@st.composite
def nw_ucla_json(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    frames = draw(st.integers(0, 3))
    return _json_bytes(draw, {"file_name": "a01_s01_e01_v01", "skeletons": rng.normal(0, 1, (frames, 20, 3)).round(
        4).tolist()})


DEEP_JSON = ("[" * 100_000 + "]" * 100_000).encode()  # nesting deeper than Python's recursion limit


@ROBUST
@given(content=st.one_of(kinetics_json(), alphapose_json(), nw_ucla_json(), st.just(DEEP_JSON)),
       max_persons=st.sampled_from((1, 2, 3)))
def test_json_readers(workdir, content, max_persons):
    path = write(workdir, "clip.json", content)
    with clear_error_or_result(FILE_KEYWORDS, "load_pose_file(.json)") as outcome:
        outcome.value = pose_io.load_pose_file(path, max_persons=max_persons)
    if outcome.error is None:
        check_poses(outcome.value)
        assert outcome.value["poses"].shape[0] <= max_persons
        assert outcome.value["layout"] in ("openpose18", "halpe26", "coco17", "kinect_v1_20")
    else:
        assert str(path) in str(outcome.error), "the error does not name the file"


@ROBUST
@given(tree=st.one_of(kinetics_json(), alphapose_json(), nw_ucla_json()).map(
    lambda b: json.loads(b.decode("utf-8", "replace")) if _is_json(b) else None))
def test_json_readers_on_decoded_documents(tree):
    """The readers' dict/list entry points (what the converters and the pipeline pass) on damaged documents."""
    for reader in (pose_io.read_kinetics_skeleton_json, pose_io.read_alphapose_json, pose_io.read_nw_ucla_skeletons):
        if reader is not pose_io.read_kinetics_skeleton_json and not isinstance(tree, (dict, list)):
            continue  # these take a path when given no document
        with clear_error_or_result(FILE_KEYWORDS, reader.__name__) as outcome:
            outcome.value = reader(tree, name="doc") if isinstance(tree, (dict, list)) else reader(
                {"data": tree}, name="doc")
        if outcome.error is None:
            poses = outcome.value if isinstance(outcome.value, np.ndarray) else outcome.value["poses"]
            assert poses.dtype == np.float32 and np.isfinite(poses).all() and 0 not in poses.shape


def _is_json(content: bytes) -> bool:
    try:
        json.loads(content.decode("utf-8"))
        return True
    except (ValueError, RecursionError):
        return False


# ------------------------------------------------------------------------------------------- pickles and npz
def _array_members():
    small = hnp.array_shapes(min_dims=0, max_dims=5, max_side=4)
    return st.one_of(
        hnp.arrays(st.sampled_from((np.float32, np.float16, np.float64, np.int16, np.bool_, np.complex64)), small,
                   elements=None),
        st.tuples(st.integers(1, 2), st.integers(1, 3), st.sampled_from((17, 18, 25, 26)), st.sampled_from((2, 3)))
        .flatmap(lambda s: hnp.arrays(np.float32, s, elements=st.floats(-1e3, 1e3, width=32) | st.sampled_from(
            (np.nan, np.inf, 1e30)))),
        hnp.arrays(np.dtype("U2"), small, elements=st.sampled_from(("a", "1", ""))),
        st.just(np.array([np.zeros(3), "x"], dtype=object)), st.just(np.array({"a": 1}, dtype=object)),
    )


@st.composite
def pyskl_annotation(draw):
    m, t = draw(st.integers(1, 3)), draw(st.integers(0, 3))
    v, c = draw(st.sampled_from((25, 17, 18))), draw(st.sampled_from((2, 3)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    annotation = {"frame_dir": "S001C001P001R001A001", "label": 0, "total_frames": t, "img_shape": (1080, 1920),
                  "keypoint": rng.normal(0, 1, (m, t, v, c)).astype(np.float16)}
    if c == 2 or draw(st.booleans()):
        annotation["keypoint_score"] = rng.random((m, t, v)).astype(np.float16)
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(sorted(annotation) + ["keypoint", "keypoint"]))
        if draw(st.integers(0, 4)) == 0:
            annotation.pop(key, None)
        else:
            annotation[key] = draw(st.one_of(_array_members(), st.sampled_from(JUNK_VALUES)))
    return annotation


@st.composite
def pyskl_pickle(draw):
    annotation = draw(pyskl_annotation())
    layout = draw(st.sampled_from(("file", "single", "list", "junk")))
    content = {"file": {"split": {"xsub_train": ["S001C001P001R001A001"], "xsub_val": []},
                        "annotations": [annotation]},
               "single": annotation, "list": [annotation], "junk": draw(st.sampled_from(JUNK_VALUES))}[layout]
    data = pickle.dumps(content, protocol=draw(st.integers(0, pickle.HIGHEST_PROTOCOL)))
    return draw(damaged_bytes(data, text=False))


@ROBUST
@given(content=pyskl_pickle())
def test_pickle_reader(workdir, content):
    path = write(workdir, "clip.pkl", content)
    with clear_error_or_result(FILE_KEYWORDS, "load_pose_file(.pkl)") as outcome:
        outcome.value = pose_io.load_pose_file(path)
    if outcome.error is None:
        check_poses(outcome.value)
    else:
        assert str(path) in str(outcome.error), "the error does not name the file"


@st.composite
def npz_archive(draw, workdir_unused=None):
    import io

    members = draw(st.dictionaries(st.sampled_from(("poses", "keypoints", "scores", "positions_3d", "other", "x")),
                                   _array_members(), max_size=3))
    buffer = io.BytesIO()
    (np.savez_compressed if draw(st.booleans()) else np.savez)(buffer, **members)
    return draw(damaged_bytes(buffer.getvalue(), text=False))


@ROBUST
@given(content=npz_archive(), layout=st.sampled_from((None, None, "ntu25", "coco17", "bogus")))
def test_npz_reader(workdir, content, layout):
    path = write(workdir, "clip.npz", content)
    with clear_error_or_result(FILE_KEYWORDS, "load_pose_file(.npz)") as outcome:
        outcome.value = pose_io.load_pose_file(path, layout=layout)
    if outcome.error is None:
        check_poses(outcome.value)
    else:
        assert str(path) in str(outcome.error) or "layout" in str(outcome.error), "the error names no file"


@ROBUST
@given(array=_array_members(), damage=st.data())
def test_npy_reader(workdir, array, damage):
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    path = write(workdir, "clip.npy", damage.draw(damaged_bytes(buffer.getvalue(), text=False)))
    with clear_error_or_result(FILE_KEYWORDS, "load_pose_file(.npy)") as outcome:
        outcome.value = pose_io.load_pose_file(path)
    if outcome.error is None:
        check_poses(outcome.value)


# ------------------------------------------------------------------------------------------- the converters
class _MemoryWriter:
    """Stands in for `DatasetWriter`: every row is encoded with the dataset's features (what ArrowWriter checks)
    and kept in memory, so a converter runs in milliseconds instead of writing Arrow files."""

    def __init__(self, output_dir, features, benchmarks, overwrite=False, **kwargs):
        self.features, self.benchmarks, self.rows = features, list(benchmarks), []

    def add(self, example, targets):
        targets = list(targets)
        assert targets and all(b in self.benchmarks and s in ("train", "test") for b, s in targets)
        self.features.encode_example(example)
        self.rows.append(example)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@contextlib.contextmanager
def _converting_in_memory(module):
    writers = []

    def make_writer(*args, **kwargs):
        writers.append(_MemoryWriter(*args, **kwargs))
        return writers[-1]

    with mock.patch.object(module, "DatasetWriter", make_writer), \
            mock.patch.object(module, "finish", lambda writer, report, push_to_hub=None: report), \
            mock.patch("datasets_scripts.common.tqdm", lambda items, **kwargs: items), \
            mock.patch("datasets_scripts.common.tqdm.write", lambda *a, **k: None, create=True):
        yield writers


def check_conversion(run, module, name):
    """Run a converter: a ConversionError naming the problem, or a report whose skipped files give a reason and
    whose rows are finite in their schema; nothing else may escape."""
    with _converting_in_memory(module) as writers:
        try:
            report = run()
        except ConversionError as error:
            assert str(error).strip()
            event("ConversionError")
            return None
        except Exception as error:  # noqa: BLE001
            pytest.fail(f"{name}: {type(error).__name__} escaped the converter: {error!r}")
    for source, reason in report.skipped:
        check_error(ValueError(reason), FILE_KEYWORDS + ("not part", "outside", "missing", "needs", "views"),
                    f"{name} skipped {source}")
    rows = writers[0].rows if writers else []
    assert report.converted == len(rows)
    event("converted" if rows else "skipped")
    for row in rows:
        assert np.isfinite(row["poses"]).all() and row["poses"].ndim == 4 and row["poses"].shape[0] > 0
        assert row["poses"].shape[2] == LAYOUTS[row["layout"]].num_joints
    return rows


@ROBUST
@given(content=ntu_skeleton_text())
def test_ntu_converter(workdir, content):
    folder = workdir / "ntu"
    folder.mkdir(exist_ok=True)
    write(folder, "S001C001P001R001A001.skeleton", content)
    check_conversion(lambda: ntu.convert_ntu(folder, workdir / "out"), ntu, "convert_ntu")


@ROBUST
@given(content=kinetics_json(), labels=st.one_of(st.just({"clip": {"has_skeleton": True, "label": "hand waving",
                                                                        "label_index": 4}}), st.builds(dict)))
def test_kinetics_converter(workdir, content, labels):
    folder = workdir / "kinetics"
    (folder / "kinetics_val").mkdir(parents=True, exist_ok=True)
    write(folder / "kinetics_val", "clip.json", content)
    write(folder, "kinetics_val_label.json", json.dumps(labels).encode())
    check_conversion(lambda: kinetics.convert_kinetics(folder, workdir / "out"), kinetics, "convert_kinetics")


@ROBUST
@given(content=nw_ucla_json())
def test_nw_ucla_converter(workdir, content):
    path = write(workdir, "a01_s01_e01_v01.json", content)
    with clear_error_or_result(FILE_KEYWORDS, "nw_ucla._convert_file") as outcome:
        outcome.value = nw_ucla._convert_file(path)
    if outcome.error is None:
        (example, targets), = outcome.value
        assert example["poses"].shape[1:] == (1, 20, 3) and np.isfinite(example["poses"]).all()
        nw_ucla.nw_ucla_features().encode_example(example)


@st.composite
def msr_text(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    rows = rng.normal(0, 1, (draw(st.integers(0, 3)) * 20, 4)).round(5)
    lines = [" ".join(str(v) for v in row) for row in rows]
    if lines and draw(st.booleans()):
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = draw(st.sampled_from(("nan 1 2 3", "1 2 3", "1 2 3 4 5", "x y z w", "1e400 0 0 0", "")))
    return draw(damaged_bytes("\n".join(lines).encode()))


@ROBUST
@given(content=msr_text())
def test_msr_converter(workdir, content):
    path = write(workdir, "a01_s01_e01_skeleton3D.txt", content)
    with clear_error_or_result(FILE_KEYWORDS, "msr_action3d._convert_file") as outcome:
        outcome.value = msr_action3d._convert_file(path)
    if outcome.error is None:
        (example, targets), = outcome.value
        assert example["poses"].shape[1:] == (1, 20, 3) and np.isfinite(example["poses"]).all()
        msr_action3d.msr_features().encode_example(example)


@ROBUST
@given(content=pyskl_pickle())
def test_pyskl_converter(workdir, content):
    path = write(workdir, "ntu60_3danno.pkl", content)
    check_conversion(lambda: pyskl.convert_pyskl(path, workdir / "out"), pyskl, "convert_pyskl")


@st.composite
def videopose3d_archives(draw):
    import io

    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    frames, joints = draw(st.integers(0, 3)), draw(st.sampled_from((17, 32, 15)))
    positions = {"S1": {"Walking 1": rng.normal(0, 1, (frames, joints, 3))}, "S9": {"Eating": rng.normal(
        0, 1, (2, 17, 3))}}
    positions = draw(damaged_tree(positions))
    buffer = io.BytesIO()
    member = np.empty((), dtype=object)  # VideoPose3D stores the dict as a 0-d object array
    member[()] = positions
    np.savez_compressed(buffer, positions_3d=member)
    return draw(damaged_bytes(buffer.getvalue(), text=False))


@ROBUST
@given(content=videopose3d_archives())
def test_videopose3d_converter(workdir, content):
    path = write(workdir, "data_3d_h36m.npz", content)
    check_conversion(lambda: videopose3d.convert_videopose3d(path, workdir / "out", dataset="h36m"), videopose3d,
                     "convert_videopose3d")


def test_damaged_tree_and_bytes_really_damage():
    """The generators above can produce every kind of damage they claim (the tests could fail)."""
    from hypothesis import find

    base = b"line one\nline two\n"
    assert find(damaged_bytes(base), lambda b: b.startswith(b"\xff\xfe")) is not None  # UTF-16 BOM
    assert find(damaged_bytes(base), lambda b: 0 < len(b) < len(base) and base.startswith(b))
    assert find(damaged_tree({"a": [1, 2]}), lambda t: isinstance(t, dict) and "a" not in t) == {}
    with zipfile.ZipFile(__import__("io").BytesIO(find(npz_archive(), lambda b: zipfile.is_zipfile(
            __import__("io").BytesIO(b))))) as archive:
        assert archive.namelist() is not None
