"""Static analysis of any ONNX model: weights, MACs, peak activation memory, arena plan and op inventory.

Torch-free: imports onnx, numpy and the standard library; onnxruntime is imported only when shape
inference leaves a tensor's shape unknown (fused `com.microsoft` ops, data-dependent shapes), to run the
model once on zero inputs and read the shapes off.

Conventions (see `../shared/reference/targets.md`, "Counting"):

* MACs are multiply-accumulates (FLOPs = 2 x MACs) of Conv, ConvTranspose, Gemm, MatMul, Einsum,
  RNN/GRU/LSTM, Attention and their quantized and `com.microsoft` fused forms; other ops count 0.
* Weights are the stored tensors (initializers, including those of subgraphs, and `Constant` nodes),
  counted by their stored dtype. Tensors computed from weights alone (a DequantizeLinear of an int8
  initializer, a Transpose of a weight) are not activations and add no parameters.
* Peak activation memory is the liveness lower bound over the main graph in topological order; view ops
  alias their input. `arena_bytes` is a greedy-by-size offset plan of the same tensors (TFLite Micro
  style, no alignment). Activations inside If/Loop/Scan bodies are not included (see `notes`).
"""

from __future__ import annotations

import heapq
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, numpy_helper

from shrink.errors import UsageError

__all__ = ["Analysis", "AnalysisError", "LiveTensor", "OpUse", "analyze", "load_model", "parse_shape"]

_VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
_RANDOM_OPS = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                         "Multinomial", "Bernoulli"})
_SUBBYTE_BITS = {TensorProto.INT4: 4, TensorProto.UINT4: 4, TensorProto.FLOAT4E2M1: 4,
                 TensorProto.INT2: 2, TensorProto.UINT2: 2,
                 TensorProto.FLOAT6E2M3: 6, TensorProto.FLOAT6E3M2: 6}
_DTYPE_RENAMES = {"FLOAT": "float32", "DOUBLE": "float64"}
_MAX_TRIP_COUNT = 2**31


class AnalysisError(UsageError):
    """The model cannot be analysed: a bad file, a broken graph or an unpinned input shape (exit 2)."""


@dataclass(frozen=True)
class LiveTensor:
    """An activation tensor live at the peak step."""

    name: str
    bytes: int


