"""Loaded data and the model inputs built from it: `Dataset`, `Split`, `Feeds`.

Every family and pass builds model inputs through these helpers, so calibration, parity checks,
latency samples and golden I/O see the same arrays. Imports numpy, no model library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shrink.api.inputs import batch_axis, is_pinned, sample_shape
from shrink.support.ort import session

Feeds = tuple[dict[str, np.ndarray], str]
"""Model inputs by input name, and where they came from (`"eval[:64]"`, `"random[8] (seed 0)"`)."""

RANDOM_DIM = 16  # stands in for a dimension no spec pins


@dataclass(frozen=True)
class Split:
    """One split of a dataset: `inputs` (an array `[N, ...]`, a list of strings, or a mapping of field names
    to arrays `[N, ...]` for models with several inputs) and `labels` (`[N]`, or None)."""

    inputs: Any
    labels: Any | None = None

    def __len__(self) -> int:
        if isinstance(self.inputs, Mapping):
            return len(next(iter(self.inputs.values()))) if self.inputs else 0
        return len(self.inputs)


@dataclass(frozen=True)
class Dataset:
    """Loaded data. `task` tells evaluators what the labels mean (`"classification"`); `meta["classes"]` names the
    labels, and `meta["random"]` marks generated samples (their origin names the dataset, e.g. "random data")."""

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
    """Top-1 accuracy of `[N, classes]` scores against integer labels (`[N]` or a `[N, 1]` column), rounded to 6
    places."""
    return round(float((np.asarray(logits).argmax(axis=1) == _label_vector(labels)).mean()), 6)


def _label_vector(labels: Any) -> np.ndarray:
    """Labels as `[N]`: a `[N, 1]` column is one label per row, not a row per sample."""
    y = np.asarray(labels)
    return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y


def class_probabilities(scores: Any) -> np.ndarray | None:
    """`[N, classes]` scores as class probabilities: scores that all lie in [0, 1] are read as probabilities (a softmax
    output, also dequantized from int8, whose rows no longer sum to exactly 1; a sigmoid output) and each row is
    renormalized; any other scores are logits (or log-probabilities), turned into probabilities by the softmax. None
    when `scores` is not a 2-D array of finite numbers with at least two classes."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2 or not np.isfinite(x).all():
        return None
    if ((x >= 0) & (x <= 1)).all():
        sums = x.sum(axis=1, keepdims=True)
        return np.where(sums > 0, x / np.where(sums > 0, sums, 1), 1.0 / x.shape[1])
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def class_indices(labels: Any, classes: int) -> np.ndarray | None:
    """Labels as integer class indices (`[N]` or `[N, 1]`; whole-number floats accepted), or None when they are not
    indices below `classes`."""
    y = _label_vector(labels)
    if y.ndim != 1 or y.dtype.kind not in "iuf" or (y.dtype.kind == "f" and not np.array_equal(y, np.round(y))):
        return None
    y = y.astype(np.int64)
    return y if ((y >= 0) & (y < classes)).all() else None


def classification_scores(scores: Any, labels: Any) -> dict[str, float]:
    """`accuracy` (top-1) of `[N, classes]` scores against integer labels and `brier`: the Brier score, the mean
    squared distance of the predicted class probabilities (`class_probabilities`) from the one-hot labels, in [0, 2]
    (lower is better). Unlike top-1 it is continuous, so it still tells apart models whose accuracy ties, and unlike
    the cross-entropy it stays finite when a quantized output rounds the true class's probability to 0. Without
    probabilities or class indices, `brier` is left out. Rounded to 6 places."""
    out = {"accuracy": top1(scores, labels)}
    p = class_probabilities(scores)
    y = class_indices(labels, p.shape[1]) if p is not None else None
    if p is not None and y is not None and len(y) == len(p):
        onehot = np.zeros_like(p)
        onehot[np.arange(len(y)), y] = 1.0
        out["brier"] = round(float(((p - onehot) ** 2).sum(axis=1).mean()), 6)
    return out


def _fed_by_data(spec: Mapping[str, Any]) -> bool:
    return spec.get("range") is None and spec.get("constant") is None


def _dims(spec: Mapping[str, Any]) -> list[int]:
    return [d if isinstance(d, int) and not isinstance(d, bool) and d > 0 else RANDOM_DIM for d in sample_shape(spec)]


def _fit(spec: Mapping[str, Any], raw: Any, count: int) -> np.ndarray | None:
    """Up to `count` samples of `raw` as the input's dtype, when they are numeric and their shape fits the
    input's sample shape (every pinned dim equal); else None."""
    x = np.asarray(raw[:count]) if len(raw) else None
    want = sample_shape(spec)
    if x is None or x.dtype.kind not in "fiub" or x.ndim != len(want) + 1:
        return None
    if any(isinstance(d, int) and d > 0 and d != got for d, got in zip(want, x.shape[1:])):
        return None
    return np.ascontiguousarray(x.astype(spec.get("dtype", "float32")))


