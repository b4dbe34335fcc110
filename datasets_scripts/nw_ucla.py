"""Northwestern-UCLA Multiview Action3D -> ``datasets`` (3D action recognition, cross-view).

Input: the ``all_sqe`` folder of CTR-GCN/InfoGCN's NW-UCLA release, one ``aAA_sSS_eEE_vVV.json`` per sequence
(``{"file_name": ..., "skeletons": [[[x, y, z] * 20] per frame]}``), Kinect v1 joints in SDK order (layout
``kinect_v1_20``), metres.

Output rows: ``poses`` (T, 1, 20, 3) millimetres; label = the 10 classes below (action ids 1, 2, 3, 4, 5, 6, 8,
9, 11, 12); subject ``sSS``, camera ``vVV``. Split (the standard cross-view protocol): train views 1 and 2,
test view 3.

    python -m datasets_scripts.nw_ucla --data_dir all_sqe --output_dir data/nw_ucla
"""

import re
from pathlib import Path

from modeling_ups.pose_io import read_nw_ucla_skeletons

from .common import (ConversionError, ConversionReport, DatasetWriter, add_output_arguments, convert_items, finish,
                     run_cli)
from .schema import TASKS_3D_ACTION, make_example, pose_features

NW_UCLA_ACTION_IDS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)
NW_UCLA_CLASSES = ("pick up with one hand", "pick up with two hands", "drop trash", "walk around", "sit down",
                   "stand up", "donning", "doffing", "throw", "carry")
NW_UCLA_TRAIN_VIEWS = (1, 2)
NW_UCLA_FPS = 30.0  # Kinect v1 nominal frame rate
_NAME_RE = re.compile(r"^a(\d+)_s(\d+)_e(\d+)_v(\d+)\.json$")


def nw_ucla_features():
    return pose_features("kinect_v1_20", 3, NW_UCLA_CLASSES, max_persons=1)


def _convert_file(path: Path):
    match = _NAME_RE.match(path.name)
    if match is None:
        raise ValueError(f"{path.name}: not an NW-UCLA sequence name (aAA_sSS_eEE_vVV.json)")
    action, subject, _, view = (int(g) for g in match.groups())
    if action not in NW_UCLA_ACTION_IDS:
        raise ValueError(f"{path.name}: action id {action} is not one of NW-UCLA's {NW_UCLA_ACTION_IDS}")
    poses = read_nw_ucla_skeletons(path) * 1000.0
    example = make_example(sample_id=path.stem, poses=poses[None], layout="kinect_v1_20", units="mm",
                           label=NW_UCLA_ACTION_IDS.index(action), tasks=TASKS_3D_ACTION, max_persons=1,
                           fps=NW_UCLA_FPS, subject=f"s{subject:02d}", camera=f"v{view:02d}", source_file=path.name)
    split = "train" if view in NW_UCLA_TRAIN_VIEWS else "test"
    return [(example, [("xview", split)])]


def convert_nw_ucla(data_dir, output_dir, overwrite: bool = False, push_to_hub=None) -> ConversionReport:
    """Convert every ``*.json`` of ``data_dir``; returns the report (counts, skipped files)."""
    data_dir = Path(data_dir)
    files = sorted(data_dir.glob("*.json"))
    report = ConversionReport("nw-ucla")
    if not files:
        raise ConversionError(f"no NW-UCLA .json files in {data_dir}")
    with DatasetWriter(output_dir, nw_ucla_features(), ["xview"], overwrite=overwrite) as writer:
        convert_items(files, _convert_file, writer, report, describe=lambda p: p.name)
        return finish(writer, report, push_to_hub)


def add_arguments(parser):
    parser.add_argument("--data_dir", required=True, help="the all_sqe folder (aAA_sSS_eEE_vVV.json files)")
    add_output_arguments(parser)


def run(args):
    return convert_nw_ucla(args.data_dir, args.output_dir, overwrite=args.overwrite, push_to_hub=args.push_to_hub)


def main(argv=None):
    return run_cli(__doc__, add_arguments, run, argv, prog="python -m datasets_scripts.nw_ucla")


if __name__ == "__main__":
    raise SystemExit(main())
