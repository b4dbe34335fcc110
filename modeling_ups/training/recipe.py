"""Training recipes: JSON files of ``examples/train.py`` defaults (``configuration/recipes/*.json``, found by
``modeling_ups.utils.resources.find_resource`` installed or from a checkout)."""

import json

from ..utils.resources import find_resource


def merge_options(lower: dict, upper: dict) -> dict:
    """``upper``'s option values over ``lower``'s: a recipe's over its base's, the command line's over the recipe's.
    Model config fields add up instead: ``upper``'s ``config_overrides`` follow ``lower``'s, so a field named in both
    takes ``upper``'s value (``PretrainedConfig.update_from_string`` keeps the last) and the others stay."""
    merged = {**lower, **upper}
    overrides = [layer["config_overrides"] for layer in (lower, upper) if layer.get("config_overrides")]
    if overrides:  # an empty string adds nothing rather than dropping the lower layer's fields
        merged["config_overrides"] = ",".join(overrides)
    return merged


def load_recipe(name_or_path, _derived_from=()) -> dict:
    """Load a recipe by name (``"demo"``, ``"paper"``) or path; ValueError lists the shipped recipes. A recipe whose
    ``"base"`` names another recipe holds only what differs from it (pyskl's ``_base_`` configs: one file per input
    stream), merged by :func:`merge_options`."""
    try:
        path = find_resource("recipes", name_or_path)
    except ValueError as error:
        raise ValueError(f"Unknown recipe: {error}") from None
    recipe = json.loads(path.read_text())
    if not isinstance(recipe, dict):
        raise ValueError(f"Recipe {path} must hold a JSON object of flag values")
    recipe.pop("_comment", None)
    base = recipe.pop("base", None)
    if base is None:
        return recipe
    chain = (*_derived_from, path.resolve())
    if chain[-1] in _derived_from:
        raise ValueError(f"Recipe {path} derives from itself through its bases: {[str(p) for p in chain]}")
    beside = path.parent / base  # a base named by a path is read next to the recipe naming it, as pyskl's _base_
    return merge_options(load_recipe(beside if beside.is_file() else base, chain), recipe)
