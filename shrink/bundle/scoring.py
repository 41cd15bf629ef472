"""`shrink verify BUNDLE --data PATH`: the bundle's model scored on the user's own labelled data.

The bundle's preprocessing record (`manifest["preprocessing"]`) says how raw files become the model's inputs; the
plugin that knows the record's kind rebuilds that transform from the record alone (`shrink_preprocessor`) and
reads PATH with it (an `.npz` holds model inputs already and is read by the `arrays` kind). The model runs
under its format's runner (`shrink.bundle.runners`), in chunks so that a large folder streams, and its top-1
accuracy becomes the check `data_accuracy`, gated by the budget key `accuracy`. No torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shrink.api.checks import CheckResult
from shrink.api.data import random_feeds
from shrink.api.preprocessing import (
    CLASSIFICATION,
    RECORD_VERSION,
    LabelledSamples,
    record_problems,
    sample_problem,
    tensor_record,
)
from shrink.bundle.runners import runner_for
from shrink.errors import PluginError, ShrinkError, UsageError
from shrink.host.registry import Registry

CHUNK = 256  # samples decoded and run at a time
WHERE = "--data"


@dataclass(frozen=True)
class DataScore:
    """What `--data` measured: samples read, how many the model got right, and what was read."""

    path: str
    origin: str
    samples: int
    correct: int

    @property
    def accuracy(self) -> float:
        return round(self.correct / self.samples, 6)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "accuracy": self.accuracy}


def bundle_record(manifest: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The manifest's preprocessing record, when it can score labelled data; else a `UsageError` saying why."""
    record = manifest.get("preprocessing")
    if record is None:
        raise UsageError("the bundle records no preprocessing (it was compiled without data, from generated data, or by "
                         "a shrink that did not record it), so --data cannot be prepared for its model", where=WHERE,
                         hint="recompile it with labelled data in the recipe's 'data' section")
    version = record.get("version") if isinstance(record, dict) else None
    if isinstance(version, int) and version > RECORD_VERSION:
        raise UsageError(f"the bundle's preprocessing record is version {version}; this shrink reads up to "
                         f"{RECORD_VERSION}", where=label, hint="upgrade shrink to verify this bundle with --data")
    problems = record_problems(record, f"{label}: preprocessing")
    if problems:
        raise UsageError(problems)
    if record["task"] != CLASSIFICATION or not record["labels"]:
        what = f"a {record['task']!r} model" if record["task"] else "a model compiled from unlabelled data"
        raise UsageError(f"--data scores classifiers against the label names they were compiled with; this bundle holds "
                         f"{what}, and its record names no labels", where=WHERE)
    return record


def read_data(path: Path, record: dict[str, Any], inputs: Sequence[Mapping[str, Any]], bundle: Path,
              registry: Registry) -> LabelledSamples:
    """PATH read and preprocessed by the plugin that knows the record's kind (`arrays` for an `.npz`)."""
    if not path.exists():
        raise UsageError(f"no such file or folder: {path}", where=WHERE)
    if path.is_file() and path.suffix.lower() == ".npz" and record["kind"] != "arrays":
        record = tensor_record(record, inputs)
    preprocessor = registry.pm.hook.shrink_preprocessor(record=record, bundle=bundle)
    if preprocessor is None:
        raise UsageError(f"no installed plugin reads preprocessing records of kind {record['kind']!r} (written by data "
                         f"source {record['source']!r})", where=WHERE,
                         hint="install the plugin that provides that data source, or give an .npz of model inputs")
    try:
        samples = preprocessor.read(path)
    except ShrinkError:
        raise
    except Exception as exc:
        raise PluginError(f"the {record['kind']!r} preprocessor raised {type(exc).__name__} reading {path}: {exc}",
                          where=WHERE) from exc
    if not isinstance(samples, LabelledSamples):
        raise PluginError(f"the {record['kind']!r} preprocessor returned {type(samples).__name__}, not LabelledSamples",
                          where=WHERE)
    if not len(samples):
        raise UsageError(f"{path} holds no samples", where=WHERE)
    return samples


def _feeds(samples: LabelledSamples, inputs: Sequence[Mapping[str, Any]], start: int, stop: int) -> dict[str, np.ndarray]:
    """Samples `start:stop` per model input, in its dtype; inputs the data does not feed get their constant or
    values from their range, as the compile's feeds do."""
    feeds = {}
    for spec in inputs:
        name = str(spec["name"])
        if name in samples.inputs:
            feeds[name] = np.ascontiguousarray(np.asarray(samples.inputs[name][start:stop]).astype(spec.get("dtype") or "float32"))
        elif spec.get("constant") is not None or spec.get("range") is not None:
            feeds.update(random_feeds([spec], [stop - start], 0))
        else:
            raise UsageError(f"the data gives no values for model input {name!r} (it gives {', '.join(samples.inputs)})",
                             where=WHERE)
    return feeds


def score(bundle: Path, manifest: Mapping[str, Any], model: Path, path: Path, registry: Registry) -> DataScore:
    """Top-1 accuracy of the bundle's model on the labelled data at `path`."""
    record = bundle_record(manifest, str(bundle / "manifest.json"))
    inputs = list(manifest.get("model", {}).get("inputs", []))
    samples = read_data(path, record, inputs, bundle, registry)
    labels: list[str] = record["labels"]
    by_name = {str(spec["name"]): spec for spec in inputs}
    for name, values in samples.inputs.items():
        if name not in by_name:
            raise UsageError(f"the bundle's model has no input {name!r} (its inputs: {', '.join(by_name)})", where=WHERE)
        problem = sample_problem(name, by_name[name], np.asarray(values[0]))
        if problem:
            raise UsageError(f"{path}: {problem}", where=WHERE)
    runner = runner_for(model, inputs)
    correct = 0
    for start in range(0, len(samples), CHUNK):
        stop = min(start + CHUNK, len(samples))
        scores = np.asarray(runner.run(_feeds(samples, inputs, start, stop)))
        if scores.ndim != 2 or scores.shape[0] != stop - start:
            raise UsageError(f"the model's first output has shape {list(scores.shape)} for {stop - start} samples, not "
                             "[samples, classes]", where=str(model))
        if scores.shape[1] != len(labels):
            raise UsageError(f"the model gives {scores.shape[1]} class scores, but the bundle's preprocessing record "
                             f"names {len(labels)} labels", where=str(model))
        correct += int((scores.argmax(axis=1) == samples.labels[start:stop]).sum())
    return DataScore(str(path), samples.origin, len(samples), correct)


def data_check(found: DataScore, limit: float | None) -> CheckResult:
    """`data_accuracy`: the accuracy on --data, at least `limit` (the budget key `accuracy`) when one is set."""
    cause = f"{found.correct} of {found.samples} samples correct on {found.origin}"
    if limit is None:
        return CheckResult("data_accuracy", True, None, found.accuracy, "fraction",
                           cause + "; not gated (--budget accuracy=0.9 sets a minimum)")
    ok = found.accuracy >= limit
    return CheckResult("data_accuracy", ok, limit, found.accuracy, "fraction",
                       cause if ok else f"{cause}: below the {limit:.2%} budget")
