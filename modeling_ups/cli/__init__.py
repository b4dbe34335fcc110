"""The ``ups`` command.

    ups predict FILE [FILE ...] --model MODEL [--task TASK] [--layout L] [--top-k K] [--observation-ratio R]
                                [--frames center|all] [--window W] [--batch-size B] [--return-routing]
                                [--sample INDEX_OR_FRAME_DIR]
    ups convert FORMAT ...          convert a dataset into `datasets` (the ``ups.commands`` entry point of
                                    ``datasets_scripts.cli``; ``ups convert --help``)
    ups visualize KIND ...          draw skeletons, lifting animations, routing maps, curves
    ups export-hub FOLDER --output OUT [--processor P] [--results R] [--repo-id ID] [--push]

``predict`` prints one JSON object per input file (arrays as lists, NaN as null): ``{"input", "task",
"predictions": [{"label", "score"}, ...]}`` for recognition and early prediction, ``{"input", "task",
"keypoints_3d", "frame_indices", "joint_names", "layout", "units"}`` for pose estimation (millimetres,
root-relative, camera frame), with ``"sample"`` after ``"input"`` when ``--sample`` picked an annotation of a pyskl
file. It runs this package's code; the checkpoint's remote code is never executed.

Bad input (an unknown task, a file that is no skeleton, a joint count no layout has, an observation ratio outside
(0, 1]) ends with ``ups: error: <what is wrong>`` on stderr and exit status 1.
"""

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from ..processing_ups import POSE_DECODINGS

# Exceptions that mean "the input is wrong" (reported in one line) rather than a bug (traceback). OSError covers
# missing files and checkpoints that cannot be found or downloaded.
USER_ERRORS = (ValueError, TypeError, OSError)


