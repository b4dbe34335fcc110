"""The shipped data files (model presets, recipes, accelerate configs, processor folders) are found by one rule,
from a checkout and from a non-editable install (modeling_ups/utils/resources.py, setup.py's package data)."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from modeling_ups.training import load_recipe
from modeling_ups.utils.resources import RESOURCE_KINDS, find_resource, list_resources, resource_dir, resources_root

REPO = Path(__file__).resolve().parents[1]
# What each kind holds in the checkout, read from the folders themselves (not from the module under test).
CHECKOUT = {
    "models": sorted(p.name for p in (REPO / "configuration" / "models").iterdir() if (p / "config.json").is_file()),
    "recipes": sorted(p.stem for p in (REPO / "configuration" / "recipes").glob("*.json")),
    "accelerate": sorted(p.stem for p in (REPO / "configuration" / "accelerate").glob("*.yaml")),
    "processors": sorted(p.name for p in (REPO / "processors").iterdir() if (p / "processor_config.json").is_file()),
}


def _shipped_files():
    """Every data file a resource consists of, relative to the checkout root (what a wheel must carry)."""
    files = []
    for kind, (relative, suffix, marker) in RESOURCE_KINDS.items():
        for name in CHECKOUT[kind]:
            entry = REPO / relative / (name if marker else f"{name}{suffix}")
            files += [entry] if entry.is_file() else sorted(p for p in entry.rglob("*") if p.is_file())
    return sorted(str(p.relative_to(REPO)) for p in files if "__pycache__" not in p.parts)


def test_the_checkout_is_the_root_when_imported_from_it():
    assert resources_root() == REPO
    assert CHECKOUT["models"] and CHECKOUT["recipes"] and CHECKOUT["accelerate"] and CHECKOUT["processors"]
    for kind, names in CHECKOUT.items():
        assert list_resources(kind) == names, kind


@pytest.mark.parametrize("kind", list(RESOURCE_KINDS))
def test_every_resource_is_found_by_name_prefixed_name_and_path(kind, tmp_path, monkeypatch):
    relative, suffix, marker = RESOURCE_KINDS[kind]
    monkeypatch.chdir(tmp_path)  # names must not depend on the working directory
    for name in CHECKOUT[kind]:
        expected = REPO / relative / (name if marker else f"{name}{suffix}")
        assert find_resource(kind, name) == expected
        assert find_resource(kind, f"{relative}/{name}") == expected
        if suffix:
            assert find_resource(kind, f"{name}{suffix}") == expected
        assert find_resource(kind, expected) == expected  # an existing path is used as given


def test_a_path_of_the_right_kind_wins_over_a_shipped_name(tmp_path, monkeypatch):
    mine = tmp_path / "synthetic"
    shutil.copytree(REPO / "processors" / "synthetic", mine)
    monkeypatch.chdir(tmp_path)
    assert find_resource("processors", "synthetic") == Path("synthetic")
    # A folder that is no processor (a converted dataset called like one) does not shadow the shipped processor.
    (tmp_path / "ntu60").mkdir()
    assert find_resource("processors", "ntu60") == REPO / "processors" / "ntu60"


def test_unknown_names_list_what_is_shipped():
    with pytest.raises(ValueError, match="ntu60") as info:
        find_resource("processors", "ntu61")
    assert str(resource_dir("processors")) in str(info.value)
    with pytest.raises(ValueError, match="labels"):  # a folder of the checkout that is no processor
        find_resource("processors", "labels")
    with pytest.raises(ValueError, match="demo"):
        load_recipe("no-such-recipe")
    with pytest.raises(ValueError, match="kind"):
        find_resource("datasets", "ntu60")
    with pytest.raises(ValueError):
        find_resource("models", "../processors/ntu60")


def test_train_script_resolves_through_the_lookup():
    spec = importlib.util.spec_from_file_location("ups_examples_train", REPO / "examples" / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    synthetic = REPO / "processors" / "synthetic"
    assert train.resolve_processor("processors/synthetic").resolve() == synthetic
    assert train.resolve_processor("synthetic") == synthetic
    assert train.resolve_model_config("ups-tiny") == REPO / "configuration" / "models" / "ups-tiny"
    args = train.parse_args(["--config", "demo"])
    assert train.resolve_processor(args.processor) == synthetic


def _can_build_without_index() -> bool:
    """Whether this environment's setuptools can build a wheel itself (setuptools >= 70.1, or the wheel package)."""
    return importlib.util.find_spec("setuptools") is not None and (
        importlib.util.find_spec("setuptools.command.bdist_wheel") is not None
        or importlib.util.find_spec("wheel") is not None)


def _build_wheel(tmp_path) -> Path:
    """A wheel of the package built as `pip install .` builds it, from a copy of the checkout's packaged files: with
    this environment's setuptools when it can build wheels, else in pip's isolated build environment (setuptools from
    the index, exactly as `pip install .`)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("modeling_ups", "datasets_scripts", "configuration", "processors"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)]
    offline = _can_build_without_index()
    if offline:
        command += ["--no-build-isolation", "--no-index"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and not offline and "setuptools" in proc.stderr and (
            "No matching distribution" in proc.stderr or "Could not find a version" in proc.stderr):
        pytest.skip("no setuptools that can build a wheel here, and none on the package index")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (wheel,) = dist.glob("ups-*.whl")
    return wheel


def test_a_non_editable_install_finds_every_resource(tmp_path):
    """The wheel carries every preset, recipe, accelerate config and processor file, byte for byte, and the
    installed package finds them all (run outside the checkout, with the installed copy first on the path)."""
    wheel = _build_wheel(tmp_path)
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    packaged = site / "modeling_ups" / "_resources"
    for relative in _shipped_files():
        copy = packaged / relative
        assert copy.is_file(), f"the wheel lacks {relative} (setup.py package_data)"
        assert copy.read_bytes() == (REPO / relative).read_bytes(), relative

    script = """
import json, sys
import modeling_ups
from modeling_ups.training import load_recipe
from modeling_ups.utils.resources import RESOURCE_KINDS, find_resource, list_resources, resources_root
from modeling_ups import UPSConfig, UPSProcessor
checkout = json.loads(sys.argv[1])
found = {kind: {name: str(find_resource(kind, name)) for name in names} for kind, names in checkout.items()}
prefixed = str(find_resource("processors", "processors/synthetic"))
print(json.dumps({"package": modeling_ups.__file__, "root": str(resources_root()), "found": found,
                  "listed": {kind: list_resources(kind) for kind in RESOURCE_KINDS}, "prefixed": prefixed,
                  "recipe": load_recipe("demo")["processor"],
                  "processor_labels": len(UPSProcessor.from_pretrained(find_resource("processors", "ntu60"))
                                          .tokenizer.label_names),
                  "preset": UPSConfig.from_pretrained(find_resource("models", "ups-tiny")).d_model}))
"""
    env = dict(os.environ, PYTHONPATH=str(site), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(CHECKOUT)], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(report["package"]).resolve().parent == (site / "modeling_ups").resolve()
    assert Path(report["root"]).resolve() == packaged.resolve()
    assert report["listed"] == CHECKOUT
    for kind, names in report["found"].items():
        for name, path in names.items():
            assert Path(path).resolve().is_relative_to(packaged.resolve()), (kind, name, path)
    assert Path(report["prefixed"]).resolve() == (packaged / "processors" / "synthetic").resolve()
    assert report["recipe"] == "synthetic" and report["processor_labels"] == 60 and report["preset"] > 0
