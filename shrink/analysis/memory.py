"""Activation memory: topological order, tensor lifetimes, the liveness peak and a greedy arena plan.

Tensors computable from weights alone are not activations; view ops alias their input.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
from onnx import GraphProto, NodeProto

from shrink.analysis.model import AnalysisError, _node_label, _subgraphs_of
from shrink.analysis.shapes import _runtime_inputs, _tensor_bytes, _Types

_VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
_RANDOM_OPS = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                         "Multinomial", "Bernoulli"})


# weight-only tensors ----------------------------------------------------------------------------

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
