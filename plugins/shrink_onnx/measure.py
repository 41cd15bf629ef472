"""Metrics of an ONNX artifact: parameters, file size and, with labelled data, accuracy under ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from shrink import Artifact, Context
from shrink.analysis import analyze
from shrink_onnx.ort import host_latency_ms, run_session


def measure(artifact: Artifact, ctx: Context) -> dict[str, Any]:
    path = Path(artifact.model)
    metrics: dict[str, Any] = {"model_bytes": path.stat().st_size}
    shapes = {i["name"]: list(i["shape"]) for i in artifact.inputs
              if i.get("shape") and all(isinstance(d, int) for d in i["shape"])}
    analysis = analyze(path, shapes or None)
    metrics.update(params=analysis.params, macs=analysis.macs, nodes=analysis.nodes,
                   peak_activation_bytes=analysis.peak_activation_bytes)
    sample = _single_input(artifact, ctx)
    if sample is not None:
        metrics["host_latency_ms"] = round(host_latency_ms(path, sample), 4)
    if ctx.data is not None and ctx.data.task == "classification" and "eval" in ctx.data.splits:
        split = ctx.data.split("eval")
        (spec,) = artifact.inputs[:1]
        logits = run_session(path, {spec["name"]: np.ascontiguousarray(split.inputs)})[0]
        metrics["accuracy"] = round(float((logits.argmax(axis=1) == split.labels).mean()), 6)
    return metrics


def _single_input(artifact: Artifact, ctx: Context) -> dict[str, np.ndarray] | None:
    """One batch-1 input: the first eval sample when it fits, else zeros of the recorded shape."""
    if len(artifact.inputs) != 1:
        return _pinned_inputs(artifact.inputs)
    spec = artifact.inputs[0]
    shape = spec.get("shape") or []
    if not shape or not all(isinstance(d, int) for d in shape):
        return None
    shape = [1, *shape[1:]]
    if ctx.data is not None and "eval" in ctx.data.splits:
        x = np.asarray(ctx.data.split("eval").inputs[:1])
        if list(x.shape) == shape:
            return {spec["name"]: np.ascontiguousarray(x.astype(spec.get("dtype", "float32")))}
    return {spec["name"]: np.zeros(shape, dtype=spec.get("dtype", "float32"))}


def _pinned_inputs(specs: list[dict[str, Any]]) -> dict[str, np.ndarray] | None:
    """Several inputs (e.g. a text encoder's input_ids and attention_mask): each filled with the low end of
    its `range` (a mask of ones) at its recorded batch-1 shape; None when a shape is not pinned."""
    feeds = {}
    for spec in specs:
        shape = spec.get("shape") or []
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            return None
        low = (spec.get("range") or [0])[0]
        feeds[spec["name"]] = np.full([1, *shape[1:]], low, dtype=spec.get("dtype", "float32"))
    return feeds or None
