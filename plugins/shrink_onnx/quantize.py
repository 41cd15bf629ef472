"""`quantize.ptq`: int8 post-training quantization of an ONNX graph.

Calibration inputs come from the model's family (`ModelFamily.feeds`); parity against the input model
is `shrink_common.parity.compare`. onnx, onnxruntime and nncf are imported only inside `run()` and the
helpers it calls.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from shrink import Artifact, Context, Pass, PassOptions, PlanContext, UsageError
from shrink.api.data import rows, to_model
from shrink.api.inputs import batch_axis
from shrink_common.onnx_graph import inline_copy, op_counts, opset_problems, prune_opset_imports, save_inline
from shrink_common.parity import compare
from shrink_common.samples import data_section_for

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from shrink.api.target import Target

SCHEMES = ("static-qdq-per-channel", "static-qdq-per-tensor", "dynamic-per-channel", "dynamic-per-tensor")
QUANT_DTYPES = {"int8": "QInt8", "uint8": "QUInt8"}
# Ops dynamic quantization rewrites. Conv is left out on purpose: dynamically quantized convolutions
# run ~7x slower than fp32 on ONNX Runtime's CPU kernels (reference/stack.md).
DYNAMIC_OPS = ("MatMul", "Gather", "Attention", "LSTM", "EmbedLayerNormalization")
COMPUTE_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Attention", "LSTM", "GRU", "RNN"}
INTEGER_OPS = {"MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QAttention",
               "DynamicQuantizeLSTM", "QGemm", "QEmbedLayerNormalization"}
QDQ_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


def requantizing(meta: Mapping[str, Any]) -> str | None:
    """Why a model with this meta must not be quantized again (by an earlier pass, or in its source file)."""
    done = meta.get("quantization")
    if not done:
        return None
    ops = f" ({', '.join(done['ops'])})" if done.get("ops") else ""
    return f"the model is already quantized: {done.get('scheme', '?')}{ops}; quantizing it again is refused"


def refuse_requantizing(artifact: Artifact, who: str) -> None:
    why = requantizing(artifact.meta)
    if why:
        raise UsageError(f"{who}: {why}", hint="remove this pass, or start from the float model")


def mac_share(path: Path, artifact: Artifact, scheme: str) -> dict[str, Any]:
    """`int8_mac_share` of the quantized graph (by the analysis), and a warning when most MACs stay float."""
    from shrink.analysis import AnalysisError, analyze
    from shrink.api.onnx_format import pinned_shapes

    try:
        analysis = analyze(path, pinned_shapes(artifact) or None)
    except AnalysisError:  # inputs not pinned: the engine's metrics say so; the share is only a report
        return {}
    total = sum(analysis.macs_by_dtype.values())
    if not total:
        return {}
    share = sum(m for d, m in analysis.macs_by_dtype.items() if d in ("int8", "uint8", "int4")) / total
    found: dict[str, Any] = {"int8_mac_share": round(share, 4)}
    if share < 0.5:
        float_ops = ", ".join(f"{op} {macs:,}" for op, macs in sorted(analysis.macs_by_op.items(), key=lambda kv: -kv[1])[:3])
        advice = ("dynamic schemes leave convolutions float: give calibration data for a static scheme"
                  if scheme.startswith("dynamic") else "see float_compute_ops and exclude_nodes")
        found["warnings"] = [f"{1 - share:.0%} of the MACs stay float after {scheme} (largest by op: {float_ops}); {advice}"]
    return found


def _summary(counts: Counter[str]) -> str:
    return ", ".join(f"{op}×{n}" for op, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


HISTOGRAM_CHUNK = 8  # calibration inputs a histogram calibrator holds at once


def upgrade_opset(proto: onnx.ModelProto, version: int, artifact: Artifact) -> onnx.ModelProto:
    """The model converted to ai.onnx `version` by onnx's version converter, checked; `UsageError` naming the
    model when the converter cannot do it."""
    import onnx
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(proto, version)
        onnx.checker.check_model(converted)
    except Exception as exc:  # noqa: BLE001 - the converter raises anything on graphs it does not handle
        raise UsageError(f"{artifact.meta.get('source_file') or 'the model'} has ai.onnx opset {_opset(proto)} and "
                         f"onnx.version_converter cannot bring it to {version}: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''}",
                         hint=f"export the model at opset {version} or newer, or use a per-tensor scheme") from None
    return converted


def _opset(proto: onnx.ModelProto) -> int:
    return next((imp.version for imp in proto.opset_import if imp.domain in ("", "ai.onnx")), 0)


# --------------------------------------------------------------------------------------------
# quantize.ptq
# --------------------------------------------------------------------------------------------

def target_scheme(target: Target) -> str:
    """The target's preferred scheme; a profile without one gets static QDQ (per channel unless it says otherwise)."""
    scheme = target.get("quantization", "scheme")
    if scheme:
        return str(scheme)
    return "static-qdq-per-channel" if target.get("quantization", "per_channel", default=True) else "static-qdq-per-tensor"


