"""The text view of `shrink inspect`: summary, weights, the peak, operators with their MACs and the dtype
those MACs run in, If/Loop/Scan bodies, and what could not be computed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from shrink.cli.console import Console
from shrink.support.units import human_bytes


def _bytes(n: int) -> str:
    short = human_bytes(n)
    return short if short.endswith(" B") else f"{short} ({n:,} B)"


def dtype_split(macs_by_dtype: dict[str, int] | tuple[tuple[str, int], ...]) -> str:
    """`"int8 12% · float32 88%"`, largest first; one dtype alone is just its name."""
    items = sorted(dict(macs_by_dtype).items(), key=lambda kv: (-kv[1], kv[0]))
    total = sum(m for _, m in items)
    if not total:
        return ""
    if len(items) == 1:
        return items[0][0]
    return " · ".join(f"{dtype} {_percent(macs / total)}" for dtype, macs in items)


def _percent(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 or share == 0 else f"{share:.1%}" if share >= 0.001 else "<0.1%"


def render_analysis(console: Console, path: Path, analysis: Any) -> None:
    """Print the analysis of the model at `path`; incomplete figures are marked and explained."""
    incomplete = tuple(getattr(analysis, "incomplete", ()))
    bound = "≥ " if incomplete else ""
    summary = Table(title=f"{escape(path.name)}", title_justify="left", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("file size", _bytes(path.stat().st_size))
    summary.add_row("parameters", f"{analysis.params:,}")
    summary.add_row("weight bytes", _bytes(analysis.weight_bytes))
    summary.add_row("MACs", f"{bound}{analysis.macs:,}  (FLOPs = 2 × MACs = {2 * analysis.macs:,})"
                    + ("  [bold red]incomplete[/]" if incomplete else ""))
    split = dtype_split(getattr(analysis, "macs_by_dtype", {}))
    if split:
        summary.add_row("MACs run in", split)
    summary.add_row("peak activations (lower bound)", bound + _bytes(analysis.peak_activation_bytes))
    summary.add_row("arena plan (greedy by size)", bound + _bytes(analysis.arena_bytes))
    summary.add_row("peak at node", escape(analysis.peak_node))
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

    live = Table(title=f"live at the peak ({escape(analysis.peak_node)})", title_justify="left")
    live.add_column("tensor")
    live.add_column("bytes", justify="right")
    for tensor in analysis.peak_live[:10]:
        live.add_row(escape(tensor.name), f"{tensor.bytes:,}")
    console.print(live)

    console.print(_operators(analysis))
    bodies = tuple(getattr(analysis, "subgraph_macs", ()))
    if bodies:
        console.print(_bodies(bodies))
    elif analysis.subgraphs:
        console.print("subgraphs (If/Loop/Scan): " + escape(", ".join(analysis.subgraphs)))
    if incomplete:
        console.print("[bold red]incomplete[/]: these figures are lower bounds, and a gate that depends on them "
                      "cannot pass on them")
        for reason in incomplete:
            console.print(f"  - {escape(reason)}")
    if analysis.notes:
        console.print("notes:")
        for note in analysis.notes:
            console.print(f"  - {escape(note)}")


def _operators(analysis: Any) -> Table:
    """One row per (domain, op, opset, set of input dtypes): rows that differ only in how many inputs of
    each dtype a node has are merged, their counts and MACs added."""
    rows: dict[tuple[str, str, int, str], tuple[int, dict[str, int]]] = {}
    for use in analysis.ops:
        key = (use.domain, use.op_type, use.opset, ", ".join(dict.fromkeys(use.dtypes)) or "-")
        count, by_dtype = rows.get(key, (0, {}))
        for dtype, macs in getattr(use, "macs_by_dtype", ()):
            by_dtype[dtype] = by_dtype.get(dtype, 0) + macs
        rows[key] = (count + use.count, by_dtype)
    ops = Table(title="operators", title_justify="left")
    for col in ("domain", "op", "opset", "input dtypes", "count", "MACs", "MACs run in"):
        ops.add_column(col, justify="right" if col in ("count", "MACs") else "left")
    for (domain, op, opset, dtypes), (count, by_dtype) in rows.items():
        macs = sum(by_dtype.values())
        ops.add_row(domain, op, str(opset), dtypes, str(count), f"{macs:,}" if macs else "",
                    dtype_split(by_dtype) if macs else "")
    return ops


def _bodies(bodies: tuple[Any, ...]) -> Table:
    table = Table(title="If/Loop/Scan bodies", title_justify="left")
    for col in ("node", "op", "body", "MACs per run", "runs counted", "counted as"):
        table.add_column(col, justify="right" if col in ("MACs per run", "runs counted") else "left")
    for body in bodies:
        if body.op_type == "If":
            how = "the costlier branch (upper bound)" if body.times else "not counted: cheaper branch"
        elif body.times_known:
            how = "once per iteration"
        else:
            how = "[red]trip count unknown: counted once[/]"
        macs = f"{body.macs:,}" + ("" if body.complete else " [red](incomplete)[/]")
        table.add_row(escape(body.node), body.op_type, body.body, macs, f"×{body.times:,}", how)
    return table
