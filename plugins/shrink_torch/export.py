"""`export.onnx`: torch → ONNX at the target's opset, checked, simplified and parity-gated."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from shrink import Artifact, Context, Pass, PassOptions, PlanContext


class ParityError(RuntimeError):
    """The exported model's outputs differ from torch's beyond the tolerance."""


class ExportOnnx(Pass):
    """Export a torch model to ONNX (TorchScript or dynamo exporter), simplify it and gate on output parity."""

    name = "export.onnx"
    consumes = ("torch",)
    produces = "onnx"
    default = True

    class Options(PassOptions):
        opset: int | None = Field(None, ge=7, le=23, description="ai.onnx opset; default: the target's export_opset")
        exporter: Literal["torchscript", "dynamo"] = Field("torchscript", description="torch.onnx exporter to use")
        dynamic_batch: bool = Field(True, description="make the batch dimension dynamic")
        simplify: bool = Field(True, description="simplify the graph with onnxsim")
        tolerance: float = Field(1e-4, gt=0, le=1, description="largest allowed max-abs difference between torch and ONNX Runtime outputs")
        parity_samples: int = Field(64, ge=1, le=4096, description="eval inputs used for the parity check")
        output_name: str = Field("output", pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$", description="name of the model output")

    def check(self, plan: PlanContext) -> list[str]:
        opts: Any = self.options
        problems = []
        opset = opts.opset or plan.target.export_opset
        allowed = plan.target.get("opset", "ai.onnx")
        if allowed and not allowed["min"] <= opset <= allowed["max"]:
            problems.append(f"opset {opset} is outside {plan.target.name}'s supported ai.onnx opsets {allowed['min']}–{allowed['max']}")
        if opts.exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
            problems.append("exporter 'dynamo' needs the onnxscript package (pip install onnxscript)")
        return problems

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import numpy as np
        import torch

        from shrink_onnx.ort import run_session
        from shrink_torch.runtime import predict

        opts: Any = self.options
        if artifact.meta.get("hf_config"):  # text encoders: two int64 inputs, dynamic batch and sequence
            from shrink_huggingface.export import export_encoder

            return export_encoder(opts, artifact, ctx)
        opset = opts.opset or ctx.target.export_opset
        (spec,) = artifact.inputs
        model: torch.nn.Module = artifact.model.eval()
        samples = _parity_inputs(ctx, spec, opts.parity_samples)
        example = torch.from_numpy(samples[:1])
        path = ctx.new_path("export", ".onnx")
        dynamic_axes = {spec["name"]: {0: "batch"}, opts.output_name: {0: "batch"}} if opts.dynamic_batch else None
        ctx.report(0.1, f"exporting with the {opts.exporter} exporter at opset {opset}")
        with torch.no_grad():
            if opts.exporter == "torchscript":
                torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset,
                                  input_names=[spec["name"]], output_names=[opts.output_name], dynamic_axes=dynamic_axes)
            else:
                torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False, opset_version=opset,
                                  input_names=[spec["name"]], output_names=[opts.output_name],
                                  dynamic_shapes=({0: torch.export.Dim("batch")},) if opts.dynamic_batch else None)
        proto, nodes_before, simplified = check_and_simplify(path, opset, opts.exporter, opts.simplify, ctx)
        ctx.report(0.8, "checking parity with ONNX Runtime")
        expected = predict(model, samples)
        actual = run_session(path, {spec["name"]: samples})[0]
        max_abs = float(np.max(np.abs(expected - actual)))
        a, b = expected.ravel().astype(np.float64), actual.ravel().astype(np.float64)
        cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))
        if not max_abs <= opts.tolerance:
            raise ParityError(f"ONNX Runtime output differs from torch by max |Δ| = {max_abs:.3g} "
                              f"(tolerance {opts.tolerance:g}, cosine {cosine:.6f}) on {len(samples)} inputs")
        outputs = [{"name": o.name} for o in proto.graph.output]
        return artifact.evolve(
            model=str(path), format="onnx",
            meta={"outputs": outputs, "opset": opset, "dynamic_batch": opts.dynamic_batch},
            details={"exporter": opts.exporter, "opset": opset, "nodes": len(proto.graph.node), "nodes_before_simplify": nodes_before,
                     "simplified": simplified, "parity_max_abs": max_abs, "parity_cosine": round(cosine, 8)},
        )


def _parity_inputs(ctx: Context, spec: dict[str, Any], count: int) -> Any:
    import numpy as np

    shape = list(spec["shape"])
    if ctx.data is not None:
        for split in ("eval", "calibration", "train"):
            if split in ctx.data.splits:
                x = np.asarray(ctx.data.split(split).inputs[:count])
                if list(x.shape[1:]) == shape[1:]:
                    return np.ascontiguousarray(x.astype(spec.get("dtype", "float32")))
    rng = np.random.default_rng(ctx.seed)
    return rng.standard_normal([count, *shape[1:]]).astype(spec.get("dtype", "float32"))


def check_and_simplify(path: Path, opset: int, exporter: str, simplify: bool, ctx: Context) -> tuple[Any, int, bool]:
    """The full ONNX checker, the opset the exporter really wrote, then onnxsim (kept only when it succeeds).

    Returns the final proto, the node count before simplification and whether it was simplified.
    """
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    proto = onnx.load(str(path))
    got = {o.domain or "ai.onnx": o.version for o in proto.opset_import}.get("ai.onnx")
    if got != opset:
        raise RuntimeError(f"the {exporter} exporter wrote opset {got}, not the requested {opset}")
    nodes_before = len(proto.graph.node)
    simplified = False
    if simplify:
        ctx.report(0.5, "simplifying with onnxsim")
        from onnxsim import simplify as onnxsim_simplify

        candidate, ok = onnxsim_simplify(proto)
        if ok:
            proto, simplified = candidate, True
            onnx.save(proto, str(path))
            onnx.checker.check_model(str(path), full_check=True)
    return proto, nodes_before, simplified
