"""The Hugging Face family: models loaded from a local Hugging Face folder through transformers' Auto classes,
in torch and in ONNX: text encoders (sentence embeddings, sequence classifiers) and image classifiers.

Text models are fed tokenized text (the tokenizer travels with the artifact), image models the data's arrays
(`pixel_values`). Sentence encoders are measured by their fidelity to the source model on held-out sentences,
classifiers by top-1 accuracy on labelled eval data. Text encoders export with two int64 inputs and dynamic
axes and prune by attention heads and FFN channels; image models export with a dynamic batch axis, and
convolutional ones prune by channels. Models are cached as a state_dict plus the config and the widths that
rebuild them. torch, transformers and tokenizers are imported only when used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shrink import Artifact, Context, Feeds, PlanContext
from shrink_common.torch_family import TorchModelFamily

if TYPE_CHECKING:
    from shrink_common.options import ExportOptions, StructuredPruneOptions


class HuggingFaceFamily(TorchModelFamily):
    """transformers models from Hugging Face model folders: text fed with their own tokenizer, images as arrays."""

    name = "huggingface"
    libraries = ("torch", "transformers", "tokenizers", "safetensors")

    def feeds(self, artifact: Artifact, ctx: Context, splits: tuple[str, ...], count: int) -> Feeds | None:
        from shrink_huggingface.tokens import token_feeds

        return token_feeds(artifact, ctx, splits, count) or super().feeds(artifact, ctx, splits, count)

    def measure(self, artifact: Artifact, ctx: Context) -> dict[str, Any]:
        from shrink_huggingface.metrics import measure

        metrics = super().measure(artifact, ctx)
        metrics.update(measure(artifact, ctx) or {})
        if "accuracy" not in metrics and artifact.meta.get("task") == "classification":
            metrics.update(self._accuracy(artifact, ctx))
        return metrics

    def _accuracy(self, artifact: Artifact, ctx: Context) -> dict[str, Any]:
        """Top-1 and the Brier score on the labelled eval split, fed as the family feeds it (tokenized text, or
        arrays)."""
        from shrink.api.data import classification_scores, labelled_eval, rows, run_feeds

        split = labelled_eval(ctx.data)
        found = self.feeds(artifact, ctx, ("eval",), len(split)) if split is not None else None
        if split is None or found is None or rows(found[0]) != len(split):
            return {}
        if artifact.format == "onnx":
            outputs = run_feeds(artifact.model, artifact.inputs, found[0])[0]
        elif artifact.format == "torch":
            from shrink_common.classifier import predict_feeds

            outputs = predict_feeds(artifact.model, artifact.inputs, found[0])
        else:
            return {}
        return classification_scores(outputs, split.labels)

    def preprocessing(self, artifact: Artifact, record: dict[str, Any] | None) -> dict[str, Any] | None:
        """Text records get the tokenizer that travels with the model (file, max_length, padding, inputs)."""
        if record is None or record.get("kind") != "text":
            return record
        from shrink_huggingface.tokens import text_record

        return text_record(artifact, record)

    def save(self, artifact: Artifact, directory: Path, ctx: Context) -> dict[str, Any] | None:
        if artifact.format != "torch":
            return super().save(artifact, directory, ctx)
        from shrink_huggingface.model import save

        return save(artifact.model, directory)

    def load(self, format: str, descriptor: dict[str, Any], directory: Path, meta: dict[str, Any], ctx: Context) -> Any:
        if format != "torch":
            return super().load(format, descriptor, directory, meta, ctx)
        if descriptor.get("kind") not in ("hf-encoder", "hf-image-classifier"):
            return None
        from shrink_huggingface.model import restore

        return restore(descriptor, directory)

    def check_export(self, options: ExportOptions, plan: PlanContext) -> list[str]:
        from shrink_huggingface.support import export_problems

        return export_problems(options, plan)

    def export_onnx(self, artifact: Artifact, ctx: Context, options: ExportOptions) -> Artifact:
        from shrink_huggingface.model import Encoder

        if isinstance(artifact.model, Encoder):
            from shrink_huggingface.export import export_encoder

            return export_encoder(options, artifact, ctx)
        from shrink_common.torch_export import export_module

        declared = (artifact.meta.get("outputs") or [{"name": options.output_name}])[0]["name"]
        return export_module(artifact, ctx, options, output_name=options.output_name if "output_name" in options.model_fields_set
                             else declared)

    def check_structured_pruning(self, options: StructuredPruneOptions, plan: PlanContext) -> list[str]:
        from shrink_huggingface.support import pruning_problems

        return pruning_problems(options, plan)

    def prune_structured(self, artifact: Artifact, ctx: Context, options: StructuredPruneOptions) -> Artifact:
        from shrink_huggingface.model import Encoder

        if isinstance(artifact.model, Encoder):
            from shrink_huggingface.heads import prune_encoder

            return prune_encoder(options, artifact, ctx)
        from shrink_huggingface.channels import prune_image_classifier

        return prune_image_classifier(options, artifact, ctx)

    def check_distillation(self, plan: PlanContext, width_student: bool) -> list[str]:
        from shrink_huggingface.support import kd_problems

        return kd_problems(plan, width_student)
