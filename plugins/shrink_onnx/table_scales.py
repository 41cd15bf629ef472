"""Half-precision scales for 4-bit embedding tables (`quantize.weight_only` `table_scales: "float16"`).

ONNX Runtime's quantizer gives a `GatherBlockQuantized` table one float32 scale per block, so at block 32 the
scales of a 4-bit table are a quarter of its bytes (1 of every 5 MB of the MiniLM student's word table). The op
also takes float16 scales, and then returns float16 rows: `to_float16_scales` stores each table's scales in
float16 and casts the looked-up rows back to float32, so the rest of the graph is unchanged. float16 keeps ~3
significant digits of a scale (~1/2000 of a 4-bit step); a scale outside its normal range would lose more, and is
refused. onnx and numpy are imported by the caller's `run()` path only.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from shrink_common.onnx_graph import fresh_names

MS = "com.microsoft"
SMALLEST = float(np.finfo(np.float16).tiny)  # below it float16 is subnormal: fewer significant digits
LARGEST = float(np.finfo(np.float16).max)


def to_float16_scales(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int, int]:
    """`model` with every main-graph `GatherBlockQuantized` whose scales are a float32 initializer rewritten to
    float16 scales and a Cast of its output to float32; returns it, how many tables, and the bytes saved.
    Raises ValueError naming a table whose scales float16 cannot hold (outside its normal range) or that other nodes
    read too."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    readers = Counter(name for node in graph.node for name in node.input)
    fresh = fresh_names(graph)

    nodes: list[onnx.NodeProto] = []
    count = saved = 0
    for node in graph.node:
        nodes.append(node)
        if node.op_type != "GatherBlockQuantized" or node.domain != MS or len(node.input) < 3:
            continue
        scales = inits.get(node.input[2])
        if scales is None or scales.data_type != TensorProto.FLOAT:
            continue
        label = node.name or node.output[0]
        if readers.get(node.input[2], 0) != 1:
            raise ValueError(f"the scales of table {label!r} are read by other nodes too")
        values = numpy_helper.to_array(scales)
        used = np.abs(values[values != 0])
        if used.size and (used.min() < SMALLEST or used.max() > LARGEST):
            raise ValueError(f"table {label!r} has scales from {used.min():.3g} to {used.max():.3g}, outside float16's "
                             f"normal range [{SMALLEST:.3g}, {LARGEST:.3g}]")
        scales.CopyFrom(numpy_helper.from_array(values.astype(np.float16), scales.name))
        rows = fresh(f"{node.output[0]}_float16")
        out = node.output[0]
        node.output[0] = rows
        nodes.append(helper.make_node("Cast", [rows], [out], to=TensorProto.FLOAT, name=fresh(f"{label}/float32")))
        count += 1
        saved += values.size * 2
    del graph.node[:]
    graph.node.extend(nodes)
    return model, count, saved
