"""`analyze()`: load and check the model, pin and type it, then count weights, MACs, memory and ops."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from onnx import GraphProto, ModelProto

from shrink.analysis.inventory import _inventory, _weights
from shrink.analysis.macs import _count_macs
from shrink.analysis.memory import (
    _arena,
    _constant_names,
    _lifetimes,
    _peak,
    _topological_order,
)
from shrink.analysis.model import (
    _check_envelope,
    _constant_values,
    _domain,
    _node_label,
    _subgraphs_of,
    _walk_graphs,
    check_structure,
    load_model,
)
from shrink.analysis.result import Analysis, LiveTensor
from shrink.analysis.shapes import (
    _complete_types,
    _graph_types,
    _infer,
    _pin_inputs,
    _runtime_inputs,
    _tensor_bytes,
    _Type,
)

_MEMO: OrderedDict[tuple[object, ...], Analysis] = OrderedDict()
_MEMO_SIZE = 16


def analyze(model: ModelProto | str | Path, shapes: Mapping[str, list[int]] | None = None) -> Analysis:
    """Analyse an ONNX model (a path or a loaded `ModelProto`) at fixed input shapes.

    `shapes` maps input names to full shapes and pins symbolic dims; an input with a symbolic dim and
    no entry raises `AnalysisError`. Shapes come from ONNX shape inference and, for tensors it leaves
    unknown, from one onnxruntime run on zero inputs (data-dependent shapes are then those of zeros).
    A file's analysis is memoised by its identity (path, size, modification time) and the shapes, so the
    engine's metrics and the final checks analyse each artifact once.
    """
    if not isinstance(model, (str, os.PathLike)):
        return _analyze(model, shapes)
    try:
        stat = os.stat(model)
    except OSError:
        return _analyze(model, shapes)  # load_model reports the problem
    key = (str(model), os.path.realpath(model), stat.st_size, stat.st_mtime_ns, stat.st_ino,
           tuple(sorted((name, tuple(dims)) for name, dims in (shapes or {}).items())))
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    result = _MEMO[key] = _analyze(model, shapes)
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return result


def _analyze(model: ModelProto | str | Path, shapes: Mapping[str, list[int]] | None) -> Analysis:
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
