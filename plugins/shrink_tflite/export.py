"""`export.tflite`: a torch model → `.tflite` for TensorFlow Lite Micro.

1. litert-torch converts the module (traced at the model's pinned input shapes) to a float32 `.tflite`, gated
   against torch under the TFLite interpreter (`tolerance`).
2. ai-edge-quantizer makes it full int8 (weights per channel, or per tensor when every layer's weights are shared;
   activations and the model's input and output per tensor), calibrated on the data; the int8 model runs under
   TensorFlow Lite Micro's interpreter and its top-1 class must agree with torch's on `min_agreement` of the parity
   inputs.
3. Weight tensors with at most `2**max_index_bits` distinct values (what `compress.cluster` leaves: per tensor when
   every layer's weights are shared, so one value table per tensor; per channel otherwise) are LUT-coded with TFLite
   Micro's compression library when the target's runtime decodes it, each only where the file gets smaller; the
   coded model must give bit-identical outputs under TFLite Micro, and is deployed only when smaller. What TFLite
   Micro never reads is stripped from both files (`strip_names`, `strip_zero_points`). The sizes (as converted, int8,
   zlib, zstd, Huffman, LUT) and where each file's bytes go are reported either way.

The artifact's inputs stay the float features the data gives; the bundle's manifest records the int8 scale and
zero point a device applies to them (`model.quantized_io`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shrink import Artifact, Context, Pass, PlanContext, UsageError
from shrink_tflite.options import TfliteExportOptions, missing

TORCH_FAMILIES = ("torch",)


class ExportTflite(Pass[TfliteExportOptions]):
    """Export a torch model to a full-int8 .tflite for TensorFlow Lite Micro (litert-torch, ai-edge-quantizer), parity-gated."""

    name = "export.tflite"
    consumes = ("torch",)
    produces = "tflite"
    requires = frozenset({"data"})
    libraries = ("torch", "litert-torch", "ai-edge-quantizer", "ai-edge-litert", "tflite-micro", "zstandard", "dahuffman")

    @classmethod
    def unavailable(cls) -> str | None:
        return missing()

    def check(self, plan: PlanContext) -> list[str]:
        problems = []
        if plan.family.name not in TORCH_FAMILIES:
            problems.append(f"export.tflite converts modules of the torch family (a factory's nn.Module called with its "
                            f"inputs); {plan.family.name} models are not supported")
        if plan.inputs is not None and any(spec.get("range") is not None or spec.get("constant") is not None
                                           for spec in plan.inputs):
            problems.append("export.tflite needs every input fed by data (calibration); an input fed by a range or a "
                            "constant is not supported")
        return problems

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import torch

        from shrink.api.data import rows
        from shrink.support.tflite_run import TflmModel
        from shrink_common.classifier import inference_copy, predict_feeds
        from shrink_common.parity import is_classification, parity_feeds
        from shrink_tflite.convert import float_parity, int8_parity, quantize_int8, to_float_tflite

        opts = self.options
        specs = artifact.inputs
        model = inference_copy(artifact.model)
        feeds, origin = parity_feeds(artifact, ctx, opts.parity_samples)
        samples = _samples(specs, feeds)
        expected = predict_feeds(model, specs, feeds).astype(np.float64)
        ctx.report(0.05, "converting to a float32 .tflite with litert-torch")
        float_path = ctx.new_path("export-float", ".tflite")
        to_float_tflite(model, tuple(torch.from_numpy(x) for x in samples[0]), float_path)
        details: dict[str, Any] = {"parity_inputs": origin, "float_bytes": float_path.stat().st_size,
                                   **float_parity(float_path, samples, expected, opts.tolerance)}
        if opts.quantize == "none":
            return _artifact(artifact, float_path, details, None)
        ctx.report(0.4, "full int8 with ai-edge-quantizer")
        found = ctx.family(artifact).feeds(artifact, ctx, ("calibration", "train"), opts.calibration_samples)
        if found is None:
            raise UsageError("export.tflite needs calibration data that feeds the model (a calibration or train split)")
        calibration = _samples(specs, found[0])
        int8_path = ctx.new_path("export-int8", ".tflite")
        # per-tensor scales cost accuracy once BatchNorm is folded (in our KWS run: 73.5% top-1 agreement with torch)
        # unless every layer's weights share few values: then the int8 grid holds each shared value, one value table
        # codes the whole tensor, and one scale replaces a scale and a zero point per channel of weights and biases
        shared = _all_shared(model, opts.max_index_bits)
        per_tensor = opts.weights == "per-tensor" or (opts.weights == "auto" and shared)
        details["weight_scales"] = "per-tensor" if per_tensor else "per-channel"
        quantize_int8(float_path, calibration, int8_path, per_tensor)
        details["converted_bytes"] = int8_path.stat().st_size
        if opts.strip_names or opts.strip_zero_points:
            from shrink_tflite.coding import strip

            converted = int8_path.read_bytes()
            details["names_dropped_bytes"] = len(strip(converted, names=True, zero_points=False))
            int8_path.write_bytes(strip(converted, names=opts.strip_names, zero_points=opts.strip_zero_points))
        ctx.report(0.7, "checking the int8 model under TensorFlow Lite Micro")
        plain = TflmModel(int8_path)
        plain_out = [plain(s)[0] for s in samples]
        actual = np.stack([o.reshape(expected.shape[1:]) for o in plain_out])
        details.update(calibration_inputs=found[1], calibration_samples=rows(found[0]),
                       **int8_parity(expected, actual, opts.min_agreement, is_classification(artifact, ctx)))
        final, coded_report = _code(int8_path, plain_out, samples, opts, ctx)
        details["coding"] = coded_report
        ports = TflmModel(final)
        quantized_io = {"inputs": [p.as_dict() for p in ports.inputs], "outputs": [p.as_dict() for p in ports.outputs]}
        return _artifact(artifact, final, details, quantized_io, coded_report)


def _samples(specs: list[dict[str, Any]], feeds: dict[str, np.ndarray]) -> list[list[np.ndarray]]:
    """Batch-1 samples in each input's own layout, one list of arrays (model input order) per sample."""
    from shrink.api.data import rows, to_model

    return [[np.ascontiguousarray(to_model(specs, feeds, i, i + 1)[spec["name"]], dtype=np.float32) for spec in specs]
            for i in range(rows(feeds))]


