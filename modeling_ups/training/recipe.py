"""Training recipes: JSON files of ``examples/train.py`` defaults (``configuration/recipes/*.json``, found by
``modeling_ups.utils.resources.find_resource`` installed or from a checkout)."""

import json

from ..utils.resources import find_resource


def load_recipe(name_or_path) -> dict:
    """Load a recipe by name (``"demo"``, ``"paper"``) or path; ValueError lists the shipped recipes."""
    try:
        path = find_resource("recipes", name_or_path)
    except ValueError as error:
        raise ValueError(f"Unknown recipe: {error}") from None
    recipe = json.loads(path.read_text())
    if not isinstance(recipe, dict):
        raise ValueError(f"Recipe {path} must hold a JSON object of flag values")
    recipe.pop("_comment", None)
    return recipe
