"""One entry point for every converter: ``main(argv)`` with a subcommand per format.

    python -m datasets_scripts.cli ntu --skeletons_dir nturgb+d_skeletons --output_dir data/ntu60
    python -m datasets_scripts.cli synthetic --output_dir data/synthetic

Each subcommand takes the same options as ``python -m datasets_scripts.<module>``; ``ups convert FORMAT ...``
forwards to :func:`main`. Returns the exit code (0, or 1 when no dataset could be written).
"""

import argparse
import importlib
import sys

from .common import run_parsed

# subcommand -> module in datasets_scripts
CONVERTERS = {
    "ntu": "ntu",
    "pyskl": "pyskl",
    "kinetics": "kinetics",
    "videopose3d": "videopose3d",
    "nw-ucla": "nw_ucla",
    "msr-action3d": "msr_action3d",
    "synthetic": "synthetic",
}


def build_parser(prog: str = "python -m datasets_scripts.cli") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    for name, module_name in CONVERTERS.items():
        module = importlib.import_module(f"{__package__}.{module_name}")
        doc = (module.__doc__ or "").strip()
        sub = subparsers.add_parser(name, help=doc.splitlines()[0] if doc else name, description=doc,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv=None, prog: str = "python -m datasets_scripts.cli") -> int:
    args = build_parser(prog).parse_args(argv)
    run = args._run
    del args._run
    return run_parsed(run, args)


if __name__ == "__main__":
    sys.exit(main())
