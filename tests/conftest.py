"""Shared fixtures come from `shrink.testing`, the pytest plugin for plugin authors: recipes in tmp dirs,
the tiny model factory, target profiles, and the CLI run in-process or as a real subprocess."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["shrink.testing"]

REPO = Path(__file__).resolve().parents[1]

_REEXPORTED = ("Result", "run_subprocess", "TINY_FACTORY")


@pytest.fixture(autouse=True)
def private_pass_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own pass cache (in-process and in subprocesses), never the user's."""
    path = tmp_path_factory.mktemp("pass-cache")
    monkeypatch.setenv("SHRINK_CACHE_DIR", str(path))
    return path


def __getattr__(name: str) -> Any:
    """`from tests.conftest import run_subprocess` etc., resolved lazily so that pytest imports (and
    assertion-rewrites) `shrink.testing` itself as a plugin first."""
    if name in _REEXPORTED:
        import shrink.testing

        return getattr(shrink.testing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
