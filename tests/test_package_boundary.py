"""The package boundary is one-way: ``datasets_scripts`` (the converters) uses ``modeling_ups``, never the reverse.
``ups convert`` reaches the converters through the ``ups.commands`` entry point, training gets the synthetic data
from its caller."""

import ast
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from modeling_ups import cli

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = "datasets_scripts"


def _imported_names(tree: ast.AST):
    """Every module an AST imports: import statements, and string literals given to importlib.import_module /
    __import__ (lazy imports inside functions count too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__"):
                yield node.lineno, node.args[0].value


def test_no_module_under_modeling_ups_imports_the_converters():
    offenders = []
    for path in sorted((ROOT / "modeling_ups").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in _imported_names(tree):
            if name == FORBIDDEN or name.startswith(FORBIDDEN + "."):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: imports {name}")
    assert not offenders, "modeling_ups must not depend on datasets_scripts:\n" + "\n".join(offenders)


def test_the_scan_sees_every_kind_of_import():
    source = ("import datasets_scripts\nfrom datasets_scripts.cli import main\n"
              "def f():\n    import importlib\n    importlib.import_module('datasets_scripts.ntu')\n")
    names = [name for _, name in _imported_names(ast.parse(source))]
    assert names.count("datasets_scripts") == 1 and "datasets_scripts.cli" in names and "datasets_scripts.ntu" in names


def test_ups_convert_is_the_converters_entry_point():
    from datasets_scripts.cli import main as convert_main

    assert cli.load_plugin_command("convert") is convert_main


def test_ups_convert_without_the_converters_installed_says_what_to_do(monkeypatch, capsys):
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kwargs: [])
    assert cli.main(["convert", "ntu", "--help"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ups: error: `ups convert` is not installed") and "pip install -e ." in err


def test_training_data_takes_the_synthetic_generator_from_its_caller():
    from modeling_ups.training.data import load_task_datasets

    args = Namespace(tasks=["action_recognition_3d"], dataset={}, num_train_samples=3, num_eval_samples=2, seed=7)
    with pytest.raises(ValueError, match="--dataset TASK=PATH"):
        load_task_datasets(args, processor=None)
    calls = []

    def build(**kwargs):
        calls.append(kwargs)
        return {"action_recognition_3d": "the data"}

    assert load_task_datasets(args, None, build_synthetic=build) == {"action_recognition_3d": "the data"}
    assert calls == [{"num_train": 3, "num_test": 2, "seed": 7}]


def test_the_predict_path_imports_no_converters_training_or_plotting_stack():
    """What `ups predict` imports, in a fresh interpreter: the model stack only (accelerate, scipy and PIL may come
    in through transformers when installed, which this package does not control)."""
    code = ("import sys\nfrom modeling_ups import cli\n"
            "cli.build_parser().parse_args(['predict', 'clip.npy', '--model', 'ckpt'])\n"
            "from transformers import pipeline\n"
            "from modeling_ups.configuration_ups import TASK_SHORTHANDS, UPS_TASKS\n"
            "from modeling_ups.modeling_ups import UPSForPoseSequenceModeling\n"
            "from modeling_ups.pipeline_ups import PoseSequenceModelingPipeline\n"
            "from modeling_ups.processing_ups import UPSProcessor\n"
            "print(' '.join(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(done.stdout.split())
    unwanted = ["matplotlib", "datasets", "datasets_scripts", "evaluate", "sentence_transformers",
                "modeling_ups.visualization", "modeling_ups.training", "modeling_ups.utils.hub"]
    assert not [name for name in unwanted if name in loaded], [name for name in unwanted if name in loaded]
