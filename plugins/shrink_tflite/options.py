"""Options of `export.tflite` and what it needs installed (checked without importing it)."""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import Field

from shrink import PassOptions

INSTALL = "pip install -e '.[tflite]'"
MODULES = {"litert_torch": "litert-torch", "ai_edge_quantizer": "ai-edge-quantizer", "ai_edge_litert": "ai-edge-litert",
           "tflite_micro": "tflite-micro"}


def missing() -> str | None:
    """The TFLite libraries that are not installed, with the install command; None when all are."""
    absent = [dist for module, dist in MODULES.items() if importlib.util.find_spec(module) is None]
    return f"it needs {', '.join(absent)}: {INSTALL}" if absent else None


class TfliteExportOptions(PassOptions):
    """Options of `export.tflite`."""

    quantize: Literal["int8", "none"] = Field(
        "int8", description="'int8': full integer (weights per channel or per tensor, see 'weights'; activations and "
                            "the model's input and output per tensor) with ai-edge-quantizer, calibrated on the data; "
                            "'none': float32")
    weights: Literal["auto", "per-channel", "per-tensor"] = Field(
        "auto", description="int8 weight scales: 'auto' is per tensor when every Conv/Linear layer's weights take at "
                            "most 2**max_index_bits values (after compress.cluster: one LUT value table per tensor, "
                            "one scale per layer) and per channel otherwise; 'per-channel'; 'per-tensor' (one scale "
                            "per layer)")
    calibration_samples: int = Field(200, ge=1, le=100_000, description="calibration inputs (from the calibration "
                                                                          "split, else train)")
    tolerance: float = Field(1e-4, gt=0, le=1, description="largest allowed max |Δ| between torch and the float32 "
                                                           ".tflite (relative to the largest |output|)")
    min_agreement: float = Field(0.9, ge=0, le=1, description="int8: smallest allowed share of inputs on which the "
                                                              "int8 model's top-1 class agrees with torch's")
    parity_samples: int = Field(200, ge=1, le=10_000, description="inputs (eval split first) the parity gates run on")
    coding: Literal["auto", "lut", "none"] = Field(
        "auto", description="look-up-table coding of weight tensors with few distinct values per channel (after "
                            "compress.cluster), decoded on the device by TFLite Micro's DECODE operator: 'auto' when the "
                            "target's runtime.decodes lists 'lut', 'lut' always (the storage check then counts the "
                            "coded file only if the runtime decodes it), 'none' never. Coded sizes are reported either way")
    strip_names: bool = Field(True, description="drop the names of the int8 model's inner tensors, its signature, "
                                                "description and converter metadata (TensorFlow Lite Micro reads none "
                                                "of them; the graph's inputs and outputs keep their names): "
                                                "litert-torch writes each tensor's module path, a quarter of a small "
                                                "file")
    strip_zero_points: bool = Field(True, description="cut all-zero per-channel zero-point vectors of the int8 "
                                                      "model to one value (TensorFlow Lite Micro reads one for every "
                                                      "channel; each is an int64 per channel of weights and biases) "
                                                      "and drop the quantization of DECODE's encoded inputs")
    max_index_bits: int = Field(4, ge=1, le=7, description="code a tensor only when every channel has at most "
                                                            "2**max_index_bits distinct values")