def graph_kind(counts: Counter[str]) -> tuple[str, str]:
    """`("conv", why)`, `("transformer", why)` or `("other", why)` from the graph's op types."""
    convs = counts.get("Conv", 0) + counts.get("ConvTranspose", 0)
    matmuls = counts.get("MatMul", 0) + counts.get("com.microsoft:Attention", 0)
    gathers = counts.get("Gather", 0)
    gemms = counts.get("Gemm", 0)
    if convs:
        return "conv", f"{convs} Conv node{'s' if convs != 1 else ''}"
    if matmuls + gathers and matmuls + gathers > gemms:
        return "transformer", f"no Conv, {matmuls} MatMul + {gathers} Gather node(s) (transformer-like)"
    if matmuls and counts.get("Softmax", 0):  # attention (MatMul → Softmax → MatMul) with Gemm projections
        return "transformer", f"no Conv, {matmuls} MatMul + {counts['Softmax']} Softmax node(s) (attention)"
    return "other", f"no Conv, {gemms} Gemm + {matmuls} MatMul node(s)"


class QuantizePTQOptions(PassOptions):
    """Options of the `quantize.ptq` pass."""

    search_space = {"calibration_method": {"choice": ["minmax", "entropy", "percentile"]}}

    scheme: Literal["auto", "static-qdq-per-channel", "static-qdq-per-tensor", "dynamic-per-channel",
                    "dynamic-per-tensor"] = Field(
        "auto", description="int8 scheme; 'auto' follows the target's quantization.scheme for conv nets and picks "
                            "dynamic-per-channel for MatMul/Gather (transformer) graphs on ONNX Runtime")
    engine: Literal["ort", "nncf"] = Field(
        "ort", description="'ort': onnxruntime.quantization (quant_pre_process + quantize_static/quantize_dynamic); "
                           "'nncf': nncf.quantize on the ONNX model (static schemes only)")
    calibration_samples: int = Field(200, ge=1, le=100_000,
                                     description="calibration inputs (static schemes), from the data's calibration split")
    calibration_method: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="how activation ranges are chosen from calibration data (engine 'ort')")
    ops: tuple[str, ...] = Field((), description="op types to quantize, e.g. ['Conv', 'MatMul', 'Gemm'] (default: every "
                                                 "op type the engine quantizes); leaving elementwise ops (Add, Mul, "
                                                 "Div) in float keeps models whose activations have outliers accurate")
    exclude_ops: tuple[str, ...] = Field((), description="op types to leave in float (e.g. ['Gemm'])")
    exclude_nodes: tuple[str, ...] = Field((), description="node names or fnmatch patterns (e.g. '*/features.0/*Conv') "
                                                             "to leave in float; a pattern matching no node fails the pass")
    reduce_range: bool | None = Field(None, description="quantize weights to 7 bits (u8s8 overflow on AVX2 without "
                                                        "VNNI); default: the target's quantization.reduce_range")
    parity_samples: int = Field(256, ge=1, le=4096, description="eval inputs for the input-vs-output parity check")
    min_agreement: float = Field(0.95, ge=0, le=1, description="fail the pass when the top-1 class agrees with the "
                                                                 "input model on fewer than this fraction of inputs")

    @model_validator(mode="after")
    def _consistent(self) -> QuantizePTQOptions:
        dynamic = self.scheme.startswith("dynamic")
        if self.engine == "nncf" and dynamic:
            raise ValueError(f"engine 'nncf' does static quantization only; scheme {self.scheme!r} needs engine 'ort'")
        both = sorted(set(self.ops) & set(self.exclude_ops))
        if both:
            raise ValueError(f"{', '.join(both)} both in ops and in exclude_ops")
        if self.engine == "nncf" and self.calibration_method != "minmax":
            raise ValueError(f"calibration_method {self.calibration_method!r} applies to engine 'ort'; "
                             "engine 'nncf' uses its own range estimators")
        if dynamic:
            static_only = sorted({"calibration_samples", "calibration_method"} & self.model_fields_set)
            if static_only:
                verb = "apply" if len(static_only) > 1 else "applies"
                raise ValueError(f"{' and '.join(static_only)} {verb} only to static schemes; scheme {self.scheme!r} "
                                 "computes activation ranges at run time")
        return self


