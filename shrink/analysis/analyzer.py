"""`analyze()`: load and check the model, pin and type it, then count weights, MACs, memory and ops."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path

from onnx import ModelProto, ValueInfoProto

from shrink.analysis.inventory import _inventory, _weights
from shrink.analysis.macs import _count_macs, _quoted
from shrink.analysis.memory import _folded_at_load, _scope_memory
from shrink.analysis.model import (
    _check_envelope,
    _domain,
    _inline_functions,
    _node_label,
    _subgraphs_of,
    _walk_graphs,
    check_structure,
    load_model,
)
from shrink.analysis.result import Analysis, LiveTensor
from shrink.analysis.scopes import _Scope, _typed_scopes
from shrink.analysis.shapes import _known, _pin_inputs, _runtime_inputs, _tensor_bytes

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
    notes: list[str] = []
    if model.functions:
        notes.append(f"{len(model.functions)} local function(s) inlined before counting")
        model = _inline_functions(model)
    main, inference_error = _typed_scopes(_pin_inputs(model, shapes or {}, label), base_dir)
    if inference_error:
        notes.append(f"strict shape inference failed: {inference_error}")
    notes += [note for scope in main.walk() for note in scope.notes]
    memory = _scope_memory(main, label)
    folded, folded_unknown, folded_nodes = _folded_at_load(main, label)
    count = _count_macs(main)
    weights = _weights(model)
    opsets = {_domain(o.domain): int(o.version) for o in model.opset_import}
    ops, total_nodes = _inventory(main, opsets, count.nodes)
    subgraphs = tuple(f"{prefix}{_node_label(n, i)}" for g, prefix in _walk_graphs(main.graph, "")
                      for i, n in enumerate(g.node) if any(True for _ in _subgraphs_of(n)))
    at_peak = sorted((t for t in memory.lives if t.start <= memory.step <= t.end), key=lambda t: (-t.bytes, t.name))
    macs_by_op: dict[str, int] = {}
    macs_by_dtype: dict[str, int] = {}
    for macs, dtype, op_type in count.nodes.values():
        macs_by_op[op_type] = macs_by_op.get(op_type, 0) + macs
        macs_by_dtype[dtype] = macs_by_dtype.get(dtype, 0) + macs
    incomplete = count.reasons()
    if folded_unknown:
        incomplete.append(f"weights folded at load: sizes of {len(folded_unknown)} tensor(s) computed from weights alone "
                          f"unknown ({_quoted(folded_unknown)}): the weights in RAM are a lower bound")
    if memory.unknown:
        incomplete.append(f"peak memory: sizes of {len(memory.unknown)} tensor(s) unknown ({_quoted(memory.unknown)}): "
                          "peak activations and arena are lower bounds")
    return Analysis(
        params=sum(w["params"] for w in weights.values()),
        weight_bytes=sum(w["bytes"] for w in weights.values()),
        weights_by_dtype=weights,
        macs=count.total,
        macs_by_op=dict(sorted((op, m) for op, m in macs_by_op.items() if m)),
        peak_activation_bytes=memory.peak,
        arena_bytes=memory.arena,
        peak_node=_node_label(main.graph.node[memory.order[memory.step]], memory.order[memory.step]) if memory.order else "",
        peak_live=tuple(LiveTensor(t.name, t.bytes) for t in at_peak) if memory.peak else (),
        input_bytes=_known_bytes(main, _runtime_inputs(main.graph)),
        output_bytes=_known_bytes(main, main.graph.output),
        ops=ops,
        opsets=opsets,
        nodes=total_nodes,
        subgraphs=subgraphs,
        notes=tuple(notes + count.notes),
        qdq_ops=_inventory(main, opsets, count.nodes, fold_qdq=True)[0],
        incomplete=tuple(incomplete),
        macs_by_dtype=dict(sorted((d, m) for d, m in macs_by_dtype.items() if m)),
        subgraph_macs=tuple(count.subgraphs),
        folded_weight_bytes=folded,
        folded_nodes=tuple(folded_nodes),
    )


def _known_bytes(scope: _Scope, values: Iterable[ValueInfoProto]) -> int:
    return sum(_tensor_bytes(scope.types, v.name) for v in values if _known(scope.types.get(v.name)))


def _resolve(model: ModelProto | str | os.PathLike[str]) -> tuple[ModelProto, str, Path | None]:
    """The checked model, the label that names it in messages, and the folder of its external data."""
    if isinstance(model, (str, os.PathLike)):
        return load_model(model), str(model), Path(model).parent
    label = f"model '{model.graph.name}'" if model.graph.name else "model"
    _check_envelope(model, label)
    check_structure(model, label)
    return model, label, None
