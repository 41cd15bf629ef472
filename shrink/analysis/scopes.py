"""Typed scopes: the main graph and every If/Loop/Scan body, each with a type for the tensors it names.

Each scope is typed in up to three steps, each only when the one before left shapes unknown:

1. ONNX shape inference: of the whole model for the main graph; of the body made standalone for a
   subgraph (the outer tensors it reads become inputs with the outer scope's shapes, or initializers
   where their values are static, and its formal inputs get the types the If/Loop/Scan node feeds it);
2. static shape computations (`static_values`) folded into constants and inference run again, which
   is what torch's `F.pad` (`Shape -> Gather -> Concat -> Pad`) needs, in any scope;
3. one onnxruntime run of the scope on zero inputs (`measure`).

What is still unknown is listed in `_Scope.unknown`, never guessed; the analysis reports it as
incomplete. `values` holds the static values a scope can see, for trip counts and for nested bodies.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from onnx import GraphProto, ModelProto, NodeProto, numpy_helper

from shrink.analysis.bodies import constant_trip_count, formal_types, output_types, value_info
from shrink.analysis.bodies import standalone as standalone_body
from shrink.analysis.measure import _ort_types
from shrink.analysis.model import _first_line, _node_label, _outer_refs, _subgraphs_of
from shrink.analysis.shapes import _graph_types, _infer, _known, _runtime_inputs, _Type, _value_type
from shrink.analysis.static_values import _static_values

_FOLD_ROUNDS = 4
_BODY_ORDER = {"then_branch": 0, "else_branch": 1}


@dataclass
class _Scope:
    """One graph with the types of every tensor it can see (its own and the enclosing scopes')."""

    graph: GraphProto
    prefix: str  # "" for the main graph, "If_3/then_branch/" for a body
    types: dict[str, _Type]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    measured: set[str] = field(default_factory=set)  # shapes read off an onnxruntime run
    unknown: tuple[str, ...] = ()  # this scope's own tensors whose shape stayed unknown
    children: dict[int, list[tuple[str, _Scope]]] = field(default_factory=dict)  # node index -> bodies
    notes: list[str] = field(default_factory=list)

    def walk(self) -> Iterator[_Scope]:
        """This scope and every scope nested in it, depth first."""
        yield self
        for bodies in self.children.values():
            for _, child in bodies:
                yield from child.walk()


@dataclass(frozen=True)
class _Context:
    model: ModelProto
    base_dir: Path | None

    @property
    def opset(self) -> int:
        return next((int(o.version) for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 1)


def _typed_scopes(pinned: ModelProto, base_dir: Path | None) -> tuple[_Scope, str | None]:
    """The typed main scope (children included) and the strict shape-inference error, if any."""
    inferred, error = _infer(pinned)
    main = _Scope(inferred.graph, "", _graph_types(inferred.graph))
    context = _Context(pinned, base_dir)
    _settle(context, main, pinned, {}, {})
    return main, error


def _own_names(graph: GraphProto) -> list[str]:
    """The tensors a scope defines: its formal inputs, its nodes' outputs and its outputs defined there."""
    weights = {t.name for t in graph.initializer}
    names = dict.fromkeys(v.name for v in graph.input if v.name not in weights)
    for node in graph.node:
        names.update(dict.fromkeys(o for o in node.output if o))
    outer = _outer_refs(graph)
    names.update(dict.fromkeys(o.name for o in graph.output if o.name not in outer and o.name not in weights))
    return list(names)


def _settle(context: _Context, scope: _Scope, standalone: ModelProto, outer: Mapping[str, np.ndarray],
            feeds: Mapping[str, np.ndarray]) -> None:
    """Fill `scope.types` (steps 2 and 3 above), `scope.values`, `scope.unknown` and `scope.children`.

    Bodies are typed before the onnxruntime step: the outputs of an If/Loop/Scan whose bodies say their
    shapes need no run (a run of a Loop that ends on its condition could take forever)."""
    missing = [n for n in _own_names(scope.graph) if not _known(scope.types.get(n))]
    nested = any(True for node in scope.graph.node for _ in _subgraphs_of(node))
    if missing or nested:
        scope.values = _static_values(scope.graph, scope.types, outer, context.opset, scope.measured)
    folded: dict[str, np.ndarray] = {}
    derived: dict[str, _Type] = {}
    for _ in range(_FOLD_ROUNDS if missing else 0):
        produced = {o for node in scope.graph.node for o in node.output if o}
        new = {n: v for n, v in scope.values.items() if n in produced and n not in folded}
        if not new:
            break
        folded.update(new)
        missing = _reinfer(scope, standalone, folded, derived, missing)
        if not missing:
            break
        scope.values = _static_values(scope.graph, scope.types, outer, context.opset, scope.measured)
    if nested:
        _type_children(context, scope)
        derived = {}
        for index, bodies in scope.children.items():
            node = scope.graph.node[index]
            trips = constant_trip_count(node, scope.types, scope.values)
            found = output_types(node, [(b.graph, b.types) for _, b in bodies], trips)
            derived.update({n: t for n, t in found.items() if n in missing})
        if derived:
            scope.types.update(derived)
            missing = _reinfer(scope, standalone, folded, derived, [n for n in missing if n not in derived])
    if missing:
        before = len(missing)
        missing = _measure(context, scope, standalone, missing, feeds)
        if nested and len(missing) < before:
            _type_children(context, scope)  # outer tensors the bodies read may be known now
    scope.unknown = tuple(missing)


def _reinfer(scope: _Scope, standalone: ModelProto, folded: Mapping[str, np.ndarray], derived: Mapping[str, _Type],
             missing: list[str]) -> list[str]:
    """Infer again with static values as initializers and `derived` types declared; what is still missing."""
    model = _with_constants(standalone, folded)
    model.graph.value_info.extend(value_info(name, found, None) for name, found in derived.items())
    inferred, _ = _infer(model)
    for name, found in _graph_types(inferred.graph).items():
        if _known(found) and not _known(scope.types.get(name)):
            scope.types[name] = found
    return [n for n in missing if not _known(scope.types.get(n))]


def _measure(context: _Context, scope: _Scope, standalone: ModelProto, missing: list[str],
             feeds: Mapping[str, np.ndarray]) -> list[str]:
    where = f"'{scope.prefix[:-1]}'" if scope.prefix else "the model"
    unpinned = [v.name for v in _runtime_inputs(standalone.graph) if v.name not in feeds
                and not _known(_value_type(v))]
    if unpinned:
        scope.notes.append(f"onnxruntime cannot run {where} to measure its shapes: shape of '{unpinned[0]}' "
                           "unknown")
        return missing
    try:
        measured = _ort_types(standalone, missing, context.base_dir, feeds)
    except Exception as exc:  # noqa: BLE001 - any onnxruntime failure leaves the shapes unknown, with the reason
        scope.notes.append(f"onnxruntime could not run {where} to measure its shapes: {_first_line(exc)}")
        return missing
    for name in missing:
        if name in measured:
            scope.types[name] = measured[name]
            scope.measured.add(name)
    return [n for n in missing if not _known(scope.types.get(n))]


def _with_constants(model: ModelProto, values: Mapping[str, np.ndarray]) -> ModelProto:
    """A copy of `model` whose nodes with only folded outputs are replaced by initializers of those values."""
    copy = ModelProto()
    copy.CopyFrom(model)
    kept = [n for n in copy.graph.node if not (n.output and all(o in values for o in n.output if o))]
    removed = {o for n in copy.graph.node if n not in kept for o in n.output if o}
    del copy.graph.node[:]
    copy.graph.node.extend(kept)
    copy.graph.initializer.extend(numpy_helper.from_array(values[name], name) for name in sorted(removed))
    return copy


# bodies ---------------------------------------------------------------------------------------------

def _type_children(context: _Context, scope: _Scope) -> None:
    for i, node in enumerate(scope.graph.node):
        bodies = sorted(_subgraphs_of(node), key=lambda b: _BODY_ORDER.get(b[0], len(_BODY_ORDER)))
        if bodies:
            prefix = f"{scope.prefix}{_node_label(node, i)}/"
            scope.children[i] = [(attr, _type_body(context, scope, node, sub, f"{prefix}{attr}/"))
                                 for attr, sub in bodies]


def _type_body(context: _Context, outer: _Scope, node: NodeProto, body: GraphProto, prefix: str) -> _Scope:
    formal = formal_types(node, body, outer.types)
    types = {**outer.types, **_graph_types(body)}
    types.update({name: found for name, found in formal.items() if found is not None})
    scope = _Scope(body, prefix, types, measured=set(outer.measured))
    feeds: dict[str, np.ndarray] = {}
    if node.op_type == "Loop" and len(body.input) >= 2:
        feeds = {body.input[0].name: np.array(0, np.int64), body.input[1].name: np.array(True)}
    missing = [n for n in _own_names(body) if not _known(types.get(n))]
    nested = any(True for n in body.node for _ in _subgraphs_of(n))
    if missing or nested:
        standalone = standalone_body(context.model, body, formal, outer.types, outer.values)
        inferred, _ = _infer(standalone)
        for name, found in _graph_types(inferred.graph).items():
            if _known(found) and (not _known(scope.types.get(name)) or name in formal):
                scope.types[name] = found
        _settle(context, scope, standalone, outer.values, feeds)
    return scope