def _code(int8_path: Any, plain_out: list[np.ndarray], samples: list[list[np.ndarray]], opts: TfliteExportOptions,
          ctx: Context) -> tuple[Any, dict[str, Any]]:
    """The deployable file (LUT-coded when asked for, or when the target decodes it and it is smaller) and the size
    report."""
    from shrink.support.tflite_run import TflmModel
    from shrink_common.parity import ParityError
    from shrink_tflite import coding

    plain = int8_path.read_bytes()
    shared, weight_tensors = coding.shared_weights(plain, opts.max_index_bits)
    decodes = "lut" in (ctx.target.get("runtime", "decodes") or [])
    chosen: list[coding.Shared] = []
    coded = None
    if shared and opts.coding != "none":
        chosen, coded = coding.choose(plain, shared, opts.strip_zero_points)
        if coded is None and opts.coding == "lut":  # asked for: all of them, even where it does not pay
            chosen, coded = shared, coding.lut_compress(plain, shared, opts.strip_zero_points)
    report = coding.report(plain, coded, shared, chosen, weight_tensors)
    report["runtime_decodes_lut"] = decodes
    if coded is None:
        report["deployed"] = "int8"
        return int8_path, report
    coded_path = coding.write(ctx.new_path("export-lut", ".tflite"), coded)
    ctx.report(0.85, "checking the LUT-coded model under TensorFlow Lite Micro")
    lut = TflmModel(coded_path)
    different = sum(not np.array_equal(lut(s)[0], out) for s, out in zip(samples, plain_out))
    if different:
        raise ParityError(f"the LUT-coded model's outputs differ from the int8 model's on {different} of {len(samples)} "
                          "inputs under TensorFlow Lite Micro (they must be bit-identical)")
    report["lut_identical_on"] = len(samples)
    if opts.coding == "lut" or (decodes and len(coded) < len(plain)):
        report["deployed"] = "lut"
        return coded_path, report
    report["deployed"] = "int8"
    # the value tables and DECODE's metadata can outweigh what the 4-bit indices save on narrow layers
    report["not_deployed"] = ("the target's runtime does not decode LUT-coded tensors" if not decodes else
                              "the LUT-coded file is not smaller than the plain int8 file")
    return int8_path, report


def _all_shared(model: Any, max_bits: int) -> bool:
    """Whether every Conv/Linear weight of the torch model takes at most `2**max_bits` distinct values (every layer
    went through `compress.cluster`)."""
    import torch

    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear))]
    return bool(layers) and all(int(torch.unique(m.weight.detach()).numel()) <= 1 << max_bits for m in layers)


def _artifact(artifact: Artifact, path: Any, details: dict[str, Any], quantized_io: dict[str, Any] | None,
              coded: dict[str, Any] | None = None) -> Artifact:
    from shrink.analysis.tflite_model import read

    model = read(path)
    graph = model.Subgraphs(0)
    outputs = [{"name": (graph.Tensors(int(i)).Name() or b"").decode()} for i in graph.OutputsAsNumpy()]
    meta: dict[str, Any] = {"outputs": outputs, "quantized_io": quantized_io, "coding": coded}
    return artifact.evolve(model=str(path), format="tflite", meta=meta, details=details)
