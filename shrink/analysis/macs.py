"""Counting MACs over the typed scopes: each node by its rule (`op_costs`), an If by its costlier branch,
a Loop/Scan body once per iteration, and a reason for everything that could not be counted.

Nothing that cannot be counted counts 0 silently: an unknown shape, an op without a cost model, an If
branch that is incomplete or a trip count that is not constant each add a reason to `incomplete`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from onnx import NodeProto

from shrink.analysis.bodies import MAX_TRIP_COUNT
from shrink.analysis.dtypes import dtype_name
from shrink.analysis.model import _domain, _node_label
from shrink.analysis.op_costs import MAC_RULES, has_cost_model, mac_dtype
from shrink.analysis.result import SubgraphMacs
from shrink.analysis.scopes import _Scope
from shrink.analysis.shapes import _Uncounted, _UnknownShape

_LISTED = 3  # names quoted in one reason

NodeKey = tuple[str, int]  # (scope prefix, node index)


@dataclass
class _MacCount:
    nodes: dict[NodeKey, tuple[int, str, str]] = field(default_factory=dict)  # MACs counted, dtype, op type
    incomplete: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    uncosted: dict[str, list[str]] = field(default_factory=dict)  # "domain:op" -> node paths
    subgraphs: list[SubgraphMacs] = field(default_factory=list)

    def add(self, other: _MacCount, times: int = 1) -> None:
        """Add `other` counted `times` times (0 keeps its nodes and reasons but none of its MACs)."""
        self.nodes.update({key: (macs * times, dtype, op) for key, (macs, dtype, op) in other.nodes.items()})
        self.incomplete += other.incomplete
        self.notes += other.notes
        for op, names in other.uncosted.items():
            self.uncosted.setdefault(op, []).extend(names)
        self.subgraphs += [replace(s, times=s.times * times) for s in other.subgraphs]

    @property
    def total(self) -> int:
        return sum(macs for macs, _, _ in self.nodes.values())

    @property
    def complete(self) -> bool:
        return not self.incomplete and not self.uncosted

    def reasons(self) -> list[str]:
        """`incomplete` plus one reason per op type without a cost model."""
        return self.incomplete + [f"op {op} ×{len(names)} has no cost model: {_quoted(names)}"
                                  for op, names in sorted(self.uncosted.items())]


def _quoted(names: Sequence[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _count_macs(scope: _Scope) -> _MacCount:
    """MACs of `scope` and the bodies nested in it, with the reasons for what could not be counted."""
    count = _MacCount()
    dequantized, quantized = _qdq_maps(scope)
    unknown: list[str] = []
    for i, node in enumerate(scope.graph.node):
        name = scope.prefix + _node_label(node, i)
        if i in scope.children:
            count.add(_control_flow(node, name, scope, scope.children[i]))
            continue
        domain = _domain(node.domain)
        rule = MAC_RULES.get((domain, node.op_type))
        if rule is None:
            if not has_cost_model(domain, node.op_type):
                count.uncosted.setdefault(f"{domain}:{node.op_type}", []).append(name)
            continue
        try:
            macs = rule(node, scope.types)
        except _UnknownShape as exc:
            unknown.append(f"'{name}' ({node.op_type}: shape of '{exc.name}')")
            continue
        except _Uncounted as exc:
            count.incomplete.append(f"node '{name}' ({node.op_type}): {exc.reason}: its MACs are not counted")
            continue
        count.nodes[(scope.prefix, i)] = (macs, mac_dtype(node, scope.types, dequantized, quantized), node.op_type)
    if unknown:
        where = f"'{scope.prefix[:-1]}'" if scope.prefix else "the main graph"
        shown = ", ".join(unknown[:_LISTED]) + (f" and {len(unknown) - _LISTED} more" if len(unknown) > _LISTED else "")
        count.incomplete.append(f"{where}: MACs of {len(unknown)} node(s) not counted, shapes unknown: {shown}")
    return count


def _qdq_maps(scope: _Scope) -> tuple[dict[str, str], set[str]]:
    """DequantizeLinear outputs -> their input's dtype; tensors consumed only by QuantizeLinear nodes."""
    dequantized: dict[str, str] = {}
    consumers: dict[str, set[str]] = {}
    for node in scope.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in scope.types:
            dequantized[node.output[0]] = dtype_name(scope.types[node.input[0]].elem)
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    return dequantized, {name for name, ops in consumers.items() if ops == {"QuantizeLinear"}}


