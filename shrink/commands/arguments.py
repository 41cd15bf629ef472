"""What the commands take, checked once for the command line and the Python API alike: recipes given as a file or
a dict, input shapes, budgets, the checks allowed to gate on an incomplete analysis, and the plugin registry.

Each check names where a bad value came from (`where`: `budgets`, `--budget`, ...).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shrink.errors import RecipeError, UsageError

if TYPE_CHECKING:
    from shrink.api.recipe import Recipe
    from shrink.host.registry import Registry

RecipeLike = str | os.PathLike[str] | Mapping[str, Any]
"""A recipe file, or a recipe as a dict (its relative paths resolve against `base_dir`, default the working
directory)."""

ShapesLike = Mapping[str, Sequence[int] | str]
"""Input shapes by input name: `{"input": [1, 3, 224, 224]}` or `{"input": "1x3x224x224"}`."""


class PluginWarning(UserWarning):
    """A plugin failed to load; the others still work (`shrink plugins` shows why)."""


def registry(given: Registry | None = None) -> Registry:
    """`given`, or every installed plugin loaded (a plugin that fails to load is a `PluginWarning`)."""
    if given is not None:
        return given
    from shrink.host.registry import Registry

    loaded = Registry.load()
    for info in loaded.failed:
        warnings.warn(f"plugin {info.label} failed to load: {info.error}", PluginWarning, stacklevel=3)
    return loaded


def shapes(given: ShapesLike | None, where: str = "shapes") -> dict[str, list[int]]:
    """Input shapes by name as lists of positive ints (a string is parsed like `--shape`'s `1x3x224x224`)."""
    if not given:
        return {}
    if not isinstance(given, Mapping):
        raise UsageError(f"expected a mapping of input name to shape, not {type(given).__name__}", where=where)
    out: dict[str, list[int]] = {}
    for name, dims in given.items():
        if isinstance(dims, str):
            from shrink.analysis import parse_shape

            out.update([parse_shape(f"{name}={dims}")])
            continue
        if (not isinstance(dims, Sequence) or not dims
                or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims)):
            raise UsageError(f"{dims!r} is not a shape: a list of positive integers such as [1, 3, 224, 224]",
                             where=f"{where}.{name}")
        out[str(name)] = list(dims)
    return out


def budgets(given: Mapping[str, Any] | None, where: str = "budgets") -> dict[str, Any]:
    """A budget given beside the recipe, validated like the recipe's `budget` (unknown keys are errors)."""
    if not given:
        return {}
    from shrink.plan.load import budget_problems

    budget = dict(given) if isinstance(given, Mapping) else given
    problems = budget_problems(budget, where)
    if problems:
        raise UsageError(problems)
    return dict(budget)


def allowances(given: bool | str | Iterable[str] | None, where: str = "allow_incomplete") -> frozenset[str]:
    """The checks that may gate on an incomplete analysis figure: True (or `"*"`) for all of them, a comma-separated
    string or names (`"ram,latency"`, `["ram"]`)."""
    if not given:
        return frozenset()
    if given is True:
        return frozenset({"*"})
    from shrink.api.checks import ANALYSIS_CHECKS

    items = given.split(",") if isinstance(given, str) else list(given)  # type: ignore[arg-type]
    names = frozenset(str(n).strip() for n in items if str(n).strip())
    unknown = sorted(names - set(ANALYSIS_CHECKS) - {"*"})
    if unknown:
        raise UsageError(f"{', '.join(unknown)}: not a check that gates on the analysis", where=where,
                         hint=f"choose from {', '.join(ANALYSIS_CHECKS)}, or give no value for all of them")
    return names


def recipe(given: RecipeLike, budget: Mapping[str, Any] | None = None, base_dir: str | os.PathLike[str] | None = None,
           where: str = "budgets") -> Recipe:
    """Load a recipe file or dict; `budget` (validated, labelled `where`) adds to or overrides its `budget` keys."""
    from shrink.api.recipe import Recipe
    from shrink.plan.load import load_recipe, recipe_from_raw

    if isinstance(given, Mapping):
        try:  # what a file would hold: plain JSON values, no NaN
            raw = json.loads(json.dumps(given, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise RecipeError(f"the recipe is not plain JSON: {exc}", where="recipe") from None
        loaded = recipe_from_raw(raw, Path(base_dir or Path.cwd()) / "recipe")
    else:
        loaded = load_recipe(Path(given))
    extra = budgets(budget, where)
    if not extra:
        return loaded
    current = loaded.raw.get("budget")
    merged = {**(current if isinstance(current, dict) else {}), **extra}
    return Recipe(loaded.path, {**loaded.raw, "budget": merged}, loaded.problems)
