"""TFLite-format artifacts, the same for every family (the `ModelFamily` defaults): metrics from the static
analysis of the flatbuffer and from TensorFlow Lite Micro (the arena it allocates, top-1 accuracy under its
interpreter), a fingerprint for the engine's no-mutation check, and the pass-cache copy of the file.

Without the `tflite-micro` wheel the measured figures are left out and `arena_unavailable` says why: the `ram`
check then falls back on the static estimate and says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shrink.analysis.tflite_model import analyze_tflite
from shrink.api.data import array_feeds, classification_scores, labelled_eval, rows
from shrink.checks.estimates import nodes_by_dtype
from shrink.support import tflm

if TYPE_CHECKING:
    from shrink.api.artifact import Artifact
    from shrink.api.data import Dataset

FILE = "model.tflite"


def measure(artifact: Artifact, data: Dataset | None) -> dict[str, Any]:
    path = Path(artifact.model)
    analysis = analyze_tflite(path)
    metrics: dict[str, Any] = {
        "model_bytes": path.stat().st_size, "params": analysis.params, "weight_bytes": analysis.weight_bytes,
        "macs": analysis.macs, "nodes": analysis.nodes, "peak_activation_bytes": analysis.peak_activation_bytes,
        "macs_by_dtype": dict(analysis.macs_by_dtype), "nodes_by_dtype": nodes_by_dtype(analysis.ops),
        "arena_plan_bytes": analysis.arena_bytes}
    if artifact.meta.get("coding"):
        metrics["coding"] = dict(artifact.meta["coding"])
    try:
        metrics["arena_measured"] = tflm.measure(path).as_dict()
    except tflm.ArenaUnavailable as exc:
        metrics["arena_unavailable"] = str(exc)
        return metrics
    split = labelled_eval(data)
    found = array_feeds(artifact.inputs, data, ("eval",), len(split)) if split is not None else None
    if split is not None and found is not None and rows(found[0]) == len(split):
        metrics.update(classification_scores(eval_logits(path, found[0]), split.labels))
    return metrics


def eval_logits(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The first output of every sample of sample-major `feeds`, under TFLite Micro, `[N, ...]`."""
    from shrink.support.tflite_run import TflmModel

    return TflmModel(path).first_output(list(feeds.values()))


def save(path: Path, directory: Path) -> dict[str, Any]:
    shutil.copyfile(path, directory / FILE)
    return {"kind": "tflite-file", "file": FILE}


def load(descriptor: dict[str, Any], directory: Path, dest: Path) -> str | None:
    if descriptor.get("kind") != "tflite-file":
        return None
    shutil.copyfile(directory / descriptor["file"], dest)
    return str(dest)