def _control_flow(node: NodeProto, name: str, outer: _Scope, bodies: list[tuple[str, _Scope]]) -> _MacCount:
    counted = [(attr, _count_macs(body), body) for attr, body in bodies]
    result = _MacCount()
    if node.op_type == "If":
        chosen = max(range(len(counted)), key=lambda k: counted[k][1].total)
        for k, (attr, count, _) in enumerate(counted):
            result.add(count, 1 if k == chosen else 0)
            result.subgraphs.append(SubgraphMacs(name, "If", attr, count.total, count.complete, int(k == chosen)))
        partial = [attr for attr, count, _ in counted if not count.complete]
        split = ", ".join(f"{attr} {count.total:,}" for attr, count, _ in counted)
        if partial:
            result.incomplete.append(f"node '{name}' (If): {' and '.join(partial)} incomplete: MACs are a lower "
                                     f"bound ({split} MACs counted)")
        else:
            result.notes.append(f"If '{name}': the costlier branch counted, an upper bound ({split} MACs)")
        return result
    if node.op_type in ("Loop", "Scan") and counted:
        attr, count, body = counted[0]
        trips, why = _trip_count(node, outer, body)
        result.add(count, 1 if trips is None else trips)
        result.subgraphs.append(SubgraphMacs(name, node.op_type, attr, count.total, count.complete,
                                             1 if trips is None else trips, trips is not None))
        if trips is None:
            result.incomplete.append(f"{node.op_type} '{name}': {why}: body MACs counted once, a lower bound")
        else:
            result.notes.append(f"{node.op_type} '{name}': body counted {trips} times ({why})")
        result.incomplete += _changing_carried(node, name, body)
        return result
    for attr, count, body in counted:
        result.add(count)
        result.subgraphs.append(SubgraphMacs(name, node.op_type, attr, count.total, count.complete, 1, False))
    result.incomplete.append(f"node '{name}' ({_domain(node.domain)}:{node.op_type}): how often its subgraphs run "
                             "is unknown: counted once, a lower bound")
    return result


def _trip_count(node: NodeProto, outer: _Scope, body: _Scope) -> tuple[int | None, str]:
    """The iterations of a Loop/Scan and how they are known, or None and why not."""
    if node.op_type == "Scan":
        scans = next((int(a.i) for a in node.attribute if a.name == "num_scan_inputs"), 0)
        axes = next((list(a.ints) for a in node.attribute if a.name == "scan_input_axes"), []) or [0]
        first = node.input[len(node.input) - scans] if scans else ""
        found = outer.types.get(first)
        if not first or found is None or found.shape is None or not found.shape:
            return None, f"sequence length unknown (shape of '{first}' unknown)"
        return found.shape[axes[0] % len(found.shape)], f"length of '{first}' along axis {axes[0]}"
    trip = node.input[0] if node.input else ""
    if not trip:
        return None, "no trip count: the loop runs until its condition is false"
    value = outer.values.get(trip)
    if value is None or value.size != 1:
        return None, f"trip count '{trip}' not constant"
    count = int(value.reshape(-1)[0])
    if not 0 <= count < MAX_TRIP_COUNT:
        return None, f"trip count {count} is no bound: the loop runs until its condition is false"
    cond = node.input[1] if len(node.input) > 1 else ""
    ends_early = bool(cond) and len(body.graph.output) > 0 and body.graph.output[0].name not in _passthrough(body)
    return count, f"trip count {count}" + (", at most: the condition may end it earlier" if ends_early else "")


def _passthrough(body: _Scope) -> set[str]:
    """Names equal to the body's condition input: itself and Identity copies of it."""
    same = {body.graph.input[1].name} if len(body.graph.input) > 1 else set()
    for node in body.graph.node:
        if node.op_type == "Identity" and node.input and node.input[0] in same:
            same.add(node.output[0])
    return same


def _changing_carried(node: NodeProto, name: str, body: _Scope) -> list[str]:
    """A reason per loop-carried tensor whose shape changes across iterations (only the first is typed)."""
    if node.op_type != "Loop":
        return []
    reasons = []
    for inp, out in zip(body.graph.input[2:], body.graph.output[1:]):
        first, then = body.types.get(inp.name), body.types.get(out.name)
        if first is None or then is None or first.shape is None or then.shape is None:
            continue
        if first.shape != then.shape:
            reasons.append(f"Loop '{name}': loop-carried '{inp.name}' changes shape {list(first.shape)} -> "
                           f"{list(then.shape)}: MACs use the first iteration's shapes")
    return reasons
