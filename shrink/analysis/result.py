"""What `analyze` returns: the `Analysis` record and its `LiveTensor` and `OpUse` entries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LiveTensor:
    """An activation tensor live at the peak step."""

    name: str
    bytes: int


@dataclass(frozen=True)
class OpUse:
    """The nodes of one (domain, op_type, opset, input dtypes) combination."""

    domain: str
    op_type: str
    opset: int
    dtypes: tuple[str, ...]
    count: int
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Analysis:
    """What `analyze` found. Bytes are exact for the pinned input shapes; MACs exclude elementwise ops.

    `peak_activation_bytes` is the liveness lower bound and `arena_bytes` (>= it) a greedy-by-size
    offset plan; neither includes weights, runtime overhead or subgraph activations. `nodes` and
    `ops` include the nodes inside If/Loop/Scan bodies. `notes` lists what could not be counted exactly.
    """

    params: int
    weight_bytes: int
    weights_by_dtype: dict[str, dict[str, int]]
    macs: int
    macs_by_op: dict[str, int]
    peak_activation_bytes: int
    arena_bytes: int
    peak_node: str
    peak_live: tuple[LiveTensor, ...]
    input_bytes: int
    output_bytes: int
    ops: tuple[OpUse, ...]
    opsets: dict[str, int]
    nodes: int
    subgraphs: tuple[str, ...]
    notes: tuple[str, ...] = ()
    qdq_ops: tuple[OpUse, ...] = ()  # `ops` as an integer runtime's converter sees them: DequantizeLinear inputs folded


    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists for tuples, plain ints and strings)."""
        return {
            "params": self.params,
            "weight_bytes": self.weight_bytes,
            "weights_by_dtype": {k: dict(v) for k, v in self.weights_by_dtype.items()},
            "macs": self.macs,
            "macs_by_op": dict(self.macs_by_op),
            "peak_activation_bytes": self.peak_activation_bytes,
            "arena_bytes": self.arena_bytes,
            "peak_node": self.peak_node,
            "peak_live": [{"name": t.name, "bytes": t.bytes} for t in self.peak_live],
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "ops": [{"domain": o.domain, "op_type": o.op_type, "opset": o.opset, "dtypes": list(o.dtypes),
                     "count": o.count, "nodes": list(o.nodes)} for o in self.ops],
            "opsets": dict(self.opsets),
            "nodes": self.nodes,
            "subgraphs": list(self.subgraphs),
            "notes": list(self.notes),
        }
