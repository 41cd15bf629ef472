"""Shared fixtures come from `shrink.testing`, the pytest plugin for plugin authors: recipes in tmp dirs,
the tiny model factory, target profiles, and the CLI run in-process or as a real subprocess."""

from __future__ import annotations

from pathlib import Path
from typing import Any

pytest_plugins = ["shrink.testing"]

REPO = Path(__file__).resolve().parents[1]

_REEXPORTED = ("Result", "run_subprocess", "TINY_FACTORY")


def __getattr__(name: str) -> Any:
    """`from tests.conftest import run_subprocess` etc., resolved lazily so that pytest imports (and
    assertion-rewrites) `shrink.testing` itself as a plugin first."""
    if name in _REEXPORTED:
        import shrink.testing

        return getattr(shrink.testing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