@dataclass(frozen=True)
class OpUse:
    """The nodes of one (domain, op_type, opset, input dtypes) combination."""

    domain: str
    op_type: str
    opset: int
    dtypes: tuple[str, ...]
    count: int
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Analysis:
    """What `analyze` found. Bytes are exact for the pinned input shapes; MACs exclude elementwise ops.

    `peak_activation_bytes` is the liveness lower bound and `arena_bytes` (>= it) a greedy-by-size
    offset plan; neither includes weights, runtime overhead or subgraph activations. `nodes` and
    `ops` include the nodes inside If/Loop/Scan bodies. `notes` lists what could not be counted exactly.
    """

    params: int
    weight_bytes: int
    weights_by_dtype: dict[str, dict[str, int]]
    macs: int
    macs_by_op: dict[str, int]
    peak_activation_bytes: int
    arena_bytes: int
    peak_node: str
    peak_live: tuple[LiveTensor, ...]
    input_bytes: int
    output_bytes: int
    ops: tuple[OpUse, ...]
    opsets: dict[str, int]
    nodes: int
    subgraphs: tuple[str, ...]
    notes: tuple[str, ...] = ()
    qdq_ops: tuple[OpUse, ...] = ()  # `ops` as an integer runtime's converter sees them: DequantizeLinear inputs folded


    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists for tuples, plain ints and strings)."""
        return {
            "params": self.params,
            "weight_bytes": self.weight_bytes,
            "weights_by_dtype": {k: dict(v) for k, v in self.weights_by_dtype.items()},
            "macs": self.macs,
            "macs_by_op": dict(self.macs_by_op),
            "peak_activation_bytes": self.peak_activation_bytes,
            "arena_bytes": self.arena_bytes,
            "peak_node": self.peak_node,
            "peak_live": [{"name": t.name, "bytes": t.bytes} for t in self.peak_live],
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "ops": [{"domain": o.domain, "op_type": o.op_type, "opset": o.opset, "dtypes": list(o.dtypes),
                     "count": o.count, "nodes": list(o.nodes)} for o in self.ops],
            "opsets": dict(self.opsets),
            "nodes": self.nodes,
            "subgraphs": list(self.subgraphs),
            "notes": list(self.notes),
        }


# dtypes ---------------------------------------------------------------------------------------------

def dtype_name(elem_type: int) -> str:
    """numpy-style name of an ONNX element type: `float32`, `int8`, `bool`, `bfloat16`, ..."""
    raw = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else "UNDEFINED"
    return _DTYPE_RENAMES.get(raw, raw.lower())


def _itemsize_bits(elem_type: int) -> int:
    if elem_type in _SUBBYTE_BITS:
        return _SUBBYTE_BITS[elem_type]
    if elem_type == TensorProto.STRING:
        return 64
    return 8 * onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize


def _nbytes(elem_type: int, count: int) -> int:
    return (count * _itemsize_bits(elem_type) + 7) // 8


# loading and structure ----------------------------------------------------------------------------

def load_model(path: str | Path) -> ModelProto:
    """Load an ONNX file and check its structure; any problem is an `AnalysisError` naming the file.

    External data is checked (present, large enough) but not read.
    """
    label = str(path)
    path = Path(path)
    if not path.exists():
        raise AnalysisError("no such file", where=label)
    if path.is_dir():
        raise AnalysisError("is a directory, not an ONNX file", where=label)
    data = path.read_bytes()
    if not data:
        raise AnalysisError("file is empty", where=label)
    model = ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise AnalysisError(f"not an ONNX model or truncated ({_first_line(exc) or 'protobuf parse failed'})",
                            where=label) from None
    _check_envelope(model, label)
    _check_external_data(model, path.parent, label)
    check_structure(model, label)
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _check_envelope(model: ModelProto, label: str) -> None:
    if model.ir_version <= 0 or not model.HasField("graph") or not model.opset_import:
        raise AnalysisError("not an ONNX model or truncated (no ir_version, graph or opset import)", where=label)
    if model.ir_version > onnx.IR_VERSION:
        raise AnalysisError(f"IR version {model.ir_version} is newer than the installed onnx supports ({onnx.IR_VERSION})",
                            where=label)
    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and not 1 <= opset.version <= newest:
            raise AnalysisError(f"imports ai.onnx opset {opset.version}, which does not exist (known: 1 to {newest})",
                                where=label)


def _external_location(tensor: TensorProto) -> tuple[str, int, int | None]:
    info = {e.key: e.value for e in tensor.external_data}
    length = int(info["length"]) if "length" in info else None
    return info.get("location", ""), int(info.get("offset", "0")), length


def _check_external_data(model: ModelProto, base: Path, label: str) -> None:
    for graph, _ in _walk_graphs(model.graph, ""):
        for tensor in graph.initializer:
            if tensor.data_location != TensorProto.EXTERNAL:
                continue
            location, offset, length = _external_location(tensor)
            file = base / location
            need = offset + (length if length is not None else _nbytes(tensor.data_type, _numel(tensor.dims)))
            if not location or not file.is_file():
                raise AnalysisError(f"initializer '{tensor.name}' is stored in external file '{location}', "
                                    "which is missing", where=label)
            if file.stat().st_size < need:
                raise AnalysisError(f"initializer '{tensor.name}' needs {need} bytes of '{location}', which "
                                    f"holds {file.stat().st_size} (truncated?)", where=label)


def check_structure(model: ModelProto, label: str) -> None:
    """Raise `AnalysisError` for dangling node inputs, unproduced outputs, duplicate producers,
    initializers whose data does not match their shape, and domains with no opset import."""
    imported = {_domain(o.domain) for o in model.opset_import}
    functions = {(_domain(f.domain), f.name) for f in model.functions}
    _check_graph(model.graph, "", set(), imported, functions, label)


def _check_graph(graph: GraphProto, prefix: str, outer: set[str], imported: set[str],
                 functions: set[tuple[str, str]], label: str) -> None:
    for tensor in graph.initializer:
        _check_initializer(tensor, label)
    defined = set(outer) | {v.name for v in graph.input} | {t.name for t in graph.initializer}
    defined |= {t.values.name for t in graph.sparse_initializer}
    producers: dict[str, str] = {}
    for i, node in enumerate(graph.node):
        for out in filter(None, node.output):
            if out in producers:
                raise AnalysisError(f"tensor '{out}' is produced by both node '{producers[out]}' and node "
                                    f"'{prefix}{_node_label(node, i)}'", where=label)
            producers[out] = prefix + _node_label(node, i)
    defined |= set(producers)
    for i, node in enumerate(graph.node):
        name = prefix + _node_label(node, i)
        domain = _domain(node.domain)
        if domain not in imported and (domain, node.op_type) not in functions:
            raise AnalysisError(f"node '{name}' ({node.op_type}) uses domain '{domain}', for which the model "
                                "imports no opset", where=label)
        for inp in filter(None, node.input):
            if inp not in defined:
                raise AnalysisError(f"node '{name}' input '{inp}' is produced by no node and is not an "
                                    "initializer or graph input", where=label)
        for attr_name, sub in _subgraphs_of(node):
            _check_graph(sub, f"{name}/{attr_name}/", defined, imported, functions, label)
    for out in graph.output:
        if out.name not in defined:
            raise AnalysisError(f"graph output '{out.name}' is produced by no node and is not an initializer "
                                "or graph input", where=label)


def _check_initializer(tensor: TensorProto, label: str) -> None:
    if tensor.data_location == TensorProto.EXTERNAL:
        return
    count = _numel(tensor.dims)
    if tensor.HasField("raw_data") and tensor.data_type != TensorProto.STRING:
        expected = _nbytes(tensor.data_type, count)
        if len(tensor.raw_data) != expected:
            raise AnalysisError(f"initializer '{tensor.name}' holds {len(tensor.raw_data)} bytes but its shape "
                                f"{list(tensor.dims)} needs {expected} (truncated?)", where=label)
        return
    try:
        size = numpy_helper.to_array(tensor).size
    except Exception as exc:  # noqa: BLE001 - onnx raises several types for malformed tensors
        raise AnalysisError(f"initializer '{tensor.name}' cannot be read: {_first_line(exc)}", where=label) from None
    if size != count:
        raise AnalysisError(f"initializer '{tensor.name}' holds {size} elements but its shape "
                            f"{list(tensor.dims)} needs {count} (truncated?)", where=label)


def _numel(dims: Iterable[int]) -> int:
    return math.prod(int(d) for d in dims)


def _domain(domain: str) -> str:
    return domain or "ai.onnx"


def _node_label(node: NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}#{index}"


def _subgraphs_of(node: NodeProto) -> Iterator[tuple[str, GraphProto]]:
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.name, attr.g
        elif attr.type == AttributeProto.GRAPHS:
            for k, g in enumerate(attr.graphs):
                yield f"{attr.name}[{k}]", g


def _walk_graphs(graph: GraphProto, prefix: str) -> Iterator[tuple[GraphProto, str]]:
    yield graph, prefix
    for i, node in enumerate(graph.node):
        for attr_name, sub in _subgraphs_of(node):
            yield from _walk_graphs(sub, f"{prefix}{_node_label(node, i)}/{attr_name}/")


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
            if not dim.HasField("dim_value"):
                symbol = f" ('{dim.dim_param}')" if dim.dim_param else ""
                raise AnalysisError(f"input '{value.name}' dim {i}{symbol} is not fixed: pass --shape "
                                    f"{value.name}={_shape_example(dims)}", where=label)
        return False
    if has_shape and len(dims) != len(wanted):
        raise AnalysisError(f"--shape {value.name} has {len(wanted)} dims but the input has rank {len(dims)}",
                            where=label)
    for i, (dim, size) in enumerate(zip(dims, wanted)):
        if dim.HasField("dim_value") and dim.dim_value != size:
            raise AnalysisError(f"--shape {value.name} sets dim {i} to {size} but the model fixes it at "
                                f"{dim.dim_value}", where=label)
    changed = not has_shape or any(not d.HasField("dim_value") for d in dims)
    tensor_type.shape.ClearField("dim")
    for size in wanted:
        tensor_type.shape.dim.add().dim_value = size
    return changed


def _shape_example(dims: list[Any]) -> str:
    return "x".join(str(d.dim_value) if d.HasField("dim_value") else f"<{d.dim_param or '?'}>" for d in dims)


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


def _main_tensor_names(graph: GraphProto) -> list[str]:
    names: dict[str, None] = {}
    for node in graph.node:
        for name in [*node.input, *node.output]:
            if name:
                names[name] = None
    for value in [*graph.input, *graph.output]:
        names[value.name] = None
    return list(names)


def _complete_types(pinned: ModelProto, types: dict[str, _Type], label: str, inference_error: str | None,
                    base_dir: Path | None) -> None:
    missing = [n for n in _main_tensor_names(pinned.graph) if not _known(types.get(n))]
    if not missing:
        return
    try:
        measured = _ort_types(pinned, missing, base_dir)
    except Exception as exc:  # noqa: BLE001 - any onnxruntime failure is reported with the tensor's name
        why = f"shape inference failed ({inference_error}) and " if inference_error else ""
        raise AnalysisError(f"shape of tensor '{missing[0]}' is unknown: {why}onnxruntime could not run the "
                            f"model to measure it ({_first_line(exc)})", where=label) from None
    types.update(measured)
    still = [n for n in missing if not _known(types.get(n))]
    if still:
        raise AnalysisError(f"shape of tensor '{still[0]}' is unknown after shape inference and an "
                            "onnxruntime run", where=label)


def _known(found: _Type | None) -> bool:
    return found is not None and found.shape is not None and found.elem != TensorProto.UNDEFINED


def _ort_types(pinned: ModelProto, names: list[str], base_dir: Path | None) -> dict[str, _Type]:
    """Run the model once on zero inputs, exposing `names` as outputs, and read their types and shapes."""
    import onnxruntime as ort
    from onnx.external_data_helper import load_external_data_for_model

    exposed = ModelProto()
    exposed.CopyFrom(pinned)
    if base_dir is not None:
        load_external_data_for_model(exposed, str(base_dir))
    wanted = set(names)
    kept = [v for v in exposed.graph.value_info if v.name not in wanted]
    del exposed.graph.value_info[:]
    exposed.graph.value_info.extend(kept)
    outputs = {o.name for o in exposed.graph.output}
    weights = {t.name for t in exposed.graph.initializer}
    feeds = {v.name: _zeros(v) for v in _runtime_inputs(exposed.graph)}
    for name in names:
        if name not in outputs and name not in feeds and name not in weights:
            exposed.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(exposed.SerializeToString(), options, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in session.get_outputs()]
    values = session.run(out_names, feeds)
    types = {n: _array_type(v) for n, v in zip(out_names, values) if isinstance(v, np.ndarray)}
    types.update({n: _array_type(v) for n, v in feeds.items()})
    return types


def _zeros(value: onnx.ValueInfoProto) -> np.ndarray:
    tensor_type = value.type.tensor_type
    shape = [int(d.dim_value) for d in tensor_type.shape.dim]
    if tensor_type.elem_type == TensorProto.STRING:
        return np.full(shape, "", dtype=object)
    return np.zeros(shape, dtype=onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))


def _array_type(array: np.ndarray) -> _Type:
    elem = TensorProto.STRING if array.dtype == object else onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
    return _Type(elem, tuple(int(d) for d in array.shape))


def _shape(types: _Types, name: str) -> tuple[int, ...]:
    found = types.get(name)
    if found is None or found.shape is None:
        raise _UnknownShape(name)
    return found.shape


def _tensor_bytes(types: _Types, name: str) -> int:
    return _nbytes(types[name].elem, _numel(_shape(types, name)))


# weights --------------------------------------------------------------------------------------------

def _constant_tensor(node: NodeProto) -> TensorProto | None:
    for attr in node.attribute:
        if attr.name == "value" and attr.type == AttributeProto.TENSOR:
            return attr.t
    return None


def _constant_stats(node: NodeProto) -> list[tuple[str, int, int]]:
    """(dtype, elements, bytes) of each tensor a Constant node stores."""
    stats: list[tuple[str, int, int]] = []
    for attr in node.attribute:
        if attr.type == AttributeProto.TENSOR:
            stats.append(_tensor_stats(attr.t))
        elif attr.type == AttributeProto.SPARSE_TENSOR:
            stats += [_tensor_stats(attr.sparse_tensor.values), _tensor_stats(attr.sparse_tensor.indices)]
        elif attr.name == "value_float":
            stats.append(("float32", 1, 4))
        elif attr.name == "value_floats":
            stats.append(("float32", len(attr.floats), 4 * len(attr.floats)))
        elif attr.name == "value_int":
            stats.append(("int64", 1, 8))
        elif attr.name == "value_ints":
            stats.append(("int64", len(attr.ints), 8 * len(attr.ints)))
        elif attr.name == "value_string":
            stats.append(("string", 1, len(attr.s)))
        elif attr.name == "value_strings":
            stats.append(("string", len(attr.strings), sum(len(s) for s in attr.strings)))
    return stats


def _tensor_stats(tensor: TensorProto) -> tuple[str, int, int]:
    count = _numel(tensor.dims)
    if tensor.data_type == TensorProto.STRING:
        return "string", count, sum(len(s) for s in tensor.string_data)
    return dtype_name(tensor.data_type), count, _nbytes(tensor.data_type, count)


def _weights(model: ModelProto) -> dict[str, dict[str, int]]:
    by_dtype: dict[str, dict[str, int]] = {}
    for graph, _ in _walk_graphs(model.graph, ""):
        stats = [_tensor_stats(t) for t in graph.initializer]
        for sparse in graph.sparse_initializer:
            stats += [_tensor_stats(sparse.values), _tensor_stats(sparse.indices)]
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                stats += _constant_stats(node)
        for dtype, count, size in stats:
            entry = by_dtype.setdefault(dtype, {"params": 0, "bytes": 0})
            entry["params"] += count
            entry["bytes"] += size
    return dict(sorted(by_dtype.items()))


def _constant_names(graph: GraphProto, order: list[int]) -> set[str]:
    """Tensors computable from weights alone: initializers, Constant outputs and what follows from them."""
    const = {t.name for t in graph.initializer} | {t.values.name for t in graph.sparse_initializer}
    for index in order:
        node = graph.node[index]
        if node.domain in ("", "ai.onnx") and node.op_type == "Constant":
            const.update(filter(None, node.output))
            continue
        inputs = [i for i in node.input if i]
        if (inputs and all(i in const for i in inputs) and node.op_type not in _RANDOM_OPS
                and not any(True for _ in _subgraphs_of(node))):
            const.update(filter(None, node.output))
    return const


def _constant_values(graph: GraphProto) -> dict[str, TensorProto]:
    values = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            const = _constant_tensor(node)
            if const is not None:
                values[node.output[0]] = const
    return values


# MACs -----------------------------------------------------------------------------------------------

_MacRule = Callable[[NodeProto, _Types], int]


def _attr(node: NodeProto, name: str, default: Any) -> Any:
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def _conv_rule(weight_index: int) -> _MacRule:
    def rule(node: NodeProto, types: _Types) -> int:
        weight = _shape(types, node.input[weight_index])
        return _numel(_shape(types, node.output[0])) * _numel(weight[1:])
    return rule


def _conv_transpose(node: NodeProto, types: _Types) -> int:
    return _numel(_shape(types, node.input[0])) * _numel(_shape(types, node.input[1])[1:])


def _matmul_rule(a_index: int, trans_attr: str | None = None) -> _MacRule:
    def rule(node: NodeProto, types: _Types) -> int:
        a = _shape(types, node.input[a_index])
        transposed = bool(trans_attr and _attr(node, trans_attr, 0)) and len(a) >= 2
        k = a[-2] if transposed else a[-1]
        return _numel(_shape(types, node.output[0])) * k
    return rule


def _recurrent(node: NodeProto, types: _Types) -> int:
    x = _shape(types, node.input[0])
    steps, batch = (x[1], x[0]) if _attr(node, "layout", 0) else (x[0], x[1])
    return steps * batch * (_numel(_shape(types, node.input[1])) + _numel(_shape(types, node.input[2])))


def _attention_onnx(node: NodeProto, types: _Types) -> int:
    key = _shape(types, node.input[1])
    if len(node.output) > 1 and node.output[1]:
        kv_len = _shape(types, node.output[1])[-2]
    else:
        kv_len = key[-2] if len(key) == 4 else key[1]
    return (_numel(_shape(types, node.input[0])) + _numel(_shape(types, node.output[0]))) * kv_len


def _attention_ms(node: NodeProto, types: _Types) -> int:
    if len(node.input) < 2 or not node.input[1]:
        raise _Uncounted("no weights input")
    x = _shape(types, node.input[0])
    weights = _shape(types, node.input[1])
    sizes = _attr(node, "qkv_hidden_sizes", None) or [weights[1] // 3] * 3
    rows = _numel(x[:-1])
    return rows * _numel(weights) + rows * x[-2] * (sizes[0] + sizes[2])


def _multi_head_attention(node: NodeProto, types: _Types) -> int:
    if len(node.input) < 2 or not node.input[1]:
        raise _Uncounted("packed QKV input not supported")
    key = _shape(types, node.input[1])
    kv_len = key[-2] if len(key) == 4 else key[1]
    return (_numel(_shape(types, node.input[0])) + _numel(_shape(types, node.output[0]))) * kv_len


def _einsum(node: NodeProto, types: _Types) -> int:
    equation = _attr(node, "equation", b"")
    equation = equation.decode() if isinstance(equation, bytes) else str(equation)
    operands = equation.replace(" ", "").split("->")[0].split(",")
    inputs = [i for i in node.input if i]
    if "..." in equation or len(operands) != len(inputs):
        raise _Uncounted(f"equation '{equation}' not supported")
    if len(operands) < 2:
        return 0
    sizes: dict[str, int] = {}
    for letters, name in zip(operands, inputs):
        sizes.update(zip(letters, _shape(types, name)))
    return _numel(sizes.values())


_MAC_RULES: dict[tuple[str, str], _MacRule] = {
    ("ai.onnx", "Conv"): _conv_rule(1),
    ("ai.onnx", "ConvInteger"): _conv_rule(1),
    ("ai.onnx", "QLinearConv"): _conv_rule(3),
    ("ai.onnx", "ConvTranspose"): _conv_transpose,
    ("ai.onnx", "Gemm"): _matmul_rule(0, "transA"),
    ("ai.onnx", "MatMul"): _matmul_rule(0),
    ("ai.onnx", "MatMulInteger"): _matmul_rule(0),
    ("ai.onnx", "QLinearMatMul"): _matmul_rule(0),
    ("ai.onnx", "Einsum"): _einsum,
    ("ai.onnx", "RNN"): _recurrent,
    ("ai.onnx", "GRU"): _recurrent,
    ("ai.onnx", "LSTM"): _recurrent,
    ("ai.onnx", "Attention"): _attention_onnx,
    ("com.microsoft", "FusedConv"): _conv_rule(1),
    ("com.microsoft", "NhwcConv"): _conv_rule(1),
    ("com.microsoft", "NhwcFusedConv"): _conv_rule(1),
    ("com.microsoft", "QLinearConv"): _conv_rule(3),
    ("com.microsoft", "FusedGemm"): _matmul_rule(0, "transA"),
    ("com.microsoft", "FusedMatMul"): _matmul_rule(0, "transA"),
    ("com.microsoft", "QGemm"): _matmul_rule(0, "transA"),
    ("com.microsoft", "DynamicQuantizeMatMul"): _matmul_rule(0),
    ("com.microsoft", "MatMulIntegerToFloat"): _matmul_rule(0),
    ("com.microsoft", "MatMulNBits"): _matmul_rule(0),
    ("com.microsoft", "Attention"): _attention_ms,
    ("com.microsoft", "MultiHeadAttention"): _multi_head_attention,
}


@dataclass
class _MacCount:
    by_op: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, other: _MacCount, times: int = 1) -> None:
        for op, macs in other.by_op.items():
            self.by_op[op] = self.by_op.get(op, 0) + macs * times
        self.notes += other.notes

    @property
    def total(self) -> int:
        return sum(self.by_op.values())


def _count_macs(graph: GraphProto, types: _Types, values: Mapping[str, TensorProto], prefix: str) -> _MacCount:
    count = _MacCount()
    for i, node in enumerate(graph.node):
        name = prefix + _node_label(node, i)
        rule = _MAC_RULES.get((_domain(node.domain), node.op_type))
        if rule is not None:
            try:
                macs = rule(node, types)
            except _Uncounted as exc:
                count.notes.append(f"{node.op_type} '{name}': MACs not counted, {exc.reason}")
                continue
            count.by_op[node.op_type] = count.by_op.get(node.op_type, 0) + macs
        if any(True for _ in _subgraphs_of(node)):
            count.add(_control_flow_macs(node, name, types, values))
    return count


def _control_flow_macs(node: NodeProto, name: str, types: _Types, values: Mapping[str, TensorProto]) -> _MacCount:
    bodies: list[_MacCount] = []
    for attr_name, sub in _subgraphs_of(node):
        sub_types = {**types, **_graph_types(sub)}
        sub_values = {**values, **_constant_values(sub)}
        bodies.append(_count_macs(sub, sub_types, sub_values, f"{name}/{attr_name}/"))
    result = _MacCount()
    if node.op_type == "If":
        result.add(max(bodies, key=lambda b: b.total))
        result.notes.append(f"If '{name}': MACs of the costlier branch counted")
        return result
    times, note = _iterations(node, name, types, values)
    for body in bodies:
        result.add(body, times)
    if note:
        result.notes.append(note)
    return result


def _iterations(node: NodeProto, name: str, types: _Types, values: Mapping[str, TensorProto]) -> tuple[int, str | None]:
    if node.op_type == "Loop":
        trip = node.input[0] if node.input else ""
        count = _scalar(values.get(trip))
        if count is not None and 0 <= count < _MAX_TRIP_COUNT:
            return count, None
        return 1, f"Loop '{name}': trip count not static, body MACs counted once"
    if node.op_type == "Scan":
        scan_inputs = int(_attr(node, "num_scan_inputs", 0))
        axes = list(_attr(node, "scan_input_axes", []) or [0])
        if scan_inputs:
            first = node.input[len(node.input) - scan_inputs]
            try:
                shape = _shape(types, first)
                return shape[axes[0] % len(shape)], None
            except _UnknownShape:
                pass
        return 1, f"Scan '{name}': sequence length unknown, body MACs counted once"
    return 1, f"{node.op_type} '{name}': subgraph MACs counted once"


def _scalar(tensor: TensorProto | None) -> int | None:
    if tensor is None or tensor.data_location == TensorProto.EXTERNAL or _numel(tensor.dims) != 1:
        return None
    return int(numpy_helper.to_array(tensor).reshape(-1)[0])


# liveness and arena ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Life:
    name: str
    bytes: int
    start: int
    end: int


def _topological_order(graph: GraphProto, label: str) -> list[int]:
    """Node indices in a topological order that keeps the file's order where it is already valid."""
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
    deps: list[set[int]] = []
    for node in graph.node:
        used = _used_names(node)
        deps.append({producer[u] for u in used if u in producer})
    users: list[list[int]] = [[] for _ in graph.node]
    for i, dep in enumerate(deps):
        for d in dep:
            users[d].append(i)
    waiting = [len(d) for d in deps]
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(graph.node):
        stuck = next(i for i, w in enumerate(waiting) if w > 0)
        raise AnalysisError(f"graph has a cycle through node '{_node_label(graph.node[stuck], stuck)}'", where=label)
    return order


