"""Built-in torch plugin: the `torch` model family and source, and the passes that work on torch models.

torch itself is imported only inside `load()`, `run()` and the family's methods.
"""

from __future__ import annotations

from shrink import ModelFamily, Pass, Source, hookimpl
from shrink_torch.cluster import ClusterCompress
from shrink_torch.distill import DistillKD
from shrink_torch.export import ExportOnnx
from shrink_torch.family import TorchFamily
from shrink_torch.fuse import FuseBatchNorm
from shrink_torch.prune import PruneStructured
from shrink_torch.qat import QuantizeQAT
from shrink_torch.source import TorchSource
from shrink_torch.sparsity import PruneMagnitude


@hookimpl
def shrink_register_families() -> list[type[ModelFamily]]:
    return [TorchFamily]


@hookimpl
def shrink_register_sources() -> list[type[Source]]:
    return [TorchSource]


@hookimpl
def shrink_register_passes() -> list[type[Pass]]:
    return [ExportOnnx, DistillKD, PruneStructured, FuseBatchNorm, PruneMagnitude, QuantizeQAT, ClusterCompress]
