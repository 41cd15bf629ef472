"""`export.onnx`: torch → ONNX at the target's opset, checked, simplified and parity-gated.

The pass is generic: it delegates to the model family (`OnnxExporter`); the torch family exports its modules
with `shrink_common.torch_export.export_module`."""

from __future__ import annotations

import importlib.util

from shrink import Artifact, Context, Pass, PlanContext, UsageError
from shrink_common.capabilities import OnnxExporter
from shrink_common.options import ExportOptions


class ExportOnnx(Pass[ExportOptions]):
    """Export a torch model to ONNX (TorchScript or dynamo exporter), simplify it and gate on output parity."""

    name = "export.onnx"
    consumes = ("torch",)
    produces = "onnx"
    default = True
    libraries = ("torch", "onnx", "onnxsim", "onnxscript")

    def check(self, plan: PlanContext) -> list[str]:
        opts = self.options
        problems = []
        opset = opts.opset or plan.target.export_opset
        allowed = plan.target.get("opset", "ai.onnx")
        if allowed and not allowed["min"] <= opset <= allowed["max"]:
            problems.append(f"opset {opset} is outside {plan.target.name}'s supported ai.onnx opsets {allowed['min']}–{allowed['max']}")
        if opts.exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
            problems.append("exporter 'dynamo' needs the onnxscript package (pip install onnxscript)")
        if not isinstance(plan.family, OnnxExporter):
            return [*problems, f"{plan.family.name} models cannot be exported to ONNX (the family has no ONNX export)"]
        return problems + plan.family.check_export(opts, plan)

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        family = ctx.family(artifact)
        if not isinstance(family, OnnxExporter):
            raise UsageError(f"{family.name} models cannot be exported to ONNX (the family has no ONNX export)")
        return family.export_onnx(artifact, ctx, self.options)