def _used_names(node: NodeProto) -> list[str]:
    """Inputs of a node plus the outer-scope names its subgraphs read."""
    used = [i for i in node.input if i]
    for _, sub in _subgraphs_of(node):
        used += sorted(_outer_refs(sub))
    return used


def _outer_refs(graph: GraphProto) -> set[str]:
    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    defined |= {t.values.name for t in graph.sparse_initializer}
    defined |= {o for node in graph.node for o in node.output if o}
    used = {u for node in graph.node for u in _used_names(node)} | {o.name for o in graph.output}
    return used - defined


def _lifetimes(graph: GraphProto, order: list[int], const: set[str], types: _Types) -> list[_Life]:
    base: dict[str, str] = {}
    start: dict[str, int] = {}
    end: dict[str, int] = {}
    for value in _runtime_inputs(graph):
        base[value.name] = value.name
        start[value.name] = end[value.name] = 0
    for step, index in enumerate(order):
        node = graph.node[index]
        for name in _used_names(node):
            if name in base:
                end[base[name]] = max(end[base[name]], step)
        outputs = [o for o in node.output if o and o not in const]
        if node.domain in ("", "ai.onnx") and node.op_type in _VIEW_OPS and node.input[0] in base and outputs:
            base[outputs[0]] = base[node.input[0]]
            outputs = outputs[1:]
        for out in outputs:
            base[out] = out
            start[out] = end[out] = step
    last = max(len(order) - 1, 0)
    for out in graph.output:
        if out.name in base:
            end[base[out.name]] = last
    return [_Life(n, _tensor_bytes(types, n), start[n], end[n]) for n in start]


