"""Built-in ONNX plugin: the `onnx` model family and source, and the passes on ONNX models (int8 and weight-only
quantization, fp16, fuse, ORT format)."""

from __future__ import annotations

from shrink import ModelFamily, Pass, Source, hookimpl
from shrink_onnx.source import OnnxSource


class OnnxFamily(ModelFamily):
    """Models that arrive as ONNX files; everything about them is the ONNX-format default."""

    name = "onnx"
    formats = ("onnx",)


@hookimpl
def shrink_register_families() -> list[type[ModelFamily]]:
    return [OnnxFamily]


@hookimpl
def shrink_register_sources() -> list[type[Source]]:
    return [OnnxSource]


@hookimpl
def shrink_register_passes() -> list[type[Pass]]:
    from shrink_onnx.fp16 import QuantizeFP16
    from shrink_onnx.fuse import FuseOrt
    from shrink_onnx.ort_format import ExportOrt
    from shrink_onnx.quantize import QuantizePTQ
    from shrink_onnx.weight_only import QuantizeWeightOnly

    return [QuantizePTQ, QuantizeWeightOnly, QuantizeFP16, FuseOrt, ExportOrt]
