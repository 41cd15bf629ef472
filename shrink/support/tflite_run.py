"""Running a `.tflite` model under TensorFlow Lite Micro's Python interpreter (the `tflite-micro` wheel, optional:
`pip install -e '.[tflite]'`), the runtime microcontroller targets use: one sample per invoke, float inputs
quantized with the model's own input scale and zero point, outputs dequantized with its output scale and zero point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shrink.support.tflm import INSTALL, available

ARENA_HEADROOM = 1 << 20


class RuntimeUnavailable(RuntimeError):
    """TFLite Micro's interpreter is not installed."""


@dataclass(frozen=True)
class Port:
    """One input or output of the model: dtype, shape and quantization (scale 0: not quantized)."""

    name: str
    dtype: Any
    shape: tuple[int, ...]
    scale: float
    zero_point: int

    def quantize(self, x: np.ndarray) -> np.ndarray:
        if not self.scale or np.dtype(self.dtype).kind == "f":
            return np.asarray(x, dtype=self.dtype).reshape(self.shape)
        info = np.iinfo(self.dtype)
        q = np.round(np.asarray(x, dtype=np.float64) / self.scale) + self.zero_point
        return np.clip(q, info.min, info.max).astype(self.dtype).reshape(self.shape)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if not self.scale or np.dtype(self.dtype).kind == "f":
            return np.asarray(q, dtype=np.float32)
        return ((np.asarray(q, dtype=np.float32) - self.zero_point) * np.float32(self.scale)).astype(np.float32)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": np.dtype(self.dtype).name, "shape": list(self.shape), "scale": self.scale,
                "zero_point": self.zero_point}


def _port(name: str, details: dict[str, Any]) -> Port:
    quant = details.get("quantization_parameters") or {}
    scales, zeros = list(quant.get("scales", [])), list(quant.get("zero_points", []))
    return Port(name, details["dtype"], tuple(int(d) for d in details["shape"]), float(scales[0]) if scales else 0.0,
                int(zeros[0]) if zeros else 0)


class TflmModel:
    """A `.tflite` file loaded into TFLM's interpreter with a generous arena."""

    def __init__(self, path: Path) -> None:
        why = available()
        if why:
            raise RuntimeUnavailable(why)
        from tflite_micro.python.tflite_micro import runtime

        from shrink.analysis.tflite_model import read

        data = path.read_bytes()
        model = read(path)
        graph = model.Subgraphs(0)
        names = [(graph.Tensors(int(i)).Name() or b"").decode(errors="replace") for i in graph.OutputsAsNumpy()]
        inputs = [(graph.Tensors(int(i)).Name() or b"").decode(errors="replace") for i in graph.InputsAsNumpy()]
        self._interpreter = runtime.Interpreter.from_bytes(data, arena_size=len(data) * 4 + ARENA_HEADROOM)
        self.inputs = [_port(inputs[i], self._interpreter.get_input_details(i)) for i in range(len(inputs))]
        self.outputs = [_port(names[j], self._interpreter.get_output_details(j)) for j in range(len(names))]

    def __call__(self, sample: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One sample (one float array per input, in the input's shape) → float outputs."""
        for index, (port, x) in enumerate(zip(self.inputs, sample)):
            self._interpreter.set_input(port.quantize(x), index)
        self._interpreter.invoke()
        return [port.dequantize(self._interpreter.get_output(j)) for j, port in enumerate(self.outputs)]

    def first_output(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """The first output of every sample of the sample-major `arrays` (one per input), `[N, ...]` flattened."""
        count = len(arrays[0]) if arrays else 0
        return np.stack([self([a[i] for a in arrays])[0].reshape(-1) for i in range(count)])


def run(path: Path, feeds: dict[str, np.ndarray]) -> tuple[list[str], list[np.ndarray]]:
    """Run stacked samples `{input name: [N, *input shape]}` (model input order) one at a time; outputs stacked."""
    model = TflmModel(path)
    arrays = list(feeds.values())
    count = len(arrays[0]) if arrays else 0
    results = [model([a[i] for a in arrays]) for i in range(count)]
    return [p.name for p in model.outputs], [np.stack([r[j] for r in results]) for j in range(len(model.outputs))]


def install_hint() -> str:
    return INSTALL