def _peak(lives: list[_Life], steps: int) -> tuple[int, int]:
    """(peak bytes, first step at which it occurs)."""
    if not lives:
        return 0, 0
    delta = np.zeros(max(steps, 1) + 1, dtype=np.int64)
    for life in lives:
        delta[life.start] += life.bytes
        delta[life.end + 1] -= life.bytes
    live = np.cumsum(delta[:-1])
    step = int(np.argmax(live))
    return int(live[step]), step


def _arena(lives: list[_Life]) -> int:
    """Greedy-by-size offset plan: biggest first, each at the lowest offset free during its lifetime."""
    ordered = sorted(lives, key=lambda t: (-t.bytes, t.start, t.name))
    starts = np.array([t.start for t in ordered], dtype=np.int64)
    ends = np.array([t.end for t in ordered], dtype=np.int64)
    offsets = np.zeros(len(ordered), dtype=np.int64)
    sizes = np.array([t.bytes for t in ordered], dtype=np.int64)
    arena = 0
    for i, tensor in enumerate(ordered):
        overlap = np.nonzero((starts[:i] <= tensor.end) & (ends[:i] >= tensor.start))[0]
        candidate = 0
        for j in overlap[np.argsort(offsets[overlap], kind="stable")]:
            if candidate + tensor.bytes <= offsets[j]:
                break
            candidate = max(candidate, int(offsets[j] + sizes[j]))
        offsets[i] = candidate
        arena = max(arena, candidate + tensor.bytes)
    return arena


