"""Built-in torch plugin: the `torch` model source and the passes that work on torch models.

torch itself is imported only inside `load()`, `run()` and the measuring hook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shrink import Artifact, Context, Pass, Source, hookimpl
from shrink_torch.distill import DistillKD
from shrink_torch.export import ExportOnnx
from shrink_torch.fuse import FuseBatchNorm
from shrink_torch.prune import PruneStructured
from shrink_torch.qat import QuantizeQAT
from shrink_torch.source import TorchSource
from shrink_torch.sparsity import PruneMagnitude


@hookimpl
def shrink_register_sources() -> list[type[Source]]:
    return [TorchSource]


@hookimpl
def shrink_register_passes() -> list[type[Pass]]:
    return [ExportOnnx, DistillKD, PruneStructured, FuseBatchNorm, PruneMagnitude, QuantizeQAT]


@hookimpl
def shrink_measure_artifact(artifact: Artifact, ctx: Context) -> dict[str, Any] | None:
    if artifact.format != "torch":
        return None
    from shrink_torch.runtime import measure

    return measure(artifact, ctx)


@hookimpl
def shrink_save_artifact(artifact: Artifact, directory: Path, ctx: Context) -> dict[str, Any] | None:
    if artifact.format != "torch":
        return None
    from shrink_torch.runtime import save_model

    return save_model(artifact, directory, ctx)


@hookimpl
def shrink_load_artifact(format: str, descriptor: dict[str, Any], directory: Path, meta: dict[str, Any], ctx: Context) -> Any:
    if format != "torch" or descriptor.get("kind") != "state_dict":
        return None
    from shrink_torch.runtime import restore_model

    return restore_model(descriptor, directory, meta, ctx)
