"""Registers the built-in target profiles shipped in `shrink_targets`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from shrink import hookimpl


@hookimpl
def shrink_register_targets() -> list[Path]:
    root = resources.files("shrink_targets")
    return sorted(Path(str(entry)) for entry in root.iterdir() if entry.name.endswith(".json"))
