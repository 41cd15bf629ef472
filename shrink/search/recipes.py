"""Plain recipes from a search: the trial's values in place of the spaces, written to another folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from shrink.api.recipe import Recipe
from shrink.engine.keys import referenced_files


def rebased(raw: dict[str, Any], recipe: Recipe, folder: Path) -> dict[str, Any]:
    """`raw` with every relative path it names (files, folders, `file.py:fn` factories, a target profile) rewritten
    to resolve from `folder` as it did from the recipe's own folder. The pass cache keys files by content, so the
    rewritten recipe finds the entries its trial wrote."""
    paths = set(referenced_files(raw, recipe.resolve_path))
    target = raw.get("target")
    if isinstance(target, str) and target.endswith(".json") and recipe.resolve_path(target).is_file():
        paths.add(target)

    def move(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: move(item) for key, item in value.items()}
        if isinstance(value, list):
            return [move(item) for item in value]
        if not isinstance(value, str) or value not in paths:
            return value
        head, sep, attr = value.rpartition(":")
        if sep and head.endswith(".py") and not Path(head).expanduser().is_absolute() and recipe.resolve_path(head).is_file():
            return f"{_relative(recipe.resolve_path(head), folder)}:{attr}"
        if Path(value).expanduser().is_absolute() or not recipe.resolve_path(value).exists():
            return value
        return _relative(recipe.resolve_path(value), folder)

    return {key: (value if key in ("name", "description", "schema_version") else move(value)) for key, value in raw.items()}


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path, folder.resolve())).as_posix()
