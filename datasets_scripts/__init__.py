"""Converters of published skeleton datasets into Hugging Face ``datasets``, and the synthetic motion generator.

Every converter writes the one schema of :mod:`datasets_scripts.schema` (``save_to_disk`` folders with
``train``/``test`` splits, written atomically, see :mod:`datasets_scripts.common`):

==========================  ===========================================================  ======================
module                      input                                                        tasks
==========================  ===========================================================  ======================
``ntu``                     NTU RGB+D 60/120 raw ``.skeleton`` files                     3D AR, early prediction
``pyskl``                   pyskl/mmaction2 annotation pickles (3D and 2D)               3D or 2D AR
``kinetics``                ST-GCN Kinetics-skeleton JSON + label files                  2D AR
``videopose3d``             VideoPose3D npz (Human3.6M, HumanEva-I)                      3D pose estimation
``nw_ucla``                 NW-UCLA ``all_sqe`` JSON                                     3D AR, early prediction
``msr_action3d``            MSR Action3D skeleton text files                             3D AR, early prediction
``synthetic``               generated motion (the default training data)                 all four
==========================  ===========================================================  ======================

Run ``python -m datasets_scripts.<module> --help`` or ``python -m datasets_scripts.cli FORMAT --help``.
Package data (``datasets_scripts/data``): the official NTU missing-skeleton lists and the Human3.6M / HumanEva-I
camera calibrations.
"""

import importlib

# Loaded on first use, so `python -m datasets_scripts.<module>` does not import its own module twice.
_EXPORTS = {
    "pose_features": "schema",
    "make_example": "schema",
    "to_storage": "schema",
    "to_persons_first": "schema",
    "SYNTHETIC_ACTIONS": "synthetic",
    "SyntheticMotionGenerator": "synthetic",
    "build_synthetic_datasets": "synthetic",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "pose_features",
    "make_example",
    "to_storage",
    "to_persons_first",
    "SYNTHETIC_ACTIONS",
    "SyntheticMotionGenerator",
    "build_synthetic_datasets",
]
