"""Which passes apply to which Hugging Face models, checked at plan time from the recipe's model folder (no torch):
every refusal names what would work instead."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shrink import PlanContext
from shrink_huggingface.folder import BERT_LAYOUT, ModelFolder
from shrink_huggingface.source import planned_model

if TYPE_CHECKING:
    from shrink_common.options import ExportOptions, StructuredPruneOptions

CNN_EXAMPLES = "MobileNetV2, ResNet, ConvNeXt, …"


def export_problems(opts: ExportOptions, plan: PlanContext) -> list[str]:
    found = planned_model(plan)
    if found is None or found.kind == "vision":
        return []
    if opts.exporter != "torchscript":
        return ["text encoders export with exporter 'torchscript' (two int64 inputs with dynamic axes)"]
    return []


def pruning_problems(opts: StructuredPruneOptions, plan: PlanContext) -> list[str]:
    """Text encoders lose attention heads and FFN channels (BERT-layout ones); convolutional image classifiers
    lose channels; image models with attention layers are not pruned."""
    found = planned_model(plan)
    if found is None:
        return []  # the source's own check says what is wrong with the folder
    if found.kind == "vision":
        if opts.encoder:
            given = " and ".join(k for k in ("heads_ratio", "ffn_ratio") if getattr(opts, k) is not None)
            return [f"{given} applies to text encoders (attention heads / FFN channels); {found.describe} is pruned by "
                    "channels: use 'ratio'"]
        if found.has_attention:
            return [f"prune.structured removes channels of convolutional image classifiers ({CNN_EXAMPLES}); "
                    f"{found.describe} has attention layers, whose heads channel pruning would scramble: distil it "
                    "into a smaller model with distill.kd instead"]
        return []
    if not opts.encoder:
        return ["prune.structured on a transformer encoder removes attention heads and FFN channels: "
                "give heads_ratio and/or ffn_ratio (not 'ratio')"]
    if not found.bert_layout:
        return [f"heads_ratio / ffn_ratio prune encoders with BERT's layers ({', '.join(BERT_LAYOUT)}); "
                f"{found.describe} has other layers"]
    return []


def kd_problems(plan: PlanContext, width_student: bool) -> list[str]:
    """`distill.kd` trains on labelled arrays: image classifiers, not text models; a `width` student (the teacher's
    channels pruned) only of a convolutional one."""
    found = planned_model(plan)
    if found is not None and found.kind == "text":
        return [f"distill.kd distils classifiers of array inputs (images); {found.describe} takes text: use "
                "distill.tinybert or distill.mobilebert"]
    if found is not None and width_student and found.has_attention:
        return [f"a 'width' student removes channels of convolutional image classifiers ({CNN_EXAMPLES}); "
                f"{found.describe} has attention layers, whose heads it would scramble: give a 'student' factory"]
    return []


def text_encoder_problems(plan: PlanContext, who: str, *, task: str | None = None, wordpiece: bool = False) -> list[str]:
    """A pass for BERT-layout text encoders (optionally of one task, or with a WordPiece tokenizer)."""
    if plan.family.name != "huggingface":
        return [f"{who} needs a Hugging Face text encoder (model source 'huggingface'), not a {plan.family.name} model"]
    found: ModelFolder | None = planned_model(plan)
    if found is None:
        return []
    if found.kind == "vision":
        return [f"{who} works on text encoders; {found.describe} takes images: use distill.kd (logit distillation) "
                "or prune.structured (channels)"]
    if wordpiece and found.tokenizer != "WordPiece":
        return [f"{who} handles WordPiece tokenizers (BERT's); {found.describe} has a {found.tokenizer} tokenizer"]
    if not wordpiece and not found.bert_layout:
        return [f"{who} distils encoders with BERT's layers ({', '.join(BERT_LAYOUT)}); {found.describe} has other layers"]
    if task is not None and found.task != task:
        return [f"{who} distils {task} models; {found.describe} is loaded for {found.task}"]
    return []
