"""NTU RGB+D 60 / 120 raw ``.skeleton`` files -> ``datasets`` (3D action recognition and early prediction).

Input: the folders unpacked from ``nturgbd_skeletons_s001_to_s017.zip`` (and, for NTU120,
``nturgbd_skeletons_s018_to_s032.zip``), one ``SsssCcccPpppRrrrAaaa.skeleton`` per sample.

- Samples on the official lists of missing or incomplete skeletons are left out (counted as excluded); the
  lists ship with the package (``data/ntu60_samples_with_missing_skeletons.txt``, 302 samples, and
  ``data/ntu120_samples_with_missing_skeletons.txt``, 535, copied from github.com/shahroudy/NTURGB-D);
  ``--missing_list FILE`` replaces them.
- Bodies are denoised and ranked as pyskl's released NTU pickles were (``modeling_ups.pose_io.NTUDenoising``,
  the one selection ``load_pose_file`` also uses): with several bodies, those tracked in at most 11 frames
  (``--length_threshold``) and those wider than tall (x-spread > 0.8 y-spread, ``--spread_ratio``) in at least
  69.754% of their frames (``--spread_noise_ratio``) are removed; CTR-GCN's disabled motion rule is available
  (``--denoise_rules length spread motion``, ``--motion_range``). The rest, most moving first (total variance of
  the joint positions), fill ``--max_bodies`` (2) person slots, fragments of one actor (a new body ID after a
  tracking loss) sharing a slot. Frames without any body are dropped; frames where only removed bodies were are
  trimmed at the clip's ends (``--empty_frames trim|drop|keep``). ``conversion_report.json`` counts, per rule,
  the bodies and frames removed and lists the files affected (``ntu_denoising``).
- Benchmarks (from the file-name fields): NTU60 ``xsub`` (training subjects below) and ``xview`` (training
  cameras 2 and 3); NTU120 ``xsub`` (the 53 training subjects of the NTU120 paper) and ``xset`` (even setup ids
  train). Each is written as a ``DatasetDict`` with ``train``/``test`` splits under ``<output_dir>/<benchmark>``.

Output rows: ``poses`` (T, 2, 25, 3) millimetres in the Kinect camera frame (layout ``ntu25``), label = action
id - 1 with the official class names, subject ``Pppp``, camera ``Cccc``, setup ``sss``, 30 fps.

    python -m datasets_scripts.ntu --skeletons_dir nturgb+d_skeletons --dataset ntu60 --output_dir data/ntu60
"""

import re
from pathlib import Path
from typing import List, Optional, Sequence

from modeling_ups.pose_io import (NTU_BODY_REMOVALS, NTU_BODY_RULES, NTU_EMPTY_FRAMES, NTU_REMOVALS, NTUDenoising,
                                  denoise_ntu_bodies, read_ntu_skeleton)

from .common import (DATA_DIR, ConversionError, ConversionReport, DatasetWriter, add_output_arguments,
                     convert_items, finish, parse_benchmarks, read_lines_file, run_cli)
from .schema import TASKS_3D_ACTION, make_example, pose_features

# Class names A1..A120 (NTU60 uses the first 60): the official list of github.com/shahroudy/NTURGB-D, with A25 and
# A120 in their short forms ("reach into pocket", as in the NTU RGB+D paper; "support somebody with hand"), the
# names processors/labels/ntu120.txt gives the tokenizer.
NTU_CLASSES = (
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup", "throw", "sitting down",
    "standing up (from sitting position)", "clapping", "reading", "writing", "tear up paper", "wear jacket",
    "take off jacket", "wear a shoe", "take off a shoe", "wear on glasses", "take off glasses", "put on a hat/cap",
    "take off a hat/cap", "cheer up", "hand waving", "kicking something",
    "reach into pocket", "hopping (one foot jumping)", "jump up",
    "make a phone call/answer phone", "playing with phone/tablet", "typing on a keyboard",
    "pointing to something with finger", "taking a selfie", "check time (from watch)", "rub two hands together",
    "nod head/bow", "shake head", "wipe face", "salute", "put the palms together", "cross hands in front (say stop)",
    "sneeze/cough", "staggering", "falling", "touch head (headache)", "touch chest (stomachache/heart pain)",
    "touch back (backache)", "touch neck (neckache)", "nausea or vomiting condition",
    "use a fan (with hand or paper)/feeling warm", "punching/slapping other person", "kicking other person",
    "pushing other person", "pat on back of other person", "point finger at the other person",
    "hugging other person", "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other",
    "put on headphone", "take off headphone", "shoot at the basket", "bounce ball", "tennis bat swing",
    "juggling table tennis balls", "hush (quite)", "flick hair", "thumb up", "thumb down", "make ok sign",
    "make victory sign", "staple book", "counting money", "cutting nails", "cutting paper (using scissors)",
    "snapping fingers", "open bottle", "sniff (smell)", "squat down", "toss a coin", "fold paper", "ball up paper",
    "play magic cube", "apply cream on face", "apply cream on hand back", "put on bag", "take off bag",
    "put something into a bag", "take something out of a bag", "open a box", "move heavy objects", "shake fist",
    "throw up cap/hat", "hands up (both hands)", "cross arms", "arm circles", "arm swings", "running on the spot",
    "butt kicks (kick backward)", "cross toe touch", "side kick", "yawn", "stretch oneself", "blow nose",
    "hit other person with something", "wield knife towards other person",
    "knock over other person (hit with body)", "grab other person's stuff", "shoot at other person with a gun",
    "step on foot", "high-five", "cheers and drink", "carry something with other person",
    "take a photo of other person", "follow other person", "whisper in other person's ear",
    "exchange things with other person", "support somebody with hand",
    "finger-guessing game (playing rock-paper-scissors)",
)
NTU60_TRAIN_SUBJECTS = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
NTU60_TRAIN_CAMERAS = (2, 3)
NTU120_TRAIN_SUBJECTS = NTU60_TRAIN_SUBJECTS + (45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80,
                                                81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103)
