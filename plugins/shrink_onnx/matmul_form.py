"""Graph preparation for weight-only quantization: linear layers as MatMul with a constant `[K, N]` weight, and
the opset the quantized tensors need.

Exporters write a linear layer on 2-D inputs as `Gemm(A, B, C, transB=1)`; ONNX Runtime's weight-only
quantizer only rewrites `MatMul` nodes whose B is an initializer. `gemm_to_matmul` turns each Gemm with a
constant B (and `transA=0`) into `MatMul(A, alpha·Bᵀ)` plus `Add(beta·C)`, the same arithmetic. `to_opset`
converts the whole model with onnx's version converter (int4 tables need ai.onnx opset 21, whose attributes
differ from older opsets': ReduceL2's `axes` became an input in 18), never just the opset number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate


def gemm_to_matmul(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, int, list[str]]:
    """A copy of `proto` with every main-graph Gemm whose B is a float initializer (and A not transposed) written
    as MatMul (+ Add for the bias): (model, Gemms rewritten, why others were kept). The MatMul keeps the Gemm's
    name, so node patterns written for the export still match."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    taken = {n.name for n in graph.node} | {o for n in graph.node for o in n.output} | set(inits)
    taken |= {i.name for i in graph.input}
    nodes: list[onnx.NodeProto] = []
    kept: list[str] = []
    rewritten = 0
    for node in graph.node:
        if node.op_type != "Gemm" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        attrs = _attrs(node)
        label = node.name or node.output[0]
        weight = inits.get(node.input[1])
        if weight is None or attrs.get("transA", 0) or weight.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            kept.append(f"{label}: " + ("B is not a constant" if weight is None else
                                        "A is transposed" if attrs.get("transA", 0) else "B is not float"))
            nodes.append(node)
            continue
        b = numpy_helper.to_array(weight)
        if attrs.get("transB", 0):
            b = b.T
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        if alpha != 1.0:
            b = b * np.asarray(alpha, dtype=b.dtype)
        b_name = _unique(f"{weight.name}_kn", taken)
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(b), b_name))
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        out = node.output[0]
        product = _unique(f"{out}_matmul", taken) if bias else out
        nodes.append(helper.make_node("MatMul", [node.input[0], b_name], [product], name=node.name or _unique("MatMul", taken)))
        if bias:
            c = inits.get(bias)
            if beta != 1.0:
                if c is None:
                    scale = _unique(f"{bias}_beta", taken)
                    graph.initializer.append(numpy_helper.from_array(np.asarray(beta, dtype=b.dtype), scale))
                    scaled = _unique(f"{bias}_scaled", taken)
                    nodes.append(helper.make_node("Mul", [bias, scale], [scaled], name=_unique(f"{label}_beta", taken)))
                    bias = scaled
                else:
                    name = _unique(f"{bias}_beta", taken)
                    graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(c) * np.asarray(beta, dtype=b.dtype), name))
                    bias = name
            nodes.append(helper.make_node("Add", [product, bias], [out], name=_unique(f"{label}_bias", taken)))
        rewritten += 1
    graph.ClearField("node")
    graph.node.extend(nodes)
    still_used = {name for n in graph.node for name in n.input} | {o.name for o in graph.output}
    dead = [t for t in graph.initializer if t.name not in still_used]
    for tensor in dead:
        graph.initializer.remove(tensor)
    return model, rewritten, kept


def ai_onnx_opset(proto: onnx.ModelProto) -> int:
    return next((imp.version for imp in proto.opset_import if imp.domain in ("", "ai.onnx")), 0)


def to_opset(proto: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """`proto` converted to ai.onnx `opset` (onnx.version_converter: attributes that became inputs move), its IR
    version raised to what that opset needs; unchanged when it is already there."""
    if ai_onnx_opset(proto) >= opset:
        return proto
    from onnx import version_converter

    converted = version_converter.convert_version(proto, opset)
    needed = helper.find_min_ir_version_for([helper.make_opsetid("", opset)], ignore_unknown=True)
    if converted.ir_version < needed:
        converted.ir_version = needed
    return converted
