"""Plan-time comparison of a data source's samples with the model's declared inputs.

A data provider describes one sample of what its `load()` will give (shape after preprocessing, dtype) and
compares it here with `PlanContext.inputs`, by the rules `shrink.api.data.array_feeds` applies at run time:
one array feeds the model's one input fed by data; a mapping feeds each such input its `field`, else the
field named like the input. Every mismatch is one message naming both sides; the planner reports it under
the recipe's `data` path (exit 2), before any model or data is loaded. Imports numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shrink.api.inputs import sample_shape

TEXT = "str"  # the dtype of text samples (strings the model's family tokenizes)


@dataclass(frozen=True)
class SampleSpec:
    """One sample as a data source gives it: its shape (without the sample axis) and numpy dtype name."""

    shape: tuple[int, ...]
    dtype: str

    def describe(self) -> str:
        if self.dtype == TEXT:
            return "text (strings)"
        return f"[{', '.join(map(str, self.shape))}] {self.dtype}"


def fed_by_data(inputs: Sequence[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    """The inputs a data split feeds: those fed neither by a `range` nor by a `constant`."""
    return [spec for spec in inputs or [] if spec.get("range") is None and spec.get("constant") is None]


def data_input(inputs: Sequence[Mapping[str, Any]] | None) -> Mapping[str, Any] | None:
    """The model's one input fed by data (to default a provider's preprocessing from), or None."""
    fed = fed_by_data(inputs)
    return fed[0] if len(fed) == 1 else None


def _pinned(dim: Any) -> bool:
    return isinstance(dim, int) and not isinstance(dim, bool) and dim > 0


def describe_input(spec: Mapping[str, Any]) -> str:
    dims = ", ".join(str(d) if _pinned(d) else "?" for d in sample_shape(spec))
    return (f"model input {spec['name']!r} takes [{dims}] {spec.get('dtype') or 'float32'} per sample "
            f"(shape {list(spec.get('shape') or [])}, batch axis {spec.get('batch_axis', 0)})")


def _mismatch(spec: Mapping[str, Any], sample: SampleSpec) -> bool:
    want = sample_shape(spec)
    if len(want) != len(sample.shape) or any(_pinned(d) and d != got for d, got in zip(want, sample.shape)):
        return True
    # integer data feeds a float input (it is cast); float data never feeds an integer input (token ids, masks)
    return np.dtype(sample.dtype).kind == "f" and np.dtype(spec.get("dtype") or "float32").kind in "iub"


def sample_problems(inputs: Sequence[Mapping[str, Any]] | None, samples: SampleSpec | Mapping[str, SampleSpec],
                    source: str) -> list[str]:
    """Messages for every way `samples` (one array's sample, or fields by name) cannot feed `inputs`; `source`
    says what gives the samples (`"images (rgb, 32x32, NCHW)"`). Nothing to compare (inputs unknown): []."""
    fed = fed_by_data(inputs)
    if not fed:
        return []
    if isinstance(samples, SampleSpec) and samples.dtype == TEXT:
        if all(np.dtype(spec.get("dtype") or "float32").kind == "f" for spec in fed):
            return [f"{source} gives text samples, but every model input fed by data is floating point "
                    f"({'; '.join(describe_input(spec) for spec in fed)}); text feeds a model that takes token ids"]
        return []
    if isinstance(samples, SampleSpec):
        if len(fed) != 1:
            names = ", ".join(repr(spec["name"]) for spec in fed)
            return [f"{source} gives one array per sample ({samples.describe()}), but the model has {len(fed)} inputs "
                    f"fed by data ({names}); give one field per input (an .npz with fields named like the inputs), "
                    "or declare in model.inputs what feeds the others (constant: a zero recurrent state, a sample "
                    "rate)"]
        if _mismatch(fed[0], samples):
            return [f"{source} gives samples {samples.describe()}, but {describe_input(fed[0])}"]
        return []
    problems = []
    for spec in fed:
        key = spec.get("field") or spec["name"]
        if key not in samples:
            problems.append(f"model input {spec['name']!r} is fed by field {key!r}, which {source} does not have "
                            f"(fields: {', '.join(sorted(samples)) or 'none'})")
        elif _mismatch(spec, samples[key]):
            problems.append(f"{source} field {key!r} gives samples {samples[key].describe()}, but {describe_input(spec)}")
    return problems


def data_section_for(inputs: Sequence[Mapping[str, Any]] | None) -> str:
    """An example recipe `data` section that would feed these inputs (for plan-time hints)."""
    fed = fed_by_data(inputs)
    if len(fed) > 1:
        fields = ", ".join(str(spec["name"]) for spec in fed)
        return f'"data": {{"source": "arrays", "path": "samples.npz"}} (an .npz with the fields {fields})'
    if not fed:
        return '"data": {"source": "random", "count": 200} (random calibration: no accuracy can be measured)'
    spec = fed[0]
    dtype, rank = str(spec.get("dtype", "float32")), len(spec.get("shape") or [])
    if not dtype.startswith("float"):
        return '"data": {"source": "textfile", "path": "sentences.txt"} (one sample per line)'
    if rank == 4:
        return '"data": {"source": "images", "path": "calibration-images/"} (a folder of images; class subfolders label them)'
    if rank in (2, 3):
        return ('"data": {"source": "audio", "path": "clips/"} (WAV files) or {"source": "arrays", "path": "samples.npy"}')
    return '"data": {"source": "arrays", "path": "samples.npy"}'
