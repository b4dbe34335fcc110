"""Write the ready `UPSProcessor` folders under `processors/` from the label lists in `processors/labels/`.

    python processors/build_processors.py              # (re)write every folder
    python processors/build_processors.py --check      # exit 1 when a committed folder differs from a fresh build
    python processors/build_processors.py --out DIR    # write the folders somewhere else

Each label list holds one official class name per line, in the dataset's class-index order. The folders hold
configuration only (no copies of the package's code): load them with the package installed,
`UPSProcessor.from_pretrained("processors/ntu60")`; `save_pretrained` on a loaded processor writes the remote code
for the Hub.
"""

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from modeling_ups import UPSFeatureExtractor, UPSProcessor, UPSTokenizer  # noqa: E402

LABELS_DIR = HERE / "labels"

# The union a multi-task model is trained on; labels whose normalised text is equal share one token.
UNIFIED_SOURCES = ["synthetic", "ntu120", "kinetics400", "nw-ucla", "msr-action3d", "h36m", "humaneva"]

# folder -> label lists and processor settings. Everything not named uses the defaults: the six model layouts,
# max_persons=2, max_frames=300, num_bins=256, coordinate_range [-1200, 1200] mm per axis, one target frame.
FOLDERS = {
    "ntu60": {"labels": ["ntu60"], "default_layout": "ntu25", "coordinates": "3d"},
    "ntu120": {"labels": ["ntu120"], "default_layout": "ntu25", "coordinates": "3d"},
    # ST-GCN's Kinetics-skeleton: OpenPose-18 (x, y, score) triples.
    "kinetics400": {"labels": ["kinetics400"], "default_layout": "openpose18", "coordinates": "2d"},
    # VideoPose3D's 2D inputs (x, y) -> 3D targets in millimetres.
    "h36m": {"labels": ["h36m"], "default_layout": "h36m17"},
    "humaneva": {"labels": ["humaneva"], "default_layout": "humaneva15"},
    "nw-ucla": {"labels": ["nw-ucla"], "default_layout": "kinect_v1_20", "coordinates": "3d"},
    "msr-action3d": {"labels": ["msr-action3d"], "default_layout": "kinect_v1_20", "coordinates": "3d"},
    "synthetic": {"labels": ["synthetic"]},
    "unified": {"labels": UNIFIED_SOURCES},
}


def read_labels(name: str) -> list:
    lines = (LABELS_DIR / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    labels = [line.strip() for line in lines if line.strip()]
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels/{name}.txt lists a class twice")
    return labels


def build_processor(name: str) -> UPSProcessor:
    settings = dict(FOLDERS[name])
    labels = [label for source in settings.pop("labels") for label in read_labels(source)]
    tokenizer = UPSTokenizer(labels=labels, num_bins=settings.pop("num_bins", 256))
    return UPSProcessor(UPSFeatureExtractor(**settings), tokenizer)


def write_all(out_dir: Path) -> None:
    if read_labels("ntu120")[:60] != read_labels("ntu60"):
        raise ValueError("NTU-60's classes must be the first 60 of NTU-120")
    for name in FOLDERS:
        folder = out_dir / name
        if folder.exists():
            shutil.rmtree(folder)
        build_processor(name).save_pretrained(folder)
        for code_file in folder.glob("*.py"):  # the package is the one home of the code
            code_file.unlink()


def differing_files(a: Path, b: Path) -> list:
    comparison = filecmp.dircmp(a, b)
    mismatched = filecmp.cmpfiles(a, b, comparison.common_files, shallow=False)[1]
    return comparison.left_only + comparison.right_only + mismatched


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the folders (default: processors/)")
    parser.add_argument("--check", action="store_true", help="compare a fresh build with the folders in --out")
    args = parser.parse_args(argv)
    if not args.check:
        write_all(args.out)
        print(f"wrote {len(FOLDERS)} processor folders to {args.out}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        write_all(Path(tmp))
        stale = {}
        for name in FOLDERS:
            files = differing_files(Path(tmp) / name, args.out / name) if (args.out / name).is_dir() else ["<missing>"]
            if files:
                stale[name] = files
    for name, files in stale.items():
        print(f"{name}: out of date {files}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
