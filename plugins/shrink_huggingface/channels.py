"""`prune.structured` for convolutional Hugging Face image classifiers: channels removed with torch-pruning's
dependency graph and recovered with a KD fine-tune (`shrink_common.channels`), then rebuilt from the config and
the recorded layer widths to prove the pass cache can restore it (`save_pretrained` cannot save it).
Imported only from `run()` (it imports torch)."""

from __future__ import annotations

import io

import torch

from shrink import Artifact, Context
from shrink_common.channels import prune_and_recover
from shrink_common.classifier import inference_copy
from shrink_common.options import StructuredPruneOptions
from shrink_common.widths import Widths
from shrink_huggingface.model import ImageClassifier, config_dict, rebuild_image_classifier


def check_rebuild(model: ImageClassifier, widths: Widths, example: torch.Tensor) -> str:
    """Rebuild from the config and `widths`, load the weights with `weights_only=True`, compare outputs."""
    try:
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        buffer.seek(0)
        fresh = rebuild_image_classifier(config_dict(model), widths)
        fresh.load_state_dict(torch.load(buffer, weights_only=True))
        with torch.no_grad():
            worst = float((fresh.eval()(example) - model.eval()(example)).abs().max())
    except Exception as exc:  # reported, not fatal: the model is fine in memory; the step is not cached
        return f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return "ok" if worst <= 1e-5 else f"failed: outputs differ by {worst:.3g}"


def prune_image_classifier(opts: StructuredPruneOptions, artifact: Artifact, ctx: Context,
                           who: str = "prune.structured") -> Artifact:
    """Channel pruning of an image classifier, with KD from the unpruned model."""
    from shrink_common.classifier import split_tensors

    model, widths, details = prune_and_recover(artifact.model, ctx, opts, inference_copy, who)
    example = split_tensors(ctx.require_data("train", who), who)[0][:2]
    details["rebuild"] = check_rebuild(model, widths, example)
    return artifact.evolve(model=model, meta={"pruned_shapes": widths}, details=details)
