"""What a model family can do for the generic passes that need more than `ModelFamily` offers.

A generic pass checks that the family of its input implements its capability (at plan time, through
`PlanContext.family`) and then delegates the family-specific work to it (or, for `KDTeacher`, only asks). A family implements a
capability by defining its methods; nothing is registered. A new family gains export or structural
pruning without touching the passes, and a pass never tests another family's meta keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from shrink import Artifact, Context, PlanContext
    from shrink_common.options import ExportOptions, StructuredPruneOptions


@runtime_checkable
class OnnxExporter(Protocol):
    """Exports the family's torch models to ONNX for `export.onnx`: checked, simplified and parity-gated."""

    def check_export(self, options: ExportOptions, plan: PlanContext) -> list[str]:
        """Plan-time problems with exporting this family's models with `options` (one message each)."""
        ...

    def export_onnx(self, artifact: Artifact, ctx: Context, options: ExportOptions) -> Artifact:
        """The `"onnx"` artifact: the exported file, its inputs and outputs, and the export's details."""
        ...


@runtime_checkable
class StructuredPruner(Protocol):
    """Removes whole structures (channels, attention heads) of the family's models for `prune.structured`."""

    def check_structured_pruning(self, options: StructuredPruneOptions, plan: PlanContext) -> list[str]:
        """Plan-time problems: the options this family does not support (one message each)."""
        ...

    def prune_structured(self, artifact: Artifact, ctx: Context, options: StructuredPruneOptions) -> Artifact:
        """The pruned (and recovered) model, with the widths a rebuild needs recorded in its meta."""
        ...


@runtime_checkable
class KDTeacher(Protocol):
    """Its torch models can teach `distill.kd`: classifiers called with a batch of the data's arrays (one input)
    that return `[N, classes]` logits, and that stay in the family after channel pruning (a `width` student)."""

    def check_distillation(self, plan: PlanContext, width_student: bool) -> list[str]:
        """Plan-time problems with distilling this family's (planned) model by logit KD (one message each);
        `width_student`: the student is the teacher with channels removed."""
        ...
