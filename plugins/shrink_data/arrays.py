"""The `arrays` data source: NumPy `.npz` files (a field per model input, and a label field) or `.npy` files (one
array, memory-mapped).

Samples are rows: every field is `[N, ...]`. One input field gives a split of one array (it feeds the model's one
data-fed input, whatever its name); several give a mapping that feeds each model input its `field`, else the
field named like the input. Labels are integers (class indices) or strings (class names).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from shrink import Dataset, PlanContext, Split, UsageError
from shrink.api.context import Context
from shrink_common.samples import SampleSpec, fed_by_data, sample_problems
from shrink_data.base import SplitProvider
from shrink_data.lazy import Rows
from shrink_data.options import SplitOptions
from shrink_data.splits import size_problems, split_orders

DEFAULT_LABELS = "labels"


class ArraysOptions(SplitOptions):
    """Options of the `arrays` data source."""

    fields: list[str] | SkipJsonSchema[None] = Field(
        None, min_length=1, description="the .npz fields that feed the model (default: every field but the labels)")
    label_field: str | SkipJsonSchema[None] = Field(
        None, min_length=1, description=f"the .npz field of labels, one per sample: class indices or names (default: "
                                        f"{DEFAULT_LABELS!r} when the file has it; else unlabelled)")
    classes: list[str] | SkipJsonSchema[None] = Field(
        None, min_length=1, description="label names in label order (string labels are looked up here); default: "
                                        "the sorted names, or '0'..'K-1' for class indices")


@dataclass(frozen=True)
class ArrayFile:
    """What one `.npz`/`.npy` file holds, from its headers: input fields (None: a `.npy`'s one array), the label
    field, each field's sample shape and dtype, and the number of samples."""

    path: Path
    inputs: tuple[str | None, ...]
    label: str | None
    samples: dict[str | None, SampleSpec]
    count: int

    def read(self, field: str | None) -> np.ndarray:
        """One field's array (a `.npy` memory-mapped)."""
        if field is None:
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        with np.load(self.path, allow_pickle=False) as npz:
            return npz[field]


def _header(stream: Any) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(stream)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _fortran, dtype = reader(stream)
    return tuple(shape), dtype


def headers(path: Path) -> dict[str | None, tuple[tuple[int, ...], np.dtype]]:
    """Every array's shape and dtype, read from the file's headers (no data): `{None: ...}` for a `.npy`."""
    if path.suffix.lower() == ".npy":
        with path.open("rb") as stream:
            return {None: _header(stream)}
    found: dict[str | None, tuple[tuple[int, ...], np.dtype]] = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if member.endswith(".npy"):
                with archive.open(member) as stream:
                    found[member[:-len(".npy")]] = _header(stream)
    return found


def inspect(path: Path, opts: ArraysOptions, key: str) -> tuple[ArrayFile | None, list[str]]:
    """The file at recipe option `key`, from its headers; or None and one message per problem."""
    where = f"{key}: {str(path)!r}"
    if not path.is_file():
        return None, [f"{key}: no such file {str(path)!r}"]
    if path.suffix.lower() not in (".npz", ".npy"):
        return None, [f"{where} is not an .npz or .npy file"]
    try:
        arrays = headers(path)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        return None, [f"{where}: cannot read it: {type(exc).__name__}: {exc}"]
    npy = None in arrays
    if npy and (opts.fields is not None or opts.label_field is not None):
        return None, [f"{where} holds one array; 'fields' and 'label_field' need an .npz"]
    label = opts.label_field or (DEFAULT_LABELS if DEFAULT_LABELS in arrays else None)
    if label is not None and label not in arrays:
        return None, [f"{where} has no label field {label!r} (fields: {', '.join(sorted(map(str, arrays)))})"]
    inputs: list[str | None] = [None] if npy else list(opts.fields or sorted(k for k in arrays if k is not None and k != label))
    problems = [f"{where} has no field {name!r} (fields: {', '.join(sorted(map(str, arrays)))})"
                for name in inputs if name not in arrays]
    if not inputs:
        problems.append(f"{where} has no field besides the labels {label!r}")
    if problems:
        return None, problems
    named = [*inputs, *([label] if label is not None else [])]
    for name in named:
        shape, dtype = arrays[name]
        what = f"field {name!r}" if name is not None else "its array"
        if dtype.hasobject:
            problems.append(f"{where}: {what} holds Python objects; save numbers or strings (np.str_) instead")
        elif not shape:
            problems.append(f"{where}: {what} is a scalar; samples are rows [N, ...]")
    if problems:
        return None, problems
    if label is not None and len(arrays[label][0]) != 1:
        problems.append(f"{where}: labels {label!r} have shape {list(arrays[label][0])}; give one label per sample [N]")
    if label is not None and arrays[label][1].kind not in "iuUS":
        problems.append(f"{where}: labels {label!r} are {arrays[label][1]}; give class indices (integers) or names")
    counts = {str(name): arrays[name][0][0] for name in named}
    if len(set(counts.values())) > 1:
        problems.append(f"{where}: fields have different numbers of samples: "
                        + ", ".join(f"{name} {count}" for name, count in counts.items()))
    if problems:
        return None, problems
    samples = {name: SampleSpec(arrays[name][0][1:], str(arrays[name][1])) for name in inputs}
    return ArrayFile(path, tuple(inputs), label, samples, next(iter(counts.values()))), []


def label_indices(raw: np.ndarray, classes: list[str], where: str) -> np.ndarray:
    """Labels as class indices into `classes`."""
    if raw.dtype.kind in "US":
        index = {name: i for i, name in enumerate(classes)}
        names = raw.astype(str)
        unknown = sorted(set(names) - set(index))
        if unknown:
            raise UsageError(f"{where}: labels not in 'classes': {', '.join(map(repr, unknown[:5]))}")
        return np.asarray([index[name] for name in names], dtype=np.int64)
    labels = np.asarray(raw, dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise UsageError(f"{where}: class indices must be in [0, {len(classes)}) ('classes' has {len(classes)}); "
                         f"found {labels.min()}..{labels.max()}")
    return labels


class Arrays(SplitProvider[ArraysOptions]):
    """NumPy arrays: an .npz with a field per model input and a label field, or an .npy of one input's samples."""

    name = "arrays"
    libraries = ("numpy", "scikit-learn")

    @classmethod
    def claims(cls, path: str) -> dict[str, Any] | None:
        """An `.npz` or `.npy` file."""
        return {"path": path} if path.lower().endswith((".npz", ".npy")) and Path(path).is_file() else None

    def _files(self, path: Callable[[str], Path]) -> tuple[dict[str, ArrayFile], list[str]]:
        files, problems = {}, []
        for key, value in self.options.declared().items():
            found, more = inspect(path(value), self.options, "path" if key == "all" else key)
            problems += more
            if found is not None:
                files[key] = found
        return files, problems

    def labelled(self, path: Callable[[str], Path]) -> bool:
        files = self._files(path)[0]
        used = [files[k] for k in ("all", "train", "eval") if k in files] or list(files.values())
        return all(f.label is not None for f in used)

    def problems(self, plan: PlanContext) -> list[str]:
        files, problems = self._files(plan.path)
        for found in files.values():
            samples: SampleSpec | Mapping[str, SampleSpec] = (found.samples[found.inputs[0]] if len(found.inputs) == 1
                                                              else {str(k): v for k, v in found.samples.items()})
            problems += sample_problems(plan.inputs, samples, f"data source 'arrays' ({found.path.name})")
        if "all" in files:
            found = files["all"]
            labels, classes = None, []
            if found.label is not None:
                raw = found.read(found.label)
                classes = self.options.classes or _classes({"all": raw})
                try:
                    labels = label_indices(raw, classes, f"path: {str(found.path)!r}").tolist()
                except UsageError as exc:
                    return problems + [exc.problems[0].message]
            problems += size_problems(found.count, labels, classes, self.options, f"path: {str(found.path)!r}")
        return problems

    def preprocessing(self, ctx: Context, inputs: list[dict[str, Any]]) -> dict[str, Any] | None:
        """An `arrays` record: the field that feeds each model input, the label field and the class names."""
        from shrink_data.records import arrays_record

        files, problems = self._files(ctx.path)
        fed = fed_by_data(inputs)
        if problems or not files or not fed:
            return None
        first = next(iter(files.values()))
        if len(first.inputs) == 1:  # one field feeds the one input fed by data, whatever its name
            if len(fed) != 1:
                return None
            fields = {str(fed[0]["name"]): first.inputs[0] or str(fed[0]["name"])}
        else:
            fields = {str(spec["name"]): str(spec.get("field") or spec["name"]) for spec in fed}
        labelled = self.labelled(ctx.path)
        labels = None
        if labelled:
            raw = {key: found.read(found.label) for key, found in files.items() if found.label is not None}
            labels = self.options.classes or _classes(raw)
        return arrays_record(self.name, fields, first.label if labelled else None, labels)

    def load(self, ctx: Context) -> Dataset:
        files, problems = self._files(ctx.path)
        if problems:
            raise UsageError(problems[0], where=f"{ctx.recipe.label}: data")
        opts = self.options
        raw_labels = {key: found.read(found.label) for key, found in files.items() if found.label is not None}
        classes = opts.classes or _classes(raw_labels)
        labels: dict[str, np.ndarray | None] = {key: None for key in files}
        for key, raw in raw_labels.items():
            labels[key] = label_indices(raw, classes, f"{ctx.recipe.label}: data.{'path' if key == 'all' else key}")
        arrays = {key: {name: found.read(name) for name in found.inputs} for key, found in files.items()}
        orders = split_orders({key: found.count for key, found in files.items()}, labels, opts)
        splits = {}
        for name, (key, order) in orders.items():
            fields = arrays[key]
            inputs: Any = (Rows(next(iter(fields.values())), order) if len(fields) == 1
                           else {field: Rows(array, order) for field, array in fields.items()})
            split_labels = None if labels[key] is None else labels[key][order]
            if split_labels is not None:
                split_labels.setflags(write=False)
            splits[name] = Split(inputs, split_labels)
        labelled = self.labelled(ctx.path)
        first = next(iter(files.values()))
        meta = {"classes": classes if labelled else [], "fields": [f for f in first.inputs if f is not None],
                "files": {key: str(found.path) for key, found in files.items()},
                "sizes": {name: len(split) for name, split in splits.items()}}
        return Dataset(self.name, "classification" if labelled else "arrays", splits, str(self.fingerprint(ctx)), meta)


def _classes(raw: Mapping[str, np.ndarray]) -> list[str]:
    """Default label names: the sorted names of string labels, else '0'..'K-1' for class indices."""
    if not raw:
        return []
    if all(array.dtype.kind in "US" for array in raw.values()):
        return sorted({str(name) for array in raw.values() for name in array.astype(str)})
    top = max((int(np.max(array)) for array in raw.values() if len(array) and array.dtype.kind in "iu"), default=-1)
    return [str(i) for i in range(top + 1)]
