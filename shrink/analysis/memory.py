"""Activation memory: topological order, tensor lifetimes, the liveness peak and a greedy arena plan.

Tensors computable from weights alone are not activations; view ops alias their input. An If/Loop/Scan
node holds, during its step, the working set of its costliest body (that body's own peak and arena,
computed the same way, recursively); the outer tensors a body reads stay live until that step.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
from onnx import GraphProto, TensorProto

from shrink.analysis.dtypes import _nbytes
from shrink.analysis.model import AnalysisError, _node_label, _subgraphs_of, _used_names
from shrink.analysis.scopes import _Scope
from shrink.analysis.shapes import _runtime_inputs, _tensor_bytes, _Types, _UnknownShape

_VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
_RANDOM_OPS = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                         "Multinomial", "Bernoulli"})


# weight-only tensors ----------------------------------------------------------------------------

def _constant_names(graph: GraphProto, order: list[int], outer: Collection[str] = ()) -> set[str]:
    """Tensors computable from weights alone: initializers, Constant outputs and what follows from them
    (`outer`: such tensors of the enclosing scopes)."""
    const = set(outer) | {t.name for t in graph.initializer} | {t.values.name for t in graph.sparse_initializer}
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


_KEPT_AT_LOAD = frozenset({"DequantizeLinear", "QuantizeLinear"})  # ONNX Runtime keeps Q/DQ for its QDQ fusions


def _folded_at_load(scope: _Scope, label: str) -> tuple[int, list[str], list[str]]:
    """What ONNX Runtime's constant folding adds to the stored weights when it loads the main graph: the outputs
    of nodes that read only weights (Q/DQ nodes excepted) which a run-time node reads, less the initializers only
    folded nodes read (dropped once folded); the folded tensors whose size is unknown; and the folded nodes (their
    labels, as the op inventory names them), which never run."""
    graph = scope.graph
    order = _topological_order(graph, label)
    stored = {t.name: t for t in graph.initializer}
    folded = set(stored) | {t.values.name for t in graph.sparse_initializer}
    made: set[str] = set()
    runtime: list[int] = []
    gone: list[str] = []
    for index in order:
        node = graph.node[index]
        inputs = [i for i in node.input if i]
        if node.domain in ("", "ai.onnx") and node.op_type == "Constant":  # an initializer once loaded
            folded.update(filter(None, node.output))
            gone.append(_node_label(node, index))
        elif (inputs and all(i in folded for i in inputs) and node.op_type not in _KEPT_AT_LOAD | _RANDOM_OPS
              and not any(True for _ in _subgraphs_of(node))):
            folded.update(filter(None, node.output))
            made.update(filter(None, node.output))
            gone.append(_node_label(node, index))
        else:
            runtime.append(index)
    read = {name for index in runtime for name in _used_names(graph.node[index])} | {o.name for o in graph.output}
    added, unknown = 0, []
    for name in sorted(made & read):
        try:
            added += _tensor_bytes(scope.types, name)
        except _UnknownShape:
            unknown.append(name)
    if made:
        added -= sum(_nbytes(t.data_type, int(np.prod(t.dims, dtype=np.int64))) for name, t in stored.items()
                     if name not in read and t.data_type != TensorProto.STRING)
    return added, unknown, gone


# liveness and arena ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Life:
    name: str
    bytes: int
    start: int
    end: int


@dataclass
class _Memory:
    """One scope's activation memory: `lives` for the peak, `arena_lives` for the arena plan (they differ
    only in the working sets of bodies), and the tensors whose size is unknown (nested ones included)."""

    order: list[int]
    lives: list[_Life]
    arena_lives: list[_Life]
    peak: int
    step: int
    arena: int
    unknown: list[str] = field(default_factory=list)


def _scope_memory(scope: _Scope, label: str, outer_const: Collection[str] = ()) -> _Memory:
    """Peak and arena of `scope`, each If/Loop/Scan step holding the working set of its costliest body."""
    order = _topological_order(scope.graph, label)
    const = _constant_names(scope.graph, order, outer_const)
    lives, unknown = _lifetimes(scope.graph, order, const, scope.types, _if_output_bytes(scope))
    arena_lives = list(lives)
    for step, index in enumerate(order):
        bodies = [(attr, _scope_memory(body, label, const)) for attr, body in scope.children.get(index, [])]
        if not bodies:
            continue
        for _, memory in bodies:
            unknown += memory.unknown
        name = f"{scope.prefix}{_node_label(scope.graph.node[index], index)}"
        attr, worst = max(bodies, key=lambda b: b[1].peak)
        lives.append(_Life(f"{name}/{attr} (working set)", worst.peak, step, step))
        attr, worst = max(bodies, key=lambda b: b[1].arena)
        arena_lives.append(_Life(f"{name}/{attr} (working set)", worst.arena, step, step))
    peak, step = _peak(lives, len(order))
    return _Memory(order, lives, arena_lives, peak, step, _arena(arena_lives), unknown)


def _if_output_bytes(scope: _Scope) -> dict[str, int]:
    """An If output's bytes: those of the larger branch's output (the run on zeros took one branch)."""
    sizes: dict[str, int] = {}
    for index, bodies in scope.children.items():
        node = scope.graph.node[index]
        if node.op_type != "If":
            continue
        for k, out in enumerate(node.output):
            try:
                sizes[out] = max(_tensor_bytes(body.types, body.graph.output[k].name) for _, body in bodies)
            except (_UnknownShape, IndexError):
                pass
    return sizes


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


def _lifetimes(graph: GraphProto, order: list[int], const: set[str], types: _Types,
               sizes: Mapping[str, int] | None = None) -> tuple[list[_Life], list[str]]:
    """Every activation's live range in steps of `order`, and the activations whose size is unknown
    (`sizes` overrides the size that `types` gives)."""
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
    lives, unknown = [], []
    for name, first in start.items():
        try:
            size = sizes[name] if sizes and name in sizes else _tensor_bytes(types, name)
        except _UnknownShape:
            unknown.append(name)
            continue
        lives.append(_Life(name, size, first, end[name]))
    return lives, unknown


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
