"""pytest helpers for shrink plugin authors (and shrink's own tests).

Activate them in a `conftest.py`::

    pytest_plugins = ["shrink.testing"]

Fixtures:
  tiny_model    a factory file `tiny.py` in tmp_path: `tiny(width=4)` (Conv-BN-ReLU-Linear for 8x8
                images) and `mlp(hidden=64)` (three Linear layers for 8x8 images).
  make_target   write a target profile JSON (`tiny-board`, extends cortex-a53); keyword arguments override keys.
  tiny_target   `make_target()`: a path to give `--target`.
  make_recipe   write a recipe (the tiny CNN on 8x8 sklearn digits, cortex-a53, `export.onnx`);
                keyword arguments override top-level keys (None removes one).
  cli           run `shrink.cli.main` in-process: `cli("plan", path)` → `Result(code, out, err)`.
  cli_subprocess  the same in a fresh interpreter (`python -m shrink`), optionally with extra env.
  make_pass_input  `make_pass_input(recipe, before=i)`: the artifact and `Context` a pass at index `i` sees.

Functions: `check_pass_contract(pass_cls, ...)` checks a Pass class's declarations and, given an
artifact and a context, one `run()`; `pass_input(...)` is `make_pass_input` without pytest.

The CLI fixtures see plugins installed in the environment (`pip install -e .`); `check_pass_contract`
and `pass_input(..., plugins=[("name", module)])` also work on a plugin that is not installed.
This module imports neither torch nor onnx.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from shrink.api.artifact import Artifact
from shrink.api.context import Context
from shrink.api.passes import Pass, PassOptions, summary
from shrink.errors import ShrinkError

if TYPE_CHECKING:
    from shrink.plan.planner import Plan

TINY_FACTORY = '''
import torch
from torch import nn


def tiny(width: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Flatten(), nn.Linear(width * 8 * 8, 10),
    )


def mlp(hidden: int = 64) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10),
    )
'''

TINY_TARGET: dict[str, Any] = {
    "schema_version": 1,
    "name": "tiny-board",
    "extends": "cortex-a53",
    "description": "a test board: a Cortex-A53 with 8 MiB of storage and 64 MiB of RAM for the model",
    "memory": {"ram": {"bytes": 67108864, "reserved_bytes": 0, "kind": "dram", "budget": True}},
    "storage": {"bytes": 8388608, "reserved_bytes": 0, "kind": "flash", "budget": True},
    "provenance": {"memory.ram": "test fixture", "storage": "test fixture"},
}


def default_recipe() -> dict[str, Any]:
    """The recipe `make_recipe` writes before overrides: the tiny CNN on 8x8 digits, exported to ONNX."""
    return {
        "schema_version": 1,
        "name": "tiny",
        "model": {"source": "torch", "factory": "tiny.py:tiny", "input_shape": [1, 1, 8, 8], "allow_random_weights": True},
        "data": {"source": "sklearn.digits", "image_size": 8},
        "target": "cortex-a53",
        "passes": [{"pass": "export.onnx"}],
    }


# running the CLI -------------------------------------------------------------------------------------

@dataclass
class Result:
    """What a CLI run produced: exit code, stdout and stderr; `.json` parses stdout."""

    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


def run_subprocess(*args: str | Path, env: Mapping[str, str] | None = None, code: str | None = None,
                   cwd: str | Path | None = None, timeout: float = 600) -> Result:
    """Run `python -m shrink ARGS` (or `python -c CODE`) in a fresh interpreter; `env` is added to os.environ."""
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "shrink", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(autouse=True)
def private_pass_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own pass cache (in-process and in subprocesses), never the user's
    `~/.cache/shrink`, so results never leak between tests."""
    path = tmp_path_factory.mktemp("pass-cache")
    monkeypatch.setenv("SHRINK_CACHE_DIR", str(path))
    return path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run the CLI in-process: `cli("plan", path)` → Result(code, stdout, stderr)."""
    from shrink.cli.main import main

    def run(*args: str | Path) -> Result:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def cli_subprocess() -> Callable[..., Result]:
    """Run the CLI in a fresh interpreter: `cli_subprocess("passes", "--json", env={...})` → Result."""
    return run_subprocess


# files: model factory, target profile, recipe ---------------------------------------------------------

@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """`tmp_path/tiny.py` with the factories `tiny` and `mlp` (see TINY_FACTORY)."""
    path = tmp_path / "tiny.py"
    path.write_text(TINY_FACTORY)
    return path


@pytest.fixture
def make_target(tmp_path: Path) -> Callable[..., Path]:
    """Write a target profile (TINY_TARGET with top-level overrides; None removes a key) and return its path."""

    def make(filename: str = "tiny-board.json", **overrides: Any) -> Path:
        profile = copy.deepcopy(TINY_TARGET)
        for key, value in overrides.items():
            if value is None:
                profile.pop(key, None)
            else:
                profile[key] = value
        path = tmp_path / filename
        path.write_text(json.dumps(profile, indent=2))
        return path

    return make


@pytest.fixture
def tiny_target(make_target: Callable[..., Path]) -> Path:
    """A small profile file (`tiny-board`: cortex-a53 with 8 MiB storage) for `--target`."""
    return make_target()


@pytest.fixture
def make_recipe(tmp_path: Path, tiny_model: Path) -> Callable[..., Path]:
    """Write a recipe (a tiny CNN on 8x8 digits) to tmp_path; keyword arguments override keys."""

    def make(filename: str = "recipe.json", raw: str | None = None, **overrides: Any) -> Path:
        path = tmp_path / filename
        if raw is not None:
            path.write_text(raw)
            return path
        recipe = default_recipe()
        for key, value in overrides.items():
            if value is None:
                recipe.pop(key, None)
            else:
                recipe[key] = value
        path.write_text(json.dumps(recipe, indent=2))
        return path

    return make


# what a pass sees ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PassInput:
    """The artifact and run context a recipe step receives, and the plan they came from."""

    artifact: Artifact
    ctx: Context
    plan: Plan


def pass_input(recipe: Path, workdir: Path, *, before: int | None = None,
               plugins: Iterable[tuple[str, Any]] = ()) -> PassInput:
    """Load the recipe's model and data and run its passes up to (not including) index `before`.

    `before=None` stops before the first pass (the source artifact). `plugins` are extra in-process
    plugin modules (`[("lowrank", shrink_lowrank.plugin)]`), for a plugin that is not installed.
    `workdir` must outlive the returned context (passes write files into it).
    """
    from shrink.engine.compile import load_plan
    from shrink.engine.run import run_plan
    from shrink.host.registry import Registry

    registry = Registry.load(extra=list(plugins))
    plan = load_plan(Path(recipe), registry)
    stop = 0 if before is None else before
    if not 0 <= stop <= len(plan.steps):
        raise ValueError(f"before={before}: the recipe has {len(plan.steps)} passes")
    workdir.mkdir(parents=True, exist_ok=True)
    result = run_plan(dataclasses.replace(plan, steps=plan.steps[:stop]), registry, workdir)
    return PassInput(result.final, result.ctx, plan)


@pytest.fixture
def make_pass_input(tmp_path: Path) -> Callable[..., PassInput]:
    """`make_pass_input(recipe, before=i, plugins=[...])`: see `pass_input` (its workdir is in tmp_path)."""
    counter = iter(range(1_000_000))

    def make(recipe: Path, *, before: int | None = None, plugins: Iterable[tuple[str, Any]] = ()) -> PassInput:
        return pass_input(recipe, tmp_path / f"work-{next(counter)}", before=before, plugins=plugins)

    return make


# the Pass contract -----------------------------------------------------------------------------------

class ContractError(AssertionError):
    """A pass breaks the `Pass` contract; the message lists every problem found."""


def _fingerprint(model: Any) -> str:
    """A digest of a model's content: a file's bytes, a torch module's structure and state, else its repr."""
    digest = hashlib.sha256()
    if isinstance(model, (str, os.PathLike)) and Path(model).is_file():
        digest.update(Path(model).read_bytes())
    elif callable(getattr(model, "state_dict", None)):
        digest.update(repr(model).encode())
        for key, value in model.state_dict().items():
            digest.update(key.encode())
            try:
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
            except (AttributeError, TypeError, RuntimeError):  # packed params, dtypes numpy lacks (bfloat16)
                digest.update(repr(value.tolist() if hasattr(value, "tolist") else value).encode())
    else:
        digest.update(repr(model).encode())
    return digest.hexdigest()


