"""What a model holds: its weights by stored dtype and its op inventory (domain, op, opset, dtypes)."""

from __future__ import annotations

from collections.abc import Mapping

from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto

from shrink.analysis.dtypes import _nbytes, dtype_name
from shrink.analysis.macs import NodeKey
from shrink.analysis.model import _domain, _node_label, _numel, _walk_graphs
from shrink.analysis.result import OpUse
from shrink.analysis.scopes import _Scope

# weights --------------------------------------------------------------------------------------------

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


def _packed(graph: GraphProto) -> dict[str, tuple[str, int]]:
    """Initializers a MatMulNBits node reads as its packed weight B (uint8 bytes, each holding 8/bits weights):
    the weights' dtype (`int4`, `int8`, from `bits`) and their count (K x N, from the attributes)."""
    found: dict[str, tuple[str, int]] = {}
    for node in graph.node:
        if _domain(node.domain) == "com.microsoft" and node.op_type == "MatMulNBits" and len(node.input) > 1:
            attrs = {a.name: a.i for a in node.attribute if a.type == AttributeProto.INT}
            if attrs.get("K", 0) > 0 and attrs.get("N", 0) > 0:
                found[node.input[1]] = (f"int{attrs.get('bits', 4)}", attrs["K"] * attrs["N"])
    return found


def _weights(model: ModelProto) -> dict[str, dict[str, int]]:
    """Parameters and bytes by dtype. A MatMulNBits weight counts as its K x N weights of `bits` each, stored in
    its packed bytes (the bytes include the padding of the last block along K)."""
    by_dtype: dict[str, dict[str, int]] = {}
    for graph, _ in _walk_graphs(model.graph, ""):
        packed = _packed(graph)
        stats = [(*packed[t.name], _tensor_stats(t)[2]) if t.name in packed else _tensor_stats(t) for t in graph.initializer]
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


# op inventory ---------------------------------------------------------------------------------------

def _inventory(main: _Scope, opsets: Mapping[str, int], macs: Mapping[NodeKey, tuple[int, str, str]],
               fold_qdq: bool = False) -> tuple[tuple[OpUse, ...], int]:
    """Nodes of every scope grouped by (domain, op, opset, input dtypes), with the MACs they add (`macs`
    maps a node's (scope prefix, index) to its counted MACs and their dtype). With `fold_qdq`, an input
    produced by a DequantizeLinear counts with the dtype of that DequantizeLinear's input (int8, int32), as
    a converter to an integer runtime folds QDQ groups into quantized kernels."""
    groups: dict[tuple[str, str, int, tuple[str, ...]], list[tuple[str, NodeKey]]] = {}
    total = 0
    for scope in main.walk():
        types = scope.types
        folded: dict[str, str] = {}
        if fold_qdq:
            for node in scope.graph.node:
                if node.op_type == "DequantizeLinear" and node.input[0] in types:
                    folded[node.output[0]] = dtype_name(types[node.input[0]].elem)
        for i, node in enumerate(scope.graph.node):
            domain = _domain(node.domain)
            dtypes = tuple(folded.get(n) or (dtype_name(types[n].elem) if n in types else "unknown")
                           for n in node.input if n)
            key = (domain, node.op_type, opsets.get(domain, 0), tuple(dict.fromkeys(dtypes)) if fold_qdq else dtypes)
            groups.setdefault(key, []).append((scope.prefix + _node_label(node, i), (scope.prefix, i)))
            total += 1
    ops = []
    for (domain, op, opset, dtypes), members in sorted(groups.items()):
        by_dtype: dict[str, int] = {}
        for _, node_key in members:
            if node_key in macs:
                counted, dtype, _ = macs[node_key]
                by_dtype[dtype] = by_dtype.get(dtype, 0) + counted
        ops.append(OpUse(domain, op, opset, dtypes, len(members), tuple(name for name, _ in members),
                         sum(by_dtype.values()), tuple(sorted(by_dtype.items()))))
    return tuple(ops), total
