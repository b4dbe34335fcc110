"""Training recipes: JSON files of ``examples/train.py`` defaults (``configuration/recipes/*.json``)."""

import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES_DIR = REPO_ROOT / "configuration" / "recipes"


def load_recipe(name_or_path) -> dict:
    """Load a recipe by name (``"demo"``, ``"paper"``) or path; ValueError lists the known recipes."""
    path = Path(name_or_path)
    if not path.is_file():
        path = RECIPES_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = sorted(p.stem for p in RECIPES_DIR.glob("*.json"))
        raise ValueError(f"Unknown recipe {name_or_path!r}: not a file, and not one of {known} in {RECIPES_DIR}")
    recipe = json.loads(path.read_text())
    if not isinstance(recipe, dict):
        raise ValueError(f"Recipe {path} must hold a JSON object of flag values")
    recipe.pop("_comment", None)
    return recipe
