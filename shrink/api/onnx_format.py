"""ONNX-format artifacts, the same for every family (the `ModelFamily` defaults): metrics under ONNX
Runtime, a fingerprint for the engine's no-mutation check, and the pass-cache copy of the file."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shrink.analysis import analyze
from shrink.api.data import array_feeds, classification_scores, labelled_eval, rows, run_feeds, sample_feeds
from shrink.checks.estimates import nodes_by_dtype
from shrink.support.ort import host_latency_ms

if TYPE_CHECKING:
    from shrink.api.artifact import Artifact
    from shrink.api.data import Dataset

FILE = "model.onnx"


def pinned_shapes(artifact: Artifact) -> dict[str, list[int]]:
    """The artifact's input shapes that are fully pinned, by input name (what the analysis needs)."""
    return {i["name"]: list(i["shape"]) for i in artifact.inputs
            if i.get("shape") and all(isinstance(d, int) for d in i["shape"])}


def measure(artifact: Artifact, data: Dataset | None) -> dict[str, Any]:
    """File size, parameters, MACs, nodes and peak activations (static analysis), host latency at batch 1,
    and top-1 accuracy and the Brier score when the data is labelled classification arrays that fit the model."""
    path = Path(artifact.model)
    metrics: dict[str, Any] = {"model_bytes": path.stat().st_size}
    analysis = analyze(path, pinned_shapes(artifact) or None)
    metrics.update(params=analysis.params, weight_bytes=analysis.weight_bytes, macs=analysis.macs, nodes=analysis.nodes,
                   peak_activation_bytes=analysis.peak_activation_bytes, macs_by_dtype=dict(analysis.macs_by_dtype),
                   nodes_by_dtype=nodes_by_dtype(analysis.ops, analysis.folded_nodes))
    sample = sample_feeds(artifact.inputs, data)
    if sample is not None:
        metrics["host_latency_ms"] = round(host_latency_ms(path, sample), 4)
    split = labelled_eval(data)
    found = array_feeds(artifact.inputs, data, ("eval",), len(split)) if split is not None else None
    if split is not None and found is not None and rows(found[0]) == len(split):
        metrics.update(classification_scores(run_feeds(path, artifact.inputs, found[0])[0], split.labels))
    return metrics


def fingerprint(path: Path) -> str:
    """Size and modification time: any rewrite of the file in place changes it."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"


def save(path: Path, directory: Path) -> dict[str, Any]:
    shutil.copyfile(path, directory / FILE)
    return {"kind": "onnx-file", "file": FILE}


def load(descriptor: dict[str, Any], directory: Path, dest: Path) -> str | None:
    """The saved file copied to `dest`, or None when `descriptor` is not a saved ONNX file."""
    if descriptor.get("kind") != "onnx-file":
        return None
    shutil.copyfile(directory / descriptor["file"], dest)
    return str(dest)
