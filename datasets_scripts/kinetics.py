"""Kinetics-400 skeletons (ST-GCN's OpenPose-18 release) -> ``datasets`` (2D action recognition).

Input: the unpacked ``kinetics-skeleton`` folder: ``kinetics_train/<id>.json`` and ``kinetics_val/<id>.json``
(one clip each: ``{"data": [{"frame_index", "skeleton": [{"pose": 36 values in [0, 1], "score": 18}]}],
"label", "label_index"}``) plus ``kinetics_train_label.json`` / ``kinetics_val_label.json``
(``{id: {"has_skeleton", "label", "label_index"}}``).

As ST-GCN's ``tools/kinetics_gendata.py`` / Kinetics feeder do: clips with ``has_skeleton: false`` are left out
(counted as excluded), the label comes from the label file, and in every frame the 2 skeletons with the highest
total score are kept (``modeling_ups.pose_io.top_persons_per_frame``). Unlike ST-GCN, clips are not padded to
300 frames and coordinates are not centred: they are scaled back to pixels of the 340x256 frames OpenPose saw.

Output rows: ``poses`` (T, 2, 18, 2) pixels (layout ``openpose18``), ``confidences`` (T, 2, 18) (0 = joint not
detected), ``image_size`` [340, 256], label = ``label_index`` with the names found in the label files; splits
``train`` (kinetics_train) and ``test`` (kinetics_val).

    python -m datasets_scripts.kinetics --data_dir kinetics-skeleton --output_dir data/kinetics400
"""

from pathlib import Path
from typing import Dict, Optional

import numpy as np

from modeling_ups.pose_io import (KINETICS_SKELETON_IMAGE_SIZE, load_json_file, read_kinetics_skeleton_json,
                                  top_persons_per_frame)

from .common import (ConversionError, ConversionReport, DatasetWriter, add_output_arguments, convert_items, finish,
                     run_cli)
from .schema import TASKS_2D_ACTION, make_example, pose_features

KINETICS_FPS = 30.0
KINETICS_PARTS = {"train": "train", "val": "test"}


def read_label_file(path) -> Dict[str, dict]:
    """``kinetics_{train,val}_label.json``; ConversionError when it is unreadable or not in that format."""
    try:
        labels = load_json_file(str(path))
    except ValueError as err:
        raise ConversionError(str(err)) from None
    if not isinstance(labels, dict) or not all(isinstance(e, dict) and "label_index" in e and "label" in e
                                               for e in labels.values()):
        raise ConversionError(f"{path}: expected {{clip id: {{has_skeleton, label, label_index}}}}")
    return labels


def class_names_from_labels(*label_files: Dict[str, dict]):
    """Class names by ``label_index`` gathered from the label files; ConversionError when they disagree."""
    names: Dict[int, str] = {}
    for labels in label_files:
        for clip, entry in labels.items():
            index, name = int(entry["label_index"]), str(entry["label"])
            if names.setdefault(index, name) != name:
                raise ConversionError(f"label_index {index} is both {names[index]!r} and {name!r} (clip {clip})")
    if not names:
        raise ConversionError("the label files name no classes")
    return tuple(names.get(i, f"class_{i}") for i in range(max(names) + 1))


def convert_kinetics(data_dir, output_dir, max_persons: int = 2, overwrite: bool = False,
                     push_to_hub: Optional[str] = None) -> ConversionReport:
    data_dir = Path(data_dir)
    label_files = {part: read_label_file(data_dir / f"kinetics_{part}_label.json") for part in KINETICS_PARTS
                   if (data_dir / f"kinetics_{part}_label.json").is_file()}
    if not label_files:
        raise ConversionError(f"no kinetics_train_label.json / kinetics_val_label.json in {data_dir}")
    class_names = class_names_from_labels(*label_files.values())
    report = ConversionReport("kinetics")
    items = []
    for part, labels in label_files.items():
        clip_dir = data_dir / f"kinetics_{part}"
        files = sorted(clip_dir.glob("*.json"))
        if not files:
            raise ConversionError(f"{clip_dir} holds no clips")
        for path in files:
            entry = labels.get(path.stem)
            if entry is not None and not entry.get("has_skeleton", True):
                report.exclude("has_skeleton is false")
                continue
            items.append((path, entry, KINETICS_PARTS[part]))

    def convert(item):
        path, entry, split = item
        if entry is None:
            raise ValueError(f"{path}: clip id {path.stem!r} is missing from the label file")
        clip = read_kinetics_skeleton_json(path)
        poses, scores = top_persons_per_frame(clip["poses"], clip["scores"], max_persons)
        poses = poses * np.asarray(KINETICS_SKELETON_IMAGE_SIZE, dtype=np.float32)
        example = make_example(sample_id=path.stem, poses=poses, confidences=scores, layout="openpose18",
                               units="px", label=int(entry["label_index"]), tasks=TASKS_2D_ACTION,
                               max_persons=max_persons, fps=KINETICS_FPS, image_size=KINETICS_SKELETON_IMAGE_SIZE,
                               source_file=f"{path.parent.name}/{path.name}")
        return [(example, [("default", split)])]

    features = pose_features("openpose18", 2, class_names, max_persons=max_persons, with_confidences=True,
                             with_image_size=True)
    with DatasetWriter(output_dir, features, ["default"], overwrite=overwrite) as writer:
        convert_items(items, convert, writer, report, describe=lambda it: f"{it[0].parent.name}/{it[0].name}")
        return finish(writer, report, push_to_hub)


def add_arguments(parser):
    parser.add_argument("--data_dir", required=True,
                        help="kinetics-skeleton folder (kinetics_{train,val}/ and kinetics_{train,val}_label.json)")
    parser.add_argument("--max_persons", type=int, default=2, help="skeletons kept per frame, highest score first")
    add_output_arguments(parser)


def run(args):
    return convert_kinetics(args.data_dir, args.output_dir, max_persons=args.max_persons, overwrite=args.overwrite,
                            push_to_hub=args.push_to_hub)


def main(argv=None):
    return run_cli(__doc__, add_arguments, run, argv, prog="python -m datasets_scripts.kinetics")


if __name__ == "__main__":
    raise SystemExit(main())
