"""`prune.structured`: structural pruning, delegated to the model's family (`StructuredPruner`); the torch
family's channel pruning (`shrink_common.channels`: torch-pruning's dependency graph and a recovery fine-tune)
with the rebuild check of its factory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shrink import Artifact, Context, Pass, PlanContext, UsageError
from shrink_common.capabilities import StructuredPruner
from shrink_common.options import ENCODER_ONLY, StructuredPruneOptions

if TYPE_CHECKING:
    from torch import nn


class PruneStructured(Pass[StructuredPruneOptions]):
    """Remove whole channels with torch-pruning (dependency-aware) or attention heads of encoders, then fine-tune to recover (optionally with KD)."""

    name = "prune.structured"
    consumes = ("torch",)
    produces = "torch"
    requires = frozenset({"train", "labels"})
    default = True
    libraries = ("torch", "torch-pruning")

    def __init__(self, options: StructuredPruneOptions) -> None:
        super().__init__(options)
        if options.encoder:
            self.requires = frozenset({"train"})  # type: ignore[misc]  # sentences; no labels needed

    def check(self, plan: PlanContext) -> list[str]:
        if not isinstance(plan.family, StructuredPruner):
            return [f"{plan.family.name} models cannot be pruned structurally (the family has no structural pruning)"]
        return plan.family.check_structured_pruning(self.options, plan)

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        family = ctx.family(artifact)
        if not isinstance(family, StructuredPruner):
            raise UsageError(f"{family.name} models cannot be pruned structurally (the family has no structural pruning)")
        return family.prune_structured(artifact, ctx, self.options)


def check_channel_pruning(opts: StructuredPruneOptions, family: str) -> list[str]:
    """The torch family prunes channels: the encoder options do not apply to its models."""
    if opts.encoder:
        given = " and ".join(k for k in ENCODER_ONLY if getattr(opts, k) is not None)
        return [f"{given} prune attention heads / FFN channels of transformer encoders; {family} models are pruned "
                "by channels: use 'ratio'"]
    return []


def prune_model(artifact: Artifact, ctx: Context, opts: StructuredPruneOptions, who: str = "prune.structured") -> Artifact:
    """Channel pruning of a torch model with torch-pruning, then the recovery fine-tune (KD from the unpruned
    model with its BatchNorms folded, for speed)."""
    from shrink_common.channels import prune_and_recover
    from shrink_torch.fuse import fused_for_inference

    model, shapes, details = prune_and_recover(artifact.model, ctx, opts, fused_for_inference, who)
    details["rebuild"] = check_rebuild(model, artifact, ctx, shapes)
    return artifact.evolve(model=model, meta={"pruned_shapes": shapes}, details=details)


def check_rebuild(model: nn.Module, artifact: Artifact, ctx: Context, shapes: dict[str, dict[str, int]]) -> str:
    """Rebuild the model from its factory and the recorded widths and load the weights (weights_only=True)."""
    import io

    import torch

    from shrink_torch.runtime import factory_model

    if not artifact.meta.get("factory"):
        return "skipped: no factory recorded"
    try:
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        buffer.seek(0)
        state = torch.load(buffer, weights_only=True)
        fresh = factory_model({**artifact.meta, "pruned_shapes": shapes}, ctx)
        assert fresh is not None
        fresh.load_state_dict(state)
    except Exception as exc:  # reported, not fatal: the pass's model is fine in memory
        return f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return "ok"
