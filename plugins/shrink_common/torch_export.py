"""Export of a torch module to ONNX for every family whose models are `nn.Module`s called with their declared
inputs: the TorchScript or dynamo exporter at the target's opset, each input's batch axis dynamic, the graph
checked and simplified, and the outputs parity-gated against torch on the family's inputs. Imported only
from `run()` (it imports torch)."""

from __future__ import annotations

import torch

from shrink import Artifact, Context
from shrink.api.data import run_feeds, to_model
from shrink.api.inputs import batch_axis
from shrink_common.classifier import predict_feeds
from shrink_common.onnx_graph import check_and_simplify
from shrink_common.options import ExportOptions
from shrink_common.parity import ParityError, closeness, parity_feeds


def export_module(artifact: Artifact, ctx: Context, opts: ExportOptions, output_name: str | None = None) -> Artifact:
    """Export an `nn.Module` called with its inputs in declared order and returning one tensor (named
    `output_name`, default the options'); each input's batch axis is dynamic (with `dynamic_batch`), and the parity
    inputs are the family's data, else seeded random."""
    output = output_name or opts.output_name
    opset = opts.opset or ctx.target.export_opset
    specs = artifact.inputs
    names = [spec["name"] for spec in specs]
    model: torch.nn.Module = artifact.model.eval()
    feeds, origin = parity_feeds(artifact, ctx, opts.parity_samples)
    first = to_model(specs, feeds, 0, 1)
    example = tuple(torch.from_numpy(first[name]) for name in names)
    batched = [(spec["name"], batch_axis(spec)) for spec in specs if batch_axis(spec) is not None]
    path = ctx.new_path("export", ".onnx")
    ctx.report(0.1, f"exporting with the {opts.exporter} exporter at opset {opset}")
    with torch.no_grad():
        if opts.exporter == "torchscript":
            dynamic_axes = ({**{name: {axis: "batch"} for name, axis in batched}, output: {0: "batch"}}
                            if opts.dynamic_batch else None)
            torch.onnx.export(model, example, str(path), dynamo=False, opset_version=opset, input_names=names,
                              output_names=[output], dynamic_axes=dynamic_axes)
        else:
            batch = torch.export.Dim("batch")
            shapes = tuple({axis: batch} if axis is not None else None for axis in map(batch_axis, specs))
            torch.onnx.export(model, example, str(path), dynamo=True, external_data=False, opset_version=opset,
                              input_names=names, output_names=[output],
                              dynamic_shapes=shapes if opts.dynamic_batch else None)
    proto, nodes_before, simplified = check_and_simplify(path, opset, opts.exporter, opts.simplify, ctx)
    ctx.report(0.8, "checking parity with ONNX Runtime")
    close = closeness(predict_feeds(model, specs, feeds), run_feeds(path, specs, feeds)[0])
    if not close["max_abs"] <= opts.tolerance:
        raise ParityError(f"ONNX Runtime output differs from torch by max |Δ| = {close['max_abs']:.3g} "
                          f"(tolerance {opts.tolerance:g}, cosine {close['cosine']:.6f}) on {len(next(iter(feeds.values())))} inputs ({origin})")
    outputs = [{"name": o.name} for o in proto.graph.output]
    return artifact.evolve(
        model=str(path), format="onnx",
        meta={"outputs": outputs, "opset": opset, "dynamic_batch": opts.dynamic_batch},
        details={"exporter": opts.exporter, "opset": opset, "nodes": len(proto.graph.node), "nodes_before_simplify": nodes_before,
                 "simplified": simplified, "parity_inputs": origin, "parity_max_abs": close["max_abs"],
                 "parity_cosine": round(close["cosine"], 8)},
    )
