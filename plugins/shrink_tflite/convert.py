"""torch → float32 `.tflite` with litert-torch, then full int8 with ai-edge-quantizer (static: int8 weights per
channel, int8 activations and model input/output, calibrated on real inputs), each step parity-gated.

litert-torch's own PT2E int8 route is not used: in a feasibility run on a KWS DS-CNN it lost 13 points of accuracy
where this route lost under one. Imported only from `run()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from shrink_common.parity import ParityError, closeness


def to_float_tflite(model: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> None:
    """The float32 `.tflite` of `model` traced at `example` (fixed shapes)."""
    import litert_torch

    with torch.no_grad():
        converted = litert_torch.convert(model.eval(), example)
    converted.export(str(path))


class LiteRtModel:
    """A `.tflite` under the TFLite interpreter (ai-edge-litert), run through its first signature."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=1)
        signatures = self.interpreter.get_signature_list()
        self.signature = next(iter(signatures))
        self.input_names = list(signatures[self.signature]["inputs"])
        self.runner = self.interpreter.get_signature_runner(self.signature)

    def __call__(self, sample: list[np.ndarray]) -> np.ndarray:
        out = self.runner(**dict(zip(self.input_names, sample)))
        return np.asarray(next(iter(out.values())))


def float_parity(path: Path, samples: list[list[np.ndarray]], expected: np.ndarray, tolerance: float) -> dict[str, Any]:
    """The float32 `.tflite` against torch; `ParityError` beyond `tolerance` x the largest |output|."""
    model = LiteRtModel(path)
    actual = np.stack([model(s).reshape(expected.shape[1:]) for s in samples])
    close = closeness(expected, actual)
    scale = max(float(np.abs(expected).max()), 1.0)
    if not close["max_abs"] <= tolerance * scale:
        raise ParityError(f"the float32 .tflite differs from torch by max |Δ| = {close['max_abs']:.3g} (tolerance "
                          f"{tolerance:g} x {scale:.3g}, cosine {close['cosine']:.6f}) on {len(samples)} inputs")
    return {"float_max_abs": close["max_abs"], "float_cosine": round(close["cosine"], 8)}


def quantize_int8(float_path: Path, calibration: list[list[np.ndarray]], path: Path, per_tensor: bool) -> None:
    """ai-edge-quantizer's static int8 configuration (int8 weights per channel, or per tensor; int8 activations),
    calibrated on `calibration`."""
    from ai_edge_quantizer import qtyping, quantizer

    model = LiteRtModel(float_path)
    quant = quantizer.Quantizer(str(float_path))
    granularity = qtyping.QuantGranularity.TENSORWISE if per_tensor else qtyping.QuantGranularity.CHANNELWISE
    quant.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, 8, 8, weight_granularity=granularity)
    batches = [dict(zip(model.input_names, sample)) for sample in calibration]
    result = quant.quantize(quant.calibrate({model.signature: batches}))
    result.export_model(str(path), overwrite=True)


def int8_parity(expected: np.ndarray, actual: np.ndarray, min_agreement: float, classifier: bool) -> dict[str, Any]:
    """The int8 model (under TFLite Micro) against torch: top-1 agreement gates classifiers; closeness is reported."""
    close = closeness(expected, actual)
    row: dict[str, Any] = {"int8_max_abs": round(close["max_abs"], 6), "int8_cosine": round(close["cosine"], 6)}
    if classifier and expected.ndim == 2 and expected.shape[1] > 1:
        agreement = float((expected.argmax(1) == actual.argmax(1)).mean())
        row["int8_top1_agreement"] = round(agreement, 6)
        if agreement < min_agreement:
            raise ParityError(f"the int8 .tflite agrees with torch on the top-1 class for {agreement:.1%} of "
                              f"{len(expected)} inputs, below min_agreement {min_agreement:.1%} (cosine "
                              f"{close['cosine']:.4f})")
    return row
