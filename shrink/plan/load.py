"""Recipes: strict loading, `schema_version` migrations and the envelope schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from shrink.api.checks import ANALYSIS_CHECKS
from shrink.api.recipe import Recipe
from shrink.errors import RecipeError
from shrink.support.jsonio import load_strict
from shrink.support.validation import schema_problems

SCHEMA_VERSION = 1

# Migrations from older schema versions: version -> function returning the recipe at version + 1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"

BUDGET_KEYS: dict[str, dict[str, Any]] = {
    "accuracy_drop": {"type": "number", "minimum": 0, "maximum": 1,
                      "description": "Largest allowed accuracy loss, absolute fraction (source minus final): 0.01 = one point."},
    "accuracy": {"type": "number", "minimum": 0, "maximum": 1,
                 "description": "Smallest allowed top-1 accuracy of the final model on the eval split, absolute fraction."},
    "latency_ms": {"type": "number", "exclusiveMinimum": 0,
                   "description": "Upper end of the target's estimated latency per inference, in milliseconds."},
    "model_bytes": {"type": "integer", "minimum": 1, "description": "Largest model file, in bytes."},
    "ram_bytes": {"type": "integer", "minimum": 1, "description": "Largest estimated RAM use, in bytes."},
    "macs": {"type": "integer", "minimum": 1, "description": "Most multiply-accumulates per inference."},
    "energy_mj": {"type": "number", "exclusiveMinimum": 0, "description": "Most estimated energy per inference, in millijoules."},
    "description": {"type": "string", "description": "a note for people reading the recipe; shrink ignores it"},
    "allow_incomplete": {
        "anyOf": [{"type": "boolean"}, {"type": "array", "uniqueItems": True, "items": {"enum": list(ANALYSIS_CHECKS)}}],
        "description": "Let these checks (true: all of them) gate on a lower bound when the static analysis is "
                       "incomplete (uncounted subgraphs or ops, unknown shapes); otherwise such a check cannot verify "
                       "and fails. The report lists what was accepted."},
}


def envelope_schema() -> dict[str, Any]:
    """The recipe's top level; `model`, `data` and each step are refined by their plugins."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "shrink recipe",
        "type": "object",
        "additionalProperties": False,
        "required": ["schema_version", "name", "model", "passes"],
        "properties": {
            "$schema": {"type": "string", "description": "JSON Schema for editors; ignored by shrink."},
            "schema_version": {"type": "integer", "description": f"Recipe format version; this shrink reads up to {SCHEMA_VERSION}."},
            "name": {"type": "string", "pattern": NAME_PATTERN, "description": "Recipe name; names the default bundle directory."},
            "description": {"type": "string"},
            "model": {"type": "object", "required": ["source"], "properties": {"source": {"type": "string"}},
                      "description": "Where the model comes from; the other keys depend on the source."},
            "data": {"type": "object", "required": ["source"], "properties": {"source": {"type": "string"}},
                     "description": "Training, calibration and evaluation data; the other keys depend on the source."},
            "target": {"type": "string", "description": "Target profile name or path to a profile JSON; --target overrides it."},
            "budget": {"type": "object", "additionalProperties": False, "properties": BUDGET_KEYS,
                       "description": "Gates on the final model; each key becomes a check."},
            "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1, "default": 0},
            "passes": {"type": "array", "minItems": 1,
                       "items": {"type": "object", "required": ["pass"], "properties": {"pass": {"type": "string"}}}},
        },
    }


def load_recipe(path: Path) -> Recipe:
    """Read, migrate and validate the envelope of a recipe; every problem is reported at once."""
    label = path.name
    raw = load_strict(path, label)
    if not isinstance(raw, dict):
        raise RecipeError(f"a recipe must be a JSON object, not {type(raw).__name__}", where=f"{label}: (root)")
    version = raw.get("schema_version")
    if version is None:
        raise RecipeError("missing required key 'schema_version'", where=f"{label}: (root)",
                          hint=f'add "schema_version": {SCHEMA_VERSION}')
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecipeError(f"{version!r} is not a valid schema version (an integer from 1)", where=f"{label}: schema_version")
    if version > SCHEMA_VERSION:
        raise RecipeError(f"schema_version {version} is newer than this shrink supports ({SCHEMA_VERSION})",
                          where=f"{label}: schema_version", hint="upgrade shrink to compile this recipe")
    while version < SCHEMA_VERSION:
        raw = MIGRATIONS[version](raw)
        version += 1
        raw["schema_version"] = version
    return Recipe(path.resolve(), raw, tuple(schema_problems(raw, envelope_schema(), label)))
