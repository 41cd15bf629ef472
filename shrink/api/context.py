"""What passes see besides the artifact: the run `Context`, the `PlanContext`, and loaded data."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shrink.api.recipe import Recipe
    from shrink.api.target import Target


@dataclass(frozen=True)
class Split:
    """One split of a dataset: `inputs` (an array `[N, ...]`, or a list of strings) and `labels`."""

    inputs: Any
    labels: Any | None = None

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class Dataset:
    """Loaded data. `task` tells evaluators what the labels mean (`"classification"`)."""

    name: str
    task: str
    splits: Mapping[str, Split]
    fingerprint: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> Split:
        try:
            return self.splits[name]
        except KeyError:
            raise KeyError(f"dataset {self.name!r} has no {name!r} split (it has {sorted(self.splits)})") from None


@dataclass(frozen=True)
class PlanContext:
    """Plan time: the validated recipe and the resolved target; no model, no data loaded."""

    recipe: Recipe
    target: Target
    index: int | None = None  # the step being checked

    def path(self, value: str) -> Path:
        """A recipe path, resolved against the recipe file's directory."""
        return self.recipe.resolve_path(value)


@dataclass
class Context:
    """Run time: everything a pass may use besides its artifact.

    `workdir` is a private temporary directory for files (ONNX models, checkpoints), removed after
    the compile; `new_path()` gives a fresh file name inside it. `data` is None when the recipe has
    no `data` section. `report(fraction, text)` advances the progress display.
    """

    recipe: Recipe
    target: Target
    data: Dataset | None
    workdir: Path
    seed: int = 0
    source: Any = None  # the source artifact (the original model), for teachers and accuracy drops
    report: Callable[[float, str], None] = lambda fraction, text: None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("shrink"))
    _counter: itertools.count = field(default_factory=itertools.count, repr=False)

    def new_path(self, stem: str, suffix: str) -> Path:
        return self.workdir / f"{next(self._counter):03d}-{stem}{suffix}"

    def path(self, value: str) -> Path:
        return self.recipe.resolve_path(value)

    def require_data(self, split: str, who: str) -> Split:
        if self.data is None:
            from shrink.errors import RecipeError

            raise RecipeError(f"{who} needs data but the recipe has no 'data' section")
        return self.data.split(split)
