"""The torch family: `nn.Module`s built by a factory (the `torch` source and every torch pass).

Its models export to ONNX (`shrink_common.torch_export`), prune by channels (`prune_model`), and are cached as a
state_dict that the recorded factory, widths and fused BatchNorms rebuild (`weights_only` loading).
torch is imported only when a method runs on a torch model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shrink import Artifact, Context, PlanContext
from shrink_common.torch_family import TorchModelFamily

if TYPE_CHECKING:
    from shrink_common.options import ExportOptions, StructuredPruneOptions


class TorchFamily(TorchModelFamily):
    """torch.nn.Module models from a factory; exported with torch.onnx, pruned with torch-pruning."""

    name = "torch"
    formats = ("torch",)

    def measure(self, artifact: Artifact, ctx: Context) -> dict[str, Any]:
        metrics = super().measure(artifact, ctx)
        if artifact.format == "torch":
            from shrink_torch.runtime import eval_accuracy

            metrics.update(eval_accuracy(artifact, ctx))
        return metrics

    def save(self, artifact: Artifact, directory: Path, ctx: Context) -> dict[str, Any] | None:
        if artifact.format != "torch":
            return super().save(artifact, directory, ctx)
        from shrink_torch.runtime import save_model

        return save_model(artifact, directory, ctx)

    def load(self, format: str, descriptor: dict[str, Any], directory: Path, meta: dict[str, Any], ctx: Context) -> Any:
        if format != "torch":
            return super().load(format, descriptor, directory, meta, ctx)
        if descriptor.get("kind") != "state_dict":
            return None
        from shrink_torch.runtime import restore_model

        return restore_model(descriptor, directory, meta, ctx)

    def check_export(self, options: ExportOptions, plan: PlanContext) -> list[str]:
        return []

    def export_onnx(self, artifact: Artifact, ctx: Context, options: ExportOptions) -> Artifact:
        from shrink_common.torch_export import export_module

        return export_module(artifact, ctx, options)

    def check_distillation(self, plan: PlanContext, width_student: bool) -> list[str]:
        return []

    def check_structured_pruning(self, options: StructuredPruneOptions, plan: PlanContext) -> list[str]:
        from shrink_torch.prune import check_channel_pruning

        return check_channel_pruning(options, self.name)

    def prune_structured(self, artifact: Artifact, ctx: Context, options: StructuredPruneOptions) -> Artifact:
        from shrink_torch.prune import prune_model

        return prune_model(artifact, ctx, options)
