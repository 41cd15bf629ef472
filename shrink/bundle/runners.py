"""Running a bundle's model on preprocessed samples, by the model file's format, without torch.

A runner takes sample-major feeds (`[n, ...]` per model input name, in the input's dtype, as
`shrink.api.data.array_feeds` builds them) and returns the model's first output with one row per sample. ONNX
models run under ONNX Runtime through the same helper the compile measures with (`run_feeds`), so a bundle
scored on the compile's own eval data gives the compile's count. Another format plugs in by adding its file
suffix to `RUNNERS`. `.tflite` models run under TensorFlow Lite Micro's interpreter (the optional `tflite` extra),
one sample per invoke, quantized and laid out as the model's input tensors say: the runtime the compile measured.
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


class TfliteRunner:
    """A `.tflite` model under TFLite Micro (`shrink.support.tflite_run`), one sample per invoke."""

    def __init__(self, path: Path, inputs: Sequence[Mapping[str, Any]]) -> None:
        from shrink.support.tflite_run import RuntimeUnavailable, TflmModel

        try:
            self.model = TflmModel(path)
        except RuntimeUnavailable as exc:
            raise UsageError(f"cannot run {path.name}: {exc}", where=str(path)) from None
        self.names = [str(spec["name"]) for spec in inputs] or [port.name for port in self.model.inputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.model.first_output([feeds[name] for name in self.names])


RUNNERS: dict[str, Callable[[Path, Sequence[Mapping[str, Any]]], Runner]] = {".onnx": OnnxRunner, ".tflite": TfliteRunner}
"""Runner factories by model file suffix: `factory(model_path, the manifest's model inputs)`."""


def runner_for(path: Path, inputs: Sequence[Mapping[str, Any]]) -> Runner:
    factory = RUNNERS.get(path.suffix.lower())
    if factory is None:
        raise UsageError(f"cannot run {path.name}: this shrink runs {', '.join(sorted(RUNNERS))} models", where=str(path))
    return factory(path, inputs)