def _snapshot(artifact: Artifact) -> tuple[Any, ...]:
    return (artifact.format, _fingerprint(artifact.model), repr(dict(artifact.meta)), repr(dict(artifact.metrics)),
            repr(artifact.history), repr(dict(artifact.details)))


def check_pass_contract(pass_cls: type[Pass], artifact: Artifact | None = None, ctx: Context | None = None,
                        options: Mapping[str, Any] | None = None) -> Artifact | None:
    """Check `pass_cls` against the `Pass` contract; raise `ContractError` listing every problem.

    Always checks the declarations the registry enforces when loading a plugin (`shrink.api.passes.check_pass_class`:
    name `<kind>.<impl>`, `consumes`/`produces`, `Options` subclassing `PassOptions`, `run()`
    implemented), plus: a docstring summary, a JSON Schema generated from `Options`, and that `options`
    (default: `{}`) validate. Given `artifact` and `ctx` (e.g. from `pass_input`), it also runs the pass
    once and checks, as the engine does, that it returns an `Artifact` of the declared format, and that
    it returned a new artifact and left the input (model, meta, metrics, history) unchanged.
    Returns the pass's result, or None when nothing was run.
    """
    from pydantic import ValidationError

    from shrink.api.passes import check_pass_class
    from shrink.engine.run import _check_returned
    from shrink.plan.planner import options_schema

    where = f"plugin {getattr(pass_cls, '__module__', '?')}"
    try:
        check_pass_class(pass_cls, where)
    except ShrinkError as exc:
        raise ContractError("\n".join(p.message for p in exc.problems)) from None
    problems = []
    if not summary(pass_cls):
        problems.append(f"pass {pass_cls.name!r} has no docstring (its first line is the summary `shrink passes` shows)")
    try:
        schema = options_schema(pass_cls.Options, "pass", pass_cls.name)
        json.dumps(schema)
    except Exception as exc:
        problems.append(f"pass {pass_cls.name!r}: no JSON Schema can be generated from Options: {type(exc).__name__}: {exc}")
    opts: PassOptions | None = None
    try:
        opts = pass_cls.Options.model_validate(dict(options or {}))
    except ValidationError as exc:
        problems.append(f"pass {pass_cls.name!r}: options {dict(options or {})!r} do not validate: {exc}")
    if problems:
        raise ContractError("\n".join(problems))
    if artifact is None:
        return None
    if ctx is None:
        raise ValueError("check_pass_contract needs ctx together with artifact")
    if artifact.format not in pass_cls.consumes:
        raise ValueError(f"{pass_cls.name} consumes {'/'.join(pass_cls.consumes)}, not the given {artifact.format!r} artifact")

    before = _snapshot(artifact)
    assert opts is not None
    result = pass_cls(opts).run(artifact, ctx)
    try:
        _check_returned(result, pass_cls.produces, f"pass {pass_cls.name!r}", where)
    except ShrinkError as exc:
        raise ContractError("\n".join(p.message for p in exc.problems)) from None
    if result is artifact:
        problems.append(f"pass {pass_cls.name!r} returned its input artifact; return artifact.evolve(...)")
    if _snapshot(artifact) != before:
        problems.append(f"pass {pass_cls.name!r} mutated its input artifact (model, meta, metrics, history or details); "
                        "copy the model before changing it")
    if problems:
        raise ContractError("\n".join(problems))
    return result
