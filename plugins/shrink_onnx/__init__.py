"""Built-in ONNX plugin: the `onnx` model family and source, and the passes on ONNX models (quantize, fuse,
ORT format)."""

from __future__ import annotations

from pydantic import Field

from shrink import (
    Artifact,
    Context,
    ModelFamily,
    PassOptions,
    PlanContext,
    Source,
    hookimpl,
)
from shrink.api.limits import InputShape
from shrink.api.passes import Pass


class OnnxSourceOptions(PassOptions):
    """Options of the `onnx` model source."""

    path: str = Field(min_length=1, description="the .onnx file")
    input_shape: InputShape | None = Field(None, description="pins the input's dynamic dimensions, batch first")


class OnnxSource(Source[OnnxSourceOptions]):
    """An existing ONNX model file."""

    name = "onnx"
    produces = "onnx"
    family = "onnx"

    def check(self, plan: PlanContext) -> list[str]:
        path = plan.path(self.options.path)
        return [] if path.is_file() else [f"model file {str(path)!r} does not exist"]

    def load(self, ctx: Context) -> Artifact:
        import shutil

        import onnx

        opts = self.options
        src = ctx.path(opts.path)
        dest = ctx.new_path("source", ".onnx")
        shutil.copyfile(src, dest)
        onnx.checker.check_model(str(dest))
        proto = onnx.load(str(dest), load_external_data=False)
        init = {i.name for i in proto.graph.initializer}
        graph_inputs = [i for i in proto.graph.input if i.name not in init]
        inputs = []
        for i, value in enumerate(graph_inputs):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
            if i == 0 and opts.input_shape:
                dims = list(opts.input_shape)
            dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
            inputs.append({"name": value.name, "shape": dims, "dtype": dtype})
        return Artifact(str(dest), "onnx", meta={"inputs": inputs, "outputs": [{"name": o.name} for o in proto.graph.output]})

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

    return [QuantizePTQ, QuantizeFP16, FuseOrt, ExportOrt]
