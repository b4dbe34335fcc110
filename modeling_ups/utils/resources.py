"""The data files shipped with ups: model presets, training recipes, accelerate configs and processor folders.

One rule finds them, whether the package is installed from a wheel (``pip install .``) or imported from a checkout
(``pip install -e .``, or the checkout on ``PYTHONPATH``):

    ``resources_root()`` is the folder ``_resources/`` inside the imported ``modeling_ups`` package when it exists
    (a wheel: setup.py ships the checkout's ``configuration/`` and ``processors/`` there as package data), else the
    folder that holds the ``modeling_ups`` package (a checkout: its top level). Under that root every kind of
    resource has the same relative folder as in the checkout (``RESOURCE_KINDS``).

``find_resource(kind, spec)`` is the one lookup every entry point uses (``examples/train.py``, ``load_recipe``, the
``ups`` CLI, the benchmarks): an existing path of that kind is used as given; otherwise ``spec`` is a name in that
kind's folder (``"ups-tiny"``, ``"demo"``, ``"ntu60"``), also accepted with the checkout-relative prefix
(``"processors/ntu60"``, ``"configuration/models/ups-base"``) so that recipes and commands written for the checkout
work anywhere.
"""

from pathlib import Path
from typing import List, Union

# kind -> (folder relative to the resources root, suffix a name may omit, file that marks a folder entry)
RESOURCE_KINDS = {
    "models": ("configuration/models", "", "config.json"),
    "recipes": ("configuration/recipes", ".json", None),
    "accelerate": ("configuration/accelerate", ".yaml", None),
    "processors": ("processors", "", "processor_config.json"),
}

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the imported modeling_ups package
INSTALLED_RESOURCES = PACKAGE_DIR / "_resources"


def resources_root() -> Path:
    """The folder that holds ``configuration/`` and ``processors/`` (see the module docstring for the rule)."""
    return INSTALLED_RESOURCES if INSTALLED_RESOURCES.is_dir() else PACKAGE_DIR.parent


def resource_dir(kind: str) -> Path:
    """The folder of one kind of resource: ``"models"``, ``"recipes"``, ``"accelerate"`` or ``"processors"``."""
    if kind not in RESOURCE_KINDS:
        raise ValueError(f"Unknown resource kind {kind!r}; choose one of {list(RESOURCE_KINDS)}")
    return resources_root() / RESOURCE_KINDS[kind][0]


def list_resources(kind: str) -> List[str]:
    """Names of the shipped resources of ``kind`` (what ``find_resource`` accepts as a name), sorted."""
    folder = resource_dir(kind)
    _, suffix, marker = RESOURCE_KINDS[kind]
    if not folder.is_dir():
        return []
    if marker:
        return sorted(p.name for p in folder.iterdir() if (p / marker).is_file())
    return sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}") if p.is_file())


def _is_entry(path: Path, marker) -> bool:
    return (path / marker).is_file() if marker else path.is_file()


def find_resource(kind: str, spec: Union[str, Path]) -> Path:
    """``spec`` itself when it is a resource of that kind (a file, or a folder holding the kind's marker file:
    ``config.json`` for presets, ``processor_config.json`` for processors), else the shipped resource it names.

    Args:
        kind (`str`): ``"models"`` (preset folders), ``"recipes"`` (JSON), ``"accelerate"`` (YAML) or
            ``"processors"`` (processor folders).
        spec (`str` or `Path`): a path, a name (``"ups-tiny"``, ``"demo"``, ``"ntu60"``), or a name with the
            checkout-relative prefix (``"processors/ntu60"``, ``"configuration/recipes/demo.json"``).

    Raises:
        ValueError: naming the shipped resources of that kind and where they were looked for.
    """
    folder = resource_dir(kind)
    relative, suffix, marker = RESOURCE_KINDS[kind]
    path = Path(spec).expanduser()
    if _is_entry(path, marker):
        return path
    name = path.as_posix()
    if name.startswith(relative + "/"):
        name = name[len(relative) + 1:]
    if "/" not in name and name not in ("", ".", ".."):
        for candidate in (folder / name, folder / f"{name}{suffix}"):
            if _is_entry(candidate, marker):
                return candidate
    what = f"a folder with {marker}" if marker else "a file"
    raise ValueError(f"{str(spec)!r} is neither {what} nor one of the shipped {kind} {list_resources(kind)} in "
                     f"{folder}")


__all__ = ["RESOURCE_KINDS", "find_resource", "list_resources", "resource_dir", "resources_root"]