# op inventory ---------------------------------------------------------------------------------------

def _inventory(graph: GraphProto, opsets: Mapping[str, int], types: _Types,
               fold_qdq: bool = False) -> tuple[tuple[OpUse, ...], int]:
    """Nodes grouped by (domain, op, opset, input dtypes). With `fold_qdq`, an input produced by a
    DequantizeLinear counts with the dtype of that DequantizeLinear's input (int8, int32), as a converter
    to an integer runtime folds QDQ groups into quantized kernels."""
    groups: dict[tuple[str, str, int, tuple[str, ...]], list[str]] = {}
    total = 0
    for sub, prefix, scope in _walk_scopes(graph, "", types):
        folded: dict[str, str] = {}
        if fold_qdq:
            for node in sub.node:
                if node.op_type == "DequantizeLinear" and node.input[0] in scope:
                    folded[node.output[0]] = dtype_name(scope[node.input[0]].elem)
        for i, node in enumerate(sub.node):
            domain = _domain(node.domain)
            dtypes = tuple(folded.get(n) or (dtype_name(scope[n].elem) if n in scope else "unknown")
                           for n in node.input if n)
            key = (domain, node.op_type, opsets.get(domain, 0), tuple(dict.fromkeys(dtypes)) if fold_qdq else dtypes)
            groups.setdefault(key, []).append(prefix + _node_label(node, i))
            total += 1
    ops = tuple(OpUse(d, op, v, dt, len(names), tuple(names)) for (d, op, v, dt), names in sorted(groups.items()))
    return ops, total


