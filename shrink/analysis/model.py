"""Loading an ONNX file and checking its structure, plus the graph-walking helpers the analysis shares.

`load_model` checks the envelope (IR version, opset imports), external data (present, large enough),
initializers (data matches shape) and the graph (no dangling inputs, duplicate producers or
unimported domains); any problem is an `AnalysisError` naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import (
    AttributeProto,
    GraphProto,
    ModelProto,
    NodeProto,
    TensorProto,
    numpy_helper,
)

from shrink.analysis.dtypes import _nbytes
from shrink.errors import UsageError


class AnalysisError(UsageError):
    """The model cannot be analysed: a bad file, a broken graph or an unpinned input shape (exit 2)."""


# loading and structure ----------------------------------------------------------------------------

def load_model(path: str | Path) -> ModelProto:
    """Load an ONNX file and check its structure; any problem is an `AnalysisError` naming the file.

    External data is checked (present, large enough) but not read.
    """
    label = str(path)
    path = Path(path)
    if not path.exists():
        raise AnalysisError("no such file", where=label)
    if path.is_dir():
        raise AnalysisError("is a directory, not an ONNX file", where=label)
    data = path.read_bytes()
    if not data:
        raise AnalysisError("file is empty", where=label)
    model = ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise AnalysisError(f"not an ONNX model or truncated ({_first_line(exc) or 'protobuf parse failed'})",
                            where=label) from None
    _check_envelope(model, label)
    _check_external_data(model, path.parent, label)
    check_structure(model, label)
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _check_envelope(model: ModelProto, label: str) -> None:
    if model.ir_version <= 0 or not model.HasField("graph") or not model.opset_import:
        raise AnalysisError("not an ONNX model or truncated (no ir_version, graph or opset import)", where=label)
    if model.ir_version > onnx.IR_VERSION:
        raise AnalysisError(f"IR version {model.ir_version} is newer than the installed onnx supports ({onnx.IR_VERSION})",
                            where=label)
    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and not 1 <= opset.version <= newest:
            raise AnalysisError(f"imports ai.onnx opset {opset.version}, which does not exist (known: 1 to {newest})",
                                where=label)


def _external_location(tensor: TensorProto) -> tuple[str, int, int | None]:
    info = {e.key: e.value for e in tensor.external_data}
    length = int(info["length"]) if "length" in info else None
    return info.get("location", ""), int(info.get("offset", "0")), length


def _check_external_data(model: ModelProto, base: Path, label: str) -> None:
    for graph, _ in _walk_graphs(model.graph, ""):
        for tensor in graph.initializer:
            if tensor.data_location != TensorProto.EXTERNAL:
                continue
            location, offset, length = _external_location(tensor)
            file = base / location
            need = offset + (length if length is not None else _nbytes(tensor.data_type, _numel(tensor.dims)))
            if not location or not file.is_file():
                raise AnalysisError(f"initializer '{tensor.name}' is stored in external file '{location}', "
                                    "which is missing", where=label)
            if file.stat().st_size < need:
                raise AnalysisError(f"initializer '{tensor.name}' needs {need} bytes of '{location}', which "
                                    f"holds {file.stat().st_size} (truncated?)", where=label)


def check_structure(model: ModelProto, label: str) -> None:
    """Raise `AnalysisError` for dangling node inputs, unproduced outputs, duplicate producers,
    initializers whose data does not match their shape, and domains with no opset import."""
    imported = {_domain(o.domain) for o in model.opset_import}
    functions = {(_domain(f.domain), f.name) for f in model.functions}
    _check_graph(model.graph, "", set(), imported, functions, label)


def _check_graph(graph: GraphProto, prefix: str, outer: set[str], imported: set[str],
                 functions: set[tuple[str, str]], label: str) -> None:
    for tensor in graph.initializer:
        _check_initializer(tensor, label)
    defined = set(outer) | {v.name for v in graph.input} | {t.name for t in graph.initializer}
    defined |= {t.values.name for t in graph.sparse_initializer}
    producers: dict[str, str] = {}
    for i, node in enumerate(graph.node):
        for out in filter(None, node.output):
            if out in producers:
                raise AnalysisError(f"tensor '{out}' is produced by both node '{producers[out]}' and node "
                                    f"'{prefix}{_node_label(node, i)}'", where=label)
            producers[out] = prefix + _node_label(node, i)
    defined |= set(producers)
    for i, node in enumerate(graph.node):
        name = prefix + _node_label(node, i)
        domain = _domain(node.domain)
        if domain not in imported and (domain, node.op_type) not in functions:
            raise AnalysisError(f"node '{name}' ({node.op_type}) uses domain '{domain}', for which the model "
                                "imports no opset", where=label)
        for inp in filter(None, node.input):
            if inp not in defined:
                raise AnalysisError(f"node '{name}' input '{inp}' is produced by no node and is not an "
                                    "initializer or graph input", where=label)
        for attr_name, sub in _subgraphs_of(node):
            _check_graph(sub, f"{name}/{attr_name}/", defined, imported, functions, label)
    for out in graph.output:
        if out.name not in defined:
            raise AnalysisError(f"graph output '{out.name}' is produced by no node and is not an initializer "
                                "or graph input", where=label)


def _check_initializer(tensor: TensorProto, label: str) -> None:
    if tensor.data_location == TensorProto.EXTERNAL:
        return
    count = _numel(tensor.dims)
    if tensor.HasField("raw_data") and tensor.data_type != TensorProto.STRING:
        expected = _nbytes(tensor.data_type, count)
        if len(tensor.raw_data) != expected:
            raise AnalysisError(f"initializer '{tensor.name}' holds {len(tensor.raw_data)} bytes but its shape "
                                f"{list(tensor.dims)} needs {expected} (truncated?)", where=label)
        return
    try:
        size = numpy_helper.to_array(tensor).size
    except Exception as exc:  # noqa: BLE001 - onnx raises several types for malformed tensors
        raise AnalysisError(f"initializer '{tensor.name}' cannot be read: {_first_line(exc)}", where=label) from None
    if size != count:
        raise AnalysisError(f"initializer '{tensor.name}' holds {size} elements but its shape "
                            f"{list(tensor.dims)} needs {count} (truncated?)", where=label)


# graph walking ------------------------------------------------------------------------------------

def _numel(dims: Iterable[int]) -> int:
    return math.prod(int(d) for d in dims)


def _domain(domain: str) -> str:
    return domain or "ai.onnx"


def _node_label(node: NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}#{index}"


def _subgraphs_of(node: NodeProto) -> Iterator[tuple[str, GraphProto]]:
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.name, attr.g
        elif attr.type == AttributeProto.GRAPHS:
            for k, g in enumerate(attr.graphs):
                yield f"{attr.name}[{k}]", g


def _walk_graphs(graph: GraphProto, prefix: str) -> Iterator[tuple[GraphProto, str]]:
    yield graph, prefix
    for i, node in enumerate(graph.node):
        for attr_name, sub in _subgraphs_of(node):
            yield from _walk_graphs(sub, f"{prefix}{_node_label(node, i)}/{attr_name}/")


def _used_names(node: NodeProto) -> list[str]:
    """Inputs of a node plus the outer-scope names its subgraphs read."""
    used = [i for i in node.input if i]
    for _, sub in _subgraphs_of(node):
        used += sorted(_outer_refs(sub))
    return used


def _outer_refs(graph: GraphProto) -> set[str]:
    """Names a (sub)graph, or a graph nested in it, reads from an enclosing scope."""
    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    defined |= {t.values.name for t in graph.sparse_initializer}
    defined |= {o for node in graph.node for o in node.output if o}
    used = {u for node in graph.node for u in _used_names(node)} | {o.name for o in graph.output}
    return used - defined


def _inline_functions(model: ModelProto) -> ModelProto:
    """`model` with its local functions inlined (a copy), so that their nodes are counted like any other."""
    if not model.functions:
        return model
    from onnx.inliner import inline_local_functions

    return inline_local_functions(model)


# constants ----------------------------------------------------------------------------------------

def _constant_tensor(node: NodeProto) -> TensorProto | None:
    for attr in node.attribute:
        if attr.name == "value" and attr.type == AttributeProto.TENSOR:
            return attr.t
    return None


def _constant_values(graph: GraphProto) -> dict[str, TensorProto]:
    values = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            const = _constant_tensor(node)
            if const is not None:
                values[node.output[0]] = const
    return values
