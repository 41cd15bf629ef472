"""Rich tables for `shrink inspect`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from shrink.cli.console import Console
from shrink.support.units import human_bytes


def _bytes(n: int) -> str:
    short = human_bytes(n)
    return short if short.endswith(" B") else f"{short} ({n:,} B)"


def render_analysis(console: Console, path: Path, analysis: Any) -> None:
    summary = Table(title=f"{path.name}", title_justify="left", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("file size", _bytes(path.stat().st_size))
    summary.add_row("parameters", f"{analysis.params:,}")
    summary.add_row("weight bytes", _bytes(analysis.weight_bytes))
    summary.add_row("MACs", f"{analysis.macs:,}  (FLOPs = 2 × MACs = {2 * analysis.macs:,})")
    summary.add_row("peak activations (lower bound)", _bytes(analysis.peak_activation_bytes))
    summary.add_row("arena plan (greedy by size)", _bytes(analysis.arena_bytes))
    summary.add_row("peak at node", analysis.peak_node)
    summary.add_row("inputs / outputs", f"{_bytes(analysis.input_bytes)} / {_bytes(analysis.output_bytes)}")
    summary.add_row("nodes", f"{analysis.nodes:,}")
    summary.add_row("opsets", ", ".join(f"{d} {v}" for d, v in sorted(analysis.opsets.items())))
    console.print(summary)

    if analysis.weights_by_dtype:
        weights = Table(title="weights by dtype", title_justify="left")
        for col in ("dtype", "params", "bytes"):
            weights.add_column(col, justify="right" if col != "dtype" else "left")
        for dtype, row in sorted(analysis.weights_by_dtype.items()):
            weights.add_row(dtype, f"{row['params']:,}", f"{row['bytes']:,}")
        console.print(weights)

    live = Table(title=f"live at the peak ({analysis.peak_node})", title_justify="left")
    live.add_column("tensor")
    live.add_column("bytes", justify="right")
    for tensor in analysis.peak_live[:10]:
        live.add_row(tensor.name, f"{tensor.bytes:,}")
    console.print(live)

    ops = Table(title="operators", title_justify="left")
    for col in ("domain", "op", "opset", "input dtypes", "count", "MACs"):
        ops.add_column(col)
    for use in analysis.ops:
        macs = analysis.macs_by_op.get(use.op_type)
        ops.add_row(use.domain, use.op_type, str(use.opset), ", ".join(use.dtypes), str(use.count), f"{macs:,}" if macs else "")
    console.print(ops)
    if analysis.subgraphs:
        console.print("subgraphs (If/Loop/Scan): " + ", ".join(analysis.subgraphs))
