"""Deterministic estimates for a target: latency from MACs and calibrated throughput, and the dtype it uses."""

from __future__ import annotations

from typing import Any

from shrink.api.checks import Subject


def dtype_of(weights_by_dtype: dict[str, dict[str, int]]) -> str:
    """The dtype the bulk of the MACs run in, from the parameters by dtype: int8 when mostly 8-bit."""
    total = sum(row["params"] for row in weights_by_dtype.values()) or 1
    eight_bit = sum(row["params"] for d, row in weights_by_dtype.items() if d in ("int8", "uint8"))
    if eight_bit / total >= 0.5:
        return "int8"
    half = sum(row["params"] for d, row in weights_by_dtype.items() if d in ("float16", "bfloat16"))
    return "float16" if half / total >= 0.5 else "float32"


def estimate_ms(profile: dict[str, Any], macs: int, nodes: int, dtype: str) -> tuple[float, float, str] | None:
    """(low, high) estimated milliseconds per inference on a resolved target profile and the dtype whose
    throughput was used: the per-call overhead, the per-node overhead times the node count, and MACs at
    the high and low calibrated throughput. None without throughput figures."""
    throughput = profile.get("throughput") or {}
    entry = throughput.get(dtype) or throughput.get("float32")
    if entry is None:
        return None
    if dtype not in throughput:
        dtype = "float32"
    low_rate, high_rate = entry["gmacs"]
    overhead = float(profile.get("overhead_ms", 0.0)) + nodes * float(profile.get("node_overhead_us", 0.0)) / 1000
    return overhead + macs / (high_rate * 1e6), overhead + macs / (low_rate * 1e6), dtype


def latency_estimate(subject: Subject) -> tuple[float, float, str] | None:
    """`estimate_ms` for the subject's final model on its target."""
    return estimate_ms(subject.target.profile, subject.analysis.macs, subject.analysis.nodes,
                       dtype_of(subject.analysis.weights_by_dtype))
