"""Running a bundle's model on preprocessed samples, by the model file's format, without torch.

A runner takes sample-major feeds (`[n, ...]` per model input name, in the input's dtype, as
`shrink.api.data.array_feeds` builds them) and returns the model's first output with one row per sample. ONNX
models run under ONNX Runtime through the same helper the compile measures with (`run_feeds`), so a bundle
scored on the compile's own eval data gives the compile's count. Another format plugs in by adding its file
suffix to `RUNNERS` (a `.tflite` model: an interpreter that lays the feeds out and quantizes them as its
input tensors say).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shrink.errors import UsageError


class Runner(Protocol):
    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """The model's first output for sample-major `feeds`, one row per sample."""
        ...


class OnnxRunner:
    """An ONNX model under ONNX Runtime (CPU, one intra-op thread), batched as the compile measures it."""

    def __init__(self, path: Path, inputs: Sequence[Mapping[str, Any]]) -> None:
        from shrink.support.ort import session

        self.session = session(path)
        self.inputs = list(inputs)

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        from shrink.api.data import run_feeds

        return run_feeds(self.session, self.inputs, feeds)[0]


RUNNERS: dict[str, Callable[[Path, Sequence[Mapping[str, Any]]], Runner]] = {".onnx": OnnxRunner}
"""Runner factories by model file suffix: `factory(model_path, the manifest's model inputs)`."""


def runner_for(path: Path, inputs: Sequence[Mapping[str, Any]]) -> Runner:
    factory = RUNNERS.get(path.suffix.lower())
    if factory is None:
        raise UsageError(f"cannot run {path.name}: this shrink runs {', '.join(sorted(RUNNERS))} models", where=str(path))
    return factory(path, inputs)
