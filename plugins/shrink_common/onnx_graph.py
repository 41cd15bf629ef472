"""ONNX graph helpers the families' passes share: self-contained saving, op counts, names for new nodes, the
target's opset check, and the checked, simplified result of an export. onnx (and onnxsim) are imported only when called."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx

    from shrink import Context, Target


def has_external_data(proto: onnx.ModelProto) -> bool:
    from onnx.external_data_helper import uses_external_data

    tensors = list(proto.graph.initializer)
    for node in all_nodes(proto):
        tensors += [a.t for a in node.attribute if a.HasField("t")]
    return any(uses_external_data(t) for t in tensors)


def inline_copy(path: Path, ctx: Context, stem: str) -> Path:
    """`path` itself when it holds all its weights, else a self-contained copy in the workdir."""
    import onnx

    if not has_external_data(onnx.load(str(path), load_external_data=False)):
        return path
    copy = ctx.new_path(stem, ".onnx")
    save_inline(onnx.load(str(path)), copy)
    return copy


def save_inline(proto: onnx.ModelProto, path: Path) -> None:
    """Save with every tensor inside the file: no reference to a (temporary) external data file."""
    import onnx
    from onnx.external_data_helper import convert_model_from_external_data

    convert_model_from_external_data(proto)
    onnx.save(proto, str(path))
    if has_external_data(onnx.load(str(path), load_external_data=False)):  # pragma: no cover - defensive
        raise RuntimeError(f"{path.name} still references external data after saving")


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """`graph` and every graph nested in it (If/Loop/Scan bodies, at any depth)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _graphs(sub)


def all_nodes(proto: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Every node, including those in subgraphs (If/Loop/Scan bodies) and local functions."""
    found: list[Any] = [node for graph in _graphs(proto.graph) for node in graph.node]
    for function in proto.functions:
        found.extend(function.node)
    return found


def fresh_names(graph: onnx.GraphProto) -> Callable[[str], str]:
    """A namer for the nodes and tensors a rewrite adds to `graph`: `name`, or `name_1`, `name_2`, ... when the graph
    or one of its subgraphs (inputs, initializers, node names and outputs; a name must be unique in the whole model)
    or an earlier call already uses it."""
    taken: set[str] = set()
    for g in _graphs(graph):
        taken |= ({i.name for i in g.input} | {t.name for t in g.initializer}
                  | {n.name for n in g.node} | {o for n in g.node for o in n.output})

    def fresh(name: str) -> str:
        candidate, k = name, 1
        while candidate in taken:
            candidate, k = f"{name}_{k}", k + 1
        taken.add(candidate)
        return candidate

    return fresh


def op_counts(proto: onnx.ModelProto) -> Counter[str]:
    """Node counts by op type; ops outside the default domain are written `domain:Op`."""
    return Counter(f"{n.domain}:{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type for n in proto.graph.node)


def prune_opset_imports(proto: onnx.ModelProto) -> None:
    """Drop opset imports no node uses (ONNX Runtime writes a dozen: training, nchwc, aten, ...)."""
    used = {n.domain or "" for n in all_nodes(proto)} | {"", "ai.onnx"}
    used |= {f.domain for f in proto.functions}
    keep = [imp for imp in proto.opset_import if (imp.domain or "") in used]
    del proto.opset_import[:]
    proto.opset_import.extend(keep)


def opset_problems(proto: onnx.ModelProto, target: Target) -> list[str]:
    """Domains or opset versions used by the model's nodes that the target's `opset` does not accept."""
    allowed = target.get("opset")
    if not allowed:
        return []
    versions = {(imp.domain or "ai.onnx"): imp.version for imp in proto.opset_import}
    by_domain: dict[str, Counter[str]] = {}
    for node in all_nodes(proto):
        by_domain.setdefault(node.domain or "ai.onnx", Counter())[node.op_type] += 1
    by_domain.setdefault("ai.onnx", Counter())
    problems = []
    for domain, ops in sorted(by_domain.items()):
        listed = ", ".join(f"{op}×{n}" for op, n in sorted(ops.items()))
        span = allowed.get(domain)
        if span is None:
            problems.append(f"domain {domain!r} ({listed}) is not in target {target.name}'s opsets "
                            f"({', '.join(sorted(allowed))})")
            continue
        version = versions.get(domain)
        if version is not None and not span["min"] <= version <= span["max"]:
            problems.append(f"{domain} opset {version} is outside target {target.name}'s range {span['min']}–{span['max']}"
                            + (f" ({listed})" if domain != "ai.onnx" else ""))
    return problems


def check_and_simplify(path: Path, opset: int, exporter: str, simplify: bool, ctx: Context) -> tuple[Any, int, bool]:
    """The full ONNX checker, the opset the exporter really wrote, then onnxsim (kept only when it succeeds).

    Returns the final proto, the node count before simplification and whether it was simplified.
    """
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    proto = onnx.load(str(path))
    got = {o.domain or "ai.onnx": o.version for o in proto.opset_import}.get("ai.onnx")
    if got != opset:
        raise RuntimeError(f"the {exporter} exporter wrote opset {got}, not the requested {opset}")
    nodes_before = len(proto.graph.node)
    simplified = False
    if simplify:
        ctx.report(0.5, "simplifying with onnxsim")
        from onnxsim import simplify as onnxsim_simplify

        candidate, ok = onnxsim_simplify(proto)
        if ok:
            proto, simplified = candidate, True
            onnx.save(proto, str(path))
            onnx.checker.check_model(str(path), full_check=True)
    return proto, nodes_before, simplified
