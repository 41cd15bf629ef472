"""The `textfile` data source: sentences from a text file (one per line), a CSV/TSV file or a JSONL file, with
an optional label column for classifiers.

Samples are strings; the model's family tokenizes them with the model's own tokenizer (the Hugging Face
family does). Labels are class indices (integers, or strings of integers as CSV writes them) or class names.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from shrink import Dataset, PlanContext, Split, UsageError
from shrink.api.context import Context
from shrink_common.samples import TEXT, SampleSpec, sample_problems
from shrink_data.base import SplitProvider
from shrink_data.options import SplitOptions
from shrink_data.splits import size_problems, split_orders

DEFAULT_LABEL = "label"
FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class TextFileOptions(SplitOptions):
    """Options of the `textfile` data source."""

    format: Literal["lines", "csv", "jsonl"] | SkipJsonSchema[None] = Field(
        None, description="'lines': one sample per line; 'csv' (with a header row) or 'jsonl' (one object per line): "
                          "a text column and an optional label column; default: from the suffix (.csv/.tsv, .jsonl/"
                          ".ndjson; else lines)")
    text_column: str = Field("text", min_length=1, description="csv/jsonl: the column holding the text")
    label_column: str | SkipJsonSchema[None] = Field(
        None, min_length=1, description=f"csv/jsonl: the column holding labels (default: {DEFAULT_LABEL!r} when present; "
                                        "else unlabelled)")
    classes: list[str] | SkipJsonSchema[None] = Field(
        None, min_length=1, description="label names in label order (name labels are looked up here); default: the "
                                        "sorted names, or '0'..'K-1' for class indices")
    delimiter: str | SkipJsonSchema[None] = Field(None, min_length=1, max_length=1,
                                                  description="csv: the field delimiter (default: tab for .tsv, else ',')")
    encoding: str = Field("utf-8", min_length=1, description="the files' text encoding")


@dataclass(frozen=True)
class TextSamples:
    """The samples of one file: texts and raw labels (None: unlabelled)."""

    path: Path
    texts: list[str]
    labels: list[str | int] | None


def read(path: Path, opts: TextFileOptions, key: str) -> tuple[TextSamples | None, list[str]]:
    """The samples of the file at recipe option `key`; or None and why not (one message, naming the file)."""
    where = f"{key}: {str(path)!r}"
    if not path.is_file():
        return None, [f"{key}: no such file {str(path)!r}"]
    fmt = opts.format or FORMATS.get(path.suffix.lower(), "lines")
    if fmt == "lines" and opts.label_column is not None:
        return None, [f"{where} is read as lines, which have no label column; use csv or jsonl"]
    try:
        content = path.read_text(encoding=opts.encoding)
    except (OSError, UnicodeDecodeError, LookupError) as exc:
        return None, [f"{where}: cannot read it: {type(exc).__name__}: {exc}"]
    if fmt == "lines":
        found = TextSamples(path, [line.strip() for line in content.splitlines() if line.strip()], None)
    else:
        rows, problem = _rows(content, fmt, opts, path)
        if problem:
            return None, [f"{where}: {problem}"]
        columns = set(rows[0]) if rows else set()
        if rows and opts.text_column not in columns:
            return None, [f"{where} has no text column {opts.text_column!r} (columns: {', '.join(sorted(columns))})"]
        label = opts.label_column or (DEFAULT_LABEL if DEFAULT_LABEL in columns else None)
        if rows and label is not None and label not in columns:
            return None, [f"{where} has no label column {label!r} (columns: {', '.join(sorted(columns))})"]
        for number, row in enumerate(rows, start=1):
            missing = [c for c in (opts.text_column, label) if c is not None and (c not in row or row[c] is None)]
            if missing or not isinstance(row[opts.text_column], str):
                what = f"has no {missing[0]!r}" if missing else f"has a {type(row[opts.text_column]).__name__} as text"
                return None, [f"{where}: record {number} {what}"]
        labels = [row[label] for row in rows] if label is not None else None
        found = TextSamples(path, [row[opts.text_column] for row in rows], labels)
    if not found.texts:
        return None, [f"{where} has no samples"]
    return found, []


def _rows(content: str, fmt: str, opts: TextFileOptions, path: Path) -> tuple[list[dict], str | None]:
    if fmt == "csv":
        delimiter = opts.delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
        try:
            return list(csv.DictReader(content.splitlines(), delimiter=delimiter)), None
        except csv.Error as exc:
            return [], f"not valid CSV: {exc}"
    rows = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            return [], f"line {number} is not JSON: {exc.msg}"
        if not isinstance(row, dict):
            return [], f"line {number} is not a JSON object"
        rows.append(row)
    return rows, None


def _is_index(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.strip().isdigit())


def classes_of(files: list[TextSamples]) -> list[str]:
    """Default label names: '0'..'K-1' for class indices, else the sorted names."""
    values = [v for f in files for v in f.labels or []]
    if values and all(_is_index(v) for v in values):
        return [str(i) for i in range(max(int(v) for v in values) + 1)]
    return sorted({str(v) for v in values})


def indices(raw: list[str | int], classes: list[str], where: str) -> np.ndarray:
    """Labels as class indices: integers as they are, names looked up in `classes`."""
    if all(_is_index(v) for v in raw):
        labels = np.asarray([int(v) for v in raw], dtype=np.int64)
        if len(labels) and labels.max() >= len(classes):
            raise UsageError(f"{where}: class index {labels.max()} is outside 'classes' ({len(classes)} names)")
        return labels
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({str(v) for v in raw} - set(index))
    if unknown:
        raise UsageError(f"{where}: labels not in 'classes': {', '.join(map(repr, unknown[:5]))}")
    return np.asarray([index[str(v)] for v in raw], dtype=np.int64)


class TextFiles(SplitProvider[TextFileOptions]):
    """Text from files: one sample per line, or a CSV/JSONL text column with an optional label column."""

    name = "textfile"
    libraries = ("scikit-learn",)

    @classmethod
    def claims(cls, path: str) -> dict[str, Any] | None:
        """A text file: lines (`.txt`), CSV/TSV or JSONL."""
        return {"path": path} if path.lower().endswith((".txt", *FORMATS)) and Path(path).is_file() else None

    def __init__(self, options: TextFileOptions) -> None:
        super().__init__(options)
        self._read: dict[tuple[str, Path], tuple[TextSamples | None, list[str]]] = {}  # for the plan's repeated questions

    def _files(self, path: Callable[[str], Path], fresh: bool = False) -> tuple[dict[str, TextSamples], list[str]]:
        """The declared files' samples (read once per plan; `fresh` reads them again)."""
        if fresh:
            self._read.clear()
        files, problems = {}, []
        for key, value in self.options.declared().items():
            where = "path" if key == "all" else key
            if (where, path(value)) not in self._read:
                self._read[where, path(value)] = read(path(value), self.options, where)
            found, more = self._read[where, path(value)]
            problems += more
            if found is not None:
                files[key] = found
        return files, problems

    def labelled(self, path: Callable[[str], Path]) -> bool:
        files = self._files(path)[0]
        used = [files[k] for k in ("all", "train", "eval") if k in files] or list(files.values())
        return all(f.labels is not None for f in used)

    def problems(self, plan: PlanContext) -> list[str]:
        files, problems = self._files(plan.path)
        problems += sample_problems(plan.inputs, SampleSpec((), TEXT), "data source 'textfile'")
        if "all" in files:
            found = files["all"]
            classes = self.options.classes or classes_of([found])
            where = f"path: {str(found.path)!r}"
            try:
                labels = None if found.labels is None else indices(found.labels, classes, where).tolist()
            except UsageError as exc:
                return problems + [exc.problems[0].message]
            problems += size_problems(len(found.texts), labels, classes, self.options, where)
        return problems

    def preprocessing(self, ctx: Context, inputs: list[dict[str, Any]]) -> dict[str, Any] | None:
        """A `text` record: the text and label columns and the class names (the model's family adds its tokenizer)."""
        from shrink_data.records import text_record

        files, problems = self._files(ctx.path)
        if problems or not files:
            return None
        labelled = self.labelled(ctx.path)
        labels = (self.options.classes or classes_of(list(files.values()))) if labelled else None
        return text_record(self.name, self.options.text_column,
                           (self.options.label_column or DEFAULT_LABEL) if labelled else None, labels)

    def load(self, ctx: Context) -> Dataset:
        files, problems = self._files(ctx.path, fresh=True)
        if problems:
            raise UsageError(problems[0], where=f"{ctx.recipe.label}: data")
        classes = self.options.classes or classes_of(list(files.values()))
        labels = {key: None if found.labels is None else
                  indices(found.labels, classes, f"data.{'path' if key == 'all' else key}: {str(found.path)!r}")
                  for key, found in files.items()}
        orders = split_orders({key: len(found.texts) for key, found in files.items()}, labels, self.options)
        splits = {}
        for name, (key, order) in orders.items():
            texts = files[key].texts
            split_labels = None if labels[key] is None else labels[key][order]
            if split_labels is not None:
                split_labels.setflags(write=False)
            splits[name] = Split([texts[i] for i in order], split_labels)
        labelled = self.labelled(ctx.path)
        meta = {"classes": classes if labelled else [], "files": {key: str(f.path) for key, f in files.items()},
                "sizes": {name: len(split) for name, split in splits.items()}}
        return Dataset(self.name, "classification" if labelled else "text", splits, str(self.fingerprint(ctx)), meta)