class QuantizePTQ(Pass[QuantizePTQOptions]):
    """Int8 post-training quantization of an ONNX graph; the scheme follows the target and the model family."""

    name = "quantize.ptq"
    consumes = ("onnx",)
    produces = "onnx"
    default = True

    def check(self, plan: PlanContext) -> list[str]:
        opts = self.options
        target = plan.target
        problems: list[str] = []
        already = requantizing(plan.model_meta)
        if already:
            return [already + " (remove this pass, or start from the float model)"]
        if plan.model_meta.get("not_quantizable"):
            return [f"{plan.model_meta['not_quantizable']}: nothing would be quantized (remove this pass, or quantize "
                    "an export of the model without control flow)"]
        tscheme = target_scheme(target)
        if opts.engine == "nncf" and importlib.util.find_spec("nncf") is None:
            problems.append("engine 'nncf' needs the nncf package (pip install nncf)")
        if opts.scheme == "auto":
            if tscheme == "none":
                problems.append(f"target {target.name} asks for no quantization (quantization.scheme 'none'); "
                                "remove this pass or set an explicit scheme")
                return problems
            if tscheme not in SCHEMES:
                problems.append(f"target {target.name} prefers quantization scheme {tscheme!r}, which quantize.ptq does "
                                f"not implement ({', '.join(SCHEMES)}); set an explicit scheme")
                return problems
        static_possible = opts.scheme.startswith("static") or (
            opts.scheme == "auto" and (tscheme.startswith("static") or opts.engine == "nncf"))
        runtime = target.get("runtime", "name")
        if static_possible and not plan.recipe.raw.get("data"):
            which = f"scheme {opts.scheme!r}" if opts.scheme != "auto" else f"scheme 'auto' (→ {tscheme} on {target.name} for conv nets)"
            or_dynamic = ", or choose scheme 'dynamic-per-channel'" if runtime == "onnxruntime" else ""
            problems.append(f"{which} needs calibration data but the recipe has no 'data' section: add one, e.g. "
                            f"{data_section_for(plan.inputs)}{or_dynamic}")
        if opts.scheme.startswith("dynamic") and runtime and runtime != "onnxruntime":
            problems.append(f"scheme {opts.scheme!r} emits DynamicQuantizeLinear/MatMulInteger, which target "
                            f"{target.name}'s runtime {runtime!r} cannot run; use a static scheme")
        supported = target.get("dtypes", "supported")
        needed = {str(target.get("quantization", "weights", default="int8")),
                  str(target.get("quantization", "activations", default="uint8"))}
        if opts.scheme.startswith("dynamic"):
            needed = {"int8", "uint8"}
        for dtype in sorted(needed):
            if dtype not in QUANT_DTYPES:
                problems.append(f"target {target.name} asks for {dtype} quantization; quantize.ptq supports int8 and uint8")
            elif supported is not None and dtype not in supported:
                problems.append(f"int8 quantization needs {dtype}, which target {target.name} does not support "
                                f"(dtypes.supported: {', '.join(supported)})")
        per_channel = opts.scheme.endswith("per-channel") or (opts.scheme == "auto" and tscheme.endswith("per-channel"))
        onnx_span = target.get("opset", "ai.onnx")
        if per_channel and onnx_span and onnx_span["max"] < 13:
            problems.append(f"per-channel quantization needs ai.onnx opset 13 (DequantizeLinear axis); target "
                            f"{target.name} supports up to {onnx_span['max']}; use a per-tensor scheme")
        problems += unknown_ops(opts.exclude_ops) + unknown_ops(opts.ops, "ops")
        return problems

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import onnx

        refuse_requantizing(artifact, self.name)
        opts = self.options
        source = inline_copy(Path(artifact.model), ctx, "ptq-input")
        proto = onnx.load(str(source))
        counts = op_counts(proto)
        scheme, reason = self._resolve(counts, ctx)
        per_channel = scheme.endswith("per-channel")
        reduce_range = opts.reduce_range
        if reduce_range is None:
            reduce_range = bool(ctx.target.get("quantization", "reduce_range", default=False))
        details: dict[str, Any] = {"scheme": scheme, "scheme_reason": reason, "engine": opts.engine}
        needed_opset = 13 if per_channel and scheme.startswith("static") else 11
        if _opset(proto) < needed_opset:
            details["opset_converted"] = f"{_opset(proto)} → {needed_opset} (onnx.version_converter; {scheme} needs it)"
            proto = upgrade_opset(proto, needed_opset, artifact)
            source = ctx.new_path(f"opset{needed_opset}", ".onnx")
            save_inline(proto, source)
        ctx.report(0.05, f"{scheme} with {opts.engine}: {reason}")
        out = ctx.new_path("quantized", ".onnx")
        if scheme.startswith("static"):
            details.update(self._static(source, out, artifact, ctx, per_channel, reduce_range))
        else:
            details.update(self._dynamic(source, out, ctx, per_channel, reduce_range))

        result = onnx.load(str(out))
        prune_opset_imports(result)
        save_inline(result, out)
        quantized, float_left = _quantized_nodes(result)
        if not quantized:
            raise RuntimeError(f"{scheme} quantized no node (float ops: {_summary(counts)})"
                               + ("; dynamic schemes quantize MatMul/Gather, not Conv or Gemm — use a static scheme"
                                  if scheme.startswith("dynamic") else ""))
        problems = [p for p in opset_problems(result, ctx.target) if p not in opset_problems(proto, ctx.target)]
        if problems:
            raise RuntimeError("the quantized model does not fit the target: " + "; ".join(problems))
        before, after = source.stat().st_size, out.stat().st_size
        details.update({
            "per_channel": per_channel, "reduce_range": reduce_range,
            "nodes_quantized": sum(quantized.values()), "quantized_ops": _summary(quantized),
            "float_compute_ops": _summary(float_left), "nodes_before": len(proto.graph.node), "nodes_after": len(result.graph.node),
            "bytes_before": before, "bytes_after": after, "size_ratio": round(after / before, 4),
        })
        details.update(mac_share(out, artifact, scheme))
        ctx.report(0.85, "checking parity against the float model")
        details.update(compare(source, out, artifact, ctx, opts.parity_samples, opts.min_agreement, f"{scheme} int8"))
        return artifact.evolve(model=str(out), meta={"quantization": {"scheme": scheme, "engine": opts.engine}}, details=details)

    def _resolve(self, counts: Counter[str], ctx: Context) -> tuple[str, str]:
        opts = self.options
        if opts.scheme != "auto":
            return opts.scheme, "set in the recipe"
        preferred = target_scheme(ctx.target)
        kind, why = graph_kind(counts)
        runtime = ctx.target.get("runtime", "name")
        if kind == "transformer" and runtime == "onnxruntime" and opts.engine == "ort":
            return "dynamic-per-channel", (f"auto: {why} on {runtime} CPU → dynamic per-channel "
                                           f"(static int8 runs slower than fp32 there); target {ctx.target.name} "
                                           f"prefers {preferred} for other models")
        if opts.engine == "nncf" and preferred.startswith("dynamic"):
            preferred = "static-qdq-per-channel" if preferred.endswith("per-channel") else "static-qdq-per-tensor"
            return preferred, f"auto: engine nncf is static-only → {preferred}; {why}"
        return preferred, f"auto: target {ctx.target.name} prefers {preferred}; {why}"

    def _calibration(self, path: Path, artifact: Artifact, ctx: Context) -> tuple[dict[str, np.ndarray], str]:
        opts = self.options
        found = ctx.family(artifact).feeds(artifact, ctx, ("calibration", "train"), opts.calibration_samples)
        if found is None:
            what = ("the recipe has no data" if ctx.data is None
                    else f"no calibration/train split of {ctx.data.name!r} fits the model's inputs")
            raise RuntimeError(f"static quantization needs calibration inputs: {what}; use scheme 'dynamic-per-channel'")
        return found

    def _types(self, ctx: Context) -> tuple[Any, Any]:
        from onnxruntime.quantization import QuantType

        acts = str(ctx.target.get("quantization", "activations", default="uint8"))
        weights = str(ctx.target.get("quantization", "weights", default="int8"))
        return getattr(QuantType, QUANT_DTYPES[acts]), getattr(QuantType, QUANT_DTYPES[weights])

    def _static(self, source: Path, out: Path, artifact: Artifact, ctx: Context, per_channel: bool,
                reduce_range: bool) -> dict[str, Any]:
        opts = self.options
        feeds, origin = self._calibration(source, artifact, ctx)
        specs, count = artifact.inputs, rows(feeds)
        activation_type, weight_type = self._types(ctx)
        details: dict[str, Any] = {"format": "QDQ", "activations": activation_type.name, "weights": weight_type.name,
                                   "calibration_inputs": origin}
        if opts.engine == "nncf":
            items = [to_model(specs, feeds, i, i + 1) for i in range(count)]  # subset_size counts items: one sample each
            details.update(self._nncf(source, out, items, per_channel, activation_type))
            return details

        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            quant_pre_process,
            quantize_static,
        )
        from onnxruntime.quantization.registry import QDQRegistry

        ctx.report(0.1, "quant_pre_process (shape inference, graph cleanup)")
        pre = ctx.new_path("preprocessed", ".onnx")
        details["preprocess"] = _preprocess(quant_pre_process, source, pre)
        excluded = self._excluded(pre)
        if excluded:
            details["kept_float"] = ", ".join(excluded)
        step = _batch(pre, specs, 16)
        if step != _batch(pre, specs, 0):  # dynamic batch: equal-sized batches (the histogram calibrators need them)
            step = max(d for d in range(1, step + 1) if count % d == 0)
        batches = [to_model(specs, feeds, i, i + step) for i in range(0, count, step)]

        class Reader(CalibrationDataReader):
            """The batches, or the range of them `set_range` selects (ORT's strided calibration)."""

            def __init__(self) -> None:
                self._items = iter(batches)

            def __len__(self) -> int:
                return len(batches)

            def set_range(self, start_index: int, end_index: int) -> None:
                self._items = iter(batches[start_index:end_index])

            def get_next(self) -> dict[str, Any] | None:
                return next(self._items, None)

        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[opts.calibration_method]
        extra: dict[str, Any] = {}
        if method != CalibrationMethod.MinMax:
            # ORT's histogram calibrators hold every activation of every input they are given at once (GBs for a
            # few dozen inputs of a mid-size model); its strided calibration feeds them a few at a time and merges
            # the histograms
            extra["CalibStridedMinMax"] = max(d for d in range(1, len(batches) + 1)
                                              if len(batches) % d == 0 and d * step <= max(HISTOGRAM_CHUNK, step))
            details["calibration_chunk"] = extra["CalibStridedMinMax"] * step
        ops = ([op for op in (opts.ops or QDQRegistry) if op not in set(opts.exclude_ops)]
               if opts.ops or opts.exclude_ops else None)
        ctx.report(0.3, f"calibrating on {count} inputs ({opts.calibration_method})")
        with contextlib.redirect_stdout(sys.stderr):  # ORT's calibrators print() progress: keep stdout the caller's
            quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=ops,
                            per_channel=per_channel, reduce_range=reduce_range, activation_type=activation_type,
                            weight_type=weight_type, nodes_to_exclude=excluded or None, calibrate_method=method,
                            extra_options=extra)
        details["calibration_method"] = opts.calibration_method
        details.update(self._recurrent(out, ctx, per_channel, reduce_range, excluded))
        return details

    def _recurrent(self, out: Path, ctx: Context, per_channel: bool, reduce_range: bool,
                   excluded: list[str]) -> dict[str, Any]:
        """LSTMs the static pass left float, quantized dynamically in place (ORT's QDQ format has no int8 LSTM; its
        DynamicQuantizeLSTM has int8 weights): a Conv+LSTM text reader kept 15% of its MACs float otherwise."""
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        if "LSTM" in self.options.exclude_ops or ctx.target.get("runtime", "name") != "onnxruntime":
            return {}
        proto = onnx.load(str(out), load_external_data=False)
        if not any(n.op_type == "LSTM" and n.name not in excluded for n in proto.graph.node):
            return {}
        staged = ctx.new_path("static", ".onnx")
        out.replace(staged)
        ctx.report(0.7, "dynamic quantization of the LSTMs")
        quantize_dynamic(str(staged), str(out), op_types_to_quantize=["LSTM"], per_channel=per_channel,
                         reduce_range=reduce_range, weight_type=QuantType.QInt8, nodes_to_exclude=excluded or None)
        return {"format": "QDQ, LSTM dynamic (DynamicQuantizeLSTM)"}

    def _nncf(self, source: Path, out: Path, items: list[dict[str, np.ndarray]], per_channel: bool,
              activation_type: Any) -> dict[str, Any]:
        import nncf
        import onnx
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters
        from onnxruntime.quantization import QuantType

        opts = self.options
        excluded = self._excluded(source)
        types = list(opts.exclude_ops)
        if opts.ops:  # nncf takes what to ignore: every other op type of the graph
            types += sorted({n.op_type for n in onnx.load(str(source)).graph.node} - set(opts.ops) - set(types))
        ignored = nncf.IgnoredScope(names=excluded, types=types) if excluded or types else None
        preset = nncf.QuantizationPreset.MIXED if activation_type == QuantType.QUInt8 else nncf.QuantizationPreset.PERFORMANCE
        advanced = AdvancedQuantizationParameters(weights_quantization_params=QuantizationParameters(per_channel=per_channel))
        quantized = nncf.quantize(onnx.load(str(source)), nncf.Dataset(items), subset_size=len(items), preset=preset,
                                  ignored_scope=ignored, advanced_parameters=advanced)
        save_inline(quantized, out)
        return {"nncf_preset": preset.value, "nncf_subset_size": len(items)}

    def _dynamic(self, source: Path, out: Path, ctx: Context, per_channel: bool, reduce_range: bool) -> dict[str, Any]:
        from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

        opts = self.options
        ctx.report(0.1, "quant_pre_process (shape inference, graph cleanup)")
        pre = ctx.new_path("preprocessed", ".onnx")
        preprocess = _preprocess(quant_pre_process, source, pre)
        excluded = self._excluded(pre)
        ops = [op for op in DYNAMIC_OPS if op not in set(opts.exclude_ops) and (not opts.ops or op in opts.ops)]
        ctx.report(0.3, f"dynamic quantization of {', '.join(ops)}")
        quantize_dynamic(str(pre), str(out), op_types_to_quantize=ops, per_channel=per_channel, reduce_range=reduce_range,
                         weight_type=QuantType.QInt8, nodes_to_exclude=excluded or None)
        return {"format": "QOperator (dynamic)", "activations": "QUInt8 (at run time)", "weights": "QInt8",
                "preprocess": preprocess, "dynamic_ops": ", ".join(ops)}

    def _excluded(self, path: Path) -> list[str]:
        """`exclude_nodes` (names or fnmatch patterns, e.g. `*/features.0/*Conv`) expanded to the graph's node names."""
        import onnx

        if not self.options.exclude_nodes:
            return []
        return expand_nodes(self.options.exclude_nodes,
                            [n.name for n in onnx.load(str(path), load_external_data=False).graph.node])


