"""Input shapes and tensor types: `--shape` parsing, pinning the inputs, types read off a graph, and
ONNX shape inference (strict, then non-strict). `scopes` runs them per graph and subgraph.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import onnx
from onnx import GraphProto, ModelProto, TensorProto

from shrink.analysis.dtypes import _nbytes
from shrink.analysis.model import AnalysisError, _constant_tensor, _first_line, _numel

# input shapes ---------------------------------------------------------------------------------------

def parse_shape(text: str) -> tuple[str, list[int]]:
    """Parse `name=1x3x224x224` (or `name=1,3,224,224`) into `("name", [1, 3, 224, 224])`."""
    name, sep, dims = text.rpartition("=")
    if not sep or not name.strip():
        raise AnalysisError(f"bad --shape '{text}': expected NAME=DIMS such as input=1x3x224x224")
    parts = re.split(r"[x,]", dims.strip())
    if not all(re.fullmatch(r"\d+", p.strip()) for p in parts):
        raise AnalysisError(f"bad --shape '{text}': dims must be positive integers separated by 'x', "
                            "such as input=1x3x224x224")
    values = [int(p) for p in parts]
    if any(v <= 0 for v in values):
        raise AnalysisError(f"bad --shape '{text}': every dim must be a positive integer")
    return name.strip(), values


def _runtime_inputs(graph: GraphProto) -> list[onnx.ValueInfoProto]:
    weights = {t.name for t in graph.initializer} | {t.values.name for t in graph.sparse_initializer}
    return [v for v in graph.input if v.name not in weights]


def _pin_inputs(model: ModelProto, shapes: Mapping[str, list[int]], label: str) -> ModelProto:
    """A copy of `model` whose runtime inputs all have concrete shapes (stale inferred shapes dropped)."""
    inputs = _runtime_inputs(model.graph)
    unknown = sorted(set(shapes) - {v.name for v in inputs})
    if unknown:
        known = ", ".join(f"'{v.name}'" for v in inputs) or "none"
        raise AnalysisError(f"--shape names '{unknown[0]}', which is not an input of the model (inputs: {known})",
                            where=label)
    loose = [v for v in inputs if v.name not in shapes and v.type.HasField("tensor_type")
             and v.type.tensor_type.HasField("shape") and not all(_fixed(d) for d in v.type.tensor_type.shape.dim)]
    if len(loose) > 1:  # every input that needs a --shape in one message, not one per attempt
        first = loose[0]
        i, dim = next((i, d) for i, d in enumerate(first.type.tensor_type.shape.dim) if not _fixed(d))
        symbol = f" ('{dim.dim_param}')" if dim.dim_param else ""
        examples = " ".join(f"--shape {v.name}={_shape_example(list(v.type.tensor_type.shape.dim))}" for v in loose)
        raise AnalysisError(f"input '{first.name}' dim {i}{symbol} is not fixed, nor are dims of "
                            f"{', '.join(repr(v.name) for v in loose[1:])}: pass {examples}", where=label)
    pinned = ModelProto()
    pinned.CopyFrom(model)
    changed = False
    for value in _runtime_inputs(pinned.graph):
        if not value.type.HasField("tensor_type"):
            raise AnalysisError(f"input '{value.name}' is not a tensor; only tensor inputs are supported",
                                where=label)
        changed |= _pin_input(value, shapes.get(value.name), label)
    if changed:
        del pinned.graph.value_info[:]
        for out in pinned.graph.output:
            if out.type.HasField("tensor_type"):
                out.type.tensor_type.ClearField("shape")
    return pinned


def _pin_input(value: onnx.ValueInfoProto, wanted: list[int] | None, label: str) -> bool:
    tensor_type = value.type.tensor_type
    has_shape = tensor_type.HasField("shape")
    dims = list(tensor_type.shape.dim)
    if wanted is None:
        if not has_shape:
            raise AnalysisError(f"input '{value.name}' has no shape: pass --shape {value.name}=1x...", where=label)
        for i, dim in enumerate(dims):
            if not _fixed(dim):
                symbol = f" ('{dim.dim_param}')" if dim.dim_param else ""
                raise AnalysisError(f"input '{value.name}' dim {i}{symbol} is not fixed: pass --shape "
                                    f"{value.name}={_shape_example(dims)}", where=label)
        return False
    if has_shape and len(dims) != len(wanted):
        raise AnalysisError(f"--shape {value.name} has {len(wanted)} dims but the input has rank {len(dims)}",
                            where=label)
    for i, (dim, size) in enumerate(zip(dims, wanted)):
        if _fixed(dim) and dim.dim_value != size:
            raise AnalysisError(f"--shape {value.name} sets dim {i} to {size} but the model fixes it at "
                                f"{dim.dim_value}", where=label)
    changed = not has_shape or any(not _fixed(d) for d in dims)
    tensor_type.shape.ClearField("dim")
    for size in wanted:
        tensor_type.shape.dim.add().dim_value = size
    return changed


def _fixed(dim: Any) -> bool:
    """A dim the file fixes: a positive value (exporters write -1 or 0 for "unknown")."""
    return dim.HasField("dim_value") and dim.dim_value > 0


def _shape_example(dims: list[Any]) -> str:
    return "x".join(str(d.dim_value) if _fixed(d) else f"<{d.dim_param or '?'}>" for d in dims)


# tensor types ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Type:
    elem: int
    shape: tuple[int, ...] | None


class _Uncounted(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _UnknownShape(_Uncounted):
    def __init__(self, name: str) -> None:
        super().__init__(f"shape of '{name}' unknown")
        self.name = name


_Types = Mapping[str, _Type]


def _value_type(value: onnx.ValueInfoProto) -> _Type | None:
    if not value.type.HasField("tensor_type"):
        return None
    tensor_type = value.type.tensor_type
    shape: tuple[int, ...] | None = None
    if tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in tensor_type.shape.dim):
        shape = tuple(int(d.dim_value) for d in tensor_type.shape.dim)
    return _Type(tensor_type.elem_type, shape)


def _graph_types(graph: GraphProto) -> dict[str, _Type]:
    types: dict[str, _Type] = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        found = _value_type(value)
        if found is not None and (value.name not in types or types[value.name].shape is None):
            types[value.name] = found
    for tensor in graph.initializer:
        types[tensor.name] = _Type(tensor.data_type, tuple(int(d) for d in tensor.dims))
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            const = _constant_tensor(node)
            if const is not None:
                types[node.output[0]] = _Type(const.data_type, tuple(int(d) for d in const.dims))
    return types


def _infer(model: ModelProto) -> tuple[ModelProto, str | None]:
    """Shape inference (strict); on failure, a non-strict result and the strict error for later."""
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True), None
    except Exception as exc:  # noqa: BLE001 - onnx raises InferenceError, ValidationError, RuntimeError
        error = _first_line(exc)
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True), error
    except Exception:  # noqa: BLE001
        return model, error


def _known(found: _Type | None) -> bool:
    return found is not None and found.shape is not None and found.elem != TensorProto.UNDEFINED


def _shape(types: _Types, name: str) -> tuple[int, ...]:
    found = types.get(name)
    if found is None or found.shape is None:
        raise _UnknownShape(name)
    return found.shape


def _tensor_bytes(types: _Types, name: str) -> int:
    found = types.get(name)
    if found is None or found.shape is None or found.elem == TensorProto.UNDEFINED:
        raise _UnknownShape(name)
    return _nbytes(found.elem, _numel(found.shape))
