"""`quantize.fp16`: float16 conversion of an ONNX graph (onnxruntime's converter), for targets with fp16
arithmetic, parity-gated against the float32 model. onnx and onnxruntime are imported only inside `run()`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from shrink import Artifact, Context, Pass, PassOptions, PlanContext, Target
from shrink_common.onnx_graph import inline_copy, op_counts, opset_problems, prune_opset_imports, save_inline
from shrink_common.parity import compare
from shrink_onnx.quantize import refuse_requantizing, requantizing, unknown_ops


def fp16_capable(target: Target) -> bool:
    features = target.get("isa", "features") or []
    supported = target.get("dtypes", "supported") or []
    return "fullfp16" in features or "float16" in supported


class QuantizeFP16Options(PassOptions):
    """Options of the `quantize.fp16` pass."""

    keep_io_types: bool = Field(True, description="keep graph inputs and outputs float32 (a Cast at each end)")
    op_block_list: tuple[str, ...] = Field((), description="extra op types to keep in float32, besides ONNX Runtime's "
                                                           "default block list")
    parity_samples: int = Field(256, ge=1, le=4096, description="eval inputs for the input-vs-output parity check")
    min_agreement: float = Field(0.98, ge=0, le=1, description="fail the pass when the top-1 class agrees with the "
                                                                 "input model on fewer than this fraction of inputs")


class QuantizeFP16(Pass[QuantizeFP16Options]):
    """Float16 conversion of an ONNX graph, for targets with fp16 arithmetic."""

    name = "quantize.fp16"
    consumes = ("onnx",)
    produces = "onnx"

    def check(self, plan: PlanContext) -> list[str]:
        opts = self.options
        problems = []
        already = requantizing(plan.model_meta)
        if already:
            problems.append(already + " (remove this pass, or start from the float model)")
        if not fp16_capable(plan.target):
            absent = " ('fullfp16' is listed as absent)" if "fullfp16" in (plan.target.get("isa", "absent_features") or []) else ""
            problems.append(f"target {plan.target.name} has no float16 arithmetic: no 'fullfp16' in isa.features{absent} "
                            "and no 'float16' in dtypes.supported; use quantize.ptq (int8) instead")
        problems += unknown_ops(opts.op_block_list, "op_block_list")
        return problems

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import onnx
        from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

        refuse_requantizing(artifact, self.name)
        opts = self.options
        source = inline_copy(Path(artifact.model), ctx, "fp16-input")
        proto = onnx.load(str(source))
        ctx.report(0.1, "converting to float16")
        block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(opts.op_block_list))
        converted = convert_float_to_float16(onnx.load(str(source)), keep_io_types=opts.keep_io_types, op_block_list=block)
        prune_opset_imports(converted)
        out = ctx.new_path("fp16", ".onnx")
        save_inline(converted, out)
        problems = [p for p in opset_problems(converted, ctx.target) if p not in opset_problems(proto, ctx.target)]
        if problems:
            raise RuntimeError("the float16 model does not fit the target: " + "; ".join(problems))
        before, after = source.stat().st_size, out.stat().st_size
        details: dict[str, Any] = {"dtype": "float16", "keep_io_types": opts.keep_io_types,
                                   "casts_added": op_counts(converted).get("Cast", 0) - op_counts(proto).get("Cast", 0),
                                   "bytes_before": before, "bytes_after": after, "size_ratio": round(after / before, 4)}
        ctx.report(0.7, "checking parity against the float32 model")
        details.update(compare(source, out, artifact, ctx, opts.parity_samples, opts.min_agreement, "float16"))
        return artifact.evolve(model=str(out), meta={"quantization": {"scheme": "fp16"}}, details=details)
