"""Shared fixtures: recipes in tmp dirs, the CLI run in-process or as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shrink.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY_FACTORY = '''
import torch
from torch import nn


def tiny(width: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Flatten(), nn.Linear(width * 8 * 8, 10),
    )
'''


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run the CLI in-process: `cli("plan", path)` → Result(code, stdout, stderr)."""

    def run(*args: str | Path) -> Result:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def run_subprocess(*args: str | Path, env: dict[str, str] | None = None, code: str | None = None) -> Result:
    """Run `python -m shrink ARGS` (or `python -c CODE`) in a fresh interpreter."""
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "shrink", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.py"
    path.write_text(TINY_FACTORY)
    return path


@pytest.fixture
def make_recipe(tmp_path: Path, tiny_model: Path) -> Callable[..., Path]:
    """Write a recipe (a tiny CNN on 8x8 digits) to tmp_path; keyword arguments override keys."""

    def make(filename: str = "recipe.json", raw: str | None = None, **overrides: Any) -> Path:
        path = tmp_path / filename
        if raw is not None:
            path.write_text(raw)
            return path
        recipe: dict[str, Any] = {
            "schema_version": 1,
            "name": "tiny",
            "model": {"source": "torch", "factory": "tiny.py:tiny", "input_shape": [1, 1, 8, 8]},
            "data": {"source": "sklearn.digits", "image_size": 8},
            "target": "cortex-a53",
            "passes": [{"pass": "export.onnx"}],
        }
        for key, value in overrides.items():
            if value is None:
                recipe.pop(key, None)
            else:
                recipe[key] = value
        path.write_text(json.dumps(recipe, indent=2))
        return path

    return make
