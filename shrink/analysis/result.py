"""What `analyze` returns: the `Analysis` record and its `LiveTensor` and `OpUse` entries."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LiveTensor:
    """An activation tensor live at the peak step."""

    name: str
    bytes: int


@dataclass(frozen=True)
class OpUse:
    """The nodes of one (domain, op_type, opset, input dtypes) combination.

    `macs` is what these nodes add to `Analysis.macs`: a node in an If branch that is not counted adds 0,
    a node in a Loop/Scan body adds its MACs once per counted iteration. `macs_by_dtype` splits it by the
    dtype the MACs run in (see `Analysis.macs_by_dtype`).
    """

    domain: str
    op_type: str
    opset: int
    dtypes: tuple[str, ...]
    count: int
    nodes: tuple[str, ...]
    macs: int = 0
    macs_by_dtype: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class SubgraphMacs:
    """The MACs of one If/Loop/Scan body and how often `Analysis.macs` counts it."""

    node: str  # the If/Loop/Scan node's path, e.g. "If_3" or "outer/body/If_3"
    op_type: str
    body: str  # the attribute holding the body: then_branch, else_branch, body
    macs: int  # one execution of the body (a lower bound when `complete` is False)
    complete: bool  # every MAC in the body could be counted
    times: int  # executions counted in Analysis.macs: 0 for the If branch not taken, the trip count of a Loop
    times_known: bool = True  # False when a Loop/Scan trip count is unknown (then counted once)


@dataclass(frozen=True)
class Analysis:
    """What `analyze` found. Bytes are exact for the pinned input shapes; MACs exclude elementwise ops.

    `peak_activation_bytes` is the liveness lower bound and `arena_bytes` (>= it) a greedy-by-size
    offset plan; neither includes weights or runtime overhead. An If/Loop/Scan node's step adds the
    working set of its costliest body. `nodes` and `ops` include the nodes inside bodies.

    MACs count an If's costlier branch (an upper bound; `subgraph_macs` has every body) and a Loop/Scan
    body once per iteration. `macs_by_dtype` splits `macs` by the dtype the MACs run in: "int8" for
    integer kernels (QLinear*, ConvInteger, MatMulInteger*, DynamicQuantize*, QGemm, QAttention) and for
    float ops whose data inputs are all DequantizeLinear of int8/uint8 (what onnxruntime fuses into int8
    kernels), "int4"/"int8" for MatMulNBits by its bits, else the float dtype of the op's inputs.

    `incomplete` has one reason per figure that could not be computed (unknown shapes, ops without a
    cost model, unknown trip counts): while it is non-empty, `macs` and the memory figures are lower
    bounds and a gate must not pass on them. `notes` are informational only.
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
    incomplete: tuple[str, ...] = ()
    macs_by_dtype: dict[str, int] = field(default_factory=dict)
    subgraph_macs: tuple[SubgraphMacs, ...] = ()
    folded_weight_bytes: int = 0  # what ONNX Runtime's constant folding at load adds to `weight_bytes` (it may be < 0)
    folded_nodes: tuple[str, ...] = ()  # main-graph nodes that read weights only: folded at load, they never run

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists for tuples, plain ints and strings)."""
        return {
            "params": self.params,
            "weight_bytes": self.weight_bytes,
            "folded_weight_bytes": self.folded_weight_bytes,
            "folded_nodes": list(self.folded_nodes),
            "weights_by_dtype": {k: dict(v) for k, v in self.weights_by_dtype.items()},
            "macs": self.macs,
            "macs_by_op": dict(self.macs_by_op),
            "peak_activation_bytes": self.peak_activation_bytes,
            "arena_bytes": self.arena_bytes,
            "peak_node": self.peak_node,
            "peak_live": [{"name": t.name, "bytes": t.bytes} for t in self.peak_live],
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "ops": [_op_dict(o) for o in self.ops],
            "qdq_ops": [_op_dict(o) for o in self.qdq_ops],
            "opsets": dict(self.opsets),
            "nodes": self.nodes,
            "subgraphs": list(self.subgraphs),
            "subgraph_macs": [asdict(s) for s in self.subgraph_macs],
            "macs_by_dtype": dict(self.macs_by_dtype),
            "incomplete": list(self.incomplete),
            "notes": list(self.notes),
        }


def _op_dict(use: OpUse) -> dict[str, Any]:
    return {"domain": use.domain, "op_type": use.op_type, "opset": use.opset, "dtypes": list(use.dtypes),
            "count": use.count, "nodes": list(use.nodes), "macs": use.macs,
            "macs_by_dtype": dict(use.macs_by_dtype)}