NTU_FPS = 30.0
NTU_VARIANTS = {
    "ntu60": {"num_classes": 60, "max_setup": 17, "benchmarks": ("xsub", "xview"),
              "missing_list": "ntu60_samples_with_missing_skeletons.txt"},
    "ntu120": {"num_classes": 120, "max_setup": 32, "benchmarks": ("xsub", "xset"),
               "missing_list": "ntu120_samples_with_missing_skeletons.txt"},
}
NTU_NAME_RE = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")


def parse_ntu_name(name: str):
    """``SsssCcccPpppRrrrAaaa`` -> (setup, camera, performer, replication, action); ValueError otherwise."""
    match = NTU_NAME_RE.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not an NTU sample name (SsssCcccPpppRrrrAaaa)")
    return tuple(int(g) for g in match.groups())


def ntu_split(name: str, benchmark: str, variant: str = "ntu60") -> str:
    """``"train"`` or ``"test"`` of sample ``name`` in ``benchmark`` (xsub, xview, xset)."""
    setup, camera, performer, _, _ = parse_ntu_name(name)
    if benchmark == "xsub":
        subjects = NTU60_TRAIN_SUBJECTS if variant == "ntu60" else NTU120_TRAIN_SUBJECTS
        return "train" if performer in subjects else "test"
    if benchmark == "xview":
        return "train" if camera in NTU60_TRAIN_CAMERAS else "test"
    if benchmark == "xset":
        return "train" if setup % 2 == 0 else "test"
    raise ValueError(f"unknown NTU benchmark {benchmark!r}")


def ntu_features(variant: str = "ntu60", max_bodies: int = 2):
    return pose_features("ntu25", 3, NTU_CLASSES[: NTU_VARIANTS[variant]["num_classes"]], max_persons=max_bodies)


def ntu_example(name: str, poses, variant: str, max_bodies: int, source_file: str = ""):
    setup, camera, performer, _, action = parse_ntu_name(name)
    return make_example(sample_id=name, poses=poses, layout="ntu25", units="mm", label=action - 1,
                        tasks=TASKS_3D_ACTION, max_persons=max_bodies, fps=NTU_FPS, subject=f"P{performer:03d}",
                        camera=f"C{camera:03d}", setup=setup, source_file=source_file)


class DenoisingTally:
    """Per removal of :class:`~modeling_ups.pose_io.NTUDenoising`: bodies and frames removed, files affected."""

    def __init__(self, denoising: NTUDenoising, max_bodies: int):
        self.settings = {**denoising.to_dict(), "max_bodies": max_bodies}
        self.removed = {name: {"bodies": 0, "frames": 0, "files": []} for name in NTU_REMOVALS}

    def add(self, source: str, removed) -> None:
        for name, entry in removed.items():
            if entry["bodies"] or entry["frames"]:
                total = self.removed[name]
                total["bodies"] += len(entry["bodies"])
                total["frames"] += entry["frames"]
                total["files"].append(source)

    def to_dict(self):
        return {"settings": self.settings, "removed": self.removed}

    def summary(self) -> str:
        parts = [f"{name} {v['bodies']} bodies" if name in NTU_BODY_REMOVALS else f"{name} {v['frames']} frames"
                 for name, v in self.removed.items()]
        return f"denoising ({' + '.join(self.settings['rules']) or 'no body rules'}) removed: " + ", ".join(parts)


