"""Built-in torch plugin: the `torch` model source and the passes that work on torch models.

torch itself is imported only inside `load()`, `run()` and the measuring hook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shrink import Artifact, Context, Pass, Source, hookimpl
from shrink_builtins.torch_family.distill import DistillKD
from shrink_builtins.torch_family.export import ExportOnnx
from shrink_builtins.torch_family.fuse import FuseBatchNorm
from shrink_builtins.torch_family.prune import PruneStructured
from shrink_builtins.torch_family.qat import QuantizeQAT
from shrink_builtins.torch_family.source import TorchSource
from shrink_builtins.torch_family.sparsity import PruneMagnitude


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
    from shrink_builtins.torch_family.runtime import measure

    return measure(artifact, ctx)


@hookimpl
def shrink_save_artifact(artifact: Artifact, directory: Path, ctx: Context) -> dict[str, Any] | None:
    if artifact.format != "torch":
        return None
    from shrink_builtins.torch_family.runtime import save_model

    return save_model(artifact, directory, ctx)


@hookimpl
def shrink_load_artifact(format: str, descriptor: dict[str, Any], directory: Path, meta: dict[str, Any], ctx: Context) -> Any:
    if format != "torch" or descriptor.get("kind") != "state_dict":
        return None
    from shrink_builtins.torch_family.runtime import restore_model

    return restore_model(descriptor, directory, meta, ctx)
