"""`fuse.ort`: ONNX Runtime's offline graph optimization, kept within the target's op set.

onnx and onnxruntime are imported only inside `run()` and the helpers it calls.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from shrink import Artifact, Context, Pass, PassOptions, PlanContext
from shrink.support.ort import session
from shrink_common.onnx_graph import inline_copy, op_counts, opset_problems, prune_opset_imports, save_inline
from shrink_common.parity import compare

LEVELS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED"}
NOT_PORTABLE = {
    "all": "ORT_ENABLE_ALL adds the layout level's NCHWc/NHWC rewrites",
    "layout": "ORT_ENABLE_LAYOUT rewrites convolutions into NCHWc/NHWC layouts",
}


class FuseOrtOptions(PassOptions):
    """Options of the `fuse.ort` pass."""

    graph_optimization_level: Literal["basic", "extended", "all", "layout"] = Field(
        "extended", description="'basic': standard-ONNX rewrites only (constant folding, redundant nodes, Conv+BN); "
                                "'extended': also com.microsoft fused ops (FusedConv, QGemm, SkipLayerNormalization, "
                                "Gelu); 'all' and 'layout' are refused: they write layouts for the compiling CPU")
    on_unsupported: Literal["basic", "fail"] = Field(
        "basic", description="when the extended result uses ops or domains outside the target's opset (e.g. no "
                             "com.microsoft on a microcontroller): 'basic' falls back to the basic level, 'fail' fails")
    parity_samples: int = Field(256, ge=1, le=4096, description="eval inputs for the input-vs-output parity check")
    min_agreement: float = Field(0.99, ge=0, le=1, description="fail the pass when the top-1 class agrees with the "
                                                                 "input model on fewer than this fraction of inputs")

    @model_validator(mode="after")
    def _portable(self) -> FuseOrtOptions:
        level = self.graph_optimization_level
        if level in NOT_PORTABLE:
            raise ValueError(f"graph_optimization_level {level!r} is refused: {NOT_PORTABLE[level]} and kernels "
                             "specific to the CPU that compiles the model, so the saved model is not portable to the "
                             "target; use 'extended' (portable) or 'basic'")
        return self


class FuseOrt(Pass[FuseOrtOptions]):
    """Offline ONNX Runtime graph optimization at a portable level (basic or extended), within the target's opsets."""

    name = "fuse.ort"
    consumes = ("onnx",)
    produces = "onnx"
    default = True

    def check(self, plan: PlanContext) -> list[str]:
        opts = self.options
        allowed = plan.target.get("opset") or {}
        runtime = plan.target.get("runtime", "name")
        if (opts.graph_optimization_level == "extended" and opts.on_unsupported == "fail" and allowed
                and "com.microsoft" not in allowed and runtime != "onnxruntime"):
            return [f"graph_optimization_level 'extended' writes com.microsoft ops, which target {plan.target.name} "
                    f"(runtime {runtime!r}) does not support; use 'basic' or on_unsupported 'basic'"]
        return []

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import onnx

        opts = self.options
        source = inline_copy(Path(artifact.model), ctx, "fuse-input")
        before = onnx.load(str(source))
        existing = set(opset_problems(before, ctx.target))
        level = opts.graph_optimization_level
        details: dict[str, Any] = {"level_requested": level}
        ctx.report(0.1, f"optimizing with ONNX Runtime ({level})")
        out, after = _optimize(source, ctx, level)
        problems = [p for p in opset_problems(after, ctx.target) if p not in existing]
        if problems and level == "extended":
            if opts.on_unsupported == "fail":
                raise RuntimeError("the extended-level result does not fit the target: " + "; ".join(problems)
                                   + " (set on_unsupported 'basic' to fall back, or graph_optimization_level 'basic')")
            details["fallback"] = "extended result outside the target's opset (" + "; ".join(problems) + "); used basic"
            level = "basic"
            ctx.report(0.4, "falling back to the basic level")
            out, after = _optimize(source, ctx, level)
            problems = [p for p in opset_problems(after, ctx.target) if p not in existing]
        if problems:
            raise RuntimeError(f"the {level}-level result does not fit the target: " + "; ".join(problems))
        counts_before, counts_after = op_counts(before), op_counts(after)
        casts = counts_after.get("Cast", 0) - counts_before.get("Cast", 0)
        if casts > 0 and _has_float16(before):
            fed = sorted({n.op_type for n in after.graph.node if n.op_type != "Cast"
                          and any(i in _cast_outputs(after) - _cast_outputs(before) for i in n.input)})
            raise RuntimeError(f"ONNX Runtime on this host has no float16 kernels for {', '.join(fed) or 'some ops'} and "
                               f"inserted {casts} Cast node(s) back to float32; the saved graph would run them in float32 "
                               "on the target too (a host-specific rewrite). Run fuse.ort before quantize.fp16")
        fused = Counter({op: n for op, n in counts_after.items() if op not in counts_before})
        removed = Counter({op: n for op, n in counts_before.items() if op not in counts_after})
        details.update({
            "level": level, "nodes_before": len(before.graph.node), "nodes_after": len(after.graph.node),
            "fused_ops": ", ".join(f"{op}×{n}" for op, n in sorted(fused.items())) or "none",
            "removed_ops": ", ".join(f"{op}×{n}" for op, n in sorted(removed.items())) or "none",
            "domains": ", ".join(sorted({(n.domain or "ai.onnx") for n in after.graph.node})),
            "bytes_before": source.stat().st_size, "bytes_after": out.stat().st_size,
        })
        ctx.report(0.7, "checking parity against the unoptimized model")
        details.update(compare(source, out, artifact, ctx, opts.parity_samples, opts.min_agreement, f"{level}-optimized"))
        return artifact.evolve(model=str(out), meta={"fusion": {"engine": "onnxruntime", "level": level}}, details=details)

def _optimize(source: Path, ctx: Context, level: str) -> tuple[Path, Any]:
    """Write ONNX Runtime's optimized graph to a new workdir file; return it self-contained with unused opsets pruned."""
    import onnx

    out = ctx.new_path(f"fused-{level}", ".onnx")
    session(source, level=LEVELS[level], save_optimized=out)
    proto = onnx.load(str(out))  # resolves any external data ORT pointed at, before it is inlined below
    prune_opset_imports(proto)
    save_inline(proto, out)
    return out, proto


def _has_float16(proto: Any) -> bool:
    from onnx import TensorProto

    if any(t.data_type == TensorProto.FLOAT16 for t in proto.graph.initializer):
        return True
    values = list(proto.graph.value_info) + list(proto.graph.input) + list(proto.graph.output)
    return any(v.type.tensor_type.elem_type == TensorProto.FLOAT16 for v in values)


def _cast_outputs(proto: Any) -> set[str]:
    return {o for n in proto.graph.node if n.op_type == "Cast" for o in n.output}
