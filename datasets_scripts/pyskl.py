"""pyskl / mmaction2 annotation pickles -> ``datasets``.

Input: ``{"split": {split_name: [frame_dir, ...]}, "annotations": [{"frame_dir", "label", "keypoint"
(M, T, V, C), "keypoint_score" (M, T, V) for 2D, "img_shape" (h, w), "total_frames"}, ...]}`` such as
``ntu60_3danno.pkl``, ``ntu120_3danno.pkl`` (3D Kinect, metres) or ``ntu60_hrnet.pkl`` (2D HRNet COCO-17,
pixels). The pickle is opened with ``modeling_ups.pose_io.safe_load_pickle`` (no code can run).

- Layout from V: 25 -> ``ntu25``, 17 -> ``coco17``, 18 -> ``openpose18``.
- 3D annotations (no ``keypoint_score``, C = 3) are scaled by ``--scale_3d`` (1000: Kinect metres -> mm) and
  serve 3D recognition and early prediction; 2D ones keep pixels plus ``confidences`` and ``image_size`` and
  serve 2D recognition.
- Benchmarks come from the ``split`` names: ``xsub_train``/``xsub_val`` -> benchmark ``xsub`` with splits
  ``train``/``test`` (``val`` and ``test`` both map to ``test``); plain ``train``/``val`` -> benchmark
  ``default``.
- Class names: NTU's official names when the file is NTU60/120 (``--dataset``, or inferred from the file name
  and the ``SsssCccc...`` frame dirs), otherwise ``--class_names FILE`` (one per line) or ``class_<id>``.
- K400-style annotations that point at separate kpfiles (``raw_file``) are reported and skipped.

    python -m datasets_scripts.pyskl --annotation ntu60_3danno.pkl --output_dir data/ntu60_pyskl
"""

import re
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from modeling_ups.pose_io import UnsafePickleError, read_pyskl_annotation, safe_load_pickle

from .common import (ConversionError, ConversionReport, DatasetWriter, add_output_arguments, convert_items, finish,
                     parse_benchmarks, read_lines_file, run_cli)
from .ntu import NTU_CLASSES, NTU_FPS, NTU_NAME_RE, parse_ntu_name
from .schema import TASKS_2D_ACTION, TASKS_3D_ACTION, make_example, pose_features

PYSKL_LAYOUTS = {25: "ntu25", 17: "coco17", 18: "openpose18"}
_SPLIT_RE = re.compile(r"^(?:(?P<bench>.+)_)?(?P<part>train|val|test)$")


def split_benchmarks(split: Dict[str, Sequence[str]]) -> Dict[str, Dict[str, List[str]]]:
    """pyskl split dict -> ``{benchmark: {"train": [...], "test": [...]}}``."""
    out: Dict[str, Dict[str, List[str]]] = defaultdict(lambda: {"train": [], "test": []})
    for name, members in split.items():
        match = _SPLIT_RE.match(str(name))
        if match is None:
            raise ValueError(f"split name {name!r} is not '<benchmark>_train|val|test' or 'train|val|test'")
        bench = match.group("bench") or "default"
        out[bench]["train" if match.group("part") == "train" else "test"] += [str(m) for m in members]
    return dict(out)


def _infer_dataset(path: Path, annotations: List[dict]) -> Optional[str]:
    name = path.name.lower()
    for variant in ("ntu120", "ntu60"):
        if variant in name:
            return variant
    dirs = [a.get("frame_dir", "") for a in annotations if isinstance(a, dict)]
    if dirs and all(NTU_NAME_RE.match(str(d)) for d in dirs):
        return "ntu120" if max(parse_ntu_name(str(d))[4] for d in dirs) > 60 else "ntu60"
    return None