def _generated(spec: Mapping[str, Any], leading: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Values for an input fed by a constant or a range (else standard normal floats, 0/1 integers)."""
    dtype = np.dtype(spec.get("dtype", "float32"))
    shape = [*leading, *_dims(spec)]
    if spec.get("constant") is not None:
        return np.full(shape, spec["constant"], dtype=dtype)
    if dtype.kind == "f":
        if spec.get("range") is not None:
            low, high = spec["range"][:2]
            return rng.uniform(float(low), float(high), shape).astype(dtype)
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(dtype)
    low, high = (spec.get("range") or [0, 2])[:2]
    return rng.integers(int(low), int(high), shape).astype(dtype)


def array_feeds(specs: Sequence[Mapping[str, Any]], data: Dataset | None, splits: Sequence[str], count: int) -> Feeds | None:
    """Up to `count` samples from the first of `splits` that feeds every data-fed input: a split whose inputs
    are one array feeds a model with one data-fed input; a split whose inputs map field names to arrays feeds
    each input its field (`field`, else its name). Inputs fed by a range or a constant get generated values.
    Arrays are sample-major (`[N, *sample_shape]`, see `to_model`); None when no split fits."""
    fed = [spec for spec in specs if _fed_by_data(spec)]
    if data is None or not fed:
        return None
    for name in splits:
        if name not in data.splits:
            continue
        raw = data.split(name).inputs
        if isinstance(raw, Mapping):
            found = {spec["name"]: _fit(spec, raw[key], count) if (key := spec.get("field") or spec["name"]) in raw else None
                     for spec in fed}
        elif len(fed) == 1:
            found = {fed[0]["name"]: _fit(fed[0], raw, count)}
        else:
            continue
        if any(x is None for x in found.values()) or len({len(x) for x in found.values()}) != 1:
            continue
        rows = len(next(iter(found.values())))
        rng = np.random.default_rng(0)
        feeds = {spec["name"]: found[spec["name"]] if spec["name"] in found else _generated(spec, [rows], rng)
                 for spec in specs}
        origin = f"{name}[:{rows}]"
        if data.meta.get("random"):  # generated samples say so wherever their origin is reported (calibration, golden)
            origin += f" of {data.name}"
        return feeds, origin
    return None


def random_feeds(specs: Sequence[Mapping[str, Any]], leading: Sequence[int], seed: int) -> dict[str, np.ndarray]:
    """Seeded inputs shaped `leading + sample_shape` per input (dims no spec pins: 16): an input's constant, or
    values in its `range` [low, high) (token ids in the vocabulary, a mask of ones), else standard normal floats
    and 0/1 integers."""
    rng = np.random.default_rng(seed)
    return {spec["name"]: _generated(spec, leading, rng) for spec in specs}


def rows(feeds: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(feeds.values()))) if feeds else 0


def to_model(specs: Sequence[Mapping[str, Any]], feeds: Mapping[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    """Samples `start:stop` of sample-major feeds in each input's own layout: the batch at its batch axis, or,
    for an input without one, the sample at `start` alone."""
    by_name = {spec["name"]: spec for spec in specs}
    out = {}
    for name, values in feeds.items():
        axis = batch_axis(by_name.get(name, {}))
        if axis is None:
            out[name] = np.asarray(values[start])
        else:
            chunk = values[start:stop]
            out[name] = np.ascontiguousarray(np.moveaxis(chunk, 0, axis)) if axis else chunk
    return out


def run_feeds(model: Any, specs: Sequence[Mapping[str, Any]], feeds: Mapping[str, np.ndarray],
              batch_size: int = 256) -> list[np.ndarray]:
    """Run sample-major `feeds` through a model file (or an open session) in batches laid out per input (one
    sample at a time when an input has no batch axis; the model's own batch size when its batch dim is fixed);
    each output's batches are concatenated along its first axis."""
    sess = session(model) if isinstance(model, (str, Path)) else model
    axes = [batch_axis(spec) for spec in specs if spec["name"] in feeds]
    step = batch_size
    if any(axis is None for axis in axes):
        step = 1
    else:
        declared = {i.name: i.shape for i in sess.get_inputs()}
        for spec in specs:
            dims = declared.get(spec["name"]) or []
            axis = batch_axis(spec)
            if axis is not None and axis < len(dims) and isinstance(dims[axis], int) and dims[axis] > 0:
                step = int(dims[axis])
                break
    total = rows(feeds)
    chunks = [sess.run(None, to_model(specs, feeds, start, min(start + step, total))) for start in range(0, total, step)]
    return [np.concatenate([np.atleast_1d(c[i]) for c in chunks]) for i in range(len(chunks[0]))] if chunks else []


def sample_feeds(specs: Sequence[Mapping[str, Any]], data: Dataset | None) -> dict[str, np.ndarray] | None:
    """One batch-1 input in the model's layout, for timing: the first eval sample when the data feeds the model,
    else the recorded shapes filled with each input's constant, the low end of its `range` (a mask of ones) or
    zeros; None when a shape is not pinned."""
    if not specs or not all(is_pinned(spec) for spec in specs):
        return None
    found = array_feeds(specs, data, ("eval",), 1)
    if found is not None:
        return to_model(specs, found[0], 0, 1)
    feeds = {}
    for spec in specs:
        shape, axis = list(spec["shape"]), batch_axis(spec)
        if axis is not None:
            shape[axis] = 1
        fill = spec["constant"] if spec.get("constant") is not None else (spec.get("range") or [0])[0]
        feeds[spec["name"]] = np.full(shape, fill, dtype=spec.get("dtype", "float32"))
    return feeds
