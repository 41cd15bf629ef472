"""`quantize.qat`: NNCF quantization-aware training on the torch model, exported as an int8 QDQ ONNX graph.

The path that ONNX Runtime can run (reference/stack.md): `nncf.quantize` inserts fake quantizers, the
model trains with them, `nncf.strip(..., strip_format=NATIVE)` turns them into torch's own fake-quantize
ops, and the TorchScript exporter writes those as QuantizeLinear/DequantizeLinear pairs. The exporter
keeps the weights in float32 ahead of their QuantizeLinear; this pass folds each such constant
QuantizeLinear into an int8 initializer (computed by ONNX Runtime's own kernel), so the file stores int8
weights and the graph computes exactly what it did before the fold.

torch, nncf, onnx and onnxruntime are imported only inside `run()` and the helpers it calls.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from shrink import Artifact, Context, Pass, PlanContext
from shrink_common.options import TrainingOptions

if TYPE_CHECKING:
    import onnx
    from torch import nn


class QuantizeQATOptions(TrainingOptions):
    """Options of the `quantize.qat` pass."""

    epochs: int = Field(2, ge=1, le=1000, description="quantization-aware training epochs")
    lr: float = Field(5e-4, gt=0, le=10, description="peak learning rate (weights and quantizer scales)")
    kd: bool = Field(True, description="train with Hinton KD from the float model (else cross-entropy on the labels)")
    calibration_samples: int = Field(200, ge=1, le=100000, description="inputs (calibration split, else train) "
                                                                        "that initialise the quantizer ranges")
    per_channel: bool | None = Field(None, description="per-channel weight scales; default: the target's "
                                                       "quantization.per_channel (else true)")
    fold_bn: bool = Field(True, description="fold BatchNorm into the preceding convolution before inserting "
                                            "quantizers (otherwise BatchNormalization stays in the int8 graph)")
    opset: int | None = Field(None, ge=13, le=23, description="ai.onnx opset of the export (13+: per-channel "
                                                              "DequantizeLinear); default: the target's export_opset")
    parity_samples: int = Field(256, ge=1, le=4096, description="eval inputs for the torch-vs-ONNX Runtime check")
    min_agreement: float = Field(0.98, ge=0, le=1, description="fail when ONNX Runtime's top-1 class agrees with the "
                                                               "trained torch model on fewer than this fraction of inputs")

    @model_validator(mode="after")
    def _consistent(self) -> QuantizeQATOptions:
        for key in ("temperature", "alpha"):
            if key in self.model_fields_set and not self.kd:
                raise ValueError(f"{key} applies only with kd: true")
        return self


class QuantizeQAT(Pass[QuantizeQATOptions]):
    """Quantization-aware training with NNCF (int8 fake quantizers trained with the model), exported as int8 QDQ ONNX."""

    name = "quantize.qat"
    consumes = ("torch",)
    produces = "onnx"
    requires = frozenset({"train", "labels"})

    def check(self, plan: PlanContext) -> list[str]:
        opts = self.options
        target = plan.target
        problems = []
        opset = opts.opset or target.export_opset
        span = target.get("opset", "ai.onnx")
        if opset < 13:
            problems.append(f"opset {opset} (the target's export_opset) has no per-axis QuantizeLinear/DequantizeLinear; "
                            "set opset to 13 or newer")
        if span and not span["min"] <= opset <= span["max"]:
            problems.append(f"opset {opset} is outside {target.name}'s supported ai.onnx opsets {span['min']}–{span['max']}")
        supported = target.get("dtypes", "supported")
        for dtype in sorted({str(target.get("quantization", "weights", default="int8")), activation_dtype(target)}):
            if dtype not in ("int8", "uint8"):
                problems.append(f"target {target.name} asks for {dtype} quantization; quantize.qat writes int8/uint8 QDQ")
            elif supported is not None and dtype not in supported:
                problems.append(f"int8 QDQ needs {dtype}, which target {target.name} does not support "
                                f"(dtypes.supported: {', '.join(supported)})")
        return problems

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import copy
        import os

        # NNCF compiles its CPU fake-quantize extension on first use (~1 min on 2 cores, then cached in
        # ~/.cache/torch_extensions) and gives up after 60 s by default: on a fresh or busy machine
        # that fails the pass. Allow 15 minutes unless the user chose a limit.
        os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "900")
        import nncf
        import onnx
        import torch

        from shrink import UsageError
        from shrink.api.data import labelled_eval
        from shrink.support.ort import run_session
        from shrink_common.classifier import data_augment, evaluate, predict, split_tensors, train
        from shrink_common.onnx_graph import op_counts, opset_problems
        from shrink_common.parity import closeness, parity_feeds, top1_agreement
        from shrink_common.torch_setup import setup_torch
        from shrink_common.training import TrainConfig
        from shrink_torch.fuse import fuse_conv_bn, fused_for_inference

        opts = self.options
        seed = ctx.seed + opts.seed
        setup_torch(seed)
        if len(artifact.inputs) != 1:
            raise UsageError(f"quantize.qat handles models with one input; this one has {len(artifact.inputs)}")
        (spec,) = artifact.inputs
        if not str(spec.get("dtype", "float32")).startswith("float"):
            raise UsageError(f"quantize.qat needs a float model input; {spec['name']!r} is {spec['dtype']}")
        x, y = split_tensors(ctx.require_data("train", self.name), self.name)
        evaluation = labelled_eval(ctx.data)
        original: nn.Module = artifact.model.eval()
        model = copy.deepcopy(original).eval()
        folded: list[tuple[str, str]] = []
        if opts.fold_bn:
            model, folded, _ = fuse_conv_bn(model)
        per_channel = opts.per_channel
        if per_channel is None:
            per_channel = bool(ctx.target.get("quantization", "per_channel", default=True))
        activations = activation_dtype(ctx.target)
        preset = nncf.QuantizationPreset.MIXED if activations == "uint8" else nncf.QuantizationPreset.PERFORMANCE
        calibration = ctx.family(artifact).feeds(artifact, ctx, ("calibration", "train"), opts.calibration_samples)
        if calibration is None:
            raise UsageError(f"{self.name} needs calibration inputs that fit the model's input {spec['name']!r}")
        calibration = (calibration[0][spec["name"]], calibration[1])
        details: dict[str, Any] = {
            "engine": f"nncf {nncf.__version__}", "format": "QDQ", "per_channel": per_channel,
            "nncf_preset": preset.value, "activations": activations, "weights": "int8",
            "calibration_inputs": calibration[1], "batchnorm_folded": len(folded),
            "accuracy_float": evaluate(original, evaluation),
        }

        started = time.perf_counter()
        ctx.report(0.05, f"inserting NNCF quantizers ({preset.value}, calibrating on {len(calibration[0])} inputs)")
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

        advanced = AdvancedQuantizationParameters(weights_quantization_params=QuantizationParameters(per_channel=per_channel))
        wrapped = wrap_for_nncf(model)
        calib = torch.from_numpy(calibration[0].copy())
        items = [calib[i:i + 1] for i in range(len(calib))]  # subset_size counts items: one sample each
        qmodel = nncf.quantize(wrapped, nncf.Dataset(items), subset_size=len(items), preset=preset,
                               advanced_parameters=advanced)
        details["accuracy_ptq_init"] = evaluate(qmodel, evaluation)

        teacher = fused_for_inference(original) if opts.kd else None
        cfg = TrainConfig(epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, optimizer=opts.optimizer,
                          weight_decay=opts.weight_decay, schedule=opts.schedule, augment=opts.augment,
                          max_shift=opts.max_shift, temperature=opts.temperature, alpha=opts.alpha, channels_last=False,
                          feature_augment=data_augment(ctx.data, opts.augment))
        result = train(qmodel, x, y, cfg, seed, teacher=teacher, report=ctx.report,
                       label="quantization-aware training" + (" with KD" if teacher is not None else ""), progress=(0.1, 0.8))
        qmodel.eval()
        details.update({"epochs": opts.epochs, "kd": opts.kd, "train_seconds": round(result.seconds, 3),
                        "final_loss": result.final_loss, "accuracy_qat_torch": evaluate(qmodel, evaluation)})

        ctx.report(0.82, "stripping NNCF wrappers and exporting (TorchScript) to QDQ ONNX")
        example = torch.from_numpy(calibration[0][:1].copy())
        stripped = nncf.strip(qmodel, do_copy=True, strip_format=nncf.StripFormat.NATIVE, example_input=example).eval()
        opset = opts.opset or ctx.target.export_opset
        exported = ctx.new_path("qat-export", ".onnx")
        output_name = (artifact.meta.get("outputs") or [{"name": "output"}])[0]["name"]
        with torch.no_grad():
            torch.onnx.export(stripped, (example,), str(exported), dynamo=False, opset_version=opset,
                              input_names=[spec["name"]], output_names=[output_name],
                              dynamic_axes={spec["name"]: {0: "batch"}, output_name: {0: "batch"}})
        proto = onnx.load(str(exported))
        folded_weights = fold_weight_quantizers(proto)
        out = ctx.new_path("qat", ".onnx")
        onnx.save(proto, str(out))
        onnx.checker.check_model(str(out), full_check=True)
        problems = opset_problems(proto, ctx.target)
        if problems:
            raise RuntimeError("the QAT model does not fit the target: " + "; ".join(problems))
        counts = op_counts(proto)
        int8_weights = int8_weight_count(proto)
        if not int8_weights:
            raise RuntimeError(f"the exported QAT graph has no int8 weights (ops: {dict(counts)})")

        ctx.report(0.9, "checking ONNX Runtime against the trained torch model")
        feeds, origin = parity_feeds(artifact, ctx, opts.parity_samples)
        samples = feeds[spec["name"]]
        expected = predict(stripped, samples)
        actual = run_session(out, {spec["name"]: samples})[0]
        agreement = top1_agreement(artifact, ctx, expected, actual)
        agreement = 1.0 if agreement is None else agreement
        details.update({
            "opset": opset, "quantize_linear": counts.get("QuantizeLinear", 0),
            "dequantize_linear": counts.get("DequantizeLinear", 0), "int8_weight_tensors": int8_weights,
            "weight_quantizers_folded": folded_weights, "weight_quantizers_left": float_weight_quantizers(proto),
            "nodes": len(proto.graph.node),
            "bytes_exported": exported.stat().st_size, "bytes": out.stat().st_size,
            "parity_inputs": origin, "parity_max_abs": closeness(expected, actual)["max_abs"],
            "parity_top1_agreement": round(agreement, 6),
            "qat_seconds": round(time.perf_counter() - started, 3),
        })
        if agreement < opts.min_agreement:
            raise RuntimeError(f"ONNX Runtime agrees with the trained torch model on the top-1 class for {agreement:.1%} of "
                               f"{len(samples)} inputs, below min_agreement {opts.min_agreement:.1%}")
        outputs = [{"name": o.name} for o in proto.graph.output]
        meta: dict[str, Any] = {"outputs": outputs, "opset": opset, "dynamic_batch": True,
                                "quantization": {"scheme": "qat-qdq-per-channel" if per_channel else "qat-qdq-per-tensor",
                                                 "engine": "nncf"}}
        if folded:
            meta["fused_bn"] = [list(p) for p in artifact.meta.get("fused_bn") or []] + [list(p) for p in folded]
        return artifact.evolve(model=str(out), format="onnx", meta=meta, details=details)

def activation_dtype(target: Any) -> str:
    return str(target.get("quantization", "activations", default="uint8"))


def wrap_for_nncf(model: nn.Module) -> nn.Module:
    """The model as the only child of a plain module: NNCF attaches its hook storage to the root module,
    which an `nn.Sequential` root would then call as one of its layers."""
    from torch import nn

    class Forward(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.model = inner

        def forward(self, x: Any) -> Any:  # a named input: NNCF places its input quantizer on it (not on *args)
            return self.model(x)

    return Forward(model)


def fold_weight_quantizers(proto: onnx.ModelProto) -> int:
    """Replace every QuantizeLinear whose inputs are all initializers by its (int8) result, computed with
    ONNX Runtime's QuantizeLinear kernel; drop initializers nothing reads any more. Returns how many were folded.

    Identity nodes that only forward an initializer are removed first (their readers read the initializer).
    """
    import onnx
    from onnx import helper, numpy_helper

    from shrink.support.ort import session

    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    # The TorchScript exporter shares equal constants (zero points) through Identity nodes: read through them.
    outputs = {o.name for o in graph.output}
    alias = {n.output[0]: n.input[0] for n in graph.node
             if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in outputs}
    if alias:
        kept_nodes = [n for n in graph.node if n.output[0] not in alias or n.op_type != "Identity"]
        for node in kept_nodes:
            for i, name in enumerate(node.input):
                if name in alias:
                    node.input[i] = alias[name]
        del graph.node[:]
        graph.node.extend(kept_nodes)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 13)
    folded = 0
    keep = []
    for node in graph.node:
        inputs = [i for i in node.input if i]
        if node.op_type != "QuantizeLinear" or node.domain not in ("", "ai.onnx") or not all(i in inits for i in inputs):
            keep.append(node)
            continue
        zero_point = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        dtype = zero_point.data_type if zero_point is not None else onnx.TensorProto.UINT8
        single = helper.make_model(
            helper.make_graph([node], "fold", [], [helper.make_tensor_value_info(node.output[0], dtype, None)],
                              initializer=[inits[i] for i in dict.fromkeys(inputs)]),
            opset_imports=[helper.make_opsetid("", opset)], ir_version=proto.ir_version)
        (value,) = session(single.SerializeToString(), optimize=False).run(None, {})
        graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
        folded += 1
    del graph.node[:]
    graph.node.extend(keep)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    unused = {i.name for i in graph.initializer if i.name not in used}
    kept_inits = [i for i in graph.initializer if i.name not in unused]
    kept_inputs = [i for i in graph.input if i.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    del graph.input[:]
    graph.input.extend(kept_inputs)
    return folded


def float_weight_quantizers(proto: onnx.ModelProto) -> int:
    """QuantizeLinear nodes still reading a float initializer of rank ≥ 2 (a weight left in float32 on disk)."""
    from onnx import TensorProto

    floats = {i.name for i in proto.graph.initializer if i.data_type == TensorProto.FLOAT and len(i.dims) >= 2}
    return sum(1 for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in floats)


def int8_weight_count(proto: onnx.ModelProto) -> int:
    """DequantizeLinear nodes that read an int8/uint8 initializer: weights stored quantized."""
    from onnx import TensorProto

    int8 = {i.name for i in proto.graph.initializer if i.data_type in (TensorProto.INT8, TensorProto.UINT8) and len(i.dims)}
    return sum(1 for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in int8)

