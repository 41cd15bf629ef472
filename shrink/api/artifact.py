"""`Artifact`: the immutable record of "the model so far" that flows from pass to pass."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Step:
    """One entry of an artifact's history: what ran, how long it took, and the metrics after it."""

    index: int | None  # pass index in the recipe; None for the source loader
    name: str  # pass name, or "source:<name>"
    plugin: str
    seconds: float
    metrics: Mapping[str, Any]
    details: Mapping[str, Any] = field(default_factory=lambda: _frozen(None))
    cached: bool = False  # restored from the pass cache instead of run


@dataclass(frozen=True)
class Artifact:
    """The model so far.

    `model` is the format's in-memory object (a `torch.nn.Module` for `"torch"`, a path to a
    `.onnx` file for `"onnx"`). `meta` holds facts every pass must keep consistent: `inputs`
    (list of `{name, shape, dtype}`), `outputs`, `task`, label names, head counts, tokenizer files.
    `details` is what the last pass reports about itself (e.g. the chosen quantization scheme). A source that
    copies a user's file records it in `meta["source_file"]`, so messages name that file, not the copy.
    `family` names the `ModelFamily` that handles the model in every format (set by the engine from
    the model source; passes keep it). Passes never mutate an artifact (nor its model object); they
    return `artifact.evolve(...)` with a new model.
    """

    model: Any
    format: str
    meta: Mapping[str, Any] = field(default_factory=lambda: _frozen(None))
    metrics: Mapping[str, Any] = field(default_factory=lambda: _frozen(None))
    history: tuple[Step, ...] = ()
    details: Mapping[str, Any] = field(default_factory=lambda: _frozen(None))
    family: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta", _frozen(self.meta))
        object.__setattr__(self, "metrics", _frozen(self.metrics))
        object.__setattr__(self, "details", _frozen(self.details))

    def evolve(self, **changes: Any) -> Artifact:
        """A copy with `changes` applied; `meta` changes are merged into the current meta."""
        if "meta" in changes:
            changes["meta"] = {**self.meta, **changes["meta"]}
        changes.setdefault("details", {})
        return dataclasses.replace(self, **changes)

    @property
    def inputs(self) -> list[dict[str, Any]]:
        return list(self.meta.get("inputs", []))
