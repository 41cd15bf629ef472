"""Preprocessing records: how raw data becomes a model's inputs, recorded in the bundle, and the contract of the
plugins that apply a record to a user's labelled data (`shrink verify BUNDLE --data PATH`).

A record is a JSON object in the manifest (`"preprocessing"`; `shrink schema preprocessing` gives its schema):
its `version`, its `kind` (`image`, `audio`, `text`, `arrays`, or a plugin's), the data `source` that wrote it,
the model's `task`, the class `labels` by name in the order of the model's scores, and the kind's steps. The
data provider that fed the compile writes it (`DataProvider.preprocessing`), the model's family completes it
(`ModelFamily.preprocessing`: the Hugging Face family adds its tokenizer), and a plugin that knows the kind
rebuilds the transform from the record alone, with no recipe and no torch (the `shrink_preprocessor` hook), as
a `Preprocessor` that reads labelled files into `LabelledSamples`. Imports numpy only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shrink.api.inputs import batch_axis
from shrink.errors import Problem, UsageError
from shrink.support.validation import schema_problems

RECORD_VERSION = 1
"""The record format this shrink writes and reads."""

CLASSIFICATION = "classification"
LABELS_FIELD = "labels"  # the label field of an .npz of model inputs, as the `arrays` data source reads it


def record_schema() -> dict[str, Any]:
    """The JSON Schema of a preprocessing record (`shrink schema preprocessing`)."""
    return json.loads(resources.files("shrink").joinpath("schemas/preprocessing.schema.json").read_text())


def record_problems(record: Any, label: str) -> list[Problem]:
    """One problem per way `record` breaks the schema, named by `label` and JSON path."""
    return schema_problems(record, record_schema(), label)


@dataclass(frozen=True)
class LabelledSamples:
    """Labelled data preprocessed for a model: `inputs` by model input name, each sample-major `[N, ...]` (an array,
    or a lazy sequence that supports `len()`, slices and `np.asarray`, so that a large folder streams); `labels`
    `[N]` int64 indices into the record's `labels`; `origin` says what was read ("folder 'x' (40 PNG files)")."""

    inputs: Mapping[str, Any]
    labels: np.ndarray
    origin: str

    def __len__(self) -> int:
        return len(self.labels)


class Preprocessor(Protocol):
    """A record's transform, rebuilt from the record alone by the plugin that knows its kind."""

    def read(self, path: Path) -> LabelledSamples:
        """The labelled samples at `path` (a folder with one subfolder per label, a labelled file), preprocessed as
        the record says. A file that cannot be read, a label the record does not name or a sample the record
        cannot take is a `UsageError` that names the file (exit 2); a conversion the reader makes (a WAV file
        resampled) is said in the origin."""
        ...


def label_indices(values: Sequence[Any], labels: Sequence[str], where: str) -> np.ndarray:
    """`values` as indices into the record's `labels`: a string is a label name, looked up by name (never by
    position); an integer is an index, as the compile's data sources read integer labels."""
    index = {name: i for i, name in enumerate(labels)}
    found = np.empty(len(values), dtype=np.int64)
    for row, value in enumerate(values):
        if isinstance(value, (str, np.str_, bytes, np.bytes_)):
            name = value.decode() if isinstance(value, (bytes, np.bytes_)) else str(value)
            if name not in index:
                raise UsageError(f"label {name!r} is not one of the bundle's labels ({_listed(labels)})", where=where,
                                 hint="the bundle scores the classes it was compiled with, matched by name")
            found[row] = index[name]
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if not 0 <= int(value) < len(labels):
                raise UsageError(f"label index {int(value)} is outside the bundle's {len(labels)} labels ({_listed(labels)})",
                                 where=where)
            found[row] = int(value)
        else:
            raise UsageError(f"label {value!r} is neither a label name nor a class index", where=where)
    return found


def _listed(labels: Sequence[str], most: int = 12) -> str:
    shown = ", ".join(map(repr, labels[:most]))
    return shown + (f", … {len(labels) - most} more" if len(labels) > most else "")


def tensor_record(record: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The record that reads an `.npz` of model inputs for a bundle whose own record is of another kind: each input
    fed by data reads the field named like it (or its declared `field`), labels come from the field `labels`, and
    the task and label names are the bundle's."""
    fed = [spec for spec in inputs if spec.get("range") is None and spec.get("constant") is None] or list(inputs)
    fields = {str(spec["name"]): str(spec.get("field") or spec["name"]) for spec in fed}
    return {"version": RECORD_VERSION, "kind": "arrays", "source": "arrays", "task": record.get("task"),
            "labels": record.get("labels"), "output": record.get("output"), "fields": fields, "label_field": LABELS_FIELD}


def sample_problem(name: str, spec: Mapping[str, Any], sample: np.ndarray) -> str | None:
    """Why one preprocessed sample cannot feed model input `spec`, or None."""
    shape = list(spec.get("shape") or [])
    axis = batch_axis(spec)
    want = shape if axis is None or axis >= len(shape) else shape[:axis] + shape[axis + 1:]
    got = list(sample.shape)
    if len(want) != len(got) or any(isinstance(w, int) and w > 0 and w != g for w, g in zip(want, got)):
        return f"the data gives samples {got} for model input {name!r}, which takes {want} per sample"
    return None
