"""MSR Action3D -> ``datasets`` (3D action recognition, cross-subject).

Input: ``real_world_coordinates/aAA_sSS_eEE_skeleton3D.txt`` (567 files): 20 lines per frame, each
``x y z confidence`` (metres), in MSR's own joint order.

Joint order. MSR's order is, 1-based: 1 left shoulder, 2 right shoulder, 3 neck (shoulder centre), 4 spine,
5 left hip, 6 right hip, 7 hip centre, 8 left elbow, 9 right elbow, 10 left wrist, 11 right wrist, 12 left hand,
13 right hand, 14 left knee, 15 right knee, 16 left ankle, 17 right ankle, 18 left foot, 19 right foot, 20 head.
:data:`MSR_TO_KINECT_V1` reorders it to ``kinect_v1_20``. The order was checked on the data itself
(``tests/test_converters.py::test_msr_joint_order_matches_the_data``, ~97% of frames each): the head is above the
neck, the neck above the hip centre and the hip centre above the ankles; along every limb each joint lies farther
from the limb's root than the previous one (elbow, wrist, hand; knee, ankle); the bones keep near-constant lengths
(mean relative spread 0.013, against 0.034 with the left and right elbows exchanged); and the body's handedness
(forward = up x right points where the feet point) agrees, as it does for NW-UCLA's Kinect-SDK-ordered data, so
"left" is the performer's left.

Output rows: ``poses`` (T, 1, 20, 3) millimetres, ``confidences`` (T, 1, 20) (the fourth column); label = the 20
classes of :data:`MSR_ACTION3D_CLASSES` (AA - 1). Split (the common cross-subject protocol): odd subjects train,
even subjects test. All 567 sequences are converted; ``--cvpr12_only`` keeps the 557 listed in
``files_used_in_cvpr12_paper.txt`` (the folder's own list, when present).

    python -m datasets_scripts.msr_action3d --data_dir real_world_coordinates --output_dir data/msr_action3d
"""

import re
from pathlib import Path

import numpy as np

from modeling_ups.pose_io import is_numeric_line, read_text_file

from .common import (ConversionError, ConversionReport, DatasetWriter, add_output_arguments, convert_items, finish,
                     read_lines_file, run_cli)
from .schema import TASKS_3D_ACTION, make_example, pose_features

MSR_ACTION3D_CLASSES = ("high arm wave", "horizontal arm wave", "hammer", "hand catch", "forward punch",
                        "high throw", "draw x", "draw tick", "draw circle", "hand clap", "two hand wave",
                        "side-boxing", "bend", "forward kick", "side kick", "jogging", "tennis swing",
                        "tennis serve", "golf swing", "pickup & throw")
# For each kinect_v1_20 joint (hip_center, spine, shoulder_center, head, left shoulder/elbow/wrist/hand, right
# shoulder/elbow/wrist/hand, left hip/knee/ankle/foot, right hip/knee/ankle/foot), its 0-based MSR row.
MSR_TO_KINECT_V1 = (6, 3, 2, 19, 0, 7, 9, 11, 1, 8, 10, 12, 4, 13, 15, 17, 5, 14, 16, 18)
MSR_NUM_JOINTS = 20
MSR_FPS = 15.0  # Li, Zhang & Liu (CVPRW 2010): depth sequences at 15 frames per second
CVPR12_LIST = "files_used_in_cvpr12_paper.txt"
_NAME_RE = re.compile(r"^a(\d+)_s(\d+)_e(\d+)_skeleton3D\.txt$")


