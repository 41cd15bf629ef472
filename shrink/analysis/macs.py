"""Multiply-accumulate counting: one rule per (domain, op type), and If/Loop/Scan bodies.

Ops without a rule count 0. A rule that cannot count (an unknown shape, an unsupported form) leaves a
note instead; Loop and Scan bodies count once per iteration when the trip count is static.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import onnx
from onnx import GraphProto, NodeProto, TensorProto, numpy_helper

from shrink.analysis.model import (
    _constant_values,
    _domain,
    _node_label,
    _numel,
    _subgraphs_of,
)
from shrink.analysis.shapes import (
    _graph_types,
    _shape,
    _Types,
    _Uncounted,
    _UnknownShape,
)

_MAX_TRIP_COUNT = 2**31

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