def run() -> None:
    """The ``ups`` console script (and ``python -m modeling_ups.cli``): :func:`main` on ``sys.argv``, then exit.

    After ``predict`` the process leaves without tearing the interpreter down: unloading the modules torch and
    transformers brought in takes 0.6-0.9 s on a 2-core CPU, a fifth to a quarter of a one-clip ``ups predict``
    (bench/results/latency.md). ``predict`` only prints, so once the output and the logs are flushed nothing is left
    to close. The other commands write files and exit the normal way."""
    argv = sys.argv[1:]
    status = main(argv)
    if argv[:1] == ["predict"]:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``ups`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # convert / visualize own their options: hand everything after the subcommand over untouched.
    if argv and argv[0] == "convert":
        return _run_reporting_errors(lambda: _convert(argv[1:]))
    if argv and argv[0] == "visualize":
        return _run_reporting_errors(lambda: _visualize(argv[1:]))
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 2
    return _run_reporting_errors(lambda: args.run(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ups", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    predict = commands.add_parser("predict", help="run a UPS model on skeleton files, print JSON")
    predict.add_argument("files", nargs="+", metavar="FILE",
                         help=".npy, .npz, NTU .skeleton, Kinetics-skeleton / AlphaPose / NW-UCLA JSON, pyskl .pkl")
    predict.add_argument("--model", required=True, help="checkpoint folder or Hub id")
    predict.add_argument("--task", default="action_recognition",
                         help="action_recognition, early_action_prediction, pose_estimation or a full task name")
    predict.add_argument("--layout", help="skeleton layout of .npy/.npz input when the joint count does not tell it")
    predict.add_argument("--sample", metavar="INDEX_OR_FRAME_DIR",
                         help="pyskl .pkl files with several annotations: the annotation to run (index or frame_dir)")
    predict.add_argument("--top-k", type=int, default=5, help="labels to print (recognition, early prediction)")
    predict.add_argument("--observation-ratio", type=float, help="early prediction: observed fraction in (0, 1]")
    predict.add_argument("--frames", choices=("center", "all"), help="pose estimation: centre frame or every frame")
    predict.add_argument("--window", type=int, help="pose estimation with --frames all: frames per window")
    predict.add_argument("--pose-decoding", choices=POSE_DECODINGS,
                         help="pose estimation: the generated bins' centres (default) or each coordinate's expectation")
    predict.add_argument("--coordinates", choices=("2d", "3d"), help="how 3-channel arrays are read")
    predict.add_argument("--batch-size", type=int, default=1, help="files run per model call")
    predict.add_argument("--return-routing", action="store_true", help="add the encoder's routing decisions")
    predict.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: first GPU, else CPU)")
    predict.set_defaults(run=_predict)

    commands.add_parser("convert", help="convert a dataset (ups convert FORMAT --help)", add_help=False)
    commands.add_parser("visualize", help="draw poses and charts (ups visualize --help)", add_help=False)

    export = commands.add_parser("export-hub", help="write a complete Hub folder from a trained checkpoint")
    export.add_argument("folder", help="checkpoint folder (config.json + model.safetensors, processor files)")
    export.add_argument("--output", required=True, help="folder to write")
    export.add_argument("--processor", help="processor folder, or the name of a shipped one (ntu60, unified, ...), "
                        "when the checkpoint holds none")
    export.add_argument("--results", help="results JSON (default: results.json in or next to the checkpoint)")
    export.add_argument("--training-args", help="JSON of the training options, for the card's training section")
    export.add_argument("--repo-id", help="Hub id shown in the card's snippets and used by --push")
    export.add_argument("--license", help="licence identifier for the card metadata")
    export.add_argument("--push", action="store_true", help="upload the folder to --repo-id as one commit")
    export.add_argument("--token", help="Hub token for --push (default: the logged-in one)")
    export.set_defaults(run=_export_hub)
    return parser


def _run_reporting_errors(command) -> int:
    try:
        status = command()
    except USER_ERRORS as error:
        print(f"ups: error: {error}", file=sys.stderr)
        return 1
    return int(status or 0)


# ---------------------------------------------------------------------- predict
def _predict(args) -> int:
    from transformers import pipeline

    from ..configuration_ups import task_eot_index
    from ..modeling_ups import UPSForPoseSequenceModeling
    from ..pipeline_ups import PoseSequenceModelingPipeline
    from ..processing_ups import UPSProcessor

    # Fail before loading a model on what needs no model: missing files and unknown task names (the task spec's
    # own check); the inputs and the other options are checked where they are used.
    for path in args.files:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
    task_eot_index(args.task)
    options = {"task": args.task, "layout": args.layout, "sample": args.sample, "top_k": args.top_k,
               "observation_ratio": args.observation_ratio, "frames": args.frames, "window": args.window,
               "coordinates": args.coordinates, "return_routing": args.return_routing or None,
               "pose_decoding": args.pose_decoding}
    options = {key: value for key, value in options.items() if value is not None}
    # The package's own classes load the checkpoint: a folder's copied code (auto_map, custom_pipelines) is never
    # imported, and weights come from model.safetensors only (UPSPreTrainedModel.from_pretrained).
    model = UPSForPoseSequenceModeling.from_pretrained(args.model)
    processor = UPSProcessor.from_pretrained(args.model)
    pipe = pipeline("pose-sequence-modeling", model=model, processor=processor,
                    pipeline_class=PoseSequenceModelingPipeline, device=args.device)
    outputs = pipe(list(args.files), batch_size=args.batch_size, **options)
    for path, output in zip(args.files, outputs):
        record = {"input": str(path), "task": args.task}
        if args.sample is not None:
            record["sample"] = args.sample
        if isinstance(output, list):
            record["predictions"] = output
        else:
            record.update(output)
        print(json.dumps(to_json(record), allow_nan=False))
    return 0


def to_json(value):
    """``value`` with numpy arrays and scalars as lists and numbers, NaN and inf as None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return to_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------- convert / visualize
# Commands other distributions plug into `ups` (setup.py's ``ups.commands`` entry points; the dataset converters
# register ``convert``). This package never imports them: they depend on it, not the other way round.
COMMAND_ENTRY_POINTS = "ups.commands"


def load_plugin_command(name: str):
    """The ``ups.commands`` entry point ``name`` (a ``main(argv, prog=...) -> int``); OSError when none is installed."""
    from importlib.metadata import entry_points

    found = entry_points(group=COMMAND_ENTRY_POINTS, name=name)
    if not found:
        raise OSError(f"`ups {name}` is not installed: no {COMMAND_ENTRY_POINTS!r} entry point named {name!r}. "
                      "Install the project (`pip install -e .` in the checkout, or `pip install .`), or run the "
                      "converters from a checkout with `python -m datasets_scripts.cli`.")
    return next(iter(found)).load()


def _convert(argv: List[str]) -> int:
    return load_plugin_command("convert")(argv, prog="ups convert")


def _visualize(argv: List[str]) -> int:
    from ..visualization.cli import main as visualize_main

    return visualize_main(argv)


# ---------------------------------------------------------------------- export-hub
def _export_hub(args) -> int:
    from transformers import AutoModel

    from ..processing_ups import UPSProcessor
    from ..utils.hub import export_hub_folder, push_folder_to_hub
    from ..utils.resources import find_resource, list_resources

    folder, output = Path(args.folder), Path(args.output)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: not a checkpoint folder (no config.json)")
    if output.resolve() == folder.resolve():
        raise ValueError("--output must differ from the checkpoint folder")
    processor_dir = find_resource("processors", args.processor) if args.processor else folder
    if not (processor_dir / "processor_config.json").is_file():
        raise FileNotFoundError(f"{processor_dir}: no processor_config.json; pass --processor with the processor "
                                f"folder or name the model was trained with (shipped: {list_resources('processors')})")
    results = _read_json(args.results) if args.results else _results_beside(folder)
    training_args = _read_json(args.training_args) if args.training_args else None
    if args.push and not args.repo_id:
        raise ValueError("--push needs --repo-id")

    model = AutoModel.from_pretrained(folder)
    processor = UPSProcessor.from_pretrained(processor_dir)
    written = export_hub_folder(model, processor, output, results=results, training_args=training_args,
                                repo_id=args.repo_id, license=args.license)
    print(written)
    if args.push:
        push_folder_to_hub(written, args.repo_id, token=args.token)
        print(f"pushed {written} to {args.repo_id}")
    return 0


def _read_json(path):
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON ({error.msg}: line {error.lineno} column {error.colno})") from None


def _results_beside(folder: Path):
    """results.json inside the checkpoint folder, else beside it (examples/train.py writes <run>/results.json
    and the model into <run>/final)."""
    for candidate in (folder / "results.json", folder.parent / "results.json"):
        if candidate.is_file():
            return _read_json(candidate)
    return None


__all__ = ["main", "run", "build_parser", "to_json"]
