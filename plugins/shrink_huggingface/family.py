"""The Hugging Face family: BERT-family encoders loaded from a local model folder, in torch and in ONNX.

Their inputs are tokenized text (the tokenizer travels with the artifact), their fidelity is measured
against the source model on held-out sentences, they export with two int64 inputs and dynamic axes,
prune by attention heads and FFN channels, and are cached as a state_dict plus the config and
per-layer widths that rebuild them. torch, transformers and tokenizers are imported only when used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shrink import Artifact, Context, Feeds, PlanContext
from shrink_common.torch_family import TorchModelFamily

if TYPE_CHECKING:
    from shrink_common.options import ExportOptions, StructuredPruneOptions


class HuggingFaceFamily(TorchModelFamily):
    """Transformer encoders from Hugging Face model folders, fed with their own tokenizer."""

    name = "huggingface"
    libraries = ("torch", "transformers", "tokenizers", "safetensors")

    def feeds(self, artifact: Artifact, ctx: Context, splits: tuple[str, ...], count: int) -> Feeds | None:
        from shrink_huggingface.tokens import token_feeds

        return token_feeds(artifact, ctx, splits, count)

    def measure(self, artifact: Artifact, ctx: Context) -> dict[str, Any]:
        from shrink_huggingface.metrics import measure

        metrics = super().measure(artifact, ctx)
        metrics.update(measure(artifact, ctx) or {})
        return metrics

    def save(self, artifact: Artifact, directory: Path, ctx: Context) -> dict[str, Any] | None:
        if artifact.format != "torch":
            return super().save(artifact, directory, ctx)
        from shrink_huggingface.model import Encoder, save

        return save(artifact.model, directory) if isinstance(artifact.model, Encoder) else None

    def load(self, format: str, descriptor: dict[str, Any], directory: Path, meta: dict[str, Any], ctx: Context) -> Any:
        if format != "torch":
            return super().load(format, descriptor, directory, meta, ctx)
        if descriptor.get("kind") != "hf-encoder":
            return None
        from shrink_huggingface.model import restore

        return restore(descriptor, directory)

    def check_export(self, options: ExportOptions, plan: PlanContext) -> list[str]:
        from shrink_huggingface.export import check_export

        return check_export(options)

    def export_onnx(self, artifact: Artifact, ctx: Context, options: ExportOptions) -> Artifact:
        from shrink_huggingface.export import export_encoder

        return export_encoder(options, artifact, ctx)

    def check_structured_pruning(self, options: StructuredPruneOptions, plan: PlanContext) -> list[str]:
        from shrink_huggingface.heads import check_pruning

        return check_pruning(options)

    def prune_structured(self, artifact: Artifact, ctx: Context, options: StructuredPruneOptions) -> Artifact:
        from shrink_huggingface.heads import prune_encoder

        return prune_encoder(options, artifact, ctx)
