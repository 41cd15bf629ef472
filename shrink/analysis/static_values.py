"""Static values: small tensors computable before the model runs, from weights and the pinned shapes alone.

These are the shape computations exporters write (`Shape -> Gather -> Concat -> Pad` for torch's `F.pad`,
`Shape -> Gather` for a Loop's trip count). ONNX shape inference cannot follow them into `Pad` pads or
into subgraphs; folding them into constants lets it. A `Shape` or `Size` is static only when its input's
shape is known without running the model (`measured` names are excluded: a shape read off an
onnxruntime run on zero inputs may depend on the data). Each node is evaluated with onnx's reference
implementation at the model's opset; nothing larger than `MAX_ELEMENTS` is evaluated or kept.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import onnx
from onnx import GraphProto, NodeProto, TensorProto, numpy_helper

from shrink.analysis.model import _constant_tensor, _domain, _numel, _subgraphs_of
from shrink.analysis.shapes import _Types

MAX_ELEMENTS = 4096

# ops whose output is not a function of their inputs, and compute on weights that is never a shape
_NEVER = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                    "Bernoulli", "If", "Loop", "Scan", "SequenceMap", "Conv", "ConvTranspose", "ConvInteger",
                    "QLinearConv", "LSTM", "GRU", "RNN", "DeformConv", "STFT", "DFT", "MatMul", "Gemm", "Einsum",
                    "MatMulInteger", "QLinearMatMul", "QuantizeLinear", "DequantizeLinear",
                    "DynamicQuantizeLinear"})


def _static_values(graph: GraphProto, types: _Types, known: Mapping[str, np.ndarray], opset: int,
                   measured: Collection[str] = ()) -> dict[str, np.ndarray]:
    """Values of this scope's tensors that are static, plus `known` (the enclosing scopes' static values).

    Small initializers and Constant nodes are static; so is `Shape`/`Size` of a tensor whose shape is
    known and not measured, and any deterministic ai.onnx node whose inputs are all static and small.
    """
    values = dict(known)
    for tensor in graph.initializer:
        if _numel(tensor.dims) <= MAX_ELEMENTS and tensor.data_location != TensorProto.EXTERNAL:
            values[tensor.name] = numpy_helper.to_array(tensor)
    pending = list(graph.node)
    while pending:
        left = [node for node in pending if not _fold(node, types, values, opset, measured)]
        if len(left) == len(pending):
            break
        pending = left
    return values


def _fold(node: NodeProto, types: _Types, values: dict[str, np.ndarray], opset: int,
          measured: Collection[str]) -> bool:
    """Evaluate `node` into `values` if it is static; True when it is settled (folded or never foldable)."""
    if _domain(node.domain) != "ai.onnx" or node.op_type in _NEVER or any(True for _ in _subgraphs_of(node)):
        return True
    outputs = [o for o in node.output if o]
    if not outputs:
        return True
    if node.op_type == "Constant":
        const = _constant_tensor(node)
        if const is not None:
            if _numel(const.dims) <= MAX_ELEMENTS and const.data_location != TensorProto.EXTERNAL:
                values[outputs[0]] = numpy_helper.to_array(const)
            return True
    elif node.op_type in ("Shape", "Size"):
        return _fold_shape(node, types, values, measured)
    inputs = [i for i in node.input if i]
    if not all(i in values for i in inputs):
        return False  # may become static once its inputs do
    if any(values[i].size > MAX_ELEMENTS for i in inputs) or not _small_output(node, types, values):
        return True
    try:
        results = _evaluate(node, [values[i] if i else None for i in node.input], opset)
    except Exception:  # noqa: BLE001 - the reference implementation raises many types; the value stays unknown
        return True
    for name, result in zip(node.output, results):
        array = np.asarray(result)
        if name and array.size <= MAX_ELEMENTS and array.dtype != object:
            values[name] = array
    return True


def _fold_shape(node: NodeProto, types: _Types, values: dict[str, np.ndarray], measured: Collection[str]) -> bool:
    source = node.input[0]
    found = types.get(source)
    shape: tuple[int, ...]
    if source in values:
        shape = tuple(values[source].shape)
    elif found is not None and found.shape is not None and source not in measured:
        shape = found.shape
    else:
        return False
    if node.op_type == "Size":
        values[node.output[0]] = np.array(_numel(shape), np.int64)
        return True
    rank = len(shape)
    start, end = _int_attr(node, "start", 0), _int_attr(node, "end", rank)
    start, end = (max(0, min(rank, v + rank if v < 0 else v)) for v in (start, end))
    values[node.output[0]] = np.array(shape[start:end], np.int64)
    return True


def _int_attr(node: NodeProto, name: str, default: int) -> int:
    for attr in node.attribute:
        if attr.name == name:
            return int(attr.i)
    return default


def _small_output(node: NodeProto, types: _Types, values: Mapping[str, np.ndarray]) -> bool:
    """False when the node's output would be too large to keep (checked before evaluating it)."""
    out = types.get(node.output[0])
    if out is not None and out.shape is not None:
        return _numel(out.shape) <= MAX_ELEMENTS
    if node.op_type == "ConstantOfShape":
        return _numel(values[node.input[0]].reshape(-1)) <= MAX_ELEMENTS
    # ops that can expand a small input into a large output: only with a known output shape
    return node.op_type not in {"Expand", "Tile", "Range", "Pad", "Resize", "Upsample", "OneHot", "EyeLike"}


def _evaluate(node: NodeProto, inputs: list[Any], opset: int) -> list[Any]:
    from onnx.reference import ReferenceEvaluator

    names = [f"in{k}" if name else "" for k, name in enumerate(node.input)]
    copy = onnx.helper.make_node(node.op_type, names, [f"out{k}" for k in range(len(node.output))])
    copy.attribute.extend(node.attribute)
    graph = onnx.helper.make_graph(
        [copy], "fold", [onnx.helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None) for n in names if n],
        [onnx.helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in copy.output])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    feeds = {n: v for n, v in zip(names, inputs) if n}
    return list(ReferenceEvaluator(model).run(None, feeds))