def convert_ntu(skeletons_dirs: Sequence, output_dir, variant: str = "ntu60",
                benchmarks: Optional[Sequence[str]] = None, missing_list=None, max_bodies: int = 2,
                denoising: Optional[NTUDenoising] = None, overwrite: bool = False,
                push_to_hub=None) -> ConversionReport:
    """Convert the ``.skeleton`` files of ``skeletons_dirs``; returns the report.

    ``denoising`` chooses the actors (default ``NTUDenoising()``: pyskl's selection); the report's
    ``details["ntu_denoising"]`` counts what each rule removed.
    """
    if variant not in NTU_VARIANTS:
        raise ConversionError(f"unknown NTU variant {variant!r}; choose from {sorted(NTU_VARIANTS)}")
    if max_bodies < 1:
        raise ConversionError(f"max_bodies must be >= 1, got {max_bodies}")
    spec = NTU_VARIANTS[variant]
    benchmarks = parse_benchmarks(benchmarks, spec["benchmarks"])
    missing = set(read_lines_file(missing_list or DATA_DIR / spec["missing_list"]))
    missing_reason = (f"missing-skeleton list {Path(missing_list).name} (--missing_list)" if missing_list
                      else "official missing-skeleton list")
    denoising = NTUDenoising() if denoising is None else denoising
    tally = DenoisingTally(denoising, max_bodies)
    report = ConversionReport(variant)
    files: List[Path] = []
    for folder in [Path(d) for d in ([skeletons_dirs] if isinstance(skeletons_dirs, (str, Path)) else skeletons_dirs)]:
        if not folder.is_dir():
            raise ConversionError(f"{folder} is not a folder")
        files += sorted(folder.glob("*.skeleton"))
    selected = []
    for path in files:
        try:
            setup, _, _, _, action = parse_ntu_name(path.stem)
        except ValueError as err:
            report.skip(path.name, str(err))
            continue
        if setup > spec["max_setup"] or action > spec["num_classes"]:
            report.exclude(f"not part of {variant}")
        elif path.stem in missing:
            report.exclude(missing_reason)
        else:
            selected.append(path)
    if not selected:
        raise ConversionError(f"no {variant} .skeleton files to convert in {skeletons_dirs}")

    def convert(path: Path):
        skeleton = read_ntu_skeleton(path)
        try:
            selection = denoise_ntu_bodies(skeleton, max_bodies, denoising)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        example = ntu_example(path.stem, selection["poses"] * 1000.0, variant, max_bodies, source_file=path.name)
        tally.add(path.name, selection["removed"])
        return [(example, [(b, ntu_split(path.stem, b, variant)) for b in benchmarks])]

    report.details["ntu_denoising"] = tally.to_dict()  # filled while converting, written by finish()
    with DatasetWriter(output_dir, ntu_features(variant, max_bodies), benchmarks, overwrite=overwrite) as writer:
        convert_items(selected, convert, writer, report, describe=lambda p: p.name)
        print(tally.summary())
        return finish(writer, report, push_to_hub)


def add_arguments(parser):
    parser.add_argument("--skeletons_dir", required=True, nargs="+",
                        help="folder(s) of .skeleton files (NTU120: both the s001-s017 and s018-s032 folders)")
    parser.add_argument("--dataset", choices=sorted(NTU_VARIANTS), default="ntu60")
    parser.add_argument("--benchmark", nargs="+", help="xsub/xview (ntu60), xsub/xset (ntu120); default: both")
    parser.add_argument("--missing_list", help="file of sample names to leave out (default: the official list)")
    parser.add_argument("--max_bodies", type=int, default=2, help="person slots per sample, most moving first")
    defaults = NTUDenoising()
    group = parser.add_argument_group("denoising (defaults: pyskl's released NTU pickles)")
    group.add_argument("--denoise_rules", nargs="*", choices=NTU_BODY_RULES, default=list(defaults.rules),
                       help="body rules, in order (none: rank every body by motion)")
    group.add_argument("--length_threshold", type=int, default=defaults.length_threshold,
                       help="'length' removes bodies tracked in at most this many frames")
    group.add_argument("--spread_ratio", type=float, default=defaults.spread_ratio,
                       help="'spread': a frame is noisy when x-spread > this * y-spread")
    group.add_argument("--spread_noise_ratio", type=float, default=defaults.spread_noise_ratio,
                       help="'spread' removes bodies with at least this fraction of noisy frames")
    group.add_argument("--motion_range", type=float, nargs=2, metavar=("LOW", "HIGH"), default=defaults.motion_range,
                       help="'motion' removes bodies (except the most moving) with motion outside, m^2")
    group.add_argument("--empty_frames", choices=NTU_EMPTY_FRAMES, default=defaults.empty_frames,
                       help="frames where only removed bodies were: trim at the ends (pyskl), drop all (CTR-GCN), keep")
    add_output_arguments(parser)


def run(args):
    try:
        denoising = NTUDenoising(rules=args.denoise_rules, length_threshold=args.length_threshold,
                                 spread_ratio=args.spread_ratio, spread_noise_ratio=args.spread_noise_ratio,
                                 motion_range=args.motion_range, empty_frames=args.empty_frames)
    except ValueError as err:
        raise ConversionError(str(err)) from None
    return convert_ntu(args.skeletons_dir, args.output_dir, variant=args.dataset, benchmarks=args.benchmark,
                       missing_list=args.missing_list, max_bodies=args.max_bodies, denoising=denoising,
                       overwrite=args.overwrite, push_to_hub=args.push_to_hub)


def main(argv=None):
    return run_cli(__doc__, add_arguments, run, argv, prog="python -m datasets_scripts.ntu")


if __name__ == "__main__":
    raise SystemExit(main())