def convert_pyskl(annotation_file, output_dir, benchmarks: Optional[Sequence[str]] = None,
                  dataset: Optional[str] = None, class_names_file=None, max_persons: int = 2,
                  scale_3d: float = 1000.0, fps: Optional[float] = None, overwrite: bool = False,
                  push_to_hub=None) -> ConversionReport:
    path = Path(annotation_file)
    try:
        content = safe_load_pickle(path)
    except UnsafePickleError as err:  # names the file
        raise ConversionError(f"refused {err}") from None
    except ValueError as err:  # names the file and says it is no (readable) pickle
        raise ConversionError(f"cannot read {err}") from None
    except OSError as err:
        raise ConversionError(f"cannot read {path}: {err}") from None
    if not isinstance(content, dict) or not isinstance(content.get("annotations"), list):
        raise ConversionError(f"{path}: not a pyskl annotation file (expected {{'split', 'annotations'}})")
    annotations = content["annotations"]
    splits = split_benchmarks(content.get("split") or {})
    if not splits:
        raise ConversionError(f"{path}: has no 'split' dict, so no train/test membership")
    benchmarks = parse_benchmarks(benchmarks, sorted(splits))

    first = next((a for a in annotations if isinstance(a, dict) and "keypoint" in a), None)
    if first is None:
        raise ConversionError(f"{path}: no annotation carries a 'keypoint' array")
    try:
        first = read_pyskl_annotation(first, name=f"{path}[0]")
    except ValueError as err:  # the first annotation fixes the file's layout: without it nothing can be converted
        raise ConversionError(str(err)) from None
    num_joints, num_coords = first["poses"].shape[2], first["poses"].shape[3]
    if num_joints not in PYSKL_LAYOUTS:
        raise ConversionError(f"{path}: {num_joints} joints match none of pyskl's layouts {PYSKL_LAYOUTS}")
    layout = PYSKL_LAYOUTS[num_joints]
    is_3d = first["scores"] is None and num_coords == 3

    dataset = dataset or _infer_dataset(path, annotations)
    # Malformed labels are reported per annotation (read_pyskl_annotation); they do not name classes.
    labels = [int(a["label"]) for a in annotations if isinstance(a, dict)
              and isinstance(a.get("label"), (int, np.integer)) and not isinstance(a.get("label"), bool)]
    if dataset in ("ntu60", "ntu120"):
        class_names = NTU_CLASSES[: 60 if dataset == "ntu60" else 120]
    elif class_names_file:
        class_names = tuple(read_lines_file(class_names_file))
    else:
        class_names = tuple(f"class_{i}" for i in range(max(labels, default=0) + 1))
    fps = fps if fps is not None else (NTU_FPS if dataset in ("ntu60", "ntu120") else 30.0)

    membership: Dict[str, List] = defaultdict(list)
    for bench in benchmarks:
        for part, names in splits[bench].items():
            for name in names:
                membership[name].append((bench, part))
    features = pose_features(layout, 3 if is_3d else 2, class_names, max_persons=max_persons,
                             with_confidences=not is_3d, with_image_size=not is_3d)
    report = ConversionReport("pyskl")

    def convert(index: int):
        raw = annotations[index]
        name = raw.get("frame_dir", f"#{index}") if isinstance(raw, dict) else f"#{index}"
        targets = membership.get(str(name))
        if not targets:
            report.exclude("in none of the selected splits")
            return []
        ann = read_pyskl_annotation(raw, name=f"{path.name}[{name}]")
        poses, scores = ann["poses"], ann["scores"]
        if poses.shape[2:] != (num_joints, num_coords) or (scores is None) != (first["scores"] is None):
            raise ValueError(f"{path.name}[{name}]: keypoint {poses.shape} differs from the file's "
                             f"(M, T, {num_joints}, {num_coords})")
        if ann["label"] is None or not 0 <= ann["label"] < len(class_names):
            raise ValueError(f"{path.name}[{name}]: label {ann['label']} outside 0..{len(class_names) - 1}")
        subject = camera = ""
        setup = -1
        if NTU_NAME_RE.match(ann["frame_dir"]):
            setup, cam, performer, _, _ = parse_ntu_name(ann["frame_dir"])
            subject, camera = f"P{performer:03d}", f"C{cam:03d}"
        common = dict(sample_id=ann["frame_dir"], layout=layout, label=ann["label"], max_persons=max_persons,
                      fps=fps, subject=subject, camera=camera, setup=setup, source_file=path.name)
        if is_3d:
            example = make_example(poses=poses * scale_3d, units="mm", tasks=TASKS_3D_ACTION, **common)
        else:
            if scores is None:
                scores = np.ones(poses.shape[:3], dtype=np.float32)
            shape = ann["img_shape"]
            if shape is None or len(shape) < 2:
                raise ValueError(f"{path.name}[{name}]: 2D annotation without img_shape (h, w)")
            example = make_example(poses=poses[..., :2], confidences=scores, units="px", tasks=TASKS_2D_ACTION,
                                   image_size=(int(shape[1]), int(shape[0])), **common)
        return [(example, targets)]

    with DatasetWriter(output_dir, features, benchmarks, overwrite=overwrite) as writer:
        convert_items(range(len(annotations)), convert, writer, report, describe=lambda i: f"{path.name}[#{i}]",
                      desc="pyskl")
        return finish(writer, report, push_to_hub)


def add_arguments(parser):
    parser.add_argument("--annotation", required=True, help="pyskl annotation pickle (e.g. ntu60_3danno.pkl)")
    parser.add_argument("--benchmark", nargs="+", help="benchmarks to write (default: every one in the split dict)")
    parser.add_argument("--dataset", choices=["ntu60", "ntu120"], help="use NTU's class names (default: inferred)")
    parser.add_argument("--class_names", help="text file with one class name per line (non-NTU files)")
    parser.add_argument("--max_persons", type=int, default=2)
    parser.add_argument("--scale_3d", type=float, default=1000.0, help="3D unit -> mm factor (Kinect metres: 1000)")
    parser.add_argument("--fps", type=float, help="frame rate (default 30)")
    add_output_arguments(parser)


def run(args):
    return convert_pyskl(args.annotation, args.output_dir, benchmarks=args.benchmark, dataset=args.dataset,
                         class_names_file=args.class_names, max_persons=args.max_persons, scale_3d=args.scale_3d,
                         fps=args.fps, overwrite=args.overwrite, push_to_hub=args.push_to_hub)


def main(argv=None):
    return run_cli(__doc__, add_arguments, run, argv, prog="python -m datasets_scripts.pyskl")


if __name__ == "__main__":
    raise SystemExit(main())
