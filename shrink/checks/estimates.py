"""Deterministic latency estimates for a target: the MACs of each dtype at that dtype's calibrated
throughput, plus the per-call overhead and each node's dispatch overhead at its dtype's rate.

A profile's `throughput` gives GMAC/s ranges per dtype (`float32`, `int8`, `float16`, ...); a dtype it
does not list runs at the nearest one it does (int4 at the int8 rate, else float32). `node_overhead_us`
is one figure for every node, or one per dtype (`{"float32": 2.5, "int8": 2.95}`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shrink.api.checks import Subject

EIGHT_BIT = frozenset({"int8", "uint8", "int4", "uint4"})
HALF = frozenset({"float16", "bfloat16"})
FALLBACK = {"int4": ("int8", "float32"), "int8": ("float32",), "float16": ("float32",), "bfloat16": ("float16", "float32")}


def node_dtype(dtypes: Iterable[str]) -> str:
    """The dtype a node runs in, from its input dtypes: 8-bit (or narrower) data makes it an int8 kernel."""
    found = set(dtypes)
    if found & EIGHT_BIT:
        return "int8"
    if found & HALF:
        return "float16"
    return "float32"


def nodes_by_dtype(ops: Iterable[Any], folded: Iterable[str] = ()) -> dict[str, int]:
    """Node counts by the dtype they run in, from an analysis's op inventory (`OpUse` records or their dicts),
    leaving out the `folded` nodes (`Analysis.folded_nodes`: constant-folded at load, they never run)."""
    gone = Counter(folded)
    counts: dict[str, int] = {}
    for use in ops:
        dtypes, count, names = ((use["dtypes"], use["count"], use.get("nodes", ())) if isinstance(use, Mapping)
                                else (use.dtypes, use.count, use.nodes))
        skipped = 0
        for name, n in Counter(names).items():  # a folded name counts once, even where another node repeats it
            taken = min(n, gone[name])
            gone[name] -= taken
            skipped += taken
        dtype = node_dtype(dtypes)
        if int(count) - skipped:
            counts[dtype] = counts.get(dtype, 0) + int(count) - skipped
    return dict(sorted(counts.items()))


def _rate(throughput: Mapping[str, Any], dtype: str) -> tuple[str, float, float] | None:
    for candidate in (dtype, *FALLBACK.get(dtype, ("float32",))):
        entry = throughput.get(candidate)
        if entry is not None:
            low, high = entry["gmacs"]
            return candidate, float(low), float(high)
    return None


def _node_us(profile: Mapping[str, Any], dtype: str) -> float:
    per_node = profile.get("node_overhead_us", 0.0)
    if not isinstance(per_node, Mapping):
        return float(per_node)
    for candidate in (dtype, *FALLBACK.get(dtype, ("float32",))):
        if candidate in per_node:
            return float(per_node[candidate])
    return max((float(v) for v in per_node.values()), default=0.0)


@dataclass(frozen=True)
class Estimate:
    """Estimated milliseconds per inference (`low`–`high`) and what they are made of."""

    low: float
    high: float
    macs: tuple[tuple[str, int, str, float, float], ...]  # (dtype, MACs, rate's dtype, GMAC/s low, high)
    nodes: tuple[tuple[str, int, float], ...]  # (dtype, nodes, µs each)
    overhead_ms: float

    @property
    def total_macs(self) -> int:
        return sum(m for _, m, *_ in self.macs)

    def split(self) -> str:
        """'97% int8, 3% float32' (by MACs), or the single dtype."""
        total = self.total_macs
        if len(self.macs) <= 1 or not total:
            return self.macs[0][0] if self.macs else "float32"
        return ", ".join(f"{100 * m / total:.0f}% {d}" for d, m, *_ in sorted(self.macs, key=lambda r: -r[1]))

    def describe(self) -> str:
        macs = "; ".join(f"{m:,} {d} MACs at {lo:g}–{hi:g} GMAC/s" + (f" ({rd} rate)" if rd != d else "")
                         for d, m, rd, lo, hi in self.macs) or "0 MACs"
        text = f"estimated {self.low:.3g}–{self.high:.3g} ms: {macs}"
        nodes = [f"{n} {d} nodes x {us:g} µs" for d, n, us in self.nodes if n and us]
        if nodes:
            text += " + " + " + ".join(nodes)
        if self.overhead_ms:
            text += f" + {self.overhead_ms:g} ms per call"
        return text


def estimate(profile: Mapping[str, Any], macs_by_dtype: Mapping[str, int],
             nodes: Mapping[str, int]) -> Estimate | None:
    """The latency estimate on a resolved target profile, or None when it has no throughput figures."""
    throughput = profile.get("throughput") or {}
    if not throughput:
        return None
    low = high = float(profile.get("overhead_ms", 0.0))
    parts = []
    for dtype, count in sorted(macs_by_dtype.items()):
        rate = _rate(throughput, dtype)
        if rate is None:
            return None
        used, rate_low, rate_high = rate
        parts.append((dtype, int(count), used, rate_low, rate_high))
        low += count / (rate_high * 1e6)
        high += count / (rate_low * 1e6)
    node_parts = []
    for dtype, count in sorted(nodes.items()):
        per_node = _node_us(profile, dtype)
        node_parts.append((dtype, int(count), per_node))
        low += count * per_node / 1000
        high += count * per_node / 1000
    return Estimate(low, high, tuple(parts), tuple(node_parts), float(profile.get("overhead_ms", 0.0)))


def latency_estimate(subject: Subject) -> Estimate | None:
    """`estimate` for the subject's final model on its target, from where its MACs and nodes are."""
    analysis = subject.analysis
    return estimate(subject.target.profile, analysis.macs_by_dtype, nodes_by_dtype(analysis.ops, analysis.folded_nodes))
