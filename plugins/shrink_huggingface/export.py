"""`export.onnx` for text encoders: two int64 inputs (input_ids, attention_mask) with dynamic batch and
sequence axes, checked, simplified and parity-gated on tokenized held-out sentences."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from shrink import Artifact, Context, UsageError
from shrink_huggingface.tokens import INPUT_NAMES, token_feeds

if TYPE_CHECKING:
    from shrink_common.options import ExportOptions


def parity_tokens(artifact: Artifact, ctx: Context, count: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Tokenized eval sentences (padded to the longest), else seeded random ids in the vocabulary."""
    found = token_feeds(artifact, ctx, ("eval", "calibration", "train"), count, pad_to=None)
    if found is not None:
        feeds, origin = found
        mask = feeds["attention_mask"]
        length = max(int(mask.sum(1).max()), 1)
        return feeds["input_ids"][:, :length], mask[:, :length], origin
    spec = {s["name"]: s for s in artifact.inputs}
    high = int((spec.get("input_ids", {}).get("range") or [0, 100])[1])
    rng = np.random.default_rng(ctx.seed)
    length = min(16, int(artifact.meta.get("max_length", 16)))
    ids = rng.integers(1, high, size=(count, length)).astype(np.int64)
    return ids, np.ones_like(ids), f"random ids[{count}x{length}] (seed {ctx.seed})"


def export_encoder(opts: ExportOptions, artifact: Artifact, ctx: Context) -> Artifact:
    import torch

    from shrink_common.onnx_graph import check_and_simplify
    from shrink_common.parity import ParityError, closeness
    from shrink_huggingface.metrics import _onnx_outputs, _torch_outputs

    if opts.exporter != "torchscript":
        raise UsageError("text encoders export with exporter 'torchscript' (two int64 inputs with dynamic axes)")
    opset = opts.opset or ctx.target.export_opset
    output = opts.output_name if "output_name" in opts.model_fields_set else (artifact.meta.get("outputs") or [{"name": "output"}])[0]["name"]
    model = artifact.model.eval()
    ids, mask, origin = parity_tokens(artifact, ctx, opts.parity_samples)
    path = ctx.new_path("export", ".onnx")
    axes = {0: "batch", 1: "sequence"} if opts.dynamic_batch else {1: "sequence"}
    dynamic_axes = {INPUT_NAMES[0]: axes, INPUT_NAMES[1]: axes, output: {0: "batch"} if opts.dynamic_batch else {}}
    example = (torch.from_numpy(ids[:1].copy()), torch.from_numpy(mask[:1].copy()))
    ctx.report(0.1, f"exporting the encoder with the torchscript exporter at opset {opset}")
    with torch.no_grad():
        torch.onnx.export(model, example, str(path), dynamo=False, opset_version=opset, input_names=list(INPUT_NAMES),
                          output_names=[output], dynamic_axes=dynamic_axes)
    proto, nodes_before, simplified = check_and_simplify(path, opset, "torchscript", opts.simplify, ctx)
    symbolic = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    for name in INPUT_NAMES:
        if not isinstance(symbolic.get(name, [None, None])[1], str):
            raise RuntimeError(f"the exported input {name!r} has shape {symbolic.get(name)}: its sequence axis is not dynamic")
    ctx.report(0.8, "checking parity with ONNX Runtime")
    close = closeness(_torch_outputs(model, ids, mask), _onnx_outputs(path, ids, mask))
    max_abs, cosine = close["max_abs"], close["cosine"]
    if not max_abs <= opts.tolerance:
        raise ParityError(f"ONNX Runtime output differs from torch by max |Δ| = {max_abs:.3g} "
                          f"(tolerance {opts.tolerance:g}, cosine {cosine:.6f}) on {len(ids)} inputs ({origin})")
    return artifact.evolve(
        model=str(path), format="onnx",
        meta={"outputs": [{"name": output}], "opset": opset, "dynamic_batch": opts.dynamic_batch},
        details={"exporter": "torchscript", "opset": opset, "nodes": len(proto.graph.node), "nodes_before_simplify": nodes_before,
                 "simplified": simplified, "input_shapes": {k: [str(d) for d in v] for k, v in symbolic.items()},
                 "parity_inputs": origin, "parity_max_abs": max_abs, "parity_cosine": round(cosine, 8)},
    )