def expand_nodes(patterns: tuple[str, ...], names: list[str]) -> list[str]:
    """Node names matching `patterns` (names or fnmatch patterns), in pattern order, each once; a pattern matching
    no node fails (with a did-you-mean)."""
    import fnmatch

    chosen: list[str] = []
    missing = []
    for pattern in patterns:
        matched = [n for n in names if n == pattern or fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            close = difflib.get_close_matches(pattern, names, n=1)
            missing.append(f"{pattern!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        chosen += [n for n in matched if n not in chosen]
    if missing:
        raise RuntimeError(f"exclude_nodes: no node named or matching {', '.join(missing)} in the graph")
    return chosen


def _preprocess(quant_pre_process: Any, source: Path, dest: Path) -> str:
    """`quant_pre_process`, retried without symbolic shape inference when that fails (some exotic graphs).

    When symbolic shape inference gives up, onnxruntime saves `sym_shape_infer_temp.onnx` and its
    external data into the *current directory*; it runs inside the workspace so the user's folder
    stays clean.
    """
    import contextlib

    with contextlib.chdir(dest.parent):
        try:
            quant_pre_process(str(source), str(dest))
            return "quant_pre_process"
        except Exception as exc:  # noqa: BLE001 - symbolic shape inference is best effort
            quant_pre_process(str(source), str(dest), skip_symbolic_shape=True)
            return f"quant_pre_process without symbolic shape inference ({type(exc).__name__})"


def _batch(path: Path, specs: list[dict[str, Any]], preferred: int) -> int:
    """The model's fixed batch size (on the first batched input's batch axis), 1 when an input has no batch axis,
    or `preferred` when the batch dimension is dynamic."""
    import onnx

    axes = {spec["name"]: batch_axis(spec) for spec in specs}
    if any(axis is None for axis in axes.values()):
        return 1
    proto = onnx.load(str(path), load_external_data=False)
    for value in proto.graph.input:
        if value.name in axes:
            dims = value.type.tensor_type.shape.dim
            axis = axes[value.name]
            if axis < len(dims) and dims[axis].HasField("dim_value") and dims[axis].dim_value > 0:
                return dims[axis].dim_value
            return preferred
    return preferred


def _quantized_nodes(proto: onnx.ModelProto) -> tuple[Counter[str], Counter[str]]:
    """(nodes that run in int8, compute nodes left in float) by op type."""
    dq_outputs = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    dq_inputs = {n.input[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    quantized: Counter[str] = Counter()
    float_left: Counter[str] = Counter()
    for node in proto.graph.node:
        if node.op_type in QDQ_OPS:
            continue
        inputs = [i for i in node.input if i]
        if (node.op_type in INTEGER_OPS or node.op_type.startswith("QLinear")
                or (inputs and all(i in dq_outputs for i in inputs))  # QDQ: every input dequantized (weights included)
                or any(o in dq_inputs for o in node.output)):  # int8 data in, dequantized after (e.g. a quantized Gather)
            quantized[node.op_type] += 1
        elif node.op_type in COMPUTE_OPS:
            float_left[node.op_type] += 1
    return quantized, float_left


def unknown_ops(ops: tuple[str, ...], option: str = "exclude_ops") -> list[str]:
    import onnx

    problems = []
    known = {s.name for s in onnx.defs.get_all_schemas()} | {"Attention", "EmbedLayerNormalization"}
    for op in ops:
        if op not in known:
            close = difflib.get_close_matches(op, sorted(known), n=1)
            problems.append(f"{option}: {op!r} is not an ONNX operator" + (f"; did you mean {close[0]!r}?" if close else ""))
    return problems