def _walk_scopes(graph: GraphProto, prefix: str, types: _Types) -> Iterator[tuple[GraphProto, str, _Types]]:
    yield graph, prefix, types
    for i, node in enumerate(graph.node):
        for attr_name, sub in _subgraphs_of(node):
            yield from _walk_scopes(sub, f"{prefix}{_node_label(node, i)}/{attr_name}/", {**types, **_graph_types(sub)})


# analyze --------------------------------------------------------------------------------------------

def analyze(model: ModelProto | str | Path, shapes: Mapping[str, list[int]] | None = None) -> Analysis:
    """Analyse an ONNX model (a path or a loaded `ModelProto`) at fixed input shapes.

    `shapes` maps input names to full shapes and pins symbolic dims; an input with a symbolic dim and
    no entry raises `AnalysisError`. Shapes come from ONNX shape inference and, for tensors it leaves
    unknown, from one onnxruntime run on zero inputs (data-dependent shapes are then those of zeros).
    """
    model, label, base_dir = _resolve(model)
    graph, types, notes = _typed_graph(model, shapes or {}, label, base_dir)
    order = _topological_order(graph, label)
    const = _constant_names(graph, order)
    lives = _lifetimes(graph, order, const, types)
    peak, step = _peak(lives, len(order))
    weights = _weights(model)
    opsets = {_domain(o.domain): int(o.version) for o in model.opset_import}
    macs = _count_macs(graph, types, _constant_values(graph), "")
    ops, total_nodes = _inventory(graph, opsets, types)
    subgraphs = tuple(f"{prefix}{_node_label(n, i)}" for g, prefix in _walk_graphs(graph, "")
                      for i, n in enumerate(g.node) if any(True for _ in _subgraphs_of(n)))
    live_at_peak = sorted((t for t in lives if t.start <= step <= t.end), key=lambda t: (-t.bytes, t.name))
    return Analysis(
        params=sum(w["params"] for w in weights.values()),
        weight_bytes=sum(w["bytes"] for w in weights.values()),
        weights_by_dtype=weights,
        macs=macs.total,
        macs_by_op=dict(sorted(macs.by_op.items())),
        peak_activation_bytes=peak,
        arena_bytes=_arena(lives),
        peak_node=_node_label(graph.node[order[step]], order[step]) if order else "",
        peak_live=tuple(LiveTensor(t.name, t.bytes) for t in live_at_peak) if peak else (),
        input_bytes=sum(_tensor_bytes(types, v.name) for v in _runtime_inputs(graph)),
        output_bytes=sum(_tensor_bytes(types, v.name) for v in graph.output),
        ops=ops,
        opsets=opsets,
        nodes=total_nodes,
        subgraphs=subgraphs,
        notes=tuple(notes + macs.notes + [f"{s}: subgraph activations not included in the peak" for s in subgraphs]),
        qdq_ops=_inventory(graph, opsets, types, fold_qdq=True)[0],
    )


def _resolve(model: ModelProto | str | os.PathLike[str]) -> tuple[ModelProto, str, Path | None]:
    """The checked model, the label that names it in messages, and the folder of its external data."""
    if isinstance(model, (str, os.PathLike)):
        return load_model(model), str(model), Path(model).parent
    label = f"model '{model.graph.name}'" if model.graph.name else "model"
    _check_envelope(model, label)
    check_structure(model, label)
    return model, label, None


def _typed_graph(model: ModelProto, shapes: Mapping[str, list[int]], label: str,
                 base_dir: Path | None) -> tuple[GraphProto, dict[str, _Type], list[str]]:
    """The pinned, shape-inferred main graph with a known type and shape for every tensor it names."""
    pinned = _pin_inputs(model, shapes, label)
    inferred, inference_error = _infer(pinned)
    types = _graph_types(inferred.graph)
    _complete_types(pinned, types, label, inference_error, base_dir)
    notes = [f"strict shape inference failed: {inference_error}"] if inference_error else []
    return inferred.graph, types, notes