def read_msr_skeleton(path) -> np.ndarray:
    """Parse one MSR Action3D skeleton file into float32 (T, 20, 4) rows ``x y z confidence`` in MSR order."""
    path = Path(path)
    lines = read_text_file(str(path)).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{path}: empty file")
    if len(lines) % MSR_NUM_JOINTS:
        raise ValueError(f"{path}: {len(lines)} lines is not a whole number of 20-joint frames (truncated after "
                         f"line {len(lines) - len(lines) % MSR_NUM_JOINTS}?)")
    try:
        values = np.array(" ".join(lines).split(), dtype=np.float32)
    except ValueError:
        bad = next(i for i, line in enumerate(lines) if not is_numeric_line(line))
        raise ValueError(f"{path}: line {bad + 1}: non-numeric values {lines[bad][:60]!r}") from None
    if values.size != len(lines) * 4:
        bad = next(i for i, line in enumerate(lines) if len(line.split()) != 4)
        raise ValueError(f"{path}: line {bad + 1}: expected 4 values (x y z confidence), got {len(lines[bad].split())}")
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: non-finite values")
    return values.reshape(-1, MSR_NUM_JOINTS, 4)


def msr_features():
    return pose_features("kinect_v1_20", 3, MSR_ACTION3D_CLASSES, max_persons=1, with_confidences=True)


def _convert_file(path: Path):
    match = _NAME_RE.match(path.name)
    if match is None:
        raise ValueError(f"{path.name}: not an MSR Action3D skeleton name (aAA_sSS_eEE_skeleton3D.txt)")
    action, subject, repetition = (int(g) for g in match.groups())
    if not 1 <= action <= len(MSR_ACTION3D_CLASSES):
        raise ValueError(f"{path.name}: action id {action} outside 1..20")
    rows = read_msr_skeleton(path)[:, MSR_TO_KINECT_V1]
    if not rows[..., :3].any():
        # a13_s09_e02 of the release is such a file: the tracker recorded no skeleton.
        raise ValueError(f"{path.name}: every joint of every frame is at (0, 0, 0): no skeleton was recorded")
    example = make_example(sample_id=path.name[: -len("_skeleton3D.txt")], poses=rows[None, ..., :3] * 1000.0,
                           confidences=rows[None, ..., 3], layout="kinect_v1_20", units="mm", label=action - 1,
                           tasks=TASKS_3D_ACTION, max_persons=1, fps=MSR_FPS, subject=f"s{subject:02d}",
                           source_file=path.name)
    return [(example, [("xsub", "train" if subject % 2 == 1 else "test")])]


def convert_msr_action3d(data_dir, output_dir, overwrite: bool = False, cvpr12_only: bool = False,
                         push_to_hub=None) -> ConversionReport:
    data_dir = Path(data_dir)
    files = sorted(data_dir.glob("*_skeleton3D.txt"))
    if not files:
        raise ConversionError(f"no MSR Action3D *_skeleton3D.txt files in {data_dir}")
    report = ConversionReport("msr-action3d")
    if cvpr12_only:
        listing = data_dir / CVPR12_LIST
        if not listing.is_file():
            raise ConversionError(f"--cvpr12_only needs {listing}")
        keep = {name.split("_skeleton3D")[0] for name in read_lines_file(listing)}
        before = len(files)
        files = [f for f in files if f.name.split("_skeleton3D")[0] in keep]
        report.exclude(f"not in {CVPR12_LIST}", before - len(files))
    with DatasetWriter(output_dir, msr_features(), ["xsub"], overwrite=overwrite) as writer:
        convert_items(files, _convert_file, writer, report, describe=lambda p: p.name)
        return finish(writer, report, push_to_hub)


def add_arguments(parser):
    parser.add_argument("--data_dir", required=True, help="the real_world_coordinates folder")
    parser.add_argument("--cvpr12_only", action="store_true",
                        help=f"keep only the 557 sequences listed in {CVPR12_LIST}")
    add_output_arguments(parser)


def run(args):
    return convert_msr_action3d(args.data_dir, args.output_dir, overwrite=args.overwrite,
                                cvpr12_only=args.cvpr12_only, push_to_hub=args.push_to_hub)


def main(argv=None):
    return run_cli(__doc__, add_arguments, run, argv, prog="python -m datasets_scripts.msr_action3d")


if __name__ == "__main__":
    raise SystemExit(main())
