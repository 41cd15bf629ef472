"""If/Loop/Scan bodies seen from outside: the types a node feeds its body's formal inputs, the body made a
standalone model for inference and measurement, the types of the node's outputs its typed bodies
determine, and a Loop's or Scan's iteration count when it is static."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import GraphProto, ModelProto, NodeProto, TensorProto, numpy_helper

from shrink.analysis.model import _outer_refs
from shrink.analysis.shapes import _known, _runtime_inputs, _Type, _value_type

MAX_TRIP_COUNT = 2**31  # torch writes INT64_MAX for a `while` loop: no bound

TypedBody = tuple[GraphProto, Mapping[str, _Type]]  # a body and the types of its tensors


def int_attr(node: NodeProto, name: str, default: int) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def int_list(node: NodeProto, name: str) -> list[int]:
    return next((list(a.ints) for a in node.attribute if a.name == name), [])


def constant_trip_count(node: NodeProto, types: Mapping[str, _Type], values: Mapping[str, np.ndarray]) -> int | None:
    """A Loop's static trip count (None when absent, not static or no bound) or a Scan's sequence length."""
    if node.op_type == "Scan":
        scans = int_attr(node, "num_scan_inputs", 0)
        axes = int_list(node, "scan_input_axes") or [0]
        found = types.get(node.input[len(node.input) - scans]) if scans else None
        return found.shape[axes[0] % len(found.shape)] if found is not None and found.shape else None
    value = values.get(node.input[0]) if node.input and node.input[0] else None
    if value is None or value.size != 1:
        return None
    count = int(value.reshape(-1)[0])
    return count if 0 <= count < MAX_TRIP_COUNT else None


def formal_types(node: NodeProto, body: GraphProto, outer: Mapping[str, _Type]) -> dict[str, _Type | None]:
    """The types the If/Loop/Scan node feeds its body's formal inputs (declared ones where it cannot say)."""
    names = [v.name for v in _runtime_inputs(body)]
    declared = {v.name: _value_type(v) for v in _runtime_inputs(body)}
    fed: dict[str, _Type | None] = {}
    if node.op_type == "Loop" and len(names) >= 2:
        fed[names[0]], fed[names[1]] = _Type(TensorProto.INT64, ()), _Type(TensorProto.BOOL, ())
        for k, name in enumerate(names[2:]):
            fed[name] = outer.get(node.input[2 + k]) if 2 + k < len(node.input) else None
    elif node.op_type == "Scan":
        scans = int_attr(node, "num_scan_inputs", 0)
        axes = int_list(node, "scan_input_axes") or [0] * scans
        states = len(node.input) - scans
        for k, name in enumerate(names[:len(node.input)]):
            found = outer.get(node.input[k])
            if k >= states and found is not None and found.shape is not None and k - states < len(axes):
                axis = axes[k - states] % max(len(found.shape), 1)
                found = _Type(found.elem, found.shape[:axis] + found.shape[axis + 1:])
            fed[name] = found
    return {name: fed[name] if _known(fed.get(name)) else declared.get(name) or fed.get(name) for name in names}


def standalone(model: ModelProto, body: GraphProto, formal: Mapping[str, _Type | None], outer: Mapping[str, _Type],
               values: Mapping[str, np.ndarray]) -> ModelProto:
    """`body` as a model of its own: outer tensors it reads are initializers (static values) or inputs."""
    graph = GraphProto()
    graph.CopyFrom(body)
    del graph.input[:]
    del graph.value_info[:]
    declared = {v.name: v for v in body.input}
    for v in _runtime_inputs(body):
        graph.input.append(value_info(v.name, formal.get(v.name), declared[v.name]))
    graph.input.extend(v for v in body.input if v.name not in formal)  # initializers listed as inputs
    for name in sorted(_outer_refs(body)):
        if name in values:
            graph.initializer.append(numpy_helper.from_array(values[name], name))
        else:
            graph.input.append(value_info(name, outer.get(name), None))
    copy = onnx.helper.make_model(graph, opset_imports=list(model.opset_import))
    copy.ir_version = model.ir_version
    return copy


def value_info(name: str, found: _Type | None, declared: onnx.ValueInfoProto | None) -> onnx.ValueInfoProto:
    if found is None:
        if declared is not None:
            return declared
        return onnx.helper.make_tensor_value_info(name, TensorProto.UNDEFINED, None)
    return onnx.helper.make_tensor_value_info(name, found.elem, list(found.shape) if found.shape is not None else None)


def output_types(node: NodeProto, bodies: Sequence[TypedBody], trips: int | None) -> dict[str, _Type]:
    """The types of `node`'s outputs that its typed bodies determine: an If output both branches agree on,
    a Loop/Scan state that keeps its shape, a scan output when the iteration count `trips` is known."""
    found: dict[str, _Type] = {}
    if node.op_type == "If":
        for k, name in enumerate(node.output):
            branch = [types.get(graph.output[k].name) if k < len(graph.output) else None for graph, types in bodies]
            same = branch[0]
            if name and same is not None and _known(same) and all(t == same for t in branch):
                found[name] = same
    elif node.op_type in ("Loop", "Scan") and bodies:
        graph, types = bodies[0]
        outs = [o.name for o in graph.output]
        first = 1 if node.op_type == "Loop" else 0
        carried = len(node.input) - (2 if node.op_type == "Loop" else int_attr(node, "num_scan_inputs", 0))
        for k, name in enumerate(node.output):
            inner = types.get(outs[first + k]) if first + k < len(outs) else None
            if not name or inner is None or inner.shape is None:
                continue
            if k < carried:
                start = types.get(graph.input[2 + k].name) if node.op_type == "Loop" else inner
                if start is not None and start.shape == inner.shape:
                    found[name] = inner
            elif trips is not None and (node.op_type == "Loop" or not int_list(node, "scan_output_axes")):
                found[name] = _Type(inner.elem, (trips, *inner.shape))
    return found
