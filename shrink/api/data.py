"""Loaded data and the model inputs built from it: `Dataset`, `Split`, `Feeds`.

Every family and pass builds model inputs through these helpers, so calibration, parity checks,
latency samples and golden I/O see the same arrays. Imports numpy, no model library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Feeds = tuple[dict[str, np.ndarray], str]
"""Model inputs by input name, and where they came from (`"eval[:64]"`, `"random[8] (seed 0)"`)."""

RANDOM_DIM = 16  # stands in for a dimension no spec pins


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


def labelled_eval(data: Dataset | None) -> Split | None:
    """The eval split of a classification dataset, when it has labels."""
    if data is None or data.task != "classification" or "eval" not in data.splits:
        return None
    split = data.split("eval")
    return split if split.labels is not None else None


def top1(logits: Any, labels: Any) -> float:
    """Top-1 accuracy of `[N, classes]` scores against integer labels, rounded to 6 places."""
    return round(float((np.asarray(logits).argmax(axis=1) == np.asarray(labels)).mean()), 6)


def _pinned(shape: Sequence[Any]) -> bool:
    return bool(shape) and all(isinstance(d, int) and d > 0 for d in shape)


def array_feeds(specs: Sequence[Mapping[str, Any]], data: Dataset | None, splits: Sequence[str], count: int) -> Feeds | None:
    """Up to `count` rows of the first of `splits` whose inputs are numeric arrays that fit a single-input
    model (every pinned dimension after the batch axis equal), cast to the input's dtype; None when none fits."""
    if data is None or len(specs) != 1:
        return None
    spec = specs[0]
    shape = list(spec.get("shape") or [])
    for name in splits:
        if name not in data.splits:
            continue
        raw = data.split(name).inputs
        x = np.asarray(raw[:count]) if len(raw) else None
        if x is None or x.dtype.kind not in "fiub" or x.ndim != len(shape):
            continue
        if any(isinstance(d, int) and d > 0 and d != got for d, got in zip(shape[1:], x.shape[1:])):
            continue
        x = np.ascontiguousarray(x.astype(spec.get("dtype", "float32")))
        return {spec["name"]: x}, f"{name}[:{len(x)}]"
    return None


def random_feeds(specs: Sequence[Mapping[str, Any]], leading: Sequence[int], seed: int) -> dict[str, np.ndarray]:
    """Seeded random inputs shaped `leading + shape[1:]` per input (dims no spec pins: 16): standard normal
    floats, 0/1 booleans, and integers in the input's `range` [low, high) (token ids in the vocabulary, a
    mask of ones), else 0/1."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        dtype = np.dtype(spec.get("dtype", "float32"))
        rest = [d if isinstance(d, int) and d > 0 else RANDOM_DIM for d in list(spec.get("shape") or [1])[1:]]
        shape = [*leading, *rest]
        if dtype.kind == "f":
            feeds[spec["name"]] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[spec["name"]] = rng.integers(0, 2, shape).astype(dtype)
        else:
            low, high = (spec.get("range") or [0, 2])[:2]
            feeds[spec["name"]] = rng.integers(int(low), int(high), shape).astype(dtype)
    return feeds


def sample_feeds(specs: Sequence[Mapping[str, Any]], data: Dataset | None) -> dict[str, np.ndarray] | None:
    """One batch-1 input for timing: the first eval row when it fits a single input, else the recorded
    shapes filled with zeros (or with the low end of an input's `range`: a mask of ones); None when a
    shape is not pinned."""
    if not specs or not all(_pinned(spec.get("shape") or []) for spec in specs):
        return None
    if len(specs) == 1:
        found = array_feeds(specs, data, ("eval",), 1)
        if found is not None:
            return found[0]
    return {spec["name"]: np.full([1, *list(spec["shape"])[1:]], (spec.get("range") or [0])[0],
                                  dtype=spec.get("dtype", "float32")) for spec in specs}
