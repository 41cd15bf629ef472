"""Model inputs declared per input, by name: shape, dtype, which axis is the batch axis (or none), and what
feeds it (a data field, a value range, or a constant).

In a recipe, `model.inputs` is a list of `InputSpec`s; sources complete them from what they know (an ONNX
file declares names, dtypes and some dims; a torch factory declares nothing). On an artifact, `meta["inputs"]`
holds one dict per input in the model's input order: `{name, shape, dtype, batch_axis, field | range | constant}`,
every dim pinned (the batch axis at the batch size the analysis assumes, 1). No code assumes one input or
that dimension 0 is the batch axis.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from shrink.api.limits import MAX_INPUT_ELEMENTS
from shrink.api.options import PassOptions

DType = Literal["float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"]
NAME_PATTERN = r"^[^\s=,]+$"


class InputSpec(PassOptions):
    """One model input. Sources fill in what the recipe leaves out (an ONNX file knows its dtypes)."""

    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN, description="the model input's name")
    shape: Annotated[list[Annotated[int, Field(ge=1)]], Field(max_length=8)] | None = Field(
        None, description="every dimension pinned, the batch axis at the batch size the analysis assumes (1); "
                          "pins an ONNX file's symbolic or -1 dims")
    dtype: DType | None = Field(None, description="element type (default: the model's, else float32)")
    batch_axis: Annotated[int, Field(ge=0, le=7)] | None = Field(
        0, description="which dimension is the batch (null: the input has none, e.g. a sample rate or a state "
                       "shared by the batch)")
    field: str | None = Field(None, min_length=1, description="the data field that feeds this input (default: the "
                                                              "field named like the input, or the data's only array)")
    range: tuple[float, float] | None = Field(None, description="feed random values in [low, high) (token ids, masks)")
    constant: float | None = Field(None, description="feed this constant (a sample rate, a zero recurrent state)")
    description: str | None = Field(None, description="a note for people reading the recipe; shrink ignores it")

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        given = [k for k in ("field", "range", "constant") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of field, range and constant (not {' and '.join(given)})")
        if self.range is not None and not self.range[0] < self.range[1]:
            raise ValueError(f"range {list(self.range)}: low must be below high")
        if self.shape is not None:
            if self.batch_axis is not None and self.batch_axis >= len(self.shape):
                raise ValueError(f"batch_axis {self.batch_axis} is outside the {len(self.shape)}-dimensional shape")
            if math.prod(self.shape) > MAX_INPUT_ELEMENTS:
                raise ValueError(f"shape {self.shape} has {math.prod(self.shape):.3g} elements; one input may have at "
                                 f"most 2**28")
        return self


def as_meta(spec: InputSpec) -> dict[str, Any]:
    """The artifact-meta form of a complete spec (unset feeds left out)."""
    meta: dict[str, Any] = {"name": spec.name, "shape": list(spec.shape or []), "dtype": spec.dtype or "float32",
                            "batch_axis": spec.batch_axis}
    for key in ("field", "range", "constant"):
        value = getattr(spec, key)
        if value is not None:
            meta[key] = list(value) if key == "range" else value
    return meta


def batch_axis(spec: Mapping[str, Any]) -> int | None:
    """An input's batch axis (0 when the spec predates per-input declarations)."""
    return spec.get("batch_axis", 0)


def sample_shape(spec: Mapping[str, Any]) -> list[Any]:
    """The shape of one sample of an input: its shape without the batch axis (all of it when it has none)."""
    shape = list(spec.get("shape") or [])
    axis = batch_axis(spec)
    return shape if axis is None or axis >= len(shape) else shape[:axis] + shape[axis + 1:]


def is_pinned(spec: Mapping[str, Any]) -> bool:
    shape = spec.get("shape")
    return isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)


def unpinned(specs: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """`(name, "[batch, 3, ?, ?]")` for each input with a dim that is not pinned."""
    return [(str(spec["name"]), "[" + ", ".join(str(d) if isinstance(d, int) and d > 0 else str(d or "?")
                                                 for d in spec.get("shape") or []) + "]")
            for spec in specs if not is_pinned(spec)]


def merge(declared: Sequence[Mapping[str, Any]], overrides: Iterable[InputSpec]) -> list[dict[str, Any]]:
    """`declared` inputs (a model's own, in order) with each override's set fields applied by name; an override
    naming no declared input is a `ValueError`."""
    by_name = {spec["name"]: dict(spec) for spec in declared}
    for override in overrides:
        if override.name not in by_name:
            raise ValueError(f"the model has no input {override.name!r} (its inputs: {', '.join(by_name) or 'none'})")
        current = by_name[override.name]
        for key in override.model_fields_set - {"name"}:
            value = getattr(override, key)
            current[key] = list(value) if isinstance(value, tuple) else value
        if override.model_fields_set & {"field", "range", "constant"}:
            for key in {"field", "range", "constant"} - override.model_fields_set:
                current.pop(key, None)
    return [by_name[spec["name"]] for spec in declared]
