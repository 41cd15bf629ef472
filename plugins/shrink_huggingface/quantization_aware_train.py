"""The torch side of `distill.quantization_aware`: the distilled student, its weights seen through their block
rounding (`shrink_common.block_rounding`), trained by the TinyBERT loop against the source model."""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

import torch

from shrink import Artifact, Context
from shrink_common import distributed
from shrink_common.block_rounding import RoundedWeights
from shrink_huggingface.model import Encoder
from shrink_huggingface.tinybert_train import layers_of, student_artifact, train, uniform_map

if TYPE_CHECKING:
    from shrink_huggingface.quantization_aware import QuantizationAwareOptions


def layer_map(artifact: Artifact, student: Encoder, teacher: Encoder) -> tuple[list[int], str]:
    """The teacher layer each student layer learns from: the latest distillation's map, else uniform."""
    layers, t_layers = len(layers_of(student)), len(layers_of(teacher))
    for step in reversed(artifact.history):
        found = step.details.get("layer_map") if step.details else None
        if isinstance(found, list | tuple) and len(found) == layers and all(0 <= int(j) < t_layers for j in found):
            return [int(j) for j in found], f"from {step.name}"
    return uniform_map(layers, t_layers), "uniform (no earlier distillation)"


def finetune(opts: QuantizationAwareOptions, artifact: Artifact, ctx: Context, who: str) -> Artifact:
    from shrink_common.torch_setup import setup_torch
    from shrink_huggingface.tokens import train_tokens

    source = ctx.source
    if source is None or not getattr(source, "meta", {}).get("hf_config"):
        raise RuntimeError(f"{who} distils from the recipe's source model, which is not a Hugging Face encoder here")
    seed = ctx.seed + opts.seed
    setup_torch(seed)
    distributed.init(opts.batch_size, f"{who}: batch_size")
    began = time.perf_counter()
    teacher: Encoder = source.model.eval()
    student: Encoder = copy.deepcopy(artifact.model).eval()  # the input artifact stays as it was
    mapping, mapping_origin = layer_map(artifact, student, teacher)
    ids_all, mask_all, max_length = train_tokens(opts, artifact, ctx, who)
    tokenize_seconds = time.perf_counter() - began
    try:
        rounded = RoundedWeights(student, opts.block_size, opts.table_block, opts.bits, opts.tables, opts.exclude,
                                 activations=opts.activations == "int8")
    except ValueError as exc:
        raise RuntimeError(f"{who}: {exc}") from None
    torch.manual_seed(seed)
    training = train(opts, student, teacher, mapping, ids_all, mask_all, ctx, seed)
    rounded.bake()
    off = rounded.off_grid()
    if off:  # bake() puts every weight on its grid; a weight off it would quantize with a loss nobody measured
        raise RuntimeError(f"{who}: weights left off their 4-bit grid after training: {', '.join(off)}")
    details: dict[str, Any] = {
        "rounding": {"bits": opts.bits, "block_size": opts.block_size, "table_block_size": opts.table_block,
                     "activations": opts.activations, "linears": len(rounded.linears), "tables": sorted(rounded.tables),
                     "kept_float": rounded.kept_float,
                     "how": "linear weights (and, with activations 'int8', their inputs) straight-through (rounded "
                            "forward, float update); tables rounded once and frozen; all baked onto their grid"},
        "layer_map": mapping, "layer_map_origin": mapping_origin, "weights": opts.weights.model_dump(),
        "sentences": len(ids_all), "max_length": max_length, **training.described(tokenize_seconds),
    }
    return student_artifact(artifact, student, details)
